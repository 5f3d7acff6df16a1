//! One user's site as the SFTP side sees it: every file operation, reached through the shared
//! jail ([`yadokari_site::Jail`], `openat2(RESOLVE_BENEATH)`) and the `*at` system calls on the
//! descriptor of a file's parent directory, so no path, `..` or symlink leads outside, and a
//! rename racing with a request cannot redirect it.
//!
//! The rental-server rules live here: new files 0644 and directories 0755 whatever the client
//! asks (unless the site honours client modes), overwrites keep the old mode, chmod drops the
//! set-id and sticky bits, chown is refused, links cannot be made, the root stays put, FIFOs and
//! devices are never opened, and what is created belongs to the site's owner.
//!
//! Everything here blocks; the session calls it from its request thread.

use std::ffi::{CString, OsStr, OsString};
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, RenameFlags};
use nix::sys::stat::{FileStat, Mode, fstat, fstatat};
use nix::unistd::UnlinkatFlags;
use yadokari_site::Jail;

use crate::error::FsError;
use crate::path::SitePath;
use crate::upload::Upload;
use crate::wire::{Attrs, open_flags};

/// Mode of a file created over SFTP, unless the client's is honoured.
pub const NEW_FILE_MODE: u32 = 0o644;
/// Mode of a directory created over SFTP, unless the client's is honoured.
pub const NEW_DIR_MODE: u32 = 0o755;
const UMASK: u32 = 0o022;

/// A user's site, held open.
pub struct SiteFiles {
    jail: Jail,
    /// Owner of the site's root directory: what is created here is handed to it.
    owner: (u32, u32),
    /// Whether the process can and must hand new files to the owner (it runs as root).
    chown_new: bool,
    honour_client_mode: bool,
    user: String,
}

/// A file opened for writing: in place, or as an atomic upload.
pub struct WriteTarget {
    pub file: File,
    pub upload: Option<Upload>,
}

impl SiteFiles {
    /// Opens the site at `root` for `user`.
    pub fn open(
        root: &std::path::Path,
        user: &str,
        honour_client_mode: bool,
    ) -> Result<SiteFiles, FsError> {
        let jail = Jail::open(root)?;
        let st = fstat(jail.root())?;
        Ok(SiteFiles {
            jail,
            owner: (st.st_uid, st.st_gid),
            chown_new: nix::unistd::geteuid().is_root(),
            honour_client_mode,
            user: user.to_string(),
        })
    }

    /// The site's owner (uid, gid): the owner of its root directory.
    pub fn owner(&self) -> (u32, u32) {
        self.owner
    }

    /// The jail, for the start-up sweep.
    pub fn jail(&self) -> &Jail {
        &self.jail
    }

    /// `stat` (following links that stay inside) or `lstat`.
    pub fn stat(&self, p: &SitePath, follow: bool) -> Result<FileStat, FsError> {
        if follow {
            Ok(self.jail.stat(p.rel())?)
        } else {
            Ok(self.jail.lstat(p.rel())?)
        }
    }

    /// Opens a regular file for reading.
    pub fn open_read(&self, p: &SitePath) -> Result<File, FsError> {
        let fd = self
            .jail
            .open_beneath(p.rel(), OFlag::O_PATH, Mode::empty())?;
        regular(&fstat(&fd)?)?;
        reopen(&fd, OFlag::O_RDONLY)
    }

