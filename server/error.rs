//! One type for everything a request can end in other than the response it asked for: a bad
//! path, a refusal of the gate, a script that failed, a server fault. Each request's error is
//! made once, where it happens, and becomes a response in one place ([`HttpError::response`]),
//! which also logs it once, with its reason and fix (as hyper's `Error` carries its kind and
//! its cause). User errors are logged at `info`/`warn` and explained; server faults at `error`
//! with their cause, and the page stays generic.

use std::fmt;

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use yadokari_site::Denial;
use yadokari_site::denial::Explanation;

use crate::body::Body;
use crate::cgi::failure::Failure;
use crate::config::Config;
use crate::error_page;
use crate::host::HostError;
use crate::url::UrlError;

/// Why a request got an error page instead of what it asked for.
#[derive(Debug)]
pub enum HttpError {
    /// The request path cannot name a file of the site (400).
    BadPath(UrlError),
    /// Both Content-Length and Transfer-Encoding: a request-smuggling shape (400, closed).
    AmbiguousFraming,
    /// No Host, two of them, or one that is not a host name (400).
    BadHost(HostError),
    /// A Transfer-Encoding other than `chunked` alone (501, closed: the body's end is unknown).
    UnsupportedCoding,
    /// Nothing there (404).
    NotFound,
    /// A method other than GET or HEAD for a static file (405).
    MethodNotAllowed,
    /// The permission gate refused the file at site-relative `path`.
    Denied { denial: Denial, path: String },
    /// The script at site-relative `path` could not run or answer.
    Script { failure: Failure, path: String },
    /// A `.htaccess` refused the request, asks for credentials, or cannot be used.
    Htaccess(Box<crate::htaccess::Refusal>),
    /// A fault of the server, not of the request: `what` it was doing, and the cause (500).
    Internal {
        what: String,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl HttpError {
    /// A server fault while doing `what`.
    pub fn internal(
        what: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> HttpError {
        HttpError::Internal {
            what: what.into(),
            source: source.into(),
        }
    }

    /// The status it answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            HttpError::BadPath(_) | HttpError::AmbiguousFraming | HttpError::BadHost(_) => {
                StatusCode::BAD_REQUEST
            }
            HttpError::UnsupportedCoding => StatusCode::NOT_IMPLEMENTED,
            HttpError::NotFound => StatusCode::NOT_FOUND,
            HttpError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            HttpError::Denied { denial, .. } => {
                StatusCode::from_u16(denial.status()).unwrap_or(StatusCode::FORBIDDEN)
            }
            HttpError::Script { failure, path } => failure.explain(path).0,
            HttpError::Htaccess(r) => r.status,
            HttpError::Internal { source, .. } if out_of_descriptors(source.as_ref()) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            HttpError::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The reason and fix a person is told (and the log gets), when there is one to give.
    fn explanation(&self, config: Option<&Config>) -> Option<Explanation> {
        let plain = |reason: String, fix: &str| Explanation {
            reason,
            fix: fix.to_string(),
        };
        match self {
            HttpError::BadPath(e) => Some(plain(
                format!("{}.", capitalise(&e.to_string())),
                "Request a plain path inside the site.",
            )),
            HttpError::AmbiguousFraming => Some(plain(
                "The request has both Content-Length and Transfer-Encoding, which is ambiguous."
                    .into(),
                "Send only one of them.",
            )),
            HttpError::BadHost(e) => Some(plain(
                format!("{}.", capitalise(&e.to_string())),
                "Send exactly one Host header naming the site, e.g. `Host: example.com`.",
            )),
            HttpError::UnsupportedCoding => Some(plain(
                "The request body has a Transfer-Encoding other than chunked, which this server does not decode.".into(),
                "Send the body with Content-Length, or with Transfer-Encoding: chunked alone.",
            )),
            HttpError::Denied { denial, path } => Some(match config {
                Some(config) => crate::resolve::explain(denial, path, config),
                None => denial.explain(path),
            }),
            HttpError::Script { failure, path } => Some(failure.explain(path).1),
            HttpError::Htaccess(r) => Some(plain(r.reason.clone(), &r.fix)),
            HttpError::NotFound | HttpError::MethodNotAllowed | HttpError::Internal { .. } => None,
        }
    }

    /// Logs it once, at the level its kind deserves.
    fn record(&self, status: StatusCode, explanation: Option<&Explanation>) {
        let status = status.as_u16();
        let (why, fix) = explanation.map_or(("", ""), |e| (e.reason.as_str(), e.fix.as_str()));
        match self {
            HttpError::BadPath(_) => tracing::info!(status, why, "refused: bad request path"),
            HttpError::AmbiguousFraming => {
                tracing::info!(status, "refused: both Content-Length and Transfer-Encoding")
            }
            HttpError::BadHost(_) => tracing::info!(status, why, "refused: bad Host"),
            HttpError::UnsupportedCoding => {
                tracing::info!(status, "refused: a transfer coding other than chunked")
            }
            HttpError::NotFound => tracing::debug!("not found"),
            HttpError::MethodNotAllowed => tracing::debug!("method not allowed"),
            HttpError::Denied { denial, path } => {
                crate::metrics::refusal(denial.code());
                tracing::warn!(status, reason = denial.code(), path = %path, why, fix, "refused")
            }
            HttpError::Script { failure, path } => {
                crate::metrics::script_failed(failure.code());
                tracing::warn!(status, reason = failure.code(), script = %path, why, fix, "script failed")
            }
            HttpError::Htaccess(r) if r.status == StatusCode::UNAUTHORIZED => {
                tracing::debug!(status, reason = r.code, "credentials wanted")
            }
            HttpError::Htaccess(r) => {
                tracing::warn!(status, reason = r.code, why, fix, "refused by .htaccess")
            }
            HttpError::Internal { what, source } => {
                tracing::error!(status, error = %source, "{what}")
            }
        }
    }

    /// Logs it once (when something else is sent in place of its page).
    pub fn log(&self, config: &Config) {
        self.record(self.status(), self.explanation(Some(config)).as_ref());
    }

    /// Logs it and renders its page: the status, Apache's wording, and the reason and fix when
    /// the configuration's `explain_errors` is on.
    pub fn response(&self, config: &Config) -> Response<Body> {
        let status = self.status();
        let explanation = self.explanation(Some(config));
        self.record(status, explanation.as_ref());
        let shown = explanation.as_ref().filter(|_| config.explain_errors);
        let mut r = error_page::page(status, shown);
        self.status_headers(r.headers_mut());
        r
    }

    /// The headers its status needs on any page sent for it (the error page, or an
    /// `ErrorDocument` in its place): `Allow` with a 405, `WWW-Authenticate` with a 401 (a 401
    /// without it never shows the browser's login box), `Retry-After` with a 429 or 503.
    pub fn status_headers(&self, headers: &mut http::HeaderMap) {
        let status = self.status();
        match self {
            HttpError::MethodNotAllowed => {
                headers.insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            }
            HttpError::AmbiguousFraming | HttpError::UnsupportedCoding => {
                headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            HttpError::Htaccess(r) => {
                if let Some(v) = r.challenge() {
                    headers.insert(header::WWW_AUTHENTICATE, v);
                }
                if let Some(secs) = r.retry_after {
                    headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
                }
            }
            _ if status == StatusCode::SERVICE_UNAVAILABLE => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self, self.explanation(None)) {
            (HttpError::Internal { what, source }, _) => write!(f, "{what}: {source}"),
            (_, Some(e)) => f.write_str(&e.reason),
            (_, None) => write!(f, "{}", self.status()),
        }
    }
}

impl std::error::Error for HttpError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HttpError::BadPath(e) => Some(e),
            HttpError::BadHost(e) => Some(e),
            HttpError::Script { failure, .. } => Some(failure),
            HttpError::Internal { source, .. } => Some(source.as_ref()),
            _ => None,
        }
    }
}

