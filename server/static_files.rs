//! Static files: validators (ETag, Last-Modified) and conditional requests, single byte ranges,
//! HEAD, and bodies streamed from the open file, never read whole into memory, as they are or
//! in the encoding `crate::compress` chose.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};
use http_body_util::BodyExt;
use nix::sys::stat::FileStat;

use crate::body::{self, Body};
use crate::compress::{Asked, Coding, Encoding};
use crate::resolve::StaticFile;
use crate::sendfile::{self, SendQueue};

/// Read size for bodies copied through memory.
const CHUNK: usize = 256 * 1024;

/// Bodies from this size on go out with `sendfile` (when the connection can): below it, one
/// `pread` and one `writev` with the header cost less than a `writev` and a `sendfile`.
const SENDFILE_FROM: u64 = 64 * 1024;

/// Builds the response for an opened, gate-approved regular file of `content_type` (from
/// [`content_type`]), encoded as `encoding` says (see `crate::compress`). Large bodies sent
/// as they are go to `send_queue` (the connection's; see `sendfile.rs`) when there is one: a
/// TLS connection has none, and gets the file's bytes. A body compressed on the fly is read
/// and compressed here.
///
/// Every header value is built with at most one allocation, or none: this runs for every
/// static request, where allocation was a twentieth of the server's CPU time.
pub fn respond(
    (method, headers): Asked<'_>,
    (file, content_type): (StaticFile, &'static str),
    encoding: Encoding,
    send_queue: Option<&Arc<SendQueue>>,
) -> Response<Body> {
    let vary = !matches!(encoding, Encoding::Plain);
    // The file whose bytes and validators the response carries: a precompressed sibling
    // stands in for the file it compresses.
    let (coding, on_the_fly, file) = match encoding {
        Encoding::Plain | Encoding::Identity => (None, None, file),
        Encoding::OnTheFly(coding) => (Some(coding), Some(coding), file),
        Encoding::Precompressed(coding, sibling) => (Some(coding), None, sibling),
    };
    let StaticFile { rel, file, stat } = file;
    let size = stat.st_size.max(0) as u64;
    let mut response = Response::new(body::empty());
    let out = response.headers_mut();
    let (etag, mtime) = validators(out, &stat, coding, vary);
    if !preconditions_hold(headers, &etag, mtime) {
        return crate::error_page::page(StatusCode::PRECONDITION_FAILED, None);
    }
    if not_modified(headers, &etag, mtime) {
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        return response;
    }
    out.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Some(coding) = coding {
        out.insert(
            header::CONTENT_ENCODING,
            HeaderValue::from_static(coding.token()),
        );
    }
    if let Some(coding) = on_the_fly {
        // The compressed length is known only at the end: no Content-Length (chunked), and
        // the bytes are read here, never through placeholders.
        if method != Method::HEAD && size > 0 {
            let plain = stream(file, rel, 0, size, None);
            *response.body_mut() = crate::compress::compress(coding, plain);
        }
        return response;
    }

    let ranges = coding.is_none();
    let Some((status, start, len)) = selection(method, headers, (&etag, mtime, ranges), size, out)
    else {
        *response.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
        return response;
    };
    out.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    *response.status_mut() = status;
    if method != Method::HEAD && len > 0 {
        let send_queue = send_queue.filter(|_| len >= SENDFILE_FROM).cloned();
        *response.body_mut() = stream(file, rel, start, len, send_queue);
    }
    response
}

/// Writes the representation's validators (ETag, Last-Modified) and what caches and range
/// clients need to know (`Vary`, `Accept-Ranges`) into `out`; returns the ETag and the time.
fn validators(
    out: &mut HeaderMap,
    stat: &FileStat,
    coding: Option<Coding>,
    vary: bool,
) -> (String, SystemTime) {
    let mtime = UNIX_EPOCH
        + Duration::from_secs(stat.st_mtime.max(0) as u64)
        + Duration::from_nanos(stat.st_mtime_nsec.max(0) as u64);
    let etag = etag(stat, coding);
    out.reserve(10);
    out.insert(header::ETAG, text_value(etag.clone()));
    out.insert(
        header::LAST_MODIFIED,
        text_value(httpdate::fmt_http_date(mtime)),
    );
    if vary {
        out.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    }
    // A range is served from the file as it is, never from a compressed body.
    if coding.is_none() {
        out.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    }
    (etag, mtime)
}

/// The media type of a file, from its extension.
pub fn content_type(rel: &Path) -> &'static str {
    mime_guess::from_path(rel)
        .first_raw()
        .unwrap_or("application/octet-stream")
}

