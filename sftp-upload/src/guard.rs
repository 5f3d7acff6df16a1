//! A connection's [`Guard`]: its kill switch and a watch on its socket.
//!
//! - The kill switch: once it is pulled, every read and write of the [`GuardedStream`] fails,
//!   so russh's session ends wherever it is (in the middle of a key exchange too), and the
//!   socket is closed when the session drops it. Used for the login grace time and for the end
//!   of the shutdown grace period, where asking russh to disconnect is not always heard.
//! - The watch ([`Guard::hung_up`]): whether the client has closed or reset the connection,
//!   seen on the socket itself. russh notices a hang-up only by reading the socket, and its
//!   session loop stops reading while it waits to hand data to an SFTP session whose request
//!   queue is full; that session asks the socket instead, so a client that floods requests,
//!   never reads the replies and vanishes does not leave its session behind.

use std::future::Future;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// One connection's kill switch and socket watch; clones share them.
#[derive(Clone)]
pub struct Guard {
    kill: CancellationToken,
    /// A duplicate of the connection's socket, registered with the reactor only while
    /// [`Guard::hung_up`] waits, so that ordinary traffic costs nothing extra.
    socket: Arc<OwnedFd>,
}

impl Guard {
    /// The guard of `socket` (it holds a duplicate of the descriptor until the last clone goes).
    pub fn new(socket: &TcpStream) -> io::Result<Guard> {
        Ok(Guard {
            kill: CancellationToken::new(),
            socket: Arc::new(socket.as_fd().try_clone_to_owned()?),
        })
    }

    /// `socket`, cut off when the switch is pulled.
    pub fn stream(&self, socket: TcpStream) -> GuardedStream {
        GuardedStream::new(socket, self.kill.clone())
    }

    /// Pulls the switch.
    pub fn cut(&self) {
        self.kill.cancel();
    }

    /// Resolves once the switch is pulled.
    pub async fn cut_off(&self) {
        self.kill.cancelled().await
    }

    /// Resolves once the client has closed (FIN) or reset the connection; never, if the socket
    /// cannot be watched. Data still unread does not count: only the end of the stream does.
    pub async fn hung_up(&self) {
        // A fresh duplicate per wait: two sessions of one connection may wait at once, and one
        // descriptor can be registered with the reactor only once.
        let Ok(fd) = self.socket.try_clone() else {
            return std::future::pending().await;
        };
        // SAFETY: the `AsyncFd` owns `fd` (an `OwnedFd`, whose raw descriptor never changes),
        // so it stays open and refers to the same socket until the `AsyncFd` is dropped.
        let registered = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) };
        let Ok(watch) = registered else {
            return std::future::pending().await;
        };
        loop {
            let Ok(mut ready) = watch.readable().await else {
                return std::future::pending().await;
            };
            if ready.ready().is_read_closed() || ready.ready().is_error() {
                return;
            }
            // New data only: wait for the next event (the reactor's events are edge-triggered,
            // so this wakes once per arrival, and only while a session is stalled).
            ready.clear_ready();
        }
    }
}

/// A TCP stream that stops working when its token is cancelled.
pub struct GuardedStream {
    inner: TcpStream,
    cancelled: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl GuardedStream {
    /// Wraps `inner`; cancelling `token` cuts it off.
    fn new(inner: TcpStream, token: CancellationToken) -> GuardedStream {
        GuardedStream {
            inner,
            cancelled: Box::pin(token.cancelled_owned()),
        }
    }

    fn cut(&mut self, cx: &mut Context<'_>) -> bool {
        self.cancelled.as_mut().poll(cx).is_ready()
    }
}

fn aborted() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "connection cut off by the server",
    )
}

impl AsyncRead for GuardedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.cut(cx) {
            return Poll::Ready(Err(aborted()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for GuardedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.cut(cx) {
            return Poll::Ready(Err(aborted()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.cut(cx) {
            return Poll::Ready(Err(aborted()));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
