//! What running a script will run into, found without running it: the account it runs as,
//! the directories that account must enter, a missing handler, a broken `#!` line. The request
//! path (after a failed start), `yadokari explain` and the SFTP transfer log all ask here, so
//! the three never disagree about a script.

use std::ffi::OsStr;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use yadokari_site::Jail;

use super::failure::{self, Failure};
use super::identity;
use super::spawn::Identity;
use crate::config::Config;
use crate::resolve::Script;

/// The first problem `script` will hit when it is run, or `None` when it should start.
pub fn predict(config: &Config, root: &Path, jail: &Jail, script: &Script) -> Option<Failure> {
    let identity = match identity::for_owner(script.stat.st_uid, config) {
        Ok(identity) => identity,
        Err(failure) => return Some(failure),
    };
    if let Some(blocked) = blocked_directory(root, script, identity.as_ref()) {
        return Some(blocked);
    }
    match &script.interpreter {
        Some(i) if !i.is_file() => Some(Failure::HandlerMissing {
            interpreter: i.display().to_string(),
        }),
        Some(_) => None,
        None => {
            let first = match jail.open_parent(&script.rel) {
                Ok(Some((dir, name))) => first_bytes(&dir, &name),
                _ => Vec::new(),
            };
            failure::predict_exec(&first)
        }
    }
}

/// Up to 256 bytes from the start of `name` in the directory `dir`: opened without following
/// a link and without blocking (a FIFO swapped in cannot hang the caller), and only read when
/// it is a regular file.
pub fn first_bytes(dir: impl AsFd, name: &OsStr) -> Vec<u8> {
    let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
    let Ok(fd) = nix::fcntl::openat(dir, name, flags, Mode::empty()) else {
        return Vec::new();
    };
    let regular = nix::sys::stat::fstat(&fd).is_ok_and(|s| {
        yadokari_site::FileKind::from_mode(s.st_mode) == yadokari_site::FileKind::Regular
    });
    if !regular {
        return Vec::new();
    }
    let mut first = vec![0u8; 256];
    let n = std::io::Read::read(&mut std::fs::File::from(fd), &mut first).unwrap_or(0);
    first.truncate(n);
    first
}

/// The first directory from the site's root down to the script's own that the account the
/// script runs as (`None`: the server's own) may not enter, as a failure naming it.
pub fn blocked_directory(
    root: &Path,
    script: &Script,
    identity: Option<&Identity>,
) -> Option<Failure> {
    let (uid, gids) = match identity {
        Some(i) => (
            i.uid,
            i.groups.iter().copied().chain([i.gid]).collect::<Vec<_>>(),
        ),
        None => own_ids(),
    };
    let mut dir = root.to_path_buf();
    let mut rel = std::path::PathBuf::new();
    let parents: Vec<_> = script
        .rel
        .parent()
        .map(|p| p.components().collect())
        .unwrap_or_default();
    for step in std::iter::once(None).chain(parents.into_iter().map(Some)) {
        if let Some(c) = step {
            dir.push(c);
            rel.push(c);
        }
        let meta = std::fs::metadata(&dir).ok()?;
        let mode = meta.mode() & 0o7777;
        let bit = if uid == meta.uid() {
            0o100
        } else if gids.contains(&meta.gid()) {
            0o010
        } else {
            0o001
        };
        if uid != 0 && mode & bit == 0 {
            let shown = if rel.as_os_str().is_empty() {
                "/ (the site's top directory)".to_string()
            } else {
                rel.display().to_string()
            };
            return Some(Failure::DirNotEnterable {
                dir: shown,
                mode,
                fix_mode: mode | bit,
                user: identity::describe(identity),
            });
        }
    }
    None
}

/// The server's own uid and groups.
fn own_ids() -> (u32, Vec<u32>) {
    let uid = nix::unistd::Uid::effective().as_raw();
    let mut gids: Vec<u32> = nix::unistd::getgroups()
        .map(|g| g.into_iter().map(|g| g.as_raw()).collect())
        .unwrap_or_default();
    gids.push(nix::unistd::Gid::effective().as_raw());
    (uid, gids)
}
