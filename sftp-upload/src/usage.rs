//! What a user's site holds, and keeping that figure current.
//!
//! A count walks the real directory (`walk`, never following a link): bytes of regular files,
//! [`DIR_BYTES`] per directory, one entry per file or directory. [`count_usage`] is that count
//! for anyone who wants it (the binary shows it beside the quota); the endpoint keeps one
//! [`Tally`] per user, shared by all their sessions:
//!
//! - counted when a session first needs it (the first write of a user with a quota); those
//!   that need it meanwhile wait for that one count;
//! - kept current by the SFTP changes as they happen ([`Tally::change`]);
//! - recounted when it is needed again and the last count began at least the rescan interval
//!   ago (`sftp.quota_rescan_secs`), so that what scripts or anyone else wrote in the site
//!   counts too. A recount runs in the background: no session waits for it (the figure it
//!   replaces serves meanwhile), and there is never more than one per user at a time nor more
//!   than one per interval.
//!
//! Why changes made during a recount are added to its result: the walk may or may not have
//! seen each of them, and adding them errs on the side of the limit (a change is counted at
//! least once, at worst twice, for one interval, until the next recount) rather than letting a
//! site grow past its quota unseen.
//!
//! Counts run on a few threads of their own ([`Counter`]), started with the endpoint, so they
//! have the server's own identity rather than that of the session that asked: as root, a
//! directory its owner made unreadable (`chmod 000`) is counted all the same, and the figure is
//! the one `count_usage` gives the administrator. SECURITY: those threads only read directory
//! entries and their `lstat`, from the jail's root down, never following a link (so a link
//! planted in the site leads nowhere); nothing is opened for reading or writing but
//! directories, and all the customer learns is a total.

use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::sys::stat::{FileStat, Mode};

use crate::walk::walk_from;

/// What a directory counts for against the byte limit.
pub const DIR_BYTES: u64 = 4096;

/// What a site holds, counted as the quota counts it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Sizes of the regular files, plus [`DIR_BYTES`] per directory.
    pub bytes: u64,
    /// Regular files and directories (the site's root itself not included).
    pub files: u64,
}

impl Usage {
    fn apply(&mut self, c: Change) {
        self.bytes = self.bytes.saturating_add_signed(c.bytes);
        self.files = self.files.saturating_add_signed(c.files);
    }
}

/// Counts what the directory `site` holds, the way the quota does: everything below it,
/// without following links (a link counts for nothing). Directories that cannot be read are
/// passed over. Blocking; it takes as long as a walk of the whole tree.
pub fn count_usage(site: &Path) -> std::io::Result<Usage> {
    let root = nix::fcntl::open(
        site,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    Ok(count(&root))
}

/// Counts what the directory `root` (open for reading) holds.
pub(crate) fn count(root: &OwnedFd) -> Usage {
    let mut usage = Usage::default();
    walk_from(root, |_, _, st| {
        if let Some(bytes) = charge(st) {
            usage.bytes += bytes;
            usage.files += 1;
        }
    });
    usage
}

/// What an entry counts for in bytes; `None` (nothing) for links and the like.
pub(crate) fn charge(st: &FileStat) -> Option<u64> {
    match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => Some(st.st_size as u64),
        libc::S_IFDIR => Some(DIR_BYTES),
        _ => None,
    }
}

/// A change to a site's usage, as an SFTP request makes it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Change {
    pub bytes: i64,
    pub files: i64,
}

impl Change {
    fn add(&mut self, c: Change) {
        self.bytes = self.bytes.saturating_add(c.bytes);
        self.files = self.files.saturating_add(c.files);
    }
}

/// One user's usage, shared by all their sessions.
#[derive(Default)]
pub(crate) struct Tally {
    state: Mutex<State>,
    /// Signalled when a count ends.
    counted: Condvar,
    counter: Counter,
}

#[derive(Default)]
struct State {
    /// The figure; `None` until the first count ends.
    usage: Option<Usage>,
    /// When the last count began.
    began: Option<Instant>,
    /// While a count runs: the changes made since it began.
    running: Option<Change>,
}

