//! The `[sftp]` and `[[users]]` sections: as written (raw) and validated into [`Settings`], the
//! part of [`super::Config`] the SFTP endpoint is started and reloaded from.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use sftp_upload::QuotaLimits;

use super::{ConfigError, Origin};

/// The `[sftp]` section as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawSftp {
    host_key: PathBuf,
    honour_client_mode: bool,
    idle_timeout_secs: u64,
    auth_delay_ms: u64,
    max_auth_failures: u32,
    failure_window_secs: u64,
    ban_secs: u64,
    max_handles: usize,
    max_sessions_per_user: usize,
    max_connections: usize,
    max_unauthenticated_per_address: usize,
    login_grace_secs: u64,
    quota_rescan_secs: u64,
}

impl Default for RawSftp {
    fn default() -> Self {
        let l = sftp_upload::Limits::default();
        RawSftp {
            host_key: PathBuf::from("ssh_host_ed25519_key"),
            honour_client_mode: false,
            idle_timeout_secs: l.idle_timeout.as_secs(),
            auth_delay_ms: l.auth_delay.as_millis() as u64,
            max_auth_failures: l.max_failures,
            failure_window_secs: l.failure_window.as_secs(),
            ban_secs: l.ban.as_secs(),
            max_handles: l.max_handles,
            max_sessions_per_user: l.max_sessions_per_user,
            max_connections: l.max_connections,
            max_unauthenticated_per_address: l.max_unauthenticated_per_address,
            login_grace_secs: l.login_grace.as_secs(),
            quota_rescan_secs: l.quota_rescan.as_secs(),
        }
    }
}

/// One `[[users]]` entry as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawUser {
    name: String,
    site: Option<PathBuf>,
    authorized_keys: Option<PathBuf>,
    password_hash: Option<String>,
    quota_bytes: Option<u64>,
    quota_files: Option<u64>,
    #[serde(default)]
    domains: Vec<String>,
}

/// The validated SFTP settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Where the host key lives; `None` without a configuration file (an ephemeral key).
    pub host_key: Option<PathBuf>,
    /// Honour the client's modes for new files.
    pub honour_client_mode: bool,
    /// Limits.
    pub limits: sftp_upload::Limits,
    /// Users, with absolute paths.
    pub users: Vec<sftp_upload::User>,
    /// Each user's domains (same order as `users`), checked and lowercased.
    pub domains: Vec<Vec<String>>,
}

/// Validates the `[sftp]` section and the users. `origin` names the file and resolves relative
/// paths against its directory; a user without a `site` gets `document_root`.
pub(super) fn settings(
    raw: RawSftp,
    users: Vec<RawUser>,
    origin: &Origin,
    document_root: &Path,
    shutdown_grace: Duration,
) -> Result<Settings, ConfigError> {
    for (key, v) in [
        ("sftp.idle_timeout_secs", raw.idle_timeout_secs),
        ("sftp.max_auth_failures", raw.max_auth_failures as u64),
        ("sftp.max_handles", raw.max_handles as u64),
        (
            "sftp.max_sessions_per_user",
            raw.max_sessions_per_user as u64,
        ),
        ("sftp.max_connections", raw.max_connections as u64),
        (
            "sftp.max_unauthenticated_per_address",
            raw.max_unauthenticated_per_address as u64,
        ),
        ("sftp.login_grace_secs", raw.login_grace_secs),
        ("sftp.quota_rescan_secs", raw.quota_rescan_secs),
    ] {
        origin.positive(key, v)?;
    }
    let mut out: Vec<sftp_upload::User> = Vec::new();
    let mut domains = Vec::new();
    for u in users {
        domains.push(checked_domains(&u, origin)?);
        let user = user(u, origin, document_root)?;
        if out.iter().any(|o| o.name == user.name) {
            return Err(origin.err("users.name", format!("`{}` appears twice", user.name)));
        }
        out.push(user);
    }
    Ok(Settings {
        host_key: origin.file.as_ref().map(|_| origin.resolve(&raw.host_key)),
        honour_client_mode: raw.honour_client_mode,
        limits: sftp_upload::Limits {
            idle_timeout: Duration::from_secs(raw.idle_timeout_secs),
            auth_delay: Duration::from_millis(raw.auth_delay_ms),
            max_failures: raw.max_auth_failures,
            failure_window: Duration::from_secs(raw.failure_window_secs),
            ban: Duration::from_secs(raw.ban_secs),
            max_handles: raw.max_handles,
            // Set from the descriptor limit when the endpoint is configured (`crate::sftp`).
            max_open_handles: sftp_upload::Limits::default().max_open_handles,
            max_sessions_per_user: raw.max_sessions_per_user,
            max_connections: raw.max_connections,
            max_unauthenticated_per_address: raw.max_unauthenticated_per_address,
            login_grace: Duration::from_secs(raw.login_grace_secs),
            shutdown_grace,
            quota_rescan: Duration::from_secs(raw.quota_rescan_secs),
        },
        users: out,
        domains,
    })
}

