//! One SFTP request → one reply, over a user's [`SiteFiles`]: parsing each request's fields,
//! calling the file operation, encoding the answer, and writing the transfer log. Every reply
//! carries the id of the request it answers, even when the request's body is malformed.
//!
//! READ requests are split off (as an [`Action::Read`]) so the session can run them concurrently;
//! everything else runs here, in order.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::{BufMut, Bytes};
use nix::fcntl::AtFlags;
use nix::sys::stat::fstatat;

use crate::error::FsError;
use crate::files::SiteFiles;
use crate::handles::{DirHandle, FileHandle, Handle, Handles};
use crate::longname::{LongName, Names};
use crate::path::SitePath;
use crate::quota::Quota;
use crate::reply::{attrs_reply, error_reply, name_reply, ok, statvfs_reply};
use crate::wire::{Attrs, Malformed, Packet, Reader, StatusCode, fxp, open_flags, status};

/// Largest packet accepted, and advertised in `limits@openssh.com` (OpenSSH's value).
pub const MAX_PACKET: u32 = 256 * 1024;
/// Largest READ or WRITE payload advertised.
pub const MAX_DATA: u32 = MAX_PACKET - 1024;
/// Entries per READDIR reply.
const DIR_BATCH: usize = 100;

/// The extensions announced in VERSION.
const EXTENSIONS: &[(&[u8], &[u8])] = &[
    (b"posix-rename@openssh.com", b"1"),
    (b"statvfs@openssh.com", b"2"),
    (b"fstatvfs@openssh.com", b"2"),
    (b"fsync@openssh.com", b"1"),
    (b"limits@openssh.com", b"1"),
    (b"expand-path@openssh.com", b"1"),
];

/// A READ to run off the request thread.
pub struct ReadJob {
    pub id: u32,
    pub file: Arc<File>,
    pub offset: u64,
    pub len: u32,
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

/// The state of one SFTP session.
pub struct Sftp {
    files: SiteFiles,
    handles: Handles,
    names: Names,
    user: String,
    quota: Quota,
    max_handles: usize,
    advisor: Option<(crate::Advisor, std::path::PathBuf)>,
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
    pub fn new(files: SiteFiles, user: &str, max_handles: usize, quota: Quota) -> Sftp {
        Sftp {
            files,
            handles: Handles::new(max_handles),
            names: Names::default(),
            user: user.to_string(),
            quota,
            max_handles,
            advisor: None,
        }
    }

    /// Logs, with each upload and chmod, what the web side will do with the file.
    pub fn advise_with(&mut self, advisor: crate::Advisor, site: std::path::PathBuf) {
        self.advisor = Some((advisor, site));
    }

    /// What the web side will do with `path`, for the transfer log ("" when not known).
    fn web_verdict(&self, path: &SitePath) -> String {
        match &self.advisor {
            Some((advise, site)) => advise(site, path.rel()).unwrap_or_default(),
            None => String::new(),
        }
    }

    /// The count of open files, for a stopping server.
    pub fn open_files(&self) -> std::sync::Arc<std::sync::atomic::AtomicUsize> {
        self.handles.open_files()
    }

    /// The site's owner.
    pub fn owner(&self) -> (u32, u32) {
        self.files.owner()
    }

    /// The VERSION reply to INIT.
    pub fn version() -> Bytes {
        let mut p = Packet::version(3);
        for (name, data) in EXTENSIONS {
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
            Err(e) => error_reply(id, &e),
        })
    }

    fn path(r: &mut Reader<'_>) -> Result<SitePath, FsError> {
        let raw = r.string()?;
        SitePath::parse(raw).map_err(|_| FsError::Failed("a path may not contain NUL"))
    }

    fn read_job(&mut self, id: u32, r: &mut Reader<'_>) -> Result<ReadJob, FsError> {
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

    fn open(&mut self, id: u32, r: &mut Reader<'_>) -> Result<Bytes, FsError> {
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
        let name = self
            .handles
            .insert(Handle::File(FileHandle {
                file: Arc::new(file),
                path,
                upload,
                writable,
                written: 0,
                failed: false,
                read: Arc::new(AtomicU64::new(0)),
                opened: Instant::now(),
            }))
            .map_err(|_| FsError::Failed("too many open files in this session"))?;
        let mut p = Packet::new(fxp::HANDLE, id);
        p.string(&name);
        Ok(p.finish())
    }

    fn close(&mut self, id: u32, r: &mut Reader<'_>) -> Result<Bytes, FsError> {
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
            let old = self.files.stat(&f.path, false).ok();
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
            tracing::info!(user = %self.user, op = "upload", path = %f.path.display(), bytes = f.written, ms, outcome, web, "transfer");
        }
        if read > 0 || !f.writable {
            tracing::info!(user = %self.user, op = "download", path = %f.path.display(), bytes = read, ms, "transfer");
        }
        result
    }