    /// Opens `p` for writing with the client's SFTP open flags. A truncating open, or one that
    /// creates the file, writes to a temporary file beside it that replaces it on close; other
    /// opens (resume, random writes) write in place.
    pub fn open_write(
        &self,
        p: &SitePath,
        pflags: u32,
        attrs: &Attrs,
    ) -> Result<WriteTarget, FsError> {
        if p.is_root() {
            return Err(FsError::Failed("is a directory"));
        }
        let existing = match self
            .jail
            .open_beneath(p.rel(), OFlag::O_PATH, Mode::empty())
        {
            Ok(fd) => Some(fd),
            Err(yadokari_site::JailError::NotFound) => None,
            Err(e) => return Err(e.into()),
        };
        let creat = pflags & open_flags::CREAT != 0;
        let mut access = if pflags & open_flags::READ != 0 {
            OFlag::O_RDWR
        } else {
            OFlag::O_WRONLY
        };
        if pflags & open_flags::APPEND != 0 {
            access |= OFlag::O_APPEND;
        }
        let exclusive = creat && pflags & open_flags::EXCL != 0;
        if let Some(fd) = &existing {
            if exclusive {
                return Err(Errno::EEXIST.into());
            }
            regular(&fstat(fd)?)?;
            if pflags & open_flags::TRUNC == 0 {
                return Ok(WriteTarget {
                    file: reopen(fd, access)?,
                    upload: None,
                });
            }
        } else if !creat {
            return Err(FsError::NotFound);
        }
        let (dir, name) = self.parent(p)?;
        let fresh_mode = self.new_mode(attrs, NEW_FILE_MODE);
        let (upload, file) = if exclusive {
            Upload::begin_exclusive(dir, name, access, fresh_mode)?
        } else {
            Upload::begin(dir, name, access, fresh_mode)?
        };
        self.hand_to_owner(file.as_fd())?;
        Ok(WriteTarget {
            file,
            upload: Some(upload),
        })
    }

    /// Opens a directory for listing: its descriptor, and a stream of its entries.
    pub fn open_dir(&self, p: &SitePath) -> Result<(OwnedFd, nix::dir::OwningIter), FsError> {
        let fd =
            self.jail
                .open_beneath(p.rel(), OFlag::O_RDONLY | OFlag::O_DIRECTORY, Mode::empty())?;
        let dup = fd.try_clone().map_err(FsError::from)?;
        let dir = nix::dir::Dir::from_fd(dup)?;
        Ok((fd, dir.into_iter()))
    }

    /// `mkdir`, 0755 (or the client's mode masked by 022 when honoured), owned by the owner.
    pub fn mkdir(&self, p: &SitePath, attrs: &Attrs) -> Result<(), FsError> {
        let (dir, name) = self.parent(p)?;
        let mode = self.new_mode(attrs, NEW_DIR_MODE);
        nix::sys::stat::mkdirat(&dir, name.as_os_str(), Mode::from_bits_truncate(0o700))?;
        let fd = nix::fcntl::openat(
            &dir,
            name.as_os_str(),
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        self.hand_to_owner(fd.as_fd())?;
        chmod_fd(fd.as_fd(), mode)?;
        Ok(())
    }

    /// `rmdir`; never the root.
    pub fn rmdir(&self, p: &SitePath) -> Result<(), FsError> {
        let (dir, name) = self.parent_not_root(p, "the site root cannot be removed")?;
        nix::unistd::unlinkat(&dir, name.as_os_str(), UnlinkatFlags::RemoveDir)?;
        Ok(())
    }

    /// Removes a file (or a link, not what it points to). Returns what it was.
    pub fn remove(&self, p: &SitePath) -> Result<FileStat, FsError> {
        let (dir, name) = self.parent_not_root(p, "the site root cannot be removed")?;
        let st = fstatat(&dir, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW)?;
        if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            return Err(FsError::Failed("is a directory: use rmdir"));
        }
        nix::unistd::unlinkat(&dir, name.as_os_str(), UnlinkatFlags::NoRemoveDir)?;
        Ok(st)
    }

    /// Renames; without `overwrite` an existing target is an error (SFTP v3 RENAME), with it the
    /// target is replaced atomically (`posix-rename@openssh.com`).
    pub fn rename(&self, from: &SitePath, to: &SitePath, overwrite: bool) -> Result<(), FsError> {
        let (fdir, fname) = self.parent_not_root(from, "the site root cannot be renamed")?;
        if to.is_root() {
            return Err(FsError::Refused("nothing can replace the site root"));
        }
        let (tdir, tname) = self.parent(to)?;
        let flags = if overwrite {
            RenameFlags::empty()
        } else {
            RenameFlags::RENAME_NOREPLACE
        };
        match nix::fcntl::renameat2(&fdir, fname.as_os_str(), &tdir, tname.as_os_str(), flags) {
            Err(Errno::EINVAL) if !overwrite => {
                // A file system without RENAME_NOREPLACE: check, then rename (what OpenSSH's
                // sftp-server does everywhere, with link+unlink).
                if fstatat(&tdir, tname.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW).is_ok() {
                    return Err(Errno::EEXIST.into());
                }
                nix::fcntl::renameat(&fdir, fname.as_os_str(), &tdir, tname.as_os_str())?;
                Ok(())
            }
            r => Ok(r?),
        }
    }

