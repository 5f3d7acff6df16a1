//! The `.htaccess` side of one request: admission (access and Basic authentication), the
//! rewrites and redirects that may send it elsewhere, and what the files add to the response
//! (media types, charset, `Header`, `Expires`, `ErrorDocument`).
//!
//! The directive families are pure and ask about the request through
//! [`htaccess::context::Context`]; [`View`] answers for a real request, and keeps every file
//! test a `RewriteCond` makes inside the site (SECURITY: a `.htaccess` can write any path into
//! a test string; `-f /etc/passwd` must not tell a customer what exists outside their site).

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, SystemTime};

use http::header::{self, HeaderMap, HeaderValue};
use http::{Request, Response, StatusCode};
use yadokari_site::Jail;

use crate::body::{Body, RequestBody};
use crate::error::HttpError;
use crate::htaccess::chain::Chain;
use crate::htaccess::content::ErrorDocument;
use crate::htaccess::context::{Context, FileTest, HEADER_VARIABLES};
use crate::htaccess::rewrite::Outcome;
use crate::htaccess::rules::Rules;
use crate::htaccess::{Refusal, headers, location};

/// What a request keeps across its internal rewrites.
#[derive(Default)]
pub(super) struct Notes {
    /// Variables the rewrites set (`[E=]`), for scripts.
    pub(super) env: Vec<(String, String)>,
    /// `[END]` was reached: no more rewriting.
    pub(super) ended: bool,
    /// The user who logged in.
    pub(super) user: Option<String>,
}

/// A request as the directives see it.
pub(super) struct View<'a> {
    pub(super) req: &'a Request<RequestBody>,
    pub(super) jail: &'a Jail,
    /// The site's web root and the URL prefix it is reached under (`/~name`).
    pub(super) root: &'a Path,
    pub(super) prefix: &'a str,
    /// The decoded path inside the site.
    pub(super) path: &'a str,
    pub(super) document_root: &'a Path,
    pub(super) peer: SocketAddr,
    pub(super) local: SocketAddr,
    /// The request came over TLS.
    pub(super) tls: bool,
    /// What earlier passes set (`[E=]`) and who logged in.
    pub(super) env: &'a [(String, String)],
    pub(super) user: Option<&'a str>,
}

impl Context for View<'_> {
    fn variable(&self, name: &str) -> Option<String> {
        let req = self.req;
        Some(match name {
            "REQUEST_URI" => format!("{}{}", self.prefix, self.path),
            "REQUEST_FILENAME" | "SCRIPT_FILENAME" => self.filename(),
            "REQUEST_METHOD" => req.method().to_string(),
            "HTTPS" => if self.tls { "on" } else { "off" }.into(),
            "REQUEST_SCHEME" => if self.tls { "https" } else { "http" }.into(),
            "SERVER_NAME" => server_name(req),
            "SERVER_PORT" => self.local.port().to_string(),
            "SERVER_ADDR" => self.local.ip().to_string(),
            "SERVER_PROTOCOL" => format!("{:?}", req.version()),
            "SERVER_SOFTWARE" => crate::version::server_software().into(),
            "REMOTE_ADDR" | "REMOTE_HOST" | "CONN_REMOTE_ADDR" => self.peer.ip().to_string(),
            "REMOTE_PORT" => self.peer.port().to_string(),
            "REMOTE_USER" => self.user?.to_string(),
            "AUTH_TYPE" => self.user.map(|_| "Basic".to_string())?,
            "DOCUMENT_ROOT" => self.document_root.display().to_string(),
            "CONTEXT_DOCUMENT_ROOT" => self.root.display().to_string(),
            "CONTEXT_PREFIX" => self.prefix.to_string(),
            "QUERY_STRING" => req.uri().query().unwrap_or("").to_string(),
            "THE_REQUEST" => format!("{} {} {:?}", req.method(), req.uri(), req.version()),
            "PATH_INFO" => String::new(),
            other => {
                let header = HEADER_VARIABLES.iter().find(|(v, _)| *v == other)?.1;
                return self.header(header);
            }
        })
    }

    fn header(&self, name: &str) -> Option<String> {
        let values: Vec<String> = self
            .req
            .headers()
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect();
        (!values.is_empty()).then(|| values.join(", "))
    }

    fn env(&self, name: &str) -> Option<String> {
        self.env
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }

    fn file_test(&self, path: &str, test: FileTest) -> bool {
        crate::htaccess::context::test_in_site(self.jail, self.root, path, test)
    }
}

