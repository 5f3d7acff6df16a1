//! Per-customer logs, as on every rental server: a customer whose home has a `logs/` directory
//! gets `logs/access.log` (the Combined line the global access log gets for each request routed
//! to their site) and `logs/error.log` (their site's refusals with reason and fix, their
//! scripts' stderr, their SFTP transfer lines) there, readable over SFTP. The global logs keep
//! every line as before; a home without `logs/` (the shipped demo's) gets nothing.
//!
//! The pieces, in the order a line travels:
//! - [`layer`]: a tracing layer that finds the `customer` field in an event's span scope (the
//!   request span records it after routing; the SFTP session's span has it from the start) and
//!   hands the formatted event to that customer's error log; `crate::access_log` hands the
//!   Combined line of a routed request to their access log.
//! - [`CustomerLog`] (`log.rs`): what a request pays, an append to a buffer under a mutex;
//!   the flush, on the access log's timer ([`crate::access_log::FLUSH_EVERY`]) and at exit,
//!   on a blocking-pool thread.
//! - `files.rs`: the files themselves, opened lazily on the first line and closed after
//!   [`IDLE`] without one, so idle customers cost nothing; rotated by size.
//!
//! SECURITY: the customer controls `logs/`. Every open and rename there is done beneath the
//! home with no symlink followed, on a thread that has taken the home owner's file-system
//! identity, and what was opened must be a regular file of that owner with one link (see
//! `files.rs`): a symlink, FIFO or hard link planted at a log's name is refused with a warning
//! in the global error log, never written through with root's rights.

mod files;
mod layer;
mod log;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

pub use layer::CustomerLayer;
pub use log::{CustomerLog, Stream};

use crate::config::Config;

/// The most rotated generations `hosting.log_generations` may ask for.
pub const MAX_GENERATIONS: u32 = 100;

/// How long a customer's log files stay open without a line.
pub const IDLE: Duration = Duration::from_secs(600);

/// How often open files are looked at for idleness when nothing was written.
const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// When a customer's log is rotated: `[hosting] log_max_bytes` and `log_generations`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rotation {
    /// A log that would pass this size with the next write is rotated first.
    pub max_bytes: u64,
    /// Rotated files kept (`access.log.1` .. `access.log.N`); the oldest is replaced.
    pub generations: u32,
}

impl Rotation {
    /// The renames that rotate `name`, in the order they must be done: the oldest kept
    /// generation is overwritten by the one before it, and so on down to `name` → `name.1`.
    pub fn renames(&self, name: &str) -> Vec<(String, String)> {
        let numbered = |k: u32| format!("{name}.{k}");
        let mut out: Vec<(String, String)> = (1..self.generations)
            .rev()
            .map(|k| (numbered(k), numbered(k + 1)))
            .collect();
        out.push((name.to_string(), numbered(1)));
        out
    }
}

/// What a customer's log depends on in the configuration: a log whose settings did not change
/// is kept, with its buffered lines and open files, across a reload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Settings {
    /// The customer's home, which holds `logs/`.
    home: std::path::PathBuf,
    rotation: Rotation,
    /// `cgi.min_uid`: a home owned by a lower uid is never written into as root.
    min_uid: u32,
}

/// Every customer's log, by customer name; rebuilt at each reload.
pub struct CustomerLogs {
    logs: RwLock<Arc<HashMap<String, Arc<CustomerLog>>>>,
    /// Logs of customers removed or changed by a reload, flushed once more and dropped.
    retired: Mutex<Vec<Arc<CustomerLog>>>,
    /// Whether there is any customer: without one, requests carry no customer span at all.
    active: AtomicBool,
    /// Set by every append: something waits for the next flush.
    dirty: Arc<AtomicBool>,
    /// Notified when a customer's buffer fills up: flush before the timer.
    wake: Arc<tokio::sync::Notify>,
    /// The last time open files were looked at for idleness.
    swept: Mutex<Instant>,
    /// One flush at a time, so that a customer's lines reach the file in order.
    flushing: Mutex<()>,
}

