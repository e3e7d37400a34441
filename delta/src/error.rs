//! The one error type of the delta crate. Every variant says what failed
//! and names the path, digest or limit involved, so an agent can report it
//! without guessing; decoding never panics on a hostile patch, it returns
//! one of these.
//!
//! Each message is complete on its own, the underlying I/O error's text
//! included, and no variant also exposes that error as its `source()`: a
//! chain printed cause by cause (anyhow's `{:#}` or `Caused by:` list)
//! then says everything once, not twice.

use petrel_protocol::Digest;
use std::io;
use std::path::PathBuf;

/// Why a delta could not be made, read or applied.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeltaError {
    /// The patch does not start with `PTRLDLT\0`.
    #[error("not a petrel delta: bad magic")]
    BadMagic,
    /// The patch was written by a newer (or unknown) format version.
    #[error("unsupported delta format version {0} (this build reads version {supported})", supported = crate::header::FORMAT_VERSION)]
    UnsupportedVersion(u16),
    /// The header names a method id this build does not know.
    #[error("unknown delta method id {0}")]
    UnknownMethod(u8),
    /// A method name (CLI, config) that is not one of [`crate::Method::ALL`].
    #[error("unknown delta method {0:?} (expected bsdiff+zstd, zstd-ref or tar-aware)")]
    UnknownMethodName(String),
    /// The old layer on disk is not the one the delta was made from.
    #[error("old layer is {actual}, but the delta was made from {expected}")]
    FromMismatch { expected: Digest, actual: Digest },
    /// The reconstructed layer is not the one the header promised.
    #[error("reconstructed layer is {actual}, but the delta promises {expected}")]
    ToMismatch { expected: Digest, actual: Digest },
    /// The patch ended before its header or payload was complete.
    #[error("delta is truncated")]
    Truncated,
    /// The payload is malformed (bad compressed data, impossible control values).
    #[error("delta payload is corrupt: {0}")]
    Corrupt(String),
    /// A size exceeds a limit: the header's `to_size`, or a decoder memory cap.
    #[error("{what} is {size} bytes, over the limit of {limit} bytes")]
    TooLarge {
        what: &'static str,
        size: u64,
        limit: u64,
    },
    /// The encoder (zstd or bsdiff) failed on in-memory data.
    #[error("encoding with {method} failed: {error}")]
    Encode {
        method: crate::Method,
        error: io::Error,
    },
    /// A method cannot encode this pair (tar-aware on a layer that is not
    /// a tar): [`crate::diff`] skips it and keeps the best of the others.
    #[error("{method} does not apply to these layers: {reason}")]
    NotApplicable {
        method: crate::Method,
        reason: String,
    },
    /// A layer the tar-aware method indexes is not a tar it can follow.
    #[error("the {which} layer is not a readable tar at byte {offset}: {reason}")]
    NotATar {
        which: &'static str,
        offset: u64,
        reason: String,
    },
    /// No allowed method can encode these inputs (empty method list).
    #[error("no delta method to try: the method list is empty")]
    NoMethod,
    /// Reading or writing a named file failed.
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: io::Error },
    /// Reading the patch stream failed for a reason other than its content.
    #[error("reading the delta: {0}")]
    ReadPatch(io::Error),
    /// Writing the reconstructed layer failed.
    #[error("writing the reconstructed layer: {0}")]
    WriteOutput(io::Error),
    /// The patch would make the decoder work past a budget that grows with
    /// the output and that every patch [`crate::diff`] ships stays within
    /// (it applies each candidate with the device's limits first).
    #[error(
        "the patch exceeds the decoder's {what} budget ({limit} units for a {output}-byte layer)"
    )]
    OverBudget {
        what: &'static str,
        limit: u64,
        output: u64,
    },
    /// Every candidate patch failed the encoder's verifying apply; each
    /// method with its reason.
    #[error("no candidate patch passed the verifying apply: {}", list(.0))]
    NoVerifiedPatch(Vec<(crate::Method, String)>),
}

impl DeltaError {
    /// Wraps an I/O error on a named file.
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> DeltaError {
        let path = path.into();
        move |error| DeltaError::Io { path, error }
    }

    /// Classifies an error met while reading (and decompressing) the patch:
    /// an early end is [`DeltaError::Truncated`], bad data is
    /// [`DeltaError::Corrupt`], anything else is an I/O failure of the stream.
    pub(crate) fn from_patch_read(e: io::Error) -> DeltaError {
        match e.kind() {
            io::ErrorKind::UnexpectedEof => DeltaError::Truncated,
            // zstd reports bad frames as `Other` with its own message.
            io::ErrorKind::InvalidData | io::ErrorKind::Other => DeltaError::Corrupt(e.to_string()),
            _ => DeltaError::ReadPatch(e),
        }
    }
}

fn list(rejected: &[(crate::Method, String)]) -> String {
    rejected
        .iter()
        .map(|(m, why)| format!("{m}: {why}"))
        .collect::<Vec<_>>()
        .join("; ")
}