/// Whether `name` may be a user's login name: letters, digits, `.`, `_`, `-`; 1 to 32.
pub fn valid_user_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// Why `site` must not be a customer's SFTP site, with the fix; `None` when it may be.
/// `check_owner`: also refuse a site whose owner is root or a system account (what matters
/// when the server runs as root, and what `user add` always checks).
///
/// SECURITY: as root, a session takes its site owner's file-system identity, so a site owned
/// by root or a system account (uid below `cgi.min_uid`) would give the customer that account's
/// rights (`/etc/shadow` was downloaded through `--site /`). A site that holds the
/// configuration's directory, the host key or the server's program would let them rewrite the
/// server whatever its uid. Paths are compared canonicalised, and a site that cannot be looked
/// at is refused.
pub fn unsafe_site(site: &Path, config: &super::Config, check_owner: bool) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let shown = site.display();
    let Ok(site) = std::fs::canonicalize(site) else {
        return Some(format!(
            "{shown} cannot be looked at, so it cannot be checked"
        ));
    };
    let host_key_dir = config
        .sftp_settings
        .host_key
        .as_deref()
        .and_then(Path::parent)
        .map(Path::to_path_buf);
    let protected = [
        config.source_dir.clone(),
        host_key_dir,
        std::env::current_exe().ok(),
    ];
    let holds = protected
        .iter()
        .flatten()
        .filter_map(|p| std::fs::canonicalize(p).ok())
        .any(|p| p.starts_with(&site));
    if holds {
        return Some(format!(
            "{shown} holds the server's own configuration, host key or program, so it can never be a customer's site; give the user a directory of their own"
        ));
    }
    if !check_owner {
        return None;
    }
    let min_uid = config.cgi.min_uid;
    let owner = match std::fs::metadata(&site) {
        Ok(meta) => meta.uid(),
        Err(e) => {
            return Some(format!(
                "{shown} cannot be looked at ({e}), so it cannot be checked"
            ));
        }
    };
    if owner < min_uid {
        let name = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(owner))
            .ok()
            .flatten()
            .map_or_else(
                || format!("uid {owner}"),
                |u| format!("{} (uid {owner})", u.name),
            );
        return Some(format!(
            "{shown} belongs to {name}, and a customer acts over SFTP with the rights of their site's owner, which must be an ordinary user (uid {min_uid} or above, cgi.min_uid); fix: chown -R USER {shown} with the customer's own account"
        ));
    }
    None
}

/// A user's domains, checked and lowercased.
fn checked_domains(u: &RawUser, origin: &Origin) -> Result<Vec<String>, ConfigError> {
    u.domains
        .iter()
        .map(|d| {
            crate::sites::check_domain(d)
                .map_err(|p| origin.err("users.domains", format!("user `{}`: {p}", u.name)))
        })
        .collect()
}

