//! The binary's side of the SFTP endpoint: the `[sftp]` and `[[users]]` sections of the
//! configuration (raw → validated, like the rest of [`crate::config`]), start-up (host key
//! generated on first start, the demo user's first password, the listener), keeping the running
//! endpoint's users in step with the file; the `yadokari user ...` subcommands that edit it are
//! in [`users`].
//!
//! The protocol itself lives in the `sftp-upload` crate; this module only turns configuration
//! into its [`sftp_upload::Config`].

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;
use sftp_upload::{Endpoint, QuotaLimits};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, ConfigError, DEFAULT_CONFIG, Overrides};

mod users;

pub use users::{UserCommand, user_command};
use users::{config_file, edit_config, user_entry};

/// The `[sftp]` section as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSftp {
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
    login_grace_secs: u64,
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
            login_grace_secs: l.login_grace.as_secs(),
        }
    }
}

/// One `[[users]]` entry as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUser {
    name: String,
    site: Option<PathBuf>,
    authorized_keys: Option<PathBuf>,
    password_hash: Option<String>,
    quota_bytes: Option<u64>,
    quota_files: Option<u64>,
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
}

/// Validates the raw sections. `base` is the configuration file's directory (None: built-in
/// defaults); `err` names the file and key.
pub fn validate(
    raw: RawSftp,
    users: Vec<RawUser>,
    base: Option<&Path>,
    document_root: &Path,
    shutdown_grace: Duration,
    err: &dyn Fn(&str, String) -> ConfigError,
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
        ("sftp.login_grace_secs", raw.login_grace_secs),
    ] {
        if v == 0 {
            return Err(err(key, "must be greater than 0".into()));
        }
    }
    let resolve = |p: &Path| match base {
        Some(b) => b.join(p),
        None => p.to_path_buf(),
    };
    let mut out = Vec::new();
    for u in users {
        let valid = !u.name.is_empty()
            && u.name.len() <= 32
            && u.name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !valid {
            return Err(err(
                "users.name",
                format!(
                    "`{}` is not a user name (letters, digits, . _ -; at most 32)",
                    u.name
                ),
            ));
        }
        if out.iter().any(|o: &sftp_upload::User| o.name == u.name) {
            return Err(err("users.name", format!("`{}` appears twice", u.name)));
        }
        let site = match &u.site {
            Some(s) => std::fs::canonicalize(resolve(s))
                .ok()
                .filter(|p| p.is_dir())
                .ok_or_else(|| {
                    err(
                        "users.site",
                        format!("user `{}`: {} is not a directory", u.name, s.display()),
                    )
                })?,
            None => document_root.to_path_buf(),
        };
        if let Some(h) = &u.password_hash
            && !sftp_upload::accounts::is_password_hash(h)
        {
            return Err(err(
                "users.password_hash",
                format!(
                    "user `{}`: not a PHC argon2 hash; set it with `yadokari user passwd {}`",
                    u.name, u.name
                ),
            ));
        }
        out.push(sftp_upload::User {
            name: u.name,
            site,
            authorized_keys: u.authorized_keys.as_deref().map(resolve),
            password_hash: u.password_hash,
            quota: QuotaLimits {
                bytes: u.quota_bytes,
                files: u.quota_files,
            },
        });
    }
    Ok(Settings {
        host_key: base.map(|b| b.join(&raw.host_key)),
        honour_client_mode: raw.honour_client_mode,
        limits: sftp_upload::Limits {
            idle_timeout: Duration::from_secs(raw.idle_timeout_secs),
            auth_delay: Duration::from_millis(raw.auth_delay_ms),
            max_failures: raw.max_auth_failures,
            failure_window: Duration::from_secs(raw.failure_window_secs),
            ban: Duration::from_secs(raw.ban_secs),
            max_handles: raw.max_handles,
            max_sessions_per_user: raw.max_sessions_per_user,
            max_connections: raw.max_connections,
            login_grace: Duration::from_secs(raw.login_grace_secs),
            shutdown_grace,
        },
        users: out,
    })
}

