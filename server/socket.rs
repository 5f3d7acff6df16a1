//! The client's socket as hyper sees it: it records activity for the idle timer, watches the
//! request bytes for ambiguous framing, bounds how long a write may wait for a client that
//! stopped reading, and sends file placeholders with `sendfile` (see `sendfile.rs`).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::conn::Activity;
use crate::framing::FramingWatch;
use crate::sendfile::{self, Run, SendQueue};

/// A socket that records when it last read something, bounds how long a write may wait, and
/// sends file placeholders with `sendfile`.
pub struct ClientSocket {
    inner: TcpStream,
    activity: Arc<Activity>,
    /// The files behind the placeholders hyper writes.
    send_queue: Arc<SendQueue>,
    /// Watches the request bytes for CL+TE; only this reader touches it, so it needs no lock.
    /// `None` under TLS, where the bytes here are ciphertext (`crate::tls` watches the
    /// decrypted ones).
    framing: Option<FramingWatch>,
    /// How long one write may wait for the client to take bytes.
    send_timeout: Duration,
    /// Armed while a write is blocked on a client that is not reading.
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl ClientSocket {
    /// Wraps an accepted connection.
    pub fn new(
        inner: TcpStream,
        activity: Arc<Activity>,
        send_queue: Arc<SendQueue>,
        send_timeout: Duration,
    ) -> ClientSocket {
        ClientSocket {
            inner,
            activity,
            send_queue,
            framing: Some(FramingWatch::default()),
            send_timeout,
            stalled: None,
        }
    }

    /// The same socket carrying TLS: its bytes are not watched for framing.
    pub fn ciphertext(mut self) -> ClientSocket {
        self.framing = None;
        self
    }

    /// Passes a write's result through, failing it once the client has not taken a byte for
    /// `send_timeout`: a client that stops reading must not hold a connection (and a running
    /// script) forever. The error makes hyper close the connection and drop the response body.
    fn bounded<T>(
        &mut self,
        cx: &mut Context<'_>,
        poll: Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        if poll.is_ready() {
            self.stalled = None;
            return poll;
        }
        let timeout = self.send_timeout;
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        if timer.as_mut().poll(cx).is_ready() {
            tracing::info!(
                timeout_secs = timeout.as_secs(),
                "client stopped reading; closing the connection"
            );
            return Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client stopped reading",
            )));
        }
        Poll::Pending
    }

    /// A write with placeholders in it: ordinary runs go out with `writev` (flagged MSG_MORE
    /// when file bytes follow, so the header and the file's first bytes share packets), each
    /// placeholder with `sendfile`. Stops at the first short write, as a write may.
    fn write_with_files(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let mut written = 0;
        let mut i = 0;
        while i < bufs.len() {
            let (result, want, next) = match sendfile::run_at(bufs, i) {
                Run::File { at } => {
                    let want = bufs[at].len();
                    let queue = &self.send_queue;
                    (
                        poll_raw(&self.inner, cx, |s| queue.send_front(s, want)),
                        want,
                        at + 1,
                    )
                }
                Run::Plain { from, to } => {
                    let run = &bufs[from..to];
                    let want = run.iter().map(|b| b.len()).sum();
                    let more = to < bufs.len();
                    (
                        poll_raw(&self.inner, cx, |s| send_more(s, run, more)),
                        want,
                        to,
                    )
                }
            };
            match result {
                Poll::Ready(Ok(n)) => {
                    written += n;
                    if n < want {
                        break;
                    }
                }
                // What was written already is the answer; the error or the wait comes again
                // on the next call.
                _ if written > 0 => break,
                other => return other,
            }
            i = next;
        }
        Poll::Ready(Ok(written))
    }
}

/// One non-blocking operation on the socket, retried when tokio's readiness was stale.
fn poll_raw<T>(
    socket: &TcpStream,
    cx: &mut Context<'_>,
    mut op: impl FnMut(&TcpStream) -> std::io::Result<T>,
) -> Poll<std::io::Result<T>> {
    loop {
        std::task::ready!(socket.poll_write_ready(cx))?;
        match socket.try_io(tokio::io::Interest::WRITABLE, || op(socket)) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            result => return Poll::Ready(result),
        }
    }
}

/// `sendmsg` of `bufs`, with MSG_MORE when more bytes follow at once.
fn send_more(
    socket: &TcpStream,
    bufs: &[std::io::IoSlice<'_>],
    more: bool,
) -> std::io::Result<usize> {
    use std::os::fd::AsRawFd;
    let mut flags = nix::sys::socket::MsgFlags::MSG_NOSIGNAL;
    if more {
        // nix names no MSG_MORE.
        flags |= nix::sys::socket::MsgFlags::from_bits_retain(libc::MSG_MORE);
    }
    nix::sys::socket::sendmsg::<()>(socket.as_raw_fd(), bufs, &[], flags, None)
        .map_err(std::io::Error::from)
}

impl AsyncRead for ClientSocket {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            let this = &mut *self;
            this.activity.touch();
            if let Some(framing) = &mut this.framing {
                framing.feed(&buf.filled()[before..]);
                if framing.ambiguous {
                    this.activity.mark_ambiguous();
                }
            }
        }
        poll
    }
}

impl AsyncWrite for ClientSocket {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let poll = if self.send_queue.pending() {
            self.write_with_files(cx, &[std::io::IoSlice::new(buf)])
        } else {
            Pin::new(&mut self.inner).poll_write(cx, buf)
        };
        self.bounded(cx, poll)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let poll = if self.send_queue.pending() {
            self.write_with_files(cx, bufs)
        } else {
            Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
        };
        self.bounded(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
