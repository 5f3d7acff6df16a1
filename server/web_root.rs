//! A customer's web root that is a symbolic link to a release (`public_html -> releases/…`,
//! what a git push deploy switches; see `yadokari user repo` and its `post-receive.sh`).
//!
//! Such a web root is looked up at each request (one `readlinkat` on the home, held open), so
//! that a switch, the rename of a new link over the old one, takes effect at once, and each
//! request is served wholly from the one release it resolved: its jail is that release's
//! directory, held open, and its path (what scripts are told and run in) names the release,
//! not the link. A web root that is a plain directory at load is held open once, as before.
//!
//! SECURITY: the customer controls the link. It is followed only to a directory inside the same
//! home, reached beneath the home's descriptor with no further link on the way
//! (`RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`); the path kept for the request is the home joined
//! with the link's text, normalised by hand, so it names exactly the directory opened. Anything
//! else (a link out of the home, to a file, through another link) is not served.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;
use yadokari_site::Jail;

/// One request's site root: the directory held open, and its path.
#[derive(Clone)]
pub struct SiteRoot {
    pub jail: Arc<Jail>,
    pub root: Arc<Path>,
}

/// A linked web root, as served: the home held open, and the release the link named last.
pub struct Linked {
    home: PathBuf,
    /// The link, relative to the home (`public_html`).
    link: PathBuf,
    home_dir: std::sync::OnceLock<Arc<Jail>>,
    /// The link's text when it was last followed, and where it led.
    last: Mutex<Option<(OsString, SiteRoot)>>,
}

impl Linked {
    /// The web root at `home`/`link`, looked at when first asked.
    pub fn new(home: &Path, link: &Path) -> Linked {
        Linked {
            home: home.to_path_buf(),
            link: link.to_path_buf(),
            home_dir: std::sync::OnceLock::new(),
            last: Mutex::new(None),
        }
    }

    /// Where the web root leads now.
    pub fn current(&self) -> Result<SiteRoot, String> {
        let home = match self.home_dir.get() {
            Some(home) => home.clone(),
            None => {
                let home = Arc::new(
                    Jail::open(&self.home)
                        .map_err(|e| format!("cannot open {}: {e}", self.home.display()))?,
                );
                self.home_dir.get_or_init(|| home).clone()
            }
        };
        let text = match read_link(&home, &self.link) {
            Ok(text) => text,
            // Not a link (any more): the directory itself, looked up afresh each time.
            Err(Errno::EINVAL) => {
                return open_at(&home, &self.home, &self.link);
            }
            Err(e) => {
                return Err(format!(
                    "cannot read the link {}: {e}",
                    self.home.join(&self.link).display()
                ));
            }
        };
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((seen, root)) = last.as_ref()
            && *seen == text
        {
            return Ok(root.clone());
        }
        let root = follow(&home, &self.home, &self.link, &text)?;
        *last = Some((text, root.clone()));
        Ok(root)
    }
}

/// A web root that was a directory when the configuration was read (`web_root`, inside
/// `home` or the home itself), opened beneath the home with no link on the way: a customer who
/// has turned it into a link since is not followed (the next reading of the configuration
/// makes it a linked web root, checked as such).
pub fn open_plain(home: &Path, web_root: &Path) -> Result<SiteRoot, String> {
    let opened =
        |path: &Path| Jail::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()));
    match web_root.strip_prefix(home) {
        Ok(rel) if !rel.as_os_str().is_empty() => open_at(&opened(home)?, home, rel),
        _ => Ok(SiteRoot {
            jail: Arc::new(opened(web_root)?),
            root: Arc::from(web_root),
        }),
    }
}

/// Where the web root `home`/`link` leads now (the SFTP side's verdicts and `explain` ask
/// once, so nothing is kept).
pub fn resolve(home: &Path, link: &Path) -> Result<SiteRoot, String> {
    Linked::new(home, link).current()
}

/// The text of the link `link` in `home`.
fn read_link(home: &Jail, link: &Path) -> Result<OsString, Errno> {
    nix::fcntl::readlinkat(home.root(), link)
}