    fn write(&mut self, id: u32, r: &mut Reader<'_>) -> Result<Bytes, FsError> {
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

    fn stat(&mut self, id: u32, r: &mut Reader<'_>, follow: bool) -> Result<Bytes, FsError> {
        let path = Self::path(r)?;
        let st = self.files.stat(&path, follow)?;
        Ok(attrs_reply(id, &Attrs::from_stat(&st)))
    }

    fn fstat(&mut self, id: u32, r: &mut Reader<'_>) -> Result<Bytes, FsError> {
        let h = r.string()?;
        let st = match self.handles.get_mut(h) {
            Some(Handle::File(f)) => nix::sys::stat::fstat(&*f.file)?,
            Some(Handle::Dir(d)) => nix::sys::stat::fstat(&d.fd)?,
            None => return Err(FsError::Failed("invalid handle")),
        };
        Ok(attrs_reply(id, &Attrs::from_stat(&st)))
    }

    fn setstat(&mut self, id: u32, r: &mut Reader<'_>) -> Result<Bytes, FsError> {
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

    fn fsetstat(&mut self, id: u32, r: &mut Reader<'_>) -> Result<Bytes, FsError> {
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
            tracing::info!(user = %self.user, op = "chmod", path = %path.display(), mode = format_args!("{mode:04o}"), web, "transfer");
        }
    }

    fn opendir(&mut self, id: u32, r: &mut Reader<'_>) -> Result<Bytes, FsError> {
        let path = Self::path(r)?;
        let (fd, entries) = self.files.open_dir(&path)?;
        let name = self
            .handles
            .insert(Handle::Dir(DirHandle { fd, path, entries }))
            .map_err(|_| FsError::Failed("too many open files in this session"))?;
        let mut p = Packet::new(fxp::HANDLE, id);
        p.string(&name);
        Ok(p.finish())
    }

    fn readdir(&mut self, id: u32, r: &mut Reader<'_>) -> Result<Bytes, FsError> {
        let h = r.string()?;
        let Some(Handle::Dir(d)) = self.handles.get_mut(h) else {
            return Err(FsError::Failed("invalid handle"));
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let mut entries = Vec::new();
        let mut bytes = 0;
        while entries.len() < DIR_BATCH && bytes < (MAX_PACKET as usize) / 2 {
            let Some(name) = d.next_name() else {
                break;
            };
            let os = <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&name);
            let Ok(st) = fstatat(&d.fd, os, AtFlags::AT_SYMLINK_NOFOLLOW) else {
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

    fn remove(&mut self, id: u32, r: &mut Reader<'_>) -> Result<Bytes, FsError> {
        let path = Self::path(r)?;
        let st = self.files.remove(&path)?;
        self.quota.removed(&st);
        tracing::info!(user = %self.user, op = "remove", path = %path.display(), bytes = st.st_size, "transfer");
        Ok(ok(id))
    }

    fn mkdir(&mut self, id: u32, r: &mut Reader<'_>) -> Result<Bytes, FsError> {
        let path = Self::path(r)?;
        let attrs = r.attrs()?;
        self.files.mkdir(&path, &attrs)?;
        tracing::info!(user = %self.user, op = "mkdir", path = %path.display(), "transfer");
        Ok(ok(id))
    }

    fn rmdir(&mut self, id: u32, r: &mut Reader<'_>) -> Result<Bytes, FsError> {
        let path = Self::path(r)?;
        self.files.rmdir(&path)?;
        tracing::info!(user = %self.user, op = "rmdir", path = %path.display(), "transfer");
        Ok(ok(id))
    }

    fn realpath(&mut self, id: u32, r: &mut Reader<'_>) -> Result<Bytes, FsError> {
        let path = Self::path(r)?;
        Ok(name_reply(id, &path.absolute()))
    }

    fn rename(&mut self, id: u32, r: &mut Reader<'_>, overwrite: bool) -> Result<Bytes, FsError> {
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

    fn readlink(&mut self, id: u32, r: &mut Reader<'_>) -> Result<Bytes, FsError> {
        let path = Self::path(r)?;
        let target = self.files.readlink(&path)?;
        Ok(name_reply(id, &target))
    }

    fn extended(&mut self, id: u32, r: &mut Reader<'_>) -> Result<Bytes, FsError> {
        let name = r.string()?;
        match name {
            b"posix-rename@openssh.com" => self.rename(id, r, true),
            b"statvfs@openssh.com" => {
                let path = Self::path(r)?;
                let v = self.files.statvfs(&path)?;
                Ok(statvfs_reply(id, &v))
            }
            b"fstatvfs@openssh.com" => {
                let h = r.string()?;
                let path = match self.handles.get_mut(h) {
                    Some(Handle::File(f)) => f.path.clone(),
                    Some(Handle::Dir(d)) => d.path.clone(),
                    None => return Err(FsError::Failed("invalid handle")),
                };
                let v = self.files.statvfs(&path)?;
                Ok(statvfs_reply(id, &v))
            }
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

impl From<Malformed> for FsError {
    fn from(_: Malformed) -> FsError {
        FsError::BadMessage
    }
}

#[cfg(test)]
mod tests;
