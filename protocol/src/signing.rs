//! ed25519 signatures over desired states, TUF-like: the controller signs
//! every desired-state envelope; an agent accepts one only if a key it
//! trusts signed it, it is addressed to it, and it has not expired. The
//! agent pins the controller's public key at provisioning.
//!
//! Key rotation: a new key is trusted only through an *endorsement*, the
//! new public key signed by a key already trusted (the controller's
//! current key, or an offline root key the agent pins and the controller
//! never holds). The controller attaches its chain of endorsements to
//! every envelope, so a device offline during a rotation learns the new
//! key from the first message it gets, and a device that never trusted
//! the old key learns nothing from it.
//!
//! Keys travel as lowercase hex (64 characters); signatures as hex (128).
//! A key's id is the first 16 hex characters of the sha256 of its bytes.

use crate::{Desired, Envelope, SCHEMA};
use ed25519_dalek::{Signer, Verifier};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::fmt;

/// A controller (or offline root) signing key.
#[derive(Clone)]
pub struct SigningKey(ed25519_dalek::SigningKey);

/// A public key an agent may trust.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey(ed25519_dalek::VerifyingKey);

/// A new key vouched for by an older one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endorsement {
    /// The endorsed public key (hex).
    pub key: String,
    /// Id of the key that signed it.
    pub signed_by: String,
    /// Signature of `petrel-endorse:` + `key` (hex).
    pub signature: String,
}

/// Why a key or a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("not a key: expected 64 hex characters")]
    MalformedKey,
    #[error("unsigned desired state (this device accepts only signed ones)")]
    Unsigned,
    #[error("signed by key {0}, which this device does not trust")]
    UnknownKey(String),
    #[error("bad signature by key {0}")]
    BadSignature(String),
    #[error("signed by key {0}, which was rotated out (it endorsed a newer key)")]
    Retired(String),
}

/// What a verified envelope taught: keys endorsed into trust, and the ids
/// of the keys that endorsed them (rotated out: their signatures on
/// messages are refused from now on). The caller persists both.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Learned {
    pub keys: Vec<PublicKey>,
    pub retired: Vec<String>,
}

impl SigningKey {
    /// The key of a 32-byte seed (from a CSPRNG: the caller's I/O).
    pub fn from_seed(seed: [u8; 32]) -> SigningKey {
        SigningKey(ed25519_dalek::SigningKey::from_bytes(&seed))
    }

    /// The key of a hex seed, as written by [`SigningKey::to_hex`].
    pub fn from_hex(hex_seed: &str) -> Result<SigningKey, SignatureError> {
        Ok(SigningKey::from_seed(bytes32(hex_seed.trim())?))
    }

    /// The seed as hex: the secret. Never log it.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0.to_bytes())
    }

    pub fn public(&self) -> PublicKey {
        PublicKey(self.0.verifying_key())
    }

    /// Wraps `desired` in an envelope signed by this key, carrying the
    /// endorsements that lead from older keys to it.
    pub fn sign_desired(&self, desired: &Desired, chain: &[Endorsement]) -> Envelope {
        let payload = serde_json::to_string(desired).unwrap_or_default();
        let signature = hex::encode(self.0.sign(payload.as_bytes()).to_bytes());
        Envelope {
            schema: SCHEMA,
            payload,
            signature: Some(signature),
            key_id: Some(self.public().id()),
            endorsements: chain.to_vec(),
        }
    }

    /// Vouches for `next` (a rotation).
    pub fn endorse(&self, next: &PublicKey) -> Endorsement {
        let key = next.to_hex();
        let message = format!("petrel-endorse:{key}");
        Endorsement {
            signature: hex::encode(self.0.sign(message.as_bytes()).to_bytes()),
            signed_by: self.public().id(),
            key,
        }
    }
}

impl PublicKey {
    pub fn from_hex(hex_key: &str) -> Result<PublicKey, SignatureError> {
        let bytes = bytes32(hex_key.trim())?;
        ed25519_dalek::VerifyingKey::from_bytes(&bytes)
            .map(PublicKey)
            .map_err(|_| SignatureError::MalformedKey)
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0.to_bytes())
    }

    /// The key's short id: 16 hex characters of its sha256.
    pub fn id(&self) -> String {
        hex::encode(&Sha256::digest(self.0.to_bytes())[..8])
    }

    fn verifies(&self, message: &[u8], signature_hex: &str) -> bool {
        let Ok(bytes) = hex::decode(signature_hex) else {
            return false;
        };
        let Ok(signature) = ed25519_dalek::Signature::from_slice(&bytes) else {
            return false;
        };
        self.0.verify(message, &signature).is_ok()
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.id())
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey(public {})", self.public().id())
    }
}

/// Checks `envelope`'s signature against `trusted` (minus the `retired`
/// key ids), first learning every endorsed key its chain leads to from a
/// trusted one. A controller key that endorsed another is retired. A
/// `roots` key (an offline root, by id) is never retired: its endorsement
/// replaces the controller's keys, retiring every other key known so far
/// (the recovery from a stolen controller key). Returns what was learned
/// (to be persisted by the caller) on success.
pub fn verify_envelope(
    envelope: &Envelope,
    trusted: &[PublicKey],
    roots: &[String],
    retired: &[String],
) -> Result<Learned, SignatureError> {
    let (Some(signature), Some(key_id)) = (&envelope.signature, &envelope.key_id) else {
        return Err(SignatureError::Unsigned);
    };
    let mut known = trusted.to_vec();
    let mut learned = Learned::default();
    // endorsements in any order: repeat while one more link is found
    while let Some((key, by)) = envelope
        .endorsements
        .iter()
        .find_map(|e| endorsed(e, &known))
    {
        let doomed: Vec<String> = match roots.contains(&by) {
            true => known
                .iter()
                .map(PublicKey::id)
                .filter(|id| !roots.contains(id))
                .collect(),
            false => vec![by],
        };
        for id in doomed {
            if !retired.contains(&id) && !learned.retired.contains(&id) {
                learned.retired.push(id);
            }
        }
        learned.keys.push(key.clone());
        known.push(key);
    }
    if retired.contains(key_id) || learned.retired.contains(key_id) {
        return Err(SignatureError::Retired(key_id.clone()));
    }
    let key = known
        .iter()
        .find(|k| k.id() == *key_id)
        .ok_or_else(|| SignatureError::UnknownKey(key_id.clone()))?;
    if !key.verifies(envelope.payload.as_bytes(), signature) {
        return Err(SignatureError::BadSignature(key_id.clone()));
    }
    Ok(learned)
}

/// The key an endorsement vouches for and its endorser's id, if a key of
/// `known` signed it and it is not known yet.
fn endorsed(e: &Endorsement, known: &[PublicKey]) -> Option<(PublicKey, String)> {
    let key = PublicKey::from_hex(&e.key).ok()?;
    if known.contains(&key) {
        return None;
    }
    let signer = known.iter().find(|k| k.id() == e.signed_by)?;
    let message = format!("petrel-endorse:{}", e.key);
    signer
        .verifies(message.as_bytes(), &e.signature)
        .then(|| (key, signer.id()))
}

fn bytes32(hex_text: &str) -> Result<[u8; 32], SignatureError> {
    let bytes = hex::decode(hex_text).map_err(|_| SignatureError::MalformedKey)?;
    bytes.try_into().map_err(|_| SignatureError::MalformedKey)
}

#[cfg(test)]
mod tests;
