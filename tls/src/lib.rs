//! TLS for Petrel: the fleet's certificate authority (create, issue server
//! and device certificates from CSRs, certificate revocation lists), the
//! rustls configurations of servers and clients, and the identity a peer's
//! certificate carries.
//!
//! A device's identity is its certificate's subject common name; it must
//! equal its device id and its MQTT client id. rustls runs with the `ring`
//! provider only, chosen explicitly so no process-wide default is needed.

mod config;
mod csr;
mod files;
mod identity;
mod pki;

pub use config::{client_config, server_config, ClientAuth};
pub use csr::{new_key_and_csr, KeyAndCsr};
pub use files::{read_pem, write_public, write_secret};
pub use identity::{peer_certificate, PeerCertificate};
pub use pki::{Ca, Issued, ServerNames};
pub use rustls;
pub use tokio_rustls;

use std::path::PathBuf;

/// Why a TLS or PKI operation failed, naming the file or identity.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what}: {reason}")]
    Pem { what: String, reason: String },
    #[error("certificate: {0}")]
    Certificate(String),
    #[error("TLS configuration: {0}")]
    Config(String),
}

impl From<rcgen::Error> for TlsError {
    fn from(e: rcgen::Error) -> Self {
        TlsError::Certificate(e.to_string())
    }
}

impl From<rustls::Error> for TlsError {
    fn from(e: rustls::Error) -> Self {
        TlsError::Config(e.to_string())
    }
}
