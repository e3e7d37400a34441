//! Every method, forced one at a time, on layer pairs large enough to
//! meet the decoder's budgets the way real layers do, and each patch
//! applied with the devices' default [`Limits`].
//!
//! Why: an honest bsdiff+zstd patch of postgresql-15 (55 MB) was refused by
//! the device's old-layer read budget, so the fleet silently paid full
//! downloads. The class is "many far jumps in the old layer per output
//! byte": rebuilt executables whose code moved. The generated pair below
//! has that shape (files whose blocks of a few hundred bytes moved and were
//! patched), 56 MB like postgresql-15, and the test checks it really makes
//! the decoder jump that often. When the shared corpus is present beside
//! the repository (`../shared/corpus`, or `PETREL_CORPUS` holding
//! `NAME/old.tar` and `NAME/new.tar`), its 50 MB+ pair runs too.

mod common;

use common::{random_bytes, Rng};
use petrel_delta::{apply_with_limits, diff, DeltaError, EncodeOptions, Limits, Method};
use std::path::{Path, PathBuf};

/// Files in the generated layer, and their size: 56 MiB in all.
const FILES: usize = 56;
const FILE_LEN: usize = 1 << 20;

/// A file of "code": records that repeat with variations, so a byte diff
/// finds long approximate matches, as it does in executables.
fn code_file(seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let vocabulary: Vec<Vec<u8>> = (0..64).map(|i| random_bytes(seed ^ i, 48)).collect();
    let mut out = Vec::with_capacity(FILE_LEN + 64);
    while out.len() < FILE_LEN {
        let mut record = vocabulary[rng.below(vocabulary.len())].clone();
        let at = rng.below(record.len() - 4);
        record[at..at + 4].copy_from_slice(&(rng.next() as u32).to_le_bytes());
        out.extend_from_slice(&record);
    }
    out.truncate(FILE_LEN);
    out
}

/// The rebuilt file: cut into blocks of 64..448 bytes, blocks moved within
/// windows of 64 (tens of KiB: far outside a 4 KiB read-ahead), and one
/// "address" in every other block changed.
fn rebuilt(old: &[u8], seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut blocks = Vec::new();
    let mut at = 0;
    while at < old.len() {
        let len = (64 + rng.below(384)).min(old.len() - at);
        blocks.push(old[at..at + len].to_vec());
        at += len;
    }
    for window in blocks.chunks_mut(64) {
        for i in (1..window.len()).rev() {
            window.swap(i, rng.below(i + 1));
        }
    }
    for block in blocks.iter_mut().step_by(2).filter(|b| b.len() > 8) {
        let at = rng.below(block.len() - 4);
        block[at..at + 4].copy_from_slice(&(rng.next() as u32).to_le_bytes());
    }
    blocks.concat()
}

fn tar_of(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut header = tar::Header::new_ustar();
        header.set_size(data.len() as u64);
        header.set_mode(0o755);
        header.set_mtime(1_700_000_000);
        builder.append_data(&mut header, name, &data[..]).unwrap();
    }
    builder.into_inner().unwrap()
}

/// Writes the generated pair into `dir`; returns (old, new) paths.
fn generated_pair(dir: &Path) -> (PathBuf, PathBuf) {
    let old_files: Vec<(String, Vec<u8>)> = (0..FILES)
        .map(|i| (format!("usr/lib/app/bin{i:02}"), code_file(i as u64 + 1)))
        .collect();
    let new_files: Vec<(String, Vec<u8>)> = old_files
        .iter()
        .enumerate()
        .map(|(i, (name, data))| (name.clone(), rebuilt(data, 1000 + i as u64)))
        .collect();
    let (old, new) = (dir.join("old.tar"), dir.join("new.tar"));
    std::fs::write(&old, tar_of(&old_files)).unwrap();
    std::fs::write(&new, tar_of(&new_files)).unwrap();
    (old, new)
}

/// What one forced method did on a pair.
#[derive(Debug)]
struct Forced {
    method: Method,
    patch_size: u64,
    preads: u64,
    output: u64,
}

