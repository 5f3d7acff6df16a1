//! Request paths: the raw path of a request → its decoded, normalised segments, or a refusal.
//!
//! Pure. The path is percent-decoded exactly once, segment by segment, so an encoded slash can
//! never become a separator and `%252e` stays the literal text `%2e`. `.` and empty segments
//! vanish, `..` removes the previous segment and may never climb above the root.

use std::fmt;

/// A decoded request path: its segments (bytes: a name need not be UTF-8) and whether it ended
/// with a slash (which decides between a directory's index and a redirect to it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UrlPath {
    /// Decoded, normalised segments; never empty, `.` or `..`, never containing `/` or NUL.
    pub segments: Vec<Vec<u8>>,
    /// The raw path ended with `/` (or was `/`).
    pub trailing_slash: bool,
}

impl UrlPath {
    /// The decoded path as text, starting with `/` (a name that is not UTF-8 shown lossily).
    pub fn display(&self) -> String {
        let mut s = String::new();
        for seg in &self.segments {
            s.push('/');
            s.push_str(&String::from_utf8_lossy(seg));
        }
        if self.trailing_slash || s.is_empty() {
            s.push('/');
        }
        s
    }
}

/// Why a request path is refused. Every variant is answered with 400 Bad Request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UrlError {
    /// The path does not start with `/` (e.g. `OPTIONS *`).
    NotAbsolute,
    /// A `%` not followed by two hex digits.
    BadEscape,
    /// `%2F`: an encoded slash, which would let a name carry a separator.
    EncodedSlash,
    /// A NUL byte (`%00`), which would cut the name short at the system call.
    Nul,
    /// `..` above the document root.
    AboveRoot,
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UrlError::NotAbsolute => "the request path does not start with /",
            UrlError::BadEscape => {
                "the request path has a % that is not followed by two hex digits"
            }
            UrlError::EncodedSlash => {
                "the request path contains an encoded slash (%2F), which is refused"
            }
            UrlError::Nul => "the request path contains a NUL byte (%00), which is refused",
            UrlError::AboveRoot => "the request path uses .. to climb above the document root",
        })
    }
}

impl std::error::Error for UrlError {}

impl UrlPath {
    /// The segments joined with `/`, without a leading slash: the path relative to the root.
    pub fn relative(&self) -> Vec<u8> {
        self.segments.join(&b'/')
    }
}

/// Decodes and normalises the path part of a request target.
pub fn parse(raw: &str) -> Result<UrlPath, UrlError> {
    let rest = raw.strip_prefix('/').ok_or(UrlError::NotAbsolute)?;
    let mut segments: Vec<Vec<u8>> = Vec::new();
    for raw_segment in rest.split('/') {
        let segment = decode(raw_segment.as_bytes())?;
        match segment.as_slice() {
            b"" | b"." => {}
            b".." => {
                segments.pop().ok_or(UrlError::AboveRoot)?;
            }
            _ => segments.push(segment),
        }
    }
    // `/a/..` names the directory `/`, as `/a/../` does.
    let last = rest.rsplit('/').next().unwrap_or("");
    let trailing_slash = rest.is_empty() || last.is_empty() || is_dot_segment(last);
    Ok(UrlPath {
        segments,
        trailing_slash,
    })
}

fn is_dot_segment(raw: &str) -> bool {
    matches!(decode(raw.as_bytes()).as_deref(), Ok(b".") | Ok(b".."))
}

/// Percent-decodes one segment, refusing malformed escapes, `%2F` and NUL.
fn decode(raw: &[u8]) -> Result<Vec<u8>, UrlError> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if b == b'%' {
            let hi = raw.get(i + 1).and_then(|&c| hex(c));
            let lo = raw.get(i + 2).and_then(|&c| hex(c));
            let (Some(hi), Some(lo)) = (hi, lo) else {
                return Err(UrlError::BadEscape);
            };
            let byte = hi << 4 | lo;
            match byte {
                b'/' => return Err(UrlError::EncodedSlash),
                0 => return Err(UrlError::Nul),
                _ => out.push(byte),
            }
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    Ok(out)
}

fn hex(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn segs(raw: &str) -> Vec<String> {
        parse(raw)
            .expect("valid")
            .segments
            .into_iter()
            .map(|s| String::from_utf8_lossy(&s).into_owned())
            .collect()
    }

    #[test]
    fn table() {
        assert_eq!(segs("/"), Vec::<String>::new());
        assert_eq!(segs("/a/b"), ["a", "b"]);
        assert_eq!(segs("//a///b/"), ["a", "b"]);
        assert_eq!(segs("/a/./b"), ["a", "b"]);
        assert_eq!(segs("/a/../b"), ["b"]);
        assert_eq!(segs("/a/%2e%2e/b"), ["b"]);
        assert_eq!(segs("/hello%20world"), ["hello world"]);
        assert_eq!(segs("/%252e%252e/x"), ["%2e%2e", "x"]);
        assert_eq!(segs("/..\\..\\etc"), ["..\\..\\etc"]);
        assert_eq!(parse("/a/b/").map(|p| p.trailing_slash), Ok(true));
        assert_eq!(parse("/a/b").map(|p| p.trailing_slash), Ok(false));
        assert_eq!(parse("/a/..").map(|p| p.trailing_slash), Ok(true));
    }

    #[test]
    fn refusals() {
        assert_eq!(parse("/../etc/passwd"), Err(UrlError::AboveRoot));
        assert_eq!(parse("/%2e%2e/etc/passwd"), Err(UrlError::AboveRoot));
        assert_eq!(parse("/a/../../b"), Err(UrlError::AboveRoot));
        assert_eq!(parse("/..%2fetc"), Err(UrlError::EncodedSlash));
        assert_eq!(parse("/a%2Fb"), Err(UrlError::EncodedSlash));
        assert_eq!(parse("/a%00.html"), Err(UrlError::Nul));
        assert_eq!(parse("/a%zz"), Err(UrlError::BadEscape));
        assert_eq!(parse("/a%4"), Err(UrlError::BadEscape));
        assert_eq!(parse("*"), Err(UrlError::NotAbsolute));
    }

    #[test]
    fn non_utf8_bytes_survive() {
        let p = parse("/%83%65%83%58%83%67.txt").expect("valid");
        assert_eq!(p.segments, vec![b"\x83\x65\x83\x58\x83\x67.txt".to_vec()]);
    }

    proptest! {
        /// Whatever the path, a parsed one never holds a segment that could climb or split.
        #[test]
        fn parsed_segments_never_escape(raw in "/[a-z./%0-9A-F\\\\]{0,40}") {
            if let Ok(p) = parse(&raw) {
                for s in &p.segments {
                    prop_assert!(!s.is_empty());
                    prop_assert!(s.as_slice() != b"." && s.as_slice() != b"..");
                    prop_assert!(!s.contains(&b'/') && !s.contains(&0));
                }
            }
        }
    }
}
