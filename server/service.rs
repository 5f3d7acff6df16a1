//! One request: a span, the URL → the resolution → the action, and one place where every
//! outcome becomes a response and a log line.

use std::os::unix::ffi::OsStrExt;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use nix::fcntl::OFlag;
use nix::sys::stat::{FileStat, Mode};
use std::os::fd::OwnedFd;
use tokio::sync::Semaphore;
use tracing::Instrument;
use yadokari_site::denial::Explanation;
use yadokari_site::{FileFacts, Jail, Role, Subject, Verdict, policy};

use crate::access_log::{AccessLog, Entry, LoggedBody};
use crate::body::{self, Body, BoxError, RequestBody};
use crate::cgi::{self, Outcome, failure::Failure};
use crate::config::Config;
use crate::error_page;
use crate::listener::{ConnInfo, InFlight};
use crate::resolve::{self, Resolution};
use crate::static_files;
use crate::url;

/// What every request shares: the current configuration (swapped on SIGHUP) and the logs.
pub struct Shared {
    config: RwLock<Arc<Config>>,
    /// The document root, held open (reopened on SIGHUP): one descriptor for every request
    /// instead of an open and a close each.
    root: RwLock<Option<Arc<Jail>>>,
    /// The access log.
    pub access_log: Arc<AccessLog>,
    /// Script slots (`cgi.max_concurrent`).
    pub scripts: Arc<Semaphore>,
}

