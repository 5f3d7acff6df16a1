//! Each customer in their own shell: a sandbox built once per customer and joined by every
//! one of their scripts, at nearly the cost of a plain spawn (`../shared/research/sandbox.md`:
//! a fresh namespace set per request runs at 0.24–0.38× a plain spawn, bubblewrap at 0.07×;
//! joining prebuilt ones with `setns` at 0.95×).
//!
//! What a shell is (built on the customer's first script, rebuilt when their configuration
//! changes, torn down when they are removed):
//! - **Files**: a mount namespace ([`mounts`]: the system read-only, their home read-write,
//!   a private `/tmp`, every other home covered) *and* a Landlock ruleset ([`landlock`]: writes
//!   only beneath the home and `/tmp`, no signals to processes outside the request, no abstract
//!   Unix sockets outside it). Both, because each covers the other's gap: the namespace hides
//!   what Landlock would only refuse (a `stat` of bob's `config.php` says "no such file", not
//!   "permission denied", so nothing about other customers leaks, not even names), and it gives
//!   the private `/tmp`, which Landlock cannot; Landlock needs no privilege, so it is what is
//!   left when the server is not root, and it scopes signals and sockets, which mounts cannot.
//! - **Processes**: a fresh pid namespace per request (cloned with the script: a new pid
//!   namespace cannot be joined by a process that exists already). When the script, its pid 1,
//!   exits, the kernel kills everything left in it: `setsid` daemons, double forks, SIGTERM
//!   trappers. A timeout or a client that goes away kills the script, and so all of it.
//! - **Limits** ([`cgroup`]): one cgroup per customer, memory, processes and CPU weight for
//!   all their scripts together, joined by the child through a descriptor opened here. A script
//!   stopped by a limit is explained ([`Shell::stopped`]).
//! - **Network**: the host's, or `none`: one network namespace without a loopback that is up,
//!   built at start and shared by every customer who has `none` (a new one per request costs
//!   0.3×).
//!
//! Only customers' sites are sandboxed: the server's own document root belongs to whoever runs
//! the server.
//!
//! Degrading: each part is probed once at start. Not root, or a kernel without a part: the
//! server runs without it, and the banner (and `yadokari explain`) says what is missing and
//! why; `sandbox.required = true` makes that a start-up error.

pub mod cgroup;
mod landlock;
mod mounts;

use std::collections::HashMap;
use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::cgi::spawn::Join;
use crate::config::{Config, Customer, Network};

/// Every customer's shell, and what this machine lets them be made of.
pub struct Sandboxes {
    /// `sandbox.enabled`.
    enabled: bool,
    /// A fresh pid namespace per request (asked for, and possible).
    pid_namespace: bool,
    /// Mount, IPC and network namespaces can be made (root, or CAP_SYS_ADMIN).
    namespaces: bool,
    /// The Landlock ABI, when the kernel has it.
    landlock: Option<u32>,
    /// The network namespace of customers with network `none`.
    no_network: Option<Arc<OwnedFd>>,
    /// Where customers' cgroups are made.
    cgroups: Option<Arc<cgroup::Root>>,
    /// What is missing, and why: the banner's last part.
    missing: Vec<String>,
    /// `sandbox.network`, for the banner.
    network: Network,
    /// `sandbox.limits`.
    limits: bool,
    /// Customers' shells, by name.
    shells: Mutex<HashMap<String, Arc<Entry>>>,
    /// Customers' cgroups in use, by name: shared by a shell rebuilt for a new home and the
    /// old one its scripts still run in; their descriptors close with the last shell (the
    /// directory stays, with its limits, until the customer is removed or the server stops).
    groups: Mutex<HashMap<String, std::sync::Weak<cgroup::Group>>>,
    /// When the server started, for the shells' idle times.
    started: std::time::Instant,
    /// What no customer may see, worked out once per configuration (see [`hidden`]).
    hidden: Mutex<Arc<Vec<PathBuf>>>,
}

