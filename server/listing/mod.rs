//! Directory listings: what a directory without an index file shows when a `.htaccess` on its
//! path says `Options +Indexes` and the server allows listings (`[htaccess] listings = true`).
//!
//! Beside each entry the listing says what the server would do with it (served, runs as a
//! script, refused and why), found by [`crate::forecast`], the very steps a request for the
//! entry would go through (its `.htaccess` files, for the visitor who asked, then resolution
//! and the gate). The reasons are shown only when the server explains its errors
//! (`explain_errors`): a listing must not tell a stranger more than an error page would.
//!
//! - **Off on this server:** `Options +Indexes` where the host has listings off is not a fault
//!   (Apache, where `AllowOverride` leaves out Indexes, answers 500 for the whole directory);
//!   the directory is refused as it would be without the line (403), and the explanation names
//!   the line and the setting, so a customer knows it is the host's choice, not their mistake.
//! - **Hidden:** `.ht*` names (`.htaccess`, `.htpasswd`, and the SFTP side's
//!   `.ht-yadokari-upload-*` files in progress), as Apache's stock `IndexIgnore .??* ... .ht*`
//!   does, and whatever `IndexIgnore` patterns are in force. Hidden is not refused: a request
//!   for a hidden name is judged like any other.
//! - **Order:** directories first, then by name, byte by byte (names are bytes; a non-UTF-8
//!   name sorts where its bytes put it).
//! - **Bounded:** every name is read once (a `readdir`, no `stat`), but only the first
//!   `[htaccess] listing_limit` entries in that order are kept (a bounded heap), looked at
//!   and judged; the page says how many there were. A directory of 100,000 files costs one
//!   pass over its names, not 100,000 verdicts.
//! - **Header and readme:** `HeaderName` and `ReadmeName` files are shown above and below the
//!   entries when the visitor could fetch them (see `texts`). `IndexOptions` and
//!   `IndexOrderDefault` are accepted and change nothing: this page has its own format.
//! - **Jailed:** the directory is opened beneath the site root (no symlink leads out), entries
//!   are `lstat`ed relative to it (a link is shown as the link, never followed for its size),
//!   and each verdict goes through the jail like a request.

mod html;
mod texts;

use std::collections::BinaryHeap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use http::{Method, Response, StatusCode, header::HeaderValue};
use nix::dir::{Dir, Type};
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FileStat, Mode};
use yadokari_site::{FileKind, JailError};

use crate::body::Body;
use crate::config::Config;
use crate::forecast::{self, Site, Verdict, Visitor};
use crate::htaccess::Refusal;
use crate::htaccess::chain::Chain;
use crate::htaccess::indexes;
use crate::htaccess::rules::Rules;
use crate::url::UrlPath;

/// Whether a directory without an index file is listed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listings {
    /// No `.htaccess` asks for it: the directory is refused (no index).
    NotAsked,
    /// Asked for and allowed: listed.
    On,
    /// Asked for, but the server has listings off: refused, with [`off`]'s explanation.
    Off,
}

/// What the rules in force (`None`: no `.htaccess`) and the server's setting say.
pub fn permitted(rules: Option<&Rules>, config: &Config) -> Listings {
    match rules.and_then(|r| r.options.indexes) {
        Some(true) if config.htaccess.listings => Listings::On,
        Some(true) => Listings::Off,
        _ => Listings::NotAsked,
    }
}

/// The refusal of a listing asked for (by `by`, a line's name) on a server with listings off.
pub fn off(dir: &str, by: Option<&str>) -> Refusal {
    let by = by.unwrap_or("a .htaccess on the path");
    Refusal {
        status: StatusCode::FORBIDDEN,
        code: "listings_off",
        reason: format!(
            "`{dir}` has no index file, and {by} asks for a listing of it (`Options +Indexes`), but directory listings are off on this server (`listings = false` in the [htaccess] section of its configuration)."
        ),
        fix: format!(
            "Upload an index.html into {dir}; or, if you run this server, set `listings = true` under [htaccess]."
        ),
        realm: None,
        retry_after: None,
    }
}

/// The `.htaccess` line that asks for a listing of the directory `url` names, for messages.
pub fn asked_by(site: &Site<'_>, url: &UrlPath) -> Option<String> {
    let chain = Chain::of(site.cache?, site.jail, site.root, url).ok()?;
    chain
        .origin(None, "GET", |r| r.lines.indexes)
        .map(|o| o.to_string())
}

/// One entry of a listing.
pub struct Entry {
    /// The name as it is on disk (bytes).
    pub name: Vec<u8>,
    pub is_dir: bool,
    /// Its `lstat`.
    pub stat: FileStat,
    /// What the server would do with a request for it.
    pub verdict: Verdict,
}

