//! What the binary needs to manage accounts, in one place: the SSH host key (generated on first
//! start, loaded later, shown by its fingerprint), password hashes (argon2id, PHC format) and
//! OpenSSH `authorized_keys` files (keys compared by key data, never by comment). The endpoint
//! checks logins with these same functions, so a hash that `yadokari user passwd` writes or a
//! key that `yadokari user key` adds is accepted exactly as it was checked. Nothing here ever
//! logs a password or a private key.

use std::io::Write;
use std::path::Path;

use russh::keys::ssh_key::LineEnding;
use russh::keys::ssh_key::authorized_keys::Entry;
use russh::keys::ssh_key::private::{Ed25519Keypair, KeypairData};
use russh::keys::{HashAlg, PrivateKey, PublicKey};

/// A new random Ed25519 host key.
pub fn generate_host_key() -> std::io::Result<PrivateKey> {
    let mut seed = [0u8; 32];
    yadokari_site::random::fill(&mut seed)?;
    let pair = Ed25519Keypair::from_seed(&seed);
    PrivateKey::new(KeypairData::Ed25519(pair), "yadokari host key")
        .map_err(|e| std::io::Error::other(e.to_string()))
}

/// Loads the host key at `path` (Ed25519 in OpenSSH format), or generates and writes it there
/// (mode 0600, never overwriting) when there is none. Returns the key and whether it was just
/// created.
///
/// Several servers may start at once on one shared state directory (replicas of a container
/// stack): the key is written whole into a nameless file first and then linked to its name,
/// which fails when another server was first; that one's key is then read. No server ever
/// reads a half-written key, and all present the same one.
pub fn load_or_create_host_key(path: &Path) -> Result<(PrivateKey, bool), String> {
    let read = |text: String| {
        PrivateKey::from_openssh(text.as_bytes())
            .map_err(|e| format!("{}: not an OpenSSH private key: {e}", path.display()))
    };
    match std::fs::read_to_string(path) {
        Ok(text) => return read(text).map(|k| (k, false)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    }
    let key = generate_host_key().map_err(|e| format!("cannot generate a host key: {e}"))?;
    let text = key
        .to_openssh(LineEnding::LF)
        .map_err(|e| format!("cannot encode the host key: {e}"))?;
    let cannot = |e: std::io::Error| format!("cannot write {}: {e}", path.display());
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut scratch = yadokari_site::scratch::Scratch::new(dir, "ssh_host_key").map_err(cannot)?;
    scratch
        .file()
        .write_all(text.as_bytes())
        .and_then(|()| scratch.file().sync_all())
        .map_err(cannot)?;
    let made = scratch.link_to(path);
    match made {
        Ok(()) => Ok((key, true)),
        Err(nix::errno::Errno::EEXIST) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            read(text).map(|k| (k, false))
        }
        Err(e) => Err(cannot(e.into())),
    }
}

/// The host key's fingerprint, `SHA256:...`, as `ssh-keygen -l` and the OpenSSH client show it.
pub fn host_key_fingerprint(key: &PrivateKey) -> String {
    key.public_key().fingerprint(HashAlg::Sha256).to_string()
}

/// A PHC argon2id hash of `password` with a random salt.
pub fn hash_password(password: &str) -> Result<String, String> {
    use argon2::PasswordHasher;
    argon2::Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Whether `hash` is a PHC-format argon2 hash this server can check.
pub fn is_password_hash(hash: &str) -> bool {
    argon2::PasswordHash::new(hash).is_ok_and(|h| h.algorithm.as_str().starts_with("argon2"))
}

/// Checks `password` against a PHC hash (argon2id). Slow by design; call it off the runtime.
/// Whether `password` is `user`'s (a missing user or one with no password never matches),
/// checked on the blocking pool: the hash is slow on purpose.
pub(crate) async fn password_of(user: Option<&crate::User>, password: &str) -> bool {
    let Some(hash) = user.and_then(|u| u.password_hash.clone()) else {
        return false;
    };
    let password = password.to_string();
    tokio::task::spawn_blocking(move || password_matches(&hash, &password))
        .await
        .unwrap_or(false)
}

pub(crate) fn password_matches(hash: &str, password: &str) -> bool {
    use argon2::PasswordVerifier;
    argon2::Argon2::default()
        .verify_password(password.as_bytes(), hash)
        .is_ok()
}

/// The usable keys of an `authorized_keys` file. A line that does not parse is skipped with a
/// warning; a key with options (`command=`, `from=`, `restrict`, ...) is refused with a warning,
/// because this server does not enforce them and ignoring them silently would grant more than
/// the file says. A missing file means no keys.
pub fn authorized_keys(path: &Path, user: &str) -> Vec<PublicKey> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            tracing::warn!(%user, file = %yadokari_site::LogText::path(path), error = %e, "cannot read authorized_keys");
            return Vec::new();
        }
    };
    parse_authorized_keys(&text, path, user)
}

