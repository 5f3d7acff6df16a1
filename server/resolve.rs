//! Resolution: a decoded request path → what it names in the site, decided by the permission
//! gate. It only decides: stat calls through the jail, and for a static file an open and an
//! `fstat`, so that what is judged is the very file that will be sent (its descriptor travels
//! in the [`Resolution`]; nothing is judged twice). Nothing is read, sent or run here;
//! `service.rs` acts on the [`Resolution`].
//!
//! Three steps: [`descend`] walks the segments to the first regular file (or the end), the
//! tail becomes `PATH_INFO` or an index file ([`target`]), and [`judge`] asks the gate.

use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sys::stat::{FileStat, Mode};
use yadokari_site::policy::{self, check_directory};
use yadokari_site::{Denial, FileFacts, FileKind, Jail, JailError, Role, Subject, Verdict};

use crate::config::Config;
use crate::htaccess::content::Handler;
use crate::htaccess::rules::Rules;
use crate::url::UrlPath;

#[cfg(test)]
mod tests;

/// What a request path names, and what the gate says about it.
#[derive(Debug)]
pub enum Resolution {
    /// Nothing there.
    NotFound,
    /// A directory asked for without its trailing slash: redirect to add it.
    AddSlash,
    /// Refused, with the site-relative path the reason speaks of.
    Denied { denial: Denial, path: String },
    /// A file to send, already open, judged on its own `fstat`.
    Static(StaticFile),
    /// A script to run.
    Script(Box<Script>),
    /// The file was judged servable but could not be opened for a reason other than its
    /// absence (out of descriptors, say): a fault of the server, not of the request.
    Fault { path: String, error: std::io::Error },
}

/// A static file, open: what the gate judged is what will be sent.
#[derive(Debug)]
pub struct StaticFile {
    /// Path relative to the site root.
    pub rel: PathBuf,
    /// The open file.
    pub file: std::fs::File,
    /// Its `fstat`.
    pub stat: FileStat,
}

/// A script found on the path, with what CGI needs to know about where it is.
#[derive(Debug)]
pub struct Script {
    /// Path relative to the site root.
    pub rel: PathBuf,
    /// `SCRIPT_NAME`: the URL path of the script (decoded, starting with `/`).
    pub script_name: Vec<u8>,
    /// `PATH_INFO`: what follows the script in the URL (decoded; empty or starting with `/`).
    pub path_info: Vec<u8>,
    /// The interpreter, for a handler file; `None` when the script runs itself.
    pub interpreter: Option<PathBuf>,
    /// The file's `stat`.
    pub stat: FileStat,
}

/// The reason and fix of `denial` for the site-relative `path`, with what only the
/// configuration knows (the index file names).
pub fn explain(denial: &Denial, path: &str, config: &Config) -> yadokari_site::denial::Explanation {
    match denial {
        Denial::NoIndex => Denial::no_index(path, &config.index_files),
        other => other.explain(path),
    }
}

/// What decides a file's role and a directory's index: the server's configuration and the
/// `.htaccess` rules in force on the path (handlers, `DirectoryIndex`, `Options ExecCGI`).
#[derive(Clone, Copy)]
pub struct Scope<'a> {
    pub config: &'a Config,
    pub rules: Option<&'a Rules>,
    /// Judge the file found as if its permission bits were these (the control panel asks the
    /// gate about a mode before it is applied); `None` for what is on disk.
    pub proposed_mode: Option<u32>,
}

/// Resolves `url` inside the site held by `jail`, by the configuration alone (requests,
/// `explain` and the transfer log go through [`resolve_in`], with the `.htaccess` rules).
#[cfg(test)]
pub fn resolve(jail: &Jail, url: &UrlPath, config: &Config) -> Resolution {
    resolve_in(
        jail,
        url,
        Scope {
            config,
            rules: None,
            proposed_mode: None,
        },
    )
}

/// Resolves `url` inside the site held by `jail`, with what `scope` says.
pub fn resolve_in(jail: &Jail, url: &UrlPath, scope: Scope<'_>) -> Resolution {
    let resolved = site_root(jail).and_then(|root| {
        let owner = root.st_uid;
        if let Some(rules) = scope.rules {
            links_allowed(jail, url, rules)?;
        }
        let descent = descend(jail, url, scope, root.st_mode)?;
        let found = target(jail, url, descent, scope)?;
        judge(jail, found, owner, scope)
    });
    match resolved {
        Ok(resolution) => resolution,
        Err(Stop::NotFound) => Resolution::NotFound,
        Err(Stop::AddSlash) => Resolution::AddSlash,
        Err(Stop::Denied(denial, path)) => Resolution::Denied { denial, path },
        Err(Stop::Fault(path, error)) => Resolution::Fault { path, error },
    }
}

