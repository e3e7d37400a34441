//! Scenario tests of the public API: byte-exact round trips per method,
//! identical inputs, and every way a patch or old layer can be wrong.

use crate::testdata::{layer, tar_of, tar_pair};
use crate::*;
use std::path::{Path, PathBuf};

/// An old/new pair on disk and where its patch goes.
struct Pair {
    dir: tempfile::TempDir,
    old: PathBuf,
    new: Vec<u8>,
    patch: PathBuf,
}

impl Pair {
    fn new(old: &[u8], new: &[u8]) -> Pair {
        let dir = tempfile::tempdir().unwrap();
        let (old_path, new_path) = (dir.path().join("old.tar"), dir.path().join("new.tar"));
        std::fs::write(&old_path, old).unwrap();
        std::fs::write(&new_path, new).unwrap();
        let patch = dir.path().join("patch.ptrl");
        Pair {
            dir,
            old: old_path,
            new: new.to_vec(),
            patch,
        }
    }

    /// Tars (so every method applies) of about `len` bytes.
    fn generated(len: usize) -> Pair {
        let (old, new) = tar_pair(1, len, 60);
        Pair::new(&old, &new)
    }

    fn diff(&self, opts: &EncodeOptions) -> DiffReport {
        let new = self.dir.path().join("new.tar");
        diff(&self.old, &new, &self.patch, opts).unwrap()
    }

    fn patch_bytes(&self) -> Vec<u8> {
        std::fs::read(&self.patch).unwrap()
    }

    /// Writes `patch` to a file beside the pair and applies it to the old
    /// layer; returns the result and what was written.
    fn apply(&self, patch: &[u8]) -> (Result<ApplyReport, DeltaError>, Vec<u8>) {
        self.apply_with_limits(patch, &Limits::default())
    }

    fn apply_with_limits(
        &self,
        patch: &[u8],
        limits: &Limits,
    ) -> (Result<ApplyReport, DeltaError>, Vec<u8>) {
        let path = self.dir.path().join("candidate.ptrl");
        std::fs::write(&path, patch).unwrap();
        let mut out = Vec::new();
        let result = apply_with_limits(&self.old, &path, &mut out, limits);
        (result, out)
    }
}

fn only(method: Method) -> EncodeOptions {
    EncodeOptions {
        methods: vec![method],
        ..EncodeOptions::default()
    }
}

/// `patch` with its header rewritten by `edit`.
fn with_header(patch: &[u8], edit: impl FnOnce(&mut Header)) -> Vec<u8> {
    let mut header = read_header(&mut &patch[..]).unwrap();
    edit(&mut header);
    let mut out = header.to_bytes().to_vec();
    out.extend_from_slice(&patch[HEADER_LEN..]);
    out
}

fn assert_round_trip(pair: &Pair, method: Method) -> DiffReport {
    let report = pair.diff(&only(method));
    assert_eq!(report.chosen, method);
    let (result, out) = pair.apply(&pair.patch_bytes());
    let applied = result.unwrap();
    assert_eq!(applied.header.method, method);
    assert_eq!(applied.bytes_written, pair.new.len() as u64);
    assert!(
        out == pair.new,
        "{method}: output differs from the new layer"
    );
    report
}

#[test]
fn round_trip_is_byte_exact_for_each_method_on_generated_data() {
    let pair = Pair::generated(2 << 20);
    for method in Method::ALL {
        let report = assert_round_trip(&pair, method);
        assert!(report.patch_size < pair.new.len() as u64 / 20, "{report:?}");
    }
}

#[test]
fn round_trip_is_byte_exact_on_the_ca_certificates_pair() {
    let dir = Path::new("/tmp/petrel-corpus/ca-certificates");
    let pair = match (
        std::fs::read(dir.join("old.tar")),
        std::fs::read(dir.join("new.tar")),
    ) {
        (Ok(old), Ok(new)) => Pair::new(&old, &new),
        _ => Pair::generated(400_000), // corpus not unpacked here
    };
    for method in Method::ALL {
        assert_round_trip(&pair, method);
    }
}

#[test]
fn default_options_try_every_method_and_keep_the_smallest() {
    let pair = Pair::generated(300_000);
    let report = pair.diff(&EncodeOptions::default());
    assert_eq!(report.tried.len(), Method::ALL.len());
    let smallest = report.tried.iter().map(|t| t.1).min().unwrap();
    assert_eq!(report.patch_size, smallest);
    assert_eq!(pair.patch_bytes().len() as u64, report.patch_size);
    let (result, out) = pair.apply(&pair.patch_bytes());
    assert_eq!(result.unwrap().header.method, report.chosen);
    assert!(out == pair.new);
}

#[test]
fn identical_inputs_give_a_tiny_patch() {
    let data = tar_of(&[("data", &layer(3, 1 << 20))]);
    let pair = Pair::new(&data, &data);
    for method in Method::ALL {
        let report = assert_round_trip(&pair, method);
        assert!(report.patch_size < HEADER_LEN as u64 + 200, "{report:?}");
    }
}

