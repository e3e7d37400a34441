//! The op stream: the program the decoder runs to write the new tar, so
//! it never has to parse the new tar itself. Each op is a LEB128 tag and
//! its fields, and bsdiff-style ops are followed by their control triples
//! (the `bsdiff+zstd` varint triples, [`Control`]) in the same stream, in
//! the order the decoder needs them:
//!
//! | tag | op | fields | then |
//! |---|---|---|---|
//! | 0 | `End` | | nothing more in the stream |
//! | 1 | `Skeleton` | `len` | controls against the old skeleton until `len` bytes are written |
//! | 2 | `Same` | `old` | the old file's contents, unchanged |
//! | 3 | `Bsdiff` | `old`, `new_len` | controls against the old file until `new_len` bytes are written |
//! | 4 | `Gz` | `old`, `new_len`, `plain_len`, `recipe_len` | controls against the old file's inflated contents until `plain_len` bytes; then `recipe_len` bytes of the recipe stream rebuild the `new_len` compressed bytes |
//!
//! `old` is the index of a regular file of the old tar, sent zigzag as its
//! distance from the previous file op's index + 1 (files mostly keep their
//! order, so that is usually 0). Every op but `End` writes at least one
//! byte, which with the sink's cap bounds how many ops a patch can hold.

use super::super::bsdiff_zstd::control::{read_varint, unzigzag, write_varint, zigzag};
use crate::DeltaError;
use std::io::Read;

const END: u64 = 0;
const SKELETON: u64 = 1;
const SAME: u64 = 2;
const BSDIFF: u64 = 3;
const GZ: u64 = 4;

/// One op of the program, its old index resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    End,
    /// `len` new skeleton bytes.
    Skeleton {
        len: u64,
    },
    /// Old regular file `old`, unchanged.
    Same {
        old: u64,
    },
    /// A bsdiff of old file `old`, `new_len` bytes.
    Bsdiff {
        old: u64,
        new_len: u64,
    },
    /// A gzip member rebuilt from a bsdiff of the inflated old file.
    Gz {
        old: u64,
        new_len: u64,
        plain_len: u64,
        recipe_len: u64,
    },
}

/// Writes ops, delta-coding their old indices.
#[derive(Debug, Default)]
pub(crate) struct OpWriter {
    /// The index the next file op is expected to name.
    expected: u64,
}

impl OpWriter {
    pub(crate) fn write(&mut self, op: Op, out: &mut Vec<u8>) {
        match op {
            Op::End => write_varint(out, END),
            Op::Skeleton { len } => {
                write_varint(out, SKELETON);
                write_varint(out, len);
            }
            Op::Same { old } => {
                write_varint(out, SAME);
                self.write_old(old, out);
            }
            Op::Bsdiff { old, new_len } => {
                write_varint(out, BSDIFF);
                self.write_old(old, out);
                write_varint(out, new_len);
            }
            Op::Gz {
                old,
                new_len,
                plain_len,
                recipe_len,
            } => {
                write_varint(out, GZ);
                self.write_old(old, out);
                write_varint(out, new_len);
                write_varint(out, plain_len);
                write_varint(out, recipe_len);
            }
        }
    }

    fn write_old(&mut self, old: u64, out: &mut Vec<u8>) {
        // Old indices are file counts, far below 2^63.
        write_varint(out, zigzag(old as i64 - self.expected as i64));
        self.expected = old + 1;
    }
}

/// Reads ops, resolving their old indices; every index is checked against
/// `files`, the old tar's regular-file count.
#[derive(Debug)]
pub(crate) struct OpReader {
    expected: u64,
    files: u64,
}

impl OpReader {
    pub(crate) fn new(files: u64) -> OpReader {
        OpReader { expected: 0, files }
    }

    /// The next op; a stream that ends before `End` is truncated.
    pub(crate) fn read(&mut self, r: &mut impl Read) -> Result<Op, DeltaError> {
        let tag = field(r)?;
        Ok(match tag {
            END => Op::End,
            SKELETON => Op::Skeleton { len: field(r)? },
            SAME => Op::Same {
                old: self.read_old(r)?,
            },
            BSDIFF => Op::Bsdiff {
                old: self.read_old(r)?,
                new_len: field(r)?,
            },
            GZ => Op::Gz {
                old: self.read_old(r)?,
                new_len: field(r)?,
                plain_len: field(r)?,
                recipe_len: field(r)?,
            },
            other => return Err(DeltaError::Corrupt(format!("unknown tar-aware op {other}"))),
        })
    }

    fn read_old(&mut self, r: &mut impl Read) -> Result<u64, DeltaError> {
        let delta = unzigzag(field(r)?);
        let old = i128::from(self.expected) + i128::from(delta);
        if old < 0 || old >= i128::from(self.files) {
            return Err(DeltaError::Corrupt(format!(
                "op names old file {old}, but the old layer has {} regular files",
                self.files
            )));
        }
        let old = old as u64;
        self.expected = old + 1;
        Ok(old)
    }
}

/// A varint that must be there: the stream may not end inside an op.
fn field(r: &mut impl Read) -> Result<u64, DeltaError> {
    read_varint(r)?.ok_or(DeltaError::Truncated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_round_trip_with_their_old_indices() {
        let ops = [
            Op::Skeleton { len: 1536 },
            Op::Same { old: 0 },
            Op::Bsdiff { old: 4, new_len: 9 },
            Op::Skeleton { len: 1 },
            Op::Gz {
                old: 1,
                new_len: 100,
                plain_len: 300,
                recipe_len: 12,
            },
            Op::Same { old: 2 },
            Op::End,
        ];
        let mut out = Vec::new();
        let mut w = OpWriter::default();
        ops.iter().for_each(|op| w.write(*op, &mut out));
        let mut r = OpReader::new(5);
        let mut src = &out[..];
        for op in ops {
            assert_eq!(r.read(&mut src).unwrap(), op);
        }
        assert!(src.is_empty());
        // Consecutive files cost one byte for the index.
        let mut seq = Vec::new();
        let mut w = OpWriter::default();
        w.write(Op::Same { old: 0 }, &mut seq);
        w.write(Op::Same { old: 1 }, &mut seq);
        assert_eq!(seq, [2, 0, 2, 0]);
    }

    #[test]
    fn an_old_index_outside_the_old_tar_is_corrupt() {
        for old in [3u64, 1000] {
            let mut out = Vec::new();
            OpWriter::default().write(Op::Same { old }, &mut out);
            let err = OpReader::new(3).read(&mut &out[..]).unwrap_err();
            assert!(matches!(err, DeltaError::Corrupt(_)), "{err}");
        }
        // A negative index: distance -1 from the expected 0.
        let err = OpReader::new(3).read(&mut &[2u8, 1][..]).unwrap_err();
        assert!(matches!(err, DeltaError::Corrupt(_)), "{err}");
    }

    #[test]
    fn an_op_cut_short_is_truncated_and_an_unknown_tag_is_corrupt() {
        let mut out = Vec::new();
        OpWriter::default().write(
            Op::Bsdiff {
                old: 0,
                new_len: 300,
            },
            &mut out,
        );
        for len in 0..out.len() {
            let err = OpReader::new(1).read(&mut &out[..len]).unwrap_err();
            assert!(matches!(err, DeltaError::Truncated), "len {len}: {err}");
        }
        let err = OpReader::new(1).read(&mut &[9u8][..]).unwrap_err();
        assert!(matches!(err, DeltaError::Corrupt(_)), "{err}");
    }
}
