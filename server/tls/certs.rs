//! Which certificate a TLS handshake gets, by the name the client asks for (SNI).
//!
//! A [`Table`] is read from the files a configuration names, all at once, so that a missing
//! file or a key that does not belong to its certificate is an error naming the file before
//! anything is served with it. For a name, in order: the certificate of the customer whose
//! site the name routes to (`tls_certificate`, exact domains and `*.` wildcards as
//! `crate::sites` routes requests), then `[tls] directory`'s `<name>/` (and, for a wildcard,
//! `_wildcard.<parent>/`, since `*` is an awkward file name), then what ACME obtained (`[acme]
//! state`, the same layout; `crate::acme`), then the default.
//!
//! The [`CertStore`] holds the table in force; the handshake only reads it (no file I/O on
//! the handshake path). A watcher (`watch`) re-reads the table when a file it was made from
//! changes, and every configuration reload makes a new one.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;

use crate::config::{CertFiles, Config};
use crate::sites::{Route, Sites};

/// A certificate or key that cannot be used, naming the file.
#[derive(Debug)]
pub struct CertError {
    /// The file to blame.
    pub file: PathBuf,
    /// What is wrong with it.
    pub problem: String,
}

impl fmt::Display for CertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file.display(), self.problem)
    }
}

impl std::error::Error for CertError {}

/// The file names inside `[tls] directory`'s per-domain directories (what ACME clients such
/// as certbot write).
pub const CHAIN_FILE: &str = "fullchain.pem";
/// See [`CHAIN_FILE`].
pub const KEY_FILE: &str = "privkey.pem";
/// How a wildcard `*.example.org` is named in the directory.
pub const WILDCARD_PREFIX: &str = "_wildcard.";

/// The certificates of one configuration.
pub struct Table {
    default: Option<Arc<CertifiedKey>>,
    /// By customer index.
    customers: Vec<Option<Arc<CertifiedKey>>>,
    /// `[tls] directory`'s entries, by directory name (lowercase).
    directory: HashMap<String, Arc<CertifiedKey>>,
    sites: Sites,
    /// Every path the table was read from, to notice a change.
    watched: Vec<PathBuf>,
}

impl Table {
    /// An empty table (no HTTPS listener): every handshake fails.
    pub fn empty() -> Table {
        Table {
            default: None,
            customers: Vec::new(),
            directory: HashMap::new(),
            sites: Sites::default(),
            watched: Vec::new(),
        }
    }

    /// Reads every certificate `config` names. A pair named in the configuration must load;
    /// a broken entry of the directory (an ACME client may be writing it) is logged and left
    /// out, so that one customer's half-written certificate never takes the others down.
    pub fn load(config: &Config) -> Result<Table, CertError> {
        let provider = provider();
        let mut watched = Vec::new();
        let mut read = |files: &CertFiles| {
            watched.push(files.certificate.clone());
            watched.push(files.key.clone());
            pair(files, &provider).map(Arc::new)
        };
        let default = config.tls.default.as_ref().map(&mut read).transpose()?;
        let customers = config
            .customers
            .iter()
            .map(|c| c.tls.as_ref().map(&mut read).transpose())
            .collect::<Result<Vec<_>, _>>()?;
        let mut directory = match &config.tls.directory {
            Some(dir) => directory(dir, &provider, &mut watched),
            None => HashMap::new(),
        };
        if let Some(acme) = &config.acme {
            // ACME makes its state directory at its first round: watched, it is read once made.
            // Certificates put in `[tls] directory` by hand win over those ACME obtained.
            let obtained = match acme.state.exists() {
                true => self::directory(&acme.state, &provider, &mut watched),
                false => {
                    watched.push(acme.state.clone());
                    HashMap::new()
                }
            };
            for (name, key) in obtained {
                directory.entry(name).or_insert(key);
            }
        }
        Ok(Table {
            default,
            customers,
            directory,
            sites: config.sites.clone(),
            watched,
        })
    }

    /// The modification times of the files the table was read from, now.
    pub fn stamps(&self) -> Vec<Option<SystemTime>> {
        self.watched.iter().map(|p| modified(p)).collect()
    }

