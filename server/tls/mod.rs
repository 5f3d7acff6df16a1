//! HTTPS: the rustls server configuration (TLS 1.2 and 1.3, ALPN `h2` then `http/1.1`, the
//! certificate picked by SNI in [`certs`]) and one TLS connection ([`connection`]).
//!
//! Why rustls with ring: no OpenSSL to link or keep patched, and ring builds quickest of the
//! providers here. The listener hands accepted TLS connections to [`connection::serve`]; plain
//! ones never come here, so HTTP/1.1 over TCP stays exactly as it was.

use std::sync::Arc;

use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::{self, ServerConfig};

pub mod certs;
pub mod connection;
mod plain;

pub use certs::{CertStore, Table};

/// The ALPN protocols offered, most preferred first.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// The acceptor every TLS connection goes through, with certificates from `store`.
pub fn acceptor(store: Arc<CertStore>) -> Result<TlsAcceptor, rustls::Error> {
    let config = ServerConfig::builder_with_provider(Arc::new(certs::provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(store);
    let mut config = config;
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(TlsAcceptor::from(Arc::new(config)))
}
