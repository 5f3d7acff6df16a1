//! The `AuthUserFile` of a protected directory: found inside the customer's home through the
//! home's jail, read with a size cap, parsed once per change and kept in a bounded cache.
//!
//! Where the file may be: only inside the customer's home (for the default site, the document
//! root). A relative path is taken from the home: Apache takes it from its `ServerRoot`, a
//! directory a customer neither knows nor owns, so no working rental `.htaccess` relies on
//! that. An absolute path must start with the home's path as the server knows it.
//!
//! SECURITY: a customer must not be able to test passwords against another customer's
//! file, or `/etc/shadow`. The path is opened with `openat2(RESOLVE_BENEATH)` from the home
//! (`yadokari_site::Jail`), so no `..`, absolute path or symlink leads out, even one swapped in
//! after a check; the file must be a regular file owned by the home's owner, so a hard link
//! to someone else's file (which `RESOLVE_BENEATH` cannot see) is refused too.
//!
//! The cache is keyed by the file's device and inode, and an entry is used only while the
//! size, mtime and ctime are still those it was read with, so an edit or an upload (a rename
//! into place: a new inode) applies to the very next request.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use nix::fcntl::OFlag;
use nix::sys::stat::{FileStat, Mode, SFlag, fstat};
use yadokari_site::{Jail, JailError};

use super::Problem;
use super::htpasswd::{self, Htpasswd};

/// Largest user file read. A line is about 70 bytes with bcrypt, so this is some 15,000
/// users; a bigger file means a user database, which belongs in something indexed, not a
/// flat file read on the request path.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Default bound on the bytes of user files held parsed in the cache, all sites together.
pub const DEFAULT_CACHE_BYTES: u64 = 32 * 1024 * 1024;

/// Which version of which file a parsed table came from: equal keys, equal contents.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileKey {
    dev: u64,
    ino: u64,
    size: i64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileKey {
    pub(super) fn of(st: &FileStat) -> FileKey {
        FileKey {
            dev: st.st_dev,
            ino: st.st_ino,
            size: st.st_size,
            mtime: (st.st_mtime, st.st_mtime_nsec),
            ctime: (st.st_ctime, st.st_ctime_nsec),
        }
    }
}

/// A user file, parsed.
pub struct Loaded {
    /// Its users.
    pub table: Arc<Htpasswd>,
    /// Which version of which file it is.
    pub key: FileKey,
}

/// The parsed user files of all sites, bounded by their size.
pub struct UserFiles {
    budget: u64,
    cache: Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    entries: HashMap<(u64, u64), Entry>,
    bytes: u64,
    clock: u64,
}

struct Entry {
    key: FileKey,
    /// A file that does not parse is remembered too, so it is not re-read on every request.
    parsed: Result<Arc<Htpasswd>, Problem>,
    used: u64,
}

impl UserFiles {
    /// A cache holding at most about `budget` bytes of user files.
    pub fn new(budget: u64) -> UserFiles {
        UserFiles {
            budget,
            cache: Mutex::default(),
        }
    }

    /// The user file `written` (as in `AuthUserFile`) of the customer whose home is `home`.
    /// Blocking (opens and may read a file).
    pub fn load(&self, home: &Path, written: &str) -> Result<Loaded, Problem> {
        let rel = relative(home, written)?;
        let jail = Jail::open(home).map_err(|e| {
            Problem::new(
                format!(
                    "`AuthUserFile {written}`: the home `{}` cannot be opened: {e}",
                    home.display()
                ),
                "ask the server's administrator: the customer's home is missing",
            )
        })?;
        let flags = OFlag::O_RDONLY | OFlag::O_NOCTTY | OFlag::O_NONBLOCK;
        // SECURITY: O_NONBLOCK so that a FIFO named as the user file cannot hang the worker
        // in open(); it is then refused as not a regular file.
        let fd = jail
            .open_beneath(&rel, flags, Mode::empty())
            .map_err(|e| open_problem(written, e))?;
        let st = fstat(&fd).map_err(|e| open_problem(written, e.into()))?;
        let owner = fstat(jail.root())
            .map_err(|e| open_problem(written, e.into()))?
            .st_uid;
        check_file(written, &st, owner)?;
        let key = FileKey::of(&st);
        if let Some(parsed) = self.cached(key) {
            return parsed.map(|table| Loaded { table, key });
        }
        let parsed = read(written, std::fs::File::from(fd)).map(Arc::new);
        self.remember(key, parsed.clone());
        parsed.map(|table| Loaded { table, key })
    }