/// A directory's listing, ready to render.
pub struct Listing {
    /// The directory's URL path, as it was asked for (`/~alice/docs/`).
    pub url: String,
    /// Whether it is the site's root (no parent link).
    pub at_root: bool,
    /// The entries shown, in order.
    pub entries: Vec<Entry>,
    /// How many entries the directory has, hidden ones left out.
    pub total: usize,
    /// The most entries a listing shows.
    pub limit: usize,
    /// Whether the reasons of refusals are shown.
    pub explained: bool,
    /// HTML shown above the entries instead of the heading (`HeaderName`) and below them
    /// (`ReadmeName`).
    pub header: Option<String>,
    pub readme: Option<String>,
}

/// The listing of the directory `url` names in `site`, for `visitor`; `prefix` is the URL
/// prefix the site is reached under (`/~name`), `rules` the `.htaccess` rules in force there.
pub fn list(
    site: &Site<'_>,
    url: &UrlPath,
    prefix: &str,
    rules: &Rules,
    visitor: &Visitor<'_>,
) -> std::io::Result<Listing> {
    let dir = PathBuf::from(OsStr::from_bytes(&url.relative()));
    let limit = site.config.htaccess.listing_limit;
    let (names, total) = names(site, &dir, &rules.index_ignore, limit)?;
    let at = site
        .jail
        .open_beneath(&dir, dir_flags(), Mode::empty())
        .map_err(io)?;
    let mut entries = Vec::with_capacity(names.len());
    for (is_dir, name) in names {
        // Gone since it was read, or not to be looked at: left out.
        let Ok(stat) = nix::sys::stat::fstatat(&at, name.as_slice(), AtFlags::AT_SYMLINK_NOFOLLOW)
        else {
            continue;
        };
        let mut segments = url.segments.clone();
        segments.push(name.clone());
        let entry_url = UrlPath {
            segments,
            trailing_slash: is_dir,
        };
        let verdict = forecast::forecast(site, &entry_url, visitor).verdict;
        entries.push(Entry {
            name,
            is_dir,
            stat,
            verdict,
        });
    }
    let (header, readme) = texts::around(site, url, prefix, visitor);
    Ok(Listing {
        url: format!("{prefix}{}", url.display()),
        at_root: url.segments.is_empty(),
        entries,
        total,
        limit,
        explained: site.config.explain_errors,
        header,
        readme,
    })
}

/// The response for `listing`: the page, or only its headers for HEAD.
pub fn respond(method: &Method, listing: &Listing) -> Response<Body> {
    let page = html::render(listing);
    let mut r = Response::new(crate::body::empty());
    let headers = r.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(page.len()));
    // A listing changes with every upload: no validators, and caches must ask again.
    headers.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
    if method != Method::HEAD {
        *r.body_mut() = crate::body::full(page);
    }
    r
}

fn dir_flags() -> OFlag {
    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK
}

fn io(e: JailError) -> std::io::Error {
    match e {
        JailError::Io(e) => e,
        JailError::NotFound => std::io::ErrorKind::NotFound.into(),
        JailError::Outside => std::io::ErrorKind::PermissionDenied.into(),
    }
}

/// An entry's name, and whether it is a directory.
type Named = (bool, Vec<u8>);

/// The first `limit` names of the directory `dir` in listing order (directories first, then
/// by name), each with whether it is a directory, and how many names there are in all; hidden
/// and ignored names left out.
fn names(
    site: &Site<'_>,
    dir: &std::path::Path,
    ignore: &[String],
    limit: usize,
) -> std::io::Result<(Vec<Named>, usize)> {
    let fd = site
        .jail
        .open_beneath(dir, dir_flags(), Mode::empty())
        .map_err(io)?;
    let at = fd.try_clone()?;
    let mut d = Dir::from_fd(fd)?;
    // A max-heap of the `limit` smallest keys: the largest kept is dropped first.
    // Keyed (not a directory, name): directories sort first.
    let mut kept: BinaryHeap<(bool, Vec<u8>)> = BinaryHeap::with_capacity(limit.min(4096) + 1);
    let mut total = 0;
    for entry in d.iter() {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." || hidden(name) || indexes::ignored(ignore, name) {
            continue;
        }
        total += 1;
        let is_dir = match entry.file_type() {
            Some(t) => t == Type::Directory,
            // The file system does not say (DT_UNKNOWN): ask it.
            None => nix::sys::stat::fstatat(&at, name, AtFlags::AT_SYMLINK_NOFOLLOW)
                .is_ok_and(|s| FileKind::from_mode(s.st_mode) == FileKind::Directory),
        };
        let key = (!is_dir, name.to_vec());
        if kept.len() < limit {
            kept.push(key);
        } else if kept.peek().is_some_and(|largest| key < *largest) {
            kept.pop();
            kept.push(key);
        }
    }
    let sorted = kept
        .into_sorted_vec()
        .into_iter()
        .map(|(not_dir, name)| (!not_dir, name))
        .collect();
    Ok((sorted, total))
}

/// SECURITY: `.ht*` names hold passwords and configuration (`.htpasswd`, `.htaccess`), and
/// `.ht-yadokari-upload-*` are uploads in progress; a listing never shows them, as Apache's
/// stock configuration hides `.ht*`.
fn hidden(name: &[u8]) -> bool {
    name.starts_with(b".ht")
}
