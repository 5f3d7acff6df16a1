//! Configuration: the TOML file plus command-line overrides → one validated [`Config`], built
//! by the same function in production and in tests.
//!
//! [`raw`] mirrors the file (unknown keys are errors, so a typo is never silently ignored);
//! [`Config::load`] reads it, then validates it section by section (here for the HTTP side,
//! in [`sftp`] for the SFTP side), resolving relative paths against the file's directory and
//! naming the file, the key and the problem when something is wrong.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use raw::{RawLimits, RawServer};

mod acme;
mod cgi;
mod htaccess;
mod origin;
mod raw;
mod sandbox;
mod sftp;
mod tls;
mod users;

pub use acme::Acme;
pub use cgi::{Cgi, ScriptLimits};
pub use htaccess::Htaccess;
pub(crate) use origin::Origin;
use origin::read;
pub use sandbox::{Network, Sandbox, Shell};
pub use sftp::Settings;
pub use tls::{CertFiles, Tls};
pub use users::{Customer, Hosting, Identity, SiteGuard, unsafe_site, valid_user_name};

/// Where the config is looked for when `--config` is not given.
pub const DEFAULT_CONFIG: &str = "conf/yadokari.toml";

/// A configuration problem, naming where it is.
#[derive(Debug)]
pub struct ConfigError {
    /// The file (or `command line`).
    pub source: String,
    /// The key, dotted (`limits.max_connections`), when one is to blame.
    pub key: Option<String>,
    /// What is wrong.
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(key) => write!(f, "{}: key `{key}`: {}", self.source, self.problem),
            None => write!(f, "{}: {}", self.source, self.problem),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Values given on the command line, which win over the file.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// `--http ADDR`
    pub http: Option<String>,
    /// `--sftp ADDR`
    pub sftp: Option<String>,
    /// `--https ADDR`
    pub https: Option<String>,
    /// `--admin ADDR`
    pub admin: Option<String>,
    /// `--panel ADDR`
    pub panel: Option<String>,
    /// `--root DIR`
    pub root: Option<PathBuf>,
}

/// Where a log goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogTarget {
    /// Standard output (`-` for the access log).
    Stdout,
    /// Standard error (`-` for the error log).
    Stderr,
    /// Appended to this file.
    File(PathBuf),
    /// Not written (`off`, the access log only, as nginx's `access_log off`).
    Off,
}

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// The document root, absolute.
    pub document_root: PathBuf,
    /// HTTP listen address.
    pub http: SocketAddr,
    /// SFTP listen address.
    pub sftp: SocketAddr,
    /// HTTPS listen address; `None`: no TLS listener.
    pub https: Option<SocketAddr>,
    /// Show the reason and fix of a refusal on the error page (they always go to the log).
    pub explain_errors: bool,
    /// Access log (Combined Log Format).
    pub access_log: LogTarget,
    /// Error log.
    pub error_log: LogTarget,
    /// Error log level filter (`info`, `debug`, or a tracing filter).
    pub log_level: String,
    /// The error log's lines are JSON objects (`[server] log_format = "json"`), for log
    /// shippers; else text.
    pub log_json: bool,
    /// Where the server writes its pid once it serves (`yadokari upgrade` reads it).
    pub pid_file: Option<PathBuf>,
    /// The admin listener (`/metrics`, `/healthz`); `None`: off.
    pub admin: Option<SocketAddr>,
    /// The customers' control panel's listener; `None`: off.
    pub panel: Option<SocketAddr>,
    /// The panel's listener speaks TLS, with the HTTPS listener's certificates.
    pub panel_tls: bool,
    /// Directory index names, tried in order.
    pub index_files: Vec<String>,
    /// `[server] h2c`: the HTTP listener also speaks cleartext HTTP/2 to clients that start
    /// with its preface (prior knowledge, RFC 9113 §3.3).
    pub h2c: bool,
    /// `[server] proxy_protocol`: every connection on the HTTP, HTTPS and SFTP listeners starts
    /// with a PROXY protocol header naming the client (behind a load balancer), from the peers
    /// of `proxy_protocol_from`; `None`: off.
    pub proxy_protocol: Option<sftp_upload::proxy_protocol::Trusted>,
    /// What is compressed for clients that accept it (`[server] compress`, `compress_cgi`).
    pub compression: crate::compress::Settings,
    /// Limits.
    pub limits: Limits,
    /// CGI.
    pub cgi: Cgi,
    /// The SFTP endpoint: its settings and hosting users.
    pub sftp_settings: Settings,
    /// The configuration file's directory, absolute; `None` for the built-in defaults.
    pub source_dir: Option<PathBuf>,
    /// `[hosting]`: where homes go, identities, fair shares.
    pub hosting: Hosting,
    /// The customers (`[[users]]`), in the file's order.
    pub customers: Vec<Customer>,
    /// The customers with a declared identity, by uid (index into `customers`).
    pub by_uid: std::collections::HashMap<u32, usize>,
    /// The customers' sites: their domains and `/~name/` (see `crate::sites`); site `i` is
    /// customer `i`'s web root.
    pub sites: crate::sites::Sites,
    /// When customers' own logs are rotated (`[hosting] log_max_bytes`, `log_generations`).
    pub customer_logs: crate::customer_log::Rotation,
    /// `[htaccess]`: sites' per-directory configuration.
    pub htaccess: Htaccess,
    /// `[tls]`: the default certificate, the certificate directory, HSTS.
    pub tls: Tls,
    /// `[acme]`: automatic certificates; `None` when off.
    pub acme: Option<Acme>,
    /// `[sandbox]`: customers' shells.
    pub sandbox: Sandbox,
}

