//! Knowing that a directory's `.htaccess` has not changed without asking the file system on
//! every request: each directory a request looked in is watched with inotify, and what the
//! look found ([`Place`]) is kept until an event says something there changed.
//!
//! "An edit applies to the very next request" still holds: the kernel queues an event before
//! the system call that made the change returns, and every request first drains the queue
//! ([`Watch::refresh`]: one non-blocking `read`; a request on another thread that began after
//! the change waits until the thread that read its event has applied it) before it trusts
//! what is kept. A look that raced with a change is not kept: kept entries carry the
//! generation they were looked at in, and any applied event starts a new one.
//!
//! What invalidates what, for a watched directory `d`:
//! - any event about `d/.htaccess` (created, written, chmod-ed, renamed, removed): its entry;
//! - an entry `n` of `d` created, removed, renamed or chmod-ed (not merely written): all that
//!   is kept under `d/n/` (a directory replaced, moved in or out, made unreadable);
//! - `d` itself chmod-ed, moved or removed: all that is kept under `d/`; a moved or removed
//!   directory's watch is dropped (its path no longer names it);
//! - a lost event (the queue overflowed): everything.
//!
//! A directory that cannot be watched (the server may not read it, the watch limit is reached,
//! it is not a directory) is not kept: its file is looked at with an `fstatat` on every
//! request, as without this module.
//!
//! Why by hand: inotify is a few system calls (nix wraps them); the crates around it (notify)
//! deliver events on a thread of their own, which breaks the ordering above.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, InotifyEvent, WatchDescriptor};
use nix::sys::stat::Mode;
use yadokari_site::Jail;

use super::cache::{NAME, Place};

/// The events a watched directory reports.
fn mask() -> AddWatchFlags {
    AddWatchFlags::IN_CREATE
        | AddWatchFlags::IN_DELETE
        | AddWatchFlags::IN_MOVED_FROM
        | AddWatchFlags::IN_MOVED_TO
        | AddWatchFlags::IN_MODIFY
        | AddWatchFlags::IN_CLOSE_WRITE
        | AddWatchFlags::IN_ATTRIB
        | AddWatchFlags::IN_DELETE_SELF
        | AddWatchFlags::IN_MOVE_SELF
        | AddWatchFlags::IN_ONLYDIR
}

/// Directories watched before the watches are all dropped and made again as requests come
/// (the kernel's own limit, `fs.inotify.max_user_watches`, is usually far higher).
const MAX_WATCHES: usize = 65_536;

/// The watches and what is kept under them.
pub struct Watch {
    inotify: Inotify,
    /// The watches (taken for every drain, which makes drains one at a time).
    watches: Mutex<Watches>,
    /// What the looks found, by site and `.htaccess` path (as bytes: hashing a `Path` walks
    /// its components).
    kept: RwLock<HashMap<u64, HashMap<OsString, Place>>>,
    /// Bumped by every applied event: a look that began in an older generation is not kept.
    generation: AtomicU64,
    /// Threads inside [`Watch::refresh`]'s read-and-apply.
    reading: AtomicU32,
    /// Whether any watch was ever added (else there is nothing to read).
    watching: AtomicBool,
}

#[derive(Default)]
struct Watches {
    /// The (site, directory) pairs each watch was added for: one directory can be reached by
    /// two paths (a link inside the site) or be part of two sites.
    dirs: HashMap<WatchDescriptor, Vec<(u64, PathBuf)>>,
    by_dir: HashMap<(u64, PathBuf), WatchDescriptor>,
}

/// A look to be kept once it is made ([`Watch::before_look`], then [`Watch::keep`]).
pub struct Ticket {
    generation: u64,
    /// Whether the directory holding the file is watched (then any result may be kept).
    dir: bool,
    /// Whether the directory above it is (then a "not a directory" result may be kept: its
    /// replacement by a directory is an event there).
    parent: bool,
}

impl Watch {
    /// A watcher, or `None` when inotify is unavailable (then nothing is kept).
    pub fn new() -> Option<Watch> {
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
            .inspect_err(|e| tracing::warn!(error = %e, "inotify unavailable: .htaccess files are looked for on every request"))
            .ok()?;
        Some(Watch {
            inotify,
            watches: Mutex::new(Watches::default()),
            kept: RwLock::new(HashMap::new()),
            generation: AtomicU64::new(0),
            reading: AtomicU32::new(0),
            watching: AtomicBool::new(false),
        })
    }

