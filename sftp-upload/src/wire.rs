//! The SFTP version 3 wire format (draft-ietf-secsh-filexfer-02, plus the extensions of
//! OpenSSH's `PROTOCOL` file): packet types, status codes, attributes, and a bounds-checked
//! reader and a writer for the fields. Names and paths stay bytes from end to end.

use bytes::{BufMut, Bytes, BytesMut};

/// Packet types.
pub mod fxp {
    pub const INIT: u8 = 1;
    pub const VERSION: u8 = 2;
    pub const OPEN: u8 = 3;
    pub const CLOSE: u8 = 4;
    pub const READ: u8 = 5;
    pub const WRITE: u8 = 6;
    pub const LSTAT: u8 = 7;
    pub const FSTAT: u8 = 8;
    pub const SETSTAT: u8 = 9;
    pub const FSETSTAT: u8 = 10;
    pub const OPENDIR: u8 = 11;
    pub const READDIR: u8 = 12;
    pub const REMOVE: u8 = 13;
    pub const MKDIR: u8 = 14;
    pub const RMDIR: u8 = 15;
    pub const REALPATH: u8 = 16;
    pub const STAT: u8 = 17;
    pub const RENAME: u8 = 18;
    pub const READLINK: u8 = 19;
    pub const SYMLINK: u8 = 20;
    pub const STATUS: u8 = 101;
    pub const HANDLE: u8 = 102;
    pub const DATA: u8 = 103;
    pub const NAME: u8 = 104;
    pub const ATTRS: u8 = 105;
    pub const EXTENDED: u8 = 200;
    pub const EXTENDED_REPLY: u8 = 201;
}

/// Status codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum StatusCode {
    Ok = 0,
    Eof = 1,
    NoSuchFile = 2,
    PermissionDenied = 3,
    Failure = 4,
    BadMessage = 5,
    OpUnsupported = 8,
}

/// Open flags (`SSH_FXF_*`).
pub mod open_flags {
    pub const READ: u32 = 0x01;
    pub const WRITE: u32 = 0x02;
    pub const APPEND: u32 = 0x04;
    pub const CREAT: u32 = 0x08;
    pub const TRUNC: u32 = 0x10;
    pub const EXCL: u32 = 0x20;
}

const ATTR_SIZE: u32 = 0x01;
const ATTR_UIDGID: u32 = 0x02;
const ATTR_PERMISSIONS: u32 = 0x04;
const ATTR_ACMODTIME: u32 = 0x08;
const ATTR_EXTENDED: u32 = 0x8000_0000;

/// File attributes; each field is present only when its flag was sent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attrs {
    pub size: Option<u64>,
    pub uid_gid: Option<(u32, u32)>,
    /// `st_mode`: type bits and permission bits.
    pub permissions: Option<u32>,
    /// (atime, mtime), seconds since the epoch.
    pub times: Option<(u32, u32)>,
}

impl Attrs {
    /// Everything `stat` says about a file, as OpenSSH's sftp-server sends it.
    pub fn from_stat(st: &nix::sys::stat::FileStat) -> Attrs {
        Attrs {
            size: Some(st.st_size as u64),
            uid_gid: Some((st.st_uid, st.st_gid)),
            permissions: Some(st.st_mode),
            times: Some((st.st_atime as u32, st.st_mtime as u32)),
        }
    }

    /// Appends the encoding.
    pub fn put(&self, out: &mut BytesMut) {
        let mut flags = 0;
        if self.size.is_some() {
            flags |= ATTR_SIZE;
        }
        if self.uid_gid.is_some() {
            flags |= ATTR_UIDGID;
        }
        if self.permissions.is_some() {
            flags |= ATTR_PERMISSIONS;
        }
        if self.times.is_some() {
            flags |= ATTR_ACMODTIME;
        }
        out.put_u32(flags);
        if let Some(size) = self.size {
            out.put_u64(size);
        }
        if let Some((uid, gid)) = self.uid_gid {
            out.put_u32(uid);
            out.put_u32(gid);
        }
        if let Some(p) = self.permissions {
            out.put_u32(p);
        }
        if let Some((a, m)) = self.times {
            out.put_u32(a);
            out.put_u32(m);
        }
    }
}

/// The packet was shorter than its fields, or otherwise malformed.
#[derive(Debug, PartialEq, Eq)]
pub struct Malformed;

