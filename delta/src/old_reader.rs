//! Bounded access to the old layer for the decoders that read it by offset
//! (bsdiff+zstd's steps, tar-aware's skeleton and file views): positioned
//! reads (`pread`: a seek is free, it only moves a number) through a small
//! read-ahead window, every read and seek checked against `0..=size`, and
//! every `pread` charged to a work budget that grows with the output.
//!
//! The cost model (reasoning in ARCHITECTURE.md, "Old-layer read budget"):
//! a `pread` costs [`PREAD_COST`] units, about what copying 4 KiB from the
//! page cache costs, plus one unit per byte it fetches. Reading forward
//! costs at most 2 units per byte consumed (a 4 KiB window per `pread`, or
//! one large `pread` straight into the caller's buffer); a *miss* (a read
//! after a jump out of the window) costs at most [`MISS_COST`]. Every old
//! byte a decoder consumes becomes one output byte, so an honest patch
//! costs `2 × output + misses × MISS_COST`, and the budget allows one miss
//! per [`BYTES_PER_MISS`] output bytes on average, plus [`BASE_MISSES`].
//! A hostile patch that jumps before every byte hits the budget after
//! about `output / 64` misses instead of costing 8 KiB per output byte.

use crate::error::DeltaError;
use crate::input::OldLayer;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

/// Size of the read-ahead window.
pub(crate) const READ_AHEAD: usize = 4 * 1024;
/// Units one `pread` costs beyond the bytes it fetches.
pub(crate) const PREAD_COST: u64 = 4 * 1024;
/// Most a miss costs: the syscall and a window of which one byte is used.
pub(crate) const MISS_COST: u64 = READ_AHEAD as u64 + PREAD_COST;
/// Most reading forward costs per byte consumed.
const FORWARD_COST: u64 = 2;
/// Output bytes per miss the budget allows on average. Our encoders switch
/// alignment at most once per 8 output bytes (`fast_bsdiff`'s margin), so
/// they could in theory need more; the corpus needs one miss per 470
/// output bytes at worst (postgresql-15, bsdiff+zstd), and `diff` applies
/// every candidate with these limits before it may ship (a patch over
/// budget is skipped with its reason, never sent).
pub(crate) const BYTES_PER_MISS: u64 = 64;
/// Misses allowed on top, for small layers with a few far jumps.
pub(crate) const BASE_MISSES: u64 = 4 * 1024;

/// The old-layer read budget, in units, of a patch writing `output` bytes.
pub(crate) fn budget(output: u64) -> u64 {
    output
        .saturating_mul(FORWARD_COST + MISS_COST / BYTES_PER_MISS)
        .saturating_add(BASE_MISSES * MISS_COST)
}

/// What a decode read from the old layer, and what it was allowed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OldReads {
    /// `pread` calls.
    pub preads: u64,
    /// Bytes fetched by them.
    pub bytes: u64,
    /// Units charged (see the module docs); gzip members read whole by a
    /// tar-aware `Gz` op are charged to the gzip budget instead.
    pub units: u64,
    /// The budget of this patch's output.
    pub budget: u64,
}

/// The old layer, read by offset through a small window.
pub(crate) struct OldReader {
    file: File,
    path: PathBuf,
    size: u64,
    pos: u64,
    window: Vec<u8>,
    window_start: u64,
    reads: OldReads,
    output: u64,
}

impl OldReader {
    /// Opens the (already verified) old layer for a patch promising
    /// `output` bytes; all reads together are capped by [`budget`].
    pub(crate) fn open(old: &OldLayer, output: u64) -> Result<OldReader, DeltaError> {
        let file = File::open(&old.path).map_err(DeltaError::io(&old.path))?;
        Ok(OldReader {
            file,
            path: old.path.clone(),
            size: old.size,
            pos: 0,
            window: Vec::with_capacity(READ_AHEAD),
            window_start: 0,
            reads: OldReads {
                budget: budget(output),
                ..OldReads::default()
            },
            output,
        })
    }