#[test]
fn empty_layers_round_trip() {
    let empty_tar = tar_of(&[]);
    for (old, new) in [
        (&b""[..], &b""[..]),
        (b"", b"new"),
        (b"old", b""),
        (&empty_tar, &empty_tar),
        (b"", &empty_tar),
    ] {
        let pair = Pair::new(old, new);
        for method in Method::ALL {
            if method == Method::TarAware && (new == b"new" || old == b"old") {
                continue; // not tars: see the next test
            }
            assert_round_trip(&pair, method);
        }
    }
}

#[test]
fn a_layer_that_is_not_a_tar_leaves_tar_aware_out_and_the_others_win() {
    let old = layer(4, 50_000);
    let pair = Pair::new(&old, &crate::testdata::edited(&old, 5, 20));
    let new = pair.dir.path().join("new.tar");
    let err = diff(&pair.old, &new, &pair.patch, &only(Method::TarAware)).unwrap_err();
    assert!(
        matches!(
            err,
            DeltaError::NotApplicable {
                method: Method::TarAware,
                ..
            }
        ),
        "{err}"
    );
    assert!(!pair.patch.exists());
    let opts = EncodeOptions::default();
    assert!(opts
        .applicable_to_files(Method::TarAware, &pair.old, &new)
        .is_err());
    let report = pair.diff(&opts);
    assert!(
        report.tried.iter().all(|t| t.0 != Method::TarAware),
        "{report:?}"
    );
    let (result, out) = pair.apply(&pair.patch_bytes());
    result.unwrap();
    assert!(out == pair.new);
}

#[test]
fn wrong_old_file_is_rejected_with_from_mismatch_and_nothing_is_written() {
    let pair = Pair::generated(100_000);
    pair.diff(&EncodeOptions::default());
    let patch = pair.patch_bytes();
    std::fs::write(&pair.old, b"some other layer").unwrap();
    let (result, out) = pair.apply(&patch);
    let err = result.unwrap_err();
    assert!(matches!(err, DeltaError::FromMismatch { .. }), "{err}");
    assert!(out.is_empty());
}

#[test]
fn a_lying_from_size_is_rejected_before_writing() {
    let pair = Pair::generated(50_000);
    pair.diff(&EncodeOptions::default());
    let patch = with_header(&pair.patch_bytes(), |h| h.from_size += 1);
    let (result, out) = pair.apply(&patch);
    assert!(matches!(result, Err(DeltaError::Corrupt(_))), "{result:?}");
    assert!(out.is_empty());
}

#[test]
fn truncated_patches_are_clear_errors_for_every_method() {
    let pair = Pair::generated(20_000);
    for method in Method::ALL {
        pair.diff(&only(method));
        let patch = pair.patch_bytes();
        for len in 0..patch.len() {
            let (result, out) = pair.apply(&patch[..len]);
            let err = result.expect_err("a truncated patch applied");
            assert!(out.len() <= pair.new.len(), "{method} cut at {len}: {err}");
            if method == Method::BsdiffZstd {
                // Its stream table is checked against the file's length
                // before any stream is read.
                assert!(matches!(err, DeltaError::Truncated), "cut at {len}: {err}");
                assert!(out.is_empty(), "cut at {len}");
            }
        }
    }
}

#[test]
fn flipped_payload_bytes_are_errors_never_wrong_output() {
    let pair = Pair::generated(20_000);
    for method in Method::ALL {
        pair.diff(&only(method));
        let patch = pair.patch_bytes();
        let mut errors = 0;
        for at in HEADER_LEN..patch.len() {
            let mut bad = patch.clone();
            bad[at] ^= 0x5a;
            match pair.apply(&bad) {
                (Ok(_), out) => assert!(out == pair.new, "{method}: flip at {at} applied wrongly"),
                (Err(_), _) => errors += 1,
            }
        }
        let flips = patch.len() - HEADER_LEN;
        assert!(
            errors * 10 >= flips * 9,
            "{method}: {errors} errors in {flips} flips"
        );
    }
}

#[test]
fn bad_magic_and_unknown_method_are_rejected_before_the_old_layer_is_read() {
    let pair = Pair::generated(10_000);
    pair.diff(&EncodeOptions::default());
    let mut patch = pair.patch_bytes();
    std::fs::remove_file(&pair.old).unwrap();
    patch[10] = 99;
    assert!(matches!(
        pair.apply(&patch).0,
        Err(DeltaError::UnknownMethod(99))
    ));
    patch[0] = b'Q';
    assert!(matches!(pair.apply(&patch).0, Err(DeltaError::BadMagic)));
}

