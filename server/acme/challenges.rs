//! The HTTP-01 challenges in flight: token → key authorization, published by the ACME task
//! while an order waits for validation, and answered by the HTTP listener at
//! `/.well-known/acme-challenge/TOKEN` before any site sees the request (RFC 8555 §8.3).
//!
//! The map lives in the [`crate::app::App`], which the task and the service share.

use std::collections::HashMap;
use std::sync::RwLock;

use http::{Method, Response, StatusCode, header};

use crate::body::{self, Body};

/// Where the ACME server asks for a challenge's answer.
pub const PREFIX: &str = "/.well-known/acme-challenge/";

/// The challenges being validated now.
#[derive(Default)]
pub struct Challenges {
    tokens: RwLock<HashMap<String, String>>,
}

impl Challenges {
    /// Publishes `key_authorization` at `token` until [`Challenges::withdraw`].
    pub fn publish(&self, token: &str, key_authorization: &str) {
        let mut map = self.tokens.write().unwrap_or_else(|p| p.into_inner());
        map.insert(token.to_string(), key_authorization.to_string());
    }

    /// Stops answering `token`.
    pub fn withdraw(&self, token: &str) {
        let mut map = self.tokens.write().unwrap_or_else(|p| p.into_inner());
        map.remove(token);
    }

    /// The key authorization published at `token`.
    pub fn get(&self, token: &str) -> Option<String> {
        let map = self.tokens.read().unwrap_or_else(|p| p.into_inner());
        map.get(token).cloned()
    }

    /// The response to a request for `path`, when `path` is a challenge URL: the key
    /// authorization as `text/plain`, or 404 for a token not in flight. `None`: not a
    /// challenge URL, the sites serve it.
    ///
    /// SECURITY: answered here, before routing, so that no customer's site, `.htaccess` rule or
    /// script can answer (or break) the validation of a domain; only tokens this server's own
    /// task published are answered, so a client cannot make it vouch for anything else.
    pub fn answer(&self, method: &Method, path: &str) -> Option<Response<Body>> {
        let token = path.strip_prefix(PREFIX)?;
        let found = (method == Method::GET || method == Method::HEAD)
            .then(|| self.get(token))
            .flatten();
        let response = match found {
            Some(key_authorization) => Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, "text/plain")
                .header(header::CONTENT_LENGTH, key_authorization.len())
                .body(if method == Method::HEAD {
                    body::empty()
                } else {
                    body::full(key_authorization)
                }),
            None => Response::builder()
                .status(StatusCode::NOT_FOUND)
                .header(header::CONTENT_TYPE, "text/plain")
                .body(body::full("no such ACME challenge\n")),
        };
        response.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_published_tokens_only() {
        let c = Challenges::default();
        c.publish("tok_1-A", "tok_1-A.thumb");
        let ok = c.answer(&Method::GET, "/.well-known/acme-challenge/tok_1-A");
        assert_eq!(ok.map(|r| r.status()), Some(StatusCode::OK));
        let unknown = c.answer(&Method::GET, "/.well-known/acme-challenge/other");
        assert_eq!(unknown.map(|r| r.status()), Some(StatusCode::NOT_FOUND));
        let post = c.answer(&Method::POST, "/.well-known/acme-challenge/tok_1-A");
        assert_eq!(post.map(|r| r.status()), Some(StatusCode::NOT_FOUND));
        assert!(c.answer(&Method::GET, "/index.html").is_none());
        c.withdraw("tok_1-A");
        let gone = c.answer(&Method::GET, "/.well-known/acme-challenge/tok_1-A");
        assert_eq!(gone.map(|r| r.status()), Some(StatusCode::NOT_FOUND));
    }
}
