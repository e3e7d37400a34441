//! A device's key and certificate request, made where the key will live
//! (`petrel device provision` on the operator's machine): the controller
//! only ever sees the request.

use crate::TlsError;
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};

/// A private key (PEM) and the CSR (PEM) asking a certificate for it.
pub struct KeyAndCsr {
    pub key_pem: String,
    pub csr_pem: String,
}

/// A new key and a CSR naming `identity`.
pub fn new_key_and_csr(identity: &str) -> Result<KeyAndCsr, TlsError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, identity);
    params.distinguished_name = dn;
    let csr = params.serialize_request(&key)?;
    Ok(KeyAndCsr {
        key_pem: key.serialize_pem(),
        csr_pem: csr.pem()?,
    })
}
