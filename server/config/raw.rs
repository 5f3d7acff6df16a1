//! The configuration file as written: one struct per TOML section, every key with its default
//! (the values `conf/yadokari.toml` documents). Unknown keys are errors (`deny_unknown_fields`),
//! so a typo is never silently ignored. Nothing here is checked; [`super::Config::load`]
//! validates.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

/// The whole file.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawConfig {
    pub(super) server: RawServer,
    pub(super) limits: RawLimits,
    pub(super) cgi: RawCgi,
    pub(super) sftp: super::sftp::RawSftp,
    pub(super) users: Vec<super::users::RawUser>,
    pub(super) hosting: RawHosting,
    pub(super) htaccess: super::htaccess::RawHtaccess,
    pub(super) tls: super::tls::RawTls,
    pub(super) acme: super::acme::RawAcme,
    pub(super) sandbox: super::sandbox::RawSandbox,
}

/// `[hosting]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawHosting {
    pub(super) userdir: bool,
    pub(super) homes: Option<PathBuf>,
    pub(super) web_root: String,
    pub(super) uid_range: Option<[u32; 2]>,
    pub(super) max_scripts_per_user: usize,
    pub(super) log_max_bytes: u64,
    pub(super) log_generations: u32,
}

impl Default for RawHosting {
    fn default() -> Self {
        RawHosting {
            userdir: true,
            homes: None,
            web_root: "public_html".into(),
            uid_range: None,
            max_scripts_per_user: 16,
            log_max_bytes: 10 * 1024 * 1024,
            log_generations: 5,
        }
    }
}

/// `[server]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawServer {
    pub(super) document_root: PathBuf,
    pub(super) http: String,
    pub(super) sftp: String,
    pub(super) https: Option<String>,
    pub(super) explain_errors: bool,
    pub(super) access_log: String,
    pub(super) error_log: String,
    pub(super) log_level: String,
    pub(super) index_files: Vec<String>,
    pub(super) compress: bool,
    pub(super) compress_cgi: bool,
    pub(super) h2c: bool,
    pub(super) proxy_protocol: bool,
    pub(super) proxy_protocol_from: Vec<String>,
    pub(super) pid_file: Option<PathBuf>,
    pub(super) admin: Option<String>,
    pub(super) panel: Option<String>,
    pub(super) panel_tls: bool,
    pub(super) log_format: String,
}

impl Default for RawServer {
    fn default() -> Self {
        RawServer {
            document_root: PathBuf::from("htdocs"),
            http: "127.0.0.1:8080".into(),
            sftp: "127.0.0.1:2222".into(),
            https: None,
            explain_errors: false,
            access_log: "-".into(),
            error_log: "-".into(),
            log_level: "info".into(),
            index_files: vec!["index.html".into(), "index.htm".into(), "index.cgi".into()],
            compress: true,
            compress_cgi: false,
            h2c: false,
            proxy_protocol: false,
            proxy_protocol_from: Vec::new(),
            pid_file: None,
            admin: None,
            panel: None,
            panel_tls: false,
            log_format: "text".into(),
        }
    }
}

/// `[limits]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawLimits {
    pub(super) header_read_timeout_secs: u64,
    pub(super) keep_alive_timeout_secs: u64,
    pub(super) max_connections: usize,
    pub(super) max_connections_per_address: usize,
    pub(super) max_header_bytes: usize,
    pub(super) max_request_body_bytes: u64,
    pub(super) shutdown_grace_secs: u64,
    pub(super) stop_delay_secs: u64,
    pub(super) send_timeout_secs: u64,
}

impl Default for RawLimits {
    fn default() -> Self {
        RawLimits {
            header_read_timeout_secs: 20,
            keep_alive_timeout_secs: 5,
            max_connections: 1024,
            max_connections_per_address: 256,
            max_header_bytes: 16 * 1024,
            max_request_body_bytes: 100 * 1024 * 1024,
            shutdown_grace_secs: 10,
            stop_delay_secs: 0,
            send_timeout_secs: 60,
        }
    }
}

/// `[cgi]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawCgi {
    pub(super) directories: Vec<String>,
    pub(super) extensions: Vec<String>,
    pub(super) handlers: BTreeMap<String, PathBuf>,
    pub(super) pass_authorization: bool,
    pub(super) header_timeout_secs: u64,
    pub(super) run_timeout_secs: u64,
    pub(super) max_concurrent: usize,
    pub(super) queue_wait_ms: u64,
    pub(super) max_header_bytes: usize,
    pub(super) min_uid: u32,
    pub(super) fallback_user: String,
    pub(super) limit_cpu_secs: u64,
    pub(super) limit_memory_bytes: u64,
    pub(super) limit_open_files: u64,
    pub(super) limit_processes: u64,
}

impl Default for RawCgi {
    fn default() -> Self {
        RawCgi {
            directories: vec!["/cgi-bin/".into()],
            extensions: vec![".cgi".into()],
            handlers: BTreeMap::new(),
            pass_authorization: false,
            header_timeout_secs: 30,
            run_timeout_secs: 60,
            max_concurrent: 64,
            queue_wait_ms: 2000,
            max_header_bytes: 64 * 1024,
            min_uid: 1000,
            fallback_user: "nobody".into(),
            limit_cpu_secs: 30,
            limit_memory_bytes: 1024 * 1024 * 1024,
            limit_open_files: 256,
            limit_processes: 1024,
        }
    }
}