/// Reads fields from one packet body, never past its end.
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `buf`.
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        if self.buf.len() < n {
            return Err(Malformed);
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    pub fn u8(&mut self) -> Result<u8, Malformed> {
        Ok(self.take(1)?[0])
    }

    pub fn u32(&mut self) -> Result<u32, Malformed> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn u64(&mut self) -> Result<u64, Malformed> {
        let hi = self.u32()? as u64;
        let lo = self.u32()? as u64;
        Ok(hi << 32 | lo)
    }

    /// A length-prefixed string, as bytes. The length is checked against what is left of the
    /// packet (which was itself checked against the packet limit) before anything is taken.
    pub fn string(&mut self) -> Result<&'a [u8], Malformed> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    /// Attributes, skipping any extended pairs.
    pub fn attrs(&mut self) -> Result<Attrs, Malformed> {
        let flags = self.u32()?;
        let mut a = Attrs::default();
        if flags & ATTR_SIZE != 0 {
            a.size = Some(self.u64()?);
        }
        if flags & ATTR_UIDGID != 0 {
            a.uid_gid = Some((self.u32()?, self.u32()?));
        }
        if flags & ATTR_PERMISSIONS != 0 {
            a.permissions = Some(self.u32()?);
        }
        if flags & ATTR_ACMODTIME != 0 {
            a.times = Some((self.u32()?, self.u32()?));
        }
        if flags & ATTR_EXTENDED != 0 {
            let count = self.u32()?;
            for _ in 0..count {
                self.string()?;
                self.string()?;
            }
        }
        Ok(a)
    }
}

/// Builds one reply packet: the length prefix is filled in by [`Packet::finish`].
pub struct Packet {
    buf: BytesMut,
}

impl Packet {
    /// A packet of type `kind` answering request `id`.
    pub fn new(kind: u8, id: u32) -> Packet {
        let mut buf = BytesMut::with_capacity(64);
        buf.put_u32(0);
        buf.put_u8(kind);
        buf.put_u32(id);
        Packet { buf }
    }

    /// A packet of type `kind` with room for `extra` bytes, for DATA replies.
    pub fn with_capacity(kind: u8, id: u32, extra: usize) -> Packet {
        let mut buf = BytesMut::with_capacity(9 + extra);
        buf.put_u32(0);
        buf.put_u8(kind);
        buf.put_u32(id);
        Packet { buf }
    }

    /// The VERSION packet, which has no request id.
    pub fn version(version: u32) -> Packet {
        let mut buf = BytesMut::with_capacity(256);
        buf.put_u32(0);
        buf.put_u8(fxp::VERSION);
        buf.put_u32(version);
        Packet { buf }
    }

    pub fn u32(&mut self, v: u32) -> &mut Packet {
        self.buf.put_u32(v);
        self
    }

    pub fn u64(&mut self, v: u64) -> &mut Packet {
        self.buf.put_u64(v);
        self
    }

    pub fn string(&mut self, s: &[u8]) -> &mut Packet {
        self.buf.put_u32(s.len() as u32);
        self.buf.put_slice(s);
        self
    }

    pub fn attrs(&mut self, a: &Attrs) -> &mut Packet {
        a.put(&mut self.buf);
        self
    }

    /// The buffer, for writing data in place (DATA replies).
    pub fn buf_mut(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// The finished packet, length included.
    pub fn finish(mut self) -> Bytes {
        let len = (self.buf.len() - 4) as u32;
        self.buf[..4].copy_from_slice(&len.to_be_bytes());
        self.buf.freeze()
    }
}

/// A STATUS reply.
pub fn status(id: u32, code: StatusCode, message: &str) -> Bytes {
    let mut p = Packet::new(fxp::STATUS, id);
    p.u32(code as u32).string(message.as_bytes()).string(b"en");
    p.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attrs_round_trip() {
        let a = Attrs {
            size: Some(5),
            uid_gid: Some((1, 2)),
            permissions: Some(0o100644),
            times: Some((3, 4)),
        };
        let mut b = BytesMut::new();
        a.put(&mut b);
        assert_eq!(Reader::new(&b).attrs(), Ok(a));
    }

    #[test]
    fn string_longer_than_the_packet_is_malformed() {
        let buf = [0, 0, 0, 9, b'a'];
        assert_eq!(Reader::new(&buf).string(), Err(Malformed));
        let huge = [0xff, 0xff, 0xff, 0xff];
        assert_eq!(Reader::new(&huge).string(), Err(Malformed));
    }

    #[test]
    fn status_packet_has_its_length_and_id() {
        let p = status(7, StatusCode::NoSuchFile, "x");
        assert_eq!(&p[..4], &((p.len() - 4) as u32).to_be_bytes());
        assert_eq!(p[4], fxp::STATUS);
        assert_eq!(&p[5..9], &7u32.to_be_bytes());
    }
}
