//! Per-user quotas: bytes, and entries (regular files and directories), in the user's site.
//! Usage is counted once, on the first write of the first session that needs it, then kept up
//! to date by the sessions of that user (they share one [`Usage`]). A write or a `mkdir` that
//! would pass a limit fails with a clear status naming the limit, before anything is written,
//! so nothing already stored is lost; a temporary upload file counts while it exists (the old
//! and the new version are both on disk until the rename).
//!
//! A directory counts as one entry and as [`DIR_BYTES`] (one 4 KiB block, what a directory
//! takes on ext4 until it grows large), whatever its size on disk: a fixed figure the customer
//! can predict, and enough to stop a site from being filled with empty directories, which
//! cost inodes and blocks while counting for nothing.

use std::sync::{Arc, Mutex};

use nix::sys::stat::FileStat;

use crate::error::FsError;
use crate::files::SiteFiles;
use crate::path::SitePath;
use crate::walk::walk_site;
use crate::wire::open_flags;

/// What a directory counts for against the byte limit.
pub const DIR_BYTES: u64 = 4096;

/// A user's quota; `None` is unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QuotaLimits {
    /// Bytes in the user's site, at most: regular files' sizes, 4096 per directory.
    pub bytes: Option<u64>,
    /// Regular files and directories in the user's site, at most.
    pub files: Option<u64>,
}

/// Which limit a refused request would have passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// The byte limit.
    Bytes,
    /// The limit on files and directories.
    Files,
}

/// A request refused because it would pass a quota limit: which one, the limit, what the site
/// uses and what the request would add.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exceeded {
    pub limit: Limit,
    pub max: u64,
    pub used: u64,
    pub asked: u64,
}

impl std::fmt::Display for Exceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Exceeded {
            max, used, asked, ..
        } = self;
        match self.limit {
            Limit::Bytes => write!(
                f,
                "disk quota exceeded: your site may hold {max} bytes and holds {used}; \
                 this needs {asked} more, so nothing was written: remove something first"
            ),
            Limit::Files => write!(
                f,
                "file quota exceeded: your site may hold {max} files and directories and \
                 holds {used}: remove some first"
            ),
        }
    }
}

/// What an entry counts for: (bytes, entries); nothing for links and the like.
fn charge(st: &FileStat) -> Option<u64> {
    match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => Some(st.st_size as u64),
        libc::S_IFDIR => Some(DIR_BYTES),
        _ => None,
    }
}

/// What the site held open by `jail` holds.
pub(crate) fn count(jail: &yadokari_site::Jail) -> Usage {
    let mut usage = Usage::default();
    walk_site(jail, |_, _, st| {
        if let Some(bytes) = charge(st) {
            usage.bytes += bytes;
            usage.files += 1;
        }
    });
    usage
}

/// What a user's site holds.
#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    /// Regular files' bytes, and 4096 per directory.
    pub bytes: u64,
    /// Regular files and directories.
    pub files: u64,
}

/// A session's view of its user's quota.
pub struct Quota {
    limits: QuotaLimits,
    usage: Arc<Mutex<Option<Usage>>>,
}

/// The usage shared by every session of one user.
pub type SharedUsage = Arc<Mutex<Option<Usage>>>;

impl Quota {
    /// A quota with `limits`, sharing `usage` with the user's other sessions.
    pub fn new(limits: QuotaLimits, usage: SharedUsage) -> Quota {
        Quota { limits, usage }
    }

    fn enabled(&self) -> bool {
        self.limits.bytes.is_some() || self.limits.files.is_some()
    }

    /// Counts the site once (blocking), when a limit is set.
    pub fn prepare(&self, files: &SiteFiles) {
        if !self.enabled() {
            return;
        }
        let mut u = self.usage.lock().unwrap_or_else(|e| e.into_inner());
        if u.is_none() {
            *u = Some(count(files.jail()));
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Usage) -> T) -> Option<T> {
        if !self.enabled() {
            return None;
        }
        let mut u = self.usage.lock().unwrap_or_else(|e| e.into_inner());
        u.as_mut().map(f)
    }

    /// Refuses to open a file that would be one file too many.
    pub fn check_new_file(
        &self,
        files: &SiteFiles,
        path: &SitePath,
        pflags: u32,
    ) -> Result<(), FsError> {
        let Some(limit) = self.limits.files else {
            self.prepare(files);
            return Ok(());
        };
        self.prepare(files);
        if pflags & open_flags::CREAT == 0 || files.stat(path, true).is_ok() {
            return Ok(());
        }
        self.check_entries(limit)
    }

    /// Refuses a `mkdir` that would pass either limit.
    pub fn check_new_dir(&self, files: &SiteFiles) -> Result<(), FsError> {
        self.prepare(files);
        if let Some(limit) = self.limits.files {
            self.check_entries(limit)?;
        }
        self.check_growth(DIR_BYTES)
    }

    fn check_entries(&self, max: u64) -> Result<(), FsError> {
        match self.with(|u| u.files) {
            Some(used) if used + 1 > max => Err(FsError::Quota(Exceeded {
                limit: Limit::Files,
                max,
                used,
                asked: 1,
            })),
            _ => Ok(()),
        }
    }

    /// Refuses a write that would grow the site past the byte limit.
    pub fn check_growth(&self, delta: u64) -> Result<(), FsError> {
        let Some(max) = self.limits.bytes else {
            return Ok(());
        };
        match self.with(|u| u.bytes) {
            Some(used) if used.saturating_add(delta) > max => Err(FsError::Quota(Exceeded {
                limit: Limit::Bytes,
                max,
                used,
                asked: delta,
            })),
            _ => Ok(()),
        }
    }

    /// A directory was made.
    pub fn dir_made(&self) {
        self.with(|u| {
            u.bytes += DIR_BYTES;
            u.files += 1;
        });
    }

    /// A file grew by `delta` bytes.
    pub fn grew(&self, delta: u64, _temporary: bool) {
        self.with(|u| u.bytes += delta);
    }

    /// An upload replaced `old` (if any) with a file of `size` bytes; its temporary already
    /// counted `size`.
    pub fn replaced(&self, old: Option<&FileStat>, _size: u64) {
        self.with(|u| match old {
            Some(st) if st.st_mode & libc::S_IFMT == libc::S_IFREG => {
                u.bytes = u.bytes.saturating_sub(st.st_size as u64)
            }
            _ => u.files += 1,
        });
    }

    /// An upload of `size` bytes so far was abandoned (its temporary removed).
    pub fn abandoned(&self, size: u64) {
        self.with(|u| u.bytes = u.bytes.saturating_sub(size));
    }

    /// A file was truncated or extended from `old` to `new` bytes.
    pub fn resized(&self, old: u64, new: u64) {
        self.with(|u| u.bytes = u.bytes.saturating_sub(old).saturating_add(new));
    }

    /// A file or a directory was removed (or replaced by a rename).
    pub fn removed(&self, st: &FileStat) {
        if let Some(bytes) = charge(st) {
            self.with(|u| {
                u.bytes = u.bytes.saturating_sub(bytes);
                u.files = u.files.saturating_sub(1);
            });
        }
    }

    /// A directory was removed.
    pub fn dir_removed(&self) {
        self.with(|u| {
            u.bytes = u.bytes.saturating_sub(DIR_BYTES);
            u.files = u.files.saturating_sub(1);
        });
    }
}
