//! Pure: the request's host as RFC 9112 §3.2 requires it. An HTTP/1.1 request has exactly one
//! `Host` field; any request's `Host` is a valid `host[:port]` (RFC 3986 §3.2.2); a request
//! target in absolute form (`GET http://example.com/ HTTP/1.1`) names the host itself and wins
//! over the field (§3.2.2). What fails here is a 400, before anything is resolved: a Host of
//! `a/../b` must never reach a script as `SERVER_NAME`.

use std::fmt;

use http::{HeaderMap, Uri, Version, header};

/// Why the request's host is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostError {
    /// An HTTP/1.1 request without a `Host` field.
    Missing,
    /// More than one `Host` field.
    Repeated,
    /// A `Host` value that is not `host[:port]` (shown escaped).
    Invalid(String),
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostError::Missing => f.write_str("the HTTP/1.1 request has no Host header"),
            HostError::Repeated => f.write_str("the request has more than one Host header"),
            HostError::Invalid(v) => write!(f, "the Host header `{v}` is not a host name"),
        }
    }
}

impl std::error::Error for HostError {}

/// Gives an HTTP/2 request the Host field its `:authority` stands for, as Apache's mod_http2
/// does: everything after (routing, `%{HTTP_HOST}`, a script's `HTTP_HOST`, and the requests a
/// rewrite, an `ErrorDocument` or a script's `Location:` make from this one, which keep its
/// headers but not its absolute URI) then sees the host as it would over HTTP/1.1.
pub fn from_authority<B>(req: &mut http::Request<B>) {
    if req.version() != Version::HTTP_2 || req.headers().contains_key(header::HOST) {
        return;
    }
    let value = req
        .uri()
        .authority()
        .and_then(|a| http::HeaderValue::from_str(a.as_str()).ok());
    if let Some(value) = value {
        req.headers_mut().insert(header::HOST, value);
    }
}

/// A Host value without its port: `example.org:8080` → `example.org`, `[::1]:80` → `[::1]`.
pub fn without_port(host: &str) -> &str {
    if host.starts_with('[') {
        match host.find(']') {
            Some(end) => &host[..=end],
            None => host,
        }
    } else {
        host.split(':').next().unwrap_or(host)
    }
}

/// Checks the request's `Host` fields.
pub fn check(version: Version, uri: &Uri, headers: &HeaderMap) -> Result<(), HostError> {
    let mut hosts = headers.get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (_, Some(_)) => Err(HostError::Repeated),
        (None, _) if version == Version::HTTP_11 && uri.authority().is_none() => {
            Err(HostError::Missing)
        }
        (None, _) => Ok(()),
        // The absolute form's authority is used and the field ignored (§3.2.2).
        (Some(_), None) if uri.authority().is_some() => Ok(()),
        (Some(value), None) if valid(value.as_bytes()) => Ok(()),
        (Some(value), None) => Err(HostError::Invalid(
            String::from_utf8_lossy(value.as_bytes())
                .escape_debug()
                .to_string(),
        )),
    }
}

/// `host[:port]`: an IP literal in brackets or a reg-name (unreserved, sub-delims and
/// percent-encoded octets), then optionally `:` and digits.
fn valid(value: &[u8]) -> bool {
    let (host, port) = match value.first() {
        Some(b'[') => match value.iter().position(|&b| b == b']') {
            Some(end) => {
                let literal = &value[1..end];
                let ok = !literal.is_empty()
                    && literal
                        .iter()
                        .all(|b| b.is_ascii_hexdigit() || b":.".contains(b));
                if !ok {
                    return false;
                }
                (&value[..0], &value[end + 1..])
            }
            None => return false,
        },
        _ => match value.iter().position(|&b| b == b':') {
            Some(colon) => (&value[..colon], &value[colon..]),
            None => (value, &value[value.len()..]),
        },
    };
    let reg_name = host.iter().enumerate().all(|(i, &b)| {
        let escape = || {
            host.get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
        };
        b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=".contains(&b) || (b == b'%' && escape())
    });
    let port_ok = port.is_empty() || (port[0] == b':' && port[1..].iter().all(u8::is_ascii_digit));
    let named = !host.is_empty() || value.first() == Some(&b'[');
    named && reg_name && port_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_hosts(hosts: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in hosts {
            h.append(header::HOST, v.parse().expect("value"));
        }
        h
    }

    type Row<'a> = (Version, &'a Uri, &'a [&'a str], Result<(), HostError>);

    #[test]
    fn the_rules_of_rfc_9112() {
        let origin: Uri = "/x".parse().expect("uri");
        let absolute: Uri = "http://abs.example/x".parse().expect("uri");
        let v11 = Version::HTTP_11;
        let rows: &[Row<'_>] = &[
            (v11, &origin, &["example.com"], Ok(())),
            (v11, &origin, &["example.com:8080"], Ok(())),
            (v11, &origin, &["127.0.0.1:80"], Ok(())),
            (v11, &origin, &["[::1]:8080"], Ok(())),
            (v11, &origin, &["xn--r8jz45g.jp"], Ok(())),
            (v11, &origin, &[], Err(HostError::Missing)),
            (Version::HTTP_10, &origin, &[], Ok(())),
            (v11, &absolute, &[], Ok(())),
            (v11, &origin, &["a", "b"], Err(HostError::Repeated)),
            (
                v11,
                &origin,
                &["a b"],
                Err(HostError::Invalid("a b".into())),
            ),
            (
                v11,
                &origin,
                &["a/../b"],
                Err(HostError::Invalid("a/../b".into())),
            ),
            (v11, &origin, &[""], Err(HostError::Invalid("".into()))),
            (
                v11,
                &origin,
                &["a:b"],
                Err(HostError::Invalid("a:b".into())),
            ),
            (
                v11,
                &origin,
                &["[::1"],
                Err(HostError::Invalid("[::1".into())),
            ),
            (
                v11,
                &origin,
                &["a@b"],
                Err(HostError::Invalid("a@b".into())),
            ),
        ];
        for (version, uri, hosts, expected) in rows {
            assert_eq!(
                &check(*version, uri, &with_hosts(hosts)),
                expected,
                "{hosts:?}"
            );
        }
    }

    #[test]
    fn an_h2_request_gets_its_authority_as_host() {
        let mut req = http::Request::builder()
            .version(Version::HTTP_2)
            .uri("https://alice.example:8443/a?b")
            .body(())
            .expect("request");
        from_authority(&mut req);
        assert_eq!(req.headers()[header::HOST], "alice.example:8443");
        // Never over HTTP/1.1, nor over a Host the client sent.
        let mut h1 = http::Request::builder()
            .uri("http://x.example/")
            .body(())
            .expect("request");
        from_authority(&mut h1);
        assert!(!h1.headers().contains_key(header::HOST));
        let mut sent = http::Request::builder()
            .version(Version::HTTP_2)
            .uri("https://a.example/")
            .header(header::HOST, "b.example")
            .body(())
            .expect("request");
        from_authority(&mut sent);
        assert_eq!(sent.headers()[header::HOST], "b.example");
    }
}
