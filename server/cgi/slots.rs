//! Script slots: `cgi.max_concurrent` scripts at once, at most a customer's share of them for
//! one customer, and the pids of those running, which the reaper must leave alone
//! (`crate::reaper`). A slot is taken before the spawn and given back when the script is
//! reaped.
//!
//! The share is what keeps one customer's 64 slow scripts from starving everyone else's
//! requests: a customer at their cap waits (then gets 503) while the others' scripts still find
//! free slots.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::failure::Failure;

/// The script slots (`cgi.max_concurrent`): a semaphore, how many permits it was made with,
/// and the pids of the scripts running now (which the reaper must leave alone).
pub struct ScriptSlots {
    semaphore: Arc<Semaphore>,
    size: usize,
    running: Running,
    /// Each customer's share, by name and size (a reload that changes the size starts a new
    /// one; the old one's permits end with their scripts).
    shares: Mutex<HashMap<(String, usize), Arc<Semaphore>>>,
}

/// Whose script a slot is asked for: the customer's name and their share.
pub struct Share<'a> {
    pub customer: &'a str,
    pub max: usize,
}

/// Shares kept before the idle ones are let go.
const SHARES_KEPT: usize = 1024;

impl ScriptSlots {
    /// `size` slots.
    pub fn new(size: usize) -> ScriptSlots {
        ScriptSlots {
            semaphore: Arc::new(Semaphore::new(size)),
            size,
            running: Running::default(),
            shares: Mutex::new(HashMap::new()),
        }
    }

    /// The scripts running now.
    pub fn running(&self) -> Running {
        self.running.clone()
    }

    /// A slot, within the customer's share when `share` is given, waiting at most `wait` in
    /// all; `ShareBusy` or `Busy` when none came free.
    pub(super) async fn take(
        &self,
        wait: std::time::Duration,
        share: Option<Share<'_>>,
    ) -> Result<Slot, Failure> {
        let deadline = tokio::time::Instant::now() + wait;
        let own = match share {
            Some(share) => {
                let semaphore = self.share(&share);
                match tokio::time::timeout_at(deadline, semaphore.acquire_owned()).await {
                    Ok(Ok(permit)) => Some(permit),
                    _ => return Err(Failure::ShareBusy { share: share.max }),
                }
            }
            None => None,
        };
        match tokio::time::timeout_at(deadline, self.semaphore.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(Slot {
                permit: Some(permit),
                _share: own,
                running: self.running.clone(),
                pid: None,
            }),
            _ => Err(Failure::Busy { slots: self.size }),
        }
    }

    /// A place among the running for a process that is not a script and does not count
    /// against `max_concurrent` (a push deploy's program, limited by its SSH session slot):
    /// its pid is known as owned, so the reaper of scripts' leftovers leaves it alone.
    pub fn unmetered(&self) -> Slot {
        Slot {
            permit: None,
            _share: None,
            running: self.running.clone(),
            pid: None,
        }
    }

    /// The semaphore of `share`, made on its customer's first script.
    fn share(&self, share: &Share<'_>) -> Arc<Semaphore> {
        let mut shares = self.shares.lock().unwrap_or_else(|e| e.into_inner());
        let key = (share.customer.to_string(), share.max);
        if let Some(s) = shares.get(&key) {
            return s.clone();
        }
        if shares.len() >= SHARES_KEPT {
            // Only idle shares go: one with a script running keeps counting it.
            shares.retain(|(_, max), s| s.available_permits() < *max);
        }
        shares
            .entry(key)
            .or_insert_with(|| Arc::new(Semaphore::new(share.max)))
            .clone()
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
    /// The concurrency permit (`None`: a process outside the scripts' count, see
    /// [`ScriptSlots::unmetered`]).
    permit: Option<OwnedSemaphorePermit>,
    /// The customer's share, when the script is a customer's.
    _share: Option<OwnedSemaphorePermit>,
    running: Running,
    pid: Option<i32>,
}

impl Slot {
    /// Whether the slot is a script's (it counts against `max_concurrent`).
    pub fn is_script(&self) -> bool {
        self.permit.is_some()
    }

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
