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
        UserCommand::Add { name, site } => {
            edit_config(&path, |doc| {
                if user_entry(doc, &name).is_ok() {
                    bail!("user `{name}` already exists");
                }
                let mut t = toml_edit::Table::new();
                t["name"] = toml_edit::value(name.clone());
                if let Some(site) = &site {
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
        }
        UserCommand::Key {
            name,
            file: key_file,
        } => {
            let config = Config::load(Some(&path), &Overrides::default())?;
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
                    edit_config(&path, |doc| {
                        user_entry(doc, &name)?["authorized_keys"] = toml_edit::value(rel.clone());
                        Ok(())
                    })?;
                    path.parent().unwrap_or(Path::new(".")).join(rel)
                }
            };
            let added = add_keys(&ak, &key_file, &name)?;
            println!("added {added} key(s) to {}", ak.display());
        }
        UserCommand::Passwd { name } => {
            let password = read_password()?;
            if password.is_empty() {
                bail!("an empty password is not allowed");
            }
            let hash =
                sftp_upload::accounts::hash_password(&password).map_err(anyhow::Error::msg)?;
            edit_config(&path, |doc| {
                user_entry(doc, &name)?["password_hash"] = toml_edit::value(hash.clone());
                Ok(())
            })?;
            println!("password of `{name}` set");
        }
        UserCommand::List => {
            let config = Config::load(Some(&path), &Overrides::default())?;
            for u in &config.sftp_settings.users {
                let keys = u
                    .authorized_keys
                    .as_deref()
                    .map(|p| sftp_upload::accounts::authorized_keys(p, &u.name).len())
                    .unwrap_or(0);
                println!(
                    "{}\tsite={}\tkeys={keys}\tpassword={}",
                    u.name,
                    u.site.display(),
                    if u.password_hash.is_some() {
                        "yes"
                    } else {
                        "no"
                    }
                );
            }
        }
        UserCommand::Remove { name } => {
            edit_config(&path, |doc| {
                let users = users_array(doc)?;
                let before = users.len();
                users.retain(|t| t.get("name").and_then(|v| v.as_str()) != Some(name.as_str()));
                if users.len() == before {
                    bail!("no user `{name}`");
                }
                Ok(())
            })?;
            println!("removed user `{name}` (their files stay where they are)");
        }
    }
    Ok(())
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
/// loader the server uses, and only then replaces the file (atomically).
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
    let dir = path.parent().unwrap_or(Path::new("."));
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let mut tmp = tempfile_in(dir)?;
    tmp.1.write_all(doc.to_string().as_bytes())?;
    tmp.1.sync_all()?;
    if let Ok(meta) = std::fs::metadata(path) {
        let _ = std::fs::set_permissions(&tmp.0, meta.permissions());
    }
    if let Err(e) = Config::load(Some(&tmp.0), &Overrides::default()) {
        let _ = std::fs::remove_file(&tmp.0);
        bail!("the edited configuration would not load: {e}");
    }
    std::fs::rename(&tmp.0, path).with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(())
}

fn tempfile_in(dir: &Path) -> anyhow::Result<(PathBuf, std::fs::File)> {
    for n in 0..100 {
        let p = dir.join(format!(".yadokari.toml.{}.{n}", std::process::id()));
        if let Ok(f) = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&p)
        {
            return Ok((p, f));
        }
    }
    bail!("cannot create a temporary file in {}", dir.display())
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
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let key = sftp_upload::keys::PublicKey::from_openssh(line).with_context(|| {
            format!(
                "{}: not an OpenSSH public key: {line:.40}",
                key_file.display()
            )
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

/// The new password: prompted twice without echo on a terminal, else the first line of stdin.
fn read_password() -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        let mut line = String::new();
        stdin.lock().read_line(&mut line)?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_string());
    }
    let first = prompt_hidden("New password: ")?;
    let second = prompt_hidden("Again: ")?;
    if first != second {
        bail!("the passwords differ; nothing changed");
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
