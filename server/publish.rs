//! `yadokari publish`: what the post-receive hook of a deploy repository runs (the hook
//! `yadokari user repo NAME add SITE` writes into `~/repos/SITE.git`). git-receive-pack runs it
//! after a push, as the customer, in their sandbox, with the repository as its working
//! directory; what it prints reaches `git push` as `remote:` lines.
//!
//! A push to the repository's branch (`git config yadokari.branch`) is published: its tree is
//! checked out into a new, hidden `~/releases/.NAME.partial/` (the modes in git, 0755 and 0644,
//! kept: the umask is 022), renamed to `~/releases/<time>-<short hash>/` once whole, and the web
//! root, a symbolic link, is switched to it in one step: a new link renamed over the old one
//! (`rename(2)`), so every request sees the old release or the new one, never neither. The
//! newest `yadokari.keep` releases are kept, the one served always among them. A checkout that
//! fails leaves the release that was serving in place, and says so.
//!
//! Written in Rust rather than as a shell hook so that the switch and its failures are exact;
//! it acts with nothing but the customer's own rights.

use std::ffi::OsString;
use std::io::BufRead;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, ExitCode};

/// The releases kept when the repository does not say.
pub const DEFAULT_KEEP: usize = 5;

/// A deploy repository's settings (`git config yadokari.*`, written by `user repo add`).
struct Settings {
    branch: String,
    keep: usize,
    /// The web root: the link that is switched.
    web_root: PathBuf,
    /// Where releases are made.
    releases: PathBuf,
}

/// Runs the hook: reads git's `old new ref` lines from stdin and publishes the branch's.
pub fn run() -> ExitCode {
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    match publish() {
        Ok(said) => {
            println!("{said}");
            ExitCode::SUCCESS
        }
        Err(why) => {
            eprintln!("not published: {why}");
            ExitCode::from(1)
        }
    }
}

fn publish() -> Result<String, String> {
    let settings = settings()?;
    let wanted = format!("refs/heads/{}", settings.branch);
    let mut pushed = None;
    let mut others = Vec::new();
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| format!("cannot read what git pushed: {e}"))?;
        let mut words = line.split_whitespace();
        let (Some(_old), Some(new), Some(name)) = (words.next(), words.next(), words.next()) else {
            continue;
        };
        if name == wanted {
            pushed = Some(new.to_string());
        } else {
            others.push(name.to_string());
        }
    }
    let Some(new) = pushed else {
        return Ok(format!(
            "nothing published: only pushes to the branch `{}` are ({} pushed)",
            settings.branch,
            others.join(", ")
        ));
    };
    if new.bytes().all(|b| b == b'0') {
        return Ok(format!(
            "nothing published: the branch `{}` was deleted; the site keeps serving what it served",
            settings.branch
        ));
    }
    std::fs::create_dir_all(&settings.releases)
        .map_err(|e| format!("cannot make {}: {e}", settings.releases.display()))?;
    // One publish at a time: two pushes close together must not switch out of order, nor
    // prune the release the other has just switched to.
    let _lock = lock(&settings.releases)?;
    clear_leftovers(&settings);
    // What the branch points to now (a later push may have moved it since this hook began).
    let new = git(&["rev-parse", "--verify", "--quiet", &wanted], &[])
        .map(|n| n.trim().to_string())
        .unwrap_or(new);
    let short = git(&["rev-parse", "--short", &new], &[])?;
    let short = short.trim();
    let serving = serving(&settings.web_root);
    let keep_serving = || match &serving {
        Some(r) => format!("the site still serves {}", r.display()),
        None => "the site is unchanged".to_string(),
    };
    let release =
        checkout(&settings, &new, short).map_err(|e| format!("{e}; {}", keep_serving()))?;
    let switched = switch(&settings, &release).map_err(|e| {
        let _ = std::fs::remove_dir_all(&release);
        format!("{e}; {}", keep_serving())
    })?;
    let pruned = prune(&settings, &release);
    let name = release.file_name().unwrap_or_default().to_string_lossy();
    let mut said = format!(
        "published {short} as releases/{name}: {} serves it now",
        settings.web_root.display()
    );
    match switched {
        Switched::Link => {}
        Switched::Directory(kept) => said.push_str(&format!(
            "\nthe web root was a directory; what it held is kept as {}",
            kept.display()
        )),
        Switched::DirectoryLeft(left, e) => said.push_str(&format!(
            "\nthe web root was a directory; what it held is left at {} ({e}): move it somewhere of yours",
            left.display()
        )),
    }
    if pruned > 0 {
        said.push_str(&format!(
            "\nremoved {pruned} old release(s); the newest {} are kept",
            settings.keep
        ));
    }
    Ok(said)
}

/// Holds `releases/.lock` (`flock`, exclusive) until dropped.
fn lock(releases: &Path) -> Result<nix::fcntl::Flock<std::fs::File>, String> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = releases.join(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| format!("cannot lock {}: {e}", path.display()))
}

