//! Bounded-memory access to the old layer for the bsdiff decoder: a small
//! buffered reader that tracks its position and refuses any read or seek
//! outside `0..=size`, so a hostile control triple cannot reach past the
//! file or make the position overflow.

use crate::decode::OldLayer;
use crate::DeltaError;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::PathBuf;

/// Read-ahead of the old layer's buffer.
const READ_AHEAD: usize = 4 * 1024;

/// The old layer, read forward with occasional relative seeks.
pub(crate) struct OldReader {
    inner: BufReader<File>,
    pos: u64,
    size: u64,
    path: PathBuf,
}

impl OldReader {
    /// Opens the (already verified) old layer. The buffer is small on
    /// purpose: a seek outside it discards it, so a hostile patch that
    /// alternates far seeks with 1-byte reads makes every output byte cost
    /// a refill of this size (reads of at least this size bypass it).
    pub(crate) fn open(old: &OldLayer) -> Result<OldReader, DeltaError> {
        let file = File::open(&old.path).map_err(DeltaError::io(&old.path))?;
        Ok(OldReader {
            inner: BufReader::with_capacity(READ_AHEAD, file),
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
