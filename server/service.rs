//! One request: a span, the URL → the resolution → the action. Every way it can fail is an
//! [`HttpError`], turned into a response and a log line in one place.

use std::sync::Arc;
use std::time::SystemTime;

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tracing::Instrument;

use crate::access_log::{Entry, LoggedBody};
use crate::app::{App, State};
use crate::body::{self, Body, BoxError, RequestBody};
use crate::cgi::{self, Outcome, failure::Failure};
use crate::config::Config;
use crate::conn::{ConnInfo, InFlight};
use crate::error::HttpError;
use crate::error_page;
use crate::resolve::{self, Resolution};
use crate::sites::{Route, Served};
use crate::static_files;
use crate::url;

/// Handles one request, logging it when its response ends.
pub async fn handle(
    req: Request<Incoming>,
    app: Arc<App>,
    conn: Arc<ConnInfo>,
) -> Response<LoggedBody<InFlight>> {
    let guard = conn.activity.begin();
    let state = app.state();
    let config = &state.config;
    let mut entry = app.access_log.enabled().then(|| Entry {
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
    let host = crate::host::check(req.version(), req.uri(), req.headers());
    let response = if conn.activity.ambiguous_framing() {
        HttpError::AmbiguousFraming.response(config)
    } else if let Err(e) = host {
        HttpError::BadHost(e).response(config)
    } else if unsupported_coding(req.headers()) {
        HttpError::UnsupportedCoding.response(config)
    } else {
        let req = req.map(|b| b.map_err(|e| Box::new(e) as BoxError).boxed_unsync());
        respond(req, &state, &conn, &app).instrument(span).await
    };
    if let Some(entry) = &mut entry {
        entry.status = response.status().as_u16();
    }
    response.map(|b| LoggedBody::new(b, entry, app.access_log.clone(), guard))
}

/// Whether the request's Transfer-Encoding is anything but a lone `chunked`: hyper takes
/// `gzip, chunked` as chunked and would hand the still gzip-coded body on as if it were plain.
fn unsupported_coding(headers: &http::HeaderMap) -> bool {
    let mut codings = headers
        .get_all(header::TRANSFER_ENCODING)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .map(|c| c.trim_ascii())
        .filter(|c| !c.is_empty());
    match (codings.next(), codings.next()) {
        (None, _) => false,
        (Some(only), None) => !only.eq_ignore_ascii_case(b"chunked"),
        (Some(_), Some(_)) => true,
    }
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
    state: &State,
    conn: &ConnInfo,
    app: &App,
) -> Response<Body> {
    // The URI shares the request's buffer: keeping it costs no copy.
    let original = req.uri().clone();
    let mut req = req;
    let mut redirected: Option<&str> = None;
    for _ in 0..=MAX_REDIRECTS {
        let acted = act(req, state, conn, app, redirected).await;
        let (location, mut parts) = match acted {
            Ok(Acted::Done(response)) => return response,
            Err(e) => return e.response(&state.config),
            Ok(Acted::Redirect(location, parts)) => (location, parts),
        };
        let Ok(uri) = location.parse::<http::Uri>() else {
            let e = HttpError::internal(
                "a script redirected to an invalid local URL",
                format!("Location: {location}"),
            );
            return e.response(&state.config);
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
    HttpError::Script {
        failure: Failure::RedirectLoop,
        path: original.path().to_string(),
    }
    .response(&state.config)
}

/// Acts on one URL: resolve it, then serve, run or refuse.
async fn act(
    req: Request<RequestBody>,
    state: &State,
    conn: &ConnInfo,
    app: &App,
    redirected: Option<&str>,
) -> Result<Acted, HttpError> {
    let config = &state.config;
    let Some(Routed { index, prefix, url }) = route(&req, config)? else {
        return Ok(Acted::Done(add_slash(&req)));
    };
    let jail = state
        .jail_of(index)
        .map_err(|e| HttpError::internal("cannot open the site's directory", e))?;
    let root = index.map_or(&config.document_root, |i| config.sites.root(i));
    let site = Served {
        root,
        jail: &jail,
        prefix: &prefix,
        // For `/~name/`, scripts are told the server's document root, as Apache does.
        document_root: if prefix.is_empty() {
            root
        } else {
            &config.document_root
        },
        customer: index.or(config.sites.default_owner()),
    };
    let response = match resolve::resolve(&jail, &url, config) {
        Resolution::NotFound => return Err(HttpError::NotFound),
        Resolution::AddSlash => add_slash(&req),
        Resolution::Denied { denial, path } => return Err(HttpError::Denied { denial, path }),
        Resolution::Fault { path, error } => {
            let what = format!("cannot open {}", path.escape_debug());
            return Err(HttpError::internal(what, error));
        }
        Resolution::Static(file) => {
            if req.method() != Method::GET && req.method() != Method::HEAD {
                return Err(HttpError::MethodNotAllowed);
            }
            static_files::respond(req.method(), req.headers(), file, &conn.send_queue)
        }
        Resolution::Script(script) => {
            let path = script.rel.to_string_lossy().into_owned();
            // Boxed: the script's future is large, and kept inline it would make every
            // request's future (static ones too) that large to build and move.
            let run = Box::pin(cgi::run(
                req,
                &script,
                &site,
                config,
                conn,
                &app.scripts,
                redirected,
            ));
            match run.await {
                Ok(Outcome::Response(r)) => r,
                Ok(Outcome::Redirect(location, parts)) => {
                    return Ok(Acted::Redirect(location, parts));
                }
                Err(failure) => return Err(HttpError::Script { failure, path }),
            }
        }
    };
    Ok(Acted::Done(response))
}

/// Where a request goes: a user's site (`None`: the document root), the URL prefix it is
/// reached under (`/~name`, or empty), and the path in it.
struct Routed {
    index: Option<usize>,
    prefix: String,
    url: url::UrlPath,
}

/// Routes the request by its host or `/~name/` (see `sites.rs`); `None` when `/~name` needs
/// its slash.
fn route<B>(req: &Request<B>, config: &Config) -> Result<Option<Routed>, HttpError> {
    let host = || {
        req.uri().host().or_else(|| {
            req.headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
        })
    };
    let (index, prefix, path) = match config.sites.route(host, req.uri().path()) {
        Route::Default => (None, String::new(), req.uri().path()),
        Route::Domain(i) => (Some(i), String::new(), req.uri().path()),
        Route::UserDir {
            index,
            prefix,
            rest,
        } => (Some(index), prefix.to_string(), rest),
        Route::UserDirSlash => return Ok(None),
        Route::NoSuchUser => return Err(HttpError::NotFound),
    };
    let url = url::parse(path).map_err(HttpError::BadPath)?;
    Ok(Some(Routed { index, prefix, url }))
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
