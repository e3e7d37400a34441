//! Petrel's wire protocol: the one place that defines what crosses the wire.
//!
//! Pure data and rules, no I/O: every other crate (controller, agent,
//! simulator) depends on this one and never the reverse.
//!
//! Layout:
//! - [`digest`]: sha256 content digests (`sha256:<hex>`), parsed and checked.
//! - [`topics`]: the only function that builds and parses MQTT topic names.
//! - [`manifest`]: image and release manifests (what a device runs).
//! - [`health`]: what a health check probes, and its timing.
//! - [`signing`]: ed25519 signatures over desired states, key endorsements.
//! - [`start_order`]: the order a release's services start (`depends_on`).
//! - [`platform`]: image and device platforms, a release resolved for one.
//! - [`messages`]: desired / reported / event / status messages.
//! - [`logs`]: a service log tail asked of a device, and its answer.
//! - [`lifecycle`]: the update phase enum and its legal transitions.
//! - [`broker`]: the broker address (`mqtt://`, `mqtts://`), parsed once.
//! - [`error_text`]: an error and its causes as one line of text.
//! - [`codec`]: decoding with size limits and schema-version checks.
//! - [`layer_policy`]: what a device does with each entry of a layer tar
//!   (shared by the device's unpacker and the controller's import audit).

pub mod acl;
pub mod broker;
pub mod codec;
pub mod digest;
pub mod error_text;
pub mod health;
pub mod layer_policy;
pub mod lifecycle;
pub mod logs;
pub mod manifest;
pub mod messages;
pub mod platform;
pub mod policy;
pub mod rollout;
pub mod signing;
pub mod start_order;
pub mod topics;
pub mod window;

pub use broker::{BrokerUrl, BrokerUrlError};
pub use codec::{
    decode, decode_desired, decode_desired_trusted, encode, Accepted, DecodeError, Limits, Trust,
};
pub use digest::{Digest, DigestError};
pub use error_text::error_text;
pub use layer_policy::{AuditSummary, EntryKind, LayerAudit, Treatment};
pub use lifecycle::{Phase, Step, TransitionError};
pub use logs::{LogReply, LogRequest};
pub use manifest::{
    HealthCheck, ImageConfig, ImageManifest, LayerDescriptor, ManifestError, NetworkMode,
    ReleaseManifest, ReleaseRef, RestartPolicy, ServiceSpec, SwapStrategy, VolumeMount,
};
pub use messages::{
    Desired, DeviceHealth, Envelope, Event, EventKind, Progress, Reported, ServiceState, Status,
};
pub use platform::{InvalidPlatform, Platform};
pub use signing::{Endorsement, PublicKey, SignatureError, SigningKey};

/// Schema version carried by every message and manifest this crate writes.
pub const SCHEMA: u32 = 1;

/// Device identifiers: 1-64 chars of `[A-Za-z0-9_-]`, so they are safe in
/// topic names, file names and URLs.
pub fn validate_device_id(id: &str) -> Result<(), InvalidName> {
    validate_name(id, 64)
}

/// Names of images, releases and services: 1-128 chars of
/// `[A-Za-z0-9_.-]`, not starting with `.`.
pub fn validate_name(name: &str, max: usize) -> Result<(), InvalidName> {
    let ok = !name.is_empty()
        && name.len() <= max
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(InvalidName(name.to_string()))
    }
}

/// A name or id that does not match the allowed character set or length.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid name {0:?}: use 1-128 characters of A-Z a-z 0-9 _ . - (not starting with .)")]
pub struct InvalidName(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_ids_with_slashes_or_wildcards_are_rejected() {
        for bad in ["", "a/b", "+", "#", "..", ".hidden", "x y"] {
            assert!(validate_device_id(bad).is_err(), "{bad:?} accepted");
        }
        assert!(validate_device_id("pi-042_a").is_ok());
    }
}