/// Every bound and cap of the HTTP side.
#[derive(Clone, Debug)]
pub struct Limits {
    /// From waiting for a request to having its whole header block.
    pub header_read_timeout: Duration,
    /// How long a kept-alive connection may sit idle between requests.
    pub keep_alive_timeout: Duration,
    /// Open connections at once; more wait in the kernel's backlog.
    pub max_connections: usize,
    /// Open connections at once from one client address; more are closed at once.
    pub max_connections_per_address: usize,
    /// Largest request header block, in bytes (431 above it).
    pub max_header_bytes: usize,
    /// Largest request body, in bytes (413 above it).
    pub max_request_body: u64,
    /// How long in-flight requests may run on after SIGINT/SIGTERM.
    pub shutdown_grace: Duration,
    /// How long the server goes on serving after SIGTERM with its health check failing, before
    /// it closes its listeners: the time a load balancer needs to notice and send new
    /// connections elsewhere (0: close at once).
    pub stop_delay: Duration,
    /// How long a response may wait for a client that does not read.
    pub send_timeout: Duration,
}

impl Config {
    /// Loads `file` (or [`DEFAULT_CONFIG`] when it exists, or the built-in defaults), applies
    /// `overrides` and validates everything.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        let file = match file {
            Some(f) => Some(f.to_path_buf()),
            None => Some(PathBuf::from(DEFAULT_CONFIG)).filter(|p| p.exists()),
        };
        let (raw, origin) = read(file)?;
        let server = raw.server;
        let (document_root, http, sftp) = places(&server, overrides, &origin)?;
        if server
            .index_files
            .iter()
            .any(|n| n.is_empty() || n.contains('/'))
        {
            return Err(origin.err("server.index_files", "each entry must be a plain file name"));
        }
        let log_level =
            log_level(&server.log_level).map_err(|p| origin.err("server.log_level", p))?;
        let log_json = match server.log_format.as_str() {
            "text" => false,
            "json" => true,
            other => {
                return Err(origin.err(
                    "server.log_format",
                    format!("`{other}` is not a log format; use \"text\" or \"json\""),
                ));
            }
        };
        let limits = limits(raw.limits, &origin)?;
        let cgi = cgi::cgi(raw.cgi, &origin)?;
        let customer_logs = rotation(&raw.hosting, &origin)?;
        let htaccess = htaccess::htaccess(raw.htaccess, &origin)?;
        let tls = tls::tls(raw.tls, &origin)?;
        let https = https(&server, overrides, &origin)?;
        let admin = optional_addr(
            overrides.admin.as_deref(),
            server.admin.as_deref(),
            "admin",
            &origin,
        )?;
        let others: Vec<SocketAddr> = [Some(http), Some(sftp), https]
            .into_iter()
            .flatten()
            .collect();
        if let Some(a) = admin {
            crate::metrics::check_address(a, &others).map_err(|p| origin.err("server.admin", p))?;
        }
        let panel = optional_addr(
            overrides.panel.as_deref(),
            server.panel.as_deref(),
            "panel",
            &origin,
        )?;
        if let Some(p) = panel {
            let others: Vec<SocketAddr> = others.iter().copied().chain(admin).collect();
            crate::metrics::check_address(p, &others).map_err(|_| {
                origin.err(
                    "server.panel",
                    format!("{p} is another listener's address; give the panel its own"),
                )
            })?;
        }
        if server.panel_tls && (panel.is_none() || https.is_none()) {
            return Err(origin.err(
                "server.panel_tls",
                "needs `panel` (the panel's address) and `https` (whose certificates it uses)",
            ));
        }
        let acme = acme::acme(raw.acme, &origin)?;
        let hosting = users::hosting(raw.hosting, &cgi, &origin)?;
        let sandbox = sandbox::sandbox(raw.sandbox, &origin)?;
        let customers = users::customers(
            &raw.users,
            &hosting,
            &cgi,
            &origin,
            (&document_root, &sandbox),
        )?;
        let proxy_protocol = match server.proxy_protocol {
            true => Some(
                sftp_upload::proxy_protocol::Trusted::parse(&server.proxy_protocol_from)
                    .map_err(|p| origin.err("server.proxy_protocol_from", p))?,
            ),
            false => None,
        };
        let sftp_settings = sftp::settings(
            raw.sftp,
            &raw.users,
            &customers,
            &origin,
            (limits.shutdown_grace, proxy_protocol.clone()),
        )?;
        let mut sites =
            sites(&customers, hosting.userdir).map_err(|p| origin.err("users.domains", p))?;
        sites.set_default(&document_root);
        Ok(Config {
            document_root,
            http,
            sftp,
            explain_errors: server.explain_errors,
            access_log: match server.access_log.as_str() {
                "off" => LogTarget::Off,
                text => log_target(text, &origin.base, LogTarget::Stdout),
            },
            error_log: log_target(&server.error_log, &origin.base, LogTarget::Stderr),
            log_level,
            log_json,
            pid_file: server.pid_file.as_ref().map(|p| origin.resolve(p)),
            admin,
            panel,
            panel_tls: server.panel_tls,
            index_files: server.index_files,
            h2c: server.h2c,
            proxy_protocol,
            compression: crate::compress::Settings {
                static_files: server.compress,
                cgi: server.compress_cgi,
            },
            limits,
            cgi,
            sftp_settings,
            source_dir: origin.file.as_ref().map(|_| origin.base.clone()),
            by_uid: customers
                .iter()
                .enumerate()
                .filter_map(|(i, c)| c.identity.map(|id| (id.uid, i)))
                .collect(),
            hosting,
            customers,
            sites,
            customer_logs,
            htaccess,
            tls,
            https,
            acme,
            sandbox,
        })
    }

    /// What is allowed but probably wrong, to be logged at start and at every reload: a
    /// handler whose interpreter is not installed (yet: the package may come later).
    pub fn warnings(&self) -> Vec<String> {
        self.cgi
            .handlers
            .iter()
            .filter(|(_, interp)| !interp.is_file())
            .map(|(ext, interp)| {
                format!(
                    "cgi.handlers: {} (for `{ext}` files) is not installed; those files will fail with a 500 until it is",
                    interp.display()
                )
            })
            .collect()
    }

    /// The domains that want a certificate from ACME, in the customers' order: every
    /// customer's with `all_domains`, otherwise those of customers with `acme = true`.
    /// Wildcards are included; the ACME task skips them (they need DNS-01).
    pub fn acme_domains(&self) -> Vec<&str> {
        let Some(acme) = &self.acme else {
            return Vec::new();
        };
        self.customers
            .iter()
            .filter(|c| acme.all_domains || c.acme)
            .flat_map(|c| c.domains.iter().map(String::as_str))
            .collect()
    }

    /// The keys whose new values in `new` this running server cannot apply: they take effect
    /// at the next start. A reload names them in a warning instead of ignoring them silently.
    pub fn restart_only_changes(&self, new: &Config) -> Vec<&'static str> {
        let (old_sftp, new_sftp) = (&self.sftp_settings, &new.sftp_settings);
        let (ol, nl) = (&old_sftp.limits, &new_sftp.limits);
        [
            ("server.http", self.http != new.http),
            ("server.sftp", self.sftp != new.sftp),
            ("server.https", self.https != new.https),
            ("server.admin", self.admin != new.admin),
            ("server.error_log", self.error_log != new.error_log),
            ("server.log_level", self.log_level != new.log_level),
            ("server.log_format", self.log_json != new.log_json),
            ("server.pid_file", self.pid_file != new.pid_file),
            (
                "limits.max_connections",
                self.limits.max_connections != new.limits.max_connections,
            ),
            (
                "cgi.max_concurrent",
                self.cgi.max_concurrent != new.cgi.max_concurrent,
            ),
            ("sftp.host_key", old_sftp.host_key != new_sftp.host_key),
            (
                "sftp.max_connections",
                ol.max_connections != nl.max_connections,
            ),
            ("sftp.max_auth_failures", ol.max_failures != nl.max_failures),
            (
                "sftp.failure_window_secs",
                ol.failure_window != nl.failure_window,
            ),
            ("sftp.ban_secs", ol.ban != nl.ban),
        ]
        .into_iter()
        .filter_map(|(key, changed)| changed.then_some(key))
        .collect()
    }
}