/// The directory the link `link` (in `home`, at `home_path`) with text `text` leads to.
fn follow(home: &Jail, home_path: &Path, link: &Path, text: &OsString) -> Result<SiteRoot, String> {
    let shown = home_path.join(link);
    let outside = || {
        format!(
            "the web root {} is a link to {}, which is not a directory inside the home {}; a web root may only lead to one of the home's own directories",
            shown.display(),
            Path::new(text).display(),
            home_path.display()
        )
    };
    let target = Path::new(text);
    let joined = match target.strip_prefix(home_path) {
        Ok(inside) => inside.to_path_buf(),
        Err(_) if target.is_absolute() => return Err(outside()),
        Err(_) => link.parent().unwrap_or(Path::new("")).join(target),
    };
    let rel = normalise(&joined).ok_or_else(outside)?;
    if rel.as_os_str().is_empty() {
        return Err(outside());
    }
    open_at(home, home_path, &rel).map_err(|e| format!("{}: {e}", outside()))
}

/// `rel` (inside `home`, at `home_path`) opened as a directory, with no link on the way.
fn open_at(home: &Jail, home_path: &Path, rel: &Path) -> Result<SiteRoot, String> {
    let how = OpenHow::new()
        .flags(OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC)
        .mode(Mode::empty())
        .resolve(
            ResolveFlag::RESOLVE_BENEATH
                | ResolveFlag::RESOLVE_NO_SYMLINKS
                | ResolveFlag::RESOLVE_NO_MAGICLINKS,
        );
    let mut tries = 0;
    let fd = loop {
        match nix::fcntl::openat2(home.root(), rel, how) {
            Ok(fd) => break fd,
            Err(Errno::EAGAIN | Errno::EINTR) if tries < 8 => tries += 1,
            Err(e) => {
                return Err(format!(
                    "cannot open {}: {}",
                    home_path.join(rel).display(),
                    std::io::Error::from(e)
                ));
            }
        }
    };
    Ok(SiteRoot {
        jail: Arc::new(Jail::from_fd(fd)),
        root: Arc::from(home_path.join(rel)),
    })
}

/// `path` without `.` and `..` (each `..` takes the name before it), or `None` when it climbs
/// above its start or is absolute.
fn normalise(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(name) => out.push(name),
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    (!out.as_os_str().as_bytes().is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn normalise_keeps_inside() {
        assert_eq!(
            normalise(Path::new("releases/./a/../b")),
            Some(PathBuf::from("releases/b"))
        );
        assert_eq!(normalise(Path::new("../x")), None);
        assert_eq!(normalise(Path::new("a/../..")), None);
        assert_eq!(normalise(Path::new("/etc")), None);
    }

    #[test]
    fn follows_a_link_inside_the_home_only() {
        let home = tempfile::tempdir().unwrap();
        let h = std::fs::canonicalize(home.path()).unwrap();
        std::fs::create_dir_all(h.join("releases/one")).unwrap();
        std::fs::create_dir_all(h.join("releases/two")).unwrap();
        symlink("releases/one", h.join("public_html")).unwrap();
        let linked = Linked::new(&h, Path::new("public_html"));
        assert_eq!(&*linked.current().unwrap().root, h.join("releases/one"));
        symlink("releases/two", h.join("next")).unwrap();
        std::fs::rename(h.join("next"), h.join("public_html")).unwrap();
        assert_eq!(&*linked.current().unwrap().root, h.join("releases/two"));
        // An absolute link into the home is its directory too.
        std::fs::remove_file(h.join("public_html")).unwrap();
        symlink(h.join("releases/one"), h.join("public_html")).unwrap();
        assert_eq!(&*linked.current().unwrap().root, h.join("releases/one"));
        for bad in ["/etc", "../..", "releases/../..", "releases/missing"] {
            std::fs::remove_file(h.join("public_html")).unwrap();
            symlink(bad, h.join("public_html")).unwrap();
            assert!(linked.current().is_err(), "{bad} was followed");
        }
        // Through a second link: refused.
        symlink("one", h.join("releases/hop")).unwrap();
        std::fs::remove_file(h.join("public_html")).unwrap();
        symlink("releases/hop", h.join("public_html")).unwrap();
        assert!(linked.current().is_err());
        // A plain directory again: served as it is.
        std::fs::remove_file(h.join("public_html")).unwrap();
        std::fs::create_dir(h.join("public_html")).unwrap();
        assert_eq!(&*linked.current().unwrap().root, h.join("public_html"));
    }
}
