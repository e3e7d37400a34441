//! Bounded-memory access to the old layer for the bsdiff decoder: a small
//! buffered reader that tracks its position and refuses any read or seek
//! outside `0..=size`, so a hostile control triple cannot reach past the
//! file or make the position overflow.

use crate::decode::OldLayer;
use crate::DeltaError;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::PathBuf;

/// Read-ahead of the old layer's buffer.
const READ_AHEAD: usize = 4 * 1024;

/// Bytes the reader may fetch from the old layer per byte of output, plus
/// a fixed allowance: honest patches read each old byte about once, while
/// one alternating far seeks with 1-byte reads would refill the read-ahead
/// for every output byte.
const READS_PER_OUTPUT_BYTE: u64 = 8;
const READS_BASE: u64 = 64 << 20;

/// The old layer file, refusing to deliver more than a budget of bytes.
struct Budgeted {
    file: File,
    left: u64,
}

impl Read for Budgeted {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 && !buf.is_empty() {
            return Err(io::Error::other(
                "the patch made the decoder read the old layer far more than it writes",
            ));
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.file.read(&mut buf[..want])?;
        self.left -= n as u64;
        Ok(n)
    }
}

impl Seek for Budgeted {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.file.seek(to)
    }
}

/// The old layer, read forward with occasional relative seeks.
pub(crate) struct OldReader {
    inner: BufReader<Budgeted>,
    pos: u64,
    size: u64,
    path: PathBuf,
}

impl OldReader {
    /// Opens the (already verified) old layer. The buffer is small on
    /// purpose: a seek outside it discards it, so a hostile patch that
    /// alternates far seeks with 1-byte reads makes every output byte cost
    /// a refill of this size (reads of at least this size bypass it).
    /// All reads together are capped by a budget proportional to
    /// `output_limit` (the header's `to_size`).
    pub(crate) fn open(old: &OldLayer, output_limit: u64) -> Result<OldReader, DeltaError> {
        let file = File::open(&old.path).map_err(DeltaError::io(&old.path))?;
        let left = output_limit
            .saturating_mul(READS_PER_OUTPUT_BYTE)
            .saturating_add(READS_BASE);
        Ok(OldReader {
            inner: BufReader::with_capacity(READ_AHEAD, Budgeted { file, left }),
            pos: 0,
            size: old.size,
            path: old.path.clone(),
        })
    }

    /// Fails unless `len` bytes from the current position lie inside the file.
    pub(crate) fn check_span(&self, len: u64) -> Result<(), DeltaError> {
        match self.pos.checked_add(len) {
            Some(end) if end <= self.size => Ok(()),
            _ => Err(DeltaError::Corrupt(format!(
                "control reads {len} old bytes from offset {}, past the old layer's {} bytes",
                self.pos, self.size
            ))),
        }
    }

    /// Reads exactly `buf.len()` bytes (the span was checked beforehand).
    pub(crate) fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), DeltaError> {
        self.check_span(buf.len() as u64)?;
        self.inner
            .read_exact(buf)
            .map_err(DeltaError::io(&self.path))?;
        self.pos += buf.len() as u64;
        Ok(())
    }

    /// Moves to `offset`, which must lie inside `0..=size`.
    pub(crate) fn seek_to(&mut self, offset: u64) -> Result<(), DeltaError> {
        if offset == self.pos {
            return Ok(());
        }
        let delta = i128::from(offset) - i128::from(self.pos);
        let delta = i64::try_from(delta).map_err(|_| {
            DeltaError::Corrupt(format!("old offset {offset} is outside the old layer"))
        })?;
        self.seek_by(delta)
    }

    /// Moves the position by `delta`, which must land inside `0..=size`.
    pub(crate) fn seek_by(&mut self, delta: i64) -> Result<(), DeltaError> {
        let target = i128::from(self.pos) + i128::from(delta);
        if target < 0 || target > i128::from(self.size) {
            return Err(DeltaError::Corrupt(format!(
                "control seeks to old offset {target}, outside the old layer (0..={})",
                self.size
            )));
        }
        if delta != 0 {
            self.inner
                .seek_relative(delta)
                .map_err(DeltaError::io(&self.path))?;
        }
        self.pos = target as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_past_the_budget_are_errors_and_seeks_do_not_refund_it() {
        let mut file = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut file, &[7u8; 10_000]).unwrap();
        let mut old = Budgeted { file, left: 6_000 };
        let mut buf = [0u8; 4_000];
        old.seek(SeekFrom::Start(0)).unwrap();
        assert_eq!(old.read(&mut buf).unwrap(), 4_000);
        old.seek(SeekFrom::Start(0)).unwrap();
        assert_eq!(old.read(&mut buf).unwrap(), 2_000, "only the budget's rest");
        let err = old.read(&mut buf).unwrap_err();
        assert!(err.to_string().contains("far more than it writes"), "{err}");
    }
}