/// The document root and the listen addresses, each from the command line when given there.
fn places(
    server: &RawServer,
    overrides: &Overrides,
    origin: &Origin,
) -> Result<(PathBuf, SocketAddr, SocketAddr), ConfigError> {
    let cli = |key: &str, problem: String| ConfigError {
        source: "command line".into(),
        key: Some(key.to_string()),
        problem,
    };
    let document_root = match &overrides.root {
        // `--root` is relative to where the command runs, not to the file.
        Some(root) => existing_dir(&std::path::absolute(root).unwrap_or_else(|_| root.clone()))
            .map_err(|p| cli("--root", p))?,
        None => existing_dir(&origin.resolve(&server.document_root))
            .map_err(|p| origin.err("server.document_root", p))?,
    };
    let http = match &overrides.http {
        Some(a) => parse_addr(a).map_err(|p| cli("--http", p))?,
        None => parse_addr(&server.http).map_err(|p| origin.err("server.http", p))?,
    };
    let sftp = match &overrides.sftp {
        Some(a) => parse_addr(a).map_err(|p| cli("--sftp", p))?,
        None => parse_addr(&server.sftp).map_err(|p| origin.err("server.sftp", p))?,
    };
    Ok((document_root, http, sftp))
}

/// The HTTPS listen address, from the command line when given there; `None` when neither
/// asks for one.
fn https(
    server: &RawServer,
    overrides: &Overrides,
    origin: &Origin,
) -> Result<Option<SocketAddr>, ConfigError> {
    match (&overrides.https, &server.https) {
        (Some(a), _) => parse_addr(a).map(Some).map_err(|problem| ConfigError {
            source: "command line".into(),
            key: Some("--https".into()),
            problem,
        }),
        (None, Some(a)) => parse_addr(a)
            .map(Some)
            .map_err(|p| origin.err("server.https", p)),
        (None, None) => Ok(None),
    }
}