/// A customer's shell, built once on demand.
struct Entry {
    spec: Spec,
    shell: tokio::sync::OnceCell<Arc<Shell>>,
    /// When a script last asked for it, in seconds since the server started (see
    /// [`Sandboxes::release_idle`]).
    used: std::sync::atomic::AtomicU64,
}

/// A shell no script has asked for in this long is released (its namespaces and ruleset
/// closed; the cgroup, a directory, stays): with thousands of customers only the active ones
/// hold descriptors, and the next script of an idle one pays the few milliseconds of a build.
pub const IDLE: std::time::Duration = std::time::Duration::from_secs(600);

/// What a shell is built from: when it changes, the shell is built anew.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Spec {
    name: String,
    plan: mounts::Plan,
    network: Network,
    limits: crate::config::Shell,
}

/// One customer's built shell.
pub struct Shell {
    mnt: Option<OwnedFd>,
    ipc: Option<OwnedFd>,
    net: Option<Arc<OwnedFd>>,
    landlock: Option<OwnedFd>,
    group: Option<Arc<cgroup::Group>>,
    new_pid: bool,
}

impl Shell {
    /// How a child joins this shell; `dir` is the script's directory by path and its
    /// (device, inode), for the working directory inside the mount namespace.
    pub fn join(&self, dir: Option<(&CString, (u64, u64))>) -> Join {
        let raw = |fd: &Option<OwnedFd>| fd.as_ref().map_or(-1, |f| f.as_raw_fd());
        let mut cgroups = [-1; 3];
        if let Some(group) = &self.group {
            for (slot, fd) in cgroups.iter_mut().zip(group.procs()) {
                *slot = fd;
            }
        }
        Join {
            cgroups,
            net: self.net.as_ref().map_or(-1, |f| f.as_raw_fd()),
            ipc: raw(&self.ipc),
            mnt: raw(&self.mnt),
            landlock: raw(&self.landlock),
            new_pid: self.new_pid,
            dir: dir.map(|(path, id)| (path.as_ptr(), id)),
        }
    }

    /// Whether scripts run in a mount namespace (their working directory is set by path).
    pub fn has_mounts(&self) -> bool {
        self.mnt.is_some()
    }

    /// After a script failed: whether its customer's limits stopped it.
    pub fn stopped(&self) -> Option<cgroup::Stop> {
        self.group.as_ref()?.stopped()
    }
}

impl Sandboxes {
    /// Probes what this machine allows and prepares what every shell shares (the network
    /// namespace without network, the server's cgroup directories).
    pub fn new(config: &Config) -> Sandboxes {
        let s = &config.sandbox;
        let off = Sandboxes {
            enabled: false,
            pid_namespace: false,
            namespaces: false,
            landlock: None,
            no_network: None,
            cgroups: None,
            missing: Vec::new(),
            network: s.defaults.network,
            limits: s.limits,
            shells: Mutex::default(),
            groups: Mutex::default(),
            started: std::time::Instant::now(),
            hidden: Mutex::default(),
        };
        if !s.enabled {
            return off;
        }
        let mut missing = Vec::new();
        // SAFETY: geteuid only reads this process's credentials.
        let root = unsafe { libc::geteuid() } == 0;
        let landlock = landlock::abi().map_err(|e| missing.push(e)).ok();
        let no_network = if root {
            match empty_network() {
                Ok(fd) => Some(Arc::new(fd)),
                Err(e) => {
                    missing.push(format!("namespaces: {e}"));
                    None
                }
            }
        } else {
            missing.push(
                "namespaces and a pid namespace per request: the server is not running as root"
                    .into(),
            );
            None
        };
        let namespaces = no_network.is_some();
        let cgroups = if !s.limits {
            None
        } else if root {
            cgroup::Root::new()
                .map(Arc::new)
                .map_err(|e| missing.push(e))
                .ok()
        } else {
            missing.push("per-customer limits (cgroups): the server is not running as root".into());
            None
        };
        Sandboxes {
            enabled: true,
            pid_namespace: s.pid_namespace && namespaces,
            namespaces,
            landlock,
            no_network,
            cgroups,
            missing,
            ..off
        }
    }

