//! EXTENDED requests: the OpenSSH extensions announced in VERSION (posix-rename, statvfs,
//! fstatvfs, fsync, limits, expand-path), and a named refusal for hard links.

use bytes::Bytes;

use super::{MAX_DATA, MAX_PACKET, Sftp};
use crate::error::FsError;
use crate::handles::Handle;
use crate::reply::{name_reply, ok, statvfs_reply};
use crate::wire::{Packet, Reader, fxp};

/// The extensions announced in VERSION, with their versions.
pub(super) const ANNOUNCED: &[(&[u8], &[u8])] = &[
    (b"posix-rename@openssh.com", b"1"),
    (b"statvfs@openssh.com", b"2"),
    (b"fstatvfs@openssh.com", b"2"),
    (b"fsync@openssh.com", b"1"),
    (b"limits@openssh.com", b"1"),
    (b"expand-path@openssh.com", b"1"),
];

impl Sftp {
    pub(super) fn extended(&mut self, id: u32, r: &mut Reader<'_>) -> Result<Bytes, FsError> {
        let name = r.string()?;
        match name {
            b"posix-rename@openssh.com" => self.rename(id, r, true),
            b"statvfs@openssh.com" => {
                let path = Self::path(r)?;
                let v = self.files.statvfs(&path)?;
                Ok(statvfs_reply(id, &v))
            }
            b"fstatvfs@openssh.com" => self.fstatvfs(id, r),
            b"fsync@openssh.com" => {
                let h = r.string()?;
                let Some(Handle::File(f)) = self.handles.get_mut(h) else {
                    return Err(FsError::Failed("invalid handle"));
                };
                f.file.sync_all()?;
                Ok(ok(id))
            }
            b"limits@openssh.com" => {
                let mut p = Packet::new(fxp::EXTENDED_REPLY, id);
                p.u64(MAX_PACKET as u64)
                    .u64(MAX_DATA as u64)
                    .u64(MAX_DATA as u64)
                    .u64(self.max_handles as u64);
                Ok(p.finish())
            }
            b"expand-path@openssh.com" => {
                let path = Self::path(r)?;
                Ok(name_reply(id, &path.absolute()))
            }
            b"hardlink@openssh.com" => Err(FsError::Refused(
                "hard links cannot be made on this server: upload a copy instead",
            )),
            _ => Err(FsError::Unsupported("extension not supported")),
        }
    }

    fn fstatvfs(&mut self, id: u32, r: &mut Reader<'_>) -> Result<Bytes, FsError> {
        let h = r.string()?;
        let path = match self.handles.get_mut(h) {
            Some(Handle::File(f)) => f.path.clone(),
            Some(Handle::Dir(d)) => d.path.clone(),
            None => return Err(FsError::Failed("invalid handle")),
        };
        let v = self.files.statvfs(&path)?;
        Ok(statvfs_reply(id, &v))
    }
}
