//! `yadokari user add|key|passwd|list|remove`: the hosting users kept in the configuration
//! file. Edits keep the file's comments and layout (toml_edit), are validated by the same
//! loader the server uses before the file is replaced (atomically), and a running server picks
//! them up by itself (see [`super::start`]). Passwords are prompted without echo, or read from
//! standard input when it is not a terminal, never taken from the command line.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Subcommand;

use crate::config::{Config, DEFAULT_CONFIG, Overrides};

/// `yadokari user ...`
#[derive(Subcommand)]
pub enum UserCommand {
    /// Add a hosting user (without --site: the document root).
    Add {
        name: String,
        /// The user's site directory.
        #[arg(long, value_name = "DIR")]
        site: Option<PathBuf>,
    },
    /// Add the OpenSSH public key(s) in FILE to NAME's authorized_keys.
    Key { name: String, file: PathBuf },
    /// Set NAME's password (prompted; read from stdin when it is not a terminal).
    Passwd { name: String },
    /// List the users.
    List,
    /// Remove a user (their files stay).
    Remove { name: String },
}

/// Runs a `user` subcommand against the configuration file.
pub fn user_command(cmd: UserCommand, file: Option<&Path>) -> anyhow::Result<()> {
    let path = config_file(file)?;
    match cmd {
        UserCommand::Add { name, site } => add(&path, &name, site.as_deref()),
        UserCommand::Key { name, file } => key(&path, &name, &file),
        UserCommand::Passwd { name } => passwd(&path, &name),
        UserCommand::List => list(&path),
        UserCommand::Remove { name } => remove(&path, &name),
    }
}

/// `user add NAME [--site DIR]`.
fn add(path: &Path, name: &str, site: Option<&Path>) -> anyhow::Result<()> {
    if !crate::config::valid_user_name(name) {
        bail!("`{name}` is not a user name (letters, digits, . _ -; at most 32)");
    }
    let config = load(path)?;
    let home = match site {
        Some(site) => std::fs::canonicalize(site)
            .with_context(|| format!("{} is not a directory", site.display()))?,
        None => config.document_root.clone(),
    };
    if let Some(reason) = crate::config::unsafe_site(&home, &config, true) {
        bail!("cannot add `{name}`: {reason}");
    }
    edit_config(path, |doc| {
        if user_entry(doc, name).is_ok() {
            bail!("user `{name}` already exists");
        }
        let mut t = toml_edit::Table::new();
        t["name"] = toml_edit::value(name);
        if let Some(site) = site {
            let abs = std::fs::canonicalize(site)
                .with_context(|| format!("{} is not a directory", site.display()))?;
            t["site"] = toml_edit::value(abs.display().to_string());
        }
        t["authorized_keys"] = toml_edit::value(format!("authorized_keys.{name}"));
        users_array(doc)?.push(t);
        Ok(())
    })?;
    println!(
        "added user `{name}`; give them a key with `yadokari user key {name} FILE` or a password with `yadokari user passwd {name}`"
    );
    Ok(())
}

/// `user key NAME FILE`: the keys of FILE added to NAME's `authorized_keys` (its entry gets
/// one when it has none).
fn key(path: &Path, name: &str, key_file: &Path) -> anyhow::Result<()> {
    let config = load(path)?;
    let user = config
        .sftp_settings
        .users
        .iter()
        .find(|u| u.name == name)
        .with_context(|| format!("no user `{name}` in {}", path.display()))?;
    let ak = match &user.authorized_keys {
        Some(p) => p.clone(),
        None => {
            let rel = format!("authorized_keys.{name}");
            edit_config(path, |doc| {
                user_entry(doc, name)?["authorized_keys"] = toml_edit::value(rel.clone());
                Ok(())
            })?;
            path.parent().unwrap_or(Path::new(".")).join(rel)
        }
    };
    let added = add_keys(&ak, key_file, name)?;
    println!("added {added} key(s) to {}", ak.display());
    Ok(())
}

/// The shortest password `user passwd` accepts.
const MIN_PASSWORD: usize = 8;

/// `user passwd NAME`: the password asked twice (two lines from a pipe), its hash stored.
fn passwd(path: &Path, name: &str) -> anyhow::Result<()> {
    let password = read_password()?;
    if password.chars().count() < MIN_PASSWORD {
        bail!("the password must have at least {MIN_PASSWORD} characters; nothing changed");
    }
    let hash = sftp_upload::accounts::hash_password(&password).map_err(anyhow::Error::msg)?;
    edit_config(path, |doc| {
        user_entry(doc, name)?["password_hash"] = toml_edit::value(hash.clone());
        Ok(())
    })?;
    println!("password of `{name}` set");
    Ok(())
}

/// `user list`: one line per user.
fn list(path: &Path) -> anyhow::Result<()> {
    let config = load(path)?;
    for u in &config.sftp_settings.users {
        let keys = u
            .authorized_keys
            .as_deref()
            .map(|p| sftp_upload::accounts::authorized_keys(p, &u.name).len())
            .unwrap_or(0);
        let password = if u.password_hash.is_some() {
            "yes"
        } else {
            "no"
        };
        println!(
            "{}\tsite={}\tkeys={keys}\tpassword={password}",
            u.name,
            u.site.display()
        );
    }
    Ok(())
}

