//! A quick test for streams that no compressor will shrink (random or
//! already-compressed data: a layer gaining a model file, media, a
//! tarball), so the encoders store them with zstd's fastest level instead
//! of spending level 19 or LZMA2 `-9e` on them: 16 MiB of such bytes cost
//! 14 s at level 19 for under 0.1% gained.
//!
//! The test compresses up to [`SAMPLES`] evenly spread samples of
//! [`SAMPLE`] bytes at level 1 (a few ms); a stream is incompressible when
//! they shrink by less than 2%. Mixed streams are compressed in full.

use std::io;

const SAMPLE: usize = 64 << 10;
const SAMPLES: usize = 16;
/// Below this, the full compression is cheap anyway.
const MIN_LEN: usize = 1 << 20;

/// Whether `data` is large and will not compress (see the module docs).
pub(crate) fn incompressible(data: &[u8]) -> io::Result<bool> {
    if data.len() < MIN_LEN {
        return Ok(false);
    }
    let stride = data.len() / SAMPLES;
    let (mut raw, mut packed) = (0usize, 0usize);
    for i in 0..SAMPLES {
        let sample = &data[i * stride..(i * stride + SAMPLE).min(data.len())];
        raw += sample.len();
        packed += zstd::bulk::compress(sample, 1)?.len();
    }
    Ok(packed * 50 >= raw * 49)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testdata::layer;

    #[test]
    fn random_bytes_are_incompressible_and_text_or_small_streams_are_not() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let random: Vec<u8> = (0..2 << 20)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        assert!(incompressible(&random).unwrap());
        assert!(!incompressible(&random[..100_000]).unwrap());
        let text = "the quick brown fox jumps over the lazy dog\n".repeat(50_000);
        assert!(!incompressible(text.as_bytes()).unwrap());
        assert!(!incompressible(&layer(1, 2 << 20)).unwrap());
    }
}
