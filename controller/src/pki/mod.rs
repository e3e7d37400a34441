//! The fleet's PKI as the controller keeps it, in `<data>/pki/`:
//! `ca.pem`/`ca.key` (the fleet CA), `server.pem`/`server.key` (the
//! controller's certificate: HTTPS, the MQTT front, and its client
//! identity `petrel:controller` on an external broker), `devices.json`
//! (serials issued to each device, serials revoked) and `crl.pem` (the
//! revocations, for Mosquitto's `crlfile`). Keys are written 0600;
//! nothing secret is logged.
//!
//! Revocation takes effect at once: [`Pki::revoked`] is a watch the MQTT
//! front and the HTTPS server consult for every new connection, and the
//! front closes live connections of a serial revoked under it.

mod devices;

use devices::DeviceCerts;
use petrel_protocol::acl::CONTROLLER_IDENTITY;
use petrel_tls::{Ca, ServerNames, TlsError};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::watch;

/// Why provisioning or loading the PKI failed.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("a fleet CA already exists in {0} (remove the directory to start a new fleet: every device must then be provisioned again)")]
    Exists(PathBuf),
    #[error(
        "no fleet CA in {0}: run `petrel ca init --data DIR` (or start the controller once) first"
    )]
    Missing(PathBuf),
    #[error("{path}: {reason}")]
    Devices { path: PathBuf, reason: String },
    #[error("{0:?} cannot be a device id: {1}")]
    BadId(String, String),
    #[error("device {0} has no certificate to revoke")]
    NotProvisioned(String),
}

/// The files of the PKI directory.
pub struct PkiPaths {
    pub dir: PathBuf,
}

impl PkiPaths {
    pub fn new(dir: &Path) -> PkiPaths {
        PkiPaths {
            dir: dir.to_path_buf(),
        }
    }
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
    fn ca_key(&self) -> PathBuf {
        self.dir.join("ca.key")
    }
    pub fn server_cert(&self) -> PathBuf {
        self.dir.join("server.pem")
    }
    pub fn server_key(&self) -> PathBuf {
        self.dir.join("server.key")
    }
    pub fn crl(&self) -> PathBuf {
        self.dir.join("crl.pem")
    }
    fn devices(&self) -> PathBuf {
        self.dir.join("devices.json")
    }
}

/// Creates the fleet CA and the controller's certificate for `names`.
pub fn init(dir: &Path, names: &ServerNames) -> Result<(), PkiError> {
    let paths = PkiPaths::new(dir);
    if paths.ca().exists() {
        return Err(PkiError::Exists(dir.to_path_buf()));
    }
    let ca = Ca::generate("Petrel fleet CA")?;
    let (server, key) = ca.issue_server(CONTROLLER_IDENTITY, names)?;
    petrel_tls::write_secret(&paths.ca_key(), &ca.key_pem())?;
    petrel_tls::write_secret(&paths.server_key(), &key)?;
    petrel_tls::write_public(&paths.server_cert(), &server.cert_pem)?;
    petrel_tls::write_public(&paths.crl(), &ca.crl(&[], 1)?)?;
    // the CA certificate last: its presence marks a complete PKI
    petrel_tls::write_public(&paths.ca(), &ca.cert_pem)?;
    tracing::info!(dir = %dir.display(), dns = ?names.dns, ips = ?names.ips, "created the fleet CA and the controller's certificate");
    Ok(())
}

/// The names a PKI made without `petrel ca init` is good for: this
/// machine by loopback and by host name.
pub fn default_names() -> ServerNames {
    let mut dns = vec!["localhost".to_string()];
    if let Ok(host) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        let host = host.trim();
        if !host.is_empty() && host != "localhost" && host.parse::<std::net::IpAddr>().is_err() {
            dns.push(host.to_string());
        }
    }
    ServerNames {
        dns,
        ips: vec![[127, 0, 0, 1].into(), std::net::Ipv6Addr::LOCALHOST.into()],
    }
}

/// The loaded PKI: issues device certificates and revokes them.
#[derive(Clone)]
pub struct Pki {
    inner: Arc<Inner>,
}