fn parse_authorized_keys(text: &str, path: &Path, user: &str) -> Vec<PublicKey> {
    let mut keys = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.parse::<Entry>() {
            Ok(entry) => {
                if !entry.config_opts().is_empty() {
                    tracing::warn!(
                        %user, file = %yadokari_site::LogText::path(path), line = n + 1,
                        key = %entry.public_key().fingerprint(HashAlg::Sha256),
                        "authorized_keys: this key has options, which this server does not enforce; the key is refused"
                    );
                    continue;
                }
                keys.push(entry.public_key().clone());
            }
            Err(e) => tracing::warn!(
                %user, file = %yadokari_site::LogText::path(path), line = n + 1, error = %e,
                "authorized_keys: line skipped, it is not an OpenSSH public key"
            ),
        }
    }
    keys
}

/// Whether `key` is among `keys`, comparing the key material only.
pub fn key_allowed(keys: &[PublicKey], key: &PublicKey) -> bool {
    keys.iter().any(|k| k.key_data() == key.key_data())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDp218lVmldYcjQOpSf/bIJq94hn/iSGuSzQ8dTVrr9q";

    #[test]
    fn host_key_created_once_with_mode_0600_then_reloaded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ssh_host_ed25519_key");
        let (a, created) = load_or_create_host_key(&path).expect("create");
        assert!(created);
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (b, created) = load_or_create_host_key(&path).expect("load");
        assert!(!created);
        assert_eq!(host_key_fingerprint(&a), host_key_fingerprint(&b));
        assert!(host_key_fingerprint(&a).starts_with("SHA256:"));
    }

    #[test]
    fn servers_starting_together_on_one_directory_all_get_the_same_host_key() {
        for _ in 0..20 {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("ssh_host_ed25519_key");
            let barrier = std::sync::Barrier::new(8);
            let keys: Vec<_> = std::thread::scope(|s| {
                let made: Vec<_> = (0..8)
                    .map(|_| {
                        s.spawn(|| {
                            barrier.wait();
                            load_or_create_host_key(&path).expect("load or create")
                        })
                    })
                    .collect();
                made.into_iter()
                    .map(|t| t.join().expect("thread"))
                    .collect()
            });
            assert_eq!(keys.iter().filter(|(_, created)| *created).count(), 1);
            let first = host_key_fingerprint(&keys[0].0);
            assert!(keys.iter().all(|(k, _)| host_key_fingerprint(k) == first));
            // Nothing but the key is left in the directory.
            assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 1);
        }
    }

    #[test]
    fn bad_lines_are_skipped_and_keys_with_options_refused() {
        let text = format!(
            "# comment\n\nnot a key\n{KEY} alice@laptop\ncommand=\"/bin/false\" {KEY} restricted\n"
        );
        let keys = parse_authorized_keys(&text, Path::new("ak"), "demo");
        assert_eq!(keys.len(), 1);
    }

    #[test]
    fn keys_compare_by_data_not_comment() {
        let a: PublicKey = format!("{KEY} one").parse().expect("key");
        let b: PublicKey = format!("{KEY} two").parse().expect("key");
        assert!(key_allowed(&[a], &b));
    }

    #[test]
    fn password_hash_round_trip() {
        let h = hash_password("correct horse").expect("hash");
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(password_matches(&h, "correct horse"));
        assert!(!password_matches(&h, "wrong"));
        assert!(!password_matches("not a hash", "x"));
        assert!(is_password_hash(&h));
        assert!(!is_password_hash("secret"));
    }
}