    /// `readlink`: the link's text as stored.
    pub fn readlink(&self, p: &SitePath) -> Result<Vec<u8>, FsError> {
        let (dir, name) = self.parent_not_root(p, "the site root is not a link")?;
        let target = nix::fcntl::readlinkat(&dir, name.as_os_str())?;
        Ok(target.as_bytes().to_vec())
    }

    /// `setstat` on a path (links inside the site are followed, as `chmod` does).
    pub fn setstat(&self, p: &SitePath, attrs: &Attrs) -> Result<Option<u32>, FsError> {
        let fd = self
            .jail
            .open_beneath(p.rel(), OFlag::O_PATH, Mode::empty())?;
        let st = fstat(&fd)?;
        if attrs.size.is_some() {
            regular(&st)?;
        }
        self.apply(fd.as_fd(), &st, attrs, p)
    }

    /// `fsetstat` on an open file.
    pub fn fsetstat(
        &self,
        file: &File,
        attrs: &Attrs,
        p: &SitePath,
    ) -> Result<Option<u32>, FsError> {
        let st = fstat(file)?;
        self.apply(file.as_fd(), &st, attrs, p)
    }

    /// Applies attributes: owner (refused unless unchanged), size, mode (set-id and sticky bits
    /// dropped), times. Returns the mode set, if any.
    fn apply(
        &self,
        fd: BorrowedFd<'_>,
        st: &FileStat,
        attrs: &Attrs,
        p: &SitePath,
    ) -> Result<Option<u32>, FsError> {
        if let Some((uid, gid)) = attrs.uid_gid
            && (uid, gid) != (st.st_uid, st.st_gid)
        {
            return Err(FsError::Refused(
                "chown and chgrp are not allowed: files belong to the site's owner",
            ));
        }
        if let Some(size) = attrs.size {
            let f = reopen(&fd, OFlag::O_WRONLY)?;
            f.set_len(size)?;
        }
        let mut set = None;
        if let Some(perm) = attrs.permissions {
            let mode = perm & 0o777;
            if perm & 0o7000 != 0 {
                tracing::warn!(
                    user = %self.user,
                    path = %p.display(),
                    asked = format_args!("{:04o}", perm & 0o7777),
                    applied = format_args!("{mode:04o}"),
                    "chmod: setuid, setgid and sticky bits are not allowed; dropped"
                );
            }
            chmod_fd(fd, mode)?;
            set = Some(mode);
        }
        if let Some((atime, mtime)) = attrs.times {
            let path = proc_path(fd);
            let times = [
                libc::timespec {
                    tv_sec: atime as libc::time_t,
                    tv_nsec: 0,
                },
                libc::timespec {
                    tv_sec: mtime as libc::time_t,
                    tv_nsec: 0,
                },
            ];
            // SAFETY: `path` is a NUL-terminated string and `times` two valid timespecs.
            let r = unsafe { libc::utimensat(libc::AT_FDCWD, path.as_ptr(), times.as_ptr(), 0) };
            Errno::result(r)?;
        }
        Ok(set)
    }

    /// `statvfs` of the file system holding `p`.
    pub fn statvfs(&self, p: &SitePath) -> Result<nix::sys::statvfs::Statvfs, FsError> {
        let fd = self
            .jail
            .open_beneath(p.rel(), OFlag::O_PATH, Mode::empty())?;
        Ok(nix::sys::statvfs::fstatvfs(&fd)?)
    }

    /// The mode for something new: the default, or the client's masked by the umask.
    fn new_mode(&self, attrs: &Attrs, default: u32) -> u32 {
        match attrs.permissions {
            Some(p) if self.honour_client_mode => p & 0o777 & !UMASK,
            _ => default,
        }
    }

