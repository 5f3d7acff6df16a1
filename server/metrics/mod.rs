//! Metrics for Prometheus, on the admin listener (`[server] admin`, never a customer-facing
//! address): `/metrics` in the Prometheus text format, `/healthz`.
//!
//! The `metrics` facade records (one global recorder, as the crate is designed: every layer
//! counts without a handle passed down to it) and `metrics-exporter-prometheus` renders; the
//! counts every request makes are kept per thread first ([`hot`]), which the facade's shared
//! atomics cost too much for. Off
//! (no admin listener) no recorder is installed and [`on`] is false, so a request pays one
//! relaxed load for all of this.
//!
//! Counted: HTTP requests by customer, status class and protocol, with the time to the
//! response's head as a histogram; response and request body bytes by customer; gate refusals
//! by reason; scripts started (by customer), their run times (a histogram), and those that
//! failed, timed out or were killed (by reason); open HTTP connections. At scrape time: SFTP
//! sessions, each counted customer's quota use and limits, and each certificate's expiry by
//! domain; build info.

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

/// What `/healthz` answers while the server serves (the admin listener is closed once it
/// stops accepting, as the customer-facing ones are); `yadokari health` looks for it.
pub const HEALTHY: &str = "ready\n";

static ON: AtomicBool = AtomicBool::new(false);
/// Set at SIGTERM: from then on `/healthz` fails, while the server still serves for the stop
/// delay, so that a load balancer moves new connections away before the listeners close.
static STOPPING: AtomicBool = AtomicBool::new(false);
/// The directory that holds the server's state (the configuration file's): `/healthz` fails
/// when it cannot be written (a volume gone read-only or away).
static STATE_DIR: OnceLock<std::path::PathBuf> = OnceLock::new();

/// The health check fails from now on (the server is stopping).
pub fn stopping() {
    STOPPING.store(true, Ordering::SeqCst);
}

/// `/healthz` also checks that `dir` can be written, when it can be now (a read-only
/// configuration directory is a setup of its own, not a failure).
pub fn watch_state_dir(dir: std::path::PathBuf) {
    match write_test(&dir) {
        Ok(()) => {
            let _ = STATE_DIR.set(dir);
        }
        Err(e) => tracing::info!(
            dir = %dir.display(),
            error = %e,
            "the configuration's directory is not writable; /healthz does not check it"
        ),
    }
}

/// Writes one byte into a file in `dir` that leaves nothing behind (see
/// [`yadokari_site::scratch`]).
fn write_test(dir: &std::path::Path) -> std::io::Result<()> {
    use std::io::Write;
    yadokari_site::scratch::Scratch::new(dir, "yadokari-health")?
        .file()
        .write_all(b".")
}

/// Whether the server is ready: not stopping, and its state directory writable (see
/// [`write_test`]). Blocking (file I/O): run off the runtime's threads.
fn readiness() -> Result<(), String> {
    if STOPPING.load(Ordering::SeqCst) {
        return Err("stopping: finishing what is in flight".into());
    }
    if let Some(dir) = STATE_DIR.get() {
        write_test(dir).map_err(|e| {
            format!(
                "the state directory {} cannot be written: {e}",
                dir.display()
            )
        })?;
    }
    Ok(())
}

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

mod hot;

/// Histogram buckets for durations, from half a millisecond to a minute.
const SECONDS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
const PROTOCOLS: [&str; 3] = ["HTTP/1.0", "HTTP/1.1", "HTTP/2"];

/// Whether metrics are recorded (the admin listener is on).
pub fn on() -> bool {
    ON.load(Ordering::Relaxed)
}

/// Installs the recorder (once per process).
pub fn install() -> Result<(), String> {
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| format!("metrics: {e}"))?;
    let _ = HANDLE.set(handle);
    metrics::describe_counter!(
        "yadokari_http_requests_total",
        "HTTP requests answered, by customer (- for the document root), status class and protocol"
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
    metrics::describe_counter!(
        "yadokari_http_sent_bytes_total",
        "Response body bytes sent, by customer (- for the document root)"
    );
    metrics::describe_counter!(
        "yadokari_http_received_bytes_total",
        "Request body bytes handed to scripts, by customer"
    );
    metrics::describe_gauge!(
        "yadokari_quota_used_bytes",
        "Bytes a customer's site holds, as last counted (customers counted since the start)"
    );
    metrics::describe_gauge!(
        "yadokari_quota_used_files",
        "Files and directories a customer's site holds, as last counted"
    );
    metrics::describe_gauge!(
        "yadokari_quota_limit_bytes",
        "A customer's quota_bytes (customers with a limit)"
    );
    metrics::describe_gauge!(
        "yadokari_quota_limit_files",
        "A customer's quota_files (customers with a limit)"
    );
    metrics::describe_gauge!(
        "yadokari_certificate_expiry_timestamp_seconds",
        "When the certificate served for a domain expires (Unix time)"
    );
    metrics::describe_gauge!("yadokari_http_connections", "Open HTTP connections");
    metrics::describe_gauge!("yadokari_sftp_sessions", "Running SFTP sessions");
    metrics::describe_gauge!("yadokari_build_info", "The running build");
    metrics::gauge!("yadokari_build_info", "version" => env!("CARGO_PKG_VERSION"), "deploy" => crate::version::deploy().unwrap_or("")).set(1.0);

    ON.store(true, Ordering::Relaxed);
    Ok(())
}

/// A request answered.
pub fn request(customer: Option<&str>, status: StatusCode, version: http::Version, head: Duration) {
    if !on() {
        return;
    }
    let class = (status.as_u16() / 100).clamp(1, 5) as usize - 1;
    let protocol = match version {
        http::Version::HTTP_10 => 0,
        http::Version::HTTP_2 => 2,
        _ => 1,
    };
    match customer {
        None => hot::request(class, protocol),
        Some(name) => hot::customer_request(name, class, protocol),
    }
    hot::head(head);
}

