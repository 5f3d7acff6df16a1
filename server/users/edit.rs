//! Editing the configuration file: keep its comments and layout, validate the result with the
//! loader the server uses, and replace the file atomically, keeping its owner (and its secrecy
//! while it holds password hashes).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::config::{Config, DEFAULT_CONFIG, Overrides};

/// The configuration file the users are kept in: `file`, or the default one; it must exist.
pub fn config_file(file: Option<&Path>) -> anyhow::Result<PathBuf> {
    let path = file
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG));
    if !path.exists() {
        bail!(
            "{}: no configuration file to keep the users in (use --config FILE)",
            path.display()
        );
    }
    Ok(path)
}

/// Edits the TOML file keeping its comments and layout, validates the result with the same
/// loader the server uses, and only then replaces the file (atomically, through a temporary
/// beside it).
///
/// SECURITY: the new file keeps the old one's owner and group (`user passwd` run as root must
/// not hand a customer's file to root), and while it holds a password hash it is 0600 whatever
/// its mode was, so no script running as another user can read the hashes.
pub fn edit_config(
    path: &Path,
    f: impl FnOnce(&mut toml_edit::DocumentMut) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let _lock = lock_for_edit(path)?;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .with_context(|| format!("{}: not TOML", path.display()))?;
    f(&mut doc)?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".yadokari.toml.")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    tmp.write_all(doc.to_string().as_bytes())?;
    tmp.as_file().sync_all()?;
    let old = std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    keep_owner_and_mode(tmp.as_file(), &old, holds_secret(&doc))?;
    if let Err(mut e) = Config::load(Some(tmp.path()), &Overrides::default()) {
        // The error names the file being edited, not the temporary it was tried in.
        e.source = path.display().to_string();
        bail!("the edited configuration would not load: {e}");
    }
    tmp.persist(path)
        .with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(())
}

/// The edit lock of a configuration file, held until dropped (see [`lock_for_edit`]).
pub struct EditLock {
    _file: Option<nix::fcntl::Flock<std::fs::File>>,
}

thread_local! {
    /// How many edit locks this thread holds: a command that holds the lock for all its steps
    /// (`user add` allocating an identity) edits the file under the same lock.
    static HELD: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

impl Drop for EditLock {
    fn drop(&mut self) {
        HELD.with(|h| h.set(h.get().saturating_sub(1)));
    }
}

/// Takes the edit lock of the configuration at `path`: an exclusive `flock` on `.NAME-lock`
/// beside it (not the file itself, which each edit replaces). Two edits at once (two
/// operators, threads of the server, or `docker exec` into two replicas sharing one state
/// volume) are serialised: neither loses the other's change, and two `user add` never take
/// the same identity. Reentrant within a thread.
pub fn lock_for_edit(path: &Path) -> anyhow::Result<EditLock> {
    use std::os::unix::fs::OpenOptionsExt;
    if HELD.with(|h| h.get()) > 0 {
        HELD.with(|h| h.set(h.get() + 1));
        return Ok(EditLock { _file: None });
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "yadokari.toml".into());
    let lock = path.with_file_name(format!(".{name}-lock"));
    // Read-only, 0644 and never anything but empty: a server running as another user than
    // the one who made it can still take it (flock needs no write access).
    let file = std::fs::OpenOptions::new()
        .read(true)
        .mode(0o644)
        .custom_flags(libc::O_CREAT | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&lock)
        .with_context(|| format!("cannot open the edit lock {}", lock.display()))?;
    let locked = nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| anyhow::anyhow!("cannot lock {}: {e}", lock.display()))?;
    HELD.with(|h| h.set(h.get() + 1));
    Ok(EditLock {
        _file: Some(locked),
    })
}

/// Whether the document holds a password hash.
fn holds_secret(doc: &toml_edit::DocumentMut) -> bool {
    doc.get("users")
        .and_then(|u| u.as_array_of_tables())
        .is_some_and(|users| users.iter().any(|t| t.contains_key("password_hash")))
}

/// Gives `file` the owner, group and mode of `old`; the mode without any bit for the group
/// and others when `secret`.
fn keep_owner_and_mode(
    file: &std::fs::File,
    old: &std::fs::Metadata,
    secret: bool,
) -> anyhow::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    if nix::unistd::Uid::effective().is_root() {
        std::os::unix::fs::fchown(file, Some(old.uid()), Some(old.gid()))
            .context("cannot give the edited configuration its owner")?;
    }
    let mut mode = old.mode() & 0o7777;
    if secret {
        mode &= 0o700;
    }
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .context("cannot set the edited configuration's mode")?;
    Ok(())
}

/// The `[[users]]` array, made when the file has none.
pub(super) fn users_array(
    doc: &mut toml_edit::DocumentMut,
) -> anyhow::Result<&mut toml_edit::ArrayOfTables> {
    if !doc.contains_key("users") {
        doc.insert(
            "users",
            toml_edit::Item::ArrayOfTables(toml_edit::ArrayOfTables::new()),
        );
    }
    doc["users"]
        .as_array_of_tables_mut()
        .context("`users` must be written as [[users]] tables")
}

/// The `[[users]]` table of `name`.
pub fn user_entry<'a>(
    doc: &'a mut toml_edit::DocumentMut,
    name: &str,
) -> anyhow::Result<&'a mut toml_edit::Table> {
    users_array(doc)?
        .iter_mut()
        .find(|t| t.get("name").and_then(|v| v.as_str()) == Some(name))
        .with_context(|| format!("no user `{name}`"))
}
