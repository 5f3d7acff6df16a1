//! A walk over a user's site that never follows a link: the root is opened through the jail,
//! each entry is looked at with `fstatat(AT_SYMLINK_NOFOLLOW)`, and each subdirectory is opened
//! relative to its parent with `O_NOFOLLOW`, so a link the customer planted leads nowhere (not
//! out of the site, not into a loop). Counting a site's usage for the quota and sweeping away
//! the temporary files of unfinished uploads at start-up both walk the site this way; a count
//! starts from a directory already open ([`walk_from`]), so it can run on another thread.

use std::ffi::CStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FileStat, Mode, fstatat};
use yadokari_site::Jail;

/// How many directory levels below the root a walk enters at most.
const MAX_DEPTH: usize = 64;

/// Calls `visit` with (the parent directory, the name, what `lstat` says) for everything in the
/// site but its root, directories included (before what they hold). Entries that vanish
/// meanwhile and directories that cannot be opened are passed over.
pub(crate) fn walk_site(jail: &Jail, visit: impl FnMut(BorrowedFd<'_>, &CStr, &FileStat)) {
    if let Ok(root) = jail.open_beneath(
        Path::new(""),
        OFlag::O_RDONLY | OFlag::O_DIRECTORY,
        Mode::empty(),
    ) {
        walk_from(&root, visit);
    }
}

/// [`walk_site`] from `root`, a directory opened for reading.
pub(crate) fn walk_from(root: &OwnedFd, mut visit: impl FnMut(BorrowedFd<'_>, &CStr, &FileStat)) {
    walk_dir(root, MAX_DEPTH, &mut Vec::new(), &mut |dir, name, _, st| {
        visit(dir, name, st)
    });
}

/// [`walk_from`] with each entry's path relative to `root` (`a/b/c`, bytes).
pub(crate) fn walk_paths(root: &OwnedFd, mut visit: impl FnMut(&[u8], &FileStat)) {
    walk_dir(root, MAX_DEPTH, &mut Vec::new(), &mut |_, _, path, st| {
        visit(path, st)
    });
}

fn walk_dir<F>(dir: &OwnedFd, depth: usize, path: &mut Vec<u8>, visit: &mut F)
where
    F: FnMut(BorrowedFd<'_>, &CStr, &[u8], &FileStat),
{
    let Ok(dup) = dir.try_clone() else { return };
    let Ok(mut d) = nix::dir::Dir::from_fd(dup) else {
        return;
    };
    let mut subdirs = Vec::new();
    for entry in d.iter().flatten() {
        let name = entry.file_name();
        if name.to_bytes() == b"." || name.to_bytes() == b".." {
            continue;
        }
        let Ok(st) = fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW) else {
            continue;
        };
        let len = path.len();
        if len > 0 {
            path.push(b'/');
        }
        path.extend_from_slice(name.to_bytes());
        visit(dir.as_fd(), name, path, &st);
        path.truncate(len);
        if st.st_mode & libc::S_IFMT == libc::S_IFDIR && depth > 0 {
            subdirs.push(name.to_owned());
        }
    }
    for name in subdirs {
        if let Ok(sub) = nix::fcntl::openat(
            dir,
            name.as_c_str(),
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            let len = path.len();
            if len > 0 {
                path.push(b'/');
            }
            path.extend_from_slice(name.to_bytes());
            walk_dir(&sub, depth - 1, path, visit);
            path.truncate(len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visits_files_and_directories_below_and_never_follows_links() {
        let site = tempfile::tempdir().expect("tempdir");
        let outside = tempfile::tempdir().expect("tempdir");
        std::fs::write(outside.path().join("secret"), b"x").expect("write");
        std::fs::create_dir_all(site.path().join("a/b")).expect("mkdir");
        std::fs::write(site.path().join("top"), b"x").expect("write");
        std::fs::write(site.path().join("a/b/deep"), b"x").expect("write");
        std::os::unix::fs::symlink(outside.path(), site.path().join("out")).expect("symlink");
        let jail = Jail::open(site.path()).expect("jail");
        let mut seen = Vec::new();
        walk_site(&jail, |_, name, _| {
            seen.push(name.to_string_lossy().into_owned())
        });
        seen.sort();
        assert_eq!(
            seen,
            ["a", "b", "deep", "out", "top"],
            "the link itself, not what it points to"
        );
    }
}