    /// Each DNS name the certificates in force cover (their subject alternative names), with
    /// the moment its certificate expires; a name covered twice is given the later expiry.
    pub fn expiries(&self) -> Vec<(String, SystemTime)> {
        let mut by_name: HashMap<String, SystemTime> = HashMap::new();
        let keys = self
            .default
            .iter()
            .chain(self.customers.iter().flatten())
            .chain(self.directory.values());
        for key in keys {
            let Some(leaf) = key.cert.first() else {
                continue;
            };
            let Ok((_, cert)) = x509_parser::parse_x509_certificate(leaf.as_ref()) else {
                continue;
            };
            let Ok(seconds) = u64::try_from(cert.validity().not_after.timestamp()) else {
                continue;
            };
            let expiry = UNIX_EPOCH + Duration::from_secs(seconds);
            let names = cert
                .subject_alternative_name()
                .ok()
                .flatten()
                .map(|san| {
                    san.value
                        .general_names
                        .iter()
                        .filter_map(|n| match n {
                            x509_parser::extensions::GeneralName::DNSName(d) => {
                                Some(d.to_ascii_lowercase())
                            }
                            _ => None,
                        })
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default();
            for name in names {
                let slot = by_name.entry(name).or_insert(expiry);
                *slot = (*slot).max(expiry);
            }
        }
        let mut out: Vec<_> = by_name.into_iter().collect();
        out.sort();
        out
    }

    /// The certificate for `name` (the client's SNI), or the default.
    fn pick(&self, name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let Some(name) = name.map(|n| n.trim_end_matches('.').to_ascii_lowercase()) else {
            return self.default.clone();
        };
        if let Route::Domain(i) = self.sites.route(|| Some(name.as_str()), "/")
            && let Some(Some(key)) = self.customers.get(i)
        {
            return Some(key.clone());
        }
        if let Some(key) = self.directory.get(&name) {
            return Some(key.clone());
        }
        if let Some((_, parent)) = name.split_once('.')
            && let Some(key) = self.directory.get(&format!("{WILDCARD_PREFIX}{parent}"))
        {
            return Some(key.clone());
        }
        self.default.clone()
    }
}

/// The cryptography everything uses: aws-lc-rs, which the SSH side (russh) builds anyway,
/// and which offers post-quantum key exchange (X25519MLKEM768) where ring has none.
///
/// AES-128-GCM with SHA-256 comes first (the server's order wins, see `super::acceptor`):
/// a handshake's key schedule is a few dozen HMACs, which SHA-256 computes with the CPU's SHA
/// instructions where SHA-384 (AES-256's TLS 1.3 suite) has none; it was a fifth of the CPU
/// time of new connections. AES-128 is what Mozilla's "intermediate" configuration and most
/// large sites prefer too.
pub fn provider() -> CryptoProvider {
    use tokio_rustls::rustls::CipherSuite;
    let mut provider = tokio_rustls::rustls::crypto::aws_lc_rs::default_provider();
    provider.cipher_suites.sort_by_key(|s| {
        !matches!(
            s.suite(),
            CipherSuite::TLS13_AES_128_GCM_SHA256
                | CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
                | CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
        )
    });
    provider
}

/// One certificate chain and its key, checked to belong together.
fn pair(files: &CertFiles, provider: &CryptoProvider) -> Result<CertifiedKey, CertError> {
    let at = |file: &Path, problem: String| CertError {
        file: file.to_path_buf(),
        problem,
    };
    let chain = CertificateDer::pem_file_iter(&files.certificate)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            at(
                &files.certificate,
                format!("cannot read a PEM certificate: {e}"),
            )
        })?;
    if chain.is_empty() {
        let problem = "holds no CERTIFICATE block".to_string();
        return Err(at(&files.certificate, problem));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| at(&files.key, format!("cannot read a PEM private key: {e}")))?;
    CertifiedKey::from_der(chain, key, provider).map_err(|e| {
        let problem = format!("is not the key of {} ({e})", files.certificate.display());
        at(&files.key, problem)
    })
}

/// `[tls] directory`: each `<domain>/` with both files; the directory and each entry are
/// watched, so that a new domain or a file renamed into place is noticed.
fn directory(
    dir: &Path,
    provider: &CryptoProvider,
    watched: &mut Vec<PathBuf>,
) -> HashMap<String, Arc<CertifiedKey>> {
    watched.push(dir.to_path_buf());
    let mut found = HashMap::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot read the certificate directory; its certificates are not served");
            return found;
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_ascii_lowercase) else {
            continue;
        };
        if !path.is_dir() || name.starts_with('.') {
            continue;
        }
        let files = CertFiles {
            certificate: path.join(CHAIN_FILE),
            key: path.join(KEY_FILE),
        };
        watched.extend([path.clone(), files.certificate.clone(), files.key.clone()]);
        match pair(&files, provider) {
            Ok(key) => {
                found.insert(name, Arc::new(key));
            }
            Err(e) => {
                tracing::warn!(error = %e, "certificate left out; the default is served for {name}")
            }
        }
    }
    found
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The certificate table in force, which handshakes read.
pub struct CertStore {
    table: RwLock<Arc<Table>>,
}

impl CertStore {
    /// A store serving `table`.
    pub fn new(table: Table) -> CertStore {
        CertStore {
            table: RwLock::new(Arc::new(table)),
        }
    }

    /// The table in force.
    pub fn current(&self) -> Arc<Table> {
        match self.table.read() {
            Ok(t) => t.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Puts `table` in force for the handshakes that start from now on.
    pub fn replace(&self, table: Table) {
        let table = Arc::new(table);
        match self.table.write() {
            Ok(mut t) => *t = table,
            Err(poisoned) => *poisoned.into_inner() = table,
        }
    }
}

impl fmt::Debug for CertStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CertStore")
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let key = self.current().pick(hello.server_name());
        if key.is_none() {
            // Debug: scanners ask for names nobody serves all day long.
            tracing::debug!(
                name = hello.server_name().unwrap_or("(none)"),
                "TLS handshake refused: no certificate for this name and no [tls] certificate"
            );
        }
        key
    }
}
