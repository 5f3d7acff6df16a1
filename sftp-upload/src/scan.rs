//! What a push deploy changed in a site: a snapshot of every regular file (size, modification
//! time, inode, mode) before the program runs and one after, compared. rsync, scp and git
//! write behind the SFTP session's back, so this is how their files get the same transfer-log
//! lines (with the web side's verdict: runs, served, refused and why) as SFTP uploads.

use std::collections::HashMap;
use std::os::fd::OwnedFd;

use crate::walk::walk_paths;

/// A site bigger than this is not compared (its deploy is logged without file lines).
const MAX_FILES: usize = 200_000;

/// Regular files by path: (size, mtime seconds, mtime nanoseconds, inode, mode).
pub(crate) struct Snapshot(HashMap<Vec<u8>, (i64, i64, i64, u64, u32)>);

/// The regular files below `root` (a directory open for reading), or `None` when there are
/// too many to compare.
pub(crate) fn snapshot(root: &OwnedFd) -> Option<Snapshot> {
    let mut files = HashMap::new();
    let mut over = false;
    walk_paths(root, |path, st| {
        if st.st_mode & libc::S_IFMT != libc::S_IFREG || over {
            return;
        }
        if files.len() >= MAX_FILES {
            over = true;
            return;
        }
        files.insert(
            path.to_vec(),
            (
                st.st_size,
                st.st_mtime,
                st.st_mtime_nsec,
                st.st_ino,
                st.st_mode & 0o7777,
            ),
        );
    });
    (!over).then_some(Snapshot(files))
}

/// What a deploy changed: the files written (new or different: path and size), and the files
/// gone, each sorted by path.
pub(crate) struct Changes {
    pub written: Vec<(Vec<u8>, i64)>,
    pub gone: Vec<Vec<u8>>,
}

/// What changed from `before` to `after`.
pub(crate) fn changes(before: &Snapshot, after: &Snapshot) -> Changes {
    let mut written: Vec<_> = after
        .0
        .iter()
        .filter(|(path, now)| before.0.get(*path) != Some(*now))
        .map(|(path, now)| (path.clone(), now.0))
        .collect();
    let mut gone: Vec<_> = before
        .0
        .keys()
        .filter(|path| !after.0.contains_key(*path))
        .cloned()
        .collect();
    written.sort();
    gone.sort();
    Changes { written, gone }
}
