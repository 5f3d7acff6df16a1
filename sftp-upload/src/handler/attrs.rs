//! Attribute requests: STAT, LSTAT and FSTAT; SETSTAT and FSETSTAT, with a size change checked
//! against the quota and a mode change written to the transfer log with its web verdict.

use bytes::Bytes;
use yadokari_site::LogText;

use super::Sftp;
use crate::error::FsError;
use crate::handles::Handle;
use crate::path::SitePath;
use crate::reply::{attrs_reply, ok};
use crate::wire::{Attrs, Reader};

impl Sftp {
    pub(super) fn stat(
        &mut self,
        id: u32,
        r: &mut Reader<'_>,
        follow: bool,
    ) -> Result<Bytes, FsError> {
        let path = Self::path(r)?;
        let st = self.files.stat(&path, follow)?;
        Ok(attrs_reply(id, &Attrs::from_stat(&st)))
    }

    pub(super) fn fstat(&mut self, id: u32, r: &mut Reader<'_>) -> Result<Bytes, FsError> {
        let h = r.string()?;
        let st = match self.handles.get_mut(h) {
            Some(Handle::File(f)) => nix::sys::stat::fstat(&*f.file)?,
            Some(Handle::Dir(d)) => nix::sys::stat::fstat(&d.fd)?,
            None => return Err(FsError::Failed("invalid handle")),
        };
        Ok(attrs_reply(id, &Attrs::from_stat(&st)))
    }

    pub(super) fn setstat(&mut self, id: u32, r: &mut Reader<'_>) -> Result<Bytes, FsError> {
        let path = Self::path(r)?;
        let attrs = r.attrs()?;
        let before = match attrs.size {
            Some(new) => {
                let old = self.files.stat(&path, true)?.st_size as u64;
                self.quota.check_growth(new.saturating_sub(old))?;
                Some(old)
            }
            None => None,
        };
        let set = self.files.setstat(&path, &attrs)?;
        if let (Some(old), Some(new)) = (before, attrs.size) {
            self.quota.resized(old, new);
        }
        self.log_chmod(&path, set);
        Ok(ok(id))
    }

    pub(super) fn fsetstat(&mut self, id: u32, r: &mut Reader<'_>) -> Result<Bytes, FsError> {
        let h = r.string()?;
        let attrs = r.attrs()?;
        let Some(Handle::File(f)) = self.handles.get_mut(h) else {
            return Err(FsError::Failed("invalid handle"));
        };
        let before = match attrs.size {
            Some(new) => {
                let old = f.file.metadata()?.len();
                self.quota.check_growth(new.saturating_sub(old))?;
                Some(old)
            }
            None => None,
        };
        let set = self.files.fsetstat(&f.file, &attrs, &f.path)?;
        if let (Some(old), Some(new)) = (before, attrs.size) {
            self.quota.resized(old, new);
        }
        if let (Some(mode), Some(upload)) = (set, f.upload.as_mut()) {
            upload.set_explicit_mode(mode);
        }
        let path = f.path.clone();
        self.log_chmod(&path, set);
        Ok(ok(id))
    }

    fn log_chmod(&self, path: &SitePath, set: Option<u32>) {
        if let Some(mode) = set {
            let web = self.web_verdict(path);
            tracing::info!(user = %self.user, op = "chmod", path = %path.display(), mode = format_args!("{mode:04o}"), web = %LogText::str(&web), "transfer");
        }
    }
}
