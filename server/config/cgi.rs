//! The `[cgi]` section: which files are scripts, how long they may take, who they run as and
//! under which resource limits, checked once.

use std::path::PathBuf;
use std::time::Duration;

use super::raw::RawCgi;
use super::{ConfigError, Origin};

/// CGI settings.
#[derive(Clone, Debug)]
pub struct Cgi {
    /// URL directories whose regular files are all scripts, as segments (`/cgi-bin/` → `cgi-bin`).
    pub directories: Vec<Vec<Vec<u8>>>,
    /// File name endings that make a file a script anywhere (`.cgi`).
    pub extensions: Vec<String>,
    /// File name endings run through an interpreter (`.php` → `/usr/bin/php-cgi`).
    pub handlers: Vec<(String, PathBuf)>,
    /// Pass `Authorization` to scripts as `HTTP_AUTHORIZATION` (Apache's `CGIPassAuth`).
    pub pass_authorization: bool,
    /// How long a script may take to send its header block (504 after it).
    pub header_timeout: Duration,
    /// How long a script may run in all.
    pub run_timeout: Duration,
    /// Scripts running at once.
    pub max_concurrent: usize,
    /// How long a request waits for a free script slot before 503.
    pub queue_wait: Duration,
    /// Largest header block a script may send, in bytes.
    pub max_header_bytes: usize,
    /// Lowest uid that counts as an ordinary user (runs as itself when the server is root).
    pub min_uid: u32,
    /// The account scripts owned by root or system accounts run as when the server is root.
    pub fallback_user: String,
    /// A script's resource limits (a customer's entry may override them).
    pub limits: ScriptLimits,
}

/// The resource limits a script is started with (0: leave as inherited).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScriptLimits {
    /// RLIMIT_CPU, seconds.
    pub cpu_secs: u64,
    /// RLIMIT_AS, bytes.
    pub memory_bytes: u64,
    /// RLIMIT_NOFILE.
    pub open_files: u64,
    /// RLIMIT_NPROC (it counts every process of the script's user).
    pub processes: u64,
}

/// The `[cgi]` section, checked: URL directories, extensions, absolute interpreters.
pub(super) fn cgi(c: RawCgi, origin: &Origin) -> Result<Cgi, ConfigError> {
    let mut directories = Vec::new();
    for d in &c.directories {
        let path = crate::url::parse(d)
            .ok()
            .filter(|p| !p.segments.is_empty())
            .ok_or_else(|| {
                origin.err(
                    "cgi.directories",
                    format!("`{d}` is not a URL directory like /cgi-bin/"),
                )
            })?;
        directories.push(path.segments);
    }
    let extension = |e: &str| e.starts_with('.') && e.len() >= 2;
    if let Some(e) = c.extensions.iter().find(|e| !extension(e)) {
        return Err(origin.err("cgi.extensions", format!("`{e}` must look like \".cgi\"")));
    }
    let mut handlers = Vec::new();
    for (ext, interp) in &c.handlers {
        if !extension(ext) {
            return Err(origin.err("cgi.handlers", format!("`{ext}` must look like \".php\"")));
        }
        if !interp.is_absolute() {
            return Err(origin.err(
                "cgi.handlers",
                format!("the interpreter for `{ext}` must be an absolute path"),
            ));
        }
        handlers.push((ext.clone(), interp.clone()));
    }
    origin.positive("cgi.header_timeout_secs", c.header_timeout_secs)?;
    origin.positive("cgi.run_timeout_secs", c.run_timeout_secs)?;
    origin.positive("cgi.max_concurrent", c.max_concurrent as u64)?;
    if c.max_header_bytes < 1024 {
        return Err(origin.err("cgi.max_header_bytes", "must be at least 1024"));
    }
    account_exists(&c.fallback_user).map_err(|problem| origin.err("cgi.fallback_user", problem))?;
    Ok(Cgi {
        directories,
        extensions: c.extensions,
        handlers,
        pass_authorization: c.pass_authorization,
        header_timeout: Duration::from_secs(c.header_timeout_secs),
        run_timeout: Duration::from_secs(c.run_timeout_secs),
        max_concurrent: c.max_concurrent,
        queue_wait: Duration::from_millis(c.queue_wait_ms),
        max_header_bytes: c.max_header_bytes,
        min_uid: c.min_uid,
        fallback_user: c.fallback_user,
        limits: ScriptLimits {
            cpu_secs: c.limit_cpu_secs,
            memory_bytes: c.limit_memory_bytes,
            open_files: c.limit_open_files,
            processes: c.limit_processes,
        },
    })
}

/// `cgi.fallback_user` names an account of this system.
fn account_exists(name: &str) -> Result<(), String> {
    match nix::unistd::User::from_name(name) {
        Ok(Some(_)) => Ok(()),
        _ => Err(format!(
            "there is no user `{name}` on this system (scripts owned by root or system accounts run as it)"
        )),
    }
}
