//! Who may log in: OpenSSH `authorized_keys` files (keys compared by key data, never by
//! comment), argon2id password hashes in PHC format, and the [`Defender`] that refuses an
//! address after repeated failures. Nothing here ever logs a password or a private key.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use russh::keys::ssh_key::authorized_keys::Entry;
use russh::keys::{HashAlg, PublicKey};

/// The usable keys of an `authorized_keys` file. A line that does not parse is skipped with a
/// warning; a key with options (`command=`, `from=`, `restrict`, ...) is refused with a warning,
/// because this server does not enforce them and ignoring them silently would grant more than
/// the file says. A missing file means no keys.
pub fn authorized_keys(path: &Path, user: &str) -> Vec<PublicKey> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            tracing::warn!(%user, file = %path.display(), error = %e, "cannot read authorized_keys");
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
                        %user, file = %path.display(), line = n + 1,
                        key = %entry.public_key().fingerprint(HashAlg::Sha256),
                        "authorized_keys: this key has options, which this server does not enforce; the key is refused"
                    );
                    continue;
                }
                keys.push(entry.public_key().clone());
            }
            Err(e) => tracing::warn!(
                %user, file = %path.display(), line = n + 1, error = %e,
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

/// Checks `password` against a PHC hash (argon2id). Slow by design; call it off the runtime.
pub fn password_matches(hash: &str, password: &str) -> bool {
    use argon2::PasswordVerifier;
    argon2::Argon2::default()
        .verify_password(password.as_bytes(), hash)
        .is_ok()
}

/// Whether `hash` is a PHC-format argon2 hash this server can check.
pub fn is_password_hash(hash: &str) -> bool {
    argon2::PasswordHash::new(hash).is_ok_and(|h| h.algorithm.as_str().starts_with("argon2"))
}

/// A PHC argon2id hash of `password` with a random salt.
pub fn hash_password(password: &str) -> Result<String, String> {
    use argon2::PasswordHasher;
    argon2::Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Remembers failed logins per address and refuses an address with too many of them for a
/// while (like SFTPGo's defender).
pub struct Defender {
    max_failures: u32,
    window: Duration,
    ban: Duration,
    table: Mutex<HashMap<IpAddr, Record>>,
}

struct Record {
    failures: u32,
    first: Instant,
    banned_until: Option<Instant>,
}

impl Defender {
    /// Bans an address for `ban` once it fails `max_failures` times within `window`.
    pub fn new(max_failures: u32, window: Duration, ban: Duration) -> Defender {
        Defender {
            max_failures,
            window,
            ban,
            table: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `ip` is refused right now.
    pub fn is_banned(&self, ip: IpAddr) -> bool {
        let now = Instant::now();
        let t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        t.get(&ip)
            .and_then(|r| r.banned_until)
            .is_some_and(|until| until > now)
    }

    /// Records a failure; returns whether `ip` is now banned.
    pub fn fail(&self, ip: IpAddr) -> bool {
        let now = Instant::now();
        let mut t = self.table.lock().unwrap_or_else(|e| e.into_inner());
        if t.len() > 100_000 {
            // Bound the table: forget records whose window and ban are over.
            t.retain(|_, r| {
                now.duration_since(r.first) < self.window || r.banned_until.is_some_and(|u| u > now)
            });
        }
        let r = t.entry(ip).or_insert(Record {
            failures: 0,
            first: now,
            banned_until: None,
        });
        if now.duration_since(r.first) > self.window {
            r.failures = 0;
            r.first = now;
        }
        r.failures += 1;
        if r.failures >= self.max_failures {
            r.banned_until = Some(now + self.ban);
            r.failures = 0;
            r.first = now;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDp218lVmldYcjQOpSf/bIJq94hn/iSGuSzQ8dTVrr9q";

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

    #[test]
    fn defender_bans_after_repeated_failures() {
        let d = Defender::new(3, Duration::from_secs(60), Duration::from_secs(60));
        let ip: IpAddr = "192.0.2.1".parse().expect("ip");
        assert!(!d.fail(ip));
        assert!(!d.fail(ip));
        assert!(!d.is_banned(ip));
        assert!(d.fail(ip));
        assert!(d.is_banned(ip));
        assert!(!d.is_banned("192.0.2.2".parse().expect("ip")));
    }
}