    /// The banner's line: what isolation is in force, and what is missing and why.
    pub fn describe(&self) -> String {
        if !self.enabled {
            return "sandbox off (sandbox.enabled = false): customers' scripts see everything their user may read".into();
        }
        let files = match (self.namespaces, self.landlock.is_some()) {
            (true, true) => "namespace+landlock",
            (true, false) => "namespace",
            (false, true) => "landlock",
            (false, false) => "none",
        };
        let processes = if self.pid_namespace {
            "pid-namespace"
        } else {
            "process-group"
        };
        let limits = match &self.cgroups {
            Some(root) => root.describe(),
            None if !self.limits => "off(sandbox.limits = false)".to_string(),
            None => "none".to_string(),
        };
        let network = match (self.network, self.namespaces) {
            (Network::None, false) => "none(tcp-only,landlock)",
            (n, _) => n.name(),
        };
        let mut line = format!(
            "sandbox files={files} processes={processes} limits={limits} network={network}"
        );
        if !self.missing.is_empty() {
            line.push_str(" missing: ");
            line.push_str(&self.missing.join("; "));
        }
        line
    }

    /// Whether something the configuration asks for is missing (for `sandbox.required`).
    pub fn incomplete(&self) -> Option<String> {
        (self.enabled && !self.missing.is_empty()).then(|| self.missing.join("; "))
    }

    /// Puts a configuration in force: shells whose customer changed are built anew at their
    /// next script (running scripts stay in the old one until they end), new limits are
    /// written in place, and removed customers' scripts are ended and their cgroups removed.
    pub fn reload(&self, config: &Config) {
        if !self.enabled {
            return;
        }
        let hidden = Arc::new(hidden(config));
        let specs: HashMap<String, Spec> = config
            .customers
            .iter()
            .map(|c| (c.name.clone(), spec(c, &hidden)))
            .collect();
        if let Ok(mut kept) = self.hidden.lock() {
            *kept = hidden;
        }
        if let Ok(mut shells) = self.shells.lock() {
            shells.retain(|name, entry| specs.get(name).is_some_and(|s| *s == entry.spec));
        }
        let removed: Vec<String> = match self.groups.lock() {
            Ok(mut groups) => {
                groups.retain(|_, g| g.strong_count() > 0);
                for (name, group) in groups.iter() {
                    if let Some(spec) = specs.get(name)
                        && let Some(group) = group.upgrade()
                        && let Err(e) = group.set_limits(&spec.limits)
                    {
                        tracing::error!(customer = %name, error = %e, "cannot set the customer's new limits");
                    }
                }
                groups.retain(|name, _| specs.contains_key(name));
                self.known_groups(&specs)
            }
            Err(_) => Vec::new(),
        };
        if let (false, Some(root)) = (removed.is_empty(), self.cgroups.clone()) {
            std::thread::spawn(move || removed.iter().for_each(|n| root.remove_group(n)));
        }
    }

    /// The customers whose cgroup directories exist but who are not in `specs` any more.
    fn known_groups(&self, specs: &HashMap<String, Spec>) -> Vec<String> {
        let Some(root) = &self.cgroups else {
            return Vec::new();
        };
        root.names()
            .into_iter()
            .filter(|n| !specs.contains_key(n))
            .collect()
    }