struct Inner {
    paths: PkiPaths,
    ca: Ca,
    devices: Mutex<DeviceCerts>,
    revoked: watch::Sender<Arc<BTreeSet<String>>>,
}

/// A device certificate just issued.
pub struct Provisioned {
    pub cert_pem: String,
    pub ca_pem: String,
    pub serial: String,
}

impl Pki {
    pub fn load(dir: &Path) -> Result<Pki, PkiError> {
        let paths = PkiPaths::new(dir);
        if !paths.ca().exists() {
            return Err(PkiError::Missing(dir.to_path_buf()));
        }
        let ca = Ca::from_pem(
            &petrel_tls::read_pem(&paths.ca())?,
            &petrel_tls::read_pem(&paths.ca_key())?,
        )?;
        let devices = DeviceCerts::load(&paths.devices())?;
        let (revoked, _) = watch::channel(Arc::new(devices.revoked_serials()));
        Ok(Pki {
            inner: Arc::new(Inner {
                paths,
                ca,
                devices: Mutex::new(devices),
                revoked,
            }),
        })
    }

    pub fn paths(&self) -> &PkiPaths {
        &self.inner.paths
    }

    pub fn ca_pem(&self) -> &str {
        &self.inner.ca.cert_pem
    }

    /// The server configuration (certificate and key) as PEM.
    pub fn server_pems(&self) -> Result<(String, String), PkiError> {
        let p = &self.inner.paths;
        Ok((
            petrel_tls::read_pem(&p.server_cert())?,
            petrel_tls::read_pem(&p.server_key())?,
        ))
    }

    /// A server certificate (and its new key) for another server of the
    /// fleet, e.g. an external broker (`identity` = its common name).
    pub fn issue_server(
        &self,
        identity: &str,
        names: &ServerNames,
    ) -> Result<(petrel_tls::Issued, String), PkiError> {
        Ok(self.inner.ca.issue_server(identity, names)?)
    }

    /// Signs `csr_pem` as device `id`'s certificate and records its serial.
    pub fn provision(&self, id: &str, csr_pem: &str) -> Result<Provisioned, PkiError> {
        petrel_protocol::validate_device_id(id)
            .map_err(|e| PkiError::BadId(id.to_string(), e.to_string()))?;
        let issued = self.inner.ca.sign_csr(csr_pem, id)?;
        let mut devices = self
            .inner
            .devices
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        devices.issued(id, &issued.serial);
        devices.save(&self.inner.paths.devices())?;
        tracing::info!(device = id, serial = %issued.serial, "issued a device certificate");
        Ok(Provisioned {
            cert_pem: issued.cert_pem,
            ca_pem: self.inner.ca.cert_pem.clone(),
            serial: issued.serial,
        })
    }

    /// Revokes every certificate issued to `id` so far: its connections
    /// are refused from now on, and `crl.pem` is rewritten. Returns the
    /// serials revoked.
    pub fn revoke(&self, id: &str) -> Result<Vec<String>, PkiError> {
        let mut devices = self
            .inner
            .devices
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let serials = devices.revoke(id);
        if serials.is_empty() {
            return Err(PkiError::NotProvisioned(id.to_string()));
        }
        let all: Vec<String> = devices.revoked_serials().into_iter().collect();
        let crl = self.inner.ca.crl(&all, devices.next_crl_number())?;
        devices.save(&self.inner.paths.devices())?;
        petrel_tls::write_public(&self.inner.paths.crl(), &crl)?;
        self.inner
            .revoked
            .send_replace(Arc::new(devices.revoked_serials()));
        tracing::warn!(device = id, serials = ?serials, "revoked the device's certificates");
        Ok(serials)
    }

    /// Whether a serial is revoked.
    pub fn is_revoked(&self, serial: &str) -> bool {
        self.inner.revoked.borrow().contains(serial)
    }

    /// Follows revocations (the set of revoked serials).
    pub fn revoked(&self) -> watch::Receiver<Arc<BTreeSet<String>>> {
        self.inner.revoked.subscribe()
    }
}

#[cfg(test)]
mod tests;
