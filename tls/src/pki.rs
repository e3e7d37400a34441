//! The fleet certificate authority: created once (`petrel ca init`), it
//! issues the controller's server certificate, the controller's client
//! certificate (for an external broker) and one certificate per device,
//! signed from the device's CSR so the device key never leaves the machine
//! that made it. Revoked serials become a CRL (what Mosquitto reads).

use crate::TlsError;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams,
    CertificateSigningRequestParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyIdMethod, KeyPair, KeyUsagePurpose, PublicKeyData, RevokedCertParams, SanType, SerialNumber,
};
use std::net::IpAddr;
use time::{Duration, OffsetDateTime};

/// A CA certificate with its key.
pub struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
    /// The CA certificate as it was written (what peers trust).
    pub cert_pem: String,
}

/// A certificate the CA issued.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert_pem: String,
    /// Hex serial number (what a CRL and the revocation list name).
    pub serial: String,
}

/// The names a server certificate is valid for.
#[derive(Debug, Clone, Default)]
pub struct ServerNames {
    pub dns: Vec<String>,
    pub ips: Vec<IpAddr>,
}

const CA_YEARS: i64 = 20;
/// Device and controller certificates: devices are not re-provisioned
/// often in the field; revocation, not expiry, ends a stolen device's
/// access.
const LEAF_YEARS: i64 = 10;

fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f; // a positive INTEGER
    bytes[0] |= 0x01; // and no leading zero byte to be trimmed
    SerialNumber::from(bytes.to_vec())
}

fn serial_hex(s: &SerialNumber) -> String {
    hex::encode(s.as_ref())
}

fn dn(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Petrel fleet");
    dn.push(DnType::CommonName, common_name);
    dn
}

fn validity(params: &mut CertificateParams, years: i64) {
    let now = OffsetDateTime::now_utc();
    params.not_before = now - Duration::hours(1);
    params.not_after = now + Duration::days(365 * years);
}

impl Ca {
    /// A new CA named `name`.
    pub fn generate(name: &str) -> Result<Ca, TlsError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.serial_number = Some(random_serial());
        validity(&mut params, CA_YEARS);
        let cert = params.self_signed(&key)?;
        let cert_pem = cert.pem();
        Ok(Ca {
            cert,
            key,
            cert_pem,
        })
    }

    /// The CA from its certificate and key (PEM).
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Ca, TlsError> {
        let key = KeyPair::from_pem(key_pem).map_err(|e| TlsError::Pem {
            what: "CA key".into(),
            reason: e.to_string(),
        })?;
        let params = CertificateParams::from_ca_cert_pem(cert_pem).map_err(|e| TlsError::Pem {
            what: "CA certificate".into(),
            reason: e.to_string(),
        })?;
        // an issuer only needs the CA's name and key: re-signing the
        // parsed parameters gives rcgen its issuer object
        let cert = params.self_signed(&key)?;
        Ok(Ca {
            cert,
            key,
            cert_pem: cert_pem.to_string(),
        })
    }

    /// The CA's private key (PEM), to be written with [`crate::write_secret`].
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// A server certificate and its new key for `names`; `identity` is
    /// its common name (and its identity when it is also used as a client).
    pub fn issue_server(
        &self,
        identity: &str,
        names: &ServerNames,
    ) -> Result<(Issued, String), TlsError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        for name in &names.dns {
            let dns = name
                .clone()
                .try_into()
                .map_err(|_| TlsError::Certificate(format!("{name:?} is not a DNS name")))?;
            params.subject_alt_names.push(SanType::DnsName(dns));
        }
        for ip in &names.ips {
            params.subject_alt_names.push(SanType::IpAddress(*ip));
        }
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let issued = self.sign(params, identity, &key)?;
        Ok((issued, key.serialize_pem()))
    }

    /// A client certificate for `identity` from a CSR (PEM). Whatever the
    /// CSR asks for, the certificate names `identity` only and is good for
    /// client authentication only.
    pub fn sign_csr(&self, csr_pem: &str, identity: &str) -> Result<Issued, TlsError> {
        let csr =
            CertificateSigningRequestParams::from_pem(csr_pem).map_err(|e| TlsError::Pem {
                what: format!("certificate request for {identity}"),
                reason: e.to_string(),
            })?;
        let mut params = CertificateParams::default();
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(params, identity, &csr.public_key)
    }

    fn sign(
        &self,
        mut params: CertificateParams,
        identity: &str,
        public_key: &impl PublicKeyData,
    ) -> Result<Issued, TlsError> {
        params.distinguished_name = dn(identity);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let serial = random_serial();
        params.serial_number = Some(serial.clone());
        params.use_authority_key_identifier_extension = true;
        validity(&mut params, LEAF_YEARS);
        let cert = params.signed_by(public_key, &self.cert, &self.key)?;
        Ok(Issued {
            cert_pem: cert.pem(),
            serial: serial_hex(&serial),
        })
    }

    /// A CRL revoking `serials` (hex), numbered `number`, valid 10 years
    /// (re-issued on every revocation).
    pub fn crl(&self, serials: &[String], number: u64) -> Result<String, TlsError> {
        let now = OffsetDateTime::now_utc();
        let revoked_certs = serials
            .iter()
            .map(|s| {
                let bytes = hex::decode(s)
                    .map_err(|_| TlsError::Certificate(format!("serial {s:?} is not hex")))?;
                Ok(RevokedCertParams {
                    serial_number: SerialNumber::from(bytes),
                    revocation_time: now,
                    reason_code: None,
                    invalidity_date: None,
                })
            })
            .collect::<Result<Vec<_>, TlsError>>()?;
        let params = CertificateRevocationListParams {
            this_update: now - Duration::hours(1),
            next_update: now + Duration::days(365 * LEAF_YEARS),
            crl_number: SerialNumber::from(number),
            issuing_distribution_point: None,
            revoked_certs,
            key_identifier_method: KeyIdMethod::Sha256,
        };
        Ok(params.signed_by(&self.cert, &self.key)?.pem()?)
    }
}
