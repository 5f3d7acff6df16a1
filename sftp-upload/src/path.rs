//! Pure path handling for SFTP: a client's path bytes → a normalised path relative to the site
//! root. `/` is the site root, relative paths start there too (the session's home is `/`), and
//! `..` is clamped at the root, as in a chroot. Names are bytes; NUL is refused.
//!
//! This is the lexical half of the jail. The other half is at open time: the result is opened
//! below a descriptor of the site with `openat2(RESOLVE_BENEATH)` ([`yadokari_site::Jail`]), so
//! a symlink inside the site that points out is refused by the kernel, not by this string code.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use yadokari_site::LogText;

/// A normalised site path: components joined by `/`, no leading slash, no `.` or `..`, empty
/// for the root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SitePath(Vec<u8>);

/// A path the server will not even try (it contains NUL).
#[derive(Debug, PartialEq, Eq)]
pub struct BadPath;

impl SitePath {
    /// Normalises `raw`. `~` and `~/...` (OpenSSH's expand-path) mean the home, the root.
    pub fn parse(raw: &[u8]) -> Result<SitePath, BadPath> {
        if raw.contains(&0) {
            return Err(BadPath);
        }
        let raw = match raw {
            b"~" => b"" as &[u8],
            r if r.starts_with(b"~/") => &r[2..],
            r => r,
        };
        let mut parts: Vec<&[u8]> = Vec::new();
        for part in raw.split(|&b| b == b'/') {
            match part {
                b"" | b"." => {}
                b".." => {
                    parts.pop();
                }
                p => parts.push(p),
            }
        }
        Ok(SitePath(parts.join(&b'/')))
    }

    /// Whether this is the site root.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The relative path, for the jail.
    pub fn rel(&self) -> &Path {
        Path::new(OsStr::from_bytes(&self.0))
    }

    /// The path as the client sees it: `/` followed by the components.
    pub fn absolute(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.0.len() + 1);
        out.push(b'/');
        out.extend_from_slice(&self.0);
        out
    }

    /// The last component (empty for the root).
    pub fn name(&self) -> &[u8] {
        match self.0.iter().rposition(|&b| b == b'/') {
            Some(i) => &self.0[i + 1..],
            None => &self.0,
        }
    }

    /// For log fields: `/` and the components, escaped ([`LogText`]), so that a name holding
    /// a line break cannot forge a log line.
    pub fn display(&self) -> String {
        format!("/{}", LogText(&self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(raw: &[u8]) -> Vec<u8> {
        SitePath::parse(raw).expect("valid").absolute()
    }

    #[test]
    fn table() {
        let rows: &[(&[u8], &[u8])] = &[
            (b"", b"/"),
            (b".", b"/"),
            (b"/", b"/"),
            (b"..", b"/"),
            (b"../../etc/passwd", b"/etc/passwd"),
            (b"/etc/passwd", b"/etc/passwd"),
            (b"a/./b//c/", b"/a/b/c"),
            (b"a/../../b", b"/b"),
            (b"cgi-bin/../cgi-bin/x.cgi", b"/cgi-bin/x.cgi"),
            (b"~", b"/"),
            (b"~/a", b"/a"),
            (b"~x", b"/~x"),
            (
                b"\x83\x65\x83\x58\x83\x67.txt",
                b"/\x83\x65\x83\x58\x83\x67.txt",
            ),
            (b"%2e%2e", b"/%2e%2e"),
        ];
        for (raw, want) in rows {
            assert_eq!(
                norm(raw),
                want.to_vec(),
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
    }

    #[test]
    fn nul_is_refused() {
        assert_eq!(SitePath::parse(b"a\0b"), Err(BadPath));
    }

    #[test]
    fn never_has_dot_components_or_a_leading_slash() {
        // A small exhaustive property over an alphabet that contains every troublesome piece.
        let pieces: [&[u8]; 6] = [b"..", b".", b"/", b"a", b"\xff", b"~/"];
        let mut stack: Vec<Vec<u8>> = vec![Vec::new()];
        for _ in 0..6 {
            let mut next = Vec::new();
            for s in &stack {
                for p in pieces {
                    let mut t = s.clone();
                    t.extend_from_slice(p);
                    next.push(t);
                }
            }
            for s in &next {
                let p = SitePath::parse(s).expect("no NUL");
                let rel = p.rel().as_os_str().as_bytes();
                assert!(!rel.starts_with(b"/"), "{s:?}");
                for c in rel.split(|&b| b == b'/') {
                    assert!(
                        c != b".." && c != b"." && (rel.is_empty() || !c.is_empty()),
                        "{s:?}"
                    );
                }
            }
            stack = next;
        }
    }

    #[test]
    fn name_is_the_last_component() {
        assert_eq!(SitePath::parse(b"/a/b").expect("valid").name(), b"b");
        assert_eq!(SitePath::parse(b"c").expect("valid").name(), b"c");
    }
}