impl Shared {
    /// Shared state for `config`.
    pub fn new(config: Config, access_log: AccessLog) -> Shared {
        Shared {
            root: RwLock::new(Jail::open(&config.document_root).ok().map(Arc::new)),
            scripts: Arc::new(Semaphore::new(config.cgi.max_concurrent)),
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

    /// The document root's jail; opened again if it could not be opened before.
    fn jail(&self, config: &Config) -> std::io::Result<Arc<Jail>> {
        if let Ok(slot) = self.root.read()
            && let Some(jail) = slot.as_ref()
        {
            return Ok(jail.clone());
        }
        let jail = Arc::new(Jail::open(&config.document_root)?);
        if let Ok(mut slot) = self.root.write() {
            *slot = Some(jail.clone());
        }
        Ok(jail)
    }

    /// Puts `config` in force for every request that starts from now on.
    pub fn replace_config(&self, config: Config) {
        let jail = Jail::open(&config.document_root).ok().map(Arc::new);
        if let Ok(mut slot) = self.root.write() {
            *slot = jail;
        }
        let mut slot = match self.config.write() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        *slot = Arc::new(config);
    }
}

/// Handles one request, logging it when its response ends.
pub async fn handle(
    req: Request<Incoming>,
    shared: Arc<Shared>,
    conn: Arc<ConnInfo>,
) -> Response<LoggedBody<InFlight>> {
    let guard = conn.activity.begin();
    let config = shared.config();
    let mut entry = shared.access_log.enabled().then(|| Entry {
        remote: conn.peer.ip(),
        time: SystemTime::now(),
        request_line: format!("{} {} {:?}", req.method(), req.uri(), req.version()),
        status: 0,
        referer: header_text(&req, header::REFERER),
        user_agent: header_text(&req, header::USER_AGENT),
    });
    // A debug-level span: at the default info level it costs nothing, where an info span
    // formats the method, URI and peer for every request (a few per cent of a small static
    // request). Events that matter carry their own fields (path, reason, script, pid).
    let span = tracing::debug_span!("request", method = %req.method(), uri = %req.uri(), peer = %conn.peer);
    let response = if conn.activity.ambiguous_framing() {
        ambiguous_framing(&config)
    } else {
        let req = req.map(|b| b.map_err(|e| Box::new(e) as BoxError).boxed_unsync());
        respond(req, &config, &conn, &shared).instrument(span).await
    };
    if let Some(entry) = &mut entry {
        entry.status = response.status().as_u16();
    }
    response.map(|b| LoggedBody::new(b, entry, shared.access_log.clone(), guard))
}

fn header_text<B>(req: &Request<B>, name: header::HeaderName) -> Option<String> {
    req.headers()
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// The most internal redirects (`Location:` with a local path) one request may follow.
const MAX_REDIRECTS: usize = 10;

/// What acting on one URL gave: a response, or a script's internal redirect to follow.
enum Acted {
    Done(Response<Body>),
    Redirect(String, http::request::Parts),
}

async fn respond(
    req: Request<RequestBody>,
    config: &Config,
    peer: &ConnInfo,
    shared: &Shared,
) -> Response<Body> {
    // The URI shares the request's buffer: keeping it costs no copy.
    let original = req.uri().clone();
    let mut req = req;
    let mut redirected: Option<&str> = None;
    for _ in 0..=MAX_REDIRECTS {
        match act(req, config, peer, shared, redirected).await {
            Acted::Done(response) => return response,
            Acted::Redirect(location, mut parts) => {
                let Ok(uri) = location.parse::<http::Uri>() else {
                    tracing::warn!(%location, "script redirected to an invalid local URL");
                    return error_page::page(StatusCode::INTERNAL_SERVER_ERROR, None);
                };
                tracing::debug!(%location, "internal redirect");
                parts.method = Method::GET;
                parts.uri = uri;
                parts.headers.remove(header::CONTENT_LENGTH);
                parts.headers.remove(header::CONTENT_TYPE);
                parts.headers.remove(header::TRANSFER_ENCODING);
                req = Request::from_parts(parts, body::empty_request());
                redirected = Some(original.path());
            }
        }
    }
    failure_response(&Failure::RedirectLoop, original.path(), config)
}

/// Acts on one URL: resolve it, then serve, run or refuse.
async fn act(
    req: Request<RequestBody>,
    config: &Config,
    peer: &ConnInfo,
    shared: &Shared,
    redirected: Option<&str>,
) -> Acted {
    let url = match url::parse(req.uri().path()) {
        Ok(u) => u,
        Err(e) => {
            tracing::info!(reason = %e, "refused: bad request path");
            return Acted::Done(refusal(
                StatusCode::BAD_REQUEST,
                &format!("{}.", capitalise(&e.to_string())),
                "Request a plain path inside the site.",
                config,
            ));
        }
    };
    let jail = match shared.jail(config) {
        Ok(j) => j,
        Err(e) => {
            tracing::error!(root = %config.document_root.display(), error = %e, "cannot open the document root");
            return Acted::Done(error_page::page(StatusCode::INTERNAL_SERVER_ERROR, None));
        }
    };
    let response = match resolve::resolve(&jail, &url, config) {
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
        Resolution::Static { rel, opened } => {
            if req.method() != Method::GET && req.method() != Method::HEAD {
                let mut r = error_page::page(StatusCode::METHOD_NOT_ALLOWED, None);
                r.headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
                return Acted::Done(r);
            }
            serve_static(
                req.method(),
                req.headers(),
                &jail,
                rel,
                opened,
                config,
                peer,
            )
            .await
        }
        Resolution::Script(script) => {
            let path = script.rel.to_string_lossy().into_owned();
            // Boxed: the script's future is large, and kept inline it would make every
            // request's future (static ones too) that large to build and move.
            let run = Box::pin(cgi::run(
                req,
                &script,
                config,
                peer,
                &shared.scripts,
                redirected,
            ));
            match run.await {
                Ok(Outcome::Response(r)) => r,
                Ok(Outcome::Redirect(location, parts)) => return Acted::Redirect(location, parts),
                Err(failure) => failure_response(&failure, &path, config),
            }
        }
    };
    Acted::Done(response)
}

/// The response for a script failure, logged once here with its reason and fix.
fn failure_response(failure: &Failure, path: &str, config: &Config) -> Response<Body> {
    let (status, e) = failure.explain(path);
    tracing::warn!(status = status.as_u16(), reason = failure.code(), script = %path, why = %e.reason, fix = %e.fix, "script failed");
    let mut r = error_page::page(status, config.explain_errors.then_some(&e));
    if status == StatusCode::SERVICE_UNAVAILABLE {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    r
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

/// Serves the decided file: the descriptor the resolution opened and judged, or else opens it
/// now and judges what was opened again (a file swapped or chmodded in between is never
/// trusted).
#[allow(clippy::too_many_arguments)]
async fn serve_static(
    method: &Method,
    headers: &http::HeaderMap,
    jail: &Jail,
    rel: std::path::PathBuf,
    opened: Option<(OwnedFd, FileStat)>,
    config: &Config,
    conn: &ConnInfo,
) -> Response<Body> {
    if let Some((fd, stat)) = opened {
        let file = std::fs::File::from(fd);
        return static_files::respond(method, headers, rel, file, &stat, &conn.send_queue);
    }
    // O_NONBLOCK: a FIFO swapped in after the check must not hang the open.
    let flags = OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY;
    let fd = match jail.open_beneath(&rel, flags, Mode::empty()) {
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
        // The directory's mode and the site's owner only matter for scripts; a static file is
        // judged on its own type, mode and name.
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
    static_files::respond(method, headers, rel, file, &stat, &conn.send_queue)
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
