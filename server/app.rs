//! The application object: everything the running server shares (the configuration in force,
//! the document root held open, the access log, the customers' logs, the script slots, the
//! SFTP endpoint's handle)
//! and the one way any of it changes, [`App::reload`], which SIGHUP and the configuration file
//! watcher both call, with the command line's overrides kept.
//!
//! Like mini-redis's `Db`, it is created once in `main`, passed down by `Arc`, and there are no
//! globals: the HTTP workers read it per request, the SFTP endpoint gets its share through
//! [`crate::sftp::reload`].

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use sftp_upload::Endpoint;
use yadokari_site::Jail;

use crate::access_log::AccessLog;
use crate::cgi::ScriptSlots;
use crate::config::{Config, ConfigError, DEFAULT_CONFIG, Overrides};
use crate::customer_log::CustomerLogs;
use crate::web_root::SiteRoot;

/// Where the configuration comes from: the file given (or the default one) and the command
/// line's overrides, which every reload applies again.
#[derive(Clone, Debug, Default)]
pub struct ConfigSource {
    /// `--config FILE`, if given.
    pub file: Option<PathBuf>,
    /// `--http`, `--sftp`, `--root`.
    pub overrides: Overrides,
}

impl ConfigSource {
    /// Reads and validates the configuration.
    pub fn load(&self) -> Result<Config, ConfigError> {
        Config::load(self.file.as_deref(), &self.overrides)
    }

    /// Warns when the file holds password hashes and the group or others may read it (it is
    /// written 0600 whenever it holds one; a hand edit or a copy may have loosened it).
    pub fn warn_if_secrets_exposed(&self, config: &Config) {
        use std::os::unix::fs::MetadataExt;
        let Some(path) = self.path() else { return };
        let secrets = config
            .sftp_settings
            .users
            .iter()
            .any(|u| u.password_hash.is_some());
        let mode = std::fs::metadata(&path).map_or(0, |m| m.mode());
        if secrets && mode & 0o077 != 0 {
            tracing::warn!(
                file = %path.display(),
                mode = %format!("{:04o}", mode & 0o7777),
                fix = %format!("chmod 600 {}", path.display()),
                "the configuration holds password hashes and others may read it: every script on this server can read them"
            );
        }
    }

    /// The file that is read: the one given, or the default one when it exists.
    /// The file the configuration is read from, when there is one.
    pub fn path(&self) -> Option<PathBuf> {
        self.file
            .clone()
            .or_else(|| Some(PathBuf::from(DEFAULT_CONFIG)).filter(|p| p.exists()))
    }
}

/// One configuration and the document root it names, held open, swapped together: a request
/// never judges files in one root while it runs scripts with another's paths.
pub struct State {
    /// The configuration.
    pub config: Arc<Config>,
    /// Its document root, held open: one descriptor for every request instead of an open and
    /// a close each. Opened at the first request that needs it when it could not be opened at
    /// load (the directory may come later).
    root: std::sync::OnceLock<Arc<Jail>>,
    /// The document root's path, shared by the requests that name it.
    document_root: Arc<Path>,
    /// The customers' web roots.
    sites: Vec<WebRoot>,
    /// The sites' compiled `.htaccess` files (`None`: they are not read), made anew with
    /// every configuration, whose settings they are compiled with.
    pub htaccess: Option<crate::htaccess::cache::Cache>,
}

/// A customer's web root: a directory opened at its first request and held, or a link to a
/// release followed at each request (`crate::web_root`).
enum WebRoot {
    /// Opened beneath the home (no link followed) at the first request: the web root and
    /// the home.
    Held(std::sync::OnceLock<Arc<Jail>>, Arc<Path>, PathBuf),
    Linked(crate::web_root::Linked),
}

impl State {
    fn new(config: Config) -> State {
        let root = std::sync::OnceLock::new();
        if let Ok(jail) = Jail::open(&config.document_root) {
            let _ = root.set(Arc::new(jail));
        }
        let sites = (0..config.sites.len())
            .map(|i| match config.customers.get(i) {
                Some(c) if let Some(link) = &c.web_root_link => {
                    WebRoot::Linked(crate::web_root::Linked::new(&c.home, link))
                }
                c => WebRoot::Held(
                    std::sync::OnceLock::new(),
                    Arc::from(config.sites.root(i).as_path()),
                    c.map_or_else(|| config.sites.root(i).clone(), |c| c.home.clone()),
                ),
            })
            .collect();
        let htaccess = crate::htaccess::cache::Cache::for_config(&config);
        State {
            document_root: Arc::from(config.document_root.as_path()),
            config: Arc::new(config),
            root,
            sites,
            htaccess,
        }
    }

    /// The document root's jail.
    pub fn jail(&self) -> std::io::Result<Arc<Jail>> {
        opened(&self.root, &self.config.document_root)
    }