impl View<'_> {
    /// The file the path maps to (whether or not it exists).
    fn filename(&self) -> String {
        let rel = self.path.trim_start_matches('/');
        self.root.join(rel).display().to_string()
    }
}

/// The host the request named, without its port (the server's name when it named none).
fn server_name(req: &Request<RequestBody>) -> String {
    let host = req
        .uri()
        .host()
        .or_else(|| {
            req.headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
        })
        .unwrap_or("localhost");
    crate::host::without_port(host).to_string()
}

/// Where the rewrites and redirects send a request.
pub(super) enum Moved {
    /// Nowhere: go on.
    Stay,
    /// Served from another path of the site (`path` with its query), as a new pass.
    Internal(String),
    /// An answer already: an external redirect, or a status of a rule.
    Answer(Response<Body>),
}

/// Applies the rewrite rules (unless `[END]` was reached), then the redirects.
pub(super) fn moved(chain: &Chain, view: &View<'_>, notes: &mut Notes) -> Result<Moved, HttpError> {
    let query = view.req.uri().query();
    if !notes.ended
        && let Some((dir_url, rewrites)) = chain.rewrites()
    {
        let applied = rewrites.apply(view, dir_url, view.path, query);
        for (name, value) in applied.env {
            notes.env.retain(|(n, _)| *n != name);
            if let Some(v) = value {
                notes.env.push((name, v));
            }
        }
        let line = applied.line.unwrap_or(0);
        match applied.outcome {
            Outcome::Unchanged => {}
            Outcome::Internal { path, query, end } => {
                notes.ended |= end;
                let mut target = location::in_site(view.prefix, &path);
                if let Some(q) = query {
                    target.push('?');
                    target.push_str(&q);
                }
                return Ok(Moved::Internal(target));
            }
            other => return answer(other, dir_url, line),
        }
    }
    if chain.levels.iter().all(|l| l.file.redirects.is_empty()) {
        return Ok(Moved::Stay);
    }
    // mod_alias matches the URL the client sent; a site reached at `/~name/` also answers to
    // the path inside it, as on its own domain.
    let full = (!view.prefix.is_empty()).then(|| format!("{}{}", view.prefix, view.path));
    match chain
        .redirects()
        .apply_either(view, view.path, full.as_deref(), query)
    {
        Some(r) => answer(r.outcome, "a .htaccess on the path", r.line),
        None => Ok(Moved::Stay),
    }
}

/// A rule's answer: a redirect response, or a refusal with the rule's status.
fn answer(outcome: Outcome, dir: &str, line: usize) -> Result<Moved, HttpError> {
    let at = format!("the .htaccess in {dir}, line {line}");
    let refusal = |status: u16, reason: String, fix: String| {
        HttpError::Htaccess(Box::new(Refusal {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN),
            code: "htaccess_rule",
            reason,
            fix,
            realm: None,
            retry_after: None,
        }))
    };
    match outcome {
        Outcome::Redirect { status, location } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::FOUND);
            let mut r = crate::error_page::page(status, None);
            let v = HeaderValue::from_str(&location).map_err(|_| {
                refusal(
                    500,
                    format!("{at} redirects to `{location}`, which cannot be sent as a header."),
                    "Escape the target URL.".into(),
                )
            })?;
            r.headers_mut().insert(header::LOCATION, v);
            Ok(Moved::Answer(r))
        }
        Outcome::Status(code) => Err(refusal(
            code,
            format!("{at} answers {code} for this URL (a rule's [F], [G] or R={code})."),
            "Change that rule if this URL should be served.".into(),
        )),
        Outcome::Refused { status, problem } => Err(refusal(
            status,
            format!("{at}: {}", problem.problem),
            problem.fix,
        )),
        Outcome::Unchanged | Outcome::Internal { .. } => Ok(Moved::Stay),
    }
}

