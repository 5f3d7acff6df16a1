//! `HeaderName` and `ReadmeName`: a file of the site shown above and below a listing, as
//! mod_autoindex does. The deepest `.htaccess` on the directory's path that names one decides.
//!
//! The file is shown only when a request for it by the same visitor would be served as a
//! static file (the same forecast as the listing's verdicts: its `.htaccess` rules, the gate,
//! the jail), so a header cannot show what the visitor could not fetch. A script named there is
//! not run (Apache would run it as a subrequest): it is left out. It is read through the jail,
//! at most [`MAX_BYTES`]; an `.html`/`.htm` file is put in the page as it is (the site's own
//! HTML, on its own page), anything else escaped in a `<pre>`. A name without an extension is
//! not negotiated (`HeaderName HEADER` does not find `HEADER.html`, as it would in Apache).

use std::io::Read;
use std::path::Path;

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;

use super::html::escape;
use crate::forecast::{self, Site, Verdict, Visitor};
use crate::htaccess::chain::Chain;
use crate::htaccess::indexes::Texts;
use crate::url::UrlPath;

/// The most of a header or readme file a listing shows.
pub const MAX_BYTES: u64 = 64 * 1024;

/// The HTML to show above and below the listing of the directory `url` (`None`: nothing).
pub fn around(
    site: &Site<'_>,
    url: &UrlPath,
    prefix: &str,
    visitor: &Visitor<'_>,
) -> (Option<String>, Option<String>) {
    let Some(cache) = site.cache else {
        return (None, None);
    };
    let Ok(chain) = Chain::of(cache, site.jail, site.root, url) else {
        return (None, None);
    };
    let named = |pick: fn(&Texts) -> Option<&String>| {
        let name = chain
            .levels
            .iter()
            .rev()
            .find_map(|l| pick(&l.file.texts))?;
        shown(site, url, prefix, name, visitor)
    };
    (named(|t| t.header.as_ref()), named(|t| t.readme.as_ref()))
}

/// The file `name` (as a `HeaderName` wrote it) as HTML, when the visitor may read it.
fn shown(
    site: &Site<'_>,
    dir: &UrlPath,
    prefix: &str,
    name: &str,
    visitor: &Visitor<'_>,
) -> Option<String> {
    let url = url_of(dir, prefix, name)?;
    let Verdict::Served { rel, .. } = forecast::forecast(site, &url, visitor).verdict else {
        return None;
    };
    let flags = OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK;
    let fd = site
        .jail
        .open_beneath(Path::new(&rel), flags, Mode::empty())
        .ok()?;
    let mut bytes = Vec::new();
    std::fs::File::from(fd)
        .take(MAX_BYTES)
        .read_to_end(&mut bytes)
        .ok()?;
    let text = String::from_utf8_lossy(&bytes);
    let lower = rel.to_ascii_lowercase();
    Some(if lower.ends_with(".html") || lower.ends_with(".htm") {
        text.into_owned()
    } else {
        format!("<pre>{}</pre>", escape(&text))
    })
}

/// The URL path `name` stands for: relative to the listed directory `dir`, or from the site's
/// root when it starts with `/` (with or without the prefix the site is reached under, so
/// that `/~alice/HEADER.html` and `/HEADER.html` both work at `/~alice/`). `None` when it
/// climbs above the site's root.
fn url_of(dir: &UrlPath, prefix: &str, name: &str) -> Option<UrlPath> {
    let (mut segments, rest) = match name.strip_prefix('/') {
        Some(_) => {
            let inside = name
                .strip_prefix(prefix)
                .filter(|r| !prefix.is_empty() && r.starts_with('/'))
                .unwrap_or(name);
            (Vec::new(), inside)
        }
        None => (dir.segments.clone(), name),
    };
    for part in rest.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                segments.pop()?;
            }
            p => segments.push(p.as_bytes().to_vec()),
        }
    }
    (!segments.is_empty()).then_some(UrlPath {
        segments,
        trailing_slash: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(path: &str) -> UrlPath {
        crate::url::parse(path).expect("url")
    }

    fn shown(u: Option<UrlPath>) -> Option<String> {
        u.map(|u| u.display())
    }

    #[test]
    fn names_resolve_from_the_directory_or_the_site_root() {
        let d = dir("/docs/old/");
        assert_eq!(
            shown(url_of(&d, "", "HEADER.html")).as_deref(),
            Some("/docs/old/HEADER.html")
        );
        assert_eq!(
            shown(url_of(&d, "", "../top.txt")).as_deref(),
            Some("/docs/top.txt")
        );
        assert_eq!(
            shown(url_of(&d, "", "/inc/./r.txt")).as_deref(),
            Some("/inc/r.txt")
        );
        assert_eq!(
            shown(url_of(&d, "/~alice", "/~alice/inc/r.txt")).as_deref(),
            Some("/inc/r.txt")
        );
        assert!(url_of(&d, "", "../../../etc/passwd").is_none());
        assert!(url_of(&dir("/"), "", "/").is_none());
    }
}