/// Refuses a symbolic link on the path when the `.htaccess` rules turn following links off
/// (`Options -FollowSymLinks`; with `SymLinksIfOwnerMatch`, only links whose owner is not their
/// target's). Only looked at when they do: links inside the site are followed otherwise.
fn links_allowed(jail: &Jail, url: &UrlPath, rules: &Rules) -> Result<(), Stop> {
    let o = &rules.options;
    if o.follow_symlinks != Some(false) {
        return Ok(());
    }
    let mut rel = PathBuf::new();
    for segment in &url.segments {
        rel.push(OsStr::from_bytes(segment));
        let Ok(l) = jail.lstat(&rel) else {
            return Ok(());
        };
        if FileKind::from_mode(l.st_mode) != FileKind::Symlink {
            continue;
        }
        let owners_match = o.owner_match == Some(true)
            && jail
                .stat(&rel)
                .is_ok_and(|target| target.st_uid == l.st_uid);
        if !owners_match {
            return Err(Stop::Denied(Denial::SymlinkOff, lossy(&rel)));
        }
    }
    Ok(())
}

/// Why resolution ended before a file was judged.
enum Stop {
    NotFound,
    AddSlash,
    Denied(Denial, String),
    Fault(String, std::io::Error),
}

fn lossy(rel: &Path) -> String {
    rel.to_string_lossy().into_owned()
}

/// The site's root directory's `stat` (its owner is the site's owner), once the root itself
/// may be entered. One `fstat` per request: the walk starts from its mode.
fn site_root(jail: &Jail) -> Result<FileStat, Stop> {
    let root = jail.stat(Path::new("")).map_err(|_| Stop::NotFound)?;
    check_directory(root.st_mode).map_err(|d| Stop::Denied(d, "/".into()))?;
    Ok(root)
}

/// A file the walk reached: its place, its `stat`, whether its name is a link, and the file
/// itself when it was opened (then `stat` is its `fstat`).
struct Found {
    rel: PathBuf,
    /// The URL segments up to and including the file.
    segments: Vec<Vec<u8>>,
    path_info: Vec<u8>,
    stat: FileStat,
    is_link: bool,
    opened: Option<OwnedFd>,
    /// The mode of the directory the file is in.
    dir_mode: u32,
}

/// Where the segment walk stopped: the first regular file (with how many segments led to it),
/// or the directory every segment named.
struct Descent {
    rel: PathBuf,
    dir_mode: u32,
    file: Option<(usize, FileStat, bool, Option<OwnedFd>)>,
}

/// Walks the segments through the jail, each directory checked on the way, to the first
/// regular file. A last segment that can only be a static file (by its name and place) is
/// opened at once and judged on its descriptor, as nginx does: one `openat2` + `fstat`
/// instead of an `lstat` now and an open + `fstat` to serve it. O_NONBLOCK keeps a FIFO from
/// hanging the open; device files, which only root can create, are opened read-only before
/// the gate refuses them. Any failure falls back to `look`, which names the reason.
fn descend(jail: &Jail, url: &UrlPath, scope: Scope<'_>, root_mode: u32) -> Result<Descent, Stop> {
    let mut rel = PathBuf::new();
    let mut dir_mode = root_mode;
    let open_last = url
        .segments
        .last()
        .is_some_and(|_| kind(&url.segments, scope) == Kind::Static);
    for (i, segment) in url.segments.iter().enumerate() {
        rel.push(OsStr::from_bytes(segment));
        let last = i + 1 == url.segments.len();
        let (stat, is_link, opened) = match (open_last && last).then(|| open_static(jail, &rel)) {
            // Whether the name was a link only matters to scripts.
            Some(Some((fd, stat))) => (stat, false, Some(fd)),
            _ => {
                let (stat, is_link) = look(jail, &rel)?;
                (stat, is_link, None)
            }
        };
        match FileKind::from_mode(stat.st_mode) {
            FileKind::Directory => {
                check_directory(stat.st_mode).map_err(|d| Stop::Denied(d, lossy(&rel)))?;
                dir_mode = stat.st_mode;
            }
            FileKind::Regular => {
                let file = Some((i + 1, stat, is_link, opened));
                return Ok(Descent {
                    rel,
                    dir_mode,
                    file,
                });
            }
            FileKind::Symlink | FileKind::Special => {
                return Err(Stop::Denied(Denial::SpecialFile, lossy(&rel)));
            }
        }
    }
    Ok(Descent {
        rel,
        dir_mode,
        file: None,
    })
}

