//! Atomic uploads: a file being uploaded is written to a temporary file beside its target and
//! renamed over it on close, so the web side serves the old version or the new one, never half
//! of one, and an aborted upload leaves the old file exactly as it was.
//!
//! The temporary name starts with `.ht`: the permission gate hides every `.ht*` file, so even
//! a request that guesses the name gets 403, never a half-written script. Dropping an
//! [`Upload`] that was not committed (connection cut, client killed, server stopped) removes
//! the temporary file; [`sweep`] removes those a crash left behind, at start-up.
//!
//! # The temporary file, through `tempfile`
//!
//! The `tempfile` crate picks the random name, retries on a clash, and removes the file when
//! the upload is dropped uncommitted ([`tempfile::TempPath`]); the commit is its `persist`.
//! `tempfile` works with paths, not with directory descriptors, so the directory is named to it
//! as `/proc/self/fd/N` of the descriptor the jail opened (`openat2(RESOLVE_BENEATH)`): the
//! kernel resolves that path to the very directory that was checked, so a directory or link the
//! customer swaps in meanwhile cannot redirect the create, the rename or the removal. Each
//! guarantee, and what keeps it:
//!
//! - created new, never over something: `O_CREAT | O_EXCL`, with `O_NOFOLLOW`, in the opener
//!   this module gives `tempfile` ([`Builder::make_in`](tempfile::Builder::make_in)), so a file
//!   or symlink planted under the name is never opened or followed: `EEXIST`, another name;
//! - mode 0600 while it is written, the client's access mode (`O_WRONLY` or `O_RDWR`,
//!   `O_APPEND`) as asked: the same opener;
//! - owned by the site's owner when the server is root: it is created on the session's request
//!   thread, which holds the owner's file-system identity (`identity`), and handed over by
//!   `SiteFiles` as before;
//! - removed on abort: `TempPath`'s drop, through the same `/proc/self/fd/N` path (the field
//!   order of [`Upload`] keeps the directory open until then);
//! - swept at start-up: [`sweep`], by the name prefix.
//!
//! # Exclusive creates
//!
//! An open with `O_CREAT | O_EXCL` (a lock file, `put` by a client that must not overwrite)
//! must fail with "already exists" when the name is taken, at open time, as on a local disk;
//! checking at open and renaming on close would let two sessions both succeed, the later
//! close winning. So [`Upload::begin_exclusive`] claims the target's name at open time with an
//! `O_CREAT | O_EXCL | O_NOFOLLOW` create of an empty placeholder (mode 0600, so the web side
//! refuses to serve it: not readable by others), and the content still goes to a temporary
//! that replaces the placeholder on close. Abandoned, the upload removes its placeholder
//! (unless something else has taken the name since).

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{Mode, fstatat};
use nix::unistd::UnlinkatFlags;
use tempfile::TempPath;
use yadokari_site::Jail;

use crate::error::FsError;
use crate::files::{chmod_fd, fd_path};
use crate::walk::walk_site;

/// Every temporary upload file's name starts with this.
pub const TEMP_PREFIX: &[u8] = b".ht-yadokari-upload-";
/// Random characters after the prefix (62 possible each).
const RANDOM_CHARS: usize = 16;

/// An upload in progress: the temporary file, its directory and the target's name.
pub struct Upload {
    /// The temporary file, named as `/proc/self/fd/N/...` of `dir`; removed when dropped.
    /// Declared before `dir`, so that it is dropped while `dir` is still open.
    temp: TempPath,
    dir: OwnedFd,
    target: OsString,
    /// The mode of a new file (used when there is no old one to keep).
    fresh_mode: u32,
    /// A mode the client set explicitly on the open handle (`put -p`), which wins.
    explicit_mode: Option<u32>,
    /// The placeholder holding the target's name for an exclusive create.
    claim: Option<Claim>,
}

/// An empty placeholder at the target's name, made by an exclusive create; removed when
/// dropped armed (the upload was abandoned), if it is still the same file.
struct Claim {
    dir: OwnedFd,
    name: OsString,
    id: (u64, u64),
    armed: bool,
}

