//! One TLS connection: the handshake (bounded by the header timeout), then HTTP/2 or HTTP/1.1
//! as ALPN chose, with the same idle timeout and graceful shutdown as a plain connection.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::plain::Plain;
use crate::app::App;
use crate::config::Limits;
use crate::conn::{Activity, ConnInfo};
use crate::sendfile::SendQueue;
use crate::service;
use crate::socket::ClientSocket;

/// Serves one accepted TLS connection until it closes, idles out or shutdown has let its
/// last response finish.
pub async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    app: Arc<App>,
    shutdown: CancellationToken,
    acceptor: TlsAcceptor,
) {
    let _ = stream.set_nodelay(true);
    let Ok(local) = stream.local_addr() else {
        return;
    };
    let _open = crate::listener::Open::new();
    let config = app.config();
    let limits = &config.limits;
    let activity = Arc::new(Activity::new());
    let send_queue = Arc::new(SendQueue::default());
    let socket = ClientSocket::new(
        stream,
        activity.clone(),
        send_queue.clone(),
        limits.send_timeout,
    )
    .ciphertext();
    // A client that opens a connection and never finishes the handshake holds a slot no
    // longer than one that never finishes its header block.
    let tls = match tokio::time::timeout(limits.header_read_timeout, acceptor.accept(socket)).await
    {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            return;
        }
    };
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    let info = Arc::new(ConnInfo {
        peer,
        local,
        activity: activity.clone(),
        send_queue,
        tls: true,
    });
    let io = TokioIo::new(Plain::new(tls, activity.clone(), !h2));
    let svc = service_fn(move |req| {
        let app = app.clone();
        let info = info.clone();
        async move { Ok::<_, std::convert::Infallible>(service::handle(req, app, info).await) }
    });
    let idle = limits.keep_alive_timeout;
    // HTTP/1.1 with the plain listener's own builder (its header-size bound included, which
    // hyper-util's auto builder lacks); HTTP/2 through the auto builder.
    let ended = if h2 {
        let builder = builder(limits, Protocols::Http2);
        let conn = builder.serve_connection(io, svc);
        tokio::pin!(conn);
        crate::served::drive(conn, &activity, &shutdown, idle).await
    } else {
        let conn = crate::listener::http_builder(limits).serve_connection(io, svc);
        tokio::pin!(conn);
        crate::served::drive(conn, &activity, &shutdown, idle).await
    };
    if let Err(e) = ended {
        tracing::debug!(%peer, error = %e, "TLS connection ended with an error");
    }
}

/// Which protocols a connection may speak.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Protocols {
    /// HTTP/2 only (ALPN chose `h2`).
    Http2,
    /// Either, by the client's first bytes: the HTTP/2 preface or an HTTP/1.1 request (the
    /// plain listener with `[server] h2c`).
    Either,
}

/// hyper-util's builder for `protocols`, from the configured limits: HTTP/2 with the same
/// header bound as HTTP/1.1, and HTTP/1.1 as on a plain connection but for the header-size
/// bound, which the auto builder lacks (its read buffer's ceiling bounds the header block).
pub fn builder(limits: &Limits, protocols: Protocols) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(limits.max_header_bytes as u32)
        .max_concurrent_streams(100);
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true)
        // The auto builder has no `max_header_size`: the read buffer's ceiling bounds
        // the header block instead (as on plain connections, where both are set).
        .max_buf_size(limits.max_header_bytes.max(crate::listener::READ_BUFFER))
        .max_headers(100);
    match protocols {
        Protocols::Http2 => builder.http2_only(),
        Protocols::Either => builder,
    }
}
