//! The `[tls]` section: the default certificate (served to names no customer's certificate
//! covers), the directory of certificates by domain (where the ACME client writes), and the
//! HSTS default. The files themselves are read by `crate::tls`, at start and at each reload,
//! so that a missing or mismatched pair is an error naming the file before anything serves it.

use std::path::PathBuf;

use serde::Deserialize;

use super::{ConfigError, Origin};

/// `[tls]` as written.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawTls {
    certificate: Option<PathBuf>,
    key: Option<PathBuf>,
    directory: Option<PathBuf>,
    hsts_max_age: Option<u64>,
}

/// A certificate chain and its private key, both PEM files, absolute.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertFiles {
    /// The chain, the server's certificate first.
    pub certificate: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// `[tls]`, validated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tls {
    /// The default certificate; without one, a name no other certificate covers fails the
    /// handshake.
    pub default: Option<CertFiles>,
    /// `<domain>/fullchain.pem` and `<domain>/privkey.pem` for each domain (a wildcard
    /// `*.example.org` as `_wildcard.example.org`), absolute.
    pub directory: Option<PathBuf>,
    /// `Strict-Transport-Security: max-age=N` on HTTPS responses, unless a customer says
    /// otherwise; `None`: no header.
    pub hsts_max_age: Option<u64>,
}

/// Checks the section: a certificate needs its key and the other way round.
pub(super) fn tls(raw: RawTls, origin: &Origin) -> Result<Tls, ConfigError> {
    let default = pair(raw.certificate, raw.key, origin)
        .map_err(|(key, problem)| origin.err(&format!("tls.{key}"), problem))?;
    Ok(Tls {
        default,
        directory: raw.directory.map(|d| origin.resolve(&d)),
        hsts_max_age: raw.hsts_max_age,
    })
}

/// A certificate and key given together, resolved against the file's directory; on a lone
/// half, the missing key's name and the problem.
pub(super) fn pair(
    certificate: Option<PathBuf>,
    key: Option<PathBuf>,
    origin: &Origin,
) -> Result<Option<CertFiles>, (&'static str, String)> {
    match (certificate, key) {
        (None, None) => Ok(None),
        (Some(c), Some(k)) => Ok(Some(CertFiles {
            certificate: origin.resolve(&c),
            key: origin.resolve(&k),
        })),
        (Some(_), None) => Err(("key", "a certificate needs its key".into())),
        (None, Some(_)) => Err(("certificate", "a key needs its certificate".into())),
    }
}
