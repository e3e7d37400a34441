//! The bsdiff+zstd payload layout (format version 2):
//!
//! `control_len u64 LE | diff_len u64 LE | extra_len u64 LE` (the table),
//! then the control, diff and extra streams, each one zstd frame of
//! exactly its length in the table, and nothing after them.
//!
//! The decoder reads the three streams side by side, each through its own
//! file handle and zstd decoder, whose window is capped per stream
//! ([`Part::window_log`]). The table is checked against the payload's real
//! length before any stream is opened, so lengths that lie — past the end
//! of the file, short of it, or overflowing — are refused up front.

use crate::error::DeltaError;
use crate::input::PatchFile;
use std::fs::File;
use std::io::{BufReader, Read, Take};

/// Length of the table of stream lengths.
pub(crate) const TABLE_LEN: u64 = 24;

/// One of the payload's three streams, in payload order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    Control,
    Diff,
    Extra,
}

impl Part {
    pub(crate) const ALL: [Part; 3] = [Part::Control, Part::Diff, Part::Extra];

    /// log2 of the stream's zstd window: the encoder's setting and the
    /// decoder's cap, so the device holds at most 1 + 8 + 8 MiB of windows.
    /// Measured on the corpus: the diff stream loses 1.3% at 2^22 and gains
    /// under 0.1% at 2^24–2^25; the extra stream (at most 3.4 MB there)
    /// loses 0.1% at 2^20; the varint control stream (≤ 0.6 MB) loses
    /// nothing at 2^20.
    pub(crate) fn window_log(self) -> u32 {
        match self {
            Part::Control => 20,
            Part::Diff | Part::Extra => 23,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Part::Control => "control",
            Part::Diff => "diff",
            Part::Extra => "extra",
        }
    }
}

/// The compressed length of each stream, indexed by [`Part`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Table {
    pub lens: [u64; 3],
}

impl Table {
    pub(crate) fn to_bytes(self) -> [u8; TABLE_LEN as usize] {
        let mut out = [0u8; TABLE_LEN as usize];
        for (i, len) in self.lens.iter().enumerate() {
            out[i * 8..i * 8 + 8].copy_from_slice(&len.to_le_bytes());
        }
        out
    }

    /// Reads the table and checks it describes the payload exactly.
    pub(crate) fn read(patch: &PatchFile) -> Result<Table, DeltaError> {
        if patch.payload_len < TABLE_LEN {
            return Err(DeltaError::Truncated);
        }
        let mut buf = [0u8; TABLE_LEN as usize];
        patch
            .section(0, TABLE_LEN)?
            .read_exact(&mut buf)
            .map_err(DeltaError::from_patch_read)?;
        let mut lens = [0u64; 3];
        for (i, len) in lens.iter_mut().enumerate() {
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[i * 8..i * 8 + 8]);
            *len = u64::from_le_bytes(b);
        }
        let table = Table { lens };
        table.check(patch.payload_len)?;
        Ok(table)
    }

    /// The streams must end exactly where the payload does.
    fn check(&self, payload_len: u64) -> Result<(), DeltaError> {
        let total = self
            .lens
            .iter()
            .try_fold(TABLE_LEN, |sum, len| sum.checked_add(*len))
            .ok_or_else(|| DeltaError::Corrupt("stream lengths overflow".into()))?;
        if total > payload_len {
            return Err(DeltaError::Truncated);
        }
        if total < payload_len {
            return Err(DeltaError::Corrupt(format!(
                "{} bytes follow the last stream",
                payload_len - total
            )));
        }
        Ok(())
    }

    /// Offset of `part`'s stream in the payload.
    fn offset(&self, part: Part) -> u64 {
        // Cannot overflow: `check` summed all three lengths.
        TABLE_LEN + self.lens[..part as usize].iter().sum::<u64>()
    }
}

/// A decompressing reader over one stream.
pub(crate) type Stream = zstd::stream::read::Decoder<'static, BufReader<Take<File>>>;

/// Opens `part`'s stream with its window cap.
pub(crate) fn open(patch: &PatchFile, table: &Table, part: Part) -> Result<Stream, DeltaError> {
    let section = patch.section(table.offset(part), table.lens[part as usize])?;
    let mut z = zstd::stream::read::Decoder::new(section).map_err(DeltaError::ReadPatch)?;
    z.window_log_max(part.window_log())
        .map_err(DeltaError::ReadPatch)?;
    Ok(z)
}

/// Fails unless `stream` has nothing left: every byte of a stream must be
/// used by some control step.
pub(crate) fn expect_end(stream: &mut impl Read, part: Part) -> Result<(), DeltaError> {
    let mut probe = [0u8; 1];
    loop {
        match stream.read(&mut probe) {
            Ok(0) => return Ok(()),
            Ok(_) => {
                return Err(DeltaError::Corrupt(format!(
                    "the {} stream holds bytes no control step uses",
                    part.name()
                )))
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(DeltaError::from_patch_read(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_must_account_for_every_payload_byte() {
        let table = Table { lens: [1, 2, 3] };
        assert!(table.check(TABLE_LEN + 6).is_ok());
        assert!(matches!(
            table.check(TABLE_LEN + 5),
            Err(DeltaError::Truncated)
        ));
        assert!(matches!(
            table.check(TABLE_LEN + 7),
            Err(DeltaError::Corrupt(_))
        ));
        let huge = Table {
            lens: [u64::MAX, 1, 0],
        };
        assert!(matches!(huge.check(u64::MAX), Err(DeltaError::Corrupt(_))));
        assert_eq!(table.offset(Part::Control), TABLE_LEN);
        assert_eq!(table.offset(Part::Extra), TABLE_LEN + 3);
    }
}