/// What the files add to a response for the file named `name`: its media type and charset,
/// `Expires`, and the `Header` actions.
pub(super) fn finish(
    response: &mut Response<Body>,
    rules: &Rules,
    name: Option<&str>,
    is_static: bool,
) {
    let headers = response.headers_mut();
    if is_static {
        media_type(headers, rules, name);
    }
    expires(headers, rules);
    headers::apply_to(headers, &rules.headers, false);
}

/// What the files add to an error page: only `Header always` actions.
pub(super) fn finish_error(response: &mut Response<Body>, rules: &Rules) {
    headers::apply_to(response.headers_mut(), &rules.headers, true);
}

fn media_type(headers: &mut HeaderMap, rules: &Rules, name: Option<&str>) {
    let given = name
        .and_then(|n| rules.type_for(n))
        .map(str::to_string)
        .or_else(|| {
            let now = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
            (now == "application/octet-stream")
                .then(|| rules.default_type.clone())
                .flatten()
        });
    if let Some(t) = given.and_then(|t| HeaderValue::from_str(&t).ok()) {
        headers.insert(header::CONTENT_TYPE, t);
    }
    if let Some(Some(charset)) = &rules.default_charset
        && let Some(now) = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
        && (now.starts_with("text/plain") || now.starts_with("text/html"))
        && !now.contains("charset")
        && let Ok(v) = HeaderValue::from_str(&format!("{now}; charset={charset}"))
    {
        headers.insert(header::CONTENT_TYPE, v);
    }
}

fn expires(headers: &mut HeaderMap, rules: &Rules) {
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some((from_modification, after)) = rules.expires.for_type(media) else {
        return;
    };
    if !from_modification {
        let (expires, cache_control) = from_access(after);
        headers.insert(header::EXPIRES, expires);
        headers.insert(header::CACHE_CONTROL, cache_control);
        return;
    }
    let Some(modified) = headers
        .get(header::LAST_MODIFIED)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
    else {
        return;
    };
    let at = modified + after;
    let max_age = at
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO)
        .as_secs();
    if let Ok(v) = HeaderValue::from_str(&httpdate::fmt_http_date(at)) {
        headers.insert(header::EXPIRES, v);
    }
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_str(&format!("max-age={max_age}"))
            .unwrap_or(HeaderValue::from_static("max-age=0")),
    );
}

/// `Expires` and `Cache-Control` for "access plus `after`": the same for a whole second, so
/// each thread formats them once per second and duration, not once per request.
fn from_access(after: Duration) -> (HeaderValue, HeaderValue) {
    thread_local! {
        static LAST: std::cell::RefCell<Option<(u64, Duration, HeaderValue, HeaderValue)>> =
            const { std::cell::RefCell::new(None) };
    }
    let now = SystemTime::now();
    let second = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    LAST.with_borrow_mut(|last| {
        if let Some((s, a, expires, cache_control)) = last.as_ref()
            && *s == second
            && *a == after
        {
            return (expires.clone(), cache_control.clone());
        }
        let expires = HeaderValue::from_str(&httpdate::fmt_http_date(now + after))
            .unwrap_or(HeaderValue::from_static("0"));
        // Exactly the duration written, as Apache sends it (measuring it against a second
        // `now` would give 86399 for "access plus 1 day").
        let cache_control = HeaderValue::from_str(&format!("max-age={}", after.as_secs()))
            .unwrap_or(HeaderValue::from_static("max-age=0"));
        *last = Some((second, after, expires.clone(), cache_control.clone()));
        (expires, cache_control)
    })
}

/// The `ErrorDocument` for `status`, if the files name one.
pub(super) fn error_document(rules: &Rules, status: StatusCode) -> Option<&ErrorDocument> {
    rules
        .error_documents
        .iter()
        .rev()
        .find(|(code, _)| *code == status.as_u16())
        .map(|(_, d)| d)
}
