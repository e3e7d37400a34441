//! `zstd-ref`: the new layer compressed by zstd with the whole old layer
//! as reference prefix, the equivalent of `zstd --patch-from`.
//!
//! Matches may reach anywhere into the old layer, so the window must cover
//! old + new, and the decoder must hold the whole old layer in memory plus
//! zstd's window buffer (at most the new layer's size). That is why the
//! encoder only tries it for old layers up to `EncodeOptions::max_ref_prefix`
//! and the decoder refuses old layers over `Limits::max_ref_prefix`.
//!
//! Measured on the corpus (zstd 1.5.7, level 19): long-distance matching
//! and `multithread(1)` change the size by under 0.5% once the window
//! covers old + new, so neither the `zstdmt` feature nor a special mode is
//! used; level 22 was not consistently smaller.

use crate::error::DeltaError;
use crate::input::{Limits, OldLayer, PatchFile};
use crate::options::EncodeOptions;
use crate::sink::Sink;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};

/// zstd's largest window on 64-bit targets.
const MAX_WINDOW_LOG: u32 = 31;
/// zstd's smallest window.
const MIN_WINDOW_LOG: u32 = 10;

/// log2 of a window covering `old_len + new_len` bytes.
pub(crate) fn window_log(old_len: u64, new_len: u64) -> u32 {
    let total = old_len.saturating_add(new_len).max(1);
    let log = u64::BITS - (total - 1).leading_zeros();
    log.clamp(MIN_WINDOW_LOG, MAX_WINDOW_LOG)
}

/// Whether the encoder may use this method for a pair of these sizes.
pub(crate) fn check_applicable(
    old_len: u64,
    new_len: u64,
    opts: &EncodeOptions,
) -> Result<(), DeltaError> {
    if old_len > opts.max_ref_prefix {
        return Err(DeltaError::TooLarge {
            what: "old layer for zstd-ref",
            size: old_len,
            limit: opts.max_ref_prefix,
        });
    }
    let default_limits = Limits::default();
    if window_log(old_len, new_len) > default_limits.zstd_ref_window_log_max {
        return Err(DeltaError::TooLarge {
            what: "old + new layer for the zstd-ref window",
            size: old_len.saturating_add(new_len),
            limit: 1 << default_limits.zstd_ref_window_log_max,
        });
    }
    Ok(())
}

/// Compresses `new` against `old` as reference prefix.
pub(crate) fn encode(old: &[u8], new: &[u8], level: i32) -> io::Result<Vec<u8>> {
    let mut z = zstd::stream::write::Encoder::with_ref_prefix(Vec::new(), level, old)?;
    z.set_pledged_src_size(Some(new.len() as u64))?;
    z.window_log(window_log(old.len() as u64, new.len() as u64))?;
    z.long_distance_matching(true)?;
    // The result is verified by its sha256; zstd's own checksum is redundant.
    z.include_checksum(false)?;
    z.write_all(new)?;
    z.finish()
}

/// Decompresses the payload against the old layer, streaming into `sink`.
pub(crate) fn apply<W: Write>(
    header: &crate::Header,
    old: &OldLayer,
    patch: &PatchFile,
    sink: &mut Sink<W>,
    limits: &Limits,
) -> Result<(), DeltaError> {
    let prefix = read_old(old, limits)?;
    let payload = patch.section(0, patch.payload_len)?;
    let log = window_log(header.from_size, header.to_size).min(limits.zstd_ref_window_log_max);
    let mut z = zstd::stream::read::Decoder::with_ref_prefix(BufReader::new(payload), &prefix)
        .map_err(DeltaError::ReadPatch)?;
    z.window_log_max(log).map_err(DeltaError::ReadPatch)?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match z.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(DeltaError::from_patch_read(e)),
        };
        sink.write(&buf[..n])?;
    }
}

/// The whole old layer, if it is within the decoder's memory cap.
fn read_old(old: &OldLayer, limits: &Limits) -> Result<Vec<u8>, DeltaError> {
    if old.size > limits.max_ref_prefix {
        return Err(DeltaError::TooLarge {
            what: "old layer for a zstd-ref patch",
            size: old.size,
            limit: limits.max_ref_prefix,
        });
    }
    let file = File::open(&old.path).map_err(DeltaError::io(&old.path))?;
    // `size` was measured while verifying the digest; never read more.
    let mut prefix = Vec::with_capacity(old.size as usize);
    file.take(old.size)
        .read_to_end(&mut prefix)
        .map_err(DeltaError::io(&old.path))?;
    Ok(prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_covers_old_plus_new() {
        assert_eq!(window_log(0, 0), MIN_WINDOW_LOG);
        assert_eq!(window_log(1 << 20, 1 << 20), 21);
        assert_eq!(window_log(1 << 20, (1 << 20) + 1), 22);
        assert_eq!(window_log(u64::MAX, u64::MAX), MAX_WINDOW_LOG);
    }

    #[test]
    fn encoder_skips_old_layers_over_max_ref_prefix() {
        let opts = EncodeOptions {
            max_ref_prefix: 100,
            ..EncodeOptions::default()
        };
        assert!(check_applicable(100, 10, &opts).is_ok());
        let err = check_applicable(101, 10, &opts).unwrap_err();
        assert!(
            matches!(err, DeltaError::TooLarge { limit: 100, .. }),
            "{err}"
        );
    }
}
