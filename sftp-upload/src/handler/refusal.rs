//! The log line of a refused request: once, at the boundary where the request becomes its
//! STATUS reply, with the user, the operation, the path it named (escaped) and the reason the
//! client is given (for a quota, the limit and the usage). Only what the server's rules or the
//! site refused is logged here; internal errors are logged by `reply`, and the everyday misses
//! (no such file, an invalid handle, an unsupported extension) are not logged at all.

use yadokari_site::LogText;

use super::Sftp;
use crate::error::FsError;
use crate::handles::Handle;
use crate::path::SitePath;
use crate::wire::{Reader, fxp};

impl Sftp {
    /// Logs `e` if it is a refusal of the request `packet` (type, id, fields).
    pub(super) fn log_refusal(&mut self, packet: &[u8], e: &FsError) {
        if !e.is_refusal() {
            return;
        }
        let mut r = Reader::new(packet);
        let (Ok(kind), Ok(_id)) = (r.u8(), r.u32()) else {
            return;
        };
        let (op, path) = self.op_and_path(kind, &mut r);
        tracing::info!(user = %self.user, op = %op, path = %path, reason = %e, "sftp request refused");
    }

    /// The operation's name and the path the request named (or its handle's path).
    fn op_and_path(&mut self, kind: u8, r: &mut Reader<'_>) -> (String, String) {
        let op = match kind {
            fxp::OPEN => "open",
            fxp::CLOSE => "close",
            fxp::WRITE => "write",
            fxp::SETSTAT => "setstat",
            fxp::FSETSTAT => "fsetstat",
            fxp::REMOVE => "remove",
            fxp::MKDIR => "mkdir",
            fxp::RMDIR => "rmdir",
            fxp::RENAME => "rename",
            fxp::SYMLINK => "symlink",
            fxp::EXTENDED => {
                let name = r.string().unwrap_or_default();
                return (LogText(name).to_string(), path_field(r));
            }
            _ => "request",
        };
        let path = match kind {
            fxp::CLOSE | fxp::WRITE | fxp::FSETSTAT => self.handle_path(r),
            _ => path_field(r),
        };
        (op.to_string(), path)
    }

    fn handle_path(&mut self, r: &mut Reader<'_>) -> String {
        let name = r.string().unwrap_or_default();
        match self.handles.get_mut(name) {
            Some(Handle::File(f)) => f.path.display(),
            Some(Handle::Dir(d)) => d.path.display(),
            None => String::new(),
        }
    }
}

/// The next field as a site path, for the log.
fn path_field(r: &mut Reader<'_>) -> String {
    match r.string().map(SitePath::parse) {
        Ok(Ok(p)) => p.display(),
        Ok(Err(_)) => "(a path with NUL)".to_string(),
        Err(_) => String::new(),
    }
}
