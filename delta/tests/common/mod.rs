//! Shared helpers of the integration tests: deterministic layer data and
//! the path of the CLI under test.

#![allow(dead_code)] // each test file uses a subset

use std::path::Path;
use std::process::{Command, Output};

/// A tiny xorshift generator: reproducible, no dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// `len` pseudo-random bytes, 8 at a time (fast even in debug builds).
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&rng.next().to_le_bytes());
    }
    out.truncate(len);
    out
}

/// `old` with `edits` scattered changed bytes, insertions and deletions.
pub fn edited(old: &[u8], seed: u64, edits: usize) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut new = old.to_vec();
    for _ in 0..edits {
        let at = rng.below(new.len());
        match rng.below(3) {
            0 => new[at] ^= 0xff,
            1 => {
                let insert = random_bytes(rng.next(), 1 + rng.below(300));
                new.splice(at..at, insert);
            }
            _ => {
                let end = (at + 1 + rng.below(300)).min(new.len());
                new.drain(at..end);
            }
        }
    }
    new
}

/// Runs the `petrel-delta` binary with `args`.
pub fn cli(args: &[&Path]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_petrel-delta"))
        .args(args)
        .output()
        .expect("the petrel-delta binary runs")
}