/// Whether a fault's cause is running out of descriptors: it passes, so 503 and Retry-After.
fn out_of_descriptors(source: &(dyn std::error::Error + 'static)) -> bool {
    source
        .downcast_ref::<std::io::Error>()
        .is_some_and(crate::descriptors::exhausted)
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = Config::load(
            None,
            &crate::config::Overrides {
                root: Some(dir.path().to_path_buf()),
                ..Default::default()
            },
        )
        .expect("config");
        c.explain_errors = true;
        c
    }

    #[test]
    fn each_kind_has_its_status_and_its_headers() {
        let config = config();
        let rows: Vec<(HttpError, u16)> = vec![
            (HttpError::BadPath(UrlError::Nul), 400),
            (HttpError::AmbiguousFraming, 400),
            (HttpError::NotFound, 404),
            (HttpError::MethodNotAllowed, 405),
            (
                HttpError::Denied {
                    denial: Denial::Hidden,
                    path: ".htaccess".into(),
                },
                403,
            ),
            (
                HttpError::Script {
                    failure: Failure::Busy { slots: 2 },
                    path: "a.cgi".into(),
                },
                503,
            ),
            (
                HttpError::internal("fstat failed", std::io::Error::other("x")),
                500,
            ),
        ];
        for (e, status) in rows {
            let r = e.response(&config);
            assert_eq!(r.status(), status, "{e:?}");
            if status == 503 {
                assert_eq!(r.headers()[header::RETRY_AFTER], "1");
            }
            if let HttpError::MethodNotAllowed = e {
                assert_eq!(r.headers()[header::ALLOW], "GET, HEAD");
            }
            if let HttpError::AmbiguousFraming = e {
                assert_eq!(r.headers()[header::CONNECTION], "close");
            }
        }
    }

    #[test]
    fn a_server_fault_keeps_its_cause_and_shows_nothing_of_it() {
        let e = HttpError::internal(
            "cannot open the document root",
            std::io::Error::other("EMFILE"),
        );
        assert!(e.to_string().contains("EMFILE"));
        assert!(std::error::Error::source(&e).is_some());
        let r = e.response(&config());
        assert_eq!(r.status(), 500);
    }
}