/// Which bytes to send: (status, start, length) of the whole file or of the one range asked
/// for (its Content-Range set in `out`), or `None` for a range that cannot be satisfied.
/// Ranges are honoured only when `ranges` is (never for a compressed body).
fn selection(
    method: &Method,
    headers: &HeaderMap,
    (etag, mtime, ranges): (&str, SystemTime, bool),
    size: u64,
    out: &mut HeaderMap,
) -> Option<(StatusCode, u64, u64)> {
    let range = if ranges && method == Method::GET && if_range_holds(headers, etag, mtime) {
        headers
            .get(header::RANGE)
            .and_then(|r| r.to_str().ok())
            .map(|r| parse_range(r, size))
    } else {
        None
    };
    match range {
        None | Some(RangeSpec::Ignored) => Some((StatusCode::OK, 0, size)),
        Some(RangeSpec::Unsatisfiable) => {
            out.insert(header::CONTENT_RANGE, text_value(format!("bytes */{size}")));
            None
        }
        Some(RangeSpec::Bytes { start, end }) => {
            out.insert(
                header::CONTENT_RANGE,
                text_value(format!("bytes {start}-{end}/{size}")),
            );
            Some((StatusCode::PARTIAL_CONTENT, start, end - start + 1))
        }
    }
}

/// A header value from text we produced (digits, dates, quotes), taking the string's buffer
/// instead of copying it.
fn text_value(text: String) -> HeaderValue {
    HeaderValue::from_maybe_shared(Bytes::from(text))
        .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Streams `len` bytes of `file` from `start`, through `send_queue` when given.
fn stream(
    file: File,
    rel: PathBuf,
    start: u64,
    len: u64,
    send_queue: Option<Arc<SendQueue>>,
) -> Body {
    FileBody {
        file: Arc::new(file),
        path: rel,
        offset: start,
        remaining: len,
        send_queue,
    }
    .boxed_unsync()
}

/// A file's bytes as a body, chunk by chunk when hyper asks for more, so a large file never
/// sits in memory and a slow client only holds one chunk.
///
/// With a send queue, a chunk is a placeholder the socket fills with `sendfile` (see
/// `sendfile.rs`); otherwise it is read with `pread`, synchronously on the runtime thread, as
/// nginx and lighttpd do: a read from the page cache costs less than handing it to a
/// blocking-pool thread and back (which tokio::fs does for every chunk, and which halved the
/// small-file rate here).
struct FileBody {
    file: Arc<File>,
    /// Site-relative, for the log.
    path: PathBuf,
    offset: u64,
    remaining: u64,
    send_queue: Option<Arc<SendQueue>>,
}

impl http_body::Body for FileBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        if self.remaining == 0 {
            return std::task::Poll::Ready(None);
        }
        if let Some(queue) = &self.send_queue {
            let want = self.remaining.min(sendfile::SPAN as u64) as usize;
            if let Some(placeholder) = sendfile::placeholder(want) {
                queue.push(
                    self.file.clone(),
                    Arc::from(self.path.as_path()),
                    self.offset,
                    want,
                );
                self.offset += want as u64;
                self.remaining -= want as u64;
                return std::task::Poll::Ready(Some(Ok(http_body::Frame::data(placeholder))));
            }
        }
        let want = self.remaining.min(CHUNK as u64) as usize;
        let mut buf = bytes::BytesMut::with_capacity(want);
        let result =
            match yadokari_site::read::pread_append(&self.file, &mut buf, want, self.offset) {
                Ok(0) => Err(sendfile::shrunk(&self.path, self.offset)),
                Ok(n) => {
                    self.offset += n as u64;
                    self.remaining -= n as u64;
                    Ok(http_body::Frame::data(buf.freeze()))
                }
                Err(e) => Err(e),
            };
        std::task::Poll::Ready(Some(result))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.remaining)
    }
}

/// Apache's default ETag (`FileETag MTime Size`): size and modification time in microseconds,
/// with the coding's suffix for a compressed representation (`"…-gz"`), so that each encoding
/// has its own strong tag.
fn etag(stat: &FileStat, coding: Option<Coding>) -> String {
    let usec = (stat.st_mtime as i128) * 1_000_000 + (stat.st_mtime_nsec as i128) / 1000;
    let suffix = coding.map_or("", Coding::etag_suffix);
    format!("\"{:x}-{:x}{suffix}\"", stat.st_size, usec)
}