    /// Customer `index`'s web root as one request serves it (or the document root's, for
    /// `None`): the directory held open and its path.
    pub fn site_root(&self, index: Option<usize>) -> std::io::Result<SiteRoot> {
        match index.and_then(|i| self.sites.get(i)) {
            Some(WebRoot::Held(slot, root, home)) => {
                let jail = match slot.get() {
                    Some(jail) => jail.clone(),
                    None => {
                        let opened = crate::web_root::open_plain(home, root)
                            .map_err(std::io::Error::other)?;
                        slot.get_or_init(|| opened.jail).clone()
                    }
                };
                Ok(SiteRoot {
                    jail,
                    root: root.clone(),
                })
            }
            Some(WebRoot::Linked(linked)) => linked.current().map_err(std::io::Error::other),
            None => Ok(SiteRoot {
                jail: self.jail()?,
                root: self.document_root.clone(),
            }),
        }
    }
}

/// The jail in `slot`, opened at `root` the first time it is asked for.
fn opened(slot: &std::sync::OnceLock<Arc<Jail>>, root: &Path) -> std::io::Result<Arc<Jail>> {
    if let Some(jail) = slot.get() {
        return Ok(jail.clone());
    }
    let jail = Arc::new(Jail::open(root)?);
    Ok(slot.get_or_init(|| jail).clone())
}

/// What the running server shares.
pub struct App {
    state: RwLock<Arc<State>>,
    /// The access log.
    pub access_log: Arc<AccessLog>,
    /// The customers' own logs (the error log's tracing layer shares them).
    pub customer_logs: Arc<CustomerLogs>,
    /// Script slots, sized at start.
    pub scripts: ScriptSlots,
    /// `.htaccess` Basic authentication: its user files, remembered verdicts and bans.
    pub basic_auth: Arc<crate::htaccess::auth::BasicAuth>,
    /// The certificates HTTPS handshakes pick from.
    pub tls: Arc<crate::tls::CertStore>,
    /// Where the HTTPS listener is bound, when there is one (for `force_https` redirects).
    pub https: Option<std::net::SocketAddr>,
    /// The ACME HTTP-01 challenges in flight, published by the ACME task and answered by the
    /// HTTP listener.
    pub challenges: Arc<crate::acme::Challenges>,
    /// The customers' sandboxes.
    pub sandboxes: Arc<crate::sandbox::Sandboxes>,
    /// The SFTP endpoint, when it runs.
    sftp: Option<Arc<Endpoint>>,
    source: ConfigSource,
}

impl App {
    /// The application for `config`, read from `source`, with its logs and the running SFTP
    /// endpoint.
    pub fn new(
        config: Config,
        source: ConfigSource,
        (access_log, customer_logs): (AccessLog, Arc<CustomerLogs>),
        sftp: Option<Arc<Endpoint>>,
        (tls, https): (Arc<crate::tls::CertStore>, Option<std::net::SocketAddr>),
        sandboxes: Arc<crate::sandbox::Sandboxes>,
    ) -> App {
        sandboxes.reload(&config);
        App {
            sandboxes,
            scripts: ScriptSlots::new(config.cgi.max_concurrent),
            basic_auth: Arc::new(crate::htaccess::auth::BasicAuth::new(
                crate::htaccess::auth::Limits::default(),
            )),
            state: RwLock::new(Arc::new(State::new(config))),
            access_log: Arc::new(access_log),
            customer_logs,
            challenges: Arc::default(),
            sftp,
            source,
            tls,
            https,
        }
    }