    /// Customer `index`'s shell, built now if it is not yet; `Ok(None)` when the sandbox is
    /// off.
    pub async fn shell(
        self: &Arc<Self>,
        config: &Config,
        index: usize,
    ) -> Result<Option<Arc<Shell>>, String> {
        if !self.enabled {
            return Ok(None);
        }
        let Some(customer) = config.customers.get(index) else {
            return Ok(None);
        };
        let entry = {
            let mut shells = self
                .shells
                .lock()
                .map_err(|_| "the sandbox registry is broken".to_string())?;
            match shells.get(&customer.name) {
                Some(entry) => entry.clone(),
                None => {
                    let hidden = match self.hidden.lock() {
                        Ok(h) => h.clone(),
                        Err(_) => Arc::new(hidden(config)),
                    };
                    let entry = Arc::new(Entry {
                        spec: spec(customer, &hidden),
                        shell: tokio::sync::OnceCell::new(),
                        used: std::sync::atomic::AtomicU64::new(0),
                    });
                    shells.insert(customer.name.clone(), entry.clone());
                    entry
                }
            }
        };
        entry
            .used
            .store(self.now(), std::sync::atomic::Ordering::Relaxed);
        let shell = entry
            .shell
            .get_or_try_init(|| {
                let this = self.clone();
                let spec = entry.spec.clone();
                async move {
                    let name = spec.name.clone();
                    let built = tokio::task::spawn_blocking(move || this.build(&spec))
                        .await
                        .map_err(|e| format!("building the sandbox failed: {e}"))?;
                    match &built {
                        Ok(_) => tracing::info!(customer = %name, "sandbox built"),
                        Err(e) => tracing::error!(customer = %name, error = %e, "cannot build the customer's sandbox"),
                    }
                    built.map(Arc::new)
                }
            })
            .await?;
        Ok(Some(shell.clone()))
    }

