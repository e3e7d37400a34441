//! A deterministic fuzz corpus for the tar-aware decoder: a few valid
//! patches (renamed libraries, moved and new files, gzip members), each
//! mutated thousands of times with a seeded generator, and every mutant
//! applied. `apply` must return Ok with the right output or an error —
//! never panic, never write past the promised size, and never take long.
//!
//! Mutations happen at two levels: on the patch bytes as shipped (bit
//! flips, truncations, insertions, deletions), which mostly break the
//! compressed frames; and on the decompressed streams, recompressed
//! afterwards, so that the op, control, zero-run and recipe parsers see
//! well-framed garbage: bit flips, cut streams, inserted bytes and varint
//! blowups (maximal or overlong LEB128 values spliced in).
//!
//! Payload layout (see `src/methods/tar_aware/streams.rs`): per stream
//! (ops, diff, extra, recipe) codec u8 (0 empty, 1 zstd, 2 raw LZMA2),
//! window log u8, LEB128 length; then the streams in that order.

mod common;

use common::{edited, gzip_9n, random_bytes, Rng};
use petrel_delta::{apply, diff, EncodeOptions, Method, HEADER_LEN};
use std::io::Read;
use std::time::{Duration, Instant};

/// Mutants per patch and level.
const MUTANTS: usize = 1500;
/// The most any single apply may take.
const MAX_APPLY: Duration = Duration::from_secs(5);
/// The decoder's window caps per stream.
const WINDOW_LOGS: [u8; 4] = [22, 23, 23, 22];

fn tar(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, path, &data[..]).unwrap();
    }
    b.into_inner().unwrap()
}

fn changelog(seed: u64, lines: usize) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    (0..lines)
        .flat_map(|i| format!("  * change {i} fixes bug {}\n", rng.below(100_000)).into_bytes())
        .collect()
}

/// (old tar, new tar) pairs that exercise every op.
fn pairs() -> Vec<(Vec<u8>, Vec<u8>)> {
    let lib = random_bytes(1, 60_000);
    let doc = random_bytes(2, 20_000);
    let log = changelog(3, 800);
    let mut newer_log = changelog(4, 30);
    newer_log.extend_from_slice(&log);
    vec![
        (
            tar(&[
                ("usr/lib/libx.so.1.0.1", lib.clone()),
                ("usr/share/doc/x/README", doc.clone()),
                ("usr/share/doc/x/changelog.gz", gzip_9n(&log)),
            ]),
            tar(&[
                ("usr/lib/libx.so.1.0.2", edited(&lib, 5, 12)),
                ("usr/share/doc/x/README", doc.clone()),
                ("usr/share/doc/x/changelog.gz", gzip_9n(&newer_log)),
                ("usr/share/doc/x/NEW", random_bytes(6, 3_000)),
            ]),
        ),
        (
            tar(&[("a", doc.clone()), ("b", lib.clone())]),
            tar(&[("b", edited(&lib, 7, 3)), ("c/a", doc)]),
        ),
    ]
}

struct Case {
    dir: tempfile::TempDir,
    new: Vec<u8>,
    patch: Vec<u8>,
}

impl Case {
    fn new(old: &[u8], new: &[u8]) -> Case {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("old.tar"), old).unwrap();
        std::fs::write(dir.path().join("new.tar"), new).unwrap();
        let opts = EncodeOptions {
            methods: vec![Method::TarAware],
            ..EncodeOptions::default()
        };
        let patch_path = dir.path().join("patch");
        diff(
            &dir.path().join("old.tar"),
            &dir.path().join("new.tar"),
            &patch_path,
            &opts,
        )
        .unwrap();
        let patch = std::fs::read(patch_path).unwrap();
        Case {
            dir,
            new: new.to_vec(),
            patch,
        }
    }

    /// Applies `patch`: Ok only with the exact new layer, never more bytes
    /// than promised, never slow. Returns whether it applied.
    fn check(&self, patch: &[u8], what: &str) -> bool {
        let path = self.dir.path().join("mutant");
        std::fs::write(&path, patch).unwrap();
        let mut out = Vec::new();
        let start = Instant::now();
        let result = apply(&self.dir.path().join("old.tar"), &path, &mut out);
        let took = start.elapsed();
        assert!(took < MAX_APPLY, "{what}: took {took:?}");
        assert!(
            out.len() <= self.new.len(),
            "{what}: wrote {} bytes",
            out.len()
        );
        match result {
            Ok(_) => {
                assert!(out == self.new, "{what}: applied with the wrong output");
                true
            }
            Err(_) => false,
        }
    }
}