/// `user remove NAME`: the entry goes, the files stay.
fn remove(path: &Path, name: &str) -> anyhow::Result<()> {
    edit_config(path, |doc| {
        let users = users_array(doc)?;
        let before = users.len();
        users.retain(|t| t.get("name").and_then(|v| v.as_str()) != Some(name));
        if users.len() == before {
            bail!("no user `{name}`");
        }
        Ok(())
    })?;
    println!("removed user `{name}` (their files stay where they are)");
    Ok(())
}

/// The configuration at `path`, as the server would load it.
fn load(path: &Path) -> anyhow::Result<Config> {
    Ok(Config::load(Some(path), &Overrides::default())?)
}

pub(super) fn config_file(file: Option<&Path>) -> anyhow::Result<PathBuf> {
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
pub(super) fn edit_config(
    path: &Path,
    f: impl FnOnce(&mut toml_edit::DocumentMut) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
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

fn users_array(doc: &mut toml_edit::DocumentMut) -> anyhow::Result<&mut toml_edit::ArrayOfTables> {
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

pub(super) fn user_entry<'a>(
    doc: &'a mut toml_edit::DocumentMut,
    name: &str,
) -> anyhow::Result<&'a mut toml_edit::Table> {
    users_array(doc)?
        .iter_mut()
        .find(|t| t.get("name").and_then(|v| v.as_str()) == Some(name))
        .with_context(|| format!("no user `{name}`"))
}

/// Appends the keys of `key_file` not already in `ak` (compared by key data); creates `ak` 0600.
fn add_keys(ak: &Path, key_file: &Path, user: &str) -> anyhow::Result<usize> {
    use std::os::unix::fs::OpenOptionsExt;
    let text = std::fs::read_to_string(key_file)
        .with_context(|| format!("cannot read {}", key_file.display()))?;
    let existing = sftp_upload::accounts::authorized_keys(ak, user);
    let mut lines = Vec::new();
    if text.contains("PRIVATE KEY-----") {
        bail!(
            "{} is a private key, which must stay with its owner; give the public key instead (the .pub file beside it)",
            key_file.display()
        );
    }
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let key = sftp_upload::keys::PublicKey::from_openssh(line).map_err(|_| {
            let problem = if has_options(line) {
                "this key line starts with options (such as from= or command=), which are not supported; give the key alone".to_string()
            } else {
                format!("not an OpenSSH public key: {line:.40}")
            };
            anyhow::anyhow!("{}: {problem}", key_file.display())
        })?;
        if !sftp_upload::accounts::key_allowed(&existing, &key) {
            lines.push(line.to_string());
        }
    }
    if lines.is_empty() {
        return Ok(0);
    }
    if let Some(dir) = ak.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(ak)
        .with_context(|| format!("cannot write {}", ak.display()))?;
    for l in &lines {
        writeln!(f, "{l}")?;
    }
    Ok(lines.len())
}

/// Whether an `authorized_keys` line has options before its key type (`from="..." ssh-ed25519
/// AAAA...`): a later word is a key type.
fn has_options(line: &str) -> bool {
    line.split_whitespace()
        .skip(1)
        .any(|w| w.starts_with("ssh-") || w.starts_with("ecdsa-") || w.starts_with("sk-"))
}

/// The new password, asked twice: prompted without echo on a terminal, else the first two
/// lines of standard input (the password and its confirmation). They must match.
fn read_password() -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    let (first, second) = if stdin.is_terminal() {
        (prompt_hidden("New password: ")?, prompt_hidden("Again: ")?)
    } else {
        let mut lines = stdin.lock().lines();
        let mut next = || -> anyhow::Result<String> {
            match lines.next() {
                Some(line) => Ok(line?.trim_end_matches('\r').to_string()),
                None => bail!(
                    "give the password twice on standard input, one line each (the password, then its confirmation); nothing changed"
                ),
            }
        };
        (next()?, next()?)
    };
    if first != second {
        bail!("the two passwords differ; nothing changed");
    }
    Ok(first)
}

fn prompt_hidden(prompt: &str) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    eprint!("{prompt}");
    // SAFETY: termios is plain data; fd 0 is this process's standard input, a terminal here.
    let old = unsafe {
        let mut t: libc::termios = std::mem::zeroed();
        if libc::tcgetattr(0, &mut t) != 0 {
            bail!("cannot read the terminal settings");
        }
        let mut quiet = t;
        quiet.c_lflag &= !libc::ECHO;
        libc::tcsetattr(0, libc::TCSANOW, &quiet);
        t
    };
    let mut line = String::new();
    let r = stdin.lock().read_line(&mut line);
    // SAFETY: restores the settings read above.
    unsafe {
        libc::tcsetattr(0, libc::TCSANOW, &old);
    }
    eprintln!();
    r?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}
