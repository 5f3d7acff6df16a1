//! Requests on names: REMOVE, RENAME (plain, and replacing for `posix-rename@openssh.com`),
//! REALPATH and READLINK.

use bytes::Bytes;

use super::Sftp;
use crate::error::FsError;
use crate::reply::{name_reply, ok};
use crate::wire::Reader;

impl Sftp {
    pub(super) fn remove(&mut self, id: u32, r: &mut Reader<'_>) -> Result<Bytes, FsError> {
        let path = Self::path(r)?;
        let st = self.files.remove(&path)?;
        self.quota.removed(&st);
        tracing::info!(user = %self.user, op = "remove", path = %path.display(), bytes = st.st_size, "transfer");
        Ok(ok(id))
    }

    pub(super) fn realpath(&mut self, id: u32, r: &mut Reader<'_>) -> Result<Bytes, FsError> {
        let path = Self::path(r)?;
        Ok(name_reply(id, &path.absolute()))
    }

    pub(super) fn rename(
        &mut self,
        id: u32,
        r: &mut Reader<'_>,
        overwrite: bool,
    ) -> Result<Bytes, FsError> {
        let from = Self::path(r)?;
        let to = Self::path(r)?;
        // A file replaced by posix-rename no longer counts against the quota.
        let replaced = match (overwrite, self.files.stat(&from, false)) {
            (true, Ok(src)) => self
                .files
                .stat(&to, false)
                .ok()
                .filter(|dst| (dst.st_dev, dst.st_ino) != (src.st_dev, src.st_ino)),
            _ => None,
        };
        self.files.rename(&from, &to, overwrite)?;
        if let Some(st) = replaced {
            self.quota.removed(&st);
        }
        tracing::info!(user = %self.user, op = "rename", path = %from.display(), to = %to.display(), "transfer");
        Ok(ok(id))
    }

    pub(super) fn readlink(&mut self, id: u32, r: &mut Reader<'_>) -> Result<Bytes, FsError> {
        let path = Self::path(r)?;
        let target = self.files.readlink(&path)?;
        Ok(name_reply(id, &target))
    }
}
