//! The output side of decoding: every reconstructed byte goes through one
//! writer that hashes it and refuses to go past the header's `to_size`, so
//! a lying header or a hostile payload cannot make a device write unbounded
//! output, and the result digest is known the moment the last byte lands.

use crate::{DeltaError, Header};
use petrel_protocol::Digest;
use sha2::{Digest as _, Sha256};
use std::io::Write;

/// A size-capped, sha256-hashing writer over the caller's output.
pub(crate) struct Sink<W> {
    out: W,
    hasher: Sha256,
    written: u64,
    limit: u64,
}

impl<W: Write> Sink<W> {
    /// A sink that accepts at most `limit` bytes.
    pub(crate) fn new(out: W, limit: u64) -> Sink<W> {
        Sink {
            out,
            hasher: Sha256::new(),
            written: 0,
            limit,
        }
    }

    /// The most bytes this sink accepts.
    pub(crate) fn limit(&self) -> u64 {
        self.limit
    }

    /// Fails, before anything is written, if `n` more bytes would pass the limit.
    pub(crate) fn reserve(&self, n: u64) -> Result<(), DeltaError> {
        let size = self.written.checked_add(n).ok_or(DeltaError::TooLarge {
            what: "reconstructed layer",
            size: u64::MAX,
            limit: self.limit,
        })?;
        if size > self.limit {
            return Err(DeltaError::TooLarge {
                what: "reconstructed layer",
                size,
                limit: self.limit,
            });
        }
        Ok(())
    }

    /// Hashes and writes `buf`, within the limit.
    pub(crate) fn write(&mut self, buf: &[u8]) -> Result<(), DeltaError> {
        self.reserve(buf.len() as u64)?;
        self.hasher.update(buf);
        self.out.write_all(buf).map_err(DeltaError::WriteOutput)?;
        self.written += buf.len() as u64;
        Ok(())
    }

    /// Flushes and checks the result against the header: the digest first
    /// (the identity that matters), then the promised size.
    pub(crate) fn finish(mut self, header: &Header) -> Result<u64, DeltaError> {
        self.out.flush().map_err(DeltaError::WriteOutput)?;
        let actual = Digest::from_hasher(self.hasher);
        if actual != header.to {
            return Err(DeltaError::ToMismatch {
                expected: header.to.clone(),
                actual,
            });
        }
        if self.written != header.to_size {
            return Err(DeltaError::Corrupt(format!(
                "header promises {} bytes but the payload produced {}",
                header.to_size, self.written
            )));
        }
        Ok(self.written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sink_refuses_bytes_past_its_limit_and_writes_none_of_them() {
        let mut out = Vec::new();
        let mut sink = Sink::new(&mut out, 4);
        sink.write(b"abc").unwrap();
        let err = sink.write(b"de").unwrap_err();
        assert!(
            matches!(
                err,
                DeltaError::TooLarge {
                    size: 5,
                    limit: 4,
                    ..
                }
            ),
            "{err}"
        );
        assert!(sink.reserve(u64::MAX).is_err());
        assert_eq!(sink.written, 3);
        assert_eq!(out, b"abc");
    }
}
