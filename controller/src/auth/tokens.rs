//! Operator bearer tokens, in `<data>/auth/tokens.json`: each token's id,
//! name, role and the SHA-256 of the token (the token itself is shown
//! once, when created, and never stored or logged). The first start
//! creates an admin token in `<data>/auth/admin.token` (0600) so the
//! operator on the controller's machine can begin.
//!
//! A token reads `petrel_<id>_<secret>`: the id finds the record, the
//! hash of the whole token must match.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::{PoisonError, RwLock};

/// What a token may do; each role includes the ones below it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read the fleet, images, releases, events.
    Viewer,
    /// And import images, create releases, deploy.
    Operator,
    /// And rotate keys, create tokens, provision and revoke devices.
    Admin,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        })
    }
}

/// A token as listed (never the token itself).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenRecord {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub created_ms: u64,
    sha256: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
}

pub struct Tokens {
    path: PathBuf,
    records: RwLock<Vec<TokenRecord>>,
}

fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl Tokens {
    /// Opens `dir/tokens.json`; on first use creates an admin token in
    /// `dir/admin.token`.
    pub fn open(dir: &Path) -> Result<Tokens, TokenError> {
        let path = dir.join("tokens.json");
        let fail = |reason: String| TokenError::File {
            path: path.clone(),
            reason,
        };
        let records = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| fail(e.to_string()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(fail(e.to_string())),
        };
        let fresh = records.is_none();
        let tokens = Tokens {
            path: path.clone(),
            records: RwLock::new(records.unwrap_or_default()),
        };
        if fresh {
            let (_, token) = tokens.create(Role::Admin, "first admin")?;
            let file = dir.join("admin.token");
            petrel_tls::write_secret(&file, &format!("{token}\n"))
                .map_err(|e| fail(e.to_string()))?;
            tracing::info!(path = %file.display(), "created the first admin token (export PETREL_TOKEN=$(cat {}))", file.display());
        }
        Ok(tokens)
    }

    /// A new token; returns its record and the token (shown once).
    pub fn create(&self, role: Role, name: &str) -> Result<(TokenRecord, String), TokenError> {
        let id = hex::encode(rand::random::<[u8; 4]>());
        let token = format!("petrel_{id}_{}", hex::encode(rand::random::<[u8; 24]>()));
        let record = TokenRecord {
            id,
            name: name.to_string(),
            role,
            created_ms: crate::now_ms(),
            sha256: hash(&token),
        };
        let mut records = self.records.write().unwrap_or_else(PoisonError::into_inner);
        records.push(record.clone());
        self.save(&records)?;
        Ok((record, token))
    }

    /// The record of a presented token, if it is one of ours.
    pub fn verify(&self, token: &str) -> Option<TokenRecord> {
        let id = token.strip_prefix("petrel_")?.split('_').next()?;
        let records = self.records.read().unwrap_or_else(PoisonError::into_inner);
        let record = records.iter().find(|r| r.id == id)?;
        (record.sha256 == hash(token)).then(|| record.clone())
    }

    pub fn list(&self) -> Vec<TokenRecord> {
        self.records
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Deletes a token by id; false if there was none.
    pub fn delete(&self, id: &str) -> Result<bool, TokenError> {
        let mut records = self.records.write().unwrap_or_else(PoisonError::into_inner);
        let before = records.len();
        records.retain(|r| r.id != id);
        if records.len() == before {
            return Ok(false);
        }
        self.save(&records)?;
        Ok(true)
    }

    fn save(&self, records: &[TokenRecord]) -> Result<(), TokenError> {
        let fail = |reason: String| TokenError::File {
            path: self.path.clone(),
            reason,
        };
        let text = serde_json::to_string_pretty(records).map_err(|e| fail(e.to_string()))?;
        petrel_tls::write_secret(&self.path, &text).map_err(|e| fail(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_stored_hashed_and_verify_only_when_whole() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = Tokens::open(dir.path()).unwrap();
        let admin = std::fs::read_to_string(dir.path().join("admin.token")).unwrap();
        assert_eq!(tokens.verify(admin.trim()).unwrap().role, Role::Admin);
        let (rec, token) = tokens.create(Role::Viewer, "dashboard").unwrap();
        let stored = std::fs::read_to_string(dir.path().join("tokens.json")).unwrap();
        assert!(!stored.contains(&token) && !stored.contains(admin.trim()));
        assert_eq!(tokens.verify(&token).unwrap().role, Role::Viewer);
        let tampered = format!("{}x", &token[..token.len() - 1]);
        assert!(tokens.verify(&tampered).is_none());
        assert!(tokens.verify("nonsense").is_none());
        let reopened = Tokens::open(dir.path()).unwrap();
        assert_eq!(reopened.verify(&token).unwrap().id, rec.id);
        assert!(reopened.delete(&rec.id).unwrap());
        assert!(reopened.verify(&token).is_none());
    }
}
