//! Metrics for Prometheus, on the admin listener (`[server] admin`, never a customer-facing
//! address): `/metrics` in the Prometheus text format, `/healthz`.
//!
//! The `metrics` facade records (one global recorder, as the crate is designed: every layer
//! counts without a handle passed down to it) and `metrics-exporter-prometheus` renders. Off
//! (no admin listener) no recorder is installed and [`on`] is false, so a request pays one
//! relaxed load for all of this.
//!
//! Counted: HTTP requests by customer, status class and protocol, with the time to the
//! response's head as a histogram; gate refusals by reason; scripts started (by customer) and
//! failed (by reason); open HTTP connections; SFTP sessions (at scrape time); build info.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio_util::sync::CancellationToken;

static ON: AtomicBool = AtomicBool::new(false);
static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The handles every request of the document root uses, made once: a counter per status class
/// and protocol, and the histogram (looking them up by name and labels for each request was a
/// tenth of a small static request's CPU).
struct Hot {
    default_site: [[metrics::Counter; 3]; 5],
    head: metrics::Histogram,
}

static HOT: OnceLock<Hot> = OnceLock::new();

const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
const PROTOCOLS: [&str; 3] = ["HTTP/1.0", "HTTP/1.1", "HTTP/2"];

/// Whether metrics are recorded (the admin listener is on).
pub fn on() -> bool {
    ON.load(Ordering::Relaxed)
}

/// Installs the recorder (once per process).
pub fn install() -> Result<(), String> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full(
                "yadokari_http_response_head_seconds".into(),
            ),
            &[
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ],
        )
        .map_err(|e| format!("metrics: {e}"))?
        .install_recorder()
        .map_err(|e| format!("metrics: {e}"))?;
    let _ = HANDLE.set(handle);
    metrics::describe_counter!(
        "yadokari_http_requests_total",
        "HTTP requests answered, by customer (- for the document root), status class and protocol"
    );
    metrics::describe_histogram!(
        "yadokari_http_response_head_seconds",
        "Time from a request's head to its response's head"
    );
    metrics::describe_counter!(
        "yadokari_refusals_total",
        "Requests the permission gate refused, by reason"
    );
    metrics::describe_counter!("yadokari_cgi_started_total", "Scripts started, by customer");
    metrics::describe_counter!(
        "yadokari_cgi_failures_total",
        "Scripts that failed (could not start, timed out, were killed, answered badly), by reason"
    );
    metrics::describe_gauge!("yadokari_http_connections", "Open HTTP connections");
    metrics::describe_gauge!("yadokari_sftp_sessions", "Running SFTP sessions");
    metrics::describe_gauge!("yadokari_build_info", "The running build");
    metrics::gauge!("yadokari_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    let _ = HOT.set(Hot {
        default_site: CLASSES.map(|class| {
            PROTOCOLS.map(|protocol| {
                metrics::counter!("yadokari_http_requests_total", "customer" => "-", "code" => class, "protocol" => protocol)
            })
        }),
        head: metrics::histogram!("yadokari_http_response_head_seconds"),
    });
    ON.store(true, Ordering::Relaxed);
    Ok(())
}

/// A request answered.
pub fn request(customer: Option<&str>, status: StatusCode, version: http::Version, head: Duration) {
    let Some(hot) = HOT.get().filter(|_| on()) else {
        return;
    };
    let class = (status.as_u16() / 100).clamp(1, 5) as usize - 1;
    let protocol = match version {
        http::Version::HTTP_10 => 0,
        http::Version::HTTP_2 => 2,
        _ => 1,
    };
    match customer {
        None => hot.default_site[class][protocol].increment(1),
        Some(name) => metrics::counter!("yadokari_http_requests_total", "customer" => name.to_string(), "code" => CLASSES[class], "protocol" => PROTOCOLS[protocol])
            .increment(1),
    }
    hot.head.record(head.as_secs_f64());
}

/// The gate refused a request.
pub fn refusal(reason: &'static str) {
    if on() {
        metrics::counter!("yadokari_refusals_total", "reason" => reason).increment(1);
    }
}

/// A script was started.
pub fn script_started(customer: Option<&str>) {
    if on() {
        let customer = customer.unwrap_or("-").to_string();
        metrics::counter!("yadokari_cgi_started_total", "customer" => customer).increment(1);
    }
}

/// A script failed.
pub fn script_failed(reason: &'static str) {
    if on() {
        metrics::counter!("yadokari_cgi_failures_total", "reason" => reason).increment(1);
    }
}

/// An HTTP connection opened (+1) or closed (-1).
pub fn connections(delta: f64) {
    if on() {
        metrics::gauge!("yadokari_http_connections").increment(delta);
    }
}

/// Serves `/metrics` and `/healthz` on `listener` until `shutdown`; `sftp_sessions` counts
/// the running SFTP sessions at scrape time.
pub async fn serve(
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
    sftp_sessions: Arc<dyn Fn() -> usize + Send + Sync>,
) {
    loop {
        let (stream, _) = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let sessions = sftp_sessions.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let sessions = sessions.clone();
                async move { Ok::<_, Infallible>(answer(&req, &*sessions)) }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await;
        });
    }
}

fn answer(
    req: &Request<hyper::body::Incoming>,
    sessions: &dyn Fn() -> usize,
) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, kind: &'static str, body: String| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static(kind),
        );
        r
    };
    match (req.method(), req.uri().path()) {
        (&http::Method::GET, "/metrics") => {
            metrics::gauge!("yadokari_sftp_sessions").set(sessions() as f64);
            let text = HANDLE.get().map(|h| h.render()).unwrap_or_default();
            reply(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                text,
            )
        }
        (&http::Method::GET, "/healthz") => reply(StatusCode::OK, "text/plain", "ok\n".into()),
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "the admin listener serves /metrics and /healthz\n".into(),
        ),
    }
}

/// Runs the exporter's periodic upkeep (histogram buckets roll over).
pub fn upkeep() {
    if let Some(h) = HANDLE.get() {
        h.run_upkeep();
    }
}

/// The admin address must not be one a customer can reach: refuses one equal to another
/// listener's.
pub fn check_address(admin: SocketAddr, others: &[SocketAddr]) -> Result<(), String> {
    if others.iter().any(|o| {
        o.port() != 0
            && o.port() == admin.port()
            && (o.ip() == admin.ip() || o.ip().is_unspecified() || admin.ip().is_unspecified())
    }) {
        return Err(format!(
            "{admin} is also a customer-facing listener's address; give the admin listener its own"
        ));
    }
    Ok(())
}