/// The file the request is for: the one the walk stopped at, with the rest of the URL as
/// `PATH_INFO`, or the directory's index file (a directory without its slash is redirected).
fn target(jail: &Jail, url: &UrlPath, descent: Descent, scope: Scope<'_>) -> Result<Found, Stop> {
    let Descent {
        mut rel,
        dir_mode,
        file,
    } = descent;
    if let Some((n, stat, is_link, opened)) = file {
        let mut path_info = Vec::new();
        for s in &url.segments[n..] {
            path_info.push(b'/');
            path_info.extend_from_slice(s);
        }
        // `/file.html/` names no directory: like Apache, a trailing slash after a file is
        // path info too.
        if url.trailing_slash {
            path_info.push(b'/');
        }
        let segments = url.segments[..n].to_vec();
        return Ok(Found {
            rel,
            segments,
            path_info,
            stat,
            is_link,
            opened,
            dir_mode,
        });
    }
    if !url.trailing_slash {
        return Err(Stop::AddSlash);
    }
    let mut segments = url.segments.clone();
    let (name, stat, is_link, opened) = index(jail, &rel, &segments, scope)?;
    rel.push(&name);
    segments.push(name.into_bytes());
    Ok(Found {
        rel,
        segments,
        path_info: Vec::new(),
        stat,
        is_link,
        opened,
        dir_mode,
    })
}

/// Asks the gate about the file found. A static file is judged on the `fstat` of the
/// descriptor that will be sent (opened here if the walk had not opened it).
fn judge(jail: &Jail, found: Found, site_owner: u32, scope: Scope<'_>) -> Result<Resolution, Stop> {
    let name = found.segments.last().map(Vec::as_slice).unwrap_or(b"");
    let (role, interpreter) = match kind(&found.segments, scope) {
        Kind::Handler(interpreter) => (Role::Handler, Some(interpreter)),
        Kind::Script => (Role::Script, None),
        Kind::Static => (Role::Static, None),
    };
    let exec_off = scope
        .rules
        .is_some_and(|r| r.options.exec_cgi == Some(false));
    if role != Role::Static && exec_off {
        return Err(Stop::Denied(Denial::ExecCgiOff, lossy(&found.rel)));
    }
    if role == Role::Static && !found.path_info.is_empty() {
        // Apache's default for static files (AcceptPathInfo Default): extra path is a 404.
        return Err(Stop::NotFound);
    }
    let mode = |stat: &FileStat| match scope.proposed_mode {
        Some(bits) => (stat.st_mode & !0o7777) | (bits & 0o7777),
        None => stat.st_mode,
    };
    let subject = |stat: &FileStat, is_link: bool| Subject {
        name,
        is_symlink: is_link,
        file: FileFacts::new(mode(stat), stat.st_uid),
        dir_mode: found.dir_mode & 0o7777,
        role,
        site_owner,
    };
    let mut stat = found.stat;
    let mut verdict = policy::decide(&subject(&stat, found.is_link));
    let mut opened = found.opened;
    if let (Verdict::Serve, None) = (&verdict, &opened) {
        // Judged on `lstat`/`stat` only (the walk could not open it): open it now and judge
        // what was opened, which may have been swapped in since.
        let Some((fd, fstat)) = open_static(jail, &found.rel) else {
            return Err(open_failure(jail, &found.rel));
        };
        stat = fstat;
        verdict = policy::decide(&subject(&stat, false));
        opened = Some(fd);
    }
    match (verdict, opened) {
        (Verdict::Serve, Some(fd)) => Ok(Resolution::Static(StaticFile {
            rel: found.rel,
            file: std::fs::File::from(fd),
            stat,
        })),
        // Only a static file is served, and it is always open by now.
        (Verdict::Serve, None) => Err(Stop::NotFound),
        (Verdict::Run, _) => {
            let mut script_name = Vec::new();
            for s in &found.segments {
                script_name.push(b'/');
                script_name.extend_from_slice(s);
            }
            Ok(Resolution::Script(Box::new(Script {
                rel: found.rel,
                script_name,
                path_info: found.path_info,
                interpreter,
                stat,
            })))
        }
        (Verdict::Deny(denial), _) => Err(Stop::Denied(denial, lossy(&found.rel))),
    }
}

/// Why a file that `look` found could not be opened: gone since (404), refused by the system
/// (the gate then names the reason from its `stat`), or a fault of the server.
fn open_failure(jail: &Jail, rel: &Path) -> Stop {
    let flags = OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY;
    match jail.open_beneath(rel, flags, Mode::empty()) {
        Err(JailError::NotFound) => Stop::NotFound,
        Err(JailError::Outside) => Stop::Denied(Denial::OutsideSite, lossy(rel)),
        Err(JailError::Io(e)) => Stop::Fault(lossy(rel), e),
        // It opens now: it changed between the two tries; let the client ask again.
        Ok(_) => Stop::NotFound,
    }
}

