//! Long zero runs of the diff stream, sent as their length. Most diff
//! bytes are zero (the old and new byte agree), in runs of up to megabytes
//! where a file did not change; LZMA2 at `-9e` codes such runs in a few
//! bits but its match finder spends most of the encode time in them.
//! Measured on the corpus: sending runs of at least [`MIN_RUN`] zeros as a
//! varint makes every pair's diff stream smaller after LZMA2 (0.5–12%) and
//! its compression 2–30× faster; shorter thresholds (16, 64) lose on the
//! executables, whose diffs have short, regular zero gaps LZMA2 models
//! better as bytes.
//!
//! Format: tokens of `literal length` (LEB128), that many bytes, `zero
//! run length` (LEB128); the stream ends after a whole token.

use super::super::bsdiff_zstd::control::{read_varint, write_varint};
use crate::DeltaError;
use std::io::{self, Read};

/// Shortest zero run sent as a length.
pub(crate) const MIN_RUN: usize = 256;

/// The token form of `data`.
pub(crate) fn encode(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() / 4);
    let mut literal_start = 0;
    let mut i = 0;
    while i < data.len() {
        if data[i] != 0 {
            i += 1;
            continue;
        }
        let run_end = data[i..]
            .iter()
            .position(|b| *b != 0)
            .map_or(data.len(), |n| i + n);
        if run_end - i >= MIN_RUN {
            token(&mut out, &data[literal_start..i], run_end - i);
            literal_start = run_end;
        }
        i = run_end;
    }
    if literal_start < data.len() {
        token(&mut out, &data[literal_start..], 0);
    }
    out
}

fn token(out: &mut Vec<u8>, literal: &[u8], zeros: usize) {
    write_varint(out, literal.len() as u64);
    out.extend_from_slice(literal);
    write_varint(out, zeros as u64);
}

/// Where [`Expand`] is in its token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Start,
    Literal(u64),
    /// The literal part has been read; `true` if it was empty.
    RunLength(bool),
    Zeros(u64),
}

/// Reads the token form as the bytes it stands for. Runs are produced as
/// they are read, never allocated, so a hostile length costs nothing
/// until a control asks for that many diff bytes.
pub(crate) struct Expand<R> {
    inner: R,
    state: State,
}

impl<R: Read> Expand<R> {
    pub(crate) fn new(inner: R) -> Expand<R> {
        Expand {
            inner,
            state: State::Start,
        }
    }
}

fn varint(r: &mut impl Read) -> io::Result<Option<u64>> {
    read_varint(r).map_err(|e| match e {
        DeltaError::Truncated => {
            io::Error::new(io::ErrorKind::UnexpectedEof, "diff token cut short")
        }
        other => io::Error::new(io::ErrorKind::InvalidData, other.to_string()),
    })
}

fn cut_short() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "diff stream ends inside a token",
    )
}

impl<R: Read> Read for Expand<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match self.state {
                State::Start => match varint(&mut self.inner)? {
                    None => return Ok(0),
                    Some(0) => self.state = State::RunLength(true),
                    Some(len) => self.state = State::Literal(len),
                },
                State::Literal(0) => self.state = State::RunLength(false),
                State::Literal(left) => {
                    let n = usize::try_from(left).map_or(buf.len(), |l| l.min(buf.len()));
                    let got = self.inner.read(&mut buf[..n])?;
                    if got == 0 {
                        return Err(cut_short());
                    }
                    self.state = State::Literal(left - got as u64);
                    return Ok(got);
                }
                State::RunLength(empty_literal) => {
                    let zeros = varint(&mut self.inner)?.ok_or_else(cut_short)?;
                    if empty_literal && zeros == 0 {
                        // The encoder never writes an empty token; a
                        // stream of them would cost time and yield nothing.
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "diff stream holds an empty token",
                        ));
                    }
                    self.state = State::Zeros(zeros);
                }
                State::Zeros(0) => self.state = State::Start,
                State::Zeros(left) => {
                    let n = usize::try_from(left).map_or(buf.len(), |l| l.min(buf.len()));
                    buf[..n].fill(0);
                    self.state = State::Zeros(left - n as u64);
                    return Ok(n);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(tokens: &[u8]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        Expand::new(tokens).read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn an_empty_token_is_an_error_not_an_endless_loop() {
        // (0 literal bytes, 0 zeros) forever would yield nothing.
        let tokens = [0u8, 0].repeat(1000);
        let err = expand(&tokens).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        // An empty literal before a real run is fine.
        assert_eq!(expand(&[0, 3]).unwrap(), vec![0, 0, 0]);
    }

    #[test]
    fn long_zero_runs_become_lengths_and_everything_round_trips() {
        let mut data = vec![1u8, 0, 0, 2];
        data.resize(data.len() + 1000, 0);
        data.extend_from_slice(&[3, 0, 4]);
        data.resize(data.len() + MIN_RUN, 0);
        for input in [
            data.clone(),
            vec![],
            vec![0; 10],
            vec![0; 5000],
            vec![7; 300],
        ] {
            let tokens = encode(&input);
            assert_eq!(expand(&tokens).unwrap(), input);
        }
        assert!(encode(&data).len() < 20, "{:?}", encode(&data));
        assert_eq!(encode(&[0; 300]), [0, 172, 2]);
    }

    #[test]
    fn a_token_cut_short_is_an_early_end_and_a_huge_run_is_lazy() {
        let tokens = encode(&[5, 6, 7]);
        for len in 1..tokens.len() {
            let err = expand(&tokens[..len]).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "len {len}");
        }
        let mut huge = Vec::new();
        write_varint(&mut huge, 0);
        write_varint(&mut huge, u64::MAX);
        let mut r = Expand::new(&huge[..]);
        let mut buf = [1u8; 16];
        assert_eq!(r.read(&mut buf).unwrap(), 16);
        assert_eq!(buf, [0; 16]);
    }
}