    fn cached(&self, key: FileKey) -> Option<Result<Arc<Htpasswd>, Problem>> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.clock += 1;
        let now = cache.clock;
        let entry = cache.entries.get_mut(&(key.dev, key.ino))?;
        if entry.key != key {
            return None;
        }
        entry.used = now;
        Some(entry.parsed.clone())
    }

    fn remember(&self, key: FileKey, parsed: Result<Arc<Htpasswd>, Problem>) {
        let size = key.size.max(0) as u64;
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = cache.entries.remove(&(key.dev, key.ino)) {
            cache.bytes -= old.key.size.max(0) as u64;
        }
        // Evict the least recently used until the new file fits. An O(n) scan per eviction is
        // fine: it happens only on a miss, and n stays small (the bytes bound it).
        while cache.bytes + size > self.budget && !cache.entries.is_empty() {
            let oldest = cache
                .entries
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| *k);
            if let Some(old) = oldest.and_then(|k| cache.entries.remove(&k)) {
                cache.bytes -= old.key.size.max(0) as u64;
            }
        }
        cache.clock += 1;
        let used = cache.clock;
        cache.bytes += size;
        cache
            .entries
            .insert((key.dev, key.ino), Entry { key, parsed, used });
    }

    /// How many files the cache holds.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.cache.lock().map(|c| c.entries.len()).unwrap_or(0)
    }
}

/// `written`, as a path inside the home.
fn relative(home: &Path, written: &str) -> Result<PathBuf, Problem> {
    let path = Path::new(written);
    if written.is_empty() {
        return Err(Problem::new(
            "`AuthUserFile` names no file",
            "write the path of your password file, e.g. `AuthUserFile .htpasswd` (relative to your home)",
        ));
    }
    if path.is_relative() {
        return Ok(path.to_path_buf());
    }
    let canonical = std::fs::canonicalize(home).ok();
    let inside = path
        .strip_prefix(home)
        .ok()
        .or_else(|| canonical.as_deref().and_then(|c| path.strip_prefix(c).ok()));
    match inside {
        Some(rel) => Ok(rel.to_path_buf()),
        None => Err(outside(written)),
    }
}

fn outside(written: &str) -> Problem {
    Problem::new(
        format!(
            "`AuthUserFile {written}` is outside your home: a password file must be one of your own files"
        ),
        "put the file in your home (outside public_html) and name it relative to the home, \
         e.g. `AuthUserFile .htpasswd`; create it with `htpasswd -c -B .htpasswd USER`",
    )
}

fn open_problem(written: &str, e: JailError) -> Problem {
    match e {
        JailError::Outside => outside(written),
        JailError::NotFound => Problem::new(
            format!("`AuthUserFile {written}` does not exist"),
            "create it with `htpasswd -c -B FILE USER` (relative paths are taken from your home)",
        ),
        JailError::Io(e) => Problem::new(
            format!("`AuthUserFile {written}` cannot be opened: {e}"),
            "check that it is a readable file in your home",
        ),
    }
}

/// A regular file of the home's owner, not too big.
fn check_file(written: &str, st: &FileStat, owner: u32) -> Result<(), Problem> {
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
        return Err(Problem::new(
            format!("`AuthUserFile {written}` is not a regular file"),
            "name a password file made by `htpasswd`",
        ));
    }
    if st.st_uid != owner {
        return Err(Problem::new(
            format!(
                "`AuthUserFile {written}` belongs to uid {}, not to the owner of your home (uid {owner}): \
                 a password file must be your own",
                st.st_uid
            ),
            "re-create the file yourself (over SFTP, or `htpasswd -c -B FILE USER` as your user), \
             or `chown` it to your user",
        ));
    }
    if st.st_size < 0 || st.st_size as u64 > MAX_FILE_BYTES {
        return Err(too_big(written));
    }
    Ok(())
}

fn too_big(written: &str) -> Problem {
    Problem::new(
        format!(
            "`AuthUserFile {written}` is larger than {} KiB, the most this server reads on the request path",
            MAX_FILE_BYTES / 1024
        ),
        "keep the password file to the users who need this directory (about 15,000 fit)",
    )
}

/// Reads and parses the opened file (at most [`MAX_FILE_BYTES`], whatever its size said).
fn read(written: &str, file: std::fs::File) -> Result<Htpasswd, Problem> {
    let mut text = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut text)
        .map_err(|e| open_problem(written, JailError::Io(e)))?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(too_big(written));
    }
    htpasswd::parse(&text).map_err(|e| {
        Problem::new(
            format!("`AuthUserFile {written}`, line {}: {}", e.line, e.problem),
            "each line must be `user:hash` as `htpasswd` writes it; fix or remove that line \
             (`htpasswd -B FILE USER` re-creates a user)",
        )
    })
}

#[cfg(test)]
mod tests;
