//! A file written whole before it has a name: nameless (`O_TMPFILE`), or where the file system
//! has none (NFS, older overlayfs) under a temporary name that is removed when the scratch file
//! is dropped. [`Scratch::link_to`] then names it in one step, failing when the name exists:
//! several processes racing to make one file (replicas of a container stack making the SSH
//! host key) agree on the first, and no one reads a half-written file. The health check uses
//! one to test that a directory can be written without leaving anything there.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// A file in a directory, not yet (or only temporarily) named.
pub struct Scratch {
    file: File,
    /// The temporary name, where nameless files are not to be had.
    named: Option<PathBuf>,
}

impl Scratch {
    /// A new empty file in `dir`, mode 0600; `stem` names the temporary where one is needed.
    pub fn new(dir: &Path, stem: &str) -> io::Result<Scratch> {
        let nameless = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_TMPFILE)
            .mode(0o600)
            .open(dir);
        match nameless {
            Ok(file) => Ok(Scratch { file, named: None }),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EOPNOTSUPP | libc::EISDIR | libc::EINVAL)
                ) =>
            {
                let name = dir.join(format!(".{stem}.{}.tmp", std::process::id()));
                let _ = std::fs::remove_file(&name);
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&name)?;
                Ok(Scratch {
                    file,
                    named: Some(name),
                })
            }
            Err(e) => Err(e),
        }
    }

    /// The file, to write.
    pub fn file(&mut self) -> &mut File {
        &mut self.file
    }

    /// Gives the file the name `path`; `EEXIST` when something has it already.
    pub fn link_to(&self, path: &Path) -> nix::Result<()> {
        use nix::fcntl::{AT_FDCWD, AtFlags};
        match &self.named {
            Some(name) => nix::unistd::linkat(AT_FDCWD, name, AT_FDCWD, path, AtFlags::empty()),
            // A nameless file is linked through /proc (by descriptor, AT_EMPTY_PATH, would
            // need CAP_DAC_READ_SEARCH).
            None => nix::unistd::linkat(
                AT_FDCWD,
                format!("/proc/self/fd/{}", self.file.as_raw_fd()).as_str(),
                AT_FDCWD,
                path,
                AtFlags::AT_SYMLINK_FOLLOW,
            ),
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(name) = &self.named {
            let _ = std::fs::remove_file(name);
        }
    }
}
