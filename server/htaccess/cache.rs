//! The compiled `.htaccess` files, read through the site's jail and compiled once per change:
//! an entry is keyed by the file's device, inode, size and modification time, so an edit or an
//! upload (an atomic rename: a new inode) applies to the very next request. What a look at a
//! directory found is kept while inotify reports no change there (`super::watch`), so a
//! request whose directories were all seen before asks the file system nothing but one
//! empty read of the inotify queue; else a directory without a file costs one `fstatat`.
//!
//! SECURITY: the file is opened beneath the site root with no symlink leaving it, never
//! following a link at its own name and never blocking on a FIFO planted there (`O_NONBLOCK`,
//! then `fstat` must say regular file); a file that is not one is a fault, not a skip: a
//! customer who replaced their `.htaccess` by something else still gets a refusal, not an open
//! directory.

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::{Arc, RwLock};

use nix::fcntl::OFlag;
use nix::sys::stat::{FileStat, Mode};
use yadokari_site::{Jail, JailError};

use super::Problem;
use super::chain::Chain;
use super::file::{Fault, Htaccess, Settings, compile};
use super::rules::Rules;

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

/// What must not have changed for a compiled copy to be the file's: size, modification and
/// change times.
type Stamp = (i64, i64, i64, i64, i64);

/// The compiled files of every site, by (site, device, inode) of the file, and what the files
/// of a path add up to.
pub struct Cache {
    settings: Settings,
    entries: RwLock<HashMap<Key, (Stamp, Loaded)>>,
    /// Merged rules, by the scopes merged (the addresses of their `Rules`, which stay put
    /// while the entry holds their files). A request in a directory with files pays one
    /// lookup instead of merging every file's settings again.
    merged: RwLock<HashMap<Vec<usize>, Merged>>,
    /// What the looks found, kept while inotify says nothing changed (`None` without inotify).
    watch: Option<super::watch::Watch>,
    /// Whole chains, by a hash of their site and directories (checked whole on a hit), each
    /// true while the generation it was made in lasts.
    chains: RwLock<HashMap<u64, KeptChain>>,
}

/// A chain and what it was made for.
struct KeptChain {
    site: u64,
    dirs: Vec<Vec<u8>>,
    generation: u64,
    chain: Arc<Chain>,
}

/// The hash a chain is kept under.
fn chain_key(site: u64, dirs: &[Vec<u8>]) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault};
    BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
        .hash_one((site, dirs))
}

/// One merged result, with the files it was made from (held, so that the addresses in its
/// key are never reused by other files while it is kept).
struct Merged {
    _files: Vec<Arc<Htaccess>>,
    rules: Arc<Rules>,
}

/// A file of a site: the site (a hash of its root's path) and the file's device and inode.
/// The site is part of the key so that a file compiled for one site (read through that
/// site's jail) is never taken for another's.
type Key = (u64, u64, u64);

/// What a directory of the path is.
#[derive(Clone)]
pub enum Place {
    /// A directory, and what its `.htaccess` gives.
    Dir(Loaded),
    /// Not a directory (a file with path info after it): the walk ends.
    End,
}

/// The identity of a site for the cache's keys.
pub fn site_key(root: &Path) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault};
    // The path's bytes: hashing a `Path` walks its components, on every request.
    BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default()
        .hash_one(root.as_os_str().as_bytes())
}

impl Cache {
    /// An empty cache compiling with `settings`.
    pub fn new(settings: Settings) -> Cache {
        Cache {
            settings,
            entries: RwLock::new(HashMap::new()),
            merged: RwLock::new(HashMap::new()),
            watch: super::watch::Watch::new(),
            chains: RwLock::new(HashMap::new()),
        }
    }

