//! The path jail: every file of a site is reached relative to a descriptor of the site's root
//! with `openat2(RESOLVE_BENEATH)`, so the kernel itself refuses any `..`, absolute path or
//! symbolic link that would lead outside, at the moment the file is opened. A string check
//! alone cannot do this: a symlink swapped in after the check would escape.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, OpenHow, ResolveFlag, openat2};
use nix::sys::stat::{FileStat, Mode, fstat, fstatat};

/// Why a path could not be reached inside the site.
#[derive(Debug)]
pub enum JailError {
    /// Nothing there (or a component on the way is not a directory).
    NotFound,
    /// The path leads outside the site.
    Outside,
    /// Any other failure, with its cause.
    Io(io::Error),
}

impl std::fmt::Display for JailError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JailError::NotFound => f.write_str("no such file or directory"),
            JailError::Outside => f.write_str("the path leads outside the site"),
            JailError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for JailError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            JailError::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// The one classification of errnos both sides of the product use: the HTTP side answers 404 or
/// 403 from it, and the SFTP side's errors (`FsError`) pass every errno through it, so "no such
/// file" and "outside the site" mean the same thing on both.
impl From<Errno> for JailError {
    fn from(e: Errno) -> JailError {
        match e {
            Errno::ENOENT | Errno::ENOTDIR => JailError::NotFound,
            // RESOLVE_BENEATH answers EXDEV for every escape: `..` above the root, an absolute
            // path, or a symlink pointing out.
            Errno::EXDEV => JailError::Outside,
            other => JailError::Io(io::Error::from(other)),
        }
    }
}

/// A site root, held open.
#[derive(Debug)]
pub struct Jail {
    root: OwnedFd,
}

/// How many times an open is retried when the kernel reports a concurrent rename (`EAGAIN`).
const RACE_RETRIES: usize = 8;

impl Jail {
    /// Opens the directory `root` as a jail.
    pub fn open(root: &Path) -> io::Result<Jail> {
        let fd = nix::fcntl::open(
            root,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Jail { root: fd })
    }

    /// A jail on a directory already open (an `O_PATH` or read descriptor of it).
    pub fn from_fd(root: OwnedFd) -> Jail {
        Jail { root }
    }

    /// The root directory's descriptor.
    pub fn root(&self) -> BorrowedFd<'_> {
        self.root.as_fd()
    }

    /// Opens `rel` (relative to the root; empty means the root) with `flags`, following
    /// symlinks only while they stay inside the site.
    pub fn open_beneath(&self, rel: &Path, flags: OFlag, mode: Mode) -> Result<OwnedFd, JailError> {
        open_beneath_at(self.root.as_fd(), rel, flags, mode)
    }

    /// `stat` of `rel`, following symlinks that stay inside the site.
    pub fn stat(&self, rel: &Path) -> Result<FileStat, JailError> {
        if rel.as_os_str().is_empty() {
            return Ok(fstat(&self.root)?);
        }
        let fd = self.open_beneath(rel, OFlag::O_PATH, Mode::empty())?;
        Ok(fstat(&fd)?)
    }

    /// `lstat` of `rel`: the last component itself, not what a link points at. The directories
    /// on the way are reached inside the site.
    pub fn lstat(&self, rel: &Path) -> Result<FileStat, JailError> {
        let (parent, name) = split_last(rel);
        match name {
            None => Ok(fstat(&self.root)?),
            Some(name) if name == ".." || name == "." => Err(JailError::Outside),
            // A name directly in the root needs no walk: one fstatat on the root's descriptor
            // (this is the common case of every request, so it saves an open and a close).
            Some(name) if parent.as_os_str().is_empty() => {
                Ok(fstatat(&self.root, name, AtFlags::AT_SYMLINK_NOFOLLOW)?)
            }
            Some(name) => {
                let dir =
                    self.open_beneath(parent, OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty())?;
                Ok(fstatat(&dir, name, AtFlags::AT_SYMLINK_NOFOLLOW)?)
            }
        }
    }
}

impl Jail {
    /// Opens the directory that holds `rel` (inside the site) and returns it with `rel`'s last
    /// component, for the `*at` system calls that act on a name (`mkdirat`, `unlinkat`,
    /// `renameat2`, `fstatat`). `None` for the root itself, which has no parent in the site.
    /// The name is returned as given: callers pass only normalised paths, without `.` or `..`
    /// components, so a `*at` call on it cannot leave the directory.
    pub fn open_parent(&self, rel: &Path) -> Result<Option<(OwnedFd, OsString)>, JailError> {
        let (parent, name) = split_last(rel);
        match name {
            None => Ok(None),
            Some(name) if name == ".." || name == "." => Err(JailError::Outside),
            Some(name) => {
                let dir =
                    self.open_beneath(parent, OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty())?;
                Ok(Some((dir, name.to_os_string())))
            }
        }
    }
}

