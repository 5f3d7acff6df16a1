//! The accept loop and one HTTP/1.1 connection (or, with `[server] h2c`, HTTP/1.1 or
//! cleartext HTTP/2 by the client's first bytes): connection cap, accept back-off, hyper with a
//! timer (without one, `header_read_timeout` silently does nothing), a keep-alive idle timeout,
//! and graceful shutdown that lets in-flight responses finish within the configured grace.
//! The same workers accept HTTPS connections, under the same caps, and hand them to
//! `crate::tls::connection`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::app::App;
use crate::config::Limits;
use crate::conn::{Activity, ConnInfo};
use crate::sendfile::SendQueue;
use crate::served;
use crate::service;
use crate::socket::ClientSocket;
use crate::tls::connection::Protocols;
use yadokari_site::per_address::PerAddress;

/// Runs the HTTP server on `listener` until `shutdown` is cancelled, then waits for open
/// connections to finish their current response, at most the configured grace.
///
/// One thread per core, each with its own single-threaded runtime accepting from the same
/// socket, as nginx runs one worker per core: a connection lives on the thread that accepted
/// it, so a request never pays for waking another thread or moving between them (on this
/// 2-core machine kind, the work-stealing scheduler's wake-ups were a tenth of the CPU time of
/// a small static request).
pub async fn run(
    listener: TcpListener,
    https: Option<(TcpListener, TlsAcceptor)>,
    app: Arc<App>,
    shutdown: CancellationToken,
) {
    let listener = match listener.into_std() {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "cannot hand the HTTP listener to the workers");
            return;
        }
    };
    let https = match https.map(|(l, a)| l.into_std().map(|l| (l, a))).transpose() {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(error = %e, "cannot hand the HTTPS listener to the workers");
            return;
        }
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let slots = Slots {
        total: Arc::new(Semaphore::new(app.config().limits.max_connections)),
        per_address: Arc::default(),
    };
    let mut workers = Vec::with_capacity(threads);
    for i in 0..threads {
        let cloned = listener.try_clone().and_then(|l| {
            let https = match &https {
                Some((h, a)) => Some((h.try_clone()?, a.clone())),
                None => None,
            };
            Ok((l, https))
        });
        let listener = match cloned {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "cannot share the HTTP listener");
                break;
            }
        };
        let (app, shutdown, slots) = (app.clone(), shutdown.clone(), slots.clone());
        let worker = std::thread::Builder::new()
            .name(format!("http-{i}"))
            .spawn(move || worker(listener, app, shutdown, slots));
        match worker {
            Ok(handle) => workers.push(handle),
            Err(e) => tracing::error!(error = %e, "cannot start an HTTP worker thread"),
        }
    }
    // Only the workers' copies keep the socket open now: when they stop accepting, it closes.
    drop((listener, https));
    for handle in workers {
        let _ = tokio::task::spawn_blocking(move || handle.join()).await;
    }
}

/// One worker thread: a single-threaded runtime that accepts and serves its own connections.
fn worker(
    (listener, https): (
        std::net::TcpListener,
        Option<(std::net::TcpListener, TlsAcceptor)>,
    ),
    app: Arc<App>,
    shutdown: CancellationToken,
    slots: Slots,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start an HTTP worker runtime");
            return;
        }
    };
    runtime.block_on(async move {
        let register = |l: std::net::TcpListener| {
            l.set_nonblocking(true)
                .and_then(|()| TcpListener::from_std(l))
        };
        let listener = register(listener);
        let https = https.map(|(l, a)| register(l).map(|l| (l, a))).transpose();
        let (listener, https) = match (listener, https) {
            (Ok(l), Ok(h)) => (l, h),
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!(error = %e, "cannot register the HTTP listeners");
                return;
            }
        };
        let tracker = TaskTracker::new();
        let listeners = (&listener, https.as_ref());
        accept_loop(listeners, &app, &shutdown, &slots, &tracker).await;
        drop((listener, https));
        tracker.close();
        let grace = app.config().limits.shutdown_grace;
        if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
            tracing::warn!(
                grace_secs = grace.as_secs(),
                "connections still open after the shutdown grace; closing them"
            );
        }
    });
}

/// The connection slots every worker shares: `limits.max_connections` in all, and at most
/// `limits.max_connections_per_address` for any one client address.
#[derive(Clone)]
struct Slots {
    total: Arc<Semaphore>,
    per_address: Arc<PerAddress>,
}

