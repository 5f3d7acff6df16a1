//! Per-user quotas: bytes, and entries (regular files and directories), in the user's site.
//! What the site holds is the user's [`Tally`] (`usage`): counted on the first write of the
//! first session that needs it, kept current by the SFTP changes of all their sessions, and
//! recounted in the background at most once per `sftp.quota_rescan_secs`, so that files
//! written by scripts count too. A write or a `mkdir` that would pass a limit fails with a
//! clear status naming the limit and the usage, before anything is written, so nothing already
//! stored is lost; a temporary upload file counts while it exists (the old and the new version
//! are both on disk until the rename).
//!
//! A directory counts as one entry and as [`DIR_BYTES`] (one 4 KiB block, what a directory
//! takes on ext4 until it grows large), whatever its size on disk: a fixed figure the customer
//! can predict, and enough to stop a site from being filled with empty directories, which
//! cost inodes and blocks while counting for nothing.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use nix::fcntl::OFlag;
use nix::sys::stat::{FileStat, Mode};

use crate::error::FsError;
use crate::files::SiteFiles;
use crate::path::SitePath;
use crate::usage::{Change, DIR_BYTES, Tally, Usage, charge};
use crate::wire::open_flags;

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

/// A session's view of its user's quota.
pub struct Quota {
    limits: QuotaLimits,
    tally: Arc<Tally>,
    /// How long a count stays good before the next need recounts the site.
    rescan: Duration,
}

impl Quota {
    /// A quota with `limits`, sharing `tally` with the user's other sessions; the site is
    /// recounted when needed and `rescan` has passed since the last count began.
    pub fn new(limits: QuotaLimits, tally: Arc<Tally>, rescan: Duration) -> Quota {
        Quota {
            limits,
            tally,
            rescan,
        }
    }

    fn enabled(&self) -> bool {
        self.limits.bytes.is_some() || self.limits.files.is_some()
    }

    /// Makes the usage ready when a limit is set: counts the site the first time (blocking),
    /// and starts a background recount when the last one is `rescan` old.
    pub fn prepare(&self, files: &SiteFiles) {
        if !self.enabled() {
            return;
        }
        self.tally.refresh(self.rescan, || {
            let dir = OFlag::O_RDONLY | OFlag::O_DIRECTORY;
            files
                .jail()
                .open_beneath(Path::new(""), dir, Mode::empty())
                .ok()
        });
    }

    fn used(&self) -> Option<Usage> {
        match self.enabled() {
            true => self.tally.usage(),
            false => None,
        }
    }

    fn change(&self, bytes: i64, files: i64) {
        if self.enabled() {
            self.tally.change(Change { bytes, files });
        }
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
        match self.used().map(|u| u.files) {
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
        match self.used().map(|u| u.bytes) {
            Some(used) if used.saturating_add(delta) > max => Err(FsError::Quota(Exceeded {
                limit: Limit::Bytes,
                max,
                used,
                asked: delta,
            })),
            _ => Ok(()),
        }
    }

    /// Whether a push deploy may start writing: the site is counted now (a deploy's program
    /// writes behind the session's back, so the last count may be old), and it must have room
    /// for one more byte and one more file. The room left in bytes, when bytes are limited.
    pub fn admits_a_deploy(&self, files: &SiteFiles) -> Result<Option<u64>, FsError> {
        if !self.enabled() {
            return Ok(None);
        }
        let used = self.count_now(files);
        if let Some(limit) = self.limits.files {
            self.check_entries(limit)?;
        }
        self.check_growth(1)?;
        Ok(self.limits.bytes.map(|max| max.saturating_sub(used.bytes)))
    }

    /// Counts the site now and makes the count the figure (see [`Quota::admits_a_deploy`]).
    pub fn count_now(&self, files: &SiteFiles) -> Usage {
        let dir = OFlag::O_RDONLY | OFlag::O_DIRECTORY;
        self.tally.count_now(
            files
                .jail()
                .open_beneath(Path::new(""), dir, Mode::empty())
                .ok(),
        )
    }

    /// Which limit the site, counted now, is over, if it is over one (a deploy running).
    pub fn over(&self, files: &SiteFiles) -> Option<Exceeded> {
        if !self.enabled() {
            return None;
        }
        let used = self.count_now(files);
        let over = |limit, max: Option<u64>, used: u64| {
            max.filter(|max| used > *max).map(|max| Exceeded {
                limit,
                max,
                used,
                asked: 0,
            })
        };
        over(Limit::Bytes, self.limits.bytes, used.bytes)
            .or_else(|| over(Limit::Files, self.limits.files, used.files))
    }

    /// A directory was made.
    pub fn dir_made(&self) {
        self.change(DIR_BYTES as i64, 1);
    }

    /// A file grew by `delta` bytes.
    pub fn grew(&self, delta: u64, _temporary: bool) {
        self.change(signed(delta), 0);
    }

    /// An upload replaced `old` (if any) with a file of `size` bytes; its temporary already
    /// counted `size`.
    pub fn replaced(&self, old: Option<&FileStat>, _size: u64) {
        match old {
            Some(st) if st.st_mode & libc::S_IFMT == libc::S_IFREG => {
                self.change(-signed(st.st_size as u64), 0)
            }
            _ => self.change(0, 1),
        }
    }

    /// An upload of `size` bytes so far was abandoned (its temporary removed).
    pub fn abandoned(&self, size: u64) {
        self.change(-signed(size), 0);
    }

    /// A file was truncated or extended from `old` to `new` bytes.
    pub fn resized(&self, old: u64, new: u64) {
        self.change(signed(new).saturating_sub(signed(old)), 0);
    }

    /// A file or a directory was removed (or replaced by a rename).
    pub fn removed(&self, st: &FileStat) {
        if let Some(bytes) = charge(st) {
            self.change(-signed(bytes), -1);
        }
    }

    /// A directory was removed.
    pub fn dir_removed(&self) {
        self.change(-(DIR_BYTES as i64), -1);
    }
}

/// A size as a change (sizes past `i64::MAX` do not exist on Linux file systems).
fn signed(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
