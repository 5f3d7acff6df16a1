//! The CGI environment (RFC 3875 §4.1, with Apache's extras), built from nothing: the server's
//! own environment never reaches a script, as with suEXEC's `clean_env()`.
//!
//! Pure: request facts in, `NAME=value` strings out.

use std::ffi::CString;
use std::net::SocketAddr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use http::{HeaderMap, Uri, Version};

/// The `PATH` a script gets.
pub const SAFE_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// What the environment is built from.
pub struct Facts<'a> {
    /// `REQUEST_METHOD`.
    pub method: &'a str,
    /// The request target as received (for `REQUEST_URI` and `QUERY_STRING`).
    pub uri: &'a Uri,
    /// `SERVER_PROTOCOL`.
    pub version: Version,
    /// The request headers.
    pub headers: &'a HeaderMap,
    /// `CONTENT_LENGTH`: the body's real length (after spooling a chunked body), if any.
    pub content_length: Option<u64>,
    /// The client.
    pub remote: SocketAddr,
    /// The server's end of the connection.
    pub local: SocketAddr,
    /// The request came over TLS: `HTTPS=on`, `REQUEST_SCHEME=https`.
    pub tls: bool,
    /// `DOCUMENT_ROOT`.
    pub document_root: &'a Path,
    /// `CONTEXT_PREFIX`: the URL prefix the site is reached under (`/~name`), or empty.
    pub context_prefix: &'a str,
    /// `CONTEXT_DOCUMENT_ROOT`: the site's own root.
    pub context_root: &'a Path,
    /// `SCRIPT_NAME` (decoded URL path).
    pub script_name: &'a [u8],
    /// `PATH_INFO` (decoded; empty when none).
    pub path_info: &'a [u8],
    /// `SCRIPT_FILENAME`.
    pub script_filename: &'a Path,
    /// Pass `Authorization` (Apache's `CGIPassAuth`).
    pub pass_authorization: bool,
    /// `REDIRECT_STATUS`, for handlers (`php-cgi` insists) and internal redirects.
    pub redirect_status: Option<u16>,
    /// `REDIRECT_URL`, after an internal redirect.
    pub redirect_url: Option<&'a str>,
    /// `REQUEST_URI` when it is not `uri`'s: the target the client sent, before a rewrite.
    pub request_uri: Option<&'a str>,
    /// `REMOTE_USER` (with `AUTH_TYPE=Basic`): the user the server's own authentication let in.
    pub remote_user: Option<&'a str>,
    /// Variables a `.htaccess` set (`SetEnv`, a rewrite's `[E=]`); the server's own win.
    pub extra: &'a [(String, String)],
}

