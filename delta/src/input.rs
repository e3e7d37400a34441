//! What a decoder reads, shared by [`crate::decode`] (which opens and
//! verifies them) and every method's decoder in `methods/` (which reads
//! them): the verified old layer, the patch file, and the device's caps.
//! They sit in a module of their own so that `decode` and `methods` do not
//! import each other.

use crate::error::DeltaError;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Take};
use std::path::PathBuf;

/// Decoder-side caps, independent of what a patch header claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest old layer a `zstd-ref` patch may make the decoder hold in
    /// memory. Default 64 MiB.
    pub max_ref_prefix: u64,
    /// Largest zstd window (log2) a `zstd-ref` frame may ask for. Default 27
    /// (128 MiB), zstd's own default limit; the encoder stays within it.
    pub zstd_ref_window_log_max: u32,
    /// Largest new layer a patch may claim to produce. Every decoder budget
    /// (steps, old reads, gzip rebuilds) scales with the header's
    /// `to_size`, so this bounds what a lying header can cost. Default
    /// 4 GiB, the agent's largest accepted layer.
    pub max_output: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_ref_prefix: 64 << 20,
            zstd_ref_window_log_max: 27,
            max_output: 4 << 30,
        }
    }
}

/// The old layer, verified against the header.
pub(crate) struct OldLayer {
    pub path: PathBuf,
    pub size: u64,
}

/// The patch file, its header read: where the payload lies in it.
pub(crate) struct PatchFile {
    pub path: PathBuf,
    /// Offset of the payload's first byte in the file.
    pub payload_start: u64,
    /// Bytes from `payload_start` to the end of the file.
    pub payload_len: u64,
}

impl PatchFile {
    /// A new handle on payload bytes `offset..offset + len`, which the
    /// caller has checked lie inside the payload; reads stop at its end.
    pub(crate) fn section(&self, offset: u64, len: u64) -> Result<Take<File>, DeltaError> {
        let mut file = File::open(&self.path).map_err(DeltaError::io(&self.path))?;
        file.seek(SeekFrom::Start(self.payload_start + offset))
            .map_err(DeltaError::io(&self.path))?;
        Ok(file.take(len))
    }
}
