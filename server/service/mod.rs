//! One request: a span, the URL → the resolution → the action. Every way it can fail is an
//! [`HttpError`], turned into a response and a log line in one place.
//!
//! Once routing has picked a customer's site, the request span records `customer` (so that the
//! events of the request reach that customer's `logs/error.log`, see `crate::customer_log`) and
//! the customer's log rides with the response body, which writes the access line.

use std::sync::Arc;
use std::time::SystemTime;

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tracing::Instrument;

use crate::access_log::{Entry, LoggedBody};
use crate::app::{App, State};
use crate::body::{self, Body, BoxError, RequestBody};
use crate::cgi::failure::Failure;
use crate::config::Config;
use crate::conn::{ConnInfo, InFlight};
use crate::customer_log::CustomerLog;
use crate::error::HttpError;
use crate::error_page;
use crate::htaccess::admission::{Admission, Asking};
use crate::htaccess::chain::Chain;
use crate::htaccess::content::ErrorDocument;
use crate::htaccess::rules::Rules;
use crate::sites::{Route, Served};
use crate::web_root::SiteRoot;
use crate::{htaccess, url};
use per_dir::{Moved, Notes, View};

mod https;
mod listing;
mod per_dir;
mod serve;

use serve::serve;

/// Handles one request, logging it when its response ends.
pub async fn handle(
    req: Request<Incoming>,
    app: Arc<App>,
    conn: Arc<ConnInfo>,
) -> Response<LoggedBody<InFlight>> {
    let guard = conn.activity.begin();
    // Only read the clock when the metrics are on.
    let started = crate::metrics::on().then(std::time::Instant::now);
    let version = req.version();
    let state = app.state();
    let config = &state.config;
    // Captured when the global access log is on, or when a customer's may want the line.
    let wanted = app.access_log.enabled() || app.customer_logs.active();
    let mut entry = wanted.then(|| Entry {
        remote: conn.peer.ip(),
        time: SystemTime::now(),
        request_line: request_line(&req),
        status: 0,
        referer: header_text(&req, header::REFERER),
        user_agent: header_text(&req, header::USER_AGENT),
    });
    // A debug-level span: at the default info level it costs nothing, where an info span
    // formats the method, URI and peer for every request (a few per cent of a small static
    // request). Events that matter carry their own fields (path, reason, script, pid).
    // `customer` is recorded once the request is routed to a customer's site.
    let span = tracing::debug_span!("request", method = %req.method(), uri = %req.uri(), peer = %conn.peer, customer = tracing::field::Empty);
    let mut req = req;
    crate::host::from_authority(&mut req);
    let host = crate::host::check(req.version(), req.uri(), req.headers());
    let site = https::customer_of(&req, config);
    let forced = (!conn.tls)
        .then(|| https::forced(&req, config, site, app.https))
        .flatten();
    let mut customer = None;
    let response = if conn.activity.ambiguous_framing() {
        HttpError::AmbiguousFraming.response(config)
    } else if let Err(e) = host {
        HttpError::BadHost(e).response(config)
    } else if unsupported_coding(req.headers()) {
        HttpError::UnsupportedCoding.response(config)
    } else if let Some(answer) = acme_challenge(&req, &app, config) {
        answer
    } else if let Some(r) = forced.as_deref().and_then(https::redirect) {
        r
    } else {
        let req = req.map(|b| b.map_err(|e| Box::new(e) as BoxError).boxed_unsync());
        let ctx = Ctx {
            state: &state,
            conn: &conn,
            app: &app,
        };
        respond(req, ctx, &mut customer).instrument(span).await
    };
    let mut response = response;
    if conn.tls
        && let Some(hsts) = https::hsts(config, site)
    {
        response
            .headers_mut()
            .insert(header::STRICT_TRANSPORT_SECURITY, hsts);
    }
    if version == http::Version::HTTP_2 {
        conn.activity.mark_multiplexed();
    } else if conn.activity.draining() {
        // Shutting down: this response ends the connection (see `Activity::settled`).
        response
            .headers_mut()
            .insert(header::CONNECTION, http::HeaderValue::from_static("close"));
    }
    if let Some(entry) = &mut entry {
        entry.status = response.status().as_u16();
    }
    if let Some(started) = started {
        crate::metrics::request(
            customer.as_deref().map(CustomerLog::name),
            response.status(),
            version,
            started.elapsed(),
        );
    }
    let log = app.access_log.clone();
    response.map(|b| LoggedBody::new(b, entry, log, customer, guard))
}

