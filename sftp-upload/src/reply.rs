//! Reply packets built from results: STATUS (with the one place internal errors are logged),
//! ATTRS, NAME and the statvfs extension's reply.

use bytes::Bytes;

use crate::error::FsError;
use crate::wire::{Attrs, Packet, StatusCode, fxp, status};

pub(crate) fn ok(id: u32) -> Bytes {
    status(id, StatusCode::Ok, "Success")
}

/// The STATUS reply for an error; internal errors are logged here, once.
pub fn error_reply(id: u32, e: &FsError) -> Bytes {
    if e.is_internal() {
        tracing::error!(error = %e, source = ?std::error::Error::source(e), "sftp request failed");
    }
    let (code, msg) = e.status();
    status(id, code, &msg)
}

pub(crate) fn attrs_reply(id: u32, a: &Attrs) -> Bytes {
    let mut p = Packet::new(fxp::ATTRS, id);
    p.attrs(a);
    p.finish()
}

pub(crate) fn name_reply(id: u32, name: &[u8]) -> Bytes {
    let mut p = Packet::new(fxp::NAME, id);
    p.u32(1).string(name).string(name).attrs(&Attrs::default());
    p.finish()
}

pub(crate) fn statvfs_reply(id: u32, v: &nix::sys::statvfs::Statvfs) -> Bytes {
    let mut p = Packet::new(fxp::EXTENDED_REPLY, id);
    p.u64(v.block_size())
        .u64(v.fragment_size())
        .u64(v.blocks())
        .u64(v.blocks_free())
        .u64(v.blocks_available())
        .u64(v.files())
        .u64(v.files_free())
        .u64(v.files_available())
        .u64(v.filesystem_id())
        .u64(v.flags().bits())
        .u64(v.name_max());
    p.finish()
}
