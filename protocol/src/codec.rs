//! Decoding of outside input: size limit first, then JSON, then the schema
//! version, then the message's own validation. Every failure is a
//! [`DecodeError`] that says what was wrong; nothing here panics.

use crate::manifest::ManifestError;
use crate::signing::{verify_envelope, Learned, PublicKey, SignatureError};
use crate::{validate_device_id, Desired, Envelope, SCHEMA};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Size limits for incoming messages.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest message accepted, in bytes (default 1 MiB).
    pub max_message_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 1024 * 1024,
        }
    }
}

/// Why a message was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("message of {size} bytes exceeds the limit of {max} bytes")]
    TooLarge { size: usize, max: usize },
    #[error("malformed JSON: {0}")]
    Malformed(String),
    #[error("message has no schema version")]
    MissingSchema,
    #[error("unsupported schema version {found} (this build reads {SCHEMA})")]
    UnsupportedSchema { found: u64 },
    #[error("desired state is addressed to {found:?}, not to {expected:?}")]
    WrongDevice { expected: String, found: String },
    #[error("invalid release: {0}")]
    Manifest(#[from] ManifestError),
    #[error("invalid device id: {0}")]
    DeviceId(String),
    #[error(transparent)]
    Signature(#[from] SignatureError),
    #[error("desired state expired at {expired_at_ms} ms (now {now_ms} ms)")]
    Expired { expired_at_ms: u64, now_ms: u64 },
    #[error("signed desired state has no expiry")]
    NoExpiry,
}

/// Which desired states an agent accepts.
#[derive(Debug, Clone, Copy)]
pub enum Trust<'a> {
    /// Only ones signed by (a chain from) these keys, not by a `retired`
    /// one (ids), and not expired at `now_ms`; `roots`: the ids of the
    /// offline root keys among `keys`.
    Keys {
        keys: &'a [PublicKey],
        roots: &'a [String],
        retired: &'a [String],
        now_ms: u64,
    },
    /// Any, signed or not (insecure; for a lab, chosen explicitly).
    Unsigned,
}

/// A desired state the agent accepted, and the keys its envelope's
/// endorsements taught (to be persisted).
#[derive(Debug, Clone)]
pub struct Accepted {
    pub desired: Desired,
    pub learned: Learned,
}

/// Decodes a desired-state envelope addressed to `device_id`, checked as
/// `trust` says: signature (and endorsement chain), expiry, addressee and
/// release.
pub fn decode_desired_trusted(
    bytes: &[u8],
    device_id: &str,
    limits: Limits,
    trust: Trust<'_>,
) -> Result<Accepted, DecodeError> {
    let env: Envelope = decode(bytes, limits)?;
    let learned = match trust {
        Trust::Keys {
            keys,
            roots,
            retired,
            ..
        } => verify_envelope(&env, keys, roots, retired)?,
        Trust::Unsigned => Learned::default(),
    };
    let desired = decode_payload(&env, device_id, limits)?;
    if let Trust::Keys { now_ms, .. } = trust {
        match desired.expires_at_ms {
            None => return Err(DecodeError::NoExpiry),
            Some(at) if at <= now_ms => {
                return Err(DecodeError::Expired {
                    expired_at_ms: at,
                    now_ms,
                })
            }
            Some(_) => {}
        }
    }
    Ok(Accepted { desired, learned })
}

#[derive(Deserialize)]
struct SchemaOnly {
    schema: Option<serde_json::Value>,
}

/// Decodes a schema-versioned JSON message, enforcing `limits`.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], limits: Limits) -> Result<T, DecodeError> {
    if bytes.len() > limits.max_message_bytes {
        return Err(DecodeError::TooLarge {
            size: bytes.len(),
            max: limits.max_message_bytes,
        });
    }
    let head: SchemaOnly =
        serde_json::from_slice(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    match head.schema {
        None => return Err(DecodeError::MissingSchema),
        Some(v) if v.as_u64() == Some(u64::from(SCHEMA)) => {}
        Some(v) => {
            return Err(DecodeError::UnsupportedSchema {
                found: v.as_u64().unwrap_or(u64::MAX),
            })
        }
    }
    serde_json::from_slice(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))
}

/// Encodes a message as JSON bytes.
pub fn encode<T: Serialize>(msg: &T) -> Vec<u8> {
    serde_json::to_vec(msg).unwrap_or_default()
}

/// Decodes a desired-state envelope addressed to `device_id` and validates
/// its release, whether or not it is signed (see [`decode_desired_trusted`]
/// for what agents use).
pub fn decode_desired(
    bytes: &[u8],
    device_id: &str,
    limits: Limits,
) -> Result<Desired, DecodeError> {
    let env: Envelope = decode(bytes, limits)?;
    decode_payload(&env, device_id, limits)
}

fn decode_payload(env: &Envelope, device_id: &str, limits: Limits) -> Result<Desired, DecodeError> {
    let desired: Desired = decode(env.payload.as_bytes(), limits)?;
    validate_device_id(&desired.device_id).map_err(|e| DecodeError::DeviceId(e.to_string()))?;
    if desired.device_id != device_id {
        return Err(DecodeError::WrongDevice {
            expected: device_id.to_string(),
            found: desired.device_id,
        });
    }
    if let Some(release) = &desired.release {
        release.validate()?;
    }
    Ok(desired)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::tests::sample_release;

    fn desired_bytes(device: &str) -> Vec<u8> {
        let d = Desired {
            schema: SCHEMA,
            device_id: device.into(),
            generation: 3,
            release: Some(sample_release("2")),
            issued_at_ms: 1,
            expires_at_ms: None,
            window: None,
            lock_override_after_s: None,
            budget: None,
        };
        encode(&Envelope::wrap(&d))
    }

    #[test]
    fn a_well_formed_desired_state_decodes() {
        let d = decode_desired(&desired_bytes("d1"), "d1", Limits::default()).unwrap();
        assert_eq!(d.generation, 3);
    }

    #[test]
    fn malformed_json_is_a_clear_error() {
        let e = decode_desired(b"{not json", "d1", Limits::default()).unwrap_err();
        assert!(matches!(e, DecodeError::Malformed(_)), "{e}");
    }

    #[test]
    fn unknown_or_missing_schema_is_rejected() {
        let e = decode::<Envelope>(br#"{"schema":99,"payload":""}"#, Limits::default());
        assert_eq!(e.unwrap_err(), DecodeError::UnsupportedSchema { found: 99 });
        let e = decode::<Envelope>(br#"{"payload":""}"#, Limits::default());
        assert_eq!(e.unwrap_err(), DecodeError::MissingSchema);
    }

    #[test]
    fn oversized_messages_are_rejected_before_parsing() {
        let limits = Limits {
            max_message_bytes: 10,
        };
        let e = decode_desired(&desired_bytes("d1"), "d1", limits).unwrap_err();
        assert!(matches!(e, DecodeError::TooLarge { .. }));
    }

    #[test]
    fn a_desired_state_for_another_device_is_rejected() {
        let e = decode_desired(&desired_bytes("d2"), "d1", Limits::default()).unwrap_err();
        assert!(matches!(e, DecodeError::WrongDevice { .. }));
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let mut v: serde_json::Value = serde_json::from_slice(&desired_bytes("d1")).unwrap();
        v["future_field"] = serde_json::json!(true);
        let bytes = serde_json::to_vec(&v).unwrap();
        assert!(decode_desired(&bytes, "d1", Limits::default()).is_ok());
    }
}
