//! The open handles of one SFTP session: files and directories, each named to the client by an
//! opaque 4-byte string, capped in number.

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use crate::path::SitePath;
use crate::upload::Upload;

/// An open file.
pub struct FileHandle {
    pub file: Arc<File>,
    pub path: SitePath,
    /// Set when this is an atomic upload, committed on close.
    pub upload: Option<Upload>,
    /// Whether the handle was opened for writing.
    pub writable: bool,
    /// Bytes written through the handle.
    pub written: u64,
    /// A write failed: an atomic upload is then abandoned on close, never put in place.
    pub failed: bool,
    /// Bytes read through the handle (reads run concurrently, hence atomic).
    pub read: Arc<AtomicU64>,
    /// When it was opened, for the transfer log.
    pub opened: Instant,
}

/// An open directory listing, read from the directory as READDIR asks for more, so a
/// directory of any size costs one batch of memory, not its whole listing.
pub struct DirHandle {
    /// The directory, for `fstatat` of each entry.
    pub fd: OwnedFd,
    pub path: SitePath,
    /// The directory stream (its own descriptor), positioned after the names already sent.
    pub entries: nix::dir::OwningIter,
}

impl DirHandle {
    /// The next name, without `.`, `..` and upload temporaries; `None` at the end.
    pub fn next_name(&mut self) -> Option<Vec<u8>> {
        loop {
            let entry = match self.entries.next()? {
                Ok(e) => e,
                Err(_) => return None,
            };
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." || Upload::is_temp_name(name) {
                continue;
            }
            return Some(name.to_vec());
        }
    }
}

/// Either kind.
pub enum Handle {
    File(FileHandle),
    Dir(DirHandle),
}

/// The handles every session of the endpoint holds, against one budget: each takes a file
/// descriptor, and the process's descriptors are shared with HTTP connections and scripts,
/// which one user's sessions must not starve.
#[derive(Clone, Debug)]
pub struct Budget {
    used: Arc<AtomicUsize>,
    max: usize,
}

impl Budget {
    /// A budget of `max` handles across sessions, counted in `used`.
    pub fn new(used: Arc<AtomicUsize>, max: usize) -> Budget {
        Budget { used, max }
    }

    fn take(&self, n: usize) -> bool {
        if self.used.fetch_add(n, Ordering::SeqCst) + n > self.max {
            self.used.fetch_sub(n, Ordering::SeqCst);
            return false;
        }
        true
    }

    fn give_back(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::SeqCst);
    }
}

/// The table.
pub struct Handles {
    map: HashMap<u32, Handle>,
    next: u32,
    max: usize,
    budget: Budget,
    /// Open file handles, readable from other tasks (a stopping server waits for transfers).
    open_files: Arc<AtomicUsize>,
}

/// Too many handles are open.
#[derive(Debug)]
pub enum TooMany {
    /// This session holds `sftp.max_handles`.
    Session,
    /// All sessions together hold what the server's descriptors allow.
    Server,
}

impl Handles {
    /// An empty table holding at most `max` handles, each also taken from `budget`.
    pub fn new(max: usize, budget: Budget) -> Handles {
        Handles {
            map: HashMap::new(),
            next: 1,
            max,
            budget,
            open_files: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The most handles this table holds.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Stores `h` and returns its name.
    pub fn insert(&mut self, h: Handle) -> Result<[u8; 4], TooMany> {
        if self.map.len() >= self.max {
            return Err(TooMany::Session);
        }
        if !self.budget.take(Self::cost(&h)) {
            return Err(TooMany::Server);
        }
        while self.map.contains_key(&self.next) {
            self.next = self.next.wrapping_add(1);
        }
        let id = self.next;
        self.next = self.next.wrapping_add(1);
        if matches!(h, Handle::File(_)) {
            self.open_files.fetch_add(1, Ordering::SeqCst);
        }
        self.map.insert(id, h);
        Ok(id.to_be_bytes())
    }

    /// Descriptors a handle holds: a file one, a directory two (itself and its stream).
    fn cost(h: &Handle) -> usize {
        match h {
            Handle::File(_) => 1,
            Handle::Dir(_) => 2,
        }
    }

    fn key(name: &[u8]) -> Option<u32> {
        <[u8; 4]>::try_from(name).ok().map(u32::from_be_bytes)
    }

    /// The handle named `name`.
    pub fn get_mut(&mut self, name: &[u8]) -> Option<&mut Handle> {
        self.map.get_mut(&Self::key(name)?)
    }

    /// Removes and returns the handle named `name`.
    pub fn remove(&mut self, name: &[u8]) -> Option<Handle> {
        let h = self.map.remove(&Self::key(name)?)?;
        self.budget.give_back(Self::cost(&h));
        if matches!(h, Handle::File(_)) {
            self.open_files.fetch_sub(1, Ordering::SeqCst);
        }
        Some(h)
    }

    /// The count of open file handles, kept up to date.
    pub fn open_files(&self) -> Arc<AtomicUsize> {
        self.open_files.clone()
    }

    /// Every handle still open, for the end of the session.
    pub fn drain(&mut self) -> impl Iterator<Item = Handle> + '_ {
        self.open_files.store(0, Ordering::SeqCst);
        let held: usize = self.map.values().map(Self::cost).sum();
        self.budget.give_back(held);
        self.map.drain().map(|(_, h)| h)
    }
}

impl Drop for Handles {
    /// Whatever is still held goes back to the budget, even when the session ended without
    /// draining (a panic in a request): the server-wide budget never shrinks for good.
    fn drop(&mut self) {
        let held: usize = self.map.values().map(Self::cost).sum();
        self.budget.give_back(held);
    }
}
