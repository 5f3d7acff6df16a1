//! One request: a span, the URL → the resolution → the action, and one place where every
//! outcome becomes a response and a log line.

use std::net::SocketAddr;
use std::os::unix::ffi::OsStrExt;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use tracing::Instrument;
use yadokari_site::denial::Explanation;
use yadokari_site::{FileFacts, Jail, Role, Subject, Verdict, policy};

use crate::access_log::{AccessLog, Entry, LoggedBody};
use crate::body::Body;
use crate::config::Config;
use crate::error_page;
use crate::listener::{ConnInfo, InFlight};
use crate::resolve::{self, Resolution};
use crate::static_files;
use crate::url;

/// What every request shares: the current configuration (swapped on SIGHUP) and the logs.
pub struct Shared {
    config: RwLock<Arc<Config>>,
    /// The access log.
    pub access_log: Arc<AccessLog>,
}

impl Shared {
    /// Shared state for `config`.
    pub fn new(config: Config, access_log: AccessLog) -> Shared {
        Shared {
            config: RwLock::new(Arc::new(config)),
            access_log: Arc::new(access_log),
        }
    }

    /// The configuration in force now.
    pub fn config(&self) -> Arc<Config> {
        match self.config.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Puts `config` in force for every request that starts from now on.
    pub fn replace_config(&self, config: Config) {
        let mut slot = match self.config.write() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        *slot = Arc::new(config);
    }
}

/// The information a request handler has about where the request came from.
pub struct Peer {
    /// The client.
    pub remote: SocketAddr,
    /// The server's address on the connection.
    pub local: SocketAddr,
}

/// Handles one request, logging it when its response ends.
pub async fn handle(
    req: Request<Incoming>,
    shared: Arc<Shared>,
    conn: Arc<ConnInfo>,
) -> Response<LoggedBody<InFlight>> {
    let guard = conn.activity.begin();
    let config = shared.config();
    let mut entry = Entry {
        remote: conn.peer.ip(),
        time: SystemTime::now(),
        request_line: format!("{} {} {:?}", req.method(), req.uri(), req.version()),
        status: 0,
        referer: header_text(&req, header::REFERER),
        user_agent: header_text(&req, header::USER_AGENT),
    };
    let span =
        tracing::info_span!("request", method = %req.method(), uri = %req.uri(), peer = %conn.peer);
    let peer = Peer {
        remote: conn.peer,
        local: conn.local,
    };
    let response = if conn.activity.ambiguous_framing() {
        ambiguous_framing(&config)
    } else {
        respond(req, &config, &peer).instrument(span).await
    };
    entry.status = response.status().as_u16();
    response.map(|b| LoggedBody::new(b, entry, shared.access_log.clone(), guard))
}

fn header_text<B>(req: &Request<B>, name: header::HeaderName) -> Option<String> {
    req.headers()
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

async fn respond(req: Request<Incoming>, config: &Config, _peer: &Peer) -> Response<Body> {
    let headers = req.headers();
    if headers.contains_key(header::TRANSFER_ENCODING)
        && headers.contains_key(header::CONTENT_LENGTH)
    {
        // SECURITY: a request with both framings is the shape of request smuggling; a proxy in
        // front may read it one way and we another. Refuse it and close.
        tracing::info!("refused: both Content-Length and Transfer-Encoding");
        let mut r = refusal(
            StatusCode::BAD_REQUEST,
            "The request has both Content-Length and Transfer-Encoding, which is ambiguous.",
            "Send only one of them.",
            config,
        );
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return r;
    }
    let url = match url::parse(req.uri().path()) {
        Ok(u) => u,
        Err(e) => {
            tracing::info!(reason = %e, "refused: bad request path");
            return refusal(
                StatusCode::BAD_REQUEST,
                &format!("{}.", capitalise(&e.to_string())),
                "Request a plain path inside the site.",
                config,
            );
        }
    };
    let jail = match Jail::open(&config.document_root) {
        Ok(j) => j,
        Err(e) => {
            tracing::error!(root = %config.document_root.display(), error = %e, "cannot open the document root");
            return error_page::page(StatusCode::INTERNAL_SERVER_ERROR, None);
        }
    };
    match resolve::resolve(&jail, &url, config) {
        Resolution::NotFound => {
            tracing::debug!("not found");
            error_page::page(StatusCode::NOT_FOUND, None)
        }
        Resolution::AddSlash => add_slash(&req),
        Resolution::Denied { denial, path } => {
            let status = StatusCode::from_u16(denial.status()).unwrap_or(StatusCode::FORBIDDEN);
            let e = denial.explain(&path);
            tracing::warn!(status = status.as_u16(), reason = denial.code(), path = %path, why = %e.reason, fix = %e.fix, "refused");
            error_page::page(status, config.explain_errors.then_some(&e))
        }
        Resolution::Static { rel, .. } => {
            if req.method() != Method::GET && req.method() != Method::HEAD {
                let mut r = error_page::page(StatusCode::METHOD_NOT_ALLOWED, None);
                r.headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
                return r;
            }
            serve_static(&req, &jail, &rel, config).await
        }
        Resolution::Script(script) => {
            let e = Explanation {
                reason: format!(
                    "`{}` would run as a CGI script, but this build does not run scripts yet.",
                    script.rel.display()
                ),
                fix: "Wait for CGI support.".into(),
            };
            tracing::warn!(path = %script.rel.display(), "CGI is not implemented yet");
            error_page::page(
                StatusCode::NOT_IMPLEMENTED,
                config.explain_errors.then_some(&e),
            )
        }
    }
}

/// 400 and close for a request framed by both Content-Length and Transfer-Encoding (see
/// `framing.rs`: a request-smuggling shape).
fn ambiguous_framing(config: &Config) -> Response<Body> {
    tracing::info!("refused: both Content-Length and Transfer-Encoding");
    let mut r = refusal(
        StatusCode::BAD_REQUEST,
        "The request has both Content-Length and Transfer-Encoding, which is ambiguous.",
        "Send only one of them.",
        config,
    );
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

/// Opens the decided file inside the jail and checks that what was opened is still what the
/// gate approved (a file swapped or chmodded in between is judged again, never trusted).
async fn serve_static(
    req: &Request<Incoming>,
    jail: &Jail,
    rel: &std::path::Path,
    config: &Config,
) -> Response<Body> {
    // O_NONBLOCK: a FIFO swapped in after the check must not hang the open.
    let flags = OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY;
    let fd = match jail.open_beneath(rel, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(e) => {
            tracing::info!(path = %rel.display(), error = %e, "static file vanished before it was opened");
            return error_page::page(StatusCode::NOT_FOUND, None);
        }
    };
    let stat = match nix::sys::stat::fstat(&fd) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(path = %rel.display(), error = %e, "fstat failed");
            return error_page::page(StatusCode::INTERNAL_SERVER_ERROR, None);
        }
    };
    let name = rel.file_name().map(|n| n.as_bytes()).unwrap_or(b"");
    let subject = Subject {
        name,
        is_symlink: false,
        file: FileFacts::new(stat.st_mode, stat.st_uid),
        dir_mode: 0o755,
        role: Role::Static,
        site_owner: stat.st_uid,
    };
    if let Verdict::Deny(denial) = policy::decide(&subject) {
        let path = rel.to_string_lossy();
        let e = denial.explain(&path);
        tracing::warn!(reason = denial.code(), path = %path, why = %e.reason, "refused after open");
        let status = StatusCode::from_u16(denial.status()).unwrap_or(StatusCode::FORBIDDEN);
        return error_page::page(status, config.explain_errors.then_some(&e));
    }
    // The file is regular: reads no longer need O_NONBLOCK, and tokio reads it on its
    // blocking pool anyway.
    let file = std::fs::File::from(fd);
    static_files::respond(req.method(), req.headers(), rel, file, &stat).await
}

/// 301 to the same path with a slash added, keeping the query string.
fn add_slash<B>(req: &Request<B>) -> Response<Body> {
    let mut location = format!("{}/", req.uri().path());
    if let Some(q) = req.uri().query() {
        location.push('?');
        location.push_str(q);
    }
    let mut r = error_page::page(StatusCode::MOVED_PERMANENTLY, None);
    match HeaderValue::from_str(&location) {
        Ok(v) => {
            r.headers_mut().insert(header::LOCATION, v);
            r
        }
        Err(_) => error_page::page(StatusCode::BAD_REQUEST, None),
    }
}

/// A refusal page whose reason is always logged by the caller and shown when configured.
fn refusal(status: StatusCode, reason: &str, fix: &str, config: &Config) -> Response<Body> {
    let e = Explanation {
        reason: reason.to_string(),
        fix: fix.to_string(),
    };
    error_page::page(status, config.explain_errors.then_some(&e))
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}
