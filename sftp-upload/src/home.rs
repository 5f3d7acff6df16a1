//! A customer's home as the embedding server's control panel reaches it: through the very
//! [`SiteFiles`] an SFTP session uses (the same jail, the same rental-server rules: set-id bits
//! dropped on `chmod`, no link followed out of the home), so that what a customer may do in
//! the browser is exactly what they may do over SFTP. Call it on a thread that holds the
//! home owner's identity (`yadokari_site::identity::OwnerIdentity`), as a session's requests do.

use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;

use nix::fcntl::AtFlags;
use nix::sys::stat::{FileStat, fstatat};

use crate::files::{SiteFiles, WriteTarget};
use crate::path::SitePath;
use crate::quota::Quota;
use crate::wire::{Attrs, open_flags};

/// The most entries [`Home::list`] reads.
pub const MAX_LISTED: usize = 100_000;

/// One entry of a directory, or one file.
#[derive(Clone, Debug)]
pub struct Entry {
    /// Its name (bytes, as on disk).
    pub name: Vec<u8>,
    /// `st_mode`: type and permission bits (of the link itself for a link).
    pub mode: u32,
    pub size: u64,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
}

impl Entry {
    /// A directory.
    pub fn is_dir(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFDIR
    }

    /// A symbolic link.
    pub fn is_link(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFLNK
    }
}

/// A home, held open.
pub struct Home {
    files: SiteFiles,
    root: std::path::PathBuf,
    /// The user's quota, shared with their SFTP sessions.
    quota: Option<Quota>,
}

impl crate::Endpoint {
    /// `user`'s home, with their quota (the figure their SFTP sessions keep).
    pub fn home(&self, user: &crate::User) -> Result<Home, String> {
        let config = self.config();
        let files = SiteFiles::open(&user.site, &user.name, config.honour_client_mode)
            .map_err(|e| e.to_string())?;
        let quota = Quota::new(
            user.quota,
            self.usage(&user.name),
            config.limits.quota_rescan,
        );
        Ok(Home {
            files,
            root: user.site.clone(),
            quota: Some(quota),
        })
    }
}

impl Home {
    /// Opens the home at `root` for `user` (`honour_client_mode` as the endpoint's), with no
    /// quota.
    pub fn open(
        root: &std::path::Path,
        user: &str,
        honour_client_mode: bool,
    ) -> Result<Home, String> {
        SiteFiles::open(root, user, honour_client_mode)
            .map(|files| Home {
                files,
                root: root.to_path_buf(),
                quota: None,
            })
            .map_err(|e| e.to_string())
    }

    /// Where the home is.
    pub fn root(&self) -> &std::path::Path {
        &self.root
    }

    /// The home's owner (uid, gid): whose identity acts in it.
    pub fn owner(&self) -> (u32, u32) {
        self.files.owner()
    }

    /// `path` as the SFTP side reads it (`/` and `~` are the home, `..` stops there), with a
    /// leading `/`: the very bytes, as text; `None` for a path with a NUL byte or one that is not
    /// UTF-8 (a page cannot name it without changing it).
    pub fn normalise(path: &[u8]) -> Option<String> {
        SitePath::parse(path)
            .ok()
            .and_then(|p| String::from_utf8(p.absolute()).ok())
    }

    /// The entry at `path` (not following a link at its end).
    pub fn stat(&self, path: &[u8]) -> Result<Entry, String> {
        let p = parse(path)?;
        let st = self.files.stat(&p, false).map_err(|e| e.to_string())?;
        Ok(Entry {
            name: p.name().to_vec(),
            mode: st.st_mode,
            size: st.st_size as u64,
            mtime: st.st_mtime,
        })
    }

