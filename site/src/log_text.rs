//! Names and paths as they may appear in a log line: what a client or a file controls is
//! written so that it can never start a line of its own or pass for another field.
//!
//! SECURITY: log forging. A file name is any bytes but `/` and NUL, so `x\n2026-01-01 INFO
//! login ok` is a valid name; written as it is, its second half reads as a line the server
//! never logged. [`LogText`] escapes control characters (`\n`, `\r`, `\t`, `\u{1b}`, ...),
//! other non-printable characters (U+2028, ...) and the backslash as Rust's `escape_debug` does,
//! and every byte that is not UTF-8 as `\xNN`; printable text, Japanese names included, stays
//! readable. Used by the SFTP side for every name and path it logs; the HTTP side can use it
//! for the same purpose.

use std::fmt::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Bytes shown escaped for a log line (see the module's documentation); formatting it does not
/// allocate.
#[derive(Clone, Copy, Debug)]
pub struct LogText<'a>(pub &'a [u8]);

impl<'a> LogText<'a> {
    /// A path's bytes.
    pub fn path(path: &'a Path) -> LogText<'a> {
        LogText(path.as_os_str().as_bytes())
    }

    /// A string's bytes.
    pub fn str(text: &'a str) -> LogText<'a> {
        LogText(text.as_bytes())
    }
}

impl fmt::Display for LogText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.0.utf8_chunks() {
            for c in chunk.valid().chars() {
                match c {
                    // Quotes cannot break a line; escaping them would only make names harder
                    // to read ("it's").
                    '\'' | '"' => f.write_char(c)?,
                    c => write!(f, "{}", c.escape_debug())?,
                }
            }
            for b in chunk.invalid() {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_could_forge_a_line_and_keeps_the_rest_readable() {
        let rows: [(&[u8], &str); 7] = [
            (b"index.html", "index.html"),
            (b"x\n2026 INFO forged", "x\\n2026 INFO forged"),
            (b"a\rb\tc\x1b[31m", "a\\rb\\tc\\u{1b}[31m"),
            (b"back\\slash", "back\\\\slash"),
            ("日本語 it's \"q\"".as_bytes(), "日本語 it's \"q\""),
            (b"\x83\x65\x83\x58\x83\x67.cgi", "\\x83e\\x83X\\x83g.cgi"),
            ("line\u{2028}sep".as_bytes(), "line\\u{2028}sep"),
        ];
        for (raw, want) in rows {
            assert_eq!(LogText(raw).to_string(), want, "{raw:?}");
        }
    }

    #[test]
    fn no_output_ever_holds_a_line_break() {
        for b in 0..=255u8 {
            let s = LogText(&[b'a', b, b'z']).to_string();
            assert!(
                !s.contains(['\n', '\r', '\u{b}', '\u{c}', '\u{85}']),
                "{b:#x}: {s:?}"
            );
        }
    }
}
