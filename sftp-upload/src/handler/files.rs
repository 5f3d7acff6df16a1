//! File requests: OPEN, READ (run off the request thread as a [`ReadJob`]), WRITE (checked
//! against the quota first) and CLOSE, which puts an atomic upload in place and writes the
//! transfer log's upload and download lines.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::{BufMut, Bytes};
use yadokari_site::LogText;

use super::{MAX_DATA, Sftp};
use crate::error::FsError;
use crate::handles::{FileHandle, Handle};
use crate::quota::Quota;
use crate::reply::{error_reply, ok};
use crate::wire::{Packet, Reader, StatusCode, fxp, open_flags, status};

/// A READ to run off the request thread.
pub struct ReadJob {
    /// The request's id, for the reply.
    pub id: u32,
    /// The open file.
    pub file: Arc<File>,
    /// Where to read from.
    pub offset: u64,
    /// How much the client asked for (capped at [`MAX_DATA`]).
    pub len: u32,
    /// The handle's count of bytes read, for the transfer log.
    pub counter: Arc<AtomicU64>,
}

impl ReadJob {
    /// Runs the read: DATA with what was read, or EOF at the end of the file.
    pub fn run(self) -> Bytes {
        let len = self.len.min(MAX_DATA) as usize;
        let mut p = Packet::with_capacity(fxp::DATA, self.id, 4 + len);
        let buf = p.buf_mut();
        let start = buf.len();
        buf.put_u32(0);
        let mut got = 0;
        while got < len {
            match yadokari_site::read::pread_append(
                &self.file,
                buf,
                len - got,
                self.offset + got as u64,
            ) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return error_reply(self.id, &FsError::from(e)),
            }
        }
        if got == 0 {
            return status(self.id, StatusCode::Eof, "end of file");
        }
        buf[start..start + 4].copy_from_slice(&(got as u32).to_be_bytes());
        self.counter.fetch_add(got as u64, Ordering::Relaxed);
        p.finish()
    }
}

impl Sftp {
    pub(super) fn read_job(&mut self, id: u32, r: &mut Reader<'_>) -> Result<ReadJob, FsError> {
        let h = r.string()?;
        let offset = r.u64()?;
        let len = r.u32()?;
        match self.handles.get_mut(h) {
            Some(Handle::File(f)) => Ok(ReadJob {
                id,
                file: f.file.clone(),
                offset,
                len,
                counter: f.read.clone(),
            }),
            _ => Err(FsError::Failed("invalid handle")),
        }
    }

    pub(super) fn open(&mut self, id: u32, r: &mut Reader<'_>) -> Result<Bytes, FsError> {
        let path = Self::path(r)?;
        let pflags = r.u32()?;
        let attrs = r.attrs()?;
        let writable = pflags & (open_flags::WRITE | open_flags::APPEND) != 0;
        let (file, upload) = if writable {
            self.quota.check_new_file(&self.files, &path, pflags)?;
            let t = self.files.open_write(&path, pflags, &attrs)?;
            (t.file, t.upload)
        } else {
            (self.files.open_read(&path)?, None)
        };
        self.handle_reply(
            id,
            Handle::File(FileHandle {
                file: Arc::new(file),
                path,
                upload,
                writable,
                written: 0,
                failed: false,
                read: Arc::new(AtomicU64::new(0)),
                opened: Instant::now(),
            }),
        )
    }

    pub(super) fn close(&mut self, id: u32, r: &mut Reader<'_>) -> Result<Bytes, FsError> {
        let h = r.string()?;
        match self.handles.remove(h) {
            Some(Handle::File(f)) => self.close_file(f)?,
            Some(Handle::Dir(_)) => {}
            None => return Err(FsError::Failed("invalid handle")),
        }
        Ok(ok(id))
    }

    fn close_file(&mut self, f: FileHandle) -> Result<(), FsError> {
        let ms = f.opened.elapsed().as_millis() as u64;
        let read = f.read.load(Ordering::Relaxed);
        let mut result = Ok(());
        if f.failed && f.upload.is_some() {
            // SECURITY: a partial upload must never replace the old file; dropping the upload
            // removes its temporary file.
            let size = f.file.metadata().map(|m| m.len()).unwrap_or(0);
            self.quota.abandoned(size);
            result = Err(FsError::Failed(
                "the upload failed part-way; the old file was kept as it was",
            ));
        } else if let Some(upload) = f.upload {
            // A claimed name holds this upload's own placeholder, not an old file.
            let old = match upload.claimed() {
                true => None,
                false => self.files.stat(&f.path, false).ok(),
            };
            result = upload.commit(&f.file);
            if result.is_ok() {
                let size = f.file.metadata().map(|m| m.len()).unwrap_or(0);
                self.quota.replaced(old.as_ref(), size);
            }
        }
        if f.writable {
            let outcome = if result.is_ok() { "ok" } else { "failed" };
            let web = if result.is_ok() {
                self.web_verdict(&f.path)
            } else {
                String::new()
            };
            tracing::info!(user = %self.user, op = "upload", path = %f.path.display(), bytes = f.written, ms, outcome, web = %LogText::str(&web), "transfer");
        }
        if read > 0 || !f.writable {
            tracing::info!(user = %self.user, op = "download", path = %f.path.display(), bytes = read, ms, "transfer");
        }
        result
    }

    pub(super) fn write(&mut self, id: u32, r: &mut Reader<'_>) -> Result<Bytes, FsError> {
        let h = r.string()?;
        let offset = r.u64()?;
        let data = r.string()?;
        let Some(Handle::File(f)) = self.handles.get_mut(h) else {
            return Err(FsError::Failed("invalid handle"));
        };
        if !f.writable {
            return Err(FsError::Refused("the file was not opened for writing"));
        }
        let result = write_at(f, offset, data, &self.quota);
        if result.is_err() {
            f.failed = true;
        }
        result.map(|()| ok(id))
    }
}

/// One WRITE: checked against the quota first, so a refused write changes nothing.
fn write_at(f: &mut FileHandle, offset: u64, data: &[u8], quota: &Quota) -> Result<(), FsError> {
    let before = f.file.metadata()?.len();
    let end = offset.saturating_add(data.len() as u64);
    quota.check_growth(end.saturating_sub(before))?;
    let mut file: &File = &f.file;
    if f.upload.is_none() && is_append(&f.file) {
        file.write_all(data)?;
    } else {
        f.file.write_all_at(data, offset)?;
    }
    let after = f.file.metadata()?.len();
    f.written += data.len() as u64;
    quota.grew(after.saturating_sub(before), f.upload.is_some());
    Ok(())
}

fn is_append(file: &File) -> bool {
    nix::fcntl::fcntl(file, nix::fcntl::FcntlArg::F_GETFL)
        .map(|fl| fl & libc::O_APPEND != 0)
        .unwrap_or(false)
}
