//! One module per delta method, each with its encoder (controller side)
//! and its decoder (device side); this module only dispatches on
//! [`Method`]. A new method is a new module here, a new [`Method`] variant
//! and one arm in each function below.

pub(crate) mod bsdiff_zstd;
pub(crate) mod fast_bsdiff;
mod gram_filter;
mod incompressible;
pub(crate) mod tar_aware;
pub(crate) mod zstd_ref;

use crate::error::DeltaError;
use crate::header::Header;
use crate::input::{Limits, OldLayer, PatchFile};
use crate::method::Method;
use crate::old_reader::OldReads;
use crate::options::EncodeOptions;
use crate::sink::Sink;
use std::io::Write;
use std::path::Path;

/// Whether `method` may encode a pair of these sizes under `opts`; the
/// error says why not (it is reported only if no method at all applies).
pub(crate) fn check_applicable(
    method: Method,
    old_len: u64,
    new_len: u64,
    opts: &EncodeOptions,
) -> Result<(), DeltaError> {
    match method {
        Method::BsdiffZstd => Ok(()),
        Method::ZstdRef => zstd_ref::check_applicable(old_len, new_len, opts),
        Method::TarAware => Ok(()),
    }
}

/// About the most memory `method` takes to encode a pair of these sizes,
/// beyond the two inputs (measured peaks, release build: bsdiff+zstd
/// 4.7 bytes per old byte for its suffix array, gram filter and step
/// buffers, on at most a window's old bytes, plus 2 per new byte and
/// 96 MiB of zstd state; zstd-ref its window and 84 MiB; tar-aware the
/// same index, its changed files and 190 MiB of LZMA compressors).
/// Conservative: on 100 MiB pairs a method measured ~450 MiB in all.
pub(crate) fn memory_needed(method: Method, old_len: u64, new_len: u64) -> u64 {
    const MIB: u64 = 1 << 20;
    let window = fast_bsdiff::WINDOWED_ABOVE as u64;
    let index = |old: u64| old * 47 / 10;
    match method {
        Method::BsdiffZstd => index(old_len.min(window)) + 2 * new_len + 96 * MIB,
        Method::ZstdRef => {
            let span = (old_len + new_len).next_power_of_two();
            2 * new_len + span / 2 + 84 * MIB
        }
        Method::TarAware => index(old_len.min(window)) + 2 * new_len + 190 * MIB,
    }
}

/// Encodes the payload (everything after the header) in memory.
pub(crate) fn encode(
    method: Method,
    old: &[u8],
    new: &[u8],
    opts: &EncodeOptions,
) -> Result<Vec<u8>, DeltaError> {
    let encoded = match method {
        Method::BsdiffZstd => bsdiff_zstd::encode(old, new, opts.zstd_level),
        Method::ZstdRef => zstd_ref::encode(old, new, opts.zstd_level),
        Method::TarAware => return tar_aware::encode(old, new, opts.zstd_level),
    };
    encoded.map_err(|source| DeltaError::Encode {
        method,
        error: source,
    })
}

/// Decodes the payload of `patch` into `sink` and says what it read from
/// the old layer by offset. The old layer has already been verified
/// against the header's from-digest.
pub(crate) fn decode<W: Write>(
    header: &Header,
    old: &OldLayer,
    patch: &PatchFile,
    sink: &mut Sink<W>,
    limits: &Limits,
) -> Result<Option<OldReads>, DeltaError> {
    match header.method {
        Method::BsdiffZstd => bsdiff_zstd::apply(old, patch, sink).map(Some),
        Method::ZstdRef => zstd_ref::apply(header, old, patch, sink, limits).map(|()| None),
        Method::TarAware => tar_aware::apply(old, patch, sink).map(Some),
    }
}

/// Whether `method` applies to the layers at these paths, looking inside
/// them where the method needs to (tar-aware indexes both tars' headers).
pub(crate) fn check_files(method: Method, old: &Path, new: &Path) -> Result<(), DeltaError> {
    match method {
        Method::TarAware => tar_aware::check_files(old, new),
        Method::BsdiffZstd | Method::ZstdRef => Ok(()),
    }
}
