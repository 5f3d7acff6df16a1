//! The binary's side of the SFTP endpoint: the `[sftp]` and `[[users]]` sections of the
//! configuration (raw → validated, like the rest of [`crate::config`]), start-up (host key
//! generated on first start, the demo user's first password, the listener), keeping the running
//! endpoint's users in step with the file, and the `yadokari user ...` subcommands that edit it.
//!
//! The protocol itself lives in the `sftp-upload` crate; this module only turns configuration
//! into its [`sftp_upload::Config`].

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Subcommand;
use serde::Deserialize;
use sftp_upload::{Endpoint, QuotaLimits};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, ConfigError, DEFAULT_CONFIG, Overrides};

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
            && !sftp_upload::auth::is_password_hash(h)
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
                sftp_upload::hostkey::load_or_create(path).map_err(anyhow::Error::msg)?;
            if created {
                println!("generated the SSH host key {}", path.display());
            }
            key
        }
        None => sftp_upload::hostkey::generate().context("cannot generate an SSH host key")?,
    };
    let mut users: Vec<_> = s.users.clone();
    let first_password = ensure_credentials(&mut users, config, file)?;
    println!("listening sftp={addr}");
    println!(
        "SSH host key fingerprint: {}",
        sftp_upload::hostkey::fingerprint(&host_key)
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
    let endpoint = Endpoint::new(crate_config(s, users, host_key), shutdown);
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
    s: &Settings,
    users: Vec<sftp_upload::User>,
    host_key: sftp_upload::keys::PrivateKey,
) -> sftp_upload::Config {
    sftp_upload::Config {
        host_key,
        users: users.into_iter().map(Arc::new).collect(),
        honour_client_mode: s.honour_client_mode,
        limits: s.limits.clone(),
    }
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
        endpoint.replace_config(crate_config(
            &config.sftp_settings,
            users,
            old.host_key.clone(),
        ));
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
                .is_some_and(|p| !sftp_upload::auth::authorized_keys(p, &u.name).is_empty())
    });
    if has_credentials {
        return Ok(None);
    }
    let password = random_password()?;
    let hash = sftp_upload::auth::hash_password(&password).map_err(anyhow::Error::msg)?;
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
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut bytes)?;
    Ok(bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect())
}

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
            let hash = sftp_upload::auth::hash_password(&password).map_err(anyhow::Error::msg)?;
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
                    .map(|p| sftp_upload::auth::authorized_keys(p, &u.name).len())
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

fn config_file(file: Option<&Path>) -> anyhow::Result<PathBuf> {
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
fn edit_config(
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

fn user_entry<'a>(
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
    let existing = sftp_upload::auth::authorized_keys(ak, user);
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
        if !sftp_upload::auth::key_allowed(&existing, &key) {
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
