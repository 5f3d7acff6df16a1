//! A running script, owned: whoever holds the [`Child`] is responsible for it, and dropping it
//! kills the script's whole process group and reaps it. No zombie, no leftover.

use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::time::Instant;

use super::slots::Slot;
use super::spawn::{self, ExitStatus, Spawned};

/// A script process, its process group, and the concurrency slot it occupies.
pub struct Child {
    pid: i32,
    pidfd: Option<AsyncFd<OwnedFd>>,
    status: Option<ExitStatus>,
    /// When it was started (its run time goes to the metrics when it is reaped).
    started: std::time::Instant,
    /// Held until the script is reaped: its concurrency slot and its place among the running.
    _slot: Option<Slot>,
}

impl Child {
    /// Takes ownership of a freshly spawned process.
    pub fn new(spawned: Spawned, mut slot: Slot) -> std::io::Result<Child> {
        let pid = spawned.pid;
        slot.register(pid);
        // SAFETY: the OwnedFd is moved into the AsyncFd, which alone owns and closes it.
        let registered = unsafe {
            AsyncFd::register_with_interest(spawned.pidfd, tokio::io::Interest::READABLE)
        };
        let pidfd = match registered {
            Ok(fd) => fd,
            Err(e) => {
                // Registration failed: still never leave the process behind.
                spawn::kill_group(pid);
                let (fd, error) = e.into_parts();
                let _ = spawn::try_reap(fd.as_fd());
                return Err(error);
            }
        };
        Ok(Child {
            pid,
            pidfd: Some(pidfd),
            status: None,
            started: std::time::Instant::now(),
            _slot: Some(slot),
        })
    }

    /// The script's pid (and process group id).
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// How it ended, once it has been reaped.
    pub fn status(&self) -> Option<ExitStatus> {
        self.status
    }

    /// Resolves when the script itself (the group leader) has exited. It is not reaped yet, so
    /// its process group id cannot be recycled while we may still signal the group.
    pub async fn exited(&self) {
        if let Some(fd) = &self.pidfd {
            // A pidfd becomes readable exactly when the process has exited, and stays so.
            let _ = fd.readable().await;
        }
    }

    /// Polls for the leader's exit (see [`Child::exited`]).
    pub fn poll_exited(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        match &self.pidfd {
            Some(fd) => fd.poll_read_ready(cx).map(|_| ()),
            None => std::task::Poll::Ready(()),
        }
    }

    /// Kills every process left in the group, then reaps the leader (which must have exited, or
    /// is being killed with the group). Idempotent.
    pub async fn kill_and_reap(&mut self) {
        if self.pidfd.is_none() {
            return;
        }
        spawn::kill_group(self.pid);
        self.exited().await;
        self.reap_now();
    }

    /// Kills the group now and reaps without waiting; used when the leader is known to have
    /// exited or from `Drop`.
    fn reap_now(&mut self) {
        if let Some(fd) = &self.pidfd
            && let Some(status) = spawn::try_reap(fd.get_ref().as_fd())
        {
            self.status = Some(status);
            self.pidfd = None;
            // A script's run time (not that of an unmetered process, such as a deploy's).
            if self._slot.take().is_some_and(|slot| slot.is_script()) {
                crate::metrics::script_ended(self.started.elapsed());
            }
        }
    }

    /// Lets a script that has finished its output run on until `deadline` (e.g. to finish
    /// writing a file), then kills whatever is left and reaps it.
    pub async fn finish(mut self, deadline: Instant) {
        let _ = tokio::time::timeout_at(deadline, self.exited()).await;
        self.kill_and_reap().await;
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if self.pidfd.is_none() {
            return;
        }
        spawn::kill_group(self.pid);
        self.reap_now();
        if self.pidfd.is_none() {
            return;
        }
        // Not dead yet (SIGKILL is asynchronous): reap it in the background.
        let pidfd = self.pidfd.take();
        let slot = self._slot.take();
        let (pid, started) = (self.pid, self.started);
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn(async move {
                    let mut child = Child {
                        pid,
                        pidfd,
                        status: None,
                        started,
                        _slot: slot,
                    };
                    child.kill_and_reap().await;
                });
            }
            Err(_) => {
                // No runtime (shutting down): wait briefly in place.
                if let Some(fd) = pidfd {
                    for _ in 0..100 {
                        if spawn::try_reap(fd.get_ref().as_fd()).is_some() {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
            }
        }
    }
}