    /// Applies every change the kernel has queued. Call before trusting [`Watch::kept`].
    ///
    /// No lock in the common case (an empty queue): each thread counts itself in `reading`
    /// before its `read` and out after applying what it read. A thread whose read found
    /// nothing then waits until no read is in progress, since another thread's read may have
    /// taken the events of a change that came before this request (then that thread is still
    /// counted until it has applied them). A lock around the read made the two workers queue
    /// behind each other's system call on every request.
    pub fn refresh(&self) {
        if !self.watching.load(Ordering::SeqCst) {
            return;
        }
        self.reading.fetch_add(1, Ordering::SeqCst);
        loop {
            match self.inotify.read_events() {
                Ok(events) if !events.is_empty() => {
                    let mut watches = self.lock();
                    for event in &events {
                        self.apply(&mut watches, event);
                    }
                }
                Ok(_) | Err(Errno::EAGAIN) => break,
                Err(Errno::EINTR) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read inotify events; forgetting what was kept");
                    self.forget_all(&mut self.lock());
                    break;
                }
            }
        }
        self.reading.fetch_sub(1, Ordering::SeqCst);
        let mut spins = 0u32;
        while self.reading.load(Ordering::SeqCst) > 0 {
            spins += 1;
            if spins < 64 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Watches> {
        match self.watches.lock() {
            Ok(w) => w,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// What was found for `file` of `site`, when kept.
    pub fn kept(&self, site: u64, file: &Path) -> Option<Place> {
        let kept = self.kept.read().ok()?;
        kept.get(&site)?.get(file.as_os_str()).cloned()
    }

    /// The generation now: it changes whenever an event is applied, so anything made from
    /// kept looks in one generation is still true while it lasts.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Watches the directory holding `file` (opened through `jail`) before it is looked at.
    pub fn before_look(&self, jail: &Jail, site: u64, file: &Path) -> Ticket {
        let generation = self.generation.load(Ordering::Acquire);
        let dir = file.parent().unwrap_or(Path::new(""));
        let mut watches = self.lock();
        let watched = self.watch(&mut watches, jail, site, dir);
        let parent = dir
            .parent()
            .is_some_and(|up| watches.by_dir.contains_key(&(site, up.to_path_buf())));
        Ticket {
            generation,
            dir: watched,
            parent,
        }
    }

    /// Keeps what the look at `file` found, unless something changed since `ticket` was
    /// taken; whether it was kept.
    pub fn keep(&self, ticket: Ticket, site: u64, file: &Path, place: &Place) -> bool {
        let allowed = match place {
            Place::End => ticket.parent,
            Place::Dir(_) => ticket.dir,
        };
        if !allowed {
            return false;
        }
        let Ok(mut kept) = self.kept.write() else {
            return false;
        };
        // Checked under the lock that every invalidation takes: no event was applied since.
        if self.generation.load(Ordering::Acquire) != ticket.generation {
            return false;
        }
        kept.entry(site)
            .or_default()
            .insert(file.as_os_str().to_os_string(), place.clone());
        true
    }

    /// Watches `dir` of `site`; whether it is watched.
    fn watch(&self, watches: &mut Watches, jail: &Jail, site: u64, dir: &Path) -> bool {
        let key = (site, dir.to_path_buf());
        if watches.by_dir.contains_key(&key) {
            return true;
        }
        if watches.by_dir.len() >= MAX_WATCHES {
            self.forget_all(watches);
        }
        // SECURITY: the directory is reached through the jail; the watch is added on what was
        // opened (the descriptor's /proc link), so no path is resolved twice.
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY;
        let Ok(fd) = jail.open_beneath(dir, flags, Mode::empty()) else {
            return false;
        };
        let link = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
        // Followed, the /proc link names exactly the directory opened.
        match self.inotify.add_watch(link.as_str(), mask()) {
            Ok(wd) => {
                self.watching.store(true, Ordering::SeqCst);
                watches.dirs.entry(wd).or_default().push(key.clone());
                watches.by_dir.insert(key, wd);
                true
            }
            Err(e) => {
                tracing::debug!(dir = %dir.display(), error = %e, "cannot watch a directory for .htaccess changes");
                false
            }
        }
    }

    /// Applies one event to what is kept.
    fn apply(&self, watches: &mut Watches, event: &InotifyEvent) {
        if event.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
            self.forget_all(watches);
            return;
        }
        let Some(dirs) = watches.dirs.get(&event.wd).cloned() else {
            return;
        };
        let gone = event.mask.intersects(
            AddWatchFlags::IN_DELETE_SELF | AddWatchFlags::IN_MOVE_SELF | AddWatchFlags::IN_IGNORED,
        );
        let written = event
            .mask
            .intersects(AddWatchFlags::IN_MODIFY | AddWatchFlags::IN_CLOSE_WRITE);
        let Ok(mut kept) = self.kept.write() else {
            return;
        };
        for (site, dir) in &dirs {
            let Some(files) = kept.get_mut(site) else {
                continue;
            };
            match &event.name {
                Some(name) if name == NAME => {
                    files.remove(dir.join(NAME).as_os_str());
                }
                Some(_) if written => {}
                Some(name) => {
                    let under = dir.join(name);
                    files.retain(|file, _| !Path::new(file).starts_with(&under));
                }
                None => files.retain(|file, _| !Path::new(file).starts_with(dir)),
            }
        }
        // Under the lock `keep` checks it with: a look older than this event is not kept.
        self.generation.fetch_add(1, Ordering::AcqRel);
        drop(kept);
        if gone {
            if !event.mask.contains(AddWatchFlags::IN_IGNORED) {
                let _ = self.inotify.rm_watch(event.wd);
            }
            for key in watches.dirs.remove(&event.wd).unwrap_or_default() {
                watches.by_dir.remove(&key);
            }
        }
    }

    /// Drops every watch and everything kept.
    fn forget_all(&self, watches: &mut Watches) {
        for wd in watches.dirs.keys() {
            let _ = self.inotify.rm_watch(*wd);
        }
        *watches = Watches::default();
        if let Ok(mut kept) = self.kept.write() {
            kept.clear();
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
    }
}