/// The running endpoint, for reloads.
static ENDPOINT: OnceLock<Arc<Endpoint>> = OnceLock::new();

/// The SFTP side, started.
pub struct Running {
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Waits until the endpoint has stopped (after the shutdown token is cancelled).
    pub async fn stopped(self) {
        let _ = self.task.await;
    }
}

/// Starts the SFTP endpoint on `listener`: host key, first password, banner lines, the task.
pub fn start(
    config: &Config,
    file: Option<&Path>,
    listener: tokio::net::TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<Running> {
    let s = &config.sftp_settings;
    let addr = listener.local_addr()?;
    let host_key = match &s.host_key {
        Some(path) => {
            let (key, created) =
                sftp_upload::accounts::load_or_create_host_key(path).map_err(anyhow::Error::msg)?;
            if created {
                println!("generated the SSH host key {}", path.display());
            }
            key
        }
        None => {
            sftp_upload::accounts::generate_host_key().context("cannot generate an SSH host key")?
        }
    };
    let mut users: Vec<_> = s.users.clone();
    let first_password = ensure_credentials(&mut users, config, file)?;
    println!("listening sftp={addr}");
    println!(
        "SSH host key fingerprint: {}",
        sftp_upload::accounts::host_key_fingerprint(&host_key)
    );
    if let Some((user, password)) = &first_password {
        println!("SFTP user `{user}` has no key or password yet; its password is now: {password}");
        if file.is_some() || Path::new(DEFAULT_CONFIG).exists() {
            println!("  (shown only this once; change it with `yadokari user passwd {user}`)");
        } else {
            println!("  (no configuration file: it lasts until the server stops)");
        }
    }
    if let Some(u) = users.first() {
        println!(
            "Upload with: sftp -P {} {}@{}   (files land in {})",
            addr.port(),
            u.name,
            addr.ip(),
            u.site.display()
        );
    }
    let endpoint = Endpoint::new(crate_config(config, users, host_key), shutdown);
    let _ = ENDPOINT.set(endpoint.clone());
    if let Some(path) = file
        .map(Path::to_path_buf)
        .or_else(|| Some(PathBuf::from(DEFAULT_CONFIG)).filter(|p| p.exists()))
    {
        tokio::spawn(watch_file(path, endpoint.clone()));
    }
    Ok(Running {
        task: tokio::spawn(sftp_upload::run(listener, endpoint)),
    })
}

fn crate_config(
    config: &Config,
    users: Vec<sftp_upload::User>,
    host_key: sftp_upload::keys::PrivateKey,
) -> sftp_upload::Config {
    let s = &config.sftp_settings;
    sftp_upload::Config {
        host_key,
        users: users.into_iter().map(Arc::new).collect(),
        honour_client_mode: s.honour_client_mode,
        limits: s.limits.clone(),
        advisor: Some(advisor(Arc::new(config.clone()))),
    }
}

/// The web side's verdict on a file a user just uploaded or chmodded, through the very same
/// resolution and permission gate a request goes through (as `yadokari explain` does), so the
/// transfer log says "refused (500): ... Fix: chmod 755 hello.cgi" right after the upload.
fn advisor(config: Arc<Config>) -> sftp_upload::Advisor {
    Arc::new(move |site: &Path, rel: &Path| {
        use std::os::unix::ffi::OsStrExt;
        if site != config.document_root {
            return None; // a site the HTTP side does not serve
        }
        let jail = yadokari_site::Jail::open(&config.document_root).ok()?;
        let segments: Vec<Vec<u8>> = rel
            .as_os_str()
            .as_bytes()
            .split(|&b| b == b'/')
            .filter(|s| !s.is_empty())
            .map(<[u8]>::to_vec)
            .collect();
        let url = crate::url::UrlPath {
            segments,
            trailing_slash: false,
        };
        Some(match crate::resolve::resolve(&jail, &url, &config) {
            crate::resolve::Resolution::Script(_) => "runs as a CGI script".to_string(),
            crate::resolve::Resolution::Static { .. } => "served as a static file".to_string(),
            crate::resolve::Resolution::Denied { denial, path } => {
                let e = denial.explain(&path);
                format!("refused ({}): {} Fix: {}", denial.status(), e.reason, e.fix)
            }
            crate::resolve::Resolution::NotFound | crate::resolve::Resolution::AddSlash => {
                return None;
            }
        })
    })
}

/// Re-reads the users and limits after SIGHUP or an edit of the file. The demo password is
/// only ever created at start-up.
pub fn reload(config: &Config) {
    if let Some(endpoint) = ENDPOINT.get() {
        let old = endpoint.config();
        let mut users = config.sftp_settings.users.clone();
        if users.is_empty() {
            // Keep the in-memory demo user of a configuration without users.
            users = old.users.iter().map(|u| (**u).clone()).collect();
        }
        endpoint.replace_config(crate_config(config, users, old.host_key.clone()));
    }
}

/// Polls the configuration file and reloads the SFTP users when it changes, so `yadokari user`
/// edits apply to a running server without a restart or a signal.
async fn watch_file(path: PathBuf, endpoint: Arc<Endpoint>) {
    let stamp = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let mut last = stamp(&path);
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = stamp(&path);
        if now == last {
            continue;
        }
        last = now;
        match Config::load(Some(&path), &Overrides::default()) {
            Ok(c) => {
                let _ = &endpoint;
                reload(&c);
                tracing::info!(file = %path.display(), "sftp users reloaded");
            }
            Err(e) => tracing::error!(error = %e, "sftp users not reloaded; keeping the old ones"),
        }
    }
}

