//! The identity (subject common name) and serial of a peer's certificate,
//! read after rustls has verified the chain.

use crate::TlsError;
use x509_parser::prelude::{FromDer, X509Certificate};

/// What a verified peer certificate says about its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCertificate {
    /// The subject's common name: a device id, or the controller's name.
    pub identity: String,
    /// Hex serial number, as the CA recorded it.
    pub serial: String,
}

/// Reads the identity of a DER certificate; an error if it has no single
/// UTF-8 common name.
pub fn peer_certificate(der: &[u8]) -> Result<PeerCertificate, TlsError> {
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|e| TlsError::Certificate(format!("peer certificate: {e}")))?;
    let mut names = cert.subject().iter_common_name();
    let identity = match (names.next(), names.next()) {
        (Some(cn), None) => cn
            .as_str()
            .map_err(|_| TlsError::Certificate("peer common name is not text".into()))?
            .to_string(),
        _ => {
            return Err(TlsError::Certificate(
                "peer certificate must have exactly one common name".into(),
            ))
        }
    };
    let raw = cert.raw_serial();
    // DER integers may carry a leading zero byte for sign
    let raw = match raw {
        [0, rest @ ..] if !rest.is_empty() => rest,
        other => other,
    };
    Ok(PeerCertificate {
        identity,
        serial: hex::encode(raw),
    })
}
