//! Pure: what a customer's HTTPS settings do to a request. `force_https` sends plain HTTP
//! requests for their domains to the same URL over HTTPS (301), except ACME's HTTP-01
//! challenges, which must be answered over plain HTTP; HSTS (`hsts_max_age`, theirs or
//! `[tls]`'s) tells browsers to come back over HTTPS only, and is sent over HTTPS only (RFC
//! 6797 §7.2: a browser ignores it over plain HTTP).

use std::net::SocketAddr;

use http::{HeaderValue, Request, Response, StatusCode, header};

use crate::body::Body;

use crate::config::Config;
use crate::sites::Route;

/// Where ACME's HTTP-01 challenges are answered; never redirected.
const ACME_CHALLENGES: &str = "/.well-known/acme-challenge/";

/// The customer whose domain the request's host is, if any.
pub fn customer_of<B>(req: &Request<B>, config: &Config) -> Option<usize> {
    let host = || {
        req.uri().host().or_else(|| {
            req.headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
        })
    };
    match config.sites.route(host, "/") {
        Route::Domain(i) => Some(i),
        _ => None,
    }
}

/// The `Location` a plain request is sent to when its customer forces HTTPS and an HTTPS
/// listener (`https`) runs; `None` to serve it as it is.
pub fn forced<B>(
    req: &Request<B>,
    config: &Config,
    customer: Option<usize>,
    https: Option<SocketAddr>,
) -> Option<String> {
    let https = https?;
    if !config.customers.get(customer?)?.force_https
        || req.uri().path().starts_with(ACME_CHALLENGES)
    {
        return None;
    }
    let host = req.uri().host().or_else(|| {
        req.headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
    })?;
    let host = crate::host::without_port(host);
    let port = match https.port() {
        443 => String::new(),
        p => format!(":{p}"),
    };
    let target = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
    Some(format!("https://{host}{port}{target}"))
}

/// A 301 to `location`; `None` when it cannot be a header value.
pub fn redirect(location: &str) -> Option<Response<Body>> {
    let value = HeaderValue::from_str(location).ok()?;
    let mut r = crate::error_page::page(StatusCode::MOVED_PERMANENTLY, None);
    r.headers_mut().insert(header::LOCATION, value);
    Some(r)
}

/// The `Strict-Transport-Security` value for an HTTPS response of `customer`'s (or of the
/// default site), if HSTS is on for it.
pub fn hsts(config: &Config, customer: Option<usize>) -> Option<HeaderValue> {
    let own = customer
        .and_then(|i| config.customers.get(i))
        .and_then(|c| c.hsts_max_age);
    let age = own.or(config.tls.hsts_max_age)?;
    HeaderValue::from_str(&format!("max-age={age}")).ok()
}