    /// The configuration and document root in force now.
    pub fn state(&self) -> Arc<State> {
        match self.state.read() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The configuration file the server reads, when there is one (the panel's account page
    /// edits a customer's entry in it, as `yadokari user` does).
    pub fn config_file(&self) -> Option<PathBuf> {
        self.source.path()
    }

    /// The SFTP endpoint, when it runs (its users and their logins).
    pub fn sftp(&self) -> Option<&Arc<Endpoint>> {
        self.sftp.as_ref()
    }

    /// The configuration in force now.
    pub fn config(&self) -> Arc<Config> {
        self.state().config.clone()
    }

    /// Reads the configuration again from where it came from (the same file, the same
    /// command-line overrides) and puts it in force; a configuration that does not load is
    /// refused with its error logged, and the old one kept.
    pub fn reload_from_source(&self, why: &str) {
        let new = match self.source.load() {
            Ok(new) => new,
            Err(e) => {
                tracing::error!(error = %e, why, "configuration not reloaded; keeping the old one");
                return;
            }
        };
        // The certificates first: a configuration naming a broken one is refused whole.
        if self.https.is_some() {
            match crate::tls::Table::load(&new) {
                Ok(table) => self.tls.replace(table),
                Err(e) => {
                    tracing::error!(error = %e, why, "configuration not reloaded; keeping the old one");
                    return;
                }
            }
        }
        self.reload(new, why);
    }

    /// Reads the certificates again when a file they came from changes on disk (a renewal, a
    /// new domain in `[tls] directory`), so that the next handshake gets the new one. A
    /// broken file is logged once and the old certificates kept. Runs until dropped.
    pub async fn watch_certificates(self: Arc<Self>) {
        if self.https.is_none() {
            return;
        }
        let mut seen = self.tls.current().stamps();
        loop {
            tokio::time::sleep(CERTIFICATES_EVERY).await;
            let table = self.tls.current();
            let now = table.stamps();
            if now == seen {
                continue;
            }
            let config = self.config();
            let loaded =
                tokio::task::spawn_blocking(move || crate::tls::Table::load(&config)).await;
            match loaded {
                Ok(Ok(table)) => {
                    seen = table.stamps();
                    self.tls.replace(table);
                    tracing::info!("certificates changed on disk; reloaded");
                }
                Ok(Err(e)) => {
                    seen = now;
                    tracing::error!(error = %e, "certificates changed on disk but cannot be read; keeping the old ones");
                }
                Err(e) => tracing::error!(error = %e, "certificate reload failed"),
            }
        }
    }

    /// Puts `new` in force for everything that starts from now on: requests, logins, the
    /// access log. Keys that only take effect at restart are named in a warning.
    pub fn reload(&self, new: Config, why: &str) {
        let old = self.config();
        for warning in new.warnings() {
            tracing::warn!("{warning}");
        }
        let later = old.restart_only_changes(&new);
        if !later.is_empty() {
            tracing::warn!(
                keys = %later.join(", "),
                "these settings changed but only take effect at the next restart"
            );
        }
        if let Err(e) = self.access_log.reopen(&new.access_log) {
            tracing::error!(error = %e, "cannot reopen the access log; keeping the old one");
        }
        if let Some(endpoint) = &self.sftp {
            crate::sftp::reload(endpoint, &old, &new);
        }
        self.customer_logs.rebuild(&new);
        self.sandboxes.reload(&new);
        let state = Arc::new(State::new(new));
        match self.state.write() {
            Ok(mut s) => *s = state,
            Err(poisoned) => *poisoned.into_inner() = state,
        }
        tracing::info!(why, "configuration reloaded");
    }

    /// SIGHUP: the configuration again, and every log reopened (the global access log is
    /// reopened by every reload; customers' files, kept open across a reload by the file
    /// watcher, are closed here so that the next line opens them afresh).
    pub fn hangup(&self) {
        crate::systemd::reloading();
        self.reload_from_source("SIGHUP");
        self.customer_logs.reopen();
        crate::systemd::ready(&self.status());
    }

    /// The service manager's status line: what is served, and the isolation in force.
    pub fn status(&self) -> String {
        let config = self.config();
        format!(
            "serving {} customer(s); {}",
            config.customers.len(),
            self.sandboxes.describe()
        )
    }

    /// SIGUSR1 (logrotate's `postrotate`): every log file the server writes is opened again at
    /// its path, the access log's buffered lines first written to the old one; nothing else
    /// changes.
    pub fn reopen_logs(&self) {
        let config = self.config();
        if let Err(e) = self.access_log.reopen(&config.access_log) {
            tracing::error!(error = %e, "cannot reopen the access log; keeping the old one");
        }
        if let Err(e) = crate::error_log::reopen() {
            tracing::error!(error = %e, "cannot reopen the error log; keeping the old one");
        }
        self.customer_logs.reopen();
        tracing::info!("logs reopened (SIGUSR1)");
    }

    /// Writes out every log's buffered lines: the global access log at once, the customers'
    /// on a blocking-pool thread (their files may need opening, rotating, and an identity).
    pub async fn flush_logs(&self) {
        self.access_log.flush();
        let customers = self.customer_logs.clone();
        let _ = tokio::task::spawn_blocking(move || customers.flush()).await;
    }

    /// Watches the configuration file and reloads when it changes, so that `yadokari user ...`
    /// edits apply to a running server without a restart or a signal. Runs until dropped.
    pub async fn watch_config_file(self: Arc<Self>) {
        let Some(path) = self.source.path() else {
            return;
        };
        let mut last = modified(&path);
        loop {
            tokio::time::sleep(WATCH_EVERY).await;
            let now = modified(&path);
            if now != last {
                last = now;
                self.reload_from_source("the configuration file changed");
            }
        }
    }
}

/// How often the certificate files' modification times are looked at.
const CERTIFICATES_EVERY: Duration = Duration::from_secs(1);

/// How often the configuration file's modification time is looked at.
const WATCH_EVERY: Duration = Duration::from_secs(2);

fn modified(path: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}