/// RFC 9110 §13.2.2, steps 1 and 2: If-Match (strong comparison, or `*`), or without it
/// If-Unmodified-Since; false means 412.
fn preconditions_hold(headers: &HeaderMap, etag: &str, mtime: SystemTime) -> bool {
    if let Some(im) = headers.get(header::IF_MATCH) {
        return im.to_str().is_ok_and(|list| {
            list.split(',')
                .map(str::trim)
                .any(|t| t == "*" || t == etag)
        });
    }
    headers
        .get(header::IF_UNMODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
        .is_none_or(|since| whole_seconds(mtime) <= since)
}

/// RFC 9110 §13.2.2: If-None-Match first; If-Modified-Since only without it.
fn not_modified(headers: &HeaderMap, etag: &str, mtime: SystemTime) -> bool {
    if let Some(inm) = headers.get(header::IF_NONE_MATCH) {
        return inm.to_str().is_ok_and(|v| etag_matches(v, etag));
    }
    headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
        .is_some_and(|since| whole_seconds(mtime) <= since)
}

/// Weak comparison against a list of entity tags, or `*`.
fn etag_matches(list: &str, etag: &str) -> bool {
    let ours = etag.trim_start_matches("W/");
    list.split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.trim_start_matches("W/") == ours)
}

/// If-Range: the range applies only when the validator still matches (strong for ETags).
fn if_range_holds(headers: &HeaderMap, etag: &str, mtime: SystemTime) -> bool {
    let Some(value) = headers.get(header::IF_RANGE).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let value = value.trim();
    if value.starts_with('"') {
        return value == etag;
    }
    // A date is only a strong validator when the file is at least a second older than now:
    // two versions written within one second share their Last-Modified (RFC 9110 §8.8.2.2).
    let strong = mtime + Duration::from_secs(1) <= SystemTime::now();
    strong && httpdate::parse_http_date(value).is_ok_and(|d| whole_seconds(mtime) == d)
}

fn whole_seconds(t: SystemTime) -> SystemTime {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// A parsed `Range` header, for a file of a known size.
#[derive(Debug, PartialEq, Eq)]
enum RangeSpec {
    /// Not a single byte range we serve (malformed, another unit, several ranges): send it all.
    Ignored,
    /// No byte of the range exists: 416.
    Unsatisfiable,
    /// Bytes `start..=end`.
    Bytes { start: u64, end: u64 },
}

fn parse_range(value: &str, size: u64) -> RangeSpec {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeSpec::Ignored;
    };
    if spec.contains(',') {
        return RangeSpec::Ignored;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeSpec::Ignored;
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        // Suffix range: the last N bytes.
        return match last.parse::<u64>() {
            Ok(0) => RangeSpec::Unsatisfiable,
            Ok(_) if size == 0 => RangeSpec::Unsatisfiable,
            Ok(n) => RangeSpec::Bytes {
                start: size.saturating_sub(n),
                end: size - 1,
            },
            Err(_) => RangeSpec::Ignored,
        };
    }
    let Ok(start) = first.parse::<u64>() else {
        return RangeSpec::Ignored;
    };
    let end = if last.is_empty() {
        None
    } else {
        match last.parse::<u64>() {
            Ok(end) if end >= start => Some(end),
            _ => return RangeSpec::Ignored,
        }
    };
    if start >= size {
        return RangeSpec::Unsatisfiable;
    }
    let end = end.map_or(size - 1, |e| e.min(size - 1));
    RangeSpec::Bytes { start, end }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        use RangeSpec::*;
        assert_eq!(parse_range("bytes=0-9", 100), Bytes { start: 0, end: 9 });
        assert_eq!(parse_range("bytes=90-", 100), Bytes { start: 90, end: 99 });
        assert_eq!(parse_range("bytes=-10", 100), Bytes { start: 90, end: 99 });
        assert_eq!(parse_range("bytes=-200", 100), Bytes { start: 0, end: 99 });
        assert_eq!(
            parse_range("bytes=50-500", 100),
            Bytes { start: 50, end: 99 }
        );
        assert_eq!(parse_range("bytes=100-", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Ignored);
        assert_eq!(parse_range("bytes=9-1", 100), Ignored);
        assert_eq!(parse_range("items=0-1", 100), Ignored);
        assert_eq!(parse_range("bytes=abc", 100), Ignored);
    }

    #[test]
    fn etag_lists() {
        assert!(etag_matches("\"a\", \"b\"", "\"b\""));
        assert!(etag_matches("W/\"b\"", "\"b\""));
        assert!(etag_matches("*", "\"b\""));
        assert!(!etag_matches("\"c\"", "\"b\""));
    }
}