/// `openat2` with `RESOLVE_BENEATH` relative to `dir`, retried on rename races.
pub fn open_beneath_at(
    dir: BorrowedFd<'_>,
    rel: &Path,
    flags: OFlag,
    mode: Mode,
) -> Result<OwnedFd, JailError> {
    let rel: &Path = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    let mut last = Errno::EAGAIN;
    for _ in 0..RACE_RETRIES {
        let how = OpenHow::new()
            .flags(flags | OFlag::O_CLOEXEC)
            .mode(mode)
            .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS);
        match openat2(dir, rel, how) {
            Ok(fd) => return Ok(fd),
            Err(Errno::EAGAIN) | Err(Errno::EINTR) => last = Errno::EAGAIN,
            Err(e) => return Err(e.into()),
        }
    }
    Err(last.into())
}

/// Splits `a/b/c` into (`a/b`, `c`); a path with no name (empty) into (empty, None).
fn split_last(rel: &Path) -> (&Path, Option<&OsStr>) {
    let bytes = rel.as_os_str().as_bytes();
    let trimmed = bytes.strip_suffix(b"/").unwrap_or(bytes);
    if trimmed.is_empty() {
        return (Path::new(""), None);
    }
    match trimmed.iter().rposition(|&b| b == b'/') {
        Some(i) => (
            Path::new(OsStr::from_bytes(&trimmed[..i])),
            Some(OsStr::from_bytes(&trimmed[i + 1..])),
        ),
        None => (Path::new(""), Some(OsStr::from_bytes(trimmed))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn site() -> (tempfile::TempDir, tempfile::TempDir, Jail) {
        let outside = tempfile::tempdir().expect("tempdir");
        std::fs::write(outside.path().join("secret"), b"secret").expect("write");
        let root = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(root.path().join("sub")).expect("mkdir");
        std::fs::write(root.path().join("sub/file"), b"inside").expect("write");
        symlink("sub/file", root.path().join("inner-link")).expect("symlink");
        symlink(outside.path().join("secret"), root.path().join("out-abs")).expect("symlink");
        symlink(
            "../../../../../../../../etc/passwd",
            root.path().join("out-rel"),
        )
        .expect("symlink");
        let jail = Jail::open(root.path()).expect("jail");
        (root, outside, jail)
    }

    #[test]
    fn inside_paths_and_inner_links_resolve() {
        let (_r, _o, jail) = site();
        assert!(jail.stat(Path::new("sub/file")).is_ok());
        assert!(jail.stat(Path::new("inner-link")).is_ok());
        assert!(jail.stat(Path::new("")).is_ok());
        let l = jail.lstat(Path::new("inner-link")).expect("lstat");
        assert_eq!(l.st_mode & libc::S_IFMT, libc::S_IFLNK);
    }

    #[test]
    fn escapes_are_refused() {
        let (_r, _o, jail) = site();
        for p in [
            "out-abs",
            "out-rel",
            "..",
            "sub/../../etc/passwd",
            "/etc/passwd",
        ] {
            assert!(
                matches!(jail.stat(Path::new(p)), Err(JailError::Outside)),
                "{p}"
            );
        }
    }

    #[test]
    fn missing_is_not_found() {
        let (_r, _o, jail) = site();
        assert!(matches!(
            jail.stat(Path::new("nope")),
            Err(JailError::NotFound)
        ));
        assert!(matches!(
            jail.stat(Path::new("sub/file/x")),
            Err(JailError::NotFound)
        ));
    }

    #[test]
    fn open_parent_gives_the_directory_and_the_name() {
        let (root, _o, jail) = site();
        let (dir, name) = jail
            .open_parent(Path::new("sub/new"))
            .expect("parent")
            .expect("not the root");
        assert_eq!(name, OsString::from("new"));
        nix::sys::stat::mkdirat(&dir, name.as_os_str(), Mode::from_bits_truncate(0o755))
            .expect("mkdirat");
        assert!(root.path().join("sub/new").is_dir());
        assert!(jail.open_parent(Path::new("")).expect("root").is_none());
        assert!(matches!(
            jail.open_parent(Path::new("out-abs/x")),
            Err(JailError::Outside) | Err(JailError::NotFound)
        ));
        assert!(matches!(
            jail.open_parent(Path::new("sub/..")),
            Err(JailError::Outside)
        ));
    }

    #[test]
    fn split_last_handles_edges() {
        assert_eq!(
            split_last(Path::new("a/b/c")),
            (Path::new("a/b"), Some(OsStr::new("c")))
        );
        assert_eq!(
            split_last(Path::new("c")),
            (Path::new(""), Some(OsStr::new("c")))
        );
        assert_eq!(split_last(Path::new("")), (Path::new(""), None));
    }
}
