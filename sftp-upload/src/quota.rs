//! Per-user quotas: bytes and regular files in the user's site. Usage is counted once, on the
//! first write of the first session that needs it, then kept up to date by the sessions of that
//! user (they share one [`Usage`]). A write that would pass the limit fails with a clear status
//! before anything is written, so nothing already stored is lost; a temporary upload file counts
//! while it exists (the old and the new version are both on disk until the rename).

use std::sync::{Arc, Mutex};

use nix::sys::stat::FileStat;

use crate::error::FsError;
use crate::files::SiteFiles;
use crate::path::SitePath;
use crate::walk::walk_site;
use crate::wire::open_flags;

/// A user's quota; `None` is unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QuotaLimits {
    /// Bytes in regular files in the user's site, at most.
    pub bytes: Option<u64>,
    /// Regular files in the user's site, at most.
    pub files: Option<u64>,
}

/// What a user's site holds.
#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    pub bytes: u64,
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
            let mut usage = Usage::default();
            walk_site(files.jail(), |_, _, st| {
                if st.st_mode & libc::S_IFMT == libc::S_IFREG {
                    usage.bytes += st.st_size as u64;
                    usage.files += 1;
                }
            });
            *u = Some(usage);
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
        let over = self.with(|u| u.files + 1 > limit).unwrap_or(false);
        if over {
            return Err(FsError::Failed(
                "file quota exceeded: remove some files first",
            ));
        }
        Ok(())
    }

    /// Refuses a write that would grow the site past the byte limit.
    pub fn check_growth(&self, delta: u64) -> Result<(), FsError> {
        let Some(limit) = self.limits.bytes else {
            return Ok(());
        };
        let over = self
            .with(|u| u.bytes.saturating_add(delta) > limit)
            .unwrap_or(false);
        if over {
            return Err(FsError::Failed(
                "disk quota exceeded: the write would pass your site's byte limit; nothing was written",
            ));
        }
        Ok(())
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

    /// A file was removed.
    pub fn removed(&self, st: &FileStat) {
        if st.st_mode & libc::S_IFMT == libc::S_IFREG {
            self.with(|u| {
                u.bytes = u.bytes.saturating_sub(st.st_size as u64);
                u.files = u.files.saturating_sub(1);
            });
        }
    }
}
