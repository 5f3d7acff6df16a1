//! A customer's home as the embedding server's control panel reaches it: through the very
//! [`SiteFiles`] an SFTP session uses (the same jail, the same rental-server rules: set-id bits
//! dropped on `chmod`, no link followed out of the home), so that what a customer may do in
//! the browser is exactly what they may do over SFTP. Call it on a thread that holds the
//! home owner's identity (`yadokari_site::identity::OwnerIdentity`), as a session's requests do.

use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;

use nix::fcntl::AtFlags;
use nix::sys::stat::fstatat;

use crate::files::SiteFiles;
use crate::path::SitePath;
use crate::wire::Attrs;

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
}

impl Home {
    /// Opens the home at `root` for `user` (`honour_client_mode` as the endpoint's).
    pub fn open(
        root: &std::path::Path,
        user: &str,
        honour_client_mode: bool,
    ) -> Result<Home, String> {
        SiteFiles::open(root, user, honour_client_mode)
            .map(|files| Home { files })
            .map_err(|e| e.to_string())
    }

    /// The home's owner (uid, gid): whose identity acts in it.
    pub fn owner(&self) -> (u32, u32) {
        self.files.owner()
    }

    /// `path` as the SFTP side reads it (`/` and `~` are the home, `..` stops there), shown
    /// with a leading `/`; `None` for a path with a NUL byte.
    pub fn normalise(path: &[u8]) -> Option<String> {
        SitePath::parse(path).ok().map(|p| p.display())
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

    /// `path` relative to the home, as a filesystem path (empty for the home itself).
    pub fn relative(path: &[u8]) -> Option<std::path::PathBuf> {
        let p = SitePath::parse(path).ok()?;
        Some(std::path::Path::new(std::ffi::OsStr::from_bytes(&p.absolute()[1..])).to_path_buf())
    }
}

fn parse(path: &[u8]) -> Result<SitePath, String> {
    SitePath::parse(path).map_err(|_| "a path with a NUL byte".to_string())
}
