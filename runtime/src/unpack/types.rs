//! The limits, statistics and errors of layer unpacking.

use petrel_protocol::Digest;
use std::io;
use std::path::PathBuf;

const GIB: u64 = 1 << 30;

/// Caps on one layer, enforced while streaming.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnpackLimits {
    /// Largest uncompressed tar stream (headers, padding and trailing bytes
    /// included), and largest sum of file sizes. Default 4 GiB.
    pub max_total_bytes: u64,
    /// Largest single file. Default 1 GiB.
    pub max_entry_bytes: u64,
    /// Most tar entries of any kind. Default 1,000,000.
    pub max_entries: u64,
    /// Keep setuid/setgid bits (default: strip them, as a release must
    /// opt in to programs that gain privileges when run).
    pub allow_setid: bool,
}

impl Default for UnpackLimits {
    fn default() -> Self {
        let (max_total_bytes, max_entry_bytes, max_entries) = (4 * GIB, GIB, 1_000_000);
        UnpackLimits {
            max_total_bytes,
            max_entry_bytes,
            max_entries,
            allow_setid: false,
        }
    }
}

/// What an unpack read and wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UnpackStats {
    /// Tar entries read (directories, links and skipped entries included).
    pub entries: u64,
    /// Bytes of file content written.
    pub bytes: u64,
    /// Character and block device entries recorded and not created.
    pub devices_skipped: u64,
    /// Entries whose setuid/setgid bits were stripped.
    pub setid_stripped: u64,
}

/// Why a layer was not unpacked. Every variant names the blob.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("layer {blob}: i/o error on {path}: {source}")]
    Io {
        blob: PathBuf,
        path: PathBuf,
        source: io::Error,
    },
    #[error("layer {blob} is corrupt: {reason}")]
    Corrupt { blob: PathBuf, reason: String },
    #[error("layer {blob}: unsafe entry {entry}: {reason}")]
    UnsafeEntry {
        blob: PathBuf,
        entry: PathBuf,
        reason: String,
    },
    #[error("layer {blob}: diff_id is {actual}, expected {expected}")]
    DigestMismatch {
        blob: PathBuf,
        expected: Digest,
        actual: Digest,
    },
    #[error("layer {blob}: {what} exceeds the limit of {limit}")]
    TooLarge {
        blob: PathBuf,
        what: String,
        limit: u64,
    },
}
