//! The facts of one client connection that several layers share: who is on it
//! ([`ConnInfo`]), when it last moved and how many responses it has in flight ([`Activity`],
//! [`InFlight`]). The listener creates them, the socket wrapper updates them, the service and
//! CGI read them; keeping them here lets every arrow point down (listener → service → cgi).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::sendfile::SendQueue;

/// What a connection's idle timer needs: when it last saw activity, and how many responses it
/// has in flight (an idle timer must not cut a slow response).
pub struct Activity {
    start: Instant,
    last_ms: AtomicU64,
    in_flight: AtomicUsize,
    ambiguous: AtomicBool,
    /// The server is shutting down or handing over to an upgrade: HTTP/1 responses say
    /// `Connection: close`.
    draining: AtomicBool,
    /// An HTTP/2 request was seen: the connection multiplexes, and finishes with GOAWAY.
    multiplexed: AtomicBool,
}

impl Activity {
    /// A fresh connection's activity: nothing read yet, nothing in flight.
    pub fn new() -> Activity {
        Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            ambiguous: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            multiplexed: AtomicBool::new(false),
        }
    }

    /// Records that the client sent a header block with both framings.
    pub fn mark_ambiguous(&self) {
        self.ambiguous.store(true, Ordering::Relaxed);
    }

    /// Whether the client sent a header block with both Content-Length and Transfer-Encoding.
    pub fn ambiguous_framing(&self) -> bool {
        self.ambiguous.load(Ordering::Relaxed)
    }

    /// Records that bytes were read from the client.
    pub fn touch(&self) {
        self.last_ms
            .store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// Marks a request as begun; the guard ends it.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// Shutdown (or an upgrade's hand-over) has begun.
    pub fn begin_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// Whether shutdown has begun for this connection.
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Records that the connection speaks HTTP/2.
    pub fn mark_multiplexed(&self) {
        self.multiplexed.store(true, Ordering::Relaxed);
    }

    /// At shutdown (or an upgrade's hand-over), resolves when the connection may be asked to
    /// finish without cutting off a request its client has sent or is sending. HTTP/2: at once
    /// (GOAWAY tells the client which streams were taken). HTTP/1: once nothing is in flight
    /// and nothing has been read for `quiet`. Meanwhile every response says `Connection:
    /// close` (see [`Activity::draining`]), so a busy keep-alive connection ends after its next
    /// response, at a moment the client knows of; closing it between two requests instead
    /// would race a request the client is already sending (wrk saw read errors at every
    /// upgrade), and a client that just connected sends its request within `quiet`.
    pub async fn settled(&self, quiet: Duration) {
        loop {
            if self.multiplexed.load(Ordering::Relaxed) {
                return;
            }
            let busy = self.in_flight.load(Ordering::Relaxed) > 0;
            let last = self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let deadline = last + quiet;
            let now = Instant::now();
            if now >= deadline && !busy {
                return;
            }
            tokio::time::sleep_until(
                deadline
                    .max(now)
                    .min(now + Duration::from_millis(20))
                    .into(),
            )
            .await;
        }
    }

    /// Resolves once the connection has had no request in flight and read nothing for `idle`.
    pub async fn idle_for(&self, idle: Duration) {
        loop {
            let last = self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
            let deadline = last + idle;
            if Instant::now() >= deadline && self.in_flight.load(Ordering::Relaxed) == 0 {
                return;
            }
            // With a response in flight, nothing can be idle before a whole `idle` from now;
            // otherwise wake at the deadline (never spinning faster than every 100 ms).
            let now = Instant::now();
            let wake = if self.in_flight.load(Ordering::Relaxed) > 0 {
                now + idle
            } else {
                deadline.max(now + Duration::from_millis(100))
            };
            tokio::time::sleep_until(wake.into()).await;
        }
    }
}

/// A request in flight on a connection; dropped when its response has ended.
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The connection as the service sees it.
pub struct ConnInfo {
    /// The client's address.
    pub peer: SocketAddr,
    /// Our address on this connection.
    pub local: SocketAddr,
    /// The connection's activity, for in-flight guards.
    pub activity: Arc<Activity>,
    /// Files its static bodies hand to `sendfile` (see `sendfile.rs`).
    pub send_queue: Arc<SendQueue>,
    /// The connection is TLS (HTTPS): `sendfile` cannot reach inside it, so its static bodies
    /// carry their bytes, and scripts are told `HTTPS=on`.
    pub tls: bool,
}

impl ConnInfo {
    /// The queue a static body of a request made with `version` may hand files to; `None` on
    /// TLS, where placeholder slices would be encrypted as they are (zeros) instead of
    /// replaced by the file, and for HTTP/2 (cleartext h2c), whose frames cut the body.
    pub fn sendfile(&self, version: hyper::Version) -> Option<&Arc<SendQueue>> {
        (!self.tls && version < hyper::Version::HTTP_2).then_some(&self.send_queue)
    }
}
