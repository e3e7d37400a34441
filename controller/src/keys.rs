//! The controller's signing keys, in `<data>/keys/`: `signing.key` (the
//! current ed25519 seed, hex, mode 0600), `signing.pub` (its public key:
//! what agents pin, see `petrel-agent`'s `controller_key`), and
//! `chain.json` (endorsements from each older key, or an offline root
//! key, to the current one). Created on first start; rotated by
//! [`Keyring::rotate`]. Nothing secret is logged.

use petrel_protocol::{Desired, Endorsement, Envelope, PublicKey, SigningKey};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// How long a signed desired state stays valid; the controller re-signs
/// and re-publishes every desired state well before (see `fleet`).
pub const VALIDITY_MS: u64 = 7 * 24 * 3600 * 1000;

/// Why the keys could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path} does not hold a key: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

/// The current signing key and the chain that endorses it.
#[derive(Debug, Clone)]
pub struct Keyring {
    dir: PathBuf,
    current: SigningKey,
    chain: Vec<Endorsement>,
}

impl Keyring {
    /// Loads the keys in `dir`, creating a first key if there is none.
    pub fn load_or_create(dir: &Path) -> Result<Keyring, KeyError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| KeyError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let key_path = dir.join("signing.key");
        let (current, created) = match std::fs::read_to_string(&key_path) {
            Ok(text) => {
                let key = SigningKey::from_hex(&text).map_err(|e| KeyError::Invalid {
                    path: key_path.clone(),
                    reason: e.to_string(),
                })?;
                (key, false)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let key = SigningKey::from_seed(rand::random());
                tracing::info!(key = %key.public().id(), dir = %dir.display(), "created the controller's signing key");
                (key, true)
            }
            Err(e) => return Err(io(&key_path)(e)),
        };
        let chain_path = dir.join("chain.json");
        let chain = match std::fs::read(&chain_path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| KeyError::Invalid {
                path: chain_path.clone(),
                reason: e.to_string(),
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io(&chain_path)(e)),
        };
        let ring = Keyring {
            dir: dir.to_path_buf(),
            current,
            chain,
        };
        if created {
            ring.save()?;
        }
        Ok(ring)
    }

    pub fn public(&self) -> PublicKey {
        self.current.public()
    }

    /// Signs a desired state valid until `now_ms` + [`VALIDITY_MS`].
    pub fn sign(&self, desired: &Desired, now_ms: u64) -> Envelope {
        let mut d = desired.clone();
        d.expires_at_ms = Some(now_ms + VALIDITY_MS);
        self.current.sign_desired(&d, &self.chain)
    }

    /// Replaces the signing key by a new one, endorsed by `by` (an
    /// offline root key agents pin) or else by the current key; returns
    /// the new public key. Durable before it returns.
    pub fn rotate(&mut self, by: Option<&SigningKey>) -> Result<PublicKey, KeyError> {
        let next = SigningKey::from_seed(rand::random());
        let endorser = by.unwrap_or(&self.current);
        self.chain.insert(0, endorser.endorse(&next.public()));
        self.current = next;
        self.save()?;
        tracing::info!(key = %self.current.public().id(), "rotated the controller's signing key");
        Ok(self.public())
    }

    /// The first half of a rotation endorsed by an offline root key: a
    /// new key is made and kept aside (`next.key`, 0600); its public half
    /// goes to the operator, whose root key endorses it offline.
    pub fn prepare_next(&self) -> Result<PublicKey, KeyError> {
        let path = self.dir.join("next.key");
        let next = match std::fs::read_to_string(&path) {
            Ok(text) => SigningKey::from_hex(&text).map_err(|e| KeyError::Invalid {
                path: path.clone(),
                reason: e.to_string(),
            })?,
            Err(_) => {
                let key = SigningKey::from_seed(rand::random());
                write_private(&path, key.to_hex().as_bytes())?;
                key
            }
        };
        Ok(next.public())
    }

    /// The second half: installs the prepared key with the root's
    /// endorsement as its whole chain (devices that pin the root retire
    /// every older controller key on seeing it).
    pub fn install_endorsed(&mut self, endorsement: Endorsement) -> Result<PublicKey, KeyError> {
        let path = self.dir.join("next.key");
        let invalid = |reason: String| KeyError::Invalid {
            path: path.clone(),
            reason,
        };
        let text = std::fs::read_to_string(&path).map_err(|_| {
            invalid("no prepared key: ask for one first (POST /v1/keys/next)".into())
        })?;
        let next = SigningKey::from_hex(&text).map_err(|e| invalid(e.to_string()))?;
        if endorsement.key != next.public().to_hex() {
            return Err(invalid(
                "the endorsement is for another key than the prepared one".into(),
            ));
        }
        self.chain = vec![endorsement];
        self.current = next;
        self.save()?;
        let _ = std::fs::remove_file(&path);
        tracing::info!(key = %self.current.public().id(), "installed a root-endorsed signing key");
        Ok(self.public())
    }

    fn save(&self) -> Result<(), KeyError> {
        write_private(
            &self.dir.join("signing.key"),
            self.current.to_hex().as_bytes(),
        )?;
        let public = format!("{}\n", self.public().to_hex());
        write_private(&self.dir.join("signing.pub"), public.as_bytes())?;
        let chain = serde_json::to_vec_pretty(&self.chain).unwrap_or_default();
        write_private(&self.dir.join("chain.json"), &chain)
    }
}

/// Writes `bytes` to `path` atomically (temp file, fsync, rename), 0600.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), KeyError> {
    let io = |source| KeyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_key_is_created_once_kept_private_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let first = Keyring::load_or_create(dir.path()).unwrap();
        let again = Keyring::load_or_create(dir.path()).unwrap();
        assert_eq!(first.public(), again.public());
        let mode = std::fs::metadata(dir.path().join("signing.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let pinned = std::fs::read_to_string(dir.path().join("signing.pub")).unwrap();
        assert_eq!(PublicKey::from_hex(&pinned).unwrap(), first.public());
    }

    #[test]
    fn a_rotated_key_is_endorsed_by_the_old_one_and_persisted() {
        let dir = tempfile::tempdir().unwrap();
        let mut ring = Keyring::load_or_create(dir.path()).unwrap();
        let old = ring.public();
        let new = ring.rotate(None).unwrap();
        assert_ne!(old, new);
        let reloaded = Keyring::load_or_create(dir.path()).unwrap();
        assert_eq!(reloaded.public(), new);
        let d = Desired {
            schema: petrel_protocol::SCHEMA,
            device_id: "d1".into(),
            generation: 1,
            release: None,
            issued_at_ms: 0,
            expires_at_ms: None,
            window: None,
            lock_override_after_s: None,
            budget: None,
        };
        let env = reloaded.sign(&d, 0);
        let learned =
            petrel_protocol::signing::verify_envelope(&env, std::slice::from_ref(&old), &[], &[])
                .unwrap();
        assert_eq!(learned.keys, vec![new]);
        assert_eq!(learned.retired, vec![old.id()]);
    }
}
