//! `user repo NAME add SITE [--branch B] [--keep N]`: a git repository whose pushes publish the
//! customer's site (push deploys).
//!
//! It makes `~/repos/SITE.git` (bare) with a post-receive hook (`post-receive.sh`, a shell
//! script, read it for the steps) that publishes a push as a new release,
//! records the branch, the releases to keep, the web root and the releases' directory in the
//! repository's own configuration (`git config yadokari.*`), and turns the web root into a link
//! to a first release holding what it served (`~/releases/<time>-before/`), so that every later
//! switch is one rename. The entry gets `repos = ["SITE"]`, and the running server, which
//! follows the configuration file, serves the web root as a link from then on.
//!
//! SECURITY: everything is made with the customer's own identity (the owner of their home), as
//! root never: files through a thread that took their file-system identity, git as a process
//! running as them. A link the customer planted on the way leads nowhere they could not go.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use super::edit::{edit_config, user_entry};
use super::load;

/// What `repo add` is asked to make.
pub(super) struct NewRepo<'a> {
    pub name: &'a str,
    pub site: &'a str,
    pub branch: &'a str,
    pub keep: usize,
}

/// `user repo NAME add SITE`.
pub(super) fn add(path: &Path, new: &NewRepo<'_>) -> anyhow::Result<()> {
    let NewRepo {
        name,
        site,
        branch,
        keep,
    } = *new;
    if !crate::config::valid_user_name(site) || site.starts_with('.') {
        bail!("`{site}` is not a repository name (letters, digits, . _ -; not starting with .)");
    }
    if !valid_branch(branch) {
        bail!("`{branch}` is not a branch name");
    }
    if keep == 0 {
        bail!("--keep must be at least 1: the release being served is always kept");
    }
    let config = load(path)?;
    let customer = config
        .customers
        .iter()
        .find(|c| c.name == name)
        .with_context(|| format!("there is no user `{name}`"))?;
    let home = &customer.home;
    if customer.web_root == *home {
        bail!(
            "`{name}`'s home {} is their web root, so there is no web root inside it to switch between releases; give them a home with a web root inside (`user add` makes one)",
            home.display()
        );
    }
    let meta =
        std::fs::metadata(home).with_context(|| format!("cannot read {}", home.display()))?;
    let owner = (meta.uid(), meta.gid());
    let as_root = nix::unistd::geteuid().is_root();
    if as_root && owner.0 < config.cgi.min_uid {
        bail!(
            "{} belongs to uid {}, root or a system account; a repository is made with the customer's own identity",
            home.display(),
            owner.0
        );
    }
    let repo = home.join("repos").join(format!("{site}.git"));
    {
        let _as_them = yadokari_site::identity::OwnerIdentity::assume(owner).map_err(|_| {
            anyhow::anyhow!("cannot take the identity of {}'s owner", home.display())
        })?;
        if repo.symlink_metadata().is_ok() {
            bail!("{} already exists; nothing changed", repo.display());
        }
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(home.join("repos"))
            .context("cannot make repos/ in the home")?;
    }
    let git = |args: &[&std::ffi::OsStr]| -> anyhow::Result<()> {
        let mut cmd = Command::new("git");
        cmd.args(args)
            .current_dir(home)
            .env_clear()
            .env("PATH", "/usr/bin:/bin:/usr/local/bin")
            .env("HOME", home)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            // Not the customer's ~/.gitconfig either: its init.templateDir could plant hooks.
            .env("GIT_CONFIG_GLOBAL", "/dev/null");
        if as_root {
            cmd.uid(owner.0).gid(owner.1);
        }
        let out = cmd.output().context("cannot run git")?;
        if !out.status.success() {
            bail!(
                "git failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    };
    let os = |s: &str| std::ffi::OsString::from(s);
    git(&[
        &os("init"),
        &os("--bare"),
        &os("-q"),
        &os(&format!("--initial-branch={branch}")),
        repo.as_os_str(),
    ])?;
    let releases = home.join("releases");
    let mut git_dir = os("--git-dir=");
    git_dir.push(&repo);
    for (key, value) in [
        ("yadokari.branch", os(branch)),
        ("yadokari.keep", os(&keep.to_string())),
        (
            "yadokari.webroot",
            customer.web_root.clone().into_os_string(),
        ),
        ("yadokari.releases", releases.clone().into_os_string()),
    ] {
        git(&[&git_dir, &os("config"), &os(key), &value])?;
    }
    let first = {
        let _as_them = yadokari_site::identity::OwnerIdentity::assume(owner).map_err(|_| {
            anyhow::anyhow!("cannot take the identity of {}'s owner", home.display())
        })?;
        write_hook(&repo)?;
        link_web_root(&customer.web_root, &releases)?
    };
    edit_config(path, |doc| {
        let entry = user_entry(doc, name)?;
        let list = entry
            .entry("repos")
            .or_insert(toml_edit::value(toml_edit::Array::new()))
            .as_array_mut()
            .context("`repos` must be a list")?;
        if !list.iter().any(|v| v.as_str() == Some(site)) {
            list.push(site);
        }
        Ok(())
    })?;
    println!(
        "made {} for `{name}`: a push to `{branch}` publishes its tree into releases/ and switches {} to it (the newest {keep} releases are kept)",
        repo.display(),
        customer.web_root.display()
    );
    if let Some(first) = first {
        println!(
            "{} is now a link to {}, which holds what it served",
            customer.web_root.display(),
            first.display()
        );
    }
    println!(
        "push with: git push ssh://{name}@HOST:PORT/~/repos/{site}.git {branch}  (or the path repos/{site}.git)"
    );
    Ok(())
}

/// The post-receive hook: a POSIX shell script (git, coreutils and `flock` are all it needs),
/// so that it runs wherever the customer's deploy runs, their sandbox included, where this
/// server's own program may not be visible.
const HOOK: &str = include_str!("post-receive.sh");

/// The releases kept when `--keep` does not say.
pub const DEFAULT_KEEP: usize = 5;

/// Writes the post-receive hook that publishes a push.
fn write_hook(repo: &Path) -> anyhow::Result<()> {
    let hook = repo.join("hooks/post-receive");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o755)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&hook)
        .with_context(|| format!("cannot write {}", hook.display()))?;
    file.write_all(HOOK.as_bytes())
        .with_context(|| format!("cannot write {}", hook.display()))?;
    Ok(())
}

/// The time now, UTC, as `YYYYMMDD-HHMMSS`.
fn stamp() -> String {
    let secs = std::time::SystemTime::now()
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
fn relative(from: &Path, to: &Path) -> PathBuf {
    use std::path::Component;
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

/// Makes the web root a link to a first release holding what it served: a directory is
/// exchanged with the link (`RENAME_EXCHANGE`, one step), then moved into `releases`. A missing
/// web root links to an empty release. Nothing is done when it is a link already. The release
/// made, if one was.
fn link_web_root(web_root: &Path, releases: &Path) -> anyhow::Result<Option<PathBuf>> {
    let is = web_root.symlink_metadata();
    if is.as_ref().is_ok_and(|m| m.is_symlink()) {
        return Ok(None);
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(releases)
        .with_context(|| format!("cannot make {}", releases.display()))?;
    let first = releases.join(format!("{}-before", stamp()));
    let parent = web_root.parent().unwrap_or(Path::new("/"));
    let text = relative(parent, &first);
    if is.is_err() {
        std::fs::DirBuilder::new().mode(0o755).create(&first)?;
        std::os::unix::fs::symlink(&text, web_root)
            .with_context(|| format!("cannot make the link {}", web_root.display()))?;
        return Ok(Some(first));
    }
    let next = parent.join(".yadokari-web-root.next");
    let _ = std::fs::remove_file(&next);
    std::os::unix::fs::symlink(&text, &next)
        .with_context(|| format!("cannot make the link {}", next.display()))?;
    nix::fcntl::renameat2(
        nix::fcntl::AT_FDCWD,
        &next,
        nix::fcntl::AT_FDCWD,
        web_root,
        nix::fcntl::RenameFlags::RENAME_EXCHANGE,
    )
    .with_context(|| format!("cannot turn {} into a link", web_root.display()))?;
    std::fs::rename(&next, &first).with_context(|| {
        format!(
            "the web root's files are left at {}: move them to {}",
            next.display(),
            first.display()
        )
    })?;
    Ok(Some(first))
}

/// Whether `b` may be a branch name: what `git check-ref-format --branch` accepts, narrowed
/// to plain characters.
fn valid_branch(b: &str) -> bool {
    !b.is_empty()
        && b.len() <= 100
        && !b.starts_with(['-', '/', '.'])
        && !b.ends_with(['/', '.'])
        && !b.contains("..")
        && !b.contains("//")
        && !b.ends_with(".lock")
        && b.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"._-/".contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_and_names() {
        assert_eq!(
            relative(Path::new("/h/alice"), Path::new("/h/alice/releases/x")),
            PathBuf::from("releases/x")
        );
        assert_eq!(
            relative(Path::new("/h/alice/www"), Path::new("/h/alice/releases/x")),
            PathBuf::from("../releases/x")
        );
        assert_eq!(stamp().len(), 15);
        assert!(valid_branch("main") && valid_branch("release/v1"));
        assert!(!valid_branch("-x") && !valid_branch("a..b") && !valid_branch("x.lock"));
    }
}