/// Builds the environment.
pub fn build(f: &Facts<'_>) -> Vec<CString> {
    let mut env: Vec<(Vec<u8>, Vec<u8>)> = Vec::with_capacity(40);
    let mut set = |name: &str, value: &[u8]| env.push((name.as_bytes().to_vec(), value.to_vec()));

    set("GATEWAY_INTERFACE", b"CGI/1.1");
    set(
        "SERVER_SOFTWARE",
        crate::version::server_software().as_bytes(),
    );
    set("SERVER_PROTOCOL", protocol(f.version).as_bytes());
    set("REQUEST_METHOD", f.method.as_bytes());
    if f.tls {
        // As Apache's mod_ssl: `HTTPS` only when on (scripts test `$ENV{HTTPS}` for truth).
        set("HTTPS", b"on");
        set("REQUEST_SCHEME", b"https");
    } else {
        set("REQUEST_SCHEME", b"http");
    }
    set("QUERY_STRING", f.uri.query().unwrap_or("").as_bytes());
    let request_uri = f
        .request_uri
        .unwrap_or_else(|| f.uri.path_and_query().map_or("/", |pq| pq.as_str()));
    set("REQUEST_URI", request_uri.as_bytes());
    set("SCRIPT_NAME", f.script_name);
    set("SCRIPT_FILENAME", f.script_filename.as_os_str().as_bytes());
    if !f.path_info.is_empty() {
        set("PATH_INFO", f.path_info);
        let mut translated = f.context_root.as_os_str().as_bytes().to_vec();
        translated.extend_from_slice(f.path_info);
        set("PATH_TRANSLATED", &translated);
    }
    set("DOCUMENT_ROOT", f.document_root.as_os_str().as_bytes());
    set("CONTEXT_PREFIX", f.context_prefix.as_bytes());
    set(
        "CONTEXT_DOCUMENT_ROOT",
        f.context_root.as_os_str().as_bytes(),
    );
    set("SERVER_NAME", server_name(f).as_bytes());
    set("SERVER_ADDR", f.local.ip().to_string().as_bytes());
    set("SERVER_PORT", f.local.port().to_string().as_bytes());
    // No DNS lookups: REMOTE_HOST is the address, as RFC 3875 allows.
    set("REMOTE_ADDR", f.remote.ip().to_string().as_bytes());
    set("REMOTE_HOST", f.remote.ip().to_string().as_bytes());
    set("REMOTE_PORT", f.remote.port().to_string().as_bytes());
    if let Some(len) = f.content_length {
        set("CONTENT_LENGTH", len.to_string().as_bytes());
    }
    if let Some(ct) = f.headers.get(http::header::CONTENT_TYPE) {
        set("CONTENT_TYPE", ct.as_bytes());
    }
    if let Some(status) = f.redirect_status {
        set("REDIRECT_STATUS", status.to_string().as_bytes());
    }
    if let Some(url) = f.redirect_url {
        set("REDIRECT_URL", url.as_bytes());
    }
    if let Some(user) = f.remote_user {
        set("AUTH_TYPE", b"Basic");
        set("REMOTE_USER", user.as_bytes());
    }
    set("PATH", SAFE_PATH.as_bytes());
    header_variables(f, &mut set);
    extra_variables(f.extra, &mut env);
    env.into_iter()
        .filter_map(|(mut name, value)| {
            name.push(b'=');
            name.extend_from_slice(&value);
            CString::new(name).ok()
        })
        .collect()
}

/// The variables a `.htaccess` set, each unless the server set that name already.
///
/// SECURITY: names are letters, digits and `_` only, and never the dynamic loader's (`LD_*`)
/// or the shell's start-up hooks (`BASH_ENV`, `ENV`): a script runs as its owner anyway, but
/// an interpreter the host installed must not be steered by a line in a `.htaccess`.
fn extra_variables(extra: &[(String, String)], env: &mut Vec<(Vec<u8>, Vec<u8>)>) {
    for (name, value) in extra {
        let plain = !name.is_empty()
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && !name.starts_with("LD_")
            && !matches!(name.as_str(), "BASH_ENV" | "ENV" | "PATH" | "IFS");
        if plain && !env.iter().any(|(n, _)| n == name.as_bytes()) {
            env.push((name.as_bytes().to_vec(), value.as_bytes().to_vec()));
        }
    }
}

/// `HTTP_*` for every header a script may see, duplicates joined (`; ` for Cookie).
fn header_variables(f: &Facts<'_>, set: &mut impl FnMut(&str, &[u8])) {
    for name in f.headers.keys() {
        if let Some(var) = header_variable(name.as_str(), f.pass_authorization) {
            let joiner: &[u8] = if name == http::header::COOKIE {
                b"; "
            } else {
                b", "
            };
            let mut value = Vec::new();
            for v in f.headers.get_all(name) {
                // SECURITY: Shellshock hygiene: a value that looks like a bash function
                // definition is never exported, whatever shell the script may start.
                if v.as_bytes().starts_with(b"() {") {
                    continue;
                }
                if !value.is_empty() {
                    value.extend_from_slice(joiner);
                }
                value.extend_from_slice(v.as_bytes());
            }
            if !value.is_empty() || f.headers.get_all(name).iter().all(|v| v.is_empty()) {
                set(&var, &value);
            }
        }
    }
}