/// `lstat` and, for a symlink, `stat` (which must stay in the site), mapped to a [`Stop`].
fn look(jail: &Jail, rel: &Path) -> Result<(FileStat, bool), Stop> {
    let map = |e: JailError| match e {
        JailError::Outside => Stop::Denied(Denial::OutsideSite, lossy(rel)),
        // Out of descriptors is the server's trouble, not a missing file.
        JailError::Io(e) if crate::descriptors::exhausted(&e) => Stop::Fault(lossy(rel), e),
        JailError::NotFound | JailError::Io(_) => Stop::NotFound,
    };
    let l = jail.lstat(rel).map_err(map)?;
    if FileKind::from_mode(l.st_mode) == FileKind::Symlink {
        Ok((jail.stat(rel).map_err(map)?, true))
    } else {
        Ok((l, false))
    }
}

/// Opens `rel` for reading and `fstat`s it; `None` on any failure or when it is not a
/// regular file.
fn open_static(jail: &Jail, rel: &Path) -> Option<(OwnedFd, FileStat)> {
    let flags = OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY;
    let fd = jail.open_beneath(rel, flags, Mode::empty()).ok()?;
    let stat = nix::sys::stat::fstat(&fd).ok()?;
    (FileKind::from_mode(stat.st_mode) == FileKind::Regular).then_some((fd, stat))
}

/// The first index file of the directory `dir` (URL `segments`) that exists, opened when it
/// can only be a static file.
fn index(
    jail: &Jail,
    dir: &Path,
    segments: &[Vec<u8>],
    scope: Scope<'_>,
) -> Result<(String, FileStat, bool, Option<OwnedFd>), Stop> {
    let names = scope
        .rules
        .and_then(|r| r.directory_index.as_ref())
        .unwrap_or(&scope.config.index_files);
    for name in names {
        let rel = dir.join(name);
        let mut named = segments.to_vec();
        named.push(name.as_bytes().to_vec());
        if kind(&named, scope) == Kind::Static
            && let Some((fd, stat)) = open_static(jail, &rel)
        {
            return Ok((name.clone(), stat, false, Some(fd)));
        }
        match look(jail, &rel) {
            Ok((stat, is_link)) => return Ok((name.clone(), stat, is_link, None)),
            Err(Stop::NotFound) => continue,
            Err(denied) => return Err(denied),
        }
    }
    let shown = if dir.as_os_str().is_empty() {
        "/".into()
    } else {
        lossy(dir)
    };
    Err(Stop::Denied(Denial::NoIndex, shown))
}

/// What the file these segments name is taken for.
#[derive(Debug, PartialEq, Eq)]
enum Kind {
    Static,
    Script,
    /// Run through this interpreter.
    Handler(PathBuf),
}

/// The file's kind: a `.htaccess` handler first (`SetHandler`, `AddHandler`), then the
/// server's handlers, CGI directories and extensions.
fn kind(segments: &[Vec<u8>], scope: Scope<'_>) -> Kind {
    let config = scope.config;
    let name = segments.last().map_or(&[][..], Vec::as_slice);
    if let Some(rules) = scope.rules
        && let Some(h) = rules.handler_for(&String::from_utf8_lossy(name))
    {
        match h {
            Handler::Cgi => return Kind::Script,
            Handler::Static => return Kind::Static,
            Handler::Interpreter(ext) => {
                if let Some((_, interp)) = config.cgi.handlers.iter().find(|(e, _)| e == ext) {
                    return Kind::Handler(interp.clone());
                }
            }
        }
    }
    match handler_for(name, config) {
        Some(interp) => Kind::Handler(interp),
        None if is_script(segments, config) => Kind::Script,
        None => Kind::Static,
    }
}

fn is_script(segments: &[Vec<u8>], config: &Config) -> bool {
    let in_cgi_dir = config
        .cgi
        .directories
        .iter()
        .any(|dir| segments.len() > dir.len() && segments[..dir.len()] == dir[..]);
    let name = segments.last().map(Vec::as_slice).unwrap_or(b"");
    in_cgi_dir || config.cgi.extensions.iter().any(|e| ends_with(name, e))
}

fn handler_for(name: &[u8], config: &Config) -> Option<PathBuf> {
    config
        .cgi
        .handlers
        .iter()
        .find(|(ext, _)| ends_with(name, ext))
        .map(|(_, interp)| interp.clone())
}

/// `name` ends with `ext` and has a stem before it (`.cgi` itself is not a script).
fn ends_with(name: &[u8], ext: &str) -> bool {
    name.len() > ext.len() && name.ends_with(ext.as_bytes())
}