/// One `[[users]]` entry, checked: a plain name, an existing site, a real password hash.
fn user(
    u: RawUser,
    origin: &Origin,
    document_root: &Path,
) -> Result<sftp_upload::User, ConfigError> {
    if !valid_user_name(&u.name) {
        return Err(origin.err(
            "users.name",
            format!(
                "`{}` is not a user name (letters, digits, . _ -; at most 32)",
                u.name
            ),
        ));
    }
    let site = match &u.site {
        Some(s) => std::fs::canonicalize(origin.resolve(s))
            .ok()
            .filter(|p| p.is_dir())
            .ok_or_else(|| {
                origin.err(
                    "users.site",
                    format!("user `{}`: {} is not a directory", u.name, s.display()),
                )
            })?,
        None => document_root.to_path_buf(),
    };
    if let Some(h) = &u.password_hash
        && !sftp_upload::accounts::is_password_hash(h)
    {
        return Err(origin.err(
            "users.password_hash",
            format!(
                "user `{}`: not a PHC argon2 hash; set it with `yadokari user passwd {}`",
                u.name, u.name
            ),
        ));
    }
    Ok(sftp_upload::User {
        authorized_keys: u.authorized_keys.as_deref().map(|p| origin.resolve(p)),
        name: u.name,
        site,
        password_hash: u.password_hash,
        quota: QuotaLimits {
            bytes: u.quota_bytes,
            files: u.quota_files,
        },
        refused: None,
    })
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, ConfigError, Overrides};

    fn load(text: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("htdocs")).expect("mkdir");
        std::fs::create_dir(dir.path().join("alice")).expect("mkdir");
        let file = dir.path().join("y.toml");
        std::fs::write(&file, text).expect("write");
        Config::load(Some(&file), &Overrides::default())
    }

    #[test]
    fn users_default_to_the_document_root_and_paths_resolve_against_the_file() {
        let c = load(
            "[[users]]\nname = \"demo\"\nauthorized_keys = \"ak\"\n\
             [[users]]\nname = \"alice\"\nsite = \"alice\"\nquota_bytes = 10\n",
        )
        .expect("valid");
        let s = &c.sftp_settings;
        assert_eq!(s.users.len(), 2);
        assert_eq!(s.users[0].site, c.document_root);
        assert!(
            s.users[0]
                .authorized_keys
                .as_ref()
                .expect("ak")
                .ends_with("ak")
        );
        assert!(s.users[1].site.ends_with("alice"));
        assert_eq!(s.users[1].quota.bytes, Some(10));
        assert_eq!(s.limits.quota_rescan.as_secs(), 60);
        assert!(
            s.host_key
                .as_ref()
                .expect("key")
                .ends_with("ssh_host_ed25519_key")
        );
        assert!(!s.honour_client_mode);
    }

    #[test]
    fn bad_entries_name_the_key() {
        let rows = [
            ("[[users]]\nname = \"a b\"\n", "users.name"),
            (
                "[[users]]\nname = \"x\"\n[[users]]\nname = \"x\"\n",
                "users.name",
            ),
            ("[[users]]\nname = \"x\"\nsite = \"nope\"\n", "users.site"),
            (
                "[[users]]\nname = \"x\"\npassword_hash = \"hunter2\"\n",
                "users.password_hash",
            ),
            ("[sftp]\nmax_handles = 0\n", "sftp.max_handles"),
            ("[sftp]\nquota_rescan_secs = 0\n", "sftp.quota_rescan_secs"),
            (
                "[[users]]\nname = \"x\"\npasword_hash = \"typo\"\n",
                "pasword_hash",
            ),
        ];
        for (text, key) in rows {
            let e = load(text).expect_err(text).to_string();
            assert!(e.contains(key), "{text}: {e}");
        }
        let e = load("[[users]]\nname = \"x\"\npassword_hash = \"hunter2\"\n")
            .expect_err("invalid")
            .to_string();
        assert!(!e.contains("hunter2"), "a bad hash is not echoed: {e}");
    }
}