/// A response's body ended (or was dropped) after `bytes`.
pub fn bytes_sent(customer: Option<&str>, bytes: u64) {
    if !on() {
        return;
    }
    match customer {
        None => hot::sent(bytes),
        Some(name) => hot::customer_sent(name, bytes),
    }
}

/// A script was handed a request body of `bytes`.
pub fn bytes_received(customer: Option<&str>, bytes: u64) {
    if on() && bytes > 0 {
        let customer = customer.unwrap_or("-").to_string();
        metrics::counter!("yadokari_http_received_bytes_total", "customer" => customer)
            .increment(bytes);
    }
}

/// A script ended (was reaped) after running for `ran`.
pub fn script_ended(ran: Duration) {
    if on() {
        hot::run(ran);
    }
}

/// What is measured at scrape time rather than counted as it happens.
pub struct Scraped {
    /// SFTP sessions running.
    pub sftp_sessions: usize,
    /// `(customer, bytes, files)` as last counted.
    pub quota_used: Vec<(String, u64, u64)>,
    /// `(customer, quota_bytes, quota_files)` as configured.
    pub quota_limits: Vec<(String, Option<u64>, Option<u64>)>,
    /// `(domain, expiry)` of the certificates in force.
    pub expiries: Vec<(String, std::time::SystemTime)>,
}

fn set_scraped(now: Scraped) {
    metrics::gauge!("yadokari_sftp_sessions").set(now.sftp_sessions as f64);
    for (customer, bytes, files) in now.quota_used {
        metrics::gauge!("yadokari_quota_used_bytes", "customer" => customer.clone())
            .set(bytes as f64);
        metrics::gauge!("yadokari_quota_used_files", "customer" => customer).set(files as f64);
    }
    for (customer, bytes, files) in now.quota_limits {
        if let Some(b) = bytes {
            metrics::gauge!("yadokari_quota_limit_bytes", "customer" => customer.clone())
                .set(b as f64);
        }
        if let Some(f) = files {
            metrics::gauge!("yadokari_quota_limit_files", "customer" => customer).set(f as f64);
        }
    }
    for (domain, expiry) in now.expiries {
        let at = expiry
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        metrics::gauge!("yadokari_certificate_expiry_timestamp_seconds", "domain" => domain)
            .set(at);
    }
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
        match customer {
            None => hot::script(),
            Some(name) => hot::customer_script(name),
        }
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

/// What [`serve`] measures at each scrape.
pub type Scrape = Arc<dyn Fn() -> Scraped + Send + Sync>;

/// Serves `/metrics` and `/healthz` on `listener` until `shutdown` (then the listener is left
/// to an upgrade's new server, or closed); `scrape` measures what is read at scrape time.
pub async fn serve(listener: tokio::net::TcpListener, shutdown: CancellationToken, scrape: Scrape) {
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
        let scrape = scrape.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let scrape = scrape.clone();
                async move {
                    if req.method() == http::Method::GET && req.uri().path() == "/healthz" {
                        // Off the runtime's threads: the check writes to the state directory.
                        let ready = tokio::task::spawn_blocking(readiness)
                            .await
                            .unwrap_or_else(|e| Err(format!("the check failed: {e}")));
                        return Ok::<_, Infallible>(match ready {
                            Ok(()) => reply(StatusCode::OK, "text/plain", HEALTHY.to_string()),
                            Err(why) => {
                                reply(StatusCode::SERVICE_UNAVAILABLE, "text/plain", why + "\n")
                            }
                        });
                    }
                    Ok(answer(&req, &*scrape))
                }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await;
        });
    }
}

/// A response of `kind` with `body`.
fn reply(status: StatusCode, kind: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(kind),
    );
    r
}

/// Everything but `/healthz` (answered in `serve`, off the runtime's threads).
fn answer(
    req: &Request<hyper::body::Incoming>,
    scrape: &dyn Fn() -> Scraped,
) -> Response<Full<Bytes>> {
    match (req.method(), req.uri().path()) {
        (&http::Method::GET, "/metrics") => {
            set_scraped(scrape());
            let mut text = String::new();
            hot::scrape(&mut text);
            if let Some(h) = HANDLE.get() {
                text.insert_str(0, &h.render());
            }
            reply(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                text,
            )
        }
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

/// `yadokari health`: asks the admin listener at `addr` for `/healthz`; `Ok` with its answer
/// when the server says it is ready, else why not.
pub fn health(addr: SocketAddr) -> Result<String, String> {
    use std::io::{Read, Write};
    let wait = Duration::from_secs(5);
    let mut stream = std::net::TcpStream::connect_timeout(&addr, wait)
        .map_err(|e| format!("nothing answers at the admin address {addr}: {e}"))?;
    let _ = stream.set_read_timeout(Some(wait));
    let _ = stream.set_write_timeout(Some(wait));
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: yadokari\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("{addr}: {e}"))?;
    let mut answer = Vec::new();
    stream
        .take(64 * 1024)
        .read_to_end(&mut answer)
        .map_err(|e| format!("{addr}: no answer ({e})"))?;
    let answer = String::from_utf8_lossy(&answer);
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    if head.starts_with("HTTP/1.1 200") && body == HEALTHY {
        Ok(format!("{addr}: {}", body.trim_end()))
    } else {
        let status = head.lines().next().unwrap_or("");
        Err(format!(
            "{addr} answered `{status}`: not ready: {}",
            body.trim_end()
        ))
    }
}