impl Claim {
    /// Creates the placeholder; `EEXIST` when the name is taken (by anything, a link too).
    fn take(dir: &OwnedFd, name: &OsStr) -> Result<Claim, FsError> {
        let flags =
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = nix::fcntl::openat(dir, name, flags, Mode::from_bits_truncate(0o600))?;
        let st = nix::sys::stat::fstat(&fd)?;
        Ok(Claim {
            dir: dir.try_clone()?,
            name: name.to_owned(),
            id: (st.st_dev, st.st_ino),
            armed: true,
        })
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let same = fstatat(
            &self.dir,
            self.name.as_os_str(),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .is_ok_and(|st| (st.st_dev, st.st_ino) == self.id);
        if same {
            let _ =
                nix::unistd::unlinkat(&self.dir, self.name.as_os_str(), UnlinkatFlags::NoRemoveDir);
        }
    }
}

impl Upload {
    /// Creates the temporary file for `target` in `dir`.
    pub fn begin(
        dir: OwnedFd,
        target: OsString,
        access: OFlag,
        fresh_mode: u32,
    ) -> Result<(Upload, File), FsError> {
        let flags = access | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let create = |path: &Path| -> io::Result<File> {
            let fd = nix::fcntl::open(path, flags, Mode::from_bits_truncate(0o600))?;
            // Held while the upload's file is open: another server on the same sites (the new
            // one of an upgrade) sweeping unfinished uploads leaves this one alone.
            #[allow(deprecated)]
            nix::fcntl::flock(fd.as_raw_fd(), nix::fcntl::FlockArg::LockExclusiveNonblock)?;
            Ok(File::from(fd))
        };
        let (file, temp) = tempfile::Builder::new()
            .prefix(OsStr::from_bytes(TEMP_PREFIX))
            .rand_bytes(RANDOM_CHARS)
            .make_in(fd_path(dir.as_fd()), create)?
            .into_parts();
        let upload = Upload {
            temp,
            dir,
            target,
            fresh_mode,
            explicit_mode: None,
            claim: None,
        };
        Ok((upload, file))
    }

    /// [`Upload::begin`] for an exclusive create: the target's name is claimed first (see the
    /// module's documentation); `EEXIST` when it is taken.
    pub fn begin_exclusive(
        dir: OwnedFd,
        target: OsString,
        access: OFlag,
        fresh_mode: u32,
    ) -> Result<(Upload, File), FsError> {
        let claim = Claim::take(&dir, &target)?;
        let (mut upload, file) = Upload::begin(dir, target, access, fresh_mode)?;
        upload.claim = Some(claim);
        Ok((upload, file))
    }

    /// Whether the target's name was claimed at open: what is at the target now is this
    /// upload's placeholder, not an old file.
    pub fn claimed(&self) -> bool {
        self.claim.is_some()
    }

    /// Whether `name` is a temporary upload file (hidden from listings).
    pub fn is_temp_name(name: &[u8]) -> bool {
        name.starts_with(TEMP_PREFIX)
    }

    /// The client chose a mode for this file while uploading it.
    pub fn set_explicit_mode(&mut self, mode: u32) {
        self.explicit_mode = Some(mode);
    }

