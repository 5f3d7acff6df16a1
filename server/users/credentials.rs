//! `user key` and `user passwd`: a customer's credentials. Keys are appended to their
//! `authorized_keys` (private keys and keys with options refused); a password is asked twice
//! and only its argon2id hash is stored.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use anyhow::{Context, bail};

use super::edit::{edit_config, user_entry};
use super::load;

/// `user key NAME FILE`: the keys of FILE added to NAME's `authorized_keys` (its entry gets
/// one when it has none).
pub(super) fn key(path: &Path, name: &str, key_file: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(key_file)
        .with_context(|| format!("cannot read {}", key_file.display()))?;
    let (added, ak) = add_key_text(path, name, &text, &key_file.display().to_string())?;
    println!("added {added} key(s) to {}", ak.display());
    Ok(())
}

/// The `authorized_keys` file of `name` in the configuration at `path`, given to their entry
/// (`authorized_keys.NAME` beside the configuration) when it has none.
fn keys_file(path: &Path, name: &str) -> anyhow::Result<std::path::PathBuf> {
    let config = load(path)?;
    let user = config
        .sftp_settings
        .users
        .iter()
        .find(|u| u.name == name)
        .with_context(|| format!("no user `{name}` in {}", path.display()))?;
    Ok(match &user.authorized_keys {
        Some(p) => p.clone(),
        None => {
            let rel = format!("authorized_keys.{name}");
            edit_config(path, |doc| {
                user_entry(doc, name)?["authorized_keys"] = toml_edit::value(rel.clone());
                Ok(())
            })?;
            path.parent().unwrap_or(Path::new(".")).join(rel)
        }
    })
}

/// Adds the public keys in `text` (from `source`, for messages) to `name`'s `authorized_keys`;
/// how many were new, and the file.
pub(crate) fn add_key_text(
    path: &Path,
    name: &str,
    text: &str,
    source: &str,
) -> anyhow::Result<(usize, std::path::PathBuf)> {
    let ak = keys_file(path, name)?;
    let added = add_keys(&ak, text, source, name)?;
    Ok((added, ak))
}

/// Removes the key whose SHA256 fingerprint is `fingerprint` from `name`'s `authorized_keys`
/// (written anew, atomically); whether it was there.
pub(crate) fn remove_key(path: &Path, name: &str, fingerprint: &str) -> anyhow::Result<bool> {
    use std::os::unix::fs::PermissionsExt;
    let ak = keys_file(path, name)?;
    let Ok(text) = std::fs::read_to_string(&ak) else {
        return Ok(false);
    };
    let mut kept = String::with_capacity(text.len());
    let mut found = false;
    for line in text.lines() {
        let this = sftp_upload::keys::PublicKey::from_openssh(line.trim())
            .ok()
            .map(|k| {
                k.fingerprint(sftp_upload::keys::HashAlg::Sha256)
                    .to_string()
            });
        if this.as_deref() == Some(fingerprint) {
            found = true;
            continue;
        }
        kept.push_str(line);
        kept.push('\n');
    }
    if found {
        let dir = ak.parent().unwrap_or(Path::new("."));
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o600))?;
        tmp.write_all(kept.as_bytes())?;
        tmp.persist(&ak)
            .with_context(|| format!("cannot write {}", ak.display()))?;
    }
    Ok(found)
}

/// The shortest password `user passwd` accepts.
const MIN_PASSWORD: usize = 8;

/// `user passwd NAME`: the password asked twice (two lines from a pipe), its hash stored.
pub(super) fn passwd(path: &Path, name: &str) -> anyhow::Result<()> {
    let password = read_password()?;
    set_password(path, name, &password)?;
    println!("password of `{name}` set");
    Ok(())
}

/// Stores the hash of `password` as `name`'s (at least [`MIN_PASSWORD`] characters).
pub(crate) fn set_password(path: &Path, name: &str, password: &str) -> anyhow::Result<()> {
    if password.chars().count() < MIN_PASSWORD {
        bail!("the password must have at least {MIN_PASSWORD} characters; nothing changed");
    }
    let hash = sftp_upload::accounts::hash_password(password).map_err(anyhow::Error::msg)?;
    edit_config(path, |doc| {
        user_entry(doc, name)?["password_hash"] = toml_edit::value(hash.clone());
        Ok(())
    })?;
    Ok(())
}

/// Appends the keys of `text` not already in `ak` (compared by key data); creates `ak` 0600.
fn add_keys(ak: &Path, text: &str, source: &str, user: &str) -> anyhow::Result<usize> {
    use std::os::unix::fs::OpenOptionsExt;
    let existing = sftp_upload::accounts::authorized_keys(ak, user);
    let mut lines = Vec::new();
    if text.contains("PRIVATE KEY-----") {
        bail!(
            "{source} is a private key, which must stay with its owner; give the public key instead (the .pub file beside it)"
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
            anyhow::anyhow!("{source}: {problem}")
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
