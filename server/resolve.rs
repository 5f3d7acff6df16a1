//! Resolution: a decoded request path → what it names in the site, decided by the permission
//! gate. It only decides: stat calls through the jail, and, for a last segment that can only be
//! a static file, an open and `fstat` so that what is judged is the very file that will be sent
//! (the descriptor travels in the [`Resolution`]). Nothing is read, sent or run here;
//! `service.rs` acts on the [`Resolution`].

use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;
use nix::sys::stat::{FileStat, Mode};
use yadokari_site::policy::{self, check_directory};
use yadokari_site::{Denial, FileFacts, FileKind, Jail, JailError, Role, Subject, Verdict};

use crate::config::Config;
use crate::url::UrlPath;

/// What a request path names, and what the gate says about it.
#[derive(Debug)]
pub enum Resolution {
    /// Nothing there.
    NotFound,
    /// A directory asked for without its trailing slash: redirect to add it.
    AddSlash,
    /// Refused, with the site-relative path the reason speaks of.
    Denied { denial: Denial, path: String },
    /// A file to send; `opened` is the file itself and its `fstat` when the resolution
    /// already opened it (and judged it on that `fstat`).
    Static {
        rel: PathBuf,
        opened: Option<(OwnedFd, FileStat)>,
    },
    /// A script to run.
    Script(Box<Script>),
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

/// Resolves `url` inside the site held by `jail`.
pub fn resolve(jail: &Jail, url: &UrlPath, config: &Config) -> Resolution {
    match walk(jail, url, config) {
        Ok(resolution) => resolution,
        Err(Stop::NotFound) => Resolution::NotFound,
        Err(Stop::Denied(denial, path)) => Resolution::Denied { denial, path },
    }
}

enum Stop {
    NotFound,
    Denied(Denial, String),
}

fn lossy(rel: &Path) -> String {
    rel.to_string_lossy().into_owned()
}

/// `lstat` and, for a symlink, `stat` (which must stay in the site), mapped to a [`Stop`].
fn look(jail: &Jail, rel: &Path) -> Result<(FileStat, bool), Stop> {
    let map = |e: JailError| match e {
        JailError::Outside => Stop::Denied(Denial::OutsideSite, lossy(rel)),
        JailError::NotFound | JailError::Io(_) => Stop::NotFound,
    };
    let l = jail.lstat(rel).map_err(map)?;
    if FileKind::from_mode(l.st_mode) == FileKind::Symlink {
        Ok((jail.stat(rel).map_err(map)?, true))
    } else {
        Ok((l, false))
    }
}

fn walk(jail: &Jail, url: &UrlPath, config: &Config) -> Result<Resolution, Stop> {
    let root = jail.stat(Path::new("")).map_err(|_| Stop::NotFound)?;
    check_directory(root.st_mode).map_err(|d| Stop::Denied(d, "/".into()))?;
    let site_owner = root.st_uid;

    let mut rel = PathBuf::new();
    let mut dir_mode = root.st_mode;
    let mut found: Option<(usize, FileStat, bool)> = None;
    let mut opened = None;
    // A last segment that can only be a static file (by its name and place) is opened at once
    // and judged on its descriptor, as nginx does: one `openat2` + `fstat` instead of an
    // `lstat` now and an open + `fstat` to serve it. O_NONBLOCK keeps a FIFO from hanging the
    // open; device files, which only root can create, are opened read-only before the gate
    // refuses them. Any failure falls back to `look`, which names the reason.
    let open_last = !url.segments.is_empty()
        && handler_for(url.segments.last().map_or(&[][..], Vec::as_slice), config).is_none()
        && !is_script(&url.segments, config);
    for (i, segment) in url.segments.iter().enumerate() {
        rel.push(OsStr::from_bytes(segment));
        let last = i + 1 == url.segments.len();
        let (stat, is_link) = match (open_last && last).then(|| open_static(jail, &rel)) {
            Some(Some((fd, stat))) => {
                if FileKind::from_mode(stat.st_mode) == FileKind::Regular {
                    opened = Some((fd, stat));
                }
                // Whether the name was a link only matters to scripts.
                (stat, false)
            }
            _ => look(jail, &rel)?,
        };
        match FileKind::from_mode(stat.st_mode) {
            FileKind::Directory => {
                check_directory(stat.st_mode).map_err(|d| Stop::Denied(d, lossy(&rel)))?;
                dir_mode = stat.st_mode;
            }
            FileKind::Regular => {
                found = Some((i + 1, stat, is_link));
                break;
            }
            FileKind::Symlink | FileKind::Special => {
                return Err(Stop::Denied(Denial::SpecialFile, lossy(&rel)));
            }
        }
    }

    let (file_segments, path_info, stat, is_link) = match found {
        Some((n, stat, is_link)) => {
            let mut info = Vec::new();
            for s in &url.segments[n..] {
                info.push(b'/');
                info.extend_from_slice(s);
            }
            if url.trailing_slash && n < url.segments.len() {
                info.push(b'/');
            }
            // `/file.html/` names no directory: like Apache, a trailing slash after a file is
            // path info too.
            if url.trailing_slash && n == url.segments.len() && !url.segments.is_empty() {
                info.push(b'/');
            }
            (url.segments[..n].to_vec(), info, stat, is_link)
        }
        None => {
            if !url.trailing_slash {
                return Ok(Resolution::AddSlash);
            }
            let (name, stat, is_link) = index(jail, &rel, config)?;
            rel.push(&name);
            let mut segments = url.segments.clone();
            segments.push(name.into_bytes());
            (segments, Vec::new(), stat, is_link)
        }
    };

    let name = file_segments.last().map(Vec::as_slice).unwrap_or(b"");
    let interpreter = handler_for(name, config);
    let role = if interpreter.is_some() {
        Role::Handler
    } else if is_script(&file_segments, config) {
        Role::Script
    } else {
        Role::Static
    };
    if role == Role::Static && !path_info.is_empty() {
        // Apache's default for static files (AcceptPathInfo Default): extra path is a 404.
        return Err(Stop::NotFound);
    }
    let subject = Subject {
        name,
        is_symlink: is_link,
        file: FileFacts::new(stat.st_mode, stat.st_uid),
        dir_mode: dir_mode & 0o7777,
        role,
        site_owner,
    };
    match policy::decide(&subject) {
        Verdict::Serve => Ok(Resolution::Static { rel, opened }),
        Verdict::Run => {
            let mut script_name = Vec::new();
            for s in &file_segments {
                script_name.push(b'/');
                script_name.extend_from_slice(s);
            }
            Ok(Resolution::Script(Box::new(Script {
                rel,
                script_name,
                path_info,
                interpreter,
                stat,
            })))
        }
        Verdict::Deny(denial) => Err(Stop::Denied(denial, lossy(&rel))),
    }
}

/// Opens `rel` for reading and `fstat`s it; `None` on any failure.
fn open_static(jail: &Jail, rel: &Path) -> Option<(OwnedFd, FileStat)> {
    let flags = OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY;
    let fd = jail.open_beneath(rel, flags, Mode::empty()).ok()?;
    let stat = nix::sys::stat::fstat(&fd).ok()?;
    Some((fd, stat))
}

/// The first index file of the directory `dir` that exists.
fn index(jail: &Jail, dir: &Path, config: &Config) -> Result<(String, FileStat, bool), Stop> {
    for name in &config.index_files {
        match look(jail, &dir.join(name)) {
            Ok((stat, is_link)) => return Ok((name.clone(), stat, is_link)),
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
