//! Driving one served connection to its end, whichever protocol hyper speaks on it (HTTP/1.1,
//! HTTP/2 over TLS, cleartext h2c, or hyper-util's detection of either): the connection runs
//! until it closes, and when the server shuts down or the connection idles out it is asked to
//! finish after its current responses, then still driven until it has.

use std::error::Error as StdError;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http_body::Body;
use hyper::body::Incoming;
use hyper::rt::{Read, Write};
use hyper::service::Service;
use hyper::{Request, Response};
use hyper_util::server::conn::auto;
use tokio_util::sync::CancellationToken;

use crate::conn::Activity;

/// Why a connection ended badly (hyper's errors, boxed by hyper-util).
pub type ConnError = Box<dyn StdError + Send + Sync>;

/// A connection hyper serves, which can be asked to finish gracefully.
pub trait Served {
    /// Drives the connection; ready when it has closed.
    fn poll_served(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), ConnError>>;
    /// Asks the connection to close once its current responses are sent.
    fn finish(self: Pin<&mut Self>);
}

impl<I, S, B> Served for hyper::server::conn::http1::Connection<I, S>
where
    S: Service<Request<Incoming>, Response = Response<B>>,
    S::Error: Into<ConnError>,
    I: Read + Write + Unpin,
    B: Body + 'static,
    B::Error: Into<ConnError>,
{
    fn poll_served(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), ConnError>> {
        Future::poll(self, cx).map_err(Into::into)
    }

    fn finish(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

impl<I, S, E, B> Served for auto::Connection<'_, I, S, E>
where
    S: Service<Request<Incoming>, Response = Response<B>>,
    S::Future: 'static,
    S::Error: Into<ConnError>,
    I: Read + Write + Unpin + 'static,
    B: Body + 'static,
    B::Error: Into<ConnError>,
    E: auto::HttpServerConnExec<S::Future, B>,
{
    fn poll_served(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), ConnError>> {
        Future::poll(self, cx)
    }

    fn finish(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

/// How long a connection without a request in flight may stay quiet at shutdown before it is
/// closed (see [`Activity::settled`]).
const SETTLE: Duration = Duration::from_millis(500);

/// Runs `conn` until it closes; after `shutdown` (once the connection has settled) or `idle`
/// without a request in flight, asks it to finish and keeps driving it until it has.
pub async fn drive<C: Served + ?Sized>(
    mut conn: Pin<&mut C>,
    activity: &Activity,
    shutdown: &CancellationToken,
    idle: Duration,
) -> Result<(), ConnError> {
    let mut closing = false;
    let settled = async {
        shutdown.cancelled().await;
        activity.begin_draining();
        activity.settled(SETTLE).await;
    };
    tokio::pin!(settled);
    loop {
        tokio::select! {
            result = poll_fn(|cx| conn.as_mut().poll_served(cx)) => return result,
            () = &mut settled, if !closing => {
                conn.as_mut().finish();
                closing = true;
            }
            () = activity.idle_for(idle), if !closing => {
                conn.as_mut().finish();
                closing = true;
            }
        }
    }
}
