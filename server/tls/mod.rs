//! HTTPS: the rustls server configuration (TLS 1.2 and 1.3, ALPN `h2` then `http/1.1`, the
//! certificate picked by SNI in [`certs`]) and one TLS connection ([`connection`]).
//!
//! Why rustls with aws-lc-rs: no OpenSSL to link or keep patched, the cryptography the SSH side
//! already builds, and the fastest handshakes of the providers (see `certs::provider`). The listener hands accepted TLS connections to [`connection::serve`]; plain
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
    acceptor_for(store, &ALPN)
}

/// An acceptor like [`acceptor`]'s offering only the protocols `alpn` (the control panel
/// speaks HTTP/1.1 alone).
pub fn acceptor_for(store: Arc<CertStore>, alpn: &[&[u8]]) -> Result<TlsAcceptor, rustls::Error> {
    let config = ServerConfig::builder_with_provider(Arc::new(certs::provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(store);
    let mut config = config;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    // Resumption without server state: a returning client (a browser's next connection)
    // skips the certificate signature. Ticket keys are random per process and rotate every
    // six hours (rustls's Ticketer), as nginx's default tickets; the memory cache rustls keeps
    // by default (256 sessions) serves the clients that ask for session IDs instead.
    config.ticketer = rustls::crypto::aws_lc_rs::Ticketer::new()?;
    // One ticket per connection, as a browser uses one per connection it opens (rustls sends
    // two by default, each an encryption and a key derivation more per handshake).
    config.send_tls13_tickets = 1;
    config.ignore_client_order = true;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