    /// The rules the scopes `key` (addresses of `Rules` inside `files`) add up to: kept, or
    /// made with `merge` and kept.
    pub fn merged(
        &self,
        key: Vec<usize>,
        files: impl FnOnce() -> Vec<Arc<Htaccess>>,
        merge: impl FnOnce() -> Rules,
    ) -> Arc<Rules> {
        if let Ok(merged) = self.merged.read()
            && let Some(m) = merged.get(&key)
        {
            return m.rules.clone();
        }
        let rules = Arc::new(merge());
        if let Ok(mut merged) = self.merged.write() {
            if merged.len() >= KEEP {
                merged.clear();
            }
            merged.insert(
                key,
                Merged {
                    _files: files(),
                    rules: rules.clone(),
                },
            );
        }
        rules
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

    /// The directory `rel` of the site held by `jail` (`site`: its [`site_key`]), and its
    /// `.htaccess`.
    ///
    /// One plain `fstatat` from the site's root tells whether there is a file, whether the
    /// path goes on (not a directory: the walk ends), and whether the compiled copy is still
    /// the file's (same inode, size and times). SECURITY: that stat only ever selects what was
    /// already read through this site's jail; a file is only read through the jail, and a
    /// name that leads out of the site (a link) finds nothing compiled under this site's key,
    /// so the jailed read refuses it.
    ///
    /// Also says whether the answer is kept (inotify watches for its change): only then may
    /// something made from it be kept too ([`Cache::chain`]).
    pub fn place(&self, jail: &Jail, site: u64, file: &Path) -> (Place, bool) {
        let Some(watch) = &self.watch else {
            return (self.look(jail, site, file), false);
        };
        if let Some(place) = watch.kept(site, file) {
            return (place, true);
        }
        let ticket = watch.before_look(jail, site, file);
        let place = self.look(jail, site, file);
        let kept = watch.keep(ticket, site, file, &place);
        (place, kept)
    }

    /// The generation of what is kept (see `super::watch`); `None` without inotify.
    pub fn generation(&self) -> Option<u64> {
        self.watch.as_ref().map(|w| w.generation())
    }

    /// The chain kept for the directories `dirs` of `site`, if it is still true.
    pub fn chain(&self, site: u64, dirs: &[Vec<u8>]) -> Option<Arc<Chain>> {
        let generation = self.generation()?;
        let chains = self.chains.read().ok()?;
        let kept = chains.get(&chain_key(site, dirs))?;
        (kept.generation == generation && kept.site == site && kept.dirs == dirs)
            .then(|| kept.chain.clone())
    }

    /// Keeps `chain`, made in `generation` from kept answers only, for the directories `dirs`.
    pub fn keep_chain(&self, site: u64, dirs: &[Vec<u8>], generation: u64, chain: &Arc<Chain>) {
        let Ok(mut chains) = self.chains.write() else {
            return;
        };
        if chains.len() >= KEEP {
            chains.clear();
        }
        let kept = KeptChain {
            site,
            dirs: dirs.to_vec(),
            generation,
            chain: chain.clone(),
        };
        chains.insert(chain_key(site, dirs), kept);
    }

    /// Applies the changes inotify reported since the last call: before a request trusts
    /// what [`Cache::place`] kept (see `super::watch`).
    pub fn refresh(&self) {
        if let Some(watch) = &self.watch {
            watch.refresh();
        }
    }

    /// [`Cache::place`] asking the file system, keeping nothing but the compiled file.
    pub fn look(&self, jail: &Jail, site: u64, file: &Path) -> Place {
        let st = match nix::sys::stat::fstatat(
            jail.root(),
            file,
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        ) {
            Ok(st) => st,
            Err(nix::errno::Errno::ENOENT) => return Place::Dir(Loaded::Absent),
            Err(nix::errno::Errno::ENOTDIR) => return Place::End,
            Err(e) => return Place::Dir(broken(file, 0, cannot_read(&e.desc().to_lowercase()))),
        };
        if let Ok(entries) = self.entries.read()
            && let Some((s, loaded)) = entries.get(&(site, st.st_dev, st.st_ino))
            && *s == stamp(&st)
        {
            return Place::Dir(loaded.clone());
        }
        Place::Dir(self.load(jail, site, file))
    }

    /// Looks at `file` through the jail, reads and compiles it, and keeps the result.
    fn load(&self, jail: &Jail, site: u64, file: &Path) -> Loaded {
        let st = match jail.lstat(file) {
            Ok(st) => st,
            Err(JailError::NotFound) => return Loaded::Absent,
            Err(e) => return broken(file, 0, cannot_read(&e.to_string())),
        };
        let loaded = self.read(jail, file, &st);
        if let Ok(mut entries) = self.entries.write() {
            if entries.len() >= KEEP {
                entries.clear();
            }
            entries.insert((site, st.st_dev, st.st_ino), (stamp(&st), loaded.clone()));
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
                Ok(h) => {
                    // Once per change of the file (compiled once), not once per request.
                    for warning in &h.warnings {
                        tracing::warn!(file = %shown(file), "{warning}");
                    }
                    Loaded::File(Arc::new(h))
                }
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
        st.st_size,
        st.st_mtime,
        st.st_mtime_nsec,
        st.st_ctime,
        st.st_ctime_nsec,
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