/// The `[limits]` section, checked.
fn limits(l: RawLimits, origin: &Origin) -> Result<Limits, ConfigError> {
    origin.positive(
        "limits.header_read_timeout_secs",
        l.header_read_timeout_secs,
    )?;
    origin.positive("limits.keep_alive_timeout_secs", l.keep_alive_timeout_secs)?;
    origin.positive("limits.max_connections", l.max_connections as u64)?;
    origin.positive(
        "limits.max_connections_per_address",
        l.max_connections_per_address as u64,
    )?;
    origin.positive("limits.send_timeout_secs", l.send_timeout_secs)?;
    if l.max_header_bytes < 8192 {
        return Err(origin.err("limits.max_header_bytes", "must be at least 8192"));
    }
    Ok(Limits {
        header_read_timeout: Duration::from_secs(l.header_read_timeout_secs),
        keep_alive_timeout: Duration::from_secs(l.keep_alive_timeout_secs),
        max_connections: l.max_connections,
        max_connections_per_address: l.max_connections_per_address,
        max_header_bytes: l.max_header_bytes,
        max_request_body: l.max_request_body_bytes,
        shutdown_grace: Duration::from_secs(l.shutdown_grace_secs),
        stop_delay: Duration::from_secs(l.stop_delay_secs),
        send_timeout: Duration::from_secs(l.send_timeout_secs),
    })
}

