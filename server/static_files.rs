//! Static files: validators (ETag, Last-Modified) and conditional requests, single byte ranges,
//! HEAD, and bodies streamed from the open file, never read whole into memory.

use std::fs::File;
use std::io::SeekFrom;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::TryStreamExt;
use http::header::{self, HeaderMap};
use http::{Method, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use nix::sys::stat::FileStat;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use crate::body::{self, Body};

/// Read size for streamed bodies.
const CHUNK: usize = 256 * 1024;

/// Builds the response for an opened, gate-approved regular file.
pub async fn respond(
    method: &Method,
    headers: &HeaderMap,
    rel: &Path,
    file: File,
    stat: &FileStat,
) -> Response<Body> {
    let size = stat.st_size.max(0) as u64;
    let mtime = UNIX_EPOCH
        + Duration::from_secs(stat.st_mtime.max(0) as u64)
        + Duration::from_nanos(stat.st_mtime_nsec.max(0) as u64);
    let etag = etag(stat);
    let last_modified = httpdate::fmt_http_date(mtime);

    let mut builder = Response::builder()
        .header(header::ETAG, &etag)
        .header(header::LAST_MODIFIED, &last_modified)
        .header(header::ACCEPT_RANGES, "bytes");

    if not_modified(headers, &etag, mtime) {
        return builder
            .status(StatusCode::NOT_MODIFIED)
            .body(body::empty())
            .unwrap_or_else(|_| internal());
    }

    let content_type = mime_guess::from_path(rel)
        .first_raw()
        .unwrap_or("application/octet-stream");
    builder = builder.header(header::CONTENT_TYPE, content_type);

    let range = if method == Method::GET && if_range_holds(headers, &etag, mtime) {
        headers
            .get(header::RANGE)
            .and_then(|r| r.to_str().ok())
            .map(|r| parse_range(r, size))
    } else {
        None
    };
    let (status, start, len) = match range {
        None | Some(RangeSpec::Ignored) => (StatusCode::OK, 0, size),
        Some(RangeSpec::Unsatisfiable) => {
            return builder
                .status(StatusCode::RANGE_NOT_SATISFIABLE)
                .header(header::CONTENT_RANGE, format!("bytes */{size}"))
                .body(body::empty())
                .unwrap_or_else(|_| internal());
        }
        Some(RangeSpec::Bytes { start, end }) => {
            builder = builder.header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{size}"));
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
    };
    builder = builder.status(status).header(header::CONTENT_LENGTH, len);
    let body = if method == Method::HEAD || len == 0 {
        body::empty()
    } else {
        stream(file, start, len).await
    };
    builder.body(body).unwrap_or_else(|_| internal())
}

fn internal() -> Response<Body> {
    let mut r = Response::new(body::empty());
    *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    r
}

/// Streams `len` bytes of `file` from `start`.
async fn stream(file: File, start: u64, len: u64) -> Body {
    let mut file = tokio::fs::File::from_std(file);
    if start > 0
        && let Err(e) = file.seek(SeekFrom::Start(start)).await
    {
        return StreamBody::new(futures_util::stream::once(async move { Err(e) })).boxed_unsync();
    }
    let reader = ReaderStream::with_capacity(file.take(len), CHUNK);
    StreamBody::new(reader.map_ok(|bytes: Bytes| http_body::Frame::data(bytes))).boxed_unsync()
}

/// Apache's default ETag (`FileETag MTime Size`): size and modification time in microseconds.
fn etag(stat: &FileStat) -> String {
    let usec = (stat.st_mtime as i128) * 1_000_000 + (stat.st_mtime_nsec as i128) / 1000;
    format!("\"{:x}-{:x}\"", stat.st_size, usec)
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
    httpdate::parse_http_date(value).is_ok_and(|d| whole_seconds(mtime) == d)
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
