//! The `[sftp]` and `[[users]]` sections: as written (raw) and validated into [`Settings`], the
//! part of [`super::Config`] the SFTP endpoint is started and reloaded from.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use sftp_upload::QuotaLimits;

use super::users::{Customer, RawUser};
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

/// The validated SFTP settings.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Where the host key lives; `None` without a configuration file (an ephemeral key).
    pub host_key: Option<PathBuf>,
    /// Honour the client's modes for new files.
    pub honour_client_mode: bool,
    /// Limits.
    pub limits: sftp_upload::Limits,
    /// Users, with absolute paths (in the order of the customers: a user's site is the
    /// customer's home).
    pub users: Vec<sftp_upload::User>,
}

/// Validates the `[sftp]` section and the users' credentials; each customer logs in to their
/// home. `origin` names the file and resolves relative paths against its directory.
pub(super) fn settings(
    raw: RawSftp,
    users: &[RawUser],
    customers: &[Customer],
    origin: &Origin,
    (shutdown_grace, proxy_protocol): (Duration, Option<sftp_upload::proxy_protocol::Trusted>),
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
    let out = users
        .iter()
        .zip(customers)
        .map(|(u, c)| user(u, c, origin))
        .collect::<Result<Vec<_>, _>>()?;
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
            proxy_protocol,
        },
        users: out,
    })
}

/// One user's SFTP account: their home, a real password hash, their keys and quota.
fn user(u: &RawUser, c: &Customer, origin: &Origin) -> Result<sftp_upload::User, ConfigError> {
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
        name: c.name.clone(),
        site: c.home.clone(),
        password_hash: u.password_hash.clone(),
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
                "[[users]]\nname = \"x\"\nsite = \"alice\"\nhome = \"alice\"\n",
                "users.home",
            ),
            ("[[users]]\nname = \"x\"\nuid = 0\n", "users.uid"),
            ("[[users]]\nname = \"x\"\nuid = 999\n", "users.uid"),
            (
                "[[users]]\nname = \"x\"\nuid = 20000\n[[users]]\nname = \"y\"\nuid = 20000\n",
                "users.uid",
            ),
            (
                "[[users]]\nname = \"x\"\nunix_user = \"no-such-account-here\"\n",
                "users.uid",
            ),
            (
                "[[users]]\nname = \"x\"\nhome = \"alice\"\nweb_root = \"../htdocs\"\n",
                "users.web_root",
            ),
            (
                "[[users]]\nname = \"x\"\nmax_scripts = 65\n",
                "users.max_scripts",
            ),
            ("[hosting]\nuid_range = [10, 20]\n", "hosting.uid_range"),
            ("[hosting]\nweb_root = \"../x\"\n", "hosting.web_root"),
            (
                "[[users]]\nname = \"x\"\npasword_hash = \"typo\"\n",
                "pasword_hash",
            ),
        ];
        for (text, key) in rows {
            let e = load(text).expect_err(text).to_string();
            assert!(e.contains(key), "{text}: {e}");
        }
        let c = load(
            "[[users]]\nname = \"x\"\nhome = \"alice\"\nweb_root = \".\"\nuid = 20001\nlimit_cpu_secs = 5\n",
        )
        .expect("valid");
        let x = &c.customers[0];
        assert_eq!(x.web_root, x.home);
        assert_eq!(x.identity.map(|i| (i.uid, i.gid)), Some((20001, 20001)));
        assert_eq!(x.limits.cpu_secs, 5);
        assert_eq!(x.limits.open_files, c.cgi.limits.open_files);
        assert_eq!(c.by_uid.get(&20001), Some(&0));
        let e = load("[[users]]\nname = \"x\"\npassword_hash = \"hunter2\"\n")
            .expect_err("invalid")
            .to_string();
        assert!(!e.contains("hunter2"), "a bad hash is not echoed: {e}");
    }
}