/// Removes what an earlier publish that was stopped half-way left (a hook is killed with the
/// deploy when the client leaves or the quota is passed): its hidden `.*.partial` directory
/// and `.*.index` file in `releases/`, and its `.NAME.next-PID` link beside the web root.
/// Nothing else publishes while the lock is held, so every one is stale.
fn clear_leftovers(settings: &Settings) {
    let hidden = |dir: &Path, keep: &dyn Fn(&[u8]) -> bool| {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.filter_map(Result::ok) {
            let name = e.file_name();
            if !keep(name.as_bytes()) {
                continue;
            }
            let path = dir.join(&name);
            let _ = match e.file_type() {
                Ok(t) if t.is_dir() => std::fs::remove_dir_all(&path),
                _ => std::fs::remove_file(&path),
            };
        }
    };
    hidden(&settings.releases, &|n| {
        n.starts_with(b".") && (n.ends_with(b".partial") || n.ends_with(b".index"))
    });
    let mut prefix = b".".to_vec();
    prefix.extend_from_slice(settings.web_root.file_name().unwrap_or_default().as_bytes());
    prefix.extend_from_slice(b".next-");
    if let Some(parent) = settings.web_root.parent() {
        hidden(parent, &|n| n.starts_with(&prefix));
    }
}

/// The settings from the repository's configuration.
fn settings() -> Result<Settings, String> {
    let get = |key: &str| {
        git(&["config", "--get", key], &[])
            .ok()
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let path = |key: &str| {
        get(key)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .ok_or_else(|| {
                format!(
                    "this repository has no `{key}` (it was not made by `yadokari user repo add`)"
                )
            })
    };
    Ok(Settings {
        branch: get("yadokari.branch").unwrap_or_else(|| "main".into()),
        keep: get("yadokari.keep")
            .and_then(|k| k.parse().ok())
            .filter(|k| *k >= 1)
            .unwrap_or(DEFAULT_KEEP),
        web_root: path("yadokari.webroot")?,
        releases: path("yadokari.releases")?,
    })
}

/// Runs git in the repository; its output, or what it said when it failed.
fn git(args: &[&str], env: &[(&str, &Path)]) -> Result<String, String> {
    let mut cmd = Command::new("git");
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().map_err(|e| format!("cannot run git: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "git {} failed: {}",
            args.first().copied().unwrap_or_default(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Where the web root leads now, when it is a link.
fn serving(web_root: &Path) -> Option<PathBuf> {
    let text = std::fs::read_link(web_root).ok()?;
    Some(web_root.parent().unwrap_or(Path::new("/")).join(text))
}

/// Checks `commit` out into a new release directory, made whole under a hidden name first.
fn checkout(settings: &Settings, commit: &str, short: &str) -> Result<PathBuf, String> {
    // Milliseconds too: releases are ordered by name, and pushes come faster than a second.
    let now = std::time::SystemTime::now();
    let millis = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_millis());
    let stamp = format!("{}.{millis:03}", stamp_at(now));
    let (partial, index) = (
        settings.releases.join(format!(".{stamp}-{short}.partial")),
        settings.releases.join(format!(".{stamp}-{short}.index")),
    );
    std::fs::create_dir(&partial).map_err(|e| format!("cannot make {}: {e}", partial.display()))?;
    let mut work_tree = OsString::from("--work-tree=");
    work_tree.push(&partial);
    let checked = git(
        &[
            work_tree.to_str().unwrap_or_default(),
            "read-tree",
            "-u",
            "--reset",
            commit,
        ],
        &[("GIT_INDEX_FILE", &index)],
    );
    let _ = std::fs::remove_file(&index);
    if let Err(e) = checked {
        let _ = std::fs::remove_dir_all(&partial);
        return Err(format!("the checkout of {short} failed ({e})"));
    }
    // A second push within the same second gets the next free name.
    for n in 0..100 {
        let name = match n {
            0 => format!("{stamp}-{short}"),
            n => format!("{stamp}-{short}.{n}"),
        };
        let release = settings.releases.join(name);
        match nix::fcntl::renameat2(
            nix::fcntl::AT_FDCWD,
            &partial,
            nix::fcntl::AT_FDCWD,
            &release,
            nix::fcntl::RenameFlags::RENAME_NOREPLACE,
        ) {
            Ok(()) => return Ok(release),
            Err(nix::errno::Errno::EEXIST) => continue,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&partial);
                return Err(format!(
                    "cannot name the release {}: {e}",
                    release.display()
                ));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&partial);
    Err("too many releases made within one second".into())
}

/// How the web root was switched.
enum Switched {
    /// A link was renamed over the link.
    Link,
    /// It was a directory: exchanged with the link, and moved beside the releases, here.
    Directory(PathBuf),
    /// It was a directory, exchanged with the link, and left where the link was made: the
    /// switch is done all the same.
    DirectoryLeft(PathBuf, std::io::Error),
}

/// Points the web root at `release` in one step: a new link renamed over the old one. A web
/// root that is still a directory is exchanged with the link (`RENAME_EXCHANGE`, also one step)
/// and kept beside the releases.
fn switch(settings: &Settings, release: &Path) -> Result<Switched, String> {
    let web = &settings.web_root;
    let parent = web.parent().unwrap_or(Path::new("/"));
    let text = relative(parent, release);
    let mut next_name = OsString::from(".");
    next_name.push(web.file_name().unwrap_or_default());
    next_name.push(format!(".next-{}", std::process::id()));
    let next = parent.join(next_name);
    let _ = std::fs::remove_file(&next);
    std::os::unix::fs::symlink(&text, &next)
        .map_err(|e| format!("cannot make the link {}: {e}", next.display()))?;
    let is_dir = web.symlink_metadata().is_ok_and(|m| m.is_dir());
    if !is_dir {
        return match std::fs::rename(&next, web) {
            Ok(()) => Ok(Switched::Link),
            Err(e) => {
                let _ = std::fs::remove_file(&next);
                Err(format!("cannot switch {}: {e}", web.display()))
            }
        };
    }
    if let Err(e) = nix::fcntl::renameat2(
        nix::fcntl::AT_FDCWD,
        &next,
        nix::fcntl::AT_FDCWD,
        web,
        nix::fcntl::RenameFlags::RENAME_EXCHANGE,
    ) {
        let _ = std::fs::remove_file(&next);
        return Err(format!("cannot switch {}: {e}", web.display()));
    }
    // Switched: the link serves the release. Now `next` is the old directory.
    let kept = settings.releases.join(format!("{}-before", stamp()));
    match std::fs::rename(&next, &kept) {
        Ok(()) => Ok(Switched::Directory(kept)),
        Err(e) => Ok(Switched::DirectoryLeft(next, e)),
    }
}

/// Removes the releases past the newest `keep` (by name, which starts with the time), never
/// `current`; how many went.
fn prune(settings: &Settings, current: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(&settings.releases) else {
        return 0;
    };
    let mut names: Vec<OsString> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name())
        .filter(|n| is_release_name(n.as_bytes()))
        .collect();
    names.sort();
    let current = current.file_name().unwrap_or_default();
    // And whatever the link leads to at this moment, should it be another.
    let serving = serving(&settings.web_root);
    let serving = serving.as_deref().and_then(Path::file_name);
    let excess = names.len().saturating_sub(settings.keep);
    names
        .iter()
        .take(excess)
        .filter(|n| n.as_os_str() != current && Some(n.as_os_str()) != serving)
        .filter(|n| std::fs::remove_dir_all(settings.releases.join(n)).is_ok())
        .count()
}

/// Whether `name` is a release this module makes and prunes: `YYYYMMDD-HHMMSS.mmm-<hash>`.
/// What the web root held before its first publish (`…-before`) is never pruned.
fn is_release_name(name: &[u8]) -> bool {
    name.len() > 20
        && name[..8].iter().all(u8::is_ascii_digit)
        && name[8] == b'-'
        && name[9..15].iter().all(u8::is_ascii_digit)
        && name[15] == b'.'
        && name[16..19].iter().all(u8::is_ascii_digit)
        && name[19] == b'-'
        && !name.ends_with(b"-before")
}

/// The time now, UTC, as `YYYYMMDD-HHMMSS`.
pub(crate) fn stamp() -> String {
    stamp_at(std::time::SystemTime::now())
}

/// `at`, UTC, as `YYYYMMDD-HHMMSS`.
fn stamp_at(at: std::time::SystemTime) -> String {
    let secs = at
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let (y, m, d) = crate::access_log::civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// `to` as a path relative to the directory `from` (both absolute).
pub(crate) fn relative(from: &Path, to: &Path) -> PathBuf {
    let (a, b): (Vec<Component>, Vec<Component>) =
        (from.components().collect(), to.components().collect());
    let common = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut out = PathBuf::new();
    for _ in common..a.len() {
        out.push("..");
    }
    for c in &b[common..] {
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths() {
        assert_eq!(
            relative(Path::new("/h/alice"), Path::new("/h/alice/releases/x")),
            PathBuf::from("releases/x")
        );
        assert_eq!(
            relative(Path::new("/h/alice/www"), Path::new("/h/alice/releases/x")),
            PathBuf::from("../releases/x")
        );
    }

    #[test]
    fn release_names() {
        assert!(is_release_name(b"20261207-193000.042-abc1234"));
        assert!(is_release_name(b"20261207-193000.042-abc1234.1"));
        assert!(!is_release_name(b"20261207-193000-before"));
        assert!(!is_release_name(b".20261207-193000-abc1234.partial"));
        assert!(!is_release_name(b"mine"));
        assert_eq!(stamp().len(), 15);
    }
}