/// On the very first start nobody can log in: give the demo user (or the first user, or a new
/// in-memory `demo` on the document root when there are no users) a random password, store its
/// hash in the configuration file, and return it to be printed once.
fn ensure_credentials(
    users: &mut Vec<sftp_upload::User>,
    config: &Config,
    file: Option<&Path>,
) -> anyhow::Result<Option<(String, String)>> {
    let has_credentials = users.iter().any(|u| {
        u.password_hash.is_some()
            || u.authorized_keys
                .as_deref()
                .is_some_and(|p| !sftp_upload::accounts::authorized_keys(p, &u.name).is_empty())
    });
    if has_credentials {
        return Ok(None);
    }
    let password = random_password()?;
    let hash = sftp_upload::accounts::hash_password(&password).map_err(anyhow::Error::msg)?;
    if users.is_empty() {
        users.push(sftp_upload::User {
            name: "demo".into(),
            site: config.document_root.clone(),
            authorized_keys: None,
            password_hash: Some(hash),
            quota: QuotaLimits::default(),
        });
        return Ok(Some(("demo".into(), password)));
    }
    let i = users.iter().position(|u| u.name == "demo").unwrap_or(0);
    let name = users[i].name.clone();
    let stored = config_file(file).and_then(|path| {
        edit_config(&path, |doc| {
            let entry = user_entry(doc, &name)?;
            entry["password_hash"] = toml_edit::value(hash.clone());
            Ok(())
        })
    });
    if let Err(e) = stored {
        // A read-only configuration (a container image, say) must not stop the server: the
        // password then lasts until the next start.
        tracing::warn!(error = %format!("{e:#}"), "cannot store the new password's hash in the configuration; it is valid until the server stops");
    }
    users[i].password_hash = Some(hash);
    Ok(Some((name, password)))
}

/// 16 characters from an alphabet without look-alikes.
fn random_password() -> anyhow::Result<String> {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut bytes = [0u8; 16];
    yadokari_site::random::fill(&mut bytes)?;
    Ok(bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

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
