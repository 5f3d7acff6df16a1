//! Response compression: gzip and brotli for clients that ask for them, decided per response.
//!
//! A static file is compressed when its type is text-like, the server's `compress` setting is
//! on, the client accepts a coding (`negotiate`), and it asks for the whole file: a range is
//! always served from the file as it is (a byte range of a compressed stream that changes with
//! the compressor is worth nothing to a client), and so is a body under [`MIN_SIZE`], which
//! compression would only make longer. A precompressed sibling is sent when there is one
//! (`sibling`); otherwise the file is compressed as it is read (`stream`), never through the
//! `sendfile` placeholders, whose bytes the server never holds.
//!
//! Every response of a compressible type says `Vary: Accept-Encoding`, compressed or not, so
//! that a cache never hands a gzip body to a client that cannot read it. Each encoding has its
//! own strong ETag (the file's, with `-gz` or `-br` inside the quotes), so a conditional
//! request is answered for the representation it names.
//!
//! A script's output is compressed only with `compress_cgi` on, and only when the script
//! sent a text-like `Content-Type` and no `Content-Encoding` of its own (`for_script`).

mod negotiate;
mod sibling;
mod stream;

use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};
use yadokari_site::Jail;

use crate::body::Body;
use crate::resolve::StaticFile;

pub use negotiate::compressible;
pub use stream::compress;

/// Bodies shorter than this are sent as they are: the gzip header and trailer alone are 18
/// bytes, and below a few hundred bytes compression saves less than it costs.
pub const MIN_SIZE: u64 = 256;

/// What the server compresses (`[server] compress`, `compress_cgi`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Static files of compressible types.
    pub static_files: bool,
    /// Scripts' output of compressible types.
    pub cgi: bool,
}

/// A content coding the server produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coding {
    Gzip,
    Brotli,
}

impl Coding {
    /// The token of `Content-Encoding`.
    pub fn token(self) -> &'static str {
        match self {
            Coding::Gzip => "gzip",
            Coding::Brotli => "br",
        }
    }

    /// The extension of a precompressed sibling.
    fn extension(self) -> &'static str {
        match self {
            Coding::Gzip => ".gz",
            Coding::Brotli => ".br",
        }
    }

    /// What an ETag of this coding carries inside its quotes after the file's own tag.
    pub fn etag_suffix(self) -> &'static str {
        match self {
            Coding::Gzip => "-gz",
            Coding::Brotli => "-br",
        }
    }
}

/// How a static file's response is encoded.
#[derive(Debug)]
pub enum Encoding {
    /// Not a compressible type, or compression is off: the file as it is, no `Vary`.
    Plain,
    /// A compressible type sent as it is (the client chose identity, asked for a range, or the
    /// file is tiny): with `Vary`.
    Identity,
    /// The file, compressed as it is read.
    OnTheFly(Coding),
    /// A precompressed sibling's own bytes.
    Precompressed(Coding, StaticFile),
}

/// The request a response answers: its method and headers.
pub type Asked<'a> = (&'a Method, &'a HeaderMap);

/// How to encode `file`, of `content_type`, for this request.
pub fn for_static(
    (method, headers): Asked<'_>,
    file: &StaticFile,
    content_type: &str,
    jail: &Jail,
    settings: Settings,
) -> Encoding {
    if !settings.static_files || !compressible(content_type) {
        return Encoding::Plain;
    }
    let whole = *method == Method::HEAD || !headers.contains_key(header::RANGE);
    let size = file.stat.st_size.max(0) as u64;
    if !whole || size < MIN_SIZE {
        return Encoding::Identity;
    }
    let Some(coding) = negotiate::choose(headers.get_all(header::ACCEPT_ENCODING).iter()) else {
        return Encoding::Identity;
    };
    match sibling::open(jail, file, coding) {
        Some(sibling) => Encoding::Precompressed(coding, sibling),
        None => Encoding::OnTheFly(coding),
    }
}

/// A script's response, compressed when the settings, the request and the response allow.
/// `HEAD` gets the headers a `GET` would, over the empty body it has anyway.
pub fn for_script(
    mut response: Response<Body>,
    (method, headers): Asked<'_>,
    settings: Settings,
) -> Response<Body> {
    let out = response.headers();
    let compressible = settings.cgi
        && response.status() == StatusCode::OK
        && !out.contains_key(header::CONTENT_ENCODING)
        && !out.contains_key(header::CONTENT_RANGE)
        && out
            .get(header::CONTENT_TYPE)
            .and_then(|t| t.to_str().ok())
            .is_some_and(compressible);
    if !compressible {
        return response;
    }
    let out = response.headers_mut();
    add_vary(out);
    let tiny = out
        .get(header::CONTENT_LENGTH)
        .and_then(|l| l.to_str().ok())
        .and_then(|l| l.parse::<u64>().ok())
        .is_some_and(|l| l < MIN_SIZE);
    let Some(coding) = negotiate::choose(headers.get_all(header::ACCEPT_ENCODING).iter()) else {
        return response;
    };
    if tiny {
        return response;
    }
    out.insert(
        header::CONTENT_ENCODING,
        HeaderValue::from_static(coding.token()),
    );
    out.remove(header::CONTENT_LENGTH);
    out.remove(header::ACCEPT_RANGES);
    if let Some(tag) = out.get(header::ETAG).and_then(|t| t.to_str().ok())
        && let Some(strong) = with_suffix(tag, coding)
    {
        out.insert(header::ETAG, strong);
    }
    if method != Method::HEAD {
        response = response.map(|body| compress(coding, body));
    }
    response
}

/// A strong ETag `"x"` as `"x-gz"` (or `-br`); `None` for a weak or malformed one, which is
/// kept: a weak tag already allows another encoding of the same content.
fn with_suffix(tag: &str, coding: Coding) -> Option<HeaderValue> {
    let inner = tag.strip_prefix('"')?.strip_suffix('"')?;
    HeaderValue::from_str(&format!("\"{inner}{}\"", coding.etag_suffix())).ok()
}

/// Adds `Accept-Encoding` to the response's `Vary` unless it is there (or `Vary: *`).
pub fn add_vary(headers: &mut HeaderMap) {
    let present = headers.get_all(header::VARY).iter().any(|v| {
        v.as_bytes().split(|&b| b == b',').any(|f| {
            let f = f.trim_ascii();
            f == b"*" || f.eq_ignore_ascii_case(b"accept-encoding")
        })
    });
    if !present {
        headers.append(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strong_etags_get_the_coding_inside_their_quotes() {
        let gz = with_suffix("\"1f-5e\"", Coding::Gzip);
        assert_eq!(
            gz.as_ref().map(|v| v.as_bytes()),
            Some(&b"\"1f-5e-gz\""[..])
        );
        assert!(with_suffix("W/\"1f\"", Coding::Brotli).is_none());
        assert!(with_suffix("bare", Coding::Brotli).is_none());
    }

    #[test]
    fn vary_is_added_once() {
        let mut h = HeaderMap::new();
        add_vary(&mut h);
        add_vary(&mut h);
        assert_eq!(h.get_all(header::VARY).iter().count(), 1);
        let mut h = HeaderMap::new();
        h.insert(header::VARY, HeaderValue::from_static("Cookie"));
        add_vary(&mut h);
        assert_eq!(h.get_all(header::VARY).iter().count(), 2);
        let mut h = HeaderMap::new();
        h.insert(
            header::VARY,
            HeaderValue::from_static("cookie, accept-encoding"),
        );
        add_vary(&mut h);
        assert_eq!(h.get_all(header::VARY).iter().count(), 1);
    }
}
