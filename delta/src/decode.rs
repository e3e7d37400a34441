//! The device side: [`apply`] checks the header and the old layer, then
//! streams the payload through the method's decoder into a size-capped,
//! hashing sink. Nothing is written before the old layer is verified; the
//! caller writes to a temporary file and discards it on any error.
//!
//! The patch is a file, not a stream: a method may read several parts of
//! its payload at once (bsdiff+zstd reads three compressed streams side by
//! side), each through its own file handle, without buffering any of them.

use crate::error::DeltaError;
use crate::header::{read_header, Header, HEADER_LEN};
use crate::input::{Limits, OldLayer, PatchFile};
use crate::methods;
use crate::old_reader::OldReads;
use crate::sink::Sink;
use petrel_protocol::Digest;
use sha2::{Digest as _, Sha256};
use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

/// What [`apply`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyReport {
    pub header: Header,
    /// Bytes written to the output (equal to `header.to_size`).
    pub bytes_written: u64,
    /// What the decoder read from the old layer by offset, against its
    /// budget (`None` for zstd-ref, which reads the old layer once, whole).
    pub old_reads: Option<OldReads>,
}

/// Applies the patch file `patch` to the layer at `old`, streaming the new
/// layer to `out`, with the default [`Limits`].
pub fn apply(old: &Path, patch: &Path, out: impl Write) -> Result<ApplyReport, DeltaError> {
    apply_with_limits(old, patch, out, &Limits::default())
}

/// [`apply`] with explicit decoder limits.
pub fn apply_with_limits(
    old: &Path,
    patch: &Path,
    out: impl Write,
    limits: &Limits,
) -> Result<ApplyReport, DeltaError> {
    let (header, patch) = open_patch(patch)?;
    if header.to_size > limits.max_output {
        return Err(DeltaError::TooLarge {
            what: "new layer the patch claims",
            size: header.to_size,
            limit: limits.max_output,
        });
    }
    let old = verify_old(old, &header)?;
    // The header's to_size caps the output: a lying header cannot make us
    // write more than it promised.
    let mut sink = Sink::new(out, header.to_size);
    let old_reads = methods::decode(&header, &old, &patch, &mut sink, limits)?;
    let bytes_written = sink.finish(&header)?;
    Ok(ApplyReport {
        header,
        bytes_written,
        old_reads,
    })
}

/// Reads the header and measures the payload behind it.
fn open_patch(path: &Path) -> Result<(Header, PatchFile), DeltaError> {
    let mut file = File::open(path).map_err(DeltaError::io(path))?;
    let header = read_header(&mut file)?;
    let len = file.metadata().map_err(DeltaError::io(path))?.len();
    let payload_start = HEADER_LEN as u64;
    Ok((
        header,
        PatchFile {
            path: path.to_path_buf(),
            payload_start,
            // read_header succeeded, so the file holds at least the header.
            payload_len: len.saturating_sub(payload_start),
        },
    ))
}

/// Hashes the old layer (streaming) and checks it is the patch's source.
fn verify_old(path: &Path, header: &Header) -> Result<OldLayer, DeltaError> {
    let (actual, size) = hash_file(path)?;
    if actual != header.from {
        return Err(DeltaError::FromMismatch {
            expected: header.from.clone(),
            actual,
        });
    }
    if size != header.from_size {
        return Err(DeltaError::Corrupt(format!(
            "header says the old layer is {} bytes but {} has {size}",
            header.from_size,
            path.display()
        )));
    }
    Ok(OldLayer {
        path: path.to_path_buf(),
        size,
    })
}

/// sha256 and length of a file, read in 64 KiB chunks.
fn hash_file(path: &Path) -> Result<(Digest, u64), DeltaError> {
    let mut file = File::open(path).map_err(DeltaError::io(path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        match file.read(&mut buf) {
            Ok(0) => return Ok((Digest::from_hasher(hasher), size)),
            Ok(n) => {
                hasher.update(&buf[..n]);
                size += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(DeltaError::io(path)(e)),
        }
    }
}
