//! The client side of the security routes: tokens, device certificates.

use super::{Client, ClientError};
use crate::auth::{Role, TokenRecord};
use crate::http::security::{CertificateRequest, CreateToken, CreatedToken, DeviceBundle, Revoked};
use std::path::{Path, PathBuf};

impl Client {
    pub async fn create_token(&self, role: Role, name: &str) -> Result<CreatedToken, ClientError> {
        let url = format!("{}/v1/tokens", self.base);
        let req = CreateToken {
            role,
            name: name.to_string(),
        };
        self.send(self.http.post(&url).json(&req), &url).await
    }

    pub async fn tokens(&self) -> Result<Vec<TokenRecord>, ClientError> {
        let url = format!("{}/v1/tokens", self.base);
        self.send(self.http.get(&url), &url).await
    }

    pub async fn delete_token(&self, id: &str) -> Result<(), ClientError> {
        let url = format!("{}/v1/tokens/{id}", self.base);
        let _: serde_json::Value = self.send(self.http.delete(&url), &url).await?;
        Ok(())
    }

    /// Prepares a key for a root-endorsed rotation; returns its public half.
    pub async fn next_key(&self) -> Result<crate::http::KeyView, ClientError> {
        let url = format!("{}/v1/keys/next", self.base);
        self.send(self.http.post(&url), &url).await
    }

    /// Installs the prepared key with a root key's endorsement.
    pub async fn install_endorsed_key(
        &self,
        endorsement: &petrel_protocol::Endorsement,
    ) -> Result<crate::http::KeyView, ClientError> {
        let url = format!("{}/v1/keys/endorsed", self.base);
        self.send(self.http.post(&url).json(endorsement), &url)
            .await
    }

    /// Asks the controller to sign a device's CSR.
    pub async fn issue_certificate(
        &self,
        id: &str,
        csr: &str,
    ) -> Result<DeviceBundle, ClientError> {
        let url = format!("{}/v1/devices/{id}/certificate", self.base);
        let req = CertificateRequest {
            csr: csr.to_string(),
        };
        self.send(self.http.post(&url).json(&req), &url).await
    }

    pub async fn revoke_device(&self, id: &str) -> Result<Revoked, ClientError> {
        let url = format!("{}/v1/devices/{id}/revoke", self.base);
        self.send(self.http.post(&url), &url).await
    }
}

/// Where `petrel device provision` writes, and what the agent is told.
pub struct ProvisionOptions {
    /// Directory for agent.toml, device.key, device.pem, ca.pem.
    pub out: PathBuf,
    /// Broker URL for the device (default: what the controller advertises).
    pub broker: Option<String>,
    /// Controller URL for the device (default: what it advertises).
    pub controller_url: Option<String>,
    /// The agent's data directory on the device.
    pub agent_data_dir: PathBuf,
    /// An offline root public key (hex) the device also pins.
    pub root_key: Option<String>,
}

impl Client {
    /// Provisions device `id`: makes its key here, has the controller
    /// certify it, and writes key (0600), certificate, CA and agent.toml
    /// into `opts.out`. Refuses a directory already holding a device.
    pub async fn provision_device(
        &self,
        id: &str,
        opts: &ProvisionOptions,
    ) -> Result<DeviceBundle, ClientError> {
        let out = &opts.out;
        if let Some(root) = &opts.root_key {
            petrel_protocol::PublicKey::from_hex(root).map_err(|e| ClientError::Provision {
                path: out.clone(),
                reason: format!("root key: {e}"),
            })?;
        }
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |error| ClientError::Io { path, error }
        };
        let toml_path = out.join("agent.toml");
        if toml_path.exists() {
            let held = std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "already holds a provisioned device; choose an empty directory",
            );
            return Err(io(out)(held));
        }
        let tls = |e: petrel_tls::TlsError| ClientError::Provision {
            path: out.clone(),
            reason: e.to_string(),
        };
        let made = petrel_tls::new_key_and_csr(id).map_err(tls)?;
        let bundle = self.issue_certificate(id, &made.csr_pem).await?;
        petrel_tls::write_secret(&out.join("device.key"), &made.key_pem).map_err(tls)?;
        petrel_tls::write_public(&out.join("device.pem"), &bundle.certificate).map_err(tls)?;
        petrel_tls::write_public(&out.join("ca.pem"), &bundle.ca).map_err(tls)?;
        petrel_tls::write_public(&toml_path, &agent_toml(&bundle, opts)).map_err(tls)?;
        Ok(bundle)
    }
}

fn agent_toml(bundle: &DeviceBundle, opts: &ProvisionOptions) -> String {
    let broker = opts.broker.as_ref().unwrap_or(&bundle.advertised.broker);
    let url = opts
        .controller_url
        .as_ref()
        .unwrap_or(&bundle.advertised.controller_url);
    let root = match &opts.root_key {
        Some(k) => format!("root_key = \"{k}\"\n"),
        None => String::new(),
    };
    format!(
        "# Provisioned by `petrel device provision` for {id}.\n\
         device_id = \"{id}\"\n\
         broker = \"{broker}\"\n\
         controller_url = \"{url}\"\n\
         data_dir = \"{data}\"\n\
         # paths relative to this file\n\
         ca_file = \"ca.pem\"\n\
         cert_file = \"device.pem\"\n\
         key_file = \"device.key\"\n\
         controller_key = \"{key}\"\n{root}",
        id = bundle.device_id,
        data = opts.agent_data_dir.display(),
        key = bundle.controller_key,
    )
}