    /// SECURITY: when the server runs as root, what it creates would belong to root; the gate
    /// then refuses to run it (owner mismatch) and, worse, it would not be the user's. Hand it
    /// to the site's owner, as OpenSSH running as the user would have made it.
    fn hand_to_owner(&self, fd: BorrowedFd<'_>) -> Result<(), FsError> {
        if self.chown_new {
            let path = proc_path(fd);
            // SAFETY: NUL-terminated path; plain integers.
            let r = unsafe { libc::chown(path.as_ptr(), self.owner.0, self.owner.1) };
            Errno::result(r)?;
        }
        Ok(())
    }

    /// The parent of something about to be created or renamed into place: never the root,
    /// never a name reserved for upload temporaries.
    fn parent(&self, p: &SitePath) -> Result<(OwnedFd, OsString), FsError> {
        if Upload::is_temp_name(p.name()) {
            return Err(FsError::Refused(
                "names starting with .ht-yadokari-upload- are reserved for uploads in progress",
            ));
        }
        self.parent_not_root(p, "the site root cannot be changed")
    }

    fn parent_not_root(
        &self,
        p: &SitePath,
        why: &'static str,
    ) -> Result<(OwnedFd, OsString), FsError> {
        match self.jail.open_parent(p.rel())? {
            Some(pair) => Ok(pair),
            None => Err(FsError::Refused(why)),
        }
    }
}

/// Refuses anything but a regular file: FIFOs, devices and sockets are never opened.
fn regular(st: &FileStat) -> Result<(), FsError> {
    match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => Ok(()),
        libc::S_IFDIR => Err(FsError::Failed("is a directory")),
        _ => Err(FsError::Refused(
            "not a regular file (a FIFO, socket or device): the server does not open it",
        )),
    }
}

