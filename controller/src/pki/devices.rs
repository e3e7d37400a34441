//! `devices.json`: the serials issued to each device and those revoked,
//! written whole (temp file and rename) on every change.

use super::PkiError;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct DeviceCerts {
    /// Device id → serials issued to it (hex).
    issued: BTreeMap<String, Vec<String>>,
    /// Serials revoked.
    revoked: BTreeSet<String>,
    /// The last CRL number used.
    #[serde(default)]
    crl_number: u64,
}

impl DeviceCerts {
    pub(super) fn load(path: &Path) -> Result<DeviceCerts, PkiError> {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| PkiError::Devices {
                path: path.to_path_buf(),
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(DeviceCerts::default()),
            Err(e) => Err(PkiError::Devices {
                path: path.to_path_buf(),
                reason: e.to_string(),
            }),
        }
    }

    pub(super) fn save(&self, path: &Path) -> Result<(), PkiError> {
        let text = serde_json::to_string_pretty(self).map_err(|e| PkiError::Devices {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Ok(petrel_tls::write_public(path, &text)?)
    }

    pub(super) fn issued(&mut self, id: &str, serial: &str) {
        self.issued
            .entry(id.to_string())
            .or_default()
            .push(serial.to_string());
    }

    /// Revokes every serial of `id`; returns those newly revoked.
    pub(super) fn revoke(&mut self, id: &str) -> Vec<String> {
        let serials = self.issued.get(id).cloned().unwrap_or_default();
        serials
            .into_iter()
            .filter(|s| self.revoked.insert(s.clone()))
            .collect()
    }

    pub(super) fn revoked_serials(&self) -> BTreeSet<String> {
        self.revoked.clone()
    }

    pub(super) fn next_crl_number(&mut self) -> u64 {
        self.crl_number += 1;
        self.crl_number
    }
}