/// The answer to an ACME HTTP-01 challenge request, when `[acme]` is on and the request is
/// one: before any site sees it, so no customer's rules can get in the way (see
/// [`crate::acme::Challenges::answer`]). With `[acme]` off the sites serve the path as before.
fn acme_challenge(req: &Request<Incoming>, app: &App, config: &Config) -> Option<Response<Body>> {
    config.acme.as_ref()?;
    app.challenges.answer(req.method(), req.uri().path())
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

/// The request line as the access log shows it: an HTTP/2 request's target is its path (its
/// URI carries the scheme and authority, which an HTTP/1.1 request line has not), as Apache
/// logs it.
fn request_line<B>(req: &Request<B>) -> String {
    let target: &dyn std::fmt::Display = match req.uri().path_and_query() {
        Some(pq) if req.version() == http::Version::HTTP_2 => pq,
        _ => req.uri(),
    };
    format!("{} {target} {:?}", req.method(), req.version())
}

fn header_text<B>(req: &Request<B>, name: header::HeaderName) -> Option<String> {
    req.headers()
        .get(name)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// The most internal redirects and rewrites one request may follow.
const MAX_REDIRECTS: usize = 10;

/// What acting on one URL gave: a response, or somewhere else to go.
enum Acted {
    Done(Response<Body>),
    /// A script's `Location:` with a local path: followed as a GET.
    Redirect(String, http::request::Parts),
    /// A `.htaccess` rewrite: the same request, at another URL of the site.
    Rewrite(Request<RequestBody>),
    /// An `ErrorDocument` with a local path: served in place of the error, keeping its status
    /// and the headers that status needs (`WWW-Authenticate`, `Retry-After`).
    ErrorDocument(StatusCode, String, HeaderMap),
}

/// What every step of a request reads: the state in force, the connection, the application.
#[derive(Clone, Copy)]
struct Ctx<'a> {
    state: &'a State,
    conn: &'a ConnInfo,
    app: &'a App,
}

/// Where one pass of a request comes from.
#[derive(Clone, Copy)]
struct Pass<'a> {
    /// The original URL path, after an internal redirect or rewrite.
    redirected: Option<&'a str>,
    /// The request target as the client sent it.
    original: &'a http::Uri,
    /// The status an `ErrorDocument` pass keeps.
    error: Option<StatusCode>,
}

/// What the response of an `ErrorDocument` pass keeps of the error it stands for.
#[derive(Default)]
struct Kept {
    headers: HeaderMap,
}

/// Follows the request through its internal redirects and rewrites; `customer` is set to the
/// log of the customer whose site it was routed to.
async fn respond(
    req: Request<RequestBody>,
    ctx: Ctx<'_>,
    customer: &mut Option<Arc<CustomerLog>>,
) -> Response<Body> {
    let state = ctx.state;
    // The URI shares the request's buffer: keeping it costs no copy.
    let original = req.uri().clone();
    let host = req.headers().get(header::HOST).cloned();
    let mut req = req;
    let mut notes = Notes::default();
    let mut kept = Kept::default();
    let mut pass = Pass {
        redirected: None,
        original: &original,
        error: None,
    };
    for _ in 0..=MAX_REDIRECTS {
        match act(req, ctx, customer, &mut notes, pass).await {
            Ok(Acted::Done(mut response)) => {
                if let Some(status) = pass.error
                    && response.status().is_success()
                {
                    *response.status_mut() = status;
                    response.headers_mut().extend(kept.headers);
                }
                return response;
            }
            Err(e) => return e.response(&state.config),
            Ok(Acted::Rewrite(next)) => req = next,
            Ok(Acted::ErrorDocument(status, path, headers)) => {
                req = get_request(&path, host.as_ref());
                pass.error = Some(status);
                kept.headers = headers;
            }
            Ok(Acted::Redirect(location, mut parts)) => {
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
            }
        }
        pass.redirected = Some(original.path());
    }
    HttpError::Script {
        failure: Failure::RedirectLoop,
        path: original.path().to_string(),
    }
    .response(&state.config)
}

/// A bodiless GET for `path` (an `ErrorDocument`), on the same host.
fn get_request(path: &str, host: Option<&HeaderValue>) -> Request<RequestBody> {
    let mut req = Request::new(body::empty_request());
    if let Ok(uri) = path.parse() {
        *req.uri_mut() = uri;
    }
    if let Some(h) = host {
        req.headers_mut().insert(header::HOST, h.clone());
    }
    req
}

