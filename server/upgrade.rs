//! Upgrades and restarts that drop nothing (SIGUSR2), as nginx's binary upgrade does: the
//! binary now on disk is started as a child that inherits the listening sockets (the
//! `LISTEN_FDS` convention of socket activation, see `crate::systemd`), the old server waits
//! for it to say `READY=1` on a notify socket of its own, then stops accepting and drains
//! exactly as on SIGTERM (in-flight responses, scripts and SFTP transfers finish within the
//! grace period; the kernel's accept queue, shared by both, never stops being served). A new
//! binary that fails to start, exits, or is not ready in time is killed and the old one keeps
//! serving, with the reason in the log; a second SIGUSR2 during an upgrade is refused.
//!
//! `LISTEN_PID` must be the new process's own pid, unknown before it exists: the child is
//! started through `/bin/sh -c 'LISTEN_PID=$$ exec "$0" "$@"'`, whose `$$` is the pid the
//! server keeps across `exec` (systemd sets it between its fork and exec the same way).

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How long a new binary may take to say it is ready.
const READY_WITHIN: Duration = Duration::from_secs(30);

/// What an upgrade hands over: the listening sockets (duplicates, held for the purpose) and
/// how the server was started.
pub struct Handover {
    /// `(name, socket)`: `http`, `sftp`, and `https` and `admin` when there are.
    sockets: Vec<(&'static str, OwnedFd)>,
    /// The binary's path as it was at start (the file there now is what an upgrade runs).
    binary: PathBuf,
    /// The arguments after the program name.
    args: Vec<std::ffi::OsString>,
    /// An upgrade is in progress.
    busy: AtomicBool,
}

impl Handover {
    /// Keeps duplicates of the listeners for a later upgrade.
    pub fn new(sockets: Vec<(&'static str, OwnedFd)>) -> std::io::Result<Handover> {
        Ok(Handover {
            sockets,
            binary: binary_path()?,
            args: std::env::args_os().skip(1).collect(),
            busy: AtomicBool::new(false),
        })
    }

    /// Starts the binary on disk with the sockets and waits until it is ready: `Ok(pid)` of
    /// the new server (the caller then drains and exits), or why not (the child is gone).
    pub async fn upgrade(&self) -> Result<i32, String> {
        if self.busy.swap(true, Ordering::SeqCst) {
            return Err("an upgrade is already in progress; this one is ignored".into());
        }
        let result = self.start_and_wait().await;
        if result.is_err() {
            self.busy.store(false, Ordering::SeqCst);
        }
        result
    }

    async fn start_and_wait(&self) -> Result<i32, String> {
        if !self.binary.is_file() {
            return Err(format!("{} is not there", self.binary.display()));
        }
        let dir = tempfile::Builder::new()
            .prefix("yadokari-upgrade.")
            .tempdir()
            .map_err(|e| format!("a directory for the notify socket: {e}"))?;
        let notify_path = dir.path().join("notify");
        let notify = tokio::net::UnixDatagram::bind(&notify_path)
            .map_err(|e| format!("the notify socket: {e}"))?;
        let mut child = Starting {
            child: self.spawn(&notify_path)?,
            ready: false,
        };
        let pid = child.child.id().map_or(0, |p| p as i32);
        crate::reaper::spare(pid);
        tracing::info!(pid, binary = %self.binary.display(), "upgrade: started the new binary; waiting for it to be ready");
        let waited = tokio::time::timeout(READY_WITHIN, ready(&notify, &mut child.child)).await;
        let failure = match waited {
            Ok(Ok(())) => {
                child.ready = true;
                return Ok(pid);
            }
            Ok(Err(e)) => e,
            Err(_) => format!(
                "it did not say it was ready within {} s",
                READY_WITHIN.as_secs()
            ),
        };
        let _ = child.child.start_kill();
        let _ = child.child.wait().await;
        crate::reaper::unspare(pid);
        Err(failure)
    }

    /// The child: `sh` sets `LISTEN_PID` to its own pid and execs the binary; the sockets at
    /// descriptors 3, 4, ... (not close-on-exec), named in `LISTEN_FDNAMES`.
    fn spawn(&self, notify: &std::path::Path) -> Result<tokio::process::Child, String> {
        let names: Vec<&str> = self.sockets.iter().map(|(n, _)| *n).collect();
        let fds: Vec<RawFd> = self.sockets.iter().map(|(_, f)| f.as_raw_fd()).collect();
        let mut cmd = std::process::Command::new("/bin/sh");
        cmd.arg("-c")
            .arg("LISTEN_PID=$$ exec \"$0\" \"$@\"")
            .arg(&self.binary)
            .args(&self.args)
            .env("LISTEN_FDS", fds.len().to_string())
            .env("LISTEN_FDNAMES", names.join(":"))
            .env("NOTIFY_SOCKET", notify)
            .envs(crate::systemd::service_environment())
            .env_remove("LISTEN_PID")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .stdin(std::process::Stdio::null());
        // SAFETY: only dup2/fcntl/setsid, which are async-signal-safe, on descriptors this
        // process holds; the vector is read, not allocated, in the child.
        unsafe {
            cmd.pre_exec(move || place_sockets(&fds));
        }
        tokio::process::Command::from(cmd)
            .kill_on_drop(false)
            .spawn()
            .map_err(|e| format!("cannot start /bin/sh for {}: {e}", self.binary.display()))
    }
}

/// Where this server's binary was started from. Once a package upgrade has replaced the file,
/// the kernel names the running one `PATH (deleted)`; the file at PATH is the one an upgrade
/// runs, so the suffix is dropped.
fn binary_path() -> std::io::Result<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::env::current_exe()?;
    let bytes = path.as_os_str().as_bytes();
    Ok(match bytes.strip_suffix(b" (deleted)") {
        Some(kept) => PathBuf::from(std::ffi::OsStr::from_bytes(kept)),
        None => path,
    })
}

/// A new server: killed when dropped before it said it was ready (the wait was abandoned:
/// the old server stops first, or the upgrade failed).
struct Starting {
    child: tokio::process::Child,
    ready: bool,
}

impl Drop for Starting {
    fn drop(&mut self) {
        if !self.ready {
            let _ = self.child.start_kill();
        }
    }
}

/// In the child before exec: its own session (a signal to the old server's process group
/// does not reach it), and the sockets moved to 3, 4, ... in order. Each is first copied above
/// every target, so that placing one never overwrites another still to be placed.
fn place_sockets(fds: &[RawFd]) -> std::io::Result<()> {
    const ABOVE: RawFd = 1000;
    // SAFETY: plain descriptor calls in the forked child.
    unsafe {
        libc::setsid();
        let mut high = [0 as RawFd; 8];
        for (i, &fd) in fds.iter().enumerate().take(high.len()) {
            let copy = libc::fcntl(fd, libc::F_DUPFD, ABOVE);
            if copy < 0 {
                return Err(std::io::Error::last_os_error());
            }
            high[i] = copy;
        }
        for (i, &copy) in high.iter().enumerate().take(fds.len()) {
            if libc::dup2(copy, 3 + i as RawFd) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::close(copy);
        }
    }
    Ok(())
}

/// Waits for `READY=1` on `notify`, or for the child to exit first.
async fn ready(
    notify: &tokio::net::UnixDatagram,
    child: &mut tokio::process::Child,
) -> Result<(), String> {
    let mut buf = vec![0u8; 4096];
    loop {
        tokio::select! {
            got = notify.recv(&mut buf) => {
                let n = got.map_err(|e| format!("the notify socket: {e}"))?;
                if String::from_utf8_lossy(&buf[..n]).lines().any(|l| l == "READY=1") {
                    return Ok(());
                }
            }
            status = child.wait() => {
                return Err(match status {
                    Ok(s) => format!("the new binary ended before it was ready ({s})"),
                    Err(e) => format!("the new binary: {e}"),
                });
            }
        }
    }
}
