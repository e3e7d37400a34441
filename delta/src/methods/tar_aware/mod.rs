//! `tar-aware`: a delta that knows a layer is a tar. Whole-layer byte
//! diffs waste matches across unrelated files and cannot see through
//! compression; this method diffs each file of the new tar against the
//! old file it most likely came from, diffs the tar's skeleton (headers,
//! links, padding) on its own, and diffs gzip members by their inflated
//! contents, recompressing them bit-exactly on the device.
//!
//! Layout:
//! - `tar_index`: the one tar parser, used by the encoder on both tars and
//!   by the decoder on the (verified) old tar.
//! - `matching`: which old file each new file is diffed against.
//! - `skeleton`: the skeleton diff and its cutting at the files' places.
//! - `encoder`: per-file diffs and the layout of the raw streams.
//! - `ops`: the op stream the decoder runs (it never parses the new tar).
//! - `streams`: the payload's table and four compressed streams.
//! - `decoder`, `old_view`, `steps`: the device side, streaming, reading
//!   old bytes by offset.
//! - `gz`: the `Gz` op on both sides.
//!
//! A tar that does not parse makes the method not applicable
//! ([`DeltaError::NotApplicable`]): `diff` then keeps the best of the
//! other methods, and since it always keeps the smallest patch, adding
//! this method never makes a delta larger.

mod decoder;
mod encoder;
mod gz;
mod matching;
mod old_view;
mod ops;
mod skeleton;
mod steps;
mod streams;
mod tar_index;
#[cfg(test)]
mod tests;
mod zero_runs;

use crate::error::DeltaError;
use crate::input::{OldLayer, PatchFile};
use crate::method::Method;
use crate::old_reader::OldReads;
use crate::sink::Sink;
use std::io::Write;
use std::path::Path;
use streams::Codec;
use tar_index::{Detail, FileSource};

/// Largest gzip member, compressed or inflated, a `Gz` op may involve:
/// the decoder holds the old and new member (and the new one inflated)
/// in memory while rebuilding it, so this bounds that part of its
/// footprint. Larger members are diffed as plain bytes.
pub(crate) const GZ_MAX: u64 = 8 << 20;

/// Encodes `old` → `new` (both tars) at zstd `level`.
pub(crate) fn encode(old: &[u8], new: &[u8], level: i32) -> Result<Vec<u8>, DeltaError> {
    let raw = encoder::plan(old, new).map_err(not_applicable)?;
    encoder::pack(&raw, level, |stream| codecs(raw.get(stream).len())).map_err(|source| {
        DeltaError::Encode {
            method: Method::TarAware,
            error: source,
        }
    })
}

/// Streams up to this size are also tried with zstd.
const ZSTD_TRIAL_MAX: usize = 1 << 20;

/// The codecs tried for a stream of `len` bytes; the smallest result is
/// kept. Measured on the corpus (every stream of every pair, zstd at
/// levels 19 and 22 with the window sized to the stream, LZMA2 at xz `-9`
/// and `-9e` with the dictionary sized to it): LZMA2 `-9e` was smallest
/// for 17 of 18 stream/pair pairs, by 4–17% on the diff streams that
/// dominate; zstd won one small extra stream by 1%. zstd is still tried
/// where that costs nothing (small streams); above [`ZSTD_TRIAL_MAX`] it
/// would add up to 60% to the encode time for nothing.
fn codecs(len: usize) -> Vec<Codec> {
    if len <= ZSTD_TRIAL_MAX {
        vec![Codec::Lzma2, Codec::Zstd]
    } else {
        vec![Codec::Lzma2]
    }
}

/// A tar that cannot be indexed makes the method inapplicable.
fn not_applicable(e: DeltaError) -> DeltaError {
    match e {
        DeltaError::NotATar { .. } => DeltaError::NotApplicable {
            method: Method::TarAware,
            reason: e.to_string(),
        },
        other => other,
    }
}

/// Whether both files index as tars (cheap: headers only), so callers can
/// tell up front whether [`encode`] would apply.
pub(crate) fn check_files(old: &Path, new: &Path) -> Result<(), DeltaError> {
    for (path, which) in [(old, "old"), (new, "new")] {
        let file = std::fs::File::open(path).map_err(DeltaError::io(path))?;
        let len = file.metadata().map_err(DeltaError::io(path))?.len();
        let mut src = FileSource {
            file,
            len,
            path: path.to_path_buf(),
        };
        tar_index::index(&mut src, Detail::FilesOnly, which).map_err(not_applicable)?;
    }
    Ok(())
}

/// Applies a tar-aware payload to the old layer, streaming into `sink`.
pub(crate) fn apply<W: Write>(
    old: &OldLayer,
    patch: &PatchFile,
    sink: &mut Sink<W>,
) -> Result<OldReads, DeltaError> {
    decoder::apply(old, patch, sink)
}