    /// What was read so far.
    pub(crate) fn reads(&self) -> OldReads {
        self.reads
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

    /// Reads exactly `buf.len()` bytes at the position and advances it.
    pub(crate) fn read_exact(&mut self, mut buf: &mut [u8]) -> Result<(), DeltaError> {
        self.check_span(buf.len() as u64)?;
        while !buf.is_empty() {
            let n = if let Some(held) = self.windowed() {
                let n = held.len().min(buf.len());
                buf[..n].copy_from_slice(&held[..n]);
                n
            } else if buf.len() >= READ_AHEAD {
                self.pread(self.pos, buf, true)?;
                buf.len()
            } else {
                self.refill()?;
                continue;
            };
            self.pos += n as u64;
            buf = &mut buf[n..];
        }
        Ok(())
    }

    /// Reads `buf.len()` bytes at `offset` (inside the file) without
    /// charging the budget: for reads bounded by another budget (a `Gz`
    /// op's old member, charged to the gzip budget). The position moves
    /// past them.
    pub(crate) fn read_uncharged(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), DeltaError> {
        self.seek_to(offset)?;
        self.check_span(buf.len() as u64)?;
        self.pread(offset, buf, false)?;
        self.pos += buf.len() as u64;
        Ok(())
    }

    /// Moves to `offset`, which must lie inside `0..=size`.
    pub(crate) fn seek_to(&mut self, offset: u64) -> Result<(), DeltaError> {
        if offset > self.size {
            return Err(DeltaError::Corrupt(format!(
                "old offset {offset} is outside the old layer (0..={})",
                self.size
            )));
        }
        self.pos = offset;
        Ok(())
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
        self.pos = target as u64;
        Ok(())
    }

    /// The window's bytes from the position on, if it holds the position.
    fn windowed(&self) -> Option<&[u8]> {
        let at = usize::try_from(self.pos.checked_sub(self.window_start)?).ok()?;
        self.window.get(at..).filter(|rest| !rest.is_empty())
    }

    /// Fills the window from the position (which `check_span` put at
    /// least one byte before the end).
    fn refill(&mut self) -> Result<(), DeltaError> {
        let len = (self.size - self.pos).min(READ_AHEAD as u64) as usize;
        let mut window = std::mem::take(&mut self.window);
        window.resize(len, 0);
        let read = self.pread(self.pos, &mut window, true);
        self.window = window;
        if read.is_err() {
            self.window.clear();
        }
        self.window_start = self.pos;
        read
    }

    /// Fills `buf` from `offset`, charging each `pread` (before making it)
    /// when `charged`.
    fn pread(&mut self, offset: u64, buf: &mut [u8], charged: bool) -> Result<(), DeltaError> {
        let mut done = 0;
        while done < buf.len() {
            if charged {
                self.charge((buf.len() - done) as u64)?;
            }
            let at = offset + done as u64;
            match self.file.read_at(&mut buf[done..], at) {
                Ok(0) => {
                    return Err(DeltaError::Io {
                        path: self.path.clone(),
                        error: std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            "the old layer ended early (changed while it was read?)",
                        ),
                    })
                }
                Ok(n) => {
                    done += n;
                    self.reads.preads += 1;
                    self.reads.bytes += n as u64;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(DeltaError::io(&self.path)(e)),
            }
        }
        Ok(())
    }

    fn charge(&mut self, bytes: u64) -> Result<(), DeltaError> {
        let units = self.reads.units.saturating_add(PREAD_COST + bytes);
        if units > self.reads.budget {
            return Err(DeltaError::OverBudget {
                what: "old-layer read",
                limit: self.reads.budget,
                output: self.output,
            });
        }
        self.reads.units = units;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn old_file(len: usize) -> (tempfile::NamedTempFile, OldLayer) {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        let bytes: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        file.write_all(&bytes).unwrap();
        let old = OldLayer {
            path: file.path().to_path_buf(),
            size: len as u64,
        };
        (file, old)
    }

    #[test]
    fn reads_return_the_bytes_at_the_position_across_window_edges() {
        let (_f, old) = old_file(20_000);
        let mut r = OldReader::open(&old, 20_000).unwrap();
        let mut buf = vec![0u8; 5_000];
        r.seek_to(4_000).unwrap();
        r.read_exact(&mut buf[..10]).unwrap();
        r.read_exact(&mut buf).unwrap();
        let want: Vec<u8> = (4_010..9_010).map(|i| (i % 251) as u8).collect();
        assert_eq!(buf, want);
        r.seek_by(-9_010).unwrap();
        r.read_exact(&mut buf[..3]).unwrap();
        assert_eq!(&buf[..3], &[0, 1, 2]);
        assert!(r.check_span(20_001 - 3).is_err());
        assert!(r.seek_by(-4).is_err());
    }

    #[test]
    fn reading_forward_costs_at_most_two_units_per_byte() {
        let (_f, old) = old_file(1 << 20);
        let mut r = OldReader::open(&old, 1 << 20).unwrap();
        let mut buf = [0u8; 100];
        for _ in 0..(1 << 20) / 100 {
            r.read_exact(&mut buf).unwrap();
        }
        let reads = r.reads();
        assert!(reads.units <= 2 * reads.bytes, "{reads:?}");
        assert_eq!(reads.preads, (1 << 20) / READ_AHEAD as u64);
    }

    #[test]
    fn a_jump_before_every_byte_runs_out_of_budget_in_proportion_to_the_output() {
        let output = 1 << 20;
        let (_f, old) = old_file(4 << 20);
        let mut r = OldReader::open(&old, output).unwrap();
        let mut byte = [0u8; 1];
        let mut misses = 0u64;
        let err = loop {
            // Never in the last window, so every miss fetches a full one.
            let far = (misses * 1_000_003) % ((4 << 20) - READ_AHEAD as u64);
            r.seek_to(far).unwrap();
            match r.read_exact(&mut byte) {
                Ok(()) => misses += 1,
                Err(e) => break e,
            }
        };
        assert!(matches!(err, DeltaError::OverBudget { .. }), "{err}");
        // Each miss costs exactly MISS_COST, so the budget buys this many:
        // the allowance of one per BYTES_PER_MISS output bytes plus the
        // base, plus what the forward-reading allowance pays for.
        let allowed = output / BYTES_PER_MISS + BASE_MISSES + output * FORWARD_COST / MISS_COST;
        assert_eq!(misses, allowed);
        assert_eq!(r.reads().preads, misses);
    }

    #[test]
    fn uncharged_reads_leave_the_budget_alone() {
        let (_f, old) = old_file(10_000);
        let mut r = OldReader::open(&old, 0).unwrap();
        let mut buf = vec![0u8; 9_000];
        r.read_uncharged(1_000, &mut buf).unwrap();
        assert_eq!(buf[0], (1_000 % 251) as u8);
        assert_eq!(r.reads().units, 0);
        assert_eq!(r.reads().bytes, 9_000);
    }
}