/// Acts on one URL: route it, apply the `.htaccess` files on its path, then serve, run or
/// refuse what it names.
async fn act(
    req: Request<RequestBody>,
    ctx: Ctx<'_>,
    customer: &mut Option<Arc<CustomerLog>>,
    notes: &mut Notes,
    pass: Pass<'_>,
) -> Result<Acted, HttpError> {
    let Ctx { state, conn, app } = ctx;
    let config = &state.config;
    let Some(Routed { index, prefix, url }) = route(&req, config)? else {
        return Ok(Acted::Done(add_slash(&req)));
    };
    // The customer whose site answers: the routed one, or the one whose web root is the
    // document root (the default site's owner).
    let owner = index.or(config.sites.default_owner());
    if let Some(name) = owner.and_then(|i| config.customers.get(i)).map(|c| &c.name) {
        tracing::Span::current().record("customer", name.as_str());
        *customer = app.customer_logs.get(name);
    }
    let SiteRoot { jail, root } = state
        .site_root(index)
        .map_err(|e| HttpError::internal("cannot open the site's directory", e))?;
    let root = &*root;
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
        customer: owner,
    };
    let admission = admitted((req.method(), req.headers()), ctx, &site, &url, notes).await;
    let admitted = match admission {
        Ok(admitted) => admitted,
        // Refused by the rules in force: their ErrorDocument answers, as in Apache.
        Err((e, Some(rules))) if pass.error.is_none() => {
            return instead_of_error(e, &rules, config);
        }
        Err((e, _)) => return Err(e),
    };
    let Some((chain, rules)) = admitted else {
        return serve(req, ctx, &site, &url, None, notes, pass).await;
    };
    let moved = if !chain.moves_urls() {
        Moved::Stay
    } else {
        let path = url.display();
        let (env, user) = (notes.env.clone(), notes.user.clone());
        let view = View {
            req: &req,
            jail: &jail,
            root,
            prefix: &prefix,
            path: &path,
            document_root: site.document_root,
            peer: conn.peer,
            local: conn.local,
            tls: conn.tls,
            env: &env,
            user: user.as_deref(),
        };
        per_dir::moved(&chain, &view, notes)?
    };
    match moved {
        Moved::Stay => {}
        Moved::Answer(r) => return Ok(Acted::Done(r)),
        Moved::Internal(target) => return with_target(req, &target).map(Acted::Rewrite),
    }
    let served = serve(req, ctx, &site, &url, Some(&rules), notes, pass).await;
    match served {
        Err(e) if pass.error.is_none() => instead_of_error(e, &rules, config),
        other => other,
    }
}

/// What the `.htaccess` files send in place of an error: their `ErrorDocument`, or the error
/// page with their `Header always` lines.
fn instead_of_error(e: HttpError, rules: &Rules, config: &Config) -> Result<Acted, HttpError> {
    let status = e.status();
    let Some(doc) = per_dir::error_document(rules, status) else {
        let mut r = e.response(config);
        per_dir::finish_error(&mut r, rules);
        return Ok(Acted::Done(r));
    };
    e.log(config);
    let mut needed = HeaderMap::new();
    e.status_headers(&mut needed);
    let mut r = match doc {
        ErrorDocument::Local(path) => {
            return Ok(Acted::ErrorDocument(status, path.clone(), needed));
        }
        ErrorDocument::Remote(url) => {
            let mut r = error_page::page(StatusCode::FOUND, None);
            if let Ok(v) = HeaderValue::from_str(url) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            r
        }
        ErrorDocument::Text(text) => {
            let mut r = Response::new(body::full(text.clone().into_bytes()));
            *r.status_mut() = status;
            r.headers_mut().extend(needed);
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            r
        }
    };
    per_dir::finish_error(&mut r, rules);
    Ok(Acted::Done(r))
}

/// The request with a new target (a rewrite's), its method, headers and body kept.
fn with_target(req: Request<RequestBody>, target: &str) -> Result<Request<RequestBody>, HttpError> {
    let uri = target.parse::<http::Uri>().map_err(|_| {
        HttpError::internal(
            "a .htaccess rewrote to an invalid URL",
            format!("target: {target}"),
        )
    })?;
    tracing::debug!(%target, "rewritten");
    let (mut parts, body) = req.into_parts();
    parts.uri = uri;
    Ok(Request::from_parts(parts, body))
}

/// A request the `.htaccess` files refused, and the rules in force when they did (none when a
/// file on the path cannot be used).
type Refused = (HttpError, Option<Arc<Rules>>);

/// The `.htaccess` files' admission of the request; `None` when there are none on its path.
async fn admitted(
    (method, headers): (&Method, &http::HeaderMap),
    ctx: Ctx<'_>,
    site: &Served<'_>,
    url: &url::UrlPath,
    notes: &mut Notes,
) -> Result<Option<(Arc<Chain>, Arc<Rules>)>, Refused> {
    let Some(cache) = &ctx.state.htaccess else {
        return Ok(None);
    };
    let config = &ctx.state.config;
    let home = site
        .customer
        .and_then(|i| config.customers.get(i))
        .map_or(&config.document_root, |c| &c.home);
    let asking = Asking {
        url,
        method: method.as_str(),
        peer: ctx.conn.peer.ip(),
        authorization: headers
            .get(header::AUTHORIZATION)
            .map(HeaderValue::as_bytes),
        jail: site.jail,
        root: site.root,
        home,
        index_files: &config.index_files,
    };
    match htaccess::admission::admit(cache, &ctx.app.basic_auth, &asking).await {
        Admission::Plain => Ok(None),
        Admission::Refused(r) => Err((HttpError::Htaccess(r), None)),
        Admission::RefusedBy { refusal, rules } => Err((HttpError::Htaccess(refusal), Some(rules))),
        Admission::Go { chain, rules, user } => {
            if user.is_some() {
                notes.user = user;
            }
            Ok(Some((chain, rules)))
        }
    }
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
