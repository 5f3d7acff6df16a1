//! The script's header block: bytes → [`CgiHead`], or the exact reason it is not one.
//!
//! Pure. Parsed from bytes, never as UTF-8 lines: LF and CRLF both end a line, the block ends at
//! the first empty line, and its size is bounded as a whole (no per-line limit below that, so a
//! 4 KB `Set-Cookie` works).

use http::StatusCode;
use http::header::{HeaderName, HeaderValue};

/// A parsed header block.
#[derive(Debug, PartialEq, Eq)]
pub struct CgiHead {
    /// From `Status:` (or the `nph-` status line).
    pub status: Option<StatusCode>,
    /// The reason phrase after the code (`299 Custom Thing`), when the script gave one.
    pub reason: Option<Vec<u8>>,
    /// `Location:`.
    pub location: Option<String>,
    /// Every other header, in order, repeated ones kept separate.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Bytes consumed by the block, including the blank line.
    pub len: usize,
}

/// Why the output is not a valid header block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeadError {
    /// More output is needed (no blank line yet, and under the limit).
    Incomplete,
    /// No blank line within the limit.
    TooLarge { limit: usize },
    /// A line that is not `Name: value`.
    Malformed { line: String },
    /// A `Status:` that is not a three-digit status between 100 and 599.
    InvalidStatus { line: String },
    /// An `nph-` script whose first line is not `HTTP/x.y NNN ...`.
    BadStatusLine { line: String },
}

/// Headers a script may not set: they describe the connection, which is ours.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
];

/// Parses the header block at the start of `buf`; `nph` expects a status line first.
pub fn parse(buf: &[u8], limit: usize, nph: bool) -> Result<CgiHead, HeadError> {
    let Some((lines, len)) = split_block(buf) else {
        return Err(if buf.len() >= limit {
            HeadError::TooLarge { limit }
        } else {
            HeadError::Incomplete
        });
    };
    if len > limit {
        return Err(HeadError::TooLarge { limit });
    }
    let mut head = CgiHead {
        status: None,
        reason: None,
        location: None,
        headers: Vec::new(),
        len,
    };
    let mut lines = lines.into_iter();
    if nph {
        let first = lines.next().unwrap_or(b"");
        let (status, reason) = status_line(first)?;
        (head.status, head.reason) = (Some(status), reason);
    }
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return Err(malformed(line));
        };
        let (name, value) = (&line[..colon], trim(&line[colon + 1..]));
        let Ok(name) = HeaderName::from_bytes(name) else {
            return Err(malformed(line));
        };
        let Ok(value) = HeaderValue::from_bytes(value) else {
            return Err(malformed(line));
        };
        if name == "status" && !nph {
            let (status, reason) = status_value(value.as_bytes())
                .ok_or_else(|| HeadError::InvalidStatus { line: lossy(line) })?;
            (head.status, head.reason) = (Some(status), reason);
        } else if name == http::header::LOCATION && !nph {
            head.location = Some(String::from_utf8_lossy(value.as_bytes()).into_owned());
        } else if !HOP_BY_HOP.contains(&name.as_str()) {
            head.headers.push((name, value));
        }
    }
    Ok(head)
}

/// Splits `buf` into the lines of its header block and the block's length, if it is complete.
fn split_block(buf: &[u8]) -> Option<(Vec<&[u8]>, usize)> {
    let mut lines = Vec::new();
    let mut start = 0;
    while let Some(nl) = buf[start..].iter().position(|&b| b == b'\n') {
        let end = start + nl;
        let line = buf[start..end]
            .strip_suffix(b"\r")
            .unwrap_or(&buf[start..end]);
        start = end + 1;
        if line.is_empty() {
            return Some((lines, start));
        }
        lines.push(line);
    }
    None
}

/// `NNN[ reason]`: the status and the reason phrase, if any.
fn status_value(value: &[u8]) -> Option<(StatusCode, Option<Vec<u8>>)> {
    let code = value.get(..3)?;
    if value.len() > 3 && value[3] != b' ' {
        return None;
    }
    let status = StatusCode::from_bytes(code)
        .ok()
        .filter(|s| (100..600).contains(&s.as_u16()))?;
    let reason = trim(value.get(4..).unwrap_or(b""));
    Some((status, (!reason.is_empty()).then(|| reason.to_vec())))
}

