//! Control triples of the bsdiff 0.2.1 stream, parsed defensively: lengths
//! must be non-negative and their sum must not overflow.

use crate::DeltaError;
use std::io::{ErrorKind, Read};

/// Length of one encoded triple.
pub(crate) const LEN: usize = 24;

/// One step of a bsdiff patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Control {
    /// Bytes of (diff + old) to output.
    pub diff_len: u64,
    /// Literal bytes to output after them.
    pub extra_len: u64,
    /// How far the old position moves afterwards (may be negative).
    pub seek: i64,
}

impl Control {
    /// The next triple, or `None` at a clean end of stream.
    pub(crate) fn read(r: &mut impl Read) -> Result<Option<Control>, DeltaError> {
        let mut buf = [0u8; LEN];
        match read_full(r, &mut buf)? {
            0 => return Ok(None),
            LEN => {}
            _ => return Err(DeltaError::Truncated),
        }
        Ok(Some(Control {
            diff_len: length(field(&buf, 0), "diff length")?,
            extra_len: length(field(&buf, 1), "extra length")?,
            seek: offtin(field(&buf, 2)),
        }))
    }

    /// Bytes this step writes.
    pub(crate) fn output_len(&self) -> Result<u64, DeltaError> {
        self.diff_len
            .checked_add(self.extra_len)
            .ok_or_else(|| DeltaError::Corrupt("control lengths overflow".into()))
    }

    /// The encoding the bsdiff crate writes (used by tests to forge patches).
    #[cfg(test)]
    pub(crate) fn to_bytes(self) -> [u8; LEN] {
        let mut out = [0u8; LEN];
        out[0..8].copy_from_slice(&offtout(self.diff_len as i64));
        out[8..16].copy_from_slice(&offtout(self.extra_len as i64));
        out[16..24].copy_from_slice(&offtout(self.seek));
        out
    }
}

fn field(buf: &[u8; LEN], i: usize) -> [u8; 8] {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[i * 8..i * 8 + 8]);
    b
}

fn length(raw: [u8; 8], what: &str) -> Result<u64, DeltaError> {
    let v = offtin(raw);
    u64::try_from(v).map_err(|_| DeltaError::Corrupt(format!("negative {what} {v}")))
}

/// Sign-magnitude little-endian i64, as the bsdiff crate's `offtout` writes.
fn offtin(raw: [u8; 8]) -> i64 {
    let y = i64::from_le_bytes(raw);
    let magnitude = y & i64::MAX;
    if y < 0 {
        -magnitude
    } else {
        magnitude
    }
}

#[cfg(test)]
pub(crate) fn offtout(x: i64) -> [u8; 8] {
    if x >= 0 {
        x.to_le_bytes()
    } else {
        (x.unsigned_abs() | 1 << 63).to_le_bytes()
    }
}

/// Reads until `buf` is full or the stream ends; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> Result<usize, DeltaError> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(DeltaError::from_patch_read(e)),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_magnitude_values_round_trip() {
        for v in [0, 1, -1, 42, -42, i64::MAX, -i64::MAX] {
            assert_eq!(offtin(offtout(v)), v);
        }
    }

    #[test]
    fn a_negative_length_is_corrupt() {
        let ctrl = Control {
            diff_len: 0,
            extra_len: 0,
            seek: 0,
        };
        let mut bytes = ctrl.to_bytes();
        bytes[0..8].copy_from_slice(&offtout(-5));
        let err = Control::read(&mut &bytes[..]).unwrap_err();
        assert!(matches!(err, DeltaError::Corrupt(_)), "{err}");
    }

    #[test]
    fn a_partial_triple_is_truncated_and_an_empty_stream_is_the_end() {
        assert_eq!(Control::read(&mut &[][..]).unwrap(), None);
        let err = Control::read(&mut &[0u8; 10][..]).unwrap_err();
        assert!(matches!(err, DeltaError::Truncated), "{err}");
    }

    #[test]
    fn lengths_whose_sum_overflows_are_corrupt() {
        let ctrl = Control {
            diff_len: u64::MAX / 2 + 1,
            extra_len: u64::MAX / 2 + 1,
            seek: 0,
        };
        assert!(matches!(ctrl.output_len(), Err(DeltaError::Corrupt(_))));
    }
}
