//! The process's budget of file descriptors. Every connection, open static file, script pipe
//! and SFTP handle takes one; under the common soft limit of 1,024 a busy server ran out and
//! answered 404 for files that exist. So: the soft limit is raised to the hard one at start,
//! the configured caps are checked against it (a configuration that cannot be honoured is
//! refused with the numbers), and running out anyway is a 503, never a 404.

use std::io;

use crate::config::Config;

/// Descriptors the server holds whatever its load: listeners, the runtime's, logs, the jail.
const BASE: u64 = 64;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the limit now in force.
pub fn raise_limit() -> io::Result<u64> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    }
    Ok(hard.max(soft))
}

/// How many descriptors the configured caps may take at once: each HTTP connection with a
/// file open, each running script with its pipes and pidfd, each SSH connection (its socket,
/// the copy that watches for a hang-up, a file in transfer), and one SFTP session's handles.
pub fn needed(config: &Config) -> u64 {
    reserved(config) + config.sftp_settings.limits.max_handles as u64
}

/// Everything but SFTP handles.
fn reserved(config: &Config) -> u64 {
    BASE + config.limits.max_connections as u64 * 2
        + config.cgi.max_concurrent as u64 * 4
        + config.sftp_settings.limits.max_connections as u64 * 3
}

/// How many SFTP handles all sessions together may hold: what the descriptor limit leaves
/// after everything else (at least one session's worth, which [`check`] made sure fits), so
/// that one user's many handles never starve HTTP, scripts or new logins.
pub fn sftp_handles(config: &Config) -> usize {
    use nix::sys::resource::{Resource, getrlimit};
    let limit = getrlimit(Resource::RLIMIT_NOFILE).map_or(u64::MAX, |(soft, _)| soft);
    let left = limit.saturating_sub(reserved(config));
    let floor = config.sftp_settings.limits.max_handles as u64;
    usize::try_from(left.max(floor)).unwrap_or(usize::MAX)
}

/// Refuses caps that the descriptor limit cannot honour, naming both.
pub fn check(config: &Config, limit: u64) -> Result<(), String> {
    let needed = needed(config);
    if needed <= limit {
        return Ok(());
    }
    Err(format!(
        "the configured caps need up to {needed} file descriptors (limits.max_connections × 2 + \
         cgi.max_concurrent × 4 + sftp.max_connections × 3 + sftp.max_handles + {BASE}), but this \
         process may open only {limit}: lower those settings, or raise the hard limit (ulimit -Hn, \
         LimitNOFILE= in a systemd unit)"
    ))
}

/// Whether `error` means the process or the system is out of descriptors (or of the memory
/// to make one): a 503, since it passes, rather than a missing file.
pub fn exhausted(error: &io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOMEM)
    )
}