fn varint(r: &mut &[u8]) -> u64 {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (b, rest) = r.split_first().unwrap();
        *r = rest;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            break;
        }
    }
    v
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// The four decompressed streams of a valid payload.
fn streams(payload: &[u8]) -> Vec<Vec<u8>> {
    let mut r = payload;
    let table: Vec<(u8, u8, u64)> = (0..4)
        .map(|_| {
            let (codec, window) = (r[0], r[1]);
            r = &r[2..];
            (codec, window, varint(&mut r))
        })
        .collect();
    table
        .into_iter()
        .map(|(codec, window, len)| {
            let (body, rest) = r.split_at(len as usize);
            r = rest;
            let mut out = Vec::new();
            match codec {
                0 => {}
                1 => {
                    zstd::stream::read::Decoder::new(body)
                        .unwrap()
                        .read_to_end(&mut out)
                        .unwrap();
                }
                2 => {
                    let mut opts = liblzma::stream::LzmaOptions::new_preset(0).unwrap();
                    opts.dict_size(1 << window);
                    let mut filters = liblzma::stream::Filters::new();
                    filters.lzma2(&opts);
                    let raw = liblzma::stream::Stream::new_raw_decoder(&filters).unwrap();
                    liblzma::read::XzDecoder::new_stream(body, raw)
                        .read_to_end(&mut out)
                        .unwrap();
                }
                other => panic!("unknown codec {other}"),
            }
            out
        })
        .collect()
}

/// A payload of `streams`, each one zstd frame (or empty).
fn payload(streams: &[Vec<u8>]) -> Vec<u8> {
    let mut table = Vec::new();
    let mut bodies = Vec::new();
    for (data, window) in streams.iter().zip(WINDOW_LOGS) {
        if data.is_empty() {
            table.extend([0, window]);
            put_varint(&mut table, 0);
            continue;
        }
        let frame = zstd::encode_all(&data[..], 1).unwrap();
        table.extend([1, window]);
        put_varint(&mut table, frame.len() as u64);
        bodies.extend(frame);
    }
    table.extend(bodies);
    table
}

/// One random change to `data`.
fn mutate(data: &mut Vec<u8>, rng: &mut Rng, varints: bool) {
    let at = rng.below(data.len() + 1);
    match rng.below(if varints { 6 } else { 4 }) {
        0 if !data.is_empty() => {
            let at = at.min(data.len() - 1);
            data[at] ^= 1 << rng.below(8);
        }
        1 => data.truncate(at),
        2 => {
            let bytes: Vec<u8> = (0..1 + rng.below(8)).map(|_| rng.next() as u8).collect();
            data.splice(at..at, bytes);
        }
        3 if at < data.len() => {
            let end = (at + 1 + rng.below(16)).min(data.len());
            data.drain(at..end);
        }
        4 => {
            // The largest 64-bit varint.
            let blowup = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
            data.splice(at..at, blowup);
        }
        5 => {
            // A length of a few billion, or an overlong (padded) varint.
            let blowup: &[u8] = if rng.below(2) == 0 {
                &[0x80, 0x80, 0x80, 0x80, 0x10]
            } else {
                &[0x81, 0x80, 0x00]
            };
            data.splice(at..at, blowup.iter().copied());
        }
        _ => data.push(rng.next() as u8),
    }
}

#[test]
fn mutated_tar_aware_patches_apply_exactly_or_fail_cleanly() {
    let mut rng = Rng::new(2024);
    let mut applied = 0;
    let mut tried = 0;
    let start = Instant::now();
    for (old, new) in pairs() {
        let case = Case::new(&old, &new);
        assert!(case.check(&case.patch, "the valid patch"));
        let header = &case.patch[..HEADER_LEN];
        let raw = streams(&case.patch[HEADER_LEN..]);
        // Recompressed unchanged, the streams still apply.
        let mut same = header.to_vec();
        same.extend(payload(&raw));
        assert!(case.check(&same, "the recompressed patch"));
        for i in 0..MUTANTS {
            let mut patch = case.patch.clone();
            for _ in 0..1 + rng.below(3) {
                let mut payload = patch.split_off(HEADER_LEN.min(patch.len()));
                mutate(&mut payload, &mut rng, false);
                patch.extend(payload);
            }
            applied += usize::from(case.check(&patch, &format!("shipped mutant {i}")));
            let mut streams = raw.clone();
            for _ in 0..1 + rng.below(3) {
                let s = rng.below(streams.len());
                mutate(&mut streams[s], &mut rng, true);
            }
            let mut patch = header.to_vec();
            patch.extend(payload(&streams));
            applied += usize::from(case.check(&patch, &format!("stream mutant {i}")));
            tried += 2;
        }
    }
    assert!(tried >= 2_000);
    // A mutant may apply (a flip in a byte nothing reads), but rarely.
    assert!(applied * 10 < tried, "{applied} of {tried} mutants applied");
    assert!(start.elapsed() < Duration::from_secs(300));
}
