//! `bsdiff+zstd`: a bsdiff patch as three separately zstd-compressed
//! streams — control triples, diff bytes, extra bytes — laid out as
//! [`layout`] describes.
//!
//! Encoding uses our bsdiff-format differ ([`super::fast_bsdiff`]: a
//! divsufsort suffix array, 4 bytes per old byte, plus both layers in
//! memory): acceptable on the controller. Its interleaved output is
//! split as it is written ([`split`]) and each part compressed on its own:
//! measured on the corpus, 1.3–8.5% smaller than one interleaved stream,
//! because each part has its own statistics (the diff bytes are mostly
//! zeros, the extra bytes are new data, the controls are small integers).
//!
//! Decoding does not use `bsdiff::patch`, which needs the old layer in
//! memory; [`apply`] walks the control triples itself, reads the old layer
//! through a small buffered reader with seeks, and reads the three streams
//! side by side through their own file handles, so device memory is the
//! three zstd windows ([`Part::window_log`], 17 MiB at most) plus a few
//! 64 KiB buffers, whatever the layer size.
//!
//! Semantics of a step: output `diff length` bytes, each a diff byte added
//! (wrapping) to the old byte at the old position, which advances with
//! them; then `extra length` bytes copied from the extra stream; then move
//! the old position by the seek.

// control and split are shared with the tar-aware method, which
// writes and reads the same control triples per file.
pub(super) mod control;
mod layout;
pub(super) mod split;
#[cfg(test)]
mod tests;

use crate::error::DeltaError;
use crate::input::{OldLayer, PatchFile};
use crate::old_reader::{OldReader, OldReads};
use crate::sink::Sink;
use control::Control;
use layout::{Part, Table};
use split::Splitter;
use std::io::{self, BufReader, Read, Write};

/// Size of the decoder's work buffers.
const CHUNK: usize = 64 * 1024;
/// Buffer for the control stream, read a varint byte at a time.
const CONTROL_BUF: usize = 4 * 1024;

/// Diffs `old` → `new` and returns the payload: table, then three streams.
pub(crate) fn encode(old: &[u8], new: &[u8], level: i32) -> io::Result<Vec<u8>> {
    let mut split = Splitter::default();
    super::fast_bsdiff::diff(old, new, &mut split)?;
    let parts = split.finish()?;
    let mut table = Table { lens: [0; 3] };
    let mut streams = Vec::with_capacity(Part::ALL.len());
    for part in Part::ALL {
        let stream = compress(parts.get(part), level, part)?;
        table.lens[part as usize] = stream.len() as u64;
        streams.push(stream);
    }
    let mut payload = table.to_bytes().to_vec();
    streams.iter().for_each(|s| payload.extend_from_slice(s));
    Ok(payload)
}

/// One zstd frame (level 1 for a stream that will not compress) with the
/// stream's window, long-distance matching (diff
/// streams 0.7–20% smaller on the corpus, the others unchanged) and its
/// size pledged, so the frame header tells the decoder it needs at most
/// that much window.
fn compress(data: &[u8], level: i32, part: Part) -> io::Result<Vec<u8>> {
    let level = if super::incompressible::incompressible(data)? {
        1
    } else {
        level
    };
    let mut z = zstd::stream::write::Encoder::new(Vec::new(), level)?;
    z.window_log(part.window_log())?;
    z.long_distance_matching(true)?;
    z.set_pledged_src_size(Some(data.len() as u64))?;
    // The result is verified by its sha256; zstd's own checksum is redundant.
    z.include_checksum(false)?;
    z.write_all(data)?;
    z.finish()
}

/// Applies the payload of `patch` to the old layer, streaming into `sink`.
pub(crate) fn apply<W: Write>(
    old: &OldLayer,
    patch: &PatchFile,
    sink: &mut Sink<W>,
) -> Result<OldReads, DeltaError> {
    let table = Table::read(patch)?;
    let control = layout::open(patch, &table, Part::Control)?;
    let mut control = BufReader::with_capacity(CONTROL_BUF, control);
    let mut streams = Streams {
        diff: layout::open(patch, &table, Part::Diff)?,
        extra: layout::open(patch, &table, Part::Extra)?,
    };
    let mut old = OldReader::open(old, sink.limit())?;
    let mut bufs = Buffers {
        patch: vec![0; CHUNK],
        old: vec![0; CHUNK],
    };
    let mut steps = StepBudget::for_output(sink.limit());
    while let Some(ctrl) = Control::read(&mut control)? {
        steps.take()?;
        apply_step(ctrl, &mut streams, &mut old, sink, &mut bufs)?;
    }
    layout::expect_end(&mut streams.diff, Part::Diff)?;
    layout::expect_end(&mut streams.extra, Part::Extra)?;
    Ok(old.reads())
}

struct Streams {
    diff: layout::Stream,
    extra: layout::Stream,
}

/// One control step, checked in full before any of it is written.
fn apply_step<W: Write>(
    ctrl: Control,
    streams: &mut Streams,
    old: &mut OldReader,
    sink: &mut Sink<W>,
    bufs: &mut Buffers,
) -> Result<(), DeltaError> {
    sink.reserve(ctrl.output_len()?)?;
    old.check_span(ctrl.diff_len)?;
    add_diff(&mut streams.diff, old, ctrl.diff_len, sink, bufs)?;
    copy_extra(&mut streams.extra, ctrl.extra_len, sink, &mut bufs.patch)?;
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
