//! The `[sandbox]` section: whether customers' scripts run in their own shell, whether missing
//! isolation stops the server, the network scripts get, and each customer's resource limits
//! (server defaults here, overridden by `sandbox_*` keys in a `[[users]]` entry).

use serde::Deserialize;

use super::{ConfigError, Origin};

/// `[sandbox]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawSandbox {
    enabled: bool,
    required: bool,
    network: String,
    pid_namespace: bool,
    limits: bool,
    memory_bytes: u64,
    processes: u64,
    cpu_weight: u64,
    tmp_bytes: u64,
}

impl Default for RawSandbox {
    fn default() -> Self {
        RawSandbox {
            enabled: true,
            required: false,
            network: "host".into(),
            pid_namespace: true,
            limits: true,
            memory_bytes: 512 * 1024 * 1024,
            processes: 512,
            cpu_weight: 100,
            tmp_bytes: 64 * 1024 * 1024,
        }
    }
}

/// The network a customer's scripts get.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Network {
    /// The host's: scripts may connect anywhere the server can (rental servers allow outbound
    /// HTTP from scripts).
    Host,
    /// None at all: a network namespace without even a loopback that is up.
    None,
}

impl Network {
    fn parse(text: &str) -> Option<Network> {
        match text {
            "host" => Some(Network::Host),
            "none" => Some(Network::None),
            _ => None,
        }
    }

    /// As written in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            Network::Host => "host",
            Network::None => "none",
        }
    }
}

/// One customer's shell and its limits (`0`: no limit).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Shell {
    /// The network their scripts get.
    pub network: Network,
    /// Memory all their scripts together may use (cgroup), bytes.
    pub memory_bytes: u64,
    /// Processes and threads all their scripts together may have (cgroup).
    pub processes: u64,
    /// Their share of the CPU against other customers', 1–10000 (100: an equal share).
    pub cpu_weight: u64,
    /// The size of their private `/tmp`, bytes.
    pub tmp_bytes: u64,
}

/// `[sandbox]`, validated.
#[derive(Clone, Debug)]
pub struct Sandbox {
    /// Customers' scripts run in their shell (as far as the server can build one).
    pub enabled: bool,
    /// Missing isolation is a start-up error instead of a warning.
    pub required: bool,
    /// Every request starts in a fresh pid namespace, so that nothing it started outlives it.
    pub pid_namespace: bool,
    /// Per-customer cgroups (memory, processes, CPU) are made and joined. Off, nothing limits
    /// a customer's scripts together (each still has its `limit_*` rlimits); joining costs a
    /// write per hierarchy per script, which is 10–20 % of a spawn on cgroup v1.
    pub limits: bool,
    /// The defaults of every customer's shell.
    pub defaults: Shell,
}

/// Per-customer overrides, as written in a `[[users]]` entry (`sandbox_*` keys).
#[derive(Clone, Debug, Default)]
pub(super) struct RawOverrides<'a> {
    pub(super) sandbox_network: Option<&'a str>,
    pub(super) sandbox_memory_bytes: Option<u64>,
    pub(super) sandbox_processes: Option<u64>,
    pub(super) sandbox_cpu_weight: Option<u64>,
    pub(super) sandbox_tmp_bytes: Option<u64>,
}

/// Checks the section.
pub(super) fn sandbox(raw: RawSandbox, origin: &Origin) -> Result<Sandbox, ConfigError> {
    let network = Network::parse(&raw.network)
        .ok_or_else(|| origin.err("sandbox.network", network_problem(&raw.network)))?;
    let defaults = Shell {
        network,
        memory_bytes: raw.memory_bytes,
        processes: raw.processes,
        cpu_weight: raw.cpu_weight,
        tmp_bytes: raw.tmp_bytes,
    };
    check(&defaults, "sandbox.", origin)?;
    Ok(Sandbox {
        enabled: raw.enabled,
        required: raw.required,
        pid_namespace: raw.pid_namespace,
        limits: raw.limits,
        defaults,
    })
}

/// A customer's shell: the defaults with their entry's `sandbox_*` keys applied.
pub(super) fn shell(
    raw: &RawOverrides<'_>,
    defaults: &Shell,
    origin: &Origin,
    user: &str,
) -> Result<Shell, ConfigError> {
    let network = match raw.sandbox_network {
        Some(text) => Network::parse(text).ok_or_else(|| {
            origin.err(
                "users.sandbox_network",
                format!("user `{user}`: {}", network_problem(text)),
            )
        })?,
        None => defaults.network,
    };
    let shell = Shell {
        network,
        memory_bytes: raw.sandbox_memory_bytes.unwrap_or(defaults.memory_bytes),
        processes: raw.sandbox_processes.unwrap_or(defaults.processes),
        cpu_weight: raw.sandbox_cpu_weight.unwrap_or(defaults.cpu_weight),
        tmp_bytes: raw.sandbox_tmp_bytes.unwrap_or(defaults.tmp_bytes),
    };
    check(&shell, "users.sandbox_", origin)?;
    Ok(shell)
}

fn network_problem(text: &str) -> String {
    format!("`{text}` is not a network; use \"host\" or \"none\"")
}

/// Limits that cannot work: a memory limit too small to start an interpreter, a weight outside
/// what both cgroup versions take, a `/tmp` of nothing.
fn check(shell: &Shell, prefix: &str, origin: &Origin) -> Result<(), ConfigError> {
    const LEAST_MEMORY: u64 = 16 * 1024 * 1024;
    if shell.memory_bytes != 0 && shell.memory_bytes < LEAST_MEMORY {
        return Err(origin.err(
            &format!("{prefix}memory_bytes"),
            "must be 0 (no limit) or at least 16 MiB (16777216): less cannot start an interpreter",
        ));
    }
    if !(1..=10_000).contains(&shell.cpu_weight) {
        return Err(origin.err(
            &format!("{prefix}cpu_weight"),
            "must be between 1 and 10000 (100 is an equal share)",
        ));
    }
    if shell.tmp_bytes < 1024 * 1024 {
        return Err(origin.err(
            &format!("{prefix}tmp_bytes"),
            "must be at least 1 MiB (1048576)",
        ));
    }
    Ok(())
}
