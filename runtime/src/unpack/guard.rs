//! The hashing reader that computes a layer's `diff_id` while it streams
//! (the entry rules live in `petrel_protocol::layer_policy`).

use sha2::{Digest as _, Sha256};
use std::io::{self, Read};

/// Hashes and counts what passes through; fails once past `limit` bytes.
pub(super) struct HashingReader<R> {
    inner: R,
    pub(super) hasher: Sha256,
    read: u64,
    limit: u64,
    pub(super) over_limit: bool,
}

impl<R> HashingReader<R> {
    pub(super) fn new(inner: R, limit: u64) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            read: 0,
            limit,
            over_limit: false,
        }
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read > self.limit {
            self.over_limit = true;
            return Err(io::Error::other("layer stream exceeds its size limit"));
        }
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}
