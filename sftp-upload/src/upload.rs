//! Atomic uploads: a file being uploaded is written to a temporary file beside its target and
//! renamed over it on close, so the web side serves the old version or the new one, never half
//! of one, and an aborted upload leaves the old file exactly as it was.
//!
//! The temporary name starts with `.ht`: the permission gate hides every `.ht*` file, so even
//! a request that guesses the name gets 403, never a half-written script. Dropping an
//! [`Upload`] that was not committed (connection cut, client killed, server stopped) removes
//! the temporary file; [`sweep`] removes those a crash left behind, at start-up.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicU64, Ordering};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{Mode, fstatat};
use nix::unistd::UnlinkatFlags;

use yadokari_site::Jail;

use crate::error::FsError;
use crate::files::chmod_fd;
use crate::walk::walk_site;

/// Every temporary upload file's name starts with this.
pub const TEMP_PREFIX: &[u8] = b".ht-yadokari-upload-";

/// An upload in progress: the temporary file's directory and names.
pub struct Upload {
    dir: OwnedFd,
    temp: OsString,
    target: OsString,
    /// The mode of a new file (used when there is no old one to keep).
    fresh_mode: u32,
    /// A mode the client set explicitly on the open handle (`put -p`), which wins.
    explicit_mode: Option<u32>,
    done: bool,
}

static COUNTER: AtomicU64 = AtomicU64::new(0);

impl Upload {
    /// Creates the temporary file for `target` in `dir`.
    pub fn begin(
        dir: OwnedFd,
        target: OsString,
        access: OFlag,
        fresh_mode: u32,
    ) -> Result<(Upload, File), FsError> {
        for _ in 0..16 {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let mut name = TEMP_PREFIX.to_vec();
            name.extend_from_slice(
                format!("{}-{n}-{:08x}", std::process::id(), nonce()).as_bytes(),
            );
            let temp = OsString::from(OsStr::from_bytes(&name));
            match nix::fcntl::openat(
                &dir,
                temp.as_os_str(),
                access | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o600),
            ) {
                Ok(fd) => {
                    let upload = Upload {
                        dir,
                        temp,
                        target,
                        fresh_mode,
                        explicit_mode: None,
                        done: false,
                    };
                    return Ok((upload, File::from(fd)));
                }
                Err(Errno::EEXIST) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Errno::EEXIST.into())
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
    pub fn commit(mut self, file: &File) -> Result<(), FsError> {
        // SECURITY: not following a link at the target's name: its mode could be that of a
        // file outside the site, and the rename replaces the link itself anyway.
        let old = fstatat(
            &self.dir,
            self.target.as_os_str(),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .ok()
        .filter(|st| st.st_mode & libc::S_IFMT == libc::S_IFREG);
        let mode = match (self.explicit_mode, old) {
            (Some(m), _) => m,
            // SECURITY: the permission bits are kept, never set-id or sticky bits: new content
            // must not inherit a setuid bit someone else gave the old file.
            (None, Some(st)) => st.st_mode & 0o777,
            (None, None) => self.fresh_mode,
        };
        chmod_fd(file.as_fd(), mode)?;
        nix::fcntl::renameat(
            &self.dir,
            self.temp.as_os_str(),
            &self.dir,
            self.target.as_os_str(),
        )?;
        self.done = true;
        Ok(())
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if !self.done {
            let _ =
                nix::unistd::unlinkat(&self.dir, self.temp.as_os_str(), UnlinkatFlags::NoRemoveDir);
        }
    }
}

/// A few random bits for temporary names, so they cannot be predicted by a script on the site.
fn nonce() -> u32 {
    let mut b = [0u8; 4];
    let _ = yadokari_site::random::fill(&mut b);
    u32::from_ne_bytes(b)
}

/// Removes the temporary upload files a crash left anywhere in the site of `jail`, without
/// following links. Returns how many it removed.
pub fn sweep(jail: &Jail) -> usize {
    let mut removed = 0;
    walk_site(jail, |dir, name, st| {
        if st.st_mode & libc::S_IFMT == libc::S_IFREG
            && Upload::is_temp_name(name.to_bytes())
            && nix::unistd::unlinkat(dir, name, UnlinkatFlags::NoRemoveDir).is_ok()
        {
            removed += 1;
        }
    });
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweep_removes_only_temporaries() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
        std::fs::write(dir.path().join("keep"), b"x").expect("write");
        std::fs::write(dir.path().join(".ht-yadokari-upload-1"), b"x").expect("write");
        std::fs::write(dir.path().join("sub/.ht-yadokari-upload-2"), b"x").expect("write");
        let jail = Jail::open(dir.path()).expect("jail");
        assert_eq!(sweep(&jail), 2);
        assert!(dir.path().join("keep").exists());
    }
}
