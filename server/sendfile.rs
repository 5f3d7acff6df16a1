//! `sendfile(2)` for static bodies, past hyper.
//!
//! hyper only writes bytes it holds in memory, so a file sent through it is copied twice (page
//! cache → our buffer → socket), and every chunk needs a fresh buffer. nginx, lighttpd and
//! Apache hand the socket the file itself. To do the same without forking hyper, a file body
//! does not yield the file's bytes: it records a [`Segment`] (file, offset, length) in its
//! connection's [`SendQueue`] and yields a *placeholder* of the same length, a slice of one
//! reserved mapping that holds no data. hyper frames and queues the placeholder like any
//! chunk (its writev strategy keeps the slice, never copies it), and the connection's socket
//! wrapper (`socket.rs`), seeing a slice that lies in the reserved mapping, sends the next
//! segment's bytes with `sendfile` instead of writing the slice. Segments are taken in the
//! order bodies were polled, which is the order hyper writes them on one connection.
//!
//! The mapping is read-only anonymous memory: were its bytes ever written out by some other
//! path, the client would get zeros where the file should be, never another user's memory;
//! the wrapper refuses (with an error that closes the connection) any placeholder slice whose
//! length disagrees with the segment it stands for.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, IoSlice};
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;

/// The largest chunk a file body yields: one placeholder slice, sent by as many `sendfile`
/// calls as the socket needs.
pub const SPAN: usize = 4 * 1024 * 1024;

/// The reserved mapping placeholders are cut from (address space only: it is never touched,
/// so it costs no memory).
fn reserved() -> Option<&'static [u8]> {
    static RESERVED: OnceLock<Option<&'static [u8]>> = OnceLock::new();
    *RESERVED.get_or_init(|| {
        // SAFETY: a fresh private anonymous mapping, never unmapped; the slice covers exactly
        // it, and nothing writes to it (it is PROT_READ), so handing out shared references for
        // the life of the process is sound.
        unsafe {
            let p = libc::mmap(
                std::ptr::null_mut(),
                SPAN,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            );
            if p == libc::MAP_FAILED {
                tracing::warn!(error = %io::Error::last_os_error(), "cannot reserve the sendfile placeholder; static files are copied");
                return None;
            }
            Some(std::slice::from_raw_parts(p.cast::<u8>(), SPAN))
        }
    })
}

/// A placeholder of `len` bytes (at most [`SPAN`]), or `None` when sendfile is unavailable.
pub fn placeholder(len: usize) -> Option<Bytes> {
    reserved().map(|r| Bytes::from_static(&r[..len.min(SPAN)]))
}

/// Whether `buf` is (part of) a placeholder.
pub fn is_placeholder(buf: &[u8]) -> bool {
    match reserved() {
        Some(r) if !buf.is_empty() => {
            let start = r.as_ptr() as usize;
            let p = buf.as_ptr() as usize;
            p >= start && p < start + r.len()
        }
        _ => false,
    }
}

/// Bytes of a file still to be sent for one placeholder.
struct Segment {
    file: Arc<File>,
    /// The file's site-relative path, for the log.
    path: Arc<Path>,
    offset: u64,
    len: usize,
}

/// One connection's segments, in the order their placeholders will be written.
#[derive(Default)]
pub struct SendQueue {
    segments: Mutex<VecDeque<Segment>>,
    /// How many segments are queued, so the writer can skip the lock when there are none.
    queued: AtomicUsize,
}

impl SendQueue {
    /// Records that the next placeholder of `len` bytes stands for `file` from `offset`.
    pub fn push(&self, file: Arc<File>, path: Arc<Path>, offset: u64, len: usize) {
        let mut segments = self.segments.lock().unwrap_or_else(|p| p.into_inner());
        segments.push_back(Segment {
            file,
            path,
            offset,
            len,
        });
        self.queued.fetch_add(1, Ordering::Release);
    }

    /// Whether any placeholder is waiting to be sent.
    pub fn pending(&self) -> bool {
        self.queued.load(Ordering::Acquire) > 0
    }

    /// Sends (part of) the front segment to `socket` with one `sendfile` call; `len` is the
    /// placeholder slice being written, which must be exactly what is left of that segment.
    /// Returns the bytes sent; `WouldBlock` when the socket is full.
    pub fn send_front(&self, socket: impl AsFd, len: usize) -> io::Result<usize> {
        let mut segments = self.segments.lock().unwrap_or_else(|p| p.into_inner());
        let Some(front) = segments.front_mut() else {
            return Err(io::Error::other(
                "a file placeholder reached the socket with no file behind it",
            ));
        };
        if front.len != len {
            return Err(io::Error::other(format!(
                "a file placeholder of {len} bytes reached the socket for a segment of {}",
                front.len
            )));
        }
        let mut offset = front.offset as libc::off64_t;
        let n = nix::sys::sendfile::sendfile64(socket, front.file.as_fd(), Some(&mut offset), len)
            .map_err(io::Error::from)?;
        if n == 0 {
            return Err(shrunk(&front.path, front.offset));
        }
        front.offset += n as u64;
        front.len -= n;
        if front.len == 0 {
            segments.pop_front();
            self.queued.fetch_sub(1, Ordering::Release);
        }
        Ok(n)
    }
}

/// The error for a file that ended before the length its response announced, logged: the
/// client gets a cut response (the connection closes), and the log says why.
pub fn shrunk(path: &Path, at: u64) -> io::Error {
    tracing::warn!(path = %path.display(), at, "a static file became shorter while it was being sent; the response is cut off");
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the file became shorter while it was being sent",
    )
}

/// How a vectored write splits into runs: plain bytes to `writev`, or one placeholder.
pub enum Run {
    /// `bufs[from..to]` hold ordinary bytes.
    Plain { from: usize, to: usize },
    /// `bufs[at]` is a placeholder.
    File { at: usize },
}

/// The run that starts at `bufs[from]`.
pub fn run_at(bufs: &[IoSlice<'_>], from: usize) -> Run {
    if is_placeholder(&bufs[from]) {
        return Run::File { at: from };
    }
    let to = bufs[from..]
        .iter()
        .position(|b| is_placeholder(b))
        .map_or(bufs.len(), |i| from + i);
    Run::Plain { from, to }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_recognised_and_ordinary_bytes_are_not() {
        let p = placeholder(1000).expect("mapping");
        assert!(is_placeholder(&p));
        assert!(is_placeholder(&p[999..]));
        assert!(!is_placeholder(&p[..0]));
        assert!(!is_placeholder(b"hello"));
        let v = vec![0u8; 64];
        assert!(!is_placeholder(&v));
    }

    #[test]
    fn runs_split_at_placeholders() {
        let p = placeholder(10).expect("mapping");
        let bufs = [IoSlice::new(b"head"), IoSlice::new(b"er"), IoSlice::new(&p)];
        assert!(matches!(run_at(&bufs, 0), Run::Plain { from: 0, to: 2 }));
        assert!(matches!(run_at(&bufs, 2), Run::File { at: 2 }));
    }
}