/// The customers' sites: each customer's web root, reached by their domains and `/~name/`.
fn sites(customers: &[Customer], userdir: bool) -> Result<crate::sites::Sites, String> {
    let mut sites = crate::sites::Sites::new(userdir);
    for c in customers {
        sites.add(&c.name, c.web_root.clone(), &c.domains)?;
    }
    Ok(sites)
}

/// `[hosting] log_max_bytes` and `log_generations`, checked.
fn rotation(
    h: &raw::RawHosting,
    origin: &Origin,
) -> Result<crate::customer_log::Rotation, ConfigError> {
    origin.positive("hosting.log_max_bytes", h.log_max_bytes)?;
    origin.positive("hosting.log_generations", u64::from(h.log_generations))?;
    if h.log_generations > crate::customer_log::MAX_GENERATIONS {
        let most = crate::customer_log::MAX_GENERATIONS;
        return Err(origin.err("hosting.log_generations", format!("must be at most {most}")));
    }
    Ok(crate::customer_log::Rotation {
        max_bytes: h.log_max_bytes,
        generations: h.log_generations,
    })
}

/// The levels `server.log_level` takes, alone or per target (`info,hyper=debug`).
const LEVELS: [&str; 6] = ["error", "warn", "info", "debug", "trace", "off"];

/// `server.log_level`: a level, or comma-separated `level` / `target=level` directives; a word
/// that is not a level (`verbose`, `warning`) would silently turn the log off for everything
/// but a target of that name, so it is an error.
fn log_level(text: &str) -> Result<String, String> {
    let bad = |d: &str| {
        format!(
            "`{d}` is not a log level; use one of {} (or target=level)",
            LEVELS.join(", ")
        )
    };
    for directive in text.split(',').map(str::trim) {
        let level = directive.rsplit('=').next().unwrap_or(directive);
        let target_ok = directive
            .split_once('=')
            .is_none_or(|(target, _)| !target.is_empty());
        if !LEVELS.contains(&level.to_ascii_lowercase().as_str()) || !target_ok {
            return Err(bad(directive));
        }
    }
    Ok(text.to_string())
}

fn existing_dir(path: &Path) -> Result<PathBuf, String> {
    match std::fs::canonicalize(path) {
        Ok(p) if p.is_dir() => Ok(p),
        Ok(p) => Err(format!("{} is not a directory", p.display())),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// The address of an optional listener `name` (`admin`, `panel`): `--NAME` wins over
/// `[server] NAME`; `None` when neither is given.
fn optional_addr(
    overridden: Option<&str>,
    written: Option<&str>,
    name: &str,
    origin: &Origin,
) -> Result<Option<SocketAddr>, ConfigError> {
    match (overridden, written) {
        (Some(a), _) => parse_addr(a).map(Some).map_err(|problem| ConfigError {
            source: "command line".into(),
            key: Some(format!("--{name}")),
            problem,
        }),
        (None, Some(a)) => parse_addr(a)
            .map(Some)
            .map_err(|p| origin.err(&format!("server.{name}"), p)),
        (None, None) => Ok(None),
    }
}

fn parse_addr(text: &str) -> Result<SocketAddr, String> {
    text.parse()
        .map_err(|_| format!("`{text}` is not an address like 127.0.0.1:8080 or [::1]:0"))
}

fn log_target(text: &str, base: &Path, dash: LogTarget) -> LogTarget {
    match text {
        "-" | "" => dash,
        path => LogTarget::File(base.join(path)),
    }
}

#[cfg(test)]
mod tests;
