//! The encoder's side of the three-stream layout: a [`Write`] sink for
//! `bsdiff::diff` that parses the bsdiff 0.2.1 crate's interleaved stream
//! as it arrives — a control triple of three sign-magnitude little-endian
//! i64 (diff length, extra length, old seek), then the diff bytes, then
//! the extra bytes — and files each part into its own buffer, with the
//! triples re-encoded as varints ([`Control::write_to`]).

use super::control::Control;
use super::layout::Part;
use std::io::{self, Write};

/// Length of one triple in the bsdiff crate's stream.
const TRIPLE_LEN: usize = 24;

/// The three raw (uncompressed) streams of a patch.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Parts {
    pub control: Vec<u8>,
    pub diff: Vec<u8>,
    pub extra: Vec<u8>,
}

impl Parts {
    pub(crate) fn get(&self, part: Part) -> &[u8] {
        match part {
            Part::Control => &self.control,
            Part::Diff => &self.diff,
            Part::Extra => &self.extra,
        }
    }
}

/// Splits the bsdiff crate's output into [`Parts`].
#[derive(Default)]
pub(crate) struct Splitter {
    parts: Parts,
    triple: [u8; TRIPLE_LEN],
    triple_len: usize,
    diff_left: u64,
    extra_left: u64,
}

impl Splitter {
    /// The parts, if the stream ended between two steps.
    pub(crate) fn finish(self) -> io::Result<Parts> {
        if self.triple_len != 0 || self.diff_left != 0 || self.extra_left != 0 {
            return Err(invalid("the bsdiff stream ended inside a step"));
        }
        Ok(self.parts)
    }

    /// Consumes a prefix of `buf`; returns how many bytes.
    fn take(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.diff_left > 0 {
            let n = prefix_len(buf, self.diff_left);
            self.parts.diff.extend_from_slice(&buf[..n]);
            self.diff_left -= n as u64;
            return Ok(n);
        }
        if self.extra_left > 0 {
            let n = prefix_len(buf, self.extra_left);
            self.parts.extra.extend_from_slice(&buf[..n]);
            self.extra_left -= n as u64;
            return Ok(n);
        }
        let n = buf.len().min(TRIPLE_LEN - self.triple_len);
        self.triple[self.triple_len..self.triple_len + n].copy_from_slice(&buf[..n]);
        self.triple_len += n;
        if self.triple_len == TRIPLE_LEN {
            self.triple_len = 0;
            self.start_step()?;
        }
        Ok(n)
    }

    fn start_step(&mut self) -> io::Result<()> {
        let field = |i: usize| offtin(&self.triple[i * 8..i * 8 + 8]);
        let length = |v: i64| u64::try_from(v).map_err(|_| invalid("negative bsdiff length"));
        let ctrl = Control {
            diff_len: length(field(0))?,
            extra_len: length(field(1))?,
            seek: field(2),
        };
        ctrl.write_to(&mut self.parts.control);
        self.diff_left = ctrl.diff_len;
        self.extra_left = ctrl.extra_len;
        Ok(())
    }
}

impl Write for Splitter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut done = 0;
        while done < buf.len() {
            done += self.take(&buf[done..])?;
        }
        Ok(done)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn prefix_len(buf: &[u8], left: u64) -> usize {
    usize::try_from(left).map_or(buf.len(), |l| l.min(buf.len()))
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

/// Sign-magnitude little-endian i64, as the bsdiff crate's `offtout` writes.
fn offtin(raw: &[u8]) -> i64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(raw);
    let y = i64::from_le_bytes(b);
    let magnitude = y & i64::MAX;
    if y < 0 {
        -magnitude
    } else {
        magnitude
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offtout(x: i64) -> [u8; 8] {
        if x >= 0 {
            x.to_le_bytes()
        } else {
            (x.unsigned_abs() | 1 << 63).to_le_bytes()
        }
    }

    fn triple(diff_len: i64, extra_len: i64, seek: i64) -> Vec<u8> {
        [offtout(diff_len), offtout(extra_len), offtout(seek)].concat()
    }

    #[test]
    fn sign_magnitude_values_round_trip() {
        for v in [0, 1, -1, 42, -42, i64::MAX, -i64::MAX] {
            assert_eq!(offtin(&offtout(v)), v);
        }
    }

    #[test]
    fn an_interleaved_stream_splits_into_its_parts_whatever_the_write_sizes() {
        let stream = [
            triple(3, 2, -7),
            b"abc".to_vec(),
            b"XY".to_vec(),
            triple(0, 1, 0),
            b"Z".to_vec(),
            triple(1, 0, 5),
            b"d".to_vec(),
        ]
        .concat();
        let mut expected = Parts::default();
        for (d, e, s) in [(3, 2, -7), (0, 1, 0), (1, 0, 5)] {
            Control {
                diff_len: d,
                extra_len: e,
                seek: s,
            }
            .write_to(&mut expected.control);
        }
        expected.diff = b"abcd".to_vec();
        expected.extra = b"XYZ".to_vec();
        for chunk in [1, 5, 24, 1000] {
            let mut split = Splitter::default();
            for piece in stream.chunks(chunk) {
                split.write_all(piece).unwrap();
            }
            assert_eq!(split.finish().unwrap(), expected, "chunk {chunk}");
        }
    }

    #[test]
    fn a_stream_ending_inside_a_step_or_with_a_negative_length_is_an_error() {
        let mut split = Splitter::default();
        split.write_all(&triple(3, 0, 0)).unwrap();
        split.write_all(b"ab").unwrap();
        assert!(split.finish().is_err());
        let mut split = Splitter::default();
        assert!(split.write_all(&triple(-1, 0, 0)).is_err());
    }
}