impl CustomerLogs {
    /// The logs of `config`'s customers (nothing is opened yet).
    pub fn new(config: &Config) -> CustomerLogs {
        let logs = CustomerLogs {
            logs: RwLock::default(),
            retired: Mutex::default(),
            active: AtomicBool::new(false),
            dirty: Arc::default(),
            wake: Arc::default(),
            swept: Mutex::new(Instant::now()),
            flushing: Mutex::new(()),
        };
        logs.rebuild(config);
        logs
    }

    /// Puts `config`'s customers in force, keeping the logs (buffers and open files) of those
    /// whose home and rotation did not change.
    pub fn rebuild(&self, config: &Config) {
        let old = self.current();
        let mut new = HashMap::new();
        for (name, home) in homes(config) {
            let settings = Settings {
                home: home.to_path_buf(),
                rotation: config.customer_logs,
                min_uid: config.cgi.min_uid,
            };
            let log = match old.get(name) {
                Some(log) if log.settings() == &settings => log.clone(),
                _ => {
                    let signals = (self.dirty.clone(), self.wake.clone());
                    Arc::new(CustomerLog::new(name, settings, signals))
                }
            };
            new.insert(name.to_string(), log);
        }
        let gone = old
            .iter()
            .filter(|(name, log)| new.get(*name).is_none_or(|n| !Arc::ptr_eq(n, log)))
            .map(|(_, log)| log.clone());
        lock(&self.retired).extend(gone);
        self.active.store(!new.is_empty(), Ordering::Relaxed);
        match self.logs.write() {
            Ok(mut l) => *l = Arc::new(new),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(new),
        }
    }

    /// The log of customer `name`.
    pub fn get(&self, name: &str) -> Option<Arc<CustomerLog>> {
        self.current().get(name).cloned()
    }

    /// Whether any customer is configured.
    pub fn active(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }

    /// Closes every open file (SIGHUP, after an outside rotation or a fix of `logs/`): the next
    /// line opens it again, and a customer whose log was refused is tried again at once.
    pub fn reopen(&self) {
        for log in self.current().values() {
            log.reopen();
        }
    }

    /// Resolves when a customer's buffer is filling up and should be flushed before the timer.
    pub async fn filling(&self) {
        self.wake.notified().await;
    }

    /// Writes out what is buffered, and closes files idle for [`IDLE`]. Blocks on file system
    /// calls: run it on a blocking-pool thread.
    pub fn flush(&self) {
        let _one = lock(&self.flushing);
        let now = Instant::now();
        for log in std::mem::take(&mut *lock(&self.retired)) {
            log.flush(now);
            log.reopen();
        }
        let sweep = {
            let mut swept = lock(&self.swept);
            let due = now.duration_since(*swept) >= SWEEP_EVERY;
            if due {
                *swept = now;
            }
            due
        };
        if self.dirty.swap(false, Ordering::AcqRel) || sweep {
            for log in self.current().values() {
                log.flush(now);
            }
        }
    }

    fn current(&self) -> Arc<HashMap<String, Arc<CustomerLog>>> {
        match self.logs.read() {
            Ok(l) => l.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

/// Each customer's name and home (their SFTP jail, which holds `logs/` beside the web root).
fn homes(config: &Config) -> impl Iterator<Item = (&str, &Path)> {
    config
        .customers
        .iter()
        .map(|c| (c.name.as_str(), c.home.as_path()))
}

/// A mutex's contents, even after a panic elsewhere: a log line is never worth a second panic.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_moves_every_generation_up_oldest_first() {
        let r = Rotation {
            max_bytes: 10,
            generations: 3,
        };
        let pairs: Vec<(String, String)> = [
            ("access.log.2", "access.log.3"),
            ("access.log.1", "access.log.2"),
            ("access.log", "access.log.1"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        assert_eq!(r.renames("access.log"), pairs);
        let one = Rotation {
            max_bytes: 10,
            generations: 1,
        };
        assert_eq!(
            one.renames("error.log"),
            vec![("error.log".to_string(), "error.log.1".to_string())]
        );
    }
}