impl Tally {
    /// A tally whose counts run on `counter`.
    pub(crate) fn new(counter: Counter) -> Tally {
        Tally {
            counter,
            ..Tally::default()
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes the figure ready: counts the site (from the directory `open_root` gives) and
    /// waits, when it never was counted; starts a recount in the background when the last
    /// began `every` ago or more; otherwise returns at once.
    pub(crate) fn refresh(
        self: &Arc<Self>,
        every: Duration,
        open_root: impl FnOnce() -> Option<OwnedFd>,
    ) {
        let mut open_root = Some(open_root);
        let mut s = self.state();
        loop {
            let due = s.began.is_none_or(|t| t.elapsed() >= every);
            if s.running.is_none()
                && due
                && let Some(open) = open_root.take()
            {
                s.running = Some(Change::default());
                s.began = Some(Instant::now());
                drop(s);
                self.start(open());
                s = self.state();
            }
            if s.usage.is_some() || s.running.is_none() {
                return;
            }
            // The first count is under way (this one's or another session's): wait for it.
            s = self.counted.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Counts the site (the directory `root`) now, on this thread (a deploy's, on the blocking
    /// pool: it waits for the figure, so the counting threads would only add a hand-over), once
    /// no other count is under way, and makes it the figure: for a push deploy, whose program
    /// writes behind the sessions' backs, before it starts, while it runs (see the deploy's
    /// watcher for how often) and after it ends.
    pub(crate) fn count_now(&self, root: Option<OwnedFd>) -> Usage {
        // A site that cannot be opened now (out of descriptors, say) keeps the figure it had:
        // counting it as empty would give a deploy the whole quota.
        let Some(root) = root else {
            return self.usage().unwrap_or_default();
        };
        let mut s = self.state();
        while s.running.is_some() {
            s = self.counted.wait(s).unwrap_or_else(|e| e.into_inner());
        }
        s.running = Some(Change::default());
        s.began = Some(Instant::now());
        drop(s);
        let counted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| count(&root)))
            .unwrap_or_default();
        self.finish(counted);
        self.usage().unwrap_or_default()
    }

    /// Hands a count of `root` to the counter; a site that cannot be opened counts as empty.
    fn start(self: &Arc<Self>, root: Option<OwnedFd>) {
        let tally = self.clone();
        self.counter.run(Box::new(move || {
            let counted = root.map(|root| {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| count(&root)))
                    .unwrap_or_default()
            });
            tally.finish(counted.unwrap_or_default());
        }));
    }

    /// A count ended with `counted`: it becomes the figure, with the changes made meanwhile.
    fn finish(&self, mut counted: Usage) {
        let mut s = self.state();
        counted.apply(s.running.take().unwrap_or_default());
        s.usage = Some(counted);
        drop(s);
        self.counted.notify_all();
    }

    /// The figure, `None` before the first count has ended.
    pub(crate) fn usage(&self) -> Option<Usage> {
        self.state().usage
    }

    /// The site changed by `c` (through SFTP).
    pub(crate) fn change(&self, c: Change) {
        let mut s = self.state();
        if let Some(u) = s.usage.as_mut() {
            u.apply(c);
        }
        if let Some(r) = s.running.as_mut() {
            r.add(c);
        }
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// Where counts run: a few threads started with the endpoint (see the module docs for why
/// there), which end when the last handle is dropped. The default runs a count on the thread
/// that asks, as the unit tests want.
#[derive(Clone, Default)]
pub(crate) struct Counter {
    jobs: Option<Sender<Job>>,
}

impl Counter {
    /// Starts `threads` counting threads. Call it from a thread with the server's own identity
    /// (they inherit the identity of the thread that starts them).
    pub(crate) fn start(threads: usize) -> Counter {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let mut started = 0;
        for n in 0..threads {
            let rx = rx.clone();
            match std::thread::Builder::new()
                .name(format!("quota-count-{n}"))
                .spawn(move || work(&rx))
            {
                Ok(_) => started += 1,
                Err(e) => tracing::warn!(error = %e, "cannot start a quota counting thread"),
            }
        }
        // With no thread to run them, counts run where they are asked for rather than never.
        Counter {
            jobs: (started > 0).then_some(tx),
        }
    }

    /// Runs `job` on a counting thread, or here when there is none.
    fn run(&self, job: Job) {
        match &self.jobs {
            Some(tx) => {
                if let Err(unsent) = tx.send(job) {
                    (unsent.0)();
                }
            }
            None => job(),
        }
    }
}

/// A counting thread: runs jobs until every [`Counter`] is gone.
fn work(jobs: &Mutex<Receiver<Job>>) {
    loop {
        let job = jobs.lock().unwrap_or_else(|e| e.into_inner()).recv();
        match job {
            Ok(job) => job(),
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests;
