//! `bsdiff+zstd`: a patch in the bsdiff 0.2.1 crate's stream format,
//! compressed with zstd.
//!
//! Encoding uses `bsdiff::diff`, which needs both layers in memory (≈ 19×
//! the input): acceptable on the controller. Decoding does not use
//! `bsdiff::patch`, which needs the old layer in memory; [`apply`] walks
//! the control triples itself, reads the old layer through a small
//! buffered reader with seeks, and streams the output, so device memory is
//! the zstd window ([`WINDOW_LOG`]) plus a few 64 KiB buffers, whatever
//! the layer size.
//!
//! Stream format (no header, repeated to EOF): a control triple of three
//! sign-magnitude little-endian i64 — diff length, extra length, old seek —
//! then `diff length` bytes to add (wrapping) to old bytes, then
//! `extra length` literal bytes; the old position then moves by the seek.

mod control;
mod old;
#[cfg(test)]
mod tests;

use crate::decode::OldLayer;
use crate::sink::Sink;
use crate::DeltaError;
use control::Control;
use old::OldReader;
use std::io::{self, BufWriter, Read, Write};

/// log2 of the zstd window for the compressed patch stream. It bounds the
/// decoder's memory (8 MiB); measured on the corpus, wider windows (24, 25)
/// saved under 0.1%. The decoder refuses frames that ask for more.
pub(crate) const WINDOW_LOG: u32 = 23;

/// Size of the decoder's work buffers.
const CHUNK: usize = 64 * 1024;

/// Diffs `old` → `new` and returns the zstd-compressed patch stream.
pub(crate) fn encode(old: &[u8], new: &[u8], level: i32) -> io::Result<Vec<u8>> {
    let mut z = zstd::stream::write::Encoder::new(Vec::new(), level)?;
    z.window_log(WINDOW_LOG)?;
    z.long_distance_matching(true)?;
    // The result is verified by its sha256; zstd's own checksum is redundant.
    z.include_checksum(false)?;
    let mut w = BufWriter::with_capacity(CHUNK, z);
    bsdiff::diff(old, new, &mut w)?;
    w.into_inner().map_err(|e| e.into_error())?.finish()
}

/// Applies a compressed bsdiff stream to the old layer, streaming into `sink`.
pub(crate) fn apply<R: Read, W: Write>(
    old: &OldLayer,
    payload: R,
    sink: &mut Sink<W>,
) -> Result<(), DeltaError> {
    let mut patch = zstd::stream::read::Decoder::new(payload).map_err(DeltaError::ReadPatch)?;
    patch
        .window_log_max(WINDOW_LOG)
        .map_err(DeltaError::ReadPatch)?;
    let mut old = OldReader::open(old, CHUNK)?;
    let mut bufs = Buffers {
        patch: vec![0; CHUNK],
        old: vec![0; CHUNK],
    };
    let mut steps = StepBudget::for_output(sink.limit());
    while let Some(ctrl) = Control::read(&mut patch)? {
        steps.take()?;
        apply_step(ctrl, &mut patch, &mut old, sink, &mut bufs)?;
    }
    Ok(())
}

/// One control step, checked in full before any of it is written.
fn apply_step<R: Read, W: Write>(
    ctrl: Control,
    patch: &mut R,
    old: &mut OldReader,
    sink: &mut Sink<W>,
    bufs: &mut Buffers,
) -> Result<(), DeltaError> {
    sink.reserve(ctrl.output_len()?)?;
    old.check_span(ctrl.diff_len)?;
    add_diff(patch, old, ctrl.diff_len, sink, bufs)?;
    copy_extra(patch, ctrl.extra_len, sink, &mut bufs.patch)?;
    old.seek_by(ctrl.seek)
}

/// Every honest step but the last writes at least one byte, so a patch for
/// `n` output bytes needs at most `n + 1` steps; the cap (with slack) stops
/// a small patch from spinning on billions of empty steps.
struct StepBudget {
    left: u64,
    output: u64,
}

impl StepBudget {
    fn for_output(output: u64) -> StepBudget {
        StepBudget {
            left: output.saturating_mul(2).saturating_add(16),
            output,
        }
    }

    fn take(&mut self) -> Result<(), DeltaError> {
        self.left = self.left.checked_sub(1).ok_or_else(|| {
            DeltaError::Corrupt(format!(
                "too many control steps for {} output bytes",
                self.output
            ))
        })?;
        Ok(())
    }
}

struct Buffers {
    patch: Vec<u8>,
    old: Vec<u8>,
}

/// Writes `len` bytes of (diff byte + old byte), chunk by chunk.
fn add_diff<R: Read, W: Write>(
    patch: &mut R,
    old: &mut OldReader,
    mut len: u64,
    sink: &mut Sink<W>,
    bufs: &mut Buffers,
) -> Result<(), DeltaError> {
    while len > 0 {
        let n = chunk_len(len);
        read_payload(patch, &mut bufs.patch[..n])?;
        old.read_exact(&mut bufs.old[..n])?;
        for (d, o) in bufs.patch[..n].iter_mut().zip(&bufs.old[..n]) {
            *d = d.wrapping_add(*o);
        }
        sink.write(&bufs.patch[..n])?;
        len -= n as u64;
    }
    Ok(())
}

/// Copies `len` literal bytes from the patch to the output.
fn copy_extra<R: Read, W: Write>(
    patch: &mut R,
    mut len: u64,
    sink: &mut Sink<W>,
    buf: &mut [u8],
) -> Result<(), DeltaError> {
    while len > 0 {
        let n = chunk_len(len);
        read_payload(patch, &mut buf[..n])?;
        sink.write(&buf[..n])?;
        len -= n as u64;
    }
    Ok(())
}

fn chunk_len(remaining: u64) -> usize {
    usize::try_from(remaining).map_or(CHUNK, |r| r.min(CHUNK))
}

fn read_payload(patch: &mut impl Read, buf: &mut [u8]) -> Result<(), DeltaError> {
    patch.read_exact(buf).map_err(DeltaError::from_patch_read)
}