fn status_line(line: &[u8]) -> Result<(StatusCode, Option<Vec<u8>>), HeadError> {
    let bad = || HeadError::BadStatusLine { line: lossy(line) };
    let rest = line.strip_prefix(b"HTTP/").ok_or_else(bad)?;
    let space = rest.iter().position(|&b| b == b' ').ok_or_else(bad)?;
    status_value(trim(&rest[space + 1..])).ok_or_else(bad)
}

fn trim(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &b[start..end]
}

fn malformed(line: &[u8]) -> HeadError {
    HeadError::Malformed { line: lossy(line) }
}

fn lossy(line: &[u8]) -> String {
    let shown = &line[..line.len().min(200)];
    String::from_utf8_lossy(shown).escape_debug().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(buf: &[u8]) -> CgiHead {
        parse(buf, 65536, false).expect("valid head")
    }

    #[test]
    fn lf_and_crlf_blocks() {
        let h = ok(b"Content-Type: text/plain\n\nbody");
        assert_eq!(h.len, 26);
        assert_eq!(h.headers[0].1, "text/plain");
        let h = ok(b"Content-Type: text/plain\r\nX-A: 1\r\n\r\nbody");
        assert_eq!(h.headers.len(), 2);
        assert_eq!(
            &b"Content-Type: text/plain\r\nX-A: 1\r\n\r\nbody"[h.len..],
            b"body"
        );
    }

    #[test]
    fn status_and_location() {
        let h = ok(b"Status: 404 Not Found\nContent-Type: text/plain\n\n");
        assert_eq!(h.status, Some(StatusCode::NOT_FOUND));
        assert!(h.headers.iter().all(|(n, _)| n != "status"));
        let h = ok(b"Location: http://example.org/\n\n");
        assert_eq!(h.location.as_deref(), Some("http://example.org/"));
        for bad in [
            &b"Status: abc\n\n"[..],
            b"Status: 99\n\n",
            b"Status: 600 X\n\n",
            b"Status: 2000\n\n",
        ] {
            assert!(
                matches!(
                    parse(bad, 1024, false),
                    Err(HeadError::InvalidStatus { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn repeated_cookies_stay_separate_and_hop_by_hop_go() {
        let h = ok(
            b"Set-Cookie: a=1\nSet-Cookie: b=2\nTransfer-Encoding: chunked\nConnection: close\n\n",
        );
        let names: Vec<_> = h
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.to_str().unwrap_or("")))
            .collect();
        assert_eq!(names, [("set-cookie", "a=1"), ("set-cookie", "b=2")]);
    }

    #[test]
    fn long_lines_fit_within_the_block_limit() {
        let mut buf = b"Set-Cookie: ".to_vec();
        buf.extend(std::iter::repeat_n(b'x', 4096));
        buf.extend_from_slice(b"\n\n");
        assert_eq!(ok(&buf).headers[0].1.len(), 4096);
    }

    #[test]
    fn refusals() {
        assert_eq!(
            parse(b"Content-Type: text/plain\n", 1024, false),
            Err(HeadError::Incomplete)
        );
        assert_eq!(
            parse(&[b'x'; 2000], 1024, false),
            Err(HeadError::TooLarge { limit: 1024 })
        );
        assert!(matches!(
            parse(b"Hello world\n\n", 1024, false),
            Err(HeadError::Malformed { .. })
        ));
        assert!(matches!(
            parse(b"Bad Name: x\n\n", 1024, false),
            Err(HeadError::Malformed { .. })
        ));
    }

    #[test]
    fn nph_status_line() {
        let h = parse(b"HTTP/1.1 201 Created\r\nX-A: 1\r\n\r\n", 1024, true).expect("valid");
        assert_eq!(h.status, Some(StatusCode::CREATED));
        assert!(matches!(
            parse(b"Status: 200\n\n", 1024, true),
            Err(HeadError::BadStatusLine { .. })
        ));
    }
}