    /// Puts the finished file in place: it takes the mode the client set on the handle, or the
    /// old file's mode, or the mode of a new file; then it is renamed over the target.
    pub fn commit(self, file: &File) -> Result<(), FsError> {
        // SECURITY: not following a link at the target's name: its mode could be that of a
        // file outside the site, and the rename replaces the link itself anyway.
        let old = fstatat(
            &self.dir,
            self.target.as_os_str(),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .ok()
        .filter(|st| st.st_mode & libc::S_IFMT == libc::S_IFREG && self.claim.is_none());
        let mode = match (self.explicit_mode, old) {
            (Some(m), _) => m,
            // SECURITY: the permission bits are kept, never set-id or sticky bits: new content
            // must not inherit a setuid bit someone else gave the old file.
            (None, Some(st)) => st.st_mode & 0o777,
            (None, None) => self.fresh_mode,
        };
        chmod_fd(file.as_fd(), mode)?;
        let Upload {
            temp,
            dir,
            target,
            claim,
            ..
        } = self;
        // A failed rename hands the temporary back inside the error, whose drop removes it
        // (while `dir` is still open); the claim, still armed, then removes its placeholder.
        temp.persist(fd_path(dir.as_fd()).join(target))
            .map_err(|e| FsError::from(e.error))?;
        if let Some(mut claim) = claim {
            claim.armed = false; // the placeholder was replaced by the upload
        }
        Ok(())
    }
}

/// Removes the temporary upload files a crash left anywhere in the site of `jail`, without
/// following links. Returns how many it removed. An upload still in progress (its file locked
/// by the server writing it, during an upgrade's hand-over; or written in the last minute, the
/// moment between its creation and its lock) is left alone.
pub fn sweep(jail: &Jail) -> usize {
    let mut removed = 0;
    walk_site(jail, |dir, name, st| {
        if st.st_mode & libc::S_IFMT == libc::S_IFREG
            && Upload::is_temp_name(name.to_bytes())
            && !in_progress(dir, name, st)
            && nix::unistd::unlinkat(dir, name, UnlinkatFlags::NoRemoveDir).is_ok()
        {
            removed += 1;
        }
    });
    removed
}

/// Whether the temporary file `name` in `dir` is an upload some server is still writing.
fn in_progress(dir: BorrowedFd<'_>, name: &std::ffi::CStr, st: &nix::sys::stat::FileStat) -> bool {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    if now - st.st_mtime < 60 {
        return true;
    }
    let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    let Ok(fd) = nix::fcntl::openat(dir, name, flags, Mode::empty()) else {
        return false;
    };
    #[allow(deprecated)]
    let locked = nix::fcntl::flock(fd.as_raw_fd(), nix::fcntl::FlockArg::LockExclusiveNonblock);
    locked.is_err()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweep_removes_only_temporaries() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
        std::fs::write(dir.path().join("keep"), b"x").expect("write");
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        for name in [
            ".ht-yadokari-upload-1",
            "sub/.ht-yadokari-upload-2",
            ".ht-yadokari-upload-3",
        ] {
            let f = File::create(dir.path().join(name)).expect("write");
            f.set_modified(old).expect("age");
        }
        // Another server's upload in progress: its file is locked.
        let busy = File::open(dir.path().join(".ht-yadokari-upload-3")).expect("open");
        #[allow(deprecated)]
        nix::fcntl::flock(
            busy.as_raw_fd(),
            nix::fcntl::FlockArg::LockExclusiveNonblock,
        )
        .expect("lock");
        // A crash's leftover from a moment ago may still be one being created.
        std::fs::write(dir.path().join(".ht-yadokari-upload-4"), b"x").expect("write");
        let jail = Jail::open(dir.path()).expect("jail");
        assert_eq!(sweep(&jail), 2);
        assert!(dir.path().join("keep").exists());
        assert!(
            dir.path().join(".ht-yadokari-upload-3").exists(),
            "locked: in progress"
        );
        assert!(
            dir.path().join(".ht-yadokari-upload-4").exists(),
            "too recent"
        );
    }

    fn temporaries(dir: &Path) -> Vec<std::path::PathBuf> {
        std::fs::read_dir(dir)
            .expect("ls")
            .flatten()
            .filter(|e| Upload::is_temp_name(e.file_name().as_bytes()))
            .map(|e| e.path())
            .collect()
    }

    #[test]
    fn a_swapped_directory_cannot_redirect_the_commit_or_the_removal() {
        use std::os::unix::fs::PermissionsExt;
        let site = tempfile::tempdir().expect("tempdir");
        let outside = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(site.path().join("d")).expect("mkdir");
        let jail = Jail::open(site.path()).expect("jail");
        let begin = |name: &str| {
            let (dir, target) = jail
                .open_parent(Path::new(name))
                .expect("parent")
                .expect("not the root");
            Upload::begin(dir, target, OFlag::O_WRONLY, 0o644).expect("begin")
        };
        let (kept, file) = begin("d/kept");
        let (dropped, _) = begin("d/dropped");
        let temps = temporaries(&site.path().join("d"));
        assert_eq!(temps.len(), 2);
        for t in &temps {
            let mode = std::fs::metadata(t).expect("stat").permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", t.display());
        }
        // The customer moves the directory away and puts a link to somewhere else in its place.
        std::fs::rename(site.path().join("d"), site.path().join("moved")).expect("rename");
        std::os::unix::fs::symlink(outside.path(), site.path().join("d")).expect("symlink");
        kept.commit(&file).expect("commit");
        drop(dropped);
        assert!(site.path().join("moved/kept").exists());
        assert!(temporaries(&site.path().join("moved")).is_empty());
        assert_eq!(std::fs::read_dir(outside.path()).expect("ls").count(), 0);
    }
}
