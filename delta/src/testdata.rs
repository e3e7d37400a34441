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

/// A ustar archive of `files` (path, contents), as `tar` writes one:
/// a header block per file, the contents padded to 512 bytes, then two
/// zero blocks. Paths must fit the 100-byte name field.
pub(crate) fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (path, data) in files {
        let mut header = [0u8; 512];
        header[..path.len()].copy_from_slice(path.as_bytes());
        header[100..107].copy_from_slice(b"0000644");
        header[108..115].copy_from_slice(b"0000000");
        header[116..123].copy_from_slice(b"0000000");
        header[124..135].copy_from_slice(format!("{:011o}", data.len()).as_bytes());
        header[136..147].copy_from_slice(b"14000000000");
        header[156] = b'0';
        header[257..263].copy_from_slice(b"ustar\0");
        header[263..265].copy_from_slice(b"00");
        header[148..156].copy_from_slice(b"        ");
        let sum: u32 = header.iter().map(|b| u32::from(*b)).sum();
        header[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(data);
        out.resize(out.len().next_multiple_of(512), 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

/// A tar of two generated files of `len` bytes in all, and the same tar
/// with the files edited: a pair every method applies to.
pub(crate) fn tar_pair(seed: u64, len: usize, edits: usize) -> (Vec<u8>, Vec<u8>) {
    let old = layer(seed, len);
    let new = edited(&old, seed + 1, edits);
    let (a, b) = old.split_at(len / 3);
    let (c, d) = new.split_at((len / 3).min(new.len()));
    (
        tar_of(&[("usr/lib/a.bin", a), ("usr/share/b.dat", b)]),
        tar_of(&[("usr/lib/a.bin", c), ("usr/share/b.dat", d)]),
    )
}