/// Accepts from `listener`; never resolves when there is none.
async fn accept_from(listener: Option<&TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

async fn accept_loop(
    (listener, https): (&TcpListener, Option<&(TcpListener, TlsAcceptor)>),
    app: &Arc<App>,
    shutdown: &CancellationToken,
    slots: &Slots,
    tracker: &TaskTracker,
) {
    let mut backoff = Duration::from_millis(5);
    loop {
        // Waiting for a slot before accepting leaves excess clients in the kernel's backlog.
        // `biased`: once shutdown has begun, a connection waiting in the backlog is never
        // taken (closing the socket resets it), however the two futures race.
        let permit = tokio::select! {
            biased;
            () = shutdown.cancelled() => return,
            p = slots.total.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
        };
        let accepted = tokio::select! {
            biased;
            () = shutdown.cancelled() => return,
            a = listener.accept() => a.map(|(s, p)| (s, p, None)),
            a = accept_from(https.map(|(l, _)| l)) => a.map(|(s, p)| (s, p, https.map(|(_, a)| a.clone()))),
        };
        let config = app.config();
        match accepted {
            Ok((stream, peer, tls)) if config.proxy_protocol.is_some() => {
                backoff = Duration::from_millis(5);
                let trusted = config
                    .proxy_protocol
                    .as_ref()
                    .is_some_and(|t| t.admits(peer.ip()));
                if !trusted {
                    tracing::warn!(%peer, "connection refused: not a peer of server.proxy_protocol_from, which alone may connect");
                    continue;
                }
                // The client's address is in the PROXY header: read in the connection's own
                // task, and only then counted against its address's cap.
                let (app, shutdown) = (app.clone(), shutdown.clone());
                let per_address = slots.per_address.clone();
                tracker.spawn(async move {
                    let mut stream = stream;
                    let read = tokio::select! {
                        read = sftp_upload::proxy_protocol::read_header(&mut stream) => read,
                        () = shutdown.cancelled() => return,
                    };
                    let peer = match read {
                        Ok(client) => client.unwrap_or(peer),
                        Err(why) => {
                            tracing::warn!(%peer, "connection refused: {why}");
                            return;
                        }
                    };
                    let cap = app.config().limits.max_connections_per_address;
                    let Some(place) = per_address.admit(peer.ip(), cap) else {
                        tracing::info!(%peer, cap, "connection refused: this address already holds limits.max_connections_per_address connections");
                        return;
                    };
                    serve(stream, peer, app, shutdown, tls).await;
                    drop((place, permit));
                });
            }
            Ok((stream, peer, tls)) => {
                backoff = Duration::from_millis(5);
                let cap = config.limits.max_connections_per_address;
                let Some(place) = slots.per_address.admit(peer.ip(), cap) else {
                    tracing::info!(%peer, cap, "connection refused: this address already holds limits.max_connections_per_address connections");
                    continue;
                };
                let app = app.clone();
                let shutdown = shutdown.clone();
                tracker.spawn(async move {
                    serve(stream, peer, app, shutdown, tls).await;
                    drop((place, permit));
                });
            }
            Err(e) => {
                // EMFILE, ENFILE, ECONNABORTED...: never fatal; wait and try again.
                tracing::warn!(error = %e, backoff_ms = backoff.as_millis() as u64, "accept failed; backing off");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// Serves one accepted connection, over TLS when it came to the HTTPS listener.
async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    app: Arc<App>,
    shutdown: CancellationToken,
    tls: Option<TlsAcceptor>,
) {
    match tls {
        Some(acceptor) => {
            crate::tls::connection::serve(stream, peer, app, shutdown, acceptor).await
        }
        None => connection(stream, peer, app, shutdown).await,
    }
}

/// The ceiling of a connection's read buffer (see `max_buf_size` above).
pub(crate) const READ_BUFFER: usize = 256 * 1024;

/// hyper's HTTP/1.1 settings from the configured limits.
pub(crate) fn http_builder(limits: &Limits) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true)
        .max_header_size(limits.max_header_bytes)
        // The read buffer's ceiling: it bounds a header block that never completes (431) and
        // sets how much of a request body one read can take (large steps stream uploads faster).
        .max_buf_size(limits.max_header_bytes.max(READ_BUFFER))
        .max_headers(100);
    builder
}

/// An open connection, counted in the metrics from its start to the end of its task.
pub struct Open;

impl Open {
    /// Counts a connection opened.
    pub fn new() -> Open {
        crate::metrics::connections(1.0);
        Open
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        crate::metrics::connections(-1.0);
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Arc<App>,
    shutdown: CancellationToken,
) {
    let _ = stream.set_nodelay(true);
    let Ok(local) = stream.local_addr() else {
        return;
    };
    let _open = Open::new();
    let config = app.config();
    let access_log = app.access_log.clone();
    let activity = Arc::new(Activity::new());
    let send_queue = Arc::new(SendQueue::default());
    let info = Arc::new(ConnInfo {
        peer,
        local,
        activity: activity.clone(),
        send_queue: send_queue.clone(),
        tls: false,
    });
    let io = TokioIo::new(ClientSocket::new(
        stream,
        activity.clone(),
        send_queue,
        config.limits.send_timeout,
    ));
    let svc = service_fn(move |req| {
        let app = app.clone();
        let info = info.clone();
        async move { Ok::<_, std::convert::Infallible>(service::handle(req, app, info).await) }
    });
    let limits = &config.limits;
    let ended = match config.h2c {
        false => {
            let conn = http_builder(limits).serve_connection(io, svc);
            tokio::pin!(conn);
            served::drive(conn, &activity, &shutdown, limits.keep_alive_timeout).await
        }
        true => {
            let builder = crate::tls::connection::builder(limits, Protocols::Either);
            let conn = builder.serve_connection(io, svc);
            tokio::pin!(conn);
            served::drive(conn, &activity, &shutdown, limits.keep_alive_timeout).await
        }
    };
    if let Err(e) = ended {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
        if let Some(e) = e.downcast_ref::<hyper::Error>() {
            if e.is_parse_too_large() {
                access_log.rejected(peer.ip(), 431);
            } else if e.is_parse() {
                access_log.rejected(peer.ip(), 400);
            }
        }
    }
}
