//! Deterministic test layers: text-like pseudo-random data (so both zstd
//! and bsdiff have something to find) and an edited copy of it.

/// A tiny xorshift generator: reproducible, no dependency.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// `len` bytes of words from a fixed random vocabulary, with some raw noise.
pub(crate) fn layer(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let vocab: Vec<Vec<u8>> = (0..512)
        .map(|_| (0..3 + rng.below(10)).map(|_| rng.next() as u8).collect())
        .collect();
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        out.extend_from_slice(&vocab[rng.below(vocab.len())]);
    }
    out.truncate(len);
    out
}

/// `old` with scattered byte edits, insertions and deletions.
pub(crate) fn edited(old: &[u8], seed: u64, edits: usize) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut new = old.to_vec();
    for _ in 0..edits {
        let at = rng.below(new.len().max(1));
        match rng.below(3) {
            0 => new[at] = new[at].wrapping_add(1 + rng.below(255) as u8),
            1 => {
                let insert: Vec<u8> = (0..1 + rng.below(200)).map(|_| rng.next() as u8).collect();
                new.splice(at..at, insert);
            }
            _ => {
                let end = (at + 1 + rng.below(200)).min(new.len());
                new.drain(at..end);
            }
        }
    }
    new
}
