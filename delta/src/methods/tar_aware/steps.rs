//! Running bsdiff control triples for one piece of the new tar. The
//! tar-aware decoder runs them against three kinds of old bytes — the old
//! skeleton (a view over many ranges of the old layer), one old file (one
//! range), and an inflated gzip member (in memory) — and writes to the
//! sink or, for a gzip member, to a capped buffer; this module is the one
//! loop for all of them, generic over [`OldBytes`] and [`Output`].
//!
//! A step is the `bsdiff+zstd` step: `diff_len` bytes of (diff byte + old
//! byte), then `extra_len` bytes of the extra stream, then a seek of the
//! old position. Steps are read until the piece has its declared length;
//! a step that would pass it is corrupt, and a shared [`Budget`] caps the
//! steps of the whole patch.

use super::super::bsdiff_zstd::control::Control;
use crate::sink::Sink;
use crate::DeltaError;
use std::io::{Read, Write};

/// Size of the work buffers.
pub(crate) const CHUNK: usize = 64 * 1024;

/// Old bytes a step reads, at a position that moves.
pub(crate) trait OldBytes {
    /// Fails unless `len` bytes from the position lie inside.
    fn check_span(&self, len: u64) -> Result<(), DeltaError>;
    /// Reads exactly `buf.len()` bytes at the position and advances it.
    fn read(&mut self, buf: &mut [u8]) -> Result<(), DeltaError>;
    /// Moves the position, which must stay inside `0..=len`.
    fn seek_by(&mut self, delta: i64) -> Result<(), DeltaError>;
}

/// Where a piece's bytes go.
pub(crate) trait Output {
    fn put(&mut self, buf: &[u8]) -> Result<(), DeltaError>;
}

impl<W: Write> Output for Sink<W> {
    fn put(&mut self, buf: &[u8]) -> Result<(), DeltaError> {
        self.write(buf)
    }
}

/// In-memory old bytes (an inflated gzip member).
pub(crate) struct SliceOld<'a> {
    pub data: &'a [u8],
    pub pos: usize,
}

impl OldBytes for SliceOld<'_> {
    fn check_span(&self, len: u64) -> Result<(), DeltaError> {
        match (self.pos as u64).checked_add(len) {
            Some(end) if end <= self.data.len() as u64 => Ok(()),
            _ => Err(DeltaError::Corrupt(format!(
                "control reads {len} bytes from offset {} of a {}-byte inflated member",
                self.pos,
                self.data.len()
            ))),
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<(), DeltaError> {
        self.check_span(buf.len() as u64)?;
        buf.copy_from_slice(&self.data[self.pos..self.pos + buf.len()]);
        self.pos += buf.len();
        Ok(())
    }

    fn seek_by(&mut self, delta: i64) -> Result<(), DeltaError> {
        let target = self.pos as i128 + i128::from(delta);
        if target < 0 || target > self.data.len() as i128 {
            return Err(DeltaError::Corrupt(format!(
                "control seeks to offset {target} of a {}-byte inflated member",
                self.data.len()
            )));
        }
        self.pos = target as usize;
        Ok(())
    }
}

/// A buffer that refuses to grow past `cap` (a member's declared length),
/// so a hostile op cannot make it allocate more than it said.
pub(crate) struct CappedVec {
    pub data: Vec<u8>,
    pub cap: usize,
}

impl Output for CappedVec {
    fn put(&mut self, buf: &[u8]) -> Result<(), DeltaError> {
        if self.data.len() + buf.len() > self.cap {
            return Err(DeltaError::Corrupt(format!(
                "steps write past the {}-byte inflated member",
                self.cap
            )));
        }
        self.data.extend_from_slice(buf);
        Ok(())
    }
}

/// The streams a step reads: its controls, diff bytes and extra bytes.
pub(crate) struct Inputs<'a, C, D, E> {
    pub controls: &'a mut C,
    pub diff: &'a mut D,
    pub extra: &'a mut E,
}

