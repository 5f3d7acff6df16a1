//! Precompressed siblings: `style.css.br` or `style.css.gz` next to `style.css`, made ahead of
//! time at the best ratio (brotli quality 11, `gzip -9`, zopfli) and sent as they are, as
//! nginx's `gzip_static` and `brotli_static` do.
//!
//! A sibling is used only when it is safe to stand for the file: opened through the site's
//! jail like every file served, a regular file itself (SECURITY: not a link, so a customer's
//! `style.css.gz -> ../../other/secret` cannot be sent in place of their own stylesheet),
//! allowed by the same permission gate as a static file (others may read it), and not older
//! than the original (a stale sibling would send yesterday's stylesheet after an upload).

use std::ffi::OsString;
use std::path::PathBuf;

use nix::fcntl::OFlag;
use nix::sys::stat::{FileStat, Mode};
use yadokari_site::Jail;
use yadokari_site::policy::{self, FileFacts, FileKind, Role, Subject, Verdict};

use super::Coding;
use crate::resolve::StaticFile;

/// The sibling of `original` holding it compressed with `coding`, when one can stand for it.
pub fn open(jail: &Jail, original: &StaticFile, coding: Coding) -> Option<StaticFile> {
    let mut name = OsString::from(original.rel.as_os_str());
    name.push(coding.extension());
    let rel = PathBuf::from(name);
    // O_NOFOLLOW: a link as the sibling's own name fails the open (ELOOP).
    let flags = OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_NOFOLLOW;
    let fd = jail.open_beneath(&rel, flags, Mode::empty()).ok()?;
    let stat = nix::sys::stat::fstat(&fd).ok()?;
    let file_name = rel.file_name()?.as_encoded_bytes();
    if !servable(file_name, &stat) || older(&stat, &original.stat) {
        return None;
    }
    Some(StaticFile {
        rel,
        file: std::fs::File::from(fd),
        stat,
    })
}

/// The gate's verdict on the sibling as a static file. Only a script's rules read the
/// directory's mode and the site's owner; a static file is judged on its name, kind and mode.
fn servable(name: &[u8], stat: &FileStat) -> bool {
    let subject = Subject {
        name,
        is_symlink: false,
        file: FileFacts::new(stat.st_mode, stat.st_uid),
        dir_mode: 0,
        role: Role::Static,
        site_owner: stat.st_uid,
    };
    FileKind::from_mode(stat.st_mode) == FileKind::Regular
        && policy::decide(&subject) == Verdict::Serve
}

/// Whether `sibling` was last modified before `original`.
fn older(sibling: &FileStat, original: &FileStat) -> bool {
    (sibling.st_mtime, sibling.st_mtime_nsec) < (original.st_mtime, original.st_mtime_nsec)
}
