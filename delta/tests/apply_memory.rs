//! Device footprint bar (DESIGN.md): peak RSS while applying a delta to a
//! 100 MB layer ≤ 64 MB. Runs `petrel-delta apply` as a child process and
//! reads its peak RSS from `wait4`'s rusage.
//!
//! Linux counts in a child's `ru_maxrss` the high-water mark of the image
//! it was spawned from (the test process, before exec), so the figure is an
//! upper bound; the pair and patch are therefore generated streaming, in a
//! few MB, keeping that bound tight.
//!
//! The patch is forged directly in the bsdiff+zstd payload format rather
//! than made by `diff`: bsdiff's suffix sort over a 100 MB old layer takes
//! about a minute and 2 GB in a debug build, and decode memory does not
//! depend on who wrote the streams. Each stream is forged as the decoder's
//! worst case: its frame asks for the largest window the decoder accepts
//! (no pledged size, so the window is not shrunk to the content), and the
//! diff and extra streams each carry more than a window of data, so every
//! window buffer is filled.
//!
//! Payload layout (format version 2, see `src/methods/bsdiff_zstd/`):
//! three u64 LE stream lengths, then the control stream (LEB128 varints:
//! diff length, extra length, zigzag seek per step), the diff stream and
//! the extra stream, each one zstd frame.

mod common;

use common::{random_bytes, run_measured, Rng};
use petrel_delta::{Header, Method, FORMAT_VERSION};
use petrel_protocol::Digest;
use sha2::{Digest as _, Sha256};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

const LAYER: u64 = 100 << 20;
const STEP: u64 = 1 << 20;
/// Literal bytes per step: 100 steps give 12.5 MiB, more than the window.
const EXTRA: usize = 128 << 10;
const BAR_BYTES: u64 = 64_000_000;
/// The decoder's window limits (log2) for the control, diff and extra streams.
const WINDOW_LOGS: [u32; 3] = [20, 23, 23];

/// Writes a pseudo-random old layer; returns its digest.
fn write_old(path: &Path) -> Digest {
    let mut out = BufWriter::new(File::create(path).unwrap());
    let mut hasher = Sha256::new();
    for i in 0..LAYER / STEP {
        let chunk = random_bytes(i + 1, STEP as usize);
        hasher.update(&chunk);
        out.write_all(&chunk).unwrap();
    }
    out.flush().unwrap();
    Digest::from_hasher(hasher)
}

fn varint(out: &mut impl Write, mut v: u64) {
    while v >= 0x80 {
        out.write_all(&[v as u8 | 0x80]).unwrap();
        v >>= 7;
    }
    out.write_all(&[v as u8]).unwrap();
}

type StreamWriter = zstd::stream::write::Encoder<'static, BufWriter<File>>;

/// A zstd stream into a scratch file, with the given window.
fn stream(path: &Path, window_log: u32) -> StreamWriter {
    let mut z =
        zstd::stream::write::Encoder::new(BufWriter::new(File::create(path).unwrap()), 1).unwrap();
    z.window_log(window_log).unwrap();
    z
}

/// Writes a bsdiff+zstd patch editing every MiB of the old layer: three
/// changed bytes, a 128 KiB random insertion, a 32-byte deletion. Streams
/// old in and each stream out to its own scratch file in `dir`, then joins
/// them; returns the new layer's digest and size.
fn write_patch(old: &Path, patch: &Path, dir: &Path, from: Digest) -> (Digest, u64) {
    let names = ["control", "diff", "extra"].map(|n| dir.join(n));
    let [mut control, mut diff_out, mut extra_out] =
        [0, 1, 2].map(|i| stream(&names[i], WINDOW_LOGS[i]));
    let mut old = BufReader::new(File::open(old).unwrap());
    let (mut rng, mut hasher, mut pos, mut to_size) = (Rng::new(42), Sha256::new(), 0, 0);
    let mut span = vec![0u8; STEP as usize];
    while pos < LAYER {
        let diff_len = STEP.min(LAYER - pos);
        let seek = if pos + diff_len + 32 <= LAYER { 32 } else { 0 };
        let span = &mut span[..diff_len as usize];
        old.read_exact(span).unwrap();
        old.seek_relative(seek as i64).unwrap();
        let mut diff = vec![0u8; span.len()];
        for _ in 0..3 {
            diff[rng.below(span.len())] = 1 + rng.below(255) as u8;
        }
        let extra = random_bytes(rng.next(), EXTRA);
        // diff length, extra length, seek (non-negative: zigzag is 2 * seek)
        for v in [diff_len, extra.len() as u64, 2 * seek] {
            varint(&mut control, v);
        }
        diff_out.write_all(&diff).unwrap();
        extra_out.write_all(&extra).unwrap();
        span.iter_mut()
            .zip(&diff)
            .for_each(|(o, d)| *o = o.wrapping_add(*d));
        hasher.update(&*span);
        hasher.update(&extra);
        to_size += diff_len + extra.len() as u64;
        pos += diff_len + seek;
    }
    for z in [control, diff_out, extra_out] {
        z.finish().unwrap().flush().unwrap();
    }
    let to = Digest::from_hasher(hasher);
    let header = Header {
        version: FORMAT_VERSION,
        method: Method::BsdiffZstd,
        from,
        to: to.clone(),
        from_size: LAYER,
        to_size,
    };
    let mut file = BufWriter::new(File::create(patch).unwrap());
    header.write_to(&mut file).unwrap();
    for name in &names {
        let len = std::fs::metadata(name).unwrap().len();
        file.write_all(&len.to_le_bytes()).unwrap();
    }
    for name in &names {
        std::io::copy(&mut File::open(name).unwrap(), &mut file).unwrap();
    }
    file.into_inner().unwrap().sync_all().unwrap();
    (to, to_size)
}

/// sha256 of a file, streaming.
fn digest_of_file(path: &Path) -> Digest {
    let mut hasher = Sha256::new();
    std::io::copy(&mut File::open(path).unwrap(), &mut hasher).unwrap();
    Digest::from_hasher(hasher)
}

#[test]
fn applying_a_delta_to_a_100_mb_layer_peaks_under_64_mb_rss() {
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name);
    let from = write_old(&p("old.tar"));
    let (to, to_size) = write_patch(&p("old.tar"), &p("patch"), dir.path(), from);

    let (code, peak) = run_measured(&[
        Path::new("apply"),
        &p("old.tar"),
        &p("patch"),
        &p("new.tar"),
    ]);
    assert_eq!(code, 0, "apply failed");
    assert_eq!(std::fs::metadata(p("new.tar")).unwrap().len(), to_size);
    assert_eq!(digest_of_file(&p("new.tar")), to);
    eprintln!("apply to a {LAYER} byte old layer: peak RSS at most {peak} bytes");
    assert!(
        peak <= BAR_BYTES,
        "peak RSS {peak} bytes is over {BAR_BYTES}"
    );
}