/// `/proc/self/fd/N`: a path the kernel resolves to the very file `fd` refers to, whatever was
/// renamed or swapped in since it was opened.
pub fn fd_path(fd: BorrowedFd<'_>) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// [`fd_path`], for the C calls.
fn proc_path(fd: BorrowedFd<'_>) -> CString {
    CString::new(fd_path(fd).into_os_string().into_vec()).expect("no NUL in a number")
}

/// Reopens an `O_PATH` descriptor with real access, through `/proc/self/fd`: the same inode
/// that was checked, so nothing swapped in meanwhile is opened instead.
pub fn reopen(fd: &impl AsFd, flags: OFlag) -> Result<File, FsError> {
    let path = proc_path(fd.as_fd());
    let raw = nix::fcntl::open(
        OsStr::from_bytes(path.as_bytes()),
        flags | OFlag::O_CLOEXEC | OFlag::O_NOCTTY,
        Mode::empty(),
    )?;
    Ok(File::from(raw))
}

/// `chmod` of whatever `fd` refers to (an `O_PATH` descriptor too).
pub fn chmod_fd(fd: BorrowedFd<'_>, mode: u32) -> Result<(), FsError> {
    let path = proc_path(fd);
    // SAFETY: NUL-terminated path.
    let r = unsafe { libc::chmod(path.as_ptr(), mode as libc::mode_t) };
    Errno::result(r)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn site() -> (tempfile::TempDir, SiteFiles) {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        let files = SiteFiles::open(dir.path(), "t", false).expect("open");
        (dir, files)
    }

    fn p(s: &str) -> SitePath {
        SitePath::parse(s.as_bytes()).expect("path")
    }

    fn mode_of(path: &std::path::Path) -> u32 {
        std::fs::metadata(path).expect("stat").permissions().mode() & 0o7777
    }

    #[test]
    fn new_files_and_dirs_get_rental_server_modes() {
        let (dir, files) = site();
        let attrs = Attrs {
            permissions: Some(0o777),
            ..Attrs::default()
        };
        let t = files
            .open_write(
                &p("a.cgi"),
                open_flags::WRITE | open_flags::CREAT | open_flags::TRUNC,
                &attrs,
            )
            .expect("open");
        use std::io::Write;
        (&t.file).write_all(b"#!/bin/sh\n").expect("write");
        t.upload.expect("atomic").commit(&t.file).expect("commit");
        assert_eq!(mode_of(&dir.path().join("a.cgi")), 0o644);
        files.mkdir(&p("d"), &attrs).expect("mkdir");
        assert_eq!(mode_of(&dir.path().join("d")), 0o755);
    }

    #[test]
    fn overwrite_keeps_mode_and_abort_keeps_old_bytes() {
        let (dir, files) = site();
        let target = dir.path().join("bbs.cgi");
        std::fs::write(&target, b"old").expect("write");
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let flags = open_flags::WRITE | open_flags::CREAT | open_flags::TRUNC;
        let t = files
            .open_write(&p("bbs.cgi"), flags, &Attrs::default())
            .expect("open");
        use std::io::Write;
        (&t.file).write_all(b"half").expect("write");
        drop(t);
        assert_eq!(std::fs::read(&target).expect("read"), b"old");
        assert_eq!(
            std::fs::read_dir(dir.path()).expect("ls").count(),
            1,
            "temp left"
        );
        let t = files
            .open_write(&p("bbs.cgi"), flags, &Attrs::default())
            .expect("open");
        (&t.file).write_all(b"new").expect("write");
        t.upload.expect("atomic").commit(&t.file).expect("commit");
        assert_eq!(std::fs::read(&target).expect("read"), b"new");
        assert_eq!(mode_of(&target), 0o755);
    }

    #[test]
    fn an_upload_keeps_the_permission_bits_but_never_a_setuid_bit() {
        let (dir, files) = site();
        let target = dir.path().join("x.cgi");
        std::fs::write(&target, b"old").expect("write");
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o4750)).expect("chmod");
        let flags = open_flags::WRITE | open_flags::CREAT | open_flags::TRUNC;
        let t = files
            .open_write(&p("x.cgi"), flags, &Attrs::default())
            .expect("open");
        t.upload.expect("atomic").commit(&t.file).expect("commit");
        assert_eq!(mode_of(&target), 0o750);
    }

    #[test]
    fn chmod_drops_setid_and_chown_is_refused() {
        let (dir, files) = site();
        std::fs::write(dir.path().join("f"), b"x").expect("write");
        let set = files
            .setstat(
                &p("f"),
                &Attrs {
                    permissions: Some(0o4755),
                    ..Attrs::default()
                },
            )
            .expect("chmod");
        assert_eq!(set, Some(0o755));
        assert_eq!(mode_of(&dir.path().join("f")), 0o755);
        let e = files
            .setstat(
                &p("f"),
                &Attrs {
                    uid_gid: Some((12345, 12345)),
                    ..Attrs::default()
                },
            )
            .expect_err("chown");
        assert!(matches!(e, FsError::Refused(_)));
    }

    #[test]
    fn root_cannot_be_removed_or_renamed_and_rename_does_not_overwrite() {
        let (dir, files) = site();
        assert!(matches!(files.rmdir(&p("/")), Err(FsError::Refused(_))));
        assert!(matches!(
            files.rename(&p(".."), &p("x"), false),
            Err(FsError::Refused(_))
        ));
        std::fs::write(dir.path().join("a"), b"a").expect("write");
        std::fs::write(dir.path().join("b"), b"b").expect("write");
        assert!(files.rename(&p("a"), &p("b"), false).is_err());
        files.rename(&p("a"), &p("b"), true).expect("posix-rename");
        assert_eq!(std::fs::read(dir.path().join("b")).expect("read"), b"a");
    }

    #[test]
    fn upload_temporary_names_are_reserved() {
        let (_dir, files) = site();
        let flags = open_flags::WRITE | open_flags::CREAT | open_flags::TRUNC;
        assert!(matches!(
            files.open_write(&p(".ht-yadokari-upload-x"), flags, &Attrs::default()),
            Err(FsError::Refused(_))
        ));
        assert!(matches!(
            files.mkdir(&p("d/.ht-yadokari-upload-y"), &Attrs::default()),
            Err(FsError::Refused(_))
        ));
    }

    #[test]
    fn links_out_and_fifos_are_refused() {
        let (dir, files) = site();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("out")).expect("symlink");
        assert!(matches!(files.open_read(&p("out")), Err(FsError::Outside)));
        nix::unistd::mkfifo(&dir.path().join("fifo"), Mode::from_bits_truncate(0o644))
            .expect("mkfifo");
        assert!(matches!(
            files.open_read(&p("fifo")),
            Err(FsError::Refused(_))
        ));
    }
}
