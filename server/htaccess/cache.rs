//! The compiled `.htaccess` files, read through the site's jail and compiled once per change:
//! an entry is keyed by the file's device, inode, size and modification time, so an edit or an
//! upload (an atomic rename: a new inode) applies to the very next request, and a request in a
//! directory without a file costs one `lstat`.
//!
//! SECURITY: the file is opened beneath the site root with no symlink leaving it, never
//! following a link at its own name and never blocking on a FIFO planted there (`O_NONBLOCK`,
//! then `fstat` must say regular file); a file that is not one is a fault, not a skip: a
//! customer who replaced their `.htaccess` by something else still gets a refusal, not an open
//! directory.

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use nix::fcntl::OFlag;
use nix::sys::stat::{FileStat, Mode};
use yadokari_site::{Jail, JailError};

use super::Problem;
use super::file::{Fault, Htaccess, Settings, compile};

/// What a directory's `.htaccess` gives.
#[derive(Clone, Debug)]
pub enum Loaded {
    /// There is none.
    Absent,
    /// Compiled.
    File(Arc<Htaccess>),
    /// Unusable: everything under the directory is refused with this.
    Fault(Arc<Broken>),
}

/// A file that cannot be used, and where it is (site-relative, for messages).
#[derive(Clone, Debug)]
pub struct Broken {
    pub path: String,
    pub fault: Fault,
}

/// The name looked for in every directory.
pub const NAME: &str = ".htaccess";

/// Entries kept before the cache is emptied (10,000 customers' busy directories fit).
const KEEP: usize = 65_536;

type Stamp = (u64, u64, i64, i64, i64);

/// The compiled files of every site, by absolute directory.
pub struct Cache {
    settings: Settings,
    entries: RwLock<HashMap<PathBuf, (Stamp, Loaded)>>,
}

impl Cache {
    /// An empty cache compiling with `settings`.
    pub fn new(settings: Settings) -> Cache {
        Cache {
            settings,
            entries: RwLock::new(HashMap::new()),
        }
    }

    /// The cache a server with `config` uses; `None` when it does not read `.htaccess` files.
    pub fn for_config(config: &crate::config::Config) -> Option<Cache> {
        config.htaccess.enabled.then(|| {
            Cache::new(Settings {
                allowed: config.htaccess.allowed.clone(),
                php: config.cgi.handlers.iter().any(|(ext, _)| ext == ".php"),
            })
        })
    }

    /// The `.htaccess` of the directory `rel` of the site held by `jail` (whose root is
    /// `root`); `Absent` too when `rel` is no directory.
    pub fn load(&self, jail: &Jail, root: &Path, rel: &Path) -> Loaded {
        let file = rel.join(NAME);
        let st = match jail.lstat(&file) {
            Ok(st) => st,
            Err(JailError::NotFound) => return Loaded::Absent,
            Err(e) => return broken(&file, 0, cannot_read(&e.to_string())),
        };
        let key = root.join(rel);
        let stamp = stamp(&st);
        if let Ok(entries) = self.entries.read()
            && let Some((s, loaded)) = entries.get(&key)
            && *s == stamp
        {
            return loaded.clone();
        }
        let loaded = self.read(jail, &file, &st);
        if let Ok(mut entries) = self.entries.write() {
            if entries.len() >= KEEP {
                entries.clear();
            }
            entries.insert(key, (stamp, loaded.clone()));
        }
        loaded
    }

    /// Reads and compiles the file `st` describes.
    fn read(&self, jail: &Jail, file: &Path, st: &FileStat) -> Loaded {
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return broken(
                file,
                0,
                Problem::new(
                    "it is not a regular file (a link, a directory or a pipe)",
                    "replace it with a plain file (or remove it)",
                ),
            );
        }
        let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC;
        let fd = match jail.open_beneath(file, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(e) => return broken(file, 0, cannot_read(&e.to_string())),
        };
        let mut f = std::fs::File::from(fd);
        let mut bytes = Vec::new();
        let limit = super::syntax::MAX_BYTES as u64;
        match (&mut f).take(limit + 1).read_to_end(&mut bytes) {
            Ok(n) if n as u64 > limit => broken(
                file,
                0,
                Problem::new(
                    format!("it is larger than {limit} bytes"),
                    "keep a .htaccess short; move long rule sets into fewer, shorter files",
                ),
            ),
            Ok(_) => match compile(&String::from_utf8_lossy(&bytes), &self.settings) {
                Ok(h) => Loaded::File(Arc::new(h)),
                Err(fault) => Loaded::Fault(Arc::new(Broken {
                    path: shown(file),
                    fault,
                })),
            },
            Err(e) => broken(file, 0, cannot_read(&e.to_string())),
        }
    }
}

fn stamp(st: &FileStat) -> Stamp {
    (
        st.st_dev,
        st.st_ino,
        st.st_size,
        st.st_mtime,
        st.st_mtime_nsec,
    )
}

fn shown(file: &Path) -> String {
    String::from_utf8_lossy(file.as_os_str().as_bytes()).into_owned()
}

fn cannot_read(why: &str) -> Problem {
    Problem::new(
        format!("it cannot be read ({why})"),
        "make it a plain file the server can read (chmod 644 .htaccess)",
    )
}

fn broken(file: &Path, line: usize, problem: Problem) -> Loaded {
    Loaded::Fault(Arc::new(Broken {
        path: shown(file),
        fault: Fault {
            line,
            directive: String::new(),
            problem,
        },
    }))
}