/// `HTTP_*` for a request header, or `None` when the header must not reach the script.
fn header_variable(name: &str, pass_authorization: bool) -> Option<String> {
    match name {
        // Carried as CONTENT_LENGTH / CONTENT_TYPE instead.
        "content-length" | "content-type" => None,
        // SECURITY: httpoxy: HTTP_PROXY would be taken for the proxy setting by many libraries.
        "proxy" => None,
        // The body is already de-chunked; the script sees a plain stream of CONTENT_LENGTH bytes.
        "transfer-encoding" => None,
        // SECURITY: credentials stay with the server unless the config passes them (CGIPassAuth).
        "authorization" | "proxy-authorization" if !pass_authorization => None,
        // SECURITY: `X_Foo` and `X-Foo` would both become HTTP_X_FOO; dropping names with `_`
        // keeps one header from overwriting another (what Apache 2.4 and nginx do).
        n if n.contains('_') => None,
        n => Some(format!("HTTP_{}", n.to_ascii_uppercase().replace('-', "_"))),
    }
}

/// `SERVER_NAME`: the Host header without its port, or the local address.
fn server_name(f: &Facts<'_>) -> String {
    // An absolute-form request target's authority wins over Host (RFC 9112 §3.2.2).
    let host = f.uri.host().or_else(|| {
        f.headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
    });
    match host {
        Some(h) => crate::host::without_port(h).to_string(),
        None => match f.local {
            SocketAddr::V4(a) => a.ip().to_string(),
            SocketAddr::V6(a) => format!("[{}]", a.ip()),
        },
    }
}

fn protocol(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        _ => "HTTP/1.1",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(headers: &[(&str, &str)], uri: &str) -> Vec<String> {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(
                http::header::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                v.parse().expect("value"),
            );
        }
        let uri: Uri = uri.parse().expect("uri");
        let facts = Facts {
            method: "GET",
            uri: &uri,
            version: Version::HTTP_11,
            headers: &map,
            content_length: None,
            remote: "[::1]:5555".parse().expect("addr"),
            local: "[::1]:8080".parse().expect("addr"),
            tls: false,
            document_root: Path::new("/srv/www"),
            context_prefix: "",
            context_root: Path::new("/srv/www"),
            script_name: b"/cgi-bin/env.cgi",
            path_info: b"/a b",
            script_filename: Path::new("/srv/www/cgi-bin/env.cgi"),
            pass_authorization: false,
            redirect_status: None,
            redirect_url: None,
            request_uri: None,
            remote_user: None,
            extra: &[],
        };
        build(&facts)
            .into_iter()
            .map(|c| c.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn the_rfc_variables_are_set() {
        let env = env_of(&[("Host", "[::1]:8080")], "/cgi-bin/env.cgi/a%20b?x=%41&y");
        for want in [
            "GATEWAY_INTERFACE=CGI/1.1",
            "QUERY_STRING=x=%41&y",
            "REQUEST_URI=/cgi-bin/env.cgi/a%20b?x=%41&y",
            "PATH_INFO=/a b",
            "PATH_TRANSLATED=/srv/www/a b",
            "SERVER_NAME=[::1]",
            "SERVER_PORT=8080",
            "REMOTE_ADDR=::1",
            "REMOTE_PORT=5555",
            "PATH=/usr/local/bin:/usr/bin:/bin",
            "HTTP_HOST=[::1]:8080",
        ] {
            assert!(env.contains(&want.to_string()), "missing {want} in {env:?}");
        }
    }

    #[test]
    fn header_hygiene() {
        let env = env_of(
            &[
                ("Proxy", "http://evil/"),
                ("X_Foo", "underscore"),
                ("X-Foo", "dash"),
                ("Authorization", "Basic c2VjcmV0"),
                ("Cookie", "a=1"),
                ("Cookie", "b=2"),
                ("Accept", "text/html"),
                ("Accept", "text/plain"),
                ("X-Shell", "() { :; }; echo pwned"),
            ],
            "/x",
        );
        assert!(!env.iter().any(|e| e.starts_with("HTTP_PROXY=")));
        assert!(env.contains(&"HTTP_X_FOO=dash".to_string()), "{env:?}");
        assert!(!env.iter().any(|e| e.contains("underscore")));
        assert!(!env.iter().any(|e| e.starts_with("HTTP_AUTHORIZATION=")));
        assert!(env.contains(&"HTTP_COOKIE=a=1; b=2".to_string()));
        assert!(env.contains(&"HTTP_ACCEPT=text/html, text/plain".to_string()));
        assert!(!env.iter().any(|e| e.contains("pwned")));
    }
}
