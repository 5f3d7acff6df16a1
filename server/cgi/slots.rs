//! Script slots: `cgi.max_concurrent` scripts at once, and the pids of those running, which
//! the reaper must leave alone (`crate::reaper`). A slot is taken before the spawn and given
//! back when the script is reaped.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::failure::Failure;

/// The script slots (`cgi.max_concurrent`): a semaphore, how many permits it was made with,
/// and the pids of the scripts running now (which the reaper must leave alone).
pub struct ScriptSlots {
    semaphore: Arc<Semaphore>,
    size: usize,
    running: Running,
}

impl ScriptSlots {
    /// `size` slots.
    pub fn new(size: usize) -> ScriptSlots {
        ScriptSlots {
            semaphore: Arc::new(Semaphore::new(size)),
            size,
            running: Running::default(),
        }
    }

    /// The scripts running now.
    pub fn running(&self) -> Running {
        self.running.clone()
    }

    /// A slot, waiting at most `wait`; `Busy` when none came free.
    pub(super) async fn take(&self, wait: std::time::Duration) -> Result<Slot, Failure> {
        match tokio::time::timeout(wait, self.semaphore.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(Slot {
                _permit: permit,
                running: self.running.clone(),
                pid: None,
            }),
            _ => Err(Failure::Busy { slots: self.size }),
        }
    }
}

/// The pids of the scripts that have been started and not yet reaped.
#[derive(Clone, Default)]
pub struct Running(Arc<std::sync::Mutex<std::collections::HashSet<i32>>>);

impl Running {
    /// A copy of the set, taken under its lock.
    pub fn pids(&self) -> std::collections::HashSet<i32> {
        self.0.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

/// A script slot, held from before the spawn until the script is reaped; the script's pid is
/// in [`Running`] for as long as the slot holds it.
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    running: Running,
    pid: Option<i32>,
}

impl Slot {
    /// Records the script that now occupies the slot.
    pub(super) fn register(&mut self, pid: i32) {
        if let Ok(mut set) = self.running.0.lock() {
            set.insert(pid);
            self.pid = Some(pid);
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(pid) = self.pid
            && let Ok(mut set) = self.running.0.lock()
        {
            set.remove(&pid);
        }
    }
}
