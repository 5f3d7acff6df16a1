//! The decrypted side of a TLS connection as hyper reads it: the request bytes are watched for
//! ambiguous framing here, since the socket below (`crate::socket`) only sees ciphertext.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::conn::Activity;
use crate::framing::FramingWatch;

/// A stream whose reads are watched for a header block with both Content-Length and
/// Transfer-Encoding (HTTP/1 only: HTTP/2 frames its bodies itself).
pub struct Plain<S> {
    inner: S,
    activity: Arc<Activity>,
    framing: Option<FramingWatch>,
}

impl<S> Plain<S> {
    /// Wraps `inner`; `http1` turns the framing watch on.
    pub fn new(inner: S, activity: Arc<Activity>, http1: bool) -> Plain<S> {
        Plain {
            inner,
            activity,
            framing: http1.then(FramingWatch::default),
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Plain<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        let this = &mut *self;
        if let Some(framing) = &mut this.framing
            && buf.filled().len() > before
        {
            framing.feed(&buf.filled()[before..]);
            if framing.ambiguous {
                this.activity.mark_ambiguous();
            }
        }
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Plain<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    /// No: rustls makes a TLS record of every slice it is given, so hyper's head and body
    /// written as two slices cost two records (two encryptions, two tags on the wire).
    /// Flattened by hyper into one buffer, a small response is one record.
    fn is_write_vectored(&self) -> bool {
        false
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
