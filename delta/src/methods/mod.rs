//! One module per delta method, each with its encoder (controller side)
//! and its decoder (device side); this module only dispatches on
//! [`Method`]. A new method (the planned tar-aware one) is a new file here,
//! a new [`Method`] variant and one arm in each function below.

pub(crate) mod bsdiff_zstd;
pub(crate) mod zstd_ref;

use crate::decode::{Limits, OldLayer, PatchFile};
use crate::sink::Sink;
use crate::{DeltaError, EncodeOptions, Header, Method};
use std::io::Write;

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
    };
    encoded.map_err(|source| DeltaError::Encode { method, source })
}

/// Decodes the payload of `patch` into `sink`. The old layer has already
/// been verified against the header's from-digest.
pub(crate) fn decode<W: Write>(
    header: &Header,
    old: &OldLayer,
    patch: &PatchFile,
    sink: &mut Sink<W>,
    limits: &Limits,
) -> Result<(), DeltaError> {
    match header.method {
        Method::BsdiffZstd => bsdiff_zstd::apply(old, patch, sink),
        Method::ZstdRef => zstd_ref::apply(header, old, patch, sink, limits),
    }
}