    /// The entries of the directory at `path`, by name (`.` and `..` left out).
    pub fn list(&self, path: &[u8]) -> Result<Vec<Entry>, String> {
        let p = parse(path)?;
        let (fd, entries) = self.files.open_dir(&p).map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        for entry in entries.flatten() {
            if out.len() >= MAX_LISTED {
                return Err(format!(
                    "the folder holds more than {MAX_LISTED} entries, more than a page can list; use SFTP"
                ));
            }
            let name = entry.file_name();
            if name.to_bytes() == b"." || name.to_bytes() == b".." {
                continue;
            }
            let Ok(st) = fstatat(fd.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW) else {
                continue;
            };
            out.push(Entry {
                name: name.to_bytes().to_vec(),
                mode: st.st_mode,
                size: st.st_size as u64,
                mtime: st.st_mtime,
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// `chmod` of `path` to `mode` (permission bits), with the rules of an SFTP `setstat`;
    /// the mode applied.
    pub fn chmod(&self, path: &[u8], mode: u32) -> Result<u32, String> {
        let p = parse(path)?;
        let attrs = Attrs {
            size: None,
            uid_gid: None,
            permissions: Some(mode & 0o7777),
            times: None,
        };
        self.files.setstat(&p, &attrs).map_err(|e| e.to_string())?;
        let st = self.files.stat(&p, true).map_err(|e| e.to_string())?;
        Ok(st.st_mode & 0o7777)
    }

    /// Makes the directory `path` (0755, as over SFTP).
    pub fn mkdir(&self, path: &[u8]) -> Result<(), String> {
        let p = parse(path)?;
        if let Some(q) = &self.quota {
            q.check_new_dir(&self.files).map_err(|e| e.to_string())?;
        }
        self.files
            .mkdir(&p, &Attrs::default())
            .map_err(|e| e.to_string())?;
        if let Some(q) = &self.quota {
            q.dir_made();
        }
        Ok(())
    }

    /// Renames `from` to `to`, which must not exist.
    pub fn rename(&self, from: &[u8], to: &[u8]) -> Result<(), String> {
        self.files
            .rename(&parse(from)?, &parse(to)?, false)
            .map_err(|e| e.to_string())
    }

    /// Removes a file, a link or an empty directory.
    pub fn remove(&self, path: &[u8]) -> Result<(), String> {
        let p = parse(path)?;
        let st = self.files.stat(&p, false).map_err(|e| e.to_string())?;
        if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            self.files.rmdir(&p).map_err(|e| match e.to_string() {
                e if e.contains("not empty") => {
                    "the folder is not empty: delete what it holds first".to_string()
                }
                e => e,
            })?;
            if let Some(q) = &self.quota {
                q.dir_removed();
            }
        } else {
            let gone = self.files.remove(&p).map_err(|e| e.to_string())?;
            if let Some(q) = &self.quota {
                q.removed(&gone);
            }
        }
        Ok(())
    }

    /// Opens the file `path` for reading (a regular file; a link is followed inside the home).
    pub fn open_read(&self, path: &[u8]) -> Result<std::fs::File, String> {
        self.files
            .open_read(&parse(path)?)
            .map_err(|e| e.to_string())
    }

    /// Starts writing `path` as an SFTP upload is written: into a temporary file beside it
    /// that replaces it atomically on [`Writer::commit`] (keeping the old file's mode; a new
    /// file gets 0644), counted against the quota as it grows.
    pub fn write(&self, path: &[u8]) -> Result<Writer<'_>, String> {
        let p = parse(path)?;
        if let Some(q) = &self.quota {
            q.check_new_file(&self.files, &p, open_flags::CREAT)
                .map_err(|e| e.to_string())?;
        }
        let target = self
            .files
            .open_write(
                &p,
                open_flags::WRITE | open_flags::CREAT | open_flags::TRUNC,
                &Attrs::default(),
            )
            .map_err(|e| e.to_string())?;
        Ok(Writer {
            home: self,
            path: p,
            target: Some(target),
            written: 0,
        })
    }

    /// `path` relative to the home, as a filesystem path (empty for the home itself).
    pub fn relative(path: &[u8]) -> Option<std::path::PathBuf> {
        let p = SitePath::parse(path).ok()?;
        Some(std::path::Path::new(std::ffi::OsStr::from_bytes(&p.absolute()[1..])).to_path_buf())
    }
}

/// A file being written (see [`Home::write`]); dropped before [`Writer::commit`], it leaves
/// nothing behind.
pub struct Writer<'a> {
    home: &'a Home,
    path: SitePath,
    target: Option<WriteTarget>,
    written: u64,
}

impl Writer<'_> {
    /// Appends `bytes`; refused when the quota would be passed.
    pub fn write_all(&mut self, bytes: &[u8]) -> Result<(), String> {
        if let Some(q) = &self.home.quota {
            q.check_growth(bytes.len() as u64)
                .map_err(|e| e.to_string())?;
        }
        let target = self.target.as_mut().ok_or("the file is closed")?;
        target.file.write_all(bytes).map_err(|e| e.to_string())?;
        self.written += bytes.len() as u64;
        if let Some(q) = &self.home.quota {
            q.grew(bytes.len() as u64, true);
        }
        Ok(())
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Puts the file in place; its mode.
    pub fn commit(mut self) -> Result<u32, String> {
        let target = self.target.take().ok_or("the file is closed")?;
        let old: Option<FileStat> = self.home.files.stat(&self.path, false).ok();
        match target.upload {
            Some(upload) => upload.commit(&target.file).map_err(|e| e.to_string())?,
            None => return Err("the file was not written as an upload".into()),
        }
        if let Some(q) = &self.home.quota {
            q.replaced(old.as_ref(), self.written);
        }
        let st = self
            .home
            .files
            .stat(&self.path, false)
            .map_err(|e| e.to_string())?;
        Ok(st.st_mode & 0o7777)
    }
}

impl Drop for Writer<'_> {
    fn drop(&mut self) {
        // Not committed: the temporary file goes with the upload; its bytes no longer count.
        if self.target.take().is_some()
            && let Some(q) = &self.home.quota
        {
            q.abandoned(self.written);
        }
    }
}

fn parse(path: &[u8]) -> Result<SitePath, String> {
    SitePath::parse(path).map_err(|_| "a path with a NUL byte".to_string())
}
