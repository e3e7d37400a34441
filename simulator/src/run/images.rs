//! The scenario's application image, made up: a few files of
//! deterministic pseudo-random content (half of it compressible), each
//! release rewriting blocks in a share of them, so deltas between
//! releases are what real updates give (small, not empty).

use crate::scenario::ImageSpec;
use anyhow::{Context, Result};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use std::path::Path;

const FILES: usize = 16;

/// Writes release number `k` (0 = first) of the image into `dir`.
pub fn write(spec: &ImageSpec, seed: u64, k: usize, dir: &Path) -> Result<()> {
    let app = dir.join("app");
    std::fs::create_dir_all(&app).with_context(|| format!("creating {}", app.display()))?;
    let size = (spec.size_kb as usize * 1024 / FILES).max(64);
    for f in 0..FILES {
        let mut bytes = base(seed, f, size);
        for release in 1..=k {
            let mut rng = StdRng::seed_from_u64(seed ^ ((release as u64) << 32) ^ f as u64);
            if rng.gen_range(0..100) < spec.change_percent {
                mutate(&mut bytes, &mut rng);
            }
        }
        let path = app.join(format!("part-{f:02}.bin"));
        std::fs::write(&path, &bytes).with_context(|| format!("writing {}", path.display()))?;
    }
    std::fs::write(app.join("version.txt"), format!("{k}\n"))?;
    Ok(())
}

/// A file's first content: random bytes, then text-like repeats.
fn base(seed: u64, f: usize, size: usize) -> Vec<u8> {
    let mut rng = StdRng::seed_from_u64(seed.wrapping_mul(31) ^ f as u64);
    let mut bytes = vec![0u8; size];
    let half = size / 2;
    rng.fill_bytes(&mut bytes[..half]);
    for (i, b) in bytes[half..].iter_mut().enumerate() {
        *b = b"petrel simulated payload "[i % 25];
    }
    bytes
}

/// Rewrites about a tenth of the file's 64-byte blocks.
fn mutate(bytes: &mut [u8], rng: &mut StdRng) {
    for block in bytes.chunks_mut(64) {
        if rng.gen_range(0..10) == 0 {
            rng.fill_bytes(block);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn releases_differ_in_part_and_repeat_from_the_seed() {
        let spec = ImageSpec {
            size_kb: 64,
            change_percent: 50,
        };
        let d = tempfile::tempdir().unwrap();
        let read = |k: usize, name: &str| {
            let dir = d.path().join(format!("{name}{k}"));
            write(&spec, 7, k, &dir).unwrap();
            (0..FILES)
                .map(|f| std::fs::read(dir.join(format!("app/part-{f:02}.bin"))).unwrap())
                .collect::<Vec<_>>()
        };
        let (v0, v1, again) = (read(0, "a"), read(1, "a"), read(1, "b"));
        assert_eq!(v1, again);
        let changed = v0.iter().zip(&v1).filter(|(a, b)| a != b).count();
        assert!(changed > 0 && changed < FILES, "{changed} files changed");
    }
}