#[test]
fn garbage_after_the_header_is_a_clear_error() {
    let pair = Pair::generated(10_000);
    let garbage: Vec<u8> = layer(9, 5000);
    for method in Method::ALL {
        pair.diff(&only(method));
        let mut patch = pair.patch_bytes()[..HEADER_LEN].to_vec();
        patch.extend_from_slice(&garbage);
        let (result, out) = pair.apply(&patch);
        // bsdiff+zstd reads garbage as a table of stream lengths, which
        // then point past the end of the file or overflow.
        assert!(
            matches!(result, Err(DeltaError::Corrupt(_) | DeltaError::Truncated)),
            "{method}: {result:?}"
        );
        assert!(out.is_empty());
    }
}

#[test]
fn a_lying_to_size_cannot_make_apply_write_more_or_pass() {
    let pair = Pair::generated(100_000);
    let half = pair.new.len() as u64 / 2;
    for method in Method::ALL {
        pair.diff(&only(method));
        let small = with_header(&pair.patch_bytes(), |h| h.to_size = half);
        let (result, out) = pair.apply(&small);
        assert!(
            matches!(result, Err(DeltaError::TooLarge { .. })),
            "{result:?}"
        );
        assert!(out.len() as u64 <= half);
        let big = with_header(&pair.patch_bytes(), |h| h.to_size += 1);
        let (result, _) = pair.apply(&big);
        assert!(
            matches!(result, Err(DeltaError::Corrupt(_))),
            "{method}: {result:?}"
        );
    }
}

#[test]
fn a_to_size_above_the_decoders_output_limit_is_refused_before_any_work() {
    let pair = Pair::generated(100_000);
    for method in Method::ALL {
        pair.diff(&only(method));
        let huge = with_header(&pair.patch_bytes(), |h| h.to_size = 1 << 62);
        let (result, out) = pair.apply(&huge);
        assert!(
            matches!(result, Err(DeltaError::TooLarge { size, .. }) if size == 1 << 62),
            "{method}: {result:?}"
        );
        assert!(out.is_empty());
        let tight = Limits {
            max_output: pair.new.len() as u64 - 1,
            ..Limits::default()
        };
        let (result, _) = pair.apply_with_limits(&pair.patch_bytes(), &tight);
        assert!(
            matches!(result, Err(DeltaError::TooLarge { .. })),
            "{method}: {result:?}"
        );
    }
}

#[test]
fn a_patch_promising_another_new_layer_fails_with_to_mismatch() {
    let pair = Pair::generated(50_000);
    pair.diff(&EncodeOptions::default());
    let patch = with_header(&pair.patch_bytes(), |h| {
        h.to = petrel_protocol::Digest::of(b"x")
    });
    let (result, _) = pair.apply(&patch);
    assert!(
        matches!(result, Err(DeltaError::ToMismatch { .. })),
        "{result:?}"
    );
}

#[test]
fn a_zstd_ref_patch_over_the_decoder_memory_cap_is_refused() {
    let pair = Pair::generated(50_000);
    pair.diff(&only(Method::ZstdRef));
    let limits = Limits {
        max_ref_prefix: 10_000,
        ..Limits::default()
    };
    let (result, out) = pair.apply_with_limits(&pair.patch_bytes(), &limits);
    assert!(
        matches!(result, Err(DeltaError::TooLarge { .. })),
        "{result:?}"
    );
    assert!(out.is_empty());
}

#[test]
fn zstd_ref_alone_over_max_ref_prefix_or_no_method_is_an_error_and_writes_nothing() {
    let pair = Pair::generated(50_000);
    let opts = EncodeOptions {
        max_ref_prefix: 1000,
        ..only(Method::ZstdRef)
    };
    let new = pair.dir.path().join("new.tar");
    let err = diff(&pair.old, &new, &pair.patch, &opts).unwrap_err();
    assert!(matches!(err, DeltaError::TooLarge { .. }), "{err}");
    let opts = EncodeOptions {
        methods: vec![],
        ..EncodeOptions::default()
    };
    let err = diff(&pair.old, &new, &pair.patch, &opts).unwrap_err();
    assert!(matches!(err, DeltaError::NoMethod), "{err}");
    assert!(!pair.patch.exists());
}

#[test]
fn diff_leaves_only_the_patch_behind() {
    let pair = Pair::generated(50_000);
    pair.diff(&EncodeOptions::default());
    pair.diff(&EncodeOptions::default()); // replaces the existing patch
    let mut names: Vec<_> = std::fs::read_dir(pair.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["new.tar", "old.tar", "patch.ptrl"]);
}

#[test]
fn a_missing_patch_file_is_an_io_error_naming_it() {
    let pair = Pair::generated(1000);
    let missing = pair.dir.path().join("no-such.ptrl");
    let err = apply(&pair.old, &missing, Vec::new()).unwrap_err();
    match err {
        DeltaError::Io { path, .. } => assert_eq!(path, missing),
        other => panic!("expected an I/O error naming the patch, got {other}"),
    }
}
