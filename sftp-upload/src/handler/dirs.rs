//! Directory requests: OPENDIR, READDIR (in batches, each entry with an `ls -l` long name),
//! MKDIR and RMDIR.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use nix::fcntl::AtFlags;
use nix::sys::stat::fstatat;

use super::{MAX_PACKET, Sftp};
use crate::error::FsError;
use crate::handles::{DirHandle, Handle};
use crate::longname::LongName;
use crate::reply::ok;
use crate::wire::{Attrs, Packet, Reader, StatusCode, fxp, status};

/// Entries per READDIR reply.
const DIR_BATCH: usize = 100;

impl Sftp {
    pub(super) fn opendir(&mut self, id: u32, r: &mut Reader<'_>) -> Result<Bytes, FsError> {
        let path = Self::path(r)?;
        let (fd, entries) = self.files.open_dir(&path)?;
        self.handle_reply(id, Handle::Dir(DirHandle { fd, path, entries }))
    }

    pub(super) fn readdir(&mut self, id: u32, r: &mut Reader<'_>) -> Result<Bytes, FsError> {
        let h = r.string()?;
        let Some(Handle::Dir(d)) = self.handles.get_mut(h) else {
            return Err(FsError::Failed("invalid handle"));
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let mut entries = Vec::new();
        let mut bytes = 0;
        while entries.len() < DIR_BATCH && bytes < (MAX_PACKET as usize) / 2 {
            let Some(name) = d.next_name() else {
                break;
            };
            let Ok(st) = fstatat(
                &d.fd,
                OsStr::from_bytes(&name),
                AtFlags::AT_SYMLINK_NOFOLLOW,
            ) else {
                continue; // gone since the listing was taken
            };
            let owner = self.names.user(st.st_uid).to_string();
            let group = self.names.group(st.st_gid).to_string();
            let long = LongName {
                name: &name,
                st_mode: st.st_mode,
                nlink: st.st_nlink,
                owner: &owner,
                group: &group,
                size: st.st_size as u64,
                mtime: st.st_mtime,
                now,
            }
            .format();
            bytes += name.len() * 2 + long.len() + 64;
            entries.push((name, long, Attrs::from_stat(&st)));
        }
        if entries.is_empty() {
            return Ok(status(id, StatusCode::Eof, "end of directory"));
        }
        let mut p = Packet::new(fxp::NAME, id);
        p.u32(entries.len() as u32);
        for (name, long, attrs) in &entries {
            p.string(name).string(long).attrs(attrs);
        }
        Ok(p.finish())
    }

    pub(super) fn mkdir(&mut self, id: u32, r: &mut Reader<'_>) -> Result<Bytes, FsError> {
        let path = Self::path(r)?;
        let attrs = r.attrs()?;
        self.quota.check_new_dir(&self.files)?;
        self.files.mkdir(&path, &attrs)?;
        self.quota.dir_made();
        tracing::info!(user = %self.user, op = "mkdir", path = %path.display(), "transfer");
        Ok(ok(id))
    }

    pub(super) fn rmdir(&mut self, id: u32, r: &mut Reader<'_>) -> Result<Bytes, FsError> {
        let path = Self::path(r)?;
        self.files.rmdir(&path)?;
        self.quota.dir_removed();
        tracing::info!(user = %self.user, op = "rmdir", path = %path.display(), "transfer");
        Ok(ok(id))
    }
}