    /// Seconds since the server started.
    fn now(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// Releases the shells no script has asked for in [`IDLE`]; returns how many. Scripts
    /// running in one keep it until they end.
    pub fn release_idle(&self) -> usize {
        let now = self.now();
        let Ok(mut shells) = self.shells.lock() else {
            return 0;
        };
        let before = shells.len();
        shells.retain(|_, e| {
            now.saturating_sub(e.used.load(std::sync::atomic::Ordering::Relaxed)) < IDLE.as_secs()
        });
        before - shells.len()
    }

    /// Builds one shell (blocking: mounts, cgroup files).
    fn build(&self, spec: &Spec) -> Result<Shell, String> {
        let group = match &self.cgroups {
            Some(root) => Some(self.group(root, spec)?),
            None => None,
        };
        let net = match spec.network {
            Network::None => self.no_network.clone(),
            Network::Host => None,
        };
        if self.namespaces {
            let built = mounts::build(spec.plan.clone(), self.landlock)?;
            return Ok(Shell {
                mnt: Some(built.mnt),
                ipc: Some(built.ipc),
                net,
                landlock: built.landlock,
                group,
                new_pid: self.pid_namespace,
            });
        }
        let landlock = match self.landlock {
            Some(abi) => Some(unprivileged_rules(abi, spec)?),
            None => None,
        };
        Ok(Shell {
            mnt: None,
            ipc: None,
            net: None,
            landlock,
            group,
            new_pid: false,
        })
    }

    /// The customer's cgroup, made on first use.
    fn group(&self, root: &cgroup::Root, spec: &Spec) -> Result<Arc<cgroup::Group>, String> {
        let mut groups = self
            .groups
            .lock()
            .map_err(|_| "the cgroup registry is broken".to_string())?;
        if let Some(g) = groups.get(&spec.name).and_then(std::sync::Weak::upgrade) {
            return Ok(g);
        }
        let group = root
            .group(&spec.name, &spec.limits)
            .map_err(|e| format!("the customer's cgroup: {e}"))?;
        let group = Arc::new(group);
        groups.insert(spec.name.clone(), Arc::downgrade(&group));
        Ok(group)
    }

    /// Ends every customer's scripts and removes the server's cgroups (the server stops).
    pub fn shutdown(&self) {
        if let Some(root) = &self.cgroups {
            root.remove();
        }
    }
}

/// What `yadokari explain` says of a customer's scripts: the isolation a server started now by
/// this user would give them (probed without building anything).
pub fn forecast(config: &Config, customer: &Customer) -> String {
    if !config.sandbox.enabled {
        return "off (sandbox.enabled = false): the script sees whatever its user may read".into();
    }
    // SAFETY: geteuid only reads this process's credentials.
    let root = unsafe { libc::geteuid() } == 0;
    let landlock = landlock::abi().is_ok();
    let files = match (root, landlock) {
        (true, true) => {
            "its own mount namespace (the system read-only, only its home) and Landlock"
        }
        (true, false) => "its own mount namespace (the system read-only, only its home)",
        (false, true) => "Landlock only (reads limited to the system and its home)",
        (false, false) => "none",
    };
    let processes = if root && config.sandbox.pid_namespace {
        "a pid namespace per request"
    } else {
        "its process group"
    };
    let shell = &customer.shell;
    let limits = match (config.sandbox.limits, root, cgroup::detect()) {
        (false, _, _) => "none (sandbox.limits = false)".to_string(),
        (true, false, _) => "none (needs root)".to_string(),
        (true, true, Err(e)) => format!("none ({e})"),
        (true, true, Ok((version, ..))) => format!(
            "cgroup {}: memory {}, {} processes, cpu weight {}",
            if version == cgroup::Version::V2 {
                "v2"
            } else {
                "v1"
            },
            if shell.memory_bytes == 0 {
                "unlimited".to_string()
            } else {
                size(shell.memory_bytes)
            },
            if shell.processes == 0 {
                "unlimited".to_string()
            } else {
                shell.processes.to_string()
            },
            shell.cpu_weight
        ),
    };
    format!(
        "customer {}: files: {files}; processes: {processes}; limits: {limits}; network: {}",
        customer.name,
        shell.network.name()
    )
}

/// A customer's spec: `hidden` (see [`hidden`]) without the places inside their own home.
fn spec(customer: &Customer, hidden: &[PathBuf]) -> Spec {
    Spec {
        name: customer.name.clone(),
        plan: mounts::Plan {
            home: customer.home.clone(),
            hidden: hidden
                .iter()
                .filter(|p| !p.starts_with(&customer.home))
                .cloned()
                .collect(),
            tmp_bytes: customer.shell.tmp_bytes,
        },
        network: customer.shell.network,
        limits: customer.shell,
    }
}

/// The places customers' scripts must not see, worked out once per configuration: the homes'
/// directory, the directories that hold customers' homes elsewhere (`site = DIR`: covering the
/// directory that holds them, not each home, keeps a shell at a few mounts with thousands of
/// customers, and a customer added there changes no other customer's shell), the server's
/// document root, configuration, certificates, ACME state and logs. Each customer's shell
/// leaves out what lies inside their own home ([`spec`]); a place that holds the system (`/`,
/// `/var/lib`, `/opt`, ...) is never covered, and a home directly inside one is covered itself.
fn hidden(config: &Config) -> Vec<PathBuf> {
    const SYSTEM: [&str; 11] = [
        "/usr", "/etc", "/bin", "/lib", "/dev", "/proc", "/sys", "/tmp", "/var/lib", "/opt", "/run",
    ];
    let holds_system = |p: &Path| SYSTEM.iter().any(|s| Path::new(s).starts_with(p));
    let mut places: Vec<PathBuf> = Vec::new();
    places.extend(config.hosting.homes.iter().cloned());
    places.push(config.document_root.clone());
    places.extend(config.source_dir.iter().cloned());
    places.extend(config.tls.directory.iter().cloned());
    if let Some(files) = &config.tls.default {
        places.extend(files.certificate.parent().map(Path::to_path_buf));
        places.extend(files.key.parent().map(Path::to_path_buf));
    }
    places.extend(config.acme.iter().map(|a| a.state.clone()));
    for log in [&config.access_log, &config.error_log] {
        if let crate::config::LogTarget::File(path) = log {
            places.extend(path.parent().map(Path::to_path_buf));
        }
    }
    let mut out: Vec<PathBuf> = places
        .into_iter()
        .filter_map(|p| std::fs::canonicalize(p).ok())
        .filter(|p| !holds_system(p))
        .collect();
    // Homes are canonical already (the configuration made them so).
    let in_homes = |home: &Path| {
        config
            .hosting
            .homes
            .as_ref()
            .is_some_and(|h| home.starts_with(h))
    };
    for home in config
        .customers
        .iter()
        .map(|c| &c.home)
        .filter(|h| !in_homes(h))
    {
        match home.parent().filter(|p| !holds_system(p)) {
            Some(parent) => out.push(parent.to_path_buf()),
            None if !holds_system(home) => out.push(home.clone()),
            None => {}
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Without namespaces: a Landlock ruleset that allows reading only the system's directories
/// and writing only the home (and `/tmp`, unless a home or the server's files are under it,
/// as they are in a test's temporary directory: then `/tmp` is left out).
fn unprivileged_rules(abi: u32, spec: &Spec) -> Result<OwnedFd, String> {
    let system: Vec<&Path> = [
        "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt", "/var/lib",
        "/run", "/proc", "/sys",
    ]
    .iter()
    .map(Path::new)
    .collect();
    let tmp = Path::new("/tmp");
    let tmp_shared =
        spec.plan.hidden.iter().any(|p| p.starts_with(tmp)) || spec.plan.home.starts_with(tmp);
    let mut write: Vec<&Path> = vec![&spec.plan.home];
    if !tmp_shared {
        write.push(tmp);
    }
    landlock::ruleset(
        abi,
        &landlock::Rules {
            read: &system,
            write: &write,
            devices: &[Path::new("/dev")],
            no_tcp: spec.network == Network::None,
        },
    )
    .map_err(|e| format!("the Landlock ruleset: {e}"))
}

/// A network namespace with nothing in it (its loopback stays down), made once by a thread of
/// its own and held by its descriptor.
fn empty_network() -> Result<OwnedFd, String> {
    std::thread::Builder::new()
        .name("sandbox-net".into())
        .spawn(|| {
            // SAFETY: unshare affects only this thread, which ends right after.
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                return Err(format!(
                    "unshare(network): {} (a container without CAP_SYS_ADMIN?)",
                    std::io::Error::last_os_error()
                ));
            }
            std::fs::File::open("/proc/thread-self/ns/net")
                .map(OwnedFd::from)
                .map_err(|e| format!("opening the network namespace: {e}"))
        })
        .map_err(|e| format!("cannot start a thread: {e}"))?
        .join()
        .unwrap_or_else(|_| Err("building the network namespace panicked".into()))
}

/// A byte count for people: `64 MiB`, `1.5 GiB`, `300 KiB`.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["bytes", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 || value.fract() == 0.0 {
        format!("{} {}", value as u64, UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// The directory of a script as a C path, for the child's `chdir` inside a mount namespace.
pub fn c_dir(dir: &Path) -> Option<CString> {
    CString::new(dir.as_os_str().as_bytes()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn homes_elsewhere_are_covered_by_the_directory_that_holds_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = std::fs::canonicalize(dir.path()).expect("canonical");
        for d in ["htdocs", "sites/a", "sites/b", "sites/c"] {
            std::fs::create_dir_all(root.join(d)).expect("mkdir");
        }
        let users: String = ["a", "b", "c"]
            .iter()
            .map(|n| format!("[[users]]\nname = \"{n}\"\nsite = \"sites/{n}\"\n"))
            .collect();
        let file = root.join("y.toml");
        std::fs::write(&file, users).expect("write");
        let config = Config::load(Some(&file), &crate::config::Overrides::default()).expect("load");
        let places = hidden(&config);
        assert_eq!(
            places
                .iter()
                .filter(|p| p.starts_with(root.join("sites")))
                .count(),
            1,
            "one place for three homes: {places:?}"
        );
        let a = spec(&config.customers[0], &places);
        assert!(
            a.plan.hidden.contains(&root.join("sites")),
            "{:?}",
            a.plan.hidden
        );
        assert!(a.plan.hidden.contains(&root.join("htdocs")));
        assert!(
            a.plan
                .hidden
                .iter()
                .all(|p| !p.starts_with(root.join("sites/a")))
        );
    }

    #[test]
    fn sizes_read_like_a_person_wrote_them() {
        assert_eq!(size(64 * 1024 * 1024), "64 MiB");
        assert_eq!(size(1536 * 1024 * 1024), "1.5 GiB");
        assert_eq!(size(300 * 1024), "300 KiB");
        assert_eq!(size(12), "12 bytes");
    }
}