/// Caps the steps of a whole patch: every honest step but a piece's first
/// writes at least one byte, so `2 × output + 16` (output counting the
/// inflated members too, granted as each `Gz` op is accepted) is never
/// reached by a real patch and stops a small hostile one from spinning on
/// empty steps.
pub(crate) struct Budget {
    left: u64,
}

impl Budget {
    pub(crate) fn new(steps: u64) -> Budget {
        Budget { left: steps }
    }

    /// More steps, for output that is not the sink's (inflated members).
    pub(crate) fn grant(&mut self, steps: u64) {
        self.left = self.left.saturating_add(steps);
    }

    fn take(&mut self) -> Result<(), DeltaError> {
        self.left = self
            .left
            .checked_sub(1)
            .ok_or_else(|| DeltaError::Corrupt("too many control steps for the output".into()))?;
        Ok(())
    }
}

/// Work buffers, allocated once per decode.
pub(crate) struct Buffers {
    patch: Vec<u8>,
    old: Vec<u8>,
}

impl Default for Buffers {
    fn default() -> Buffers {
        Buffers {
            patch: vec![0; CHUNK],
            old: vec![0; CHUNK],
        }
    }
}

impl Buffers {
    /// A free chunk-sized buffer (for copies that are not steps).
    pub(crate) fn old_buf(&mut self) -> &mut [u8] {
        &mut self.old
    }
}

/// Runs steps until exactly `len` bytes went to `out`.
pub(crate) fn run<C: Read, D: Read, E: Read>(
    len: u64,
    inputs: &mut Inputs<'_, C, D, E>,
    old: &mut impl OldBytes,
    out: &mut impl Output,
    budget: &mut Budget,
    bufs: &mut Buffers,
) -> Result<(), DeltaError> {
    let mut written = 0u64;
    while written < len {
        budget.take()?;
        let ctrl = Control::read(inputs.controls)?.ok_or(DeltaError::Truncated)?;
        let n = ctrl.output_len()?;
        if n > len - written {
            return Err(DeltaError::Corrupt(format!(
                "a control step writes {n} bytes where {} remain of a {len}-byte piece",
                len - written
            )));
        }
        old.check_span(ctrl.diff_len)?;
        add_diff(inputs.diff, old, ctrl.diff_len, out, bufs)?;
        copy(inputs.extra, ctrl.extra_len, out, &mut bufs.patch)?;
        old.seek_by(ctrl.seek)?;
        written += n;
    }
    Ok(())
}

/// Writes `len` bytes of (diff byte + old byte), chunk by chunk.
fn add_diff(
    diff: &mut impl Read,
    old: &mut impl OldBytes,
    mut len: u64,
    out: &mut impl Output,
    bufs: &mut Buffers,
) -> Result<(), DeltaError> {
    while len > 0 {
        let n = chunk_len(len);
        read_payload(diff, &mut bufs.patch[..n])?;
        old.read(&mut bufs.old[..n])?;
        for (d, o) in bufs.patch[..n].iter_mut().zip(&bufs.old[..n]) {
            *d = d.wrapping_add(*o);
        }
        out.put(&bufs.patch[..n])?;
        len -= n as u64;
    }
    Ok(())
}

/// Copies `len` bytes of `src` to `out`.
pub(crate) fn copy(
    src: &mut impl Read,
    mut len: u64,
    out: &mut impl Output,
    buf: &mut [u8],
) -> Result<(), DeltaError> {
    while len > 0 {
        let n = chunk_len(len).min(buf.len());
        read_payload(src, &mut buf[..n])?;
        out.put(&buf[..n])?;
        len -= n as u64;
    }
    Ok(())
}

pub(crate) fn chunk_len(remaining: u64) -> usize {
    usize::try_from(remaining).map_or(CHUNK, |r| r.min(CHUNK))
}

fn read_payload(src: &mut impl Read, buf: &mut [u8]) -> Result<(), DeltaError> {
    src.read_exact(buf).map_err(DeltaError::from_patch_read)
}