/// Diffs `old` → `new` with each method alone (side by side), applies each
/// patch with the default limits and checks the output is `new`. zstd-ref
/// is not applicable above its 32 MiB old-layer cap; every other method
/// must produce a patch the device accepts.
fn force_every_method(old: &Path, new: &Path, scratch: &Path) -> Vec<Forced> {
    let expected = std::fs::read(new).unwrap();
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = Method::ALL
            .iter()
            .map(|&method| {
                s.spawn(move || {
                    let patch = scratch.join(format!("{}.patch", method.id()));
                    let opts = EncodeOptions {
                        methods: vec![method],
                        ..EncodeOptions::default()
                    };
                    (method, patch.clone(), diff(old, new, &patch, &opts))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut forced = Vec::new();
    for (method, patch, report) in results {
        let report = match report {
            Err(DeltaError::TooLarge { .. }) if method == Method::ZstdRef => continue,
            other => other.unwrap_or_else(|e| panic!("{method}: {e}")),
        };
        assert!(
            report.rejected.is_empty(),
            "{method}: {:?}",
            report.rejected
        );
        let mut out = Vec::new();
        let applied = apply_with_limits(old, &patch, &mut out, &Limits::default())
            .unwrap_or_else(|e| panic!("{method} patch refused with the device's limits: {e}"));
        assert!(out == expected, "{method}: output differs from new.tar");
        let reads = applied.old_reads.expect("an offset-reading method");
        assert!(reads.units <= reads.budget, "{method}: {reads:?}");
        forced.push(Forced {
            method,
            patch_size: report.patch_size,
            preads: reads.preads,
            output: out.len() as u64,
        });
    }
    forced
}

#[test]
fn every_method_on_a_56_mb_layer_of_moved_code_applies_within_the_device_limits() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = generated_pair(dir.path());
    let forced = force_every_method(&old, &new, dir.path());
    eprintln!("{forced:?}");
    let methods: Vec<Method> = forced.iter().map(|f| f.method).collect();
    assert_eq!(
        methods,
        [Method::BsdiffZstd, Method::TarAware],
        "{forced:?}"
    );
    for f in &forced {
        // The class this test is for: at least one far jump (a pread) per
        // KiB of output. The old budget refused one per 500 bytes or so.
        assert!(
            f.preads > f.output / 1024,
            "{}: only {} preads for {} bytes; the pair lost its shape",
            f.method,
            f.preads,
            f.output
        );
        assert!(f.patch_size < f.output / 4, "{f:?}");
    }
}

/// The shared corpus's pairs of 50 MB or more, unpacked into `scratch`.
fn large_corpus_pairs(scratch: &Path) -> Vec<(String, PathBuf, PathBuf)> {
    if let Some(dir) = std::env::var_os("PETREL_CORPUS") {
        let dir = PathBuf::from(dir);
        return std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| {
                let path = e.unwrap().path();
                let (old, new) = (path.join("old.tar"), path.join("new.tar"));
                let big = std::fs::metadata(&new).ok()?.len() >= 50_000_000;
                let name = path.file_name()?.to_string_lossy().into_owned();
                (big && old.is_file()).then_some((name, old, new))
            })
            .collect();
    }
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus");
    let Ok(entries) = std::fs::read_dir(&shared) else {
        return Vec::new();
    };
    let mut pairs = Vec::new();
    for entry in entries {
        let path = entry.unwrap().path();
        let packed = path.join("new.tar.zst");
        let Ok(meta) = std::fs::metadata(&packed) else {
            continue;
        };
        // Compressed at most ~3x on this corpus: only the large pairs.
        if meta.len() < 15_000_000 {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let dest = scratch.join(&name);
        std::fs::create_dir_all(&dest).unwrap();
        for which in ["old", "new"] {
            let src = std::fs::File::open(path.join(format!("{which}.tar.zst"))).unwrap();
            let mut z = zstd::stream::read::Decoder::new(src).unwrap();
            z.window_log_max(27).unwrap();
            let mut out = std::fs::File::create(dest.join(format!("{which}.tar"))).unwrap();
            std::io::copy(&mut z, &mut out).unwrap();
        }
        pairs.push((name, dest.join("old.tar"), dest.join("new.tar")));
    }
    pairs
}

#[test]
fn every_method_on_the_large_pairs_of_the_shared_corpus_applies_within_the_device_limits() {
    let scratch = tempfile::tempdir().unwrap();
    let pairs = large_corpus_pairs(scratch.path());
    if pairs.is_empty() {
        eprintln!("no shared corpus beside the repository: the generated pair covers this class");
        return;
    }
    for (name, old, new) in pairs {
        let forced = force_every_method(&old, &new, scratch.path());
        assert!(forced.len() >= 2, "{name}: {forced:?}");
        eprintln!("{name}: {forced:?}");
    }
}
