//! rustls configurations: the controller's servers (HTTPS API, the MQTT
//! front) and the clients (agents, the CLI, the controller on an external
//! broker). Only the fleet CA is trusted: no system roots.

use crate::TlsError;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::sync::Arc;

/// Whether a server asks for client certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// Every client must present a certificate of the fleet CA (MQTT).
    Required,
    /// A certificate is verified if presented (devices on the HTTP API);
    /// clients without one authenticate otherwise (operator tokens).
    Optional,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certs(pem: &str, what: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = rustls_pemfile::certs(&mut pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            what: what.into(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            what: what.into(),
            reason: "no certificate in it".into(),
        });
    }
    Ok(certs)
}

fn key(pem: &str, what: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    let fail = |reason: String| TlsError::Pem {
        what: what.into(),
        reason,
    };
    rustls_pemfile::private_key(&mut pem.as_bytes())
        .map_err(|e| fail(e.to_string()))?
        .ok_or_else(|| fail("no private key in it".into()))
}

fn roots(ca_pem: &str) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    for c in certs(ca_pem, "CA certificate")? {
        roots
            .add(c)
            .map_err(|e| TlsError::Config(format!("CA certificate: {e}")))?;
    }
    Ok(Arc::new(roots))
}

/// A server presenting `cert_pem`/`key_pem`, verifying clients against
/// the CA.
pub fn server_config(
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
    auth: ClientAuth,
) -> Result<Arc<ServerConfig>, TlsError> {
    let builder = WebPkiClientVerifier::builder_with_provider(roots(ca_pem)?, provider());
    let builder = match auth {
        ClientAuth::Required => builder,
        ClientAuth::Optional => builder.allow_unauthenticated(),
    };
    let verifier = builder
        .build()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            certs(cert_pem, "server certificate")?,
            key(key_pem, "server key")?,
        )?;
    Ok(Arc::new(config))
}

/// A client trusting the CA only, presenting `identity` (certificate and
/// key PEM) when given.
pub fn client_config(
    ca_pem: &str,
    identity: Option<(&str, &str)>,
) -> Result<ClientConfig, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots(ca_pem)?);
    Ok(match identity {
        Some((cert, k)) => builder
            .with_client_auth_cert(certs(cert, "client certificate")?, key(k, "client key")?)?,
        None => builder.with_no_client_auth(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{new_key_and_csr, peer_certificate, Ca, ServerNames};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_device_certificate_from_a_csr_authenticates_to_a_server_of_the_same_ca() {
        let ca = Ca::generate("test fleet").unwrap();
        let names = ServerNames {
            dns: vec!["localhost".into()],
            ips: vec!["127.0.0.1".parse().unwrap()],
        };
        let (server, server_key) = ca.issue_server("petrel:controller", &names).unwrap();
        let device = new_key_and_csr("pi-7").unwrap();
        let issued = ca.sign_csr(&device.csr_pem, "pi-7").unwrap();
        let scfg = server_config(
            &ca.cert_pem,
            &server.cert_pem,
            &server_key,
            ClientAuth::Required,
        )
        .unwrap();
        let ccfg = client_config(&ca.cert_pem, Some((&issued.cert_pem, &device.key_pem))).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server_task = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut tls = tokio_rustls::TlsAcceptor::from(scfg)
                .accept(tcp)
                .await
                .unwrap();
            let der = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
            tls.write_all(b"hi").await.unwrap();
            tls.shutdown().await.unwrap();
            peer_certificate(&der).unwrap()
        });
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let mut tls = tokio_rustls::TlsConnector::from(Arc::new(ccfg))
            .connect(name, tcp)
            .await
            .unwrap();
        let mut got = Vec::new();
        tls.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"hi");
        let peer = server_task.await.unwrap();
        assert_eq!(peer.identity, "pi-7");
        assert_eq!(peer.serial, issued.serial);
    }

    #[test]
    fn a_reloaded_ca_issues_certificates_its_original_certificate_verifies() {
        let ca = Ca::generate("fleet").unwrap();
        let again = Ca::from_pem(&ca.cert_pem, &ca.key_pem()).unwrap();
        let csr = new_key_and_csr("dev-1").unwrap();
        let issued = again.sign_csr(&csr.csr_pem, "dev-1").unwrap();
        let roots = roots(&ca.cert_pem).unwrap();
        let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider())
            .build()
            .unwrap();
        let leaf = certs(&issued.cert_pem, "leaf").unwrap().remove(0);
        verifier
            .verify_client_cert(&leaf, &[], rustls::pki_types::UnixTime::now())
            .unwrap();
    }

    #[test]
    fn a_csr_asking_for_another_name_still_gets_the_identity_the_ca_chose() {
        let ca = Ca::generate("fleet").unwrap();
        let csr = new_key_and_csr("petrel:controller").unwrap();
        let issued = ca.sign_csr(&csr.csr_pem, "dev-2").unwrap();
        let der = certs(&issued.cert_pem, "leaf").unwrap().remove(0);
        assert_eq!(peer_certificate(&der).unwrap().identity, "dev-2");
    }

    #[test]
    fn garbage_pems_are_errors_naming_what_was_read() {
        let err = client_config("not a pem", None).unwrap_err();
        assert!(err.to_string().contains("CA certificate"), "{err}");
        let ca = Ca::generate("fleet").unwrap();
        let err = ca
            .sign_csr(
                "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
                "d",
            )
            .unwrap_err();
        assert!(err.to_string().contains("request for d"), "{err}");
        assert!(ca.crl(&["zz".into()], 1).is_err());
        assert!(ca
            .crl(&["01ab".into()], 1)
            .unwrap()
            .contains("BEGIN X509 CRL"));
    }
}
