//! One SFTP request → one reply, over a user's [`SiteFiles`]: the session's state, the dispatch
//! by packet type, and the parts every request family shares (paths, the transfer log's web
//! verdict, the end of the session). Every reply carries the id of the request it answers, even
//! when the request's body is malformed.
//!
//! The requests themselves are split by family: [`files`] (open, read, write, close),
//! [`dirs`] (opendir, readdir, mkdir, rmdir), [`attrs`] (stat and setstat), [`names`] (remove,
//! rename, realpath, readlink) and [`extensions`] (the OpenSSH extensions announced in VERSION).
//!
//! A refused request is logged once, with its reason (`refusal`).
//!
//! READ requests are split off (as an [`Action::Read`]) so the session can run them concurrently;
//! everything else runs here, in order.

mod attrs;
mod dirs;
mod extensions;
mod files;
mod names;
mod refusal;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use bytes::Bytes;

use crate::error::FsError;
use crate::files::SiteFiles;
use crate::handles::{Handle, Handles, TooMany};
use crate::longname::Names;
use crate::path::SitePath;
use crate::quota::Quota;
use crate::reply::error_reply;
use crate::wire::{Packet, Reader, StatusCode, fxp, status};

pub use files::ReadJob;

/// Largest packet accepted, and advertised in `limits@openssh.com` (OpenSSH's value).
pub const MAX_PACKET: u32 = 256 * 1024;
/// Largest READ or WRITE payload advertised.
pub const MAX_DATA: u32 = MAX_PACKET - 1024;

/// The state of one SFTP session.
pub struct Sftp {
    files: SiteFiles,
    handles: Handles,
    names: Names,
    user: String,
    quota: Quota,
    max_handles: usize,
    advisor: Option<(crate::Advisor, PathBuf)>,
}

/// What the session does with a request.
pub enum Action {
    /// Send this reply.
    Reply(Bytes),
    /// Run this read, concurrently with other reads.
    Read(ReadJob),
}

impl Sftp {
    /// A session for `user` on `files`.
    pub fn new(files: SiteFiles, user: &str, handles: Handles, quota: Quota) -> Sftp {
        let max_handles = handles.max();
        Sftp {
            files,
            handles,
            names: Names::default(),
            user: user.to_string(),
            quota,
            max_handles,
            advisor: None,
        }
    }

    /// Logs, with each upload and chmod, what the web side will do with the file.
    pub fn advise_with(&mut self, advisor: crate::Advisor, site: PathBuf) {
        self.advisor = Some((advisor, site));
    }

    /// What the web side will do with `path`, for the transfer log ("" when not known).
    fn web_verdict(&self, path: &SitePath) -> String {
        match &self.advisor {
            Some((advise, site)) => advise(site, path.rel()).map(|a| a.line).unwrap_or_default(),
            None => String::new(),
        }
    }

    /// The count of open files, for a stopping server.
    pub fn open_files(&self) -> Arc<AtomicUsize> {
        self.handles.open_files()
    }

    /// The site's owner.
    pub fn owner(&self) -> (u32, u32) {
        self.files.owner()
    }

    /// The VERSION reply to INIT.
    pub fn version() -> Bytes {
        let mut p = Packet::version(3);
        for (name, data) in extensions::ANNOUNCED {
            p.string(name).string(data);
        }
        p.finish()
    }

    /// Handles one request (`type`, `id`, fields).
    pub fn handle(&mut self, packet: &[u8]) -> Action {
        let mut r = Reader::new(packet);
        let (Ok(kind), Ok(id)) = (r.u8(), r.u32()) else {
            return Action::Reply(status(0, StatusCode::BadMessage, "packet too short"));
        };
        if kind == fxp::READ {
            return match self.read_job(id, &mut r) {
                Ok(job) => Action::Read(job),
                Err(e) => Action::Reply(error_reply(id, &e)),
            };
        }
        let result = match kind {
            fxp::INIT => return Action::Reply(Self::version()),
            fxp::OPEN => self.open(id, &mut r),
            fxp::CLOSE => self.close(id, &mut r),
            fxp::WRITE => self.write(id, &mut r),
            fxp::LSTAT => self.stat(id, &mut r, false),
            fxp::STAT => self.stat(id, &mut r, true),
            fxp::FSTAT => self.fstat(id, &mut r),
            fxp::SETSTAT => self.setstat(id, &mut r),
            fxp::FSETSTAT => self.fsetstat(id, &mut r),
            fxp::OPENDIR => self.opendir(id, &mut r),
            fxp::READDIR => self.readdir(id, &mut r),
            fxp::REMOVE => self.remove(id, &mut r),
            fxp::MKDIR => self.mkdir(id, &mut r),
            fxp::RMDIR => self.rmdir(id, &mut r),
            fxp::REALPATH => self.realpath(id, &mut r),
            fxp::RENAME => self.rename(id, &mut r, false),
            fxp::READLINK => self.readlink(id, &mut r),
            fxp::SYMLINK => Err(FsError::Refused(
                "symbolic links cannot be made on this server: upload a copy instead",
            )),
            fxp::EXTENDED => self.extended(id, &mut r),
            _ => Err(FsError::Unsupported("operation not supported")),
        };
        Action::Reply(match result {
            Ok(reply) => reply,
            Err(e) => {
                self.log_refusal(packet, &e);
                error_reply(id, &e)
            }
        })
    }

    /// The next field, as a path.
    fn path(r: &mut Reader<'_>) -> Result<SitePath, FsError> {
        let raw = r.string()?;
        SitePath::parse(raw).map_err(|_| FsError::Failed("a path may not contain NUL"))
    }

    /// Stores a new handle and answers with its name.
    fn handle_reply(&mut self, id: u32, handle: Handle) -> Result<Bytes, FsError> {
        let name = self
            .handles
            .insert(handle)
            .map_err(|too_many| match too_many {
                TooMany::Session => FsError::Failed("too many open files in this session"),
                TooMany::Server => FsError::Failed(
                    "the server has as many files open as it allows; close some and try again",
                ),
            })?;
        let mut p = Packet::new(fxp::HANDLE, id);
        p.string(&name);
        Ok(p.finish())
    }

    /// Ends the session: uploads never closed are abandoned (their temporary files removed,
    /// the old files untouched), and logged.
    pub fn finish(&mut self) {
        for h in self.handles.drain() {
            if let Handle::File(f) = h
                && f.upload.is_some()
            {
                let size = f.file.metadata().map(|m| m.len()).unwrap_or(0);
                self.quota.abandoned(size);
                tracing::info!(user = %self.user, op = "upload", path = %f.path.display(), bytes = f.written, outcome = "aborted", "transfer");
            }
        }
    }
}

#[cfg(test)]
mod tests;
