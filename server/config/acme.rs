//! The `[acme]` section: automatic certificates (RFC 8555) for the customers' domains — which
//! ACME server, the contact it is given, the state directory the account and the certificates
//! live in (the layout the TLS listener reads: `<domain>/fullchain.pem` and
//! `<domain>/privkey.pem`), which domains take part, and when a certificate is renewed.
//!
//! Without `directory` the section is off: nothing is ordered and the HTTP listener leaves
//! `/.well-known/acme-challenge/` to the sites.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, Origin};

/// `[acme]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawAcme {
    directory: Option<String>,
    contact: Option<String>,
    state: PathBuf,
    all_domains: bool,
    ca_bundle: Option<PathBuf>,
    renew_at: f64,
    retry_min_secs: u64,
    retry_max_secs: u64,
}

impl Default for RawAcme {
    fn default() -> Self {
        RawAcme {
            directory: None,
            contact: None,
            state: PathBuf::from("certs"),
            all_domains: false,
            ca_bundle: None,
            renew_at: 2.0 / 3.0,
            retry_min_secs: 60,
            retry_max_secs: 6 * 3600,
        }
    }
}

/// `[acme]`, validated; present in the configuration only when `directory` is set.
#[derive(Clone, Debug, PartialEq)]
pub struct Acme {
    /// The ACME server's directory URL (`https://…/directory`).
    pub directory: String,
    /// The account's contact, as a `mailto:` URL.
    pub contact: Option<String>,
    /// The state directory, absolute: `.account.json` and `<domain>/{fullchain,privkey}.pem`.
    pub state: PathBuf,
    /// Every customer domain gets a certificate, not only those of customers with `acme = true`.
    pub all_domains: bool,
    /// A PEM CA certificate to trust for the ACME server itself (a test CA such as pebble's).
    pub ca_bundle: Option<PathBuf>,
    /// The fraction of a certificate's lifetime after which it is renewed.
    pub renew_at: f64,
    /// The first wait after a failed attempt; each further failure doubles it.
    pub retry_min: Duration,
    /// The longest wait between failed attempts.
    pub retry_max: Duration,
}

/// Checks the section; `None` when it is off (no `directory`).
pub(super) fn acme(raw: RawAcme, origin: &Origin) -> Result<Option<Acme>, ConfigError> {
    let Some(directory) = raw.directory.filter(|d| !d.is_empty()) else {
        return Ok(None);
    };
    if !directory.starts_with("https://") {
        return Err(origin.err(
            "acme.directory",
            format!("`{directory}` is not an https:// URL (RFC 8555 requires HTTPS)"),
        ));
    }
    let contact = match raw.contact.filter(|c| !c.is_empty()) {
        None => None,
        Some(c) if c.starts_with("mailto:") => Some(c),
        Some(c) if c.contains('@') && !c.contains(char::is_whitespace) => {
            Some(format!("mailto:{c}"))
        }
        Some(c) => {
            return Err(origin.err("acme.contact", format!("`{c}` is not an e-mail address")));
        }
    };
    if !(raw.renew_at > 0.0 && raw.renew_at < 1.0) {
        return Err(origin.err(
            "acme.renew_at",
            "must be a fraction of the certificate's lifetime, between 0 and 1 (e.g. 0.6667)",
        ));
    }
    origin.positive("acme.retry_min_secs", raw.retry_min_secs)?;
    if raw.retry_max_secs < raw.retry_min_secs {
        return Err(origin.err(
            "acme.retry_max_secs",
            "must be at least acme.retry_min_secs",
        ));
    }
    Ok(Some(Acme {
        directory,
        contact,
        state: origin.resolve(&raw.state),
        all_domains: raw.all_domains,
        ca_bundle: raw.ca_bundle.map(|p| origin.resolve(&p)),
        renew_at: raw.renew_at,
        retry_min: Duration::from_secs(raw.retry_min_secs),
        retry_max: Duration::from_secs(raw.retry_max_secs),
    }))
}
