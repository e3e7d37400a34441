//! `diff` applies every candidate with the devices' limits before choosing
//! it: a patch the device would refuse is skipped with its reason, the next
//! candidate ships, and when none passes nothing is written and the error
//! lists every reason. Here the devices' zstd-ref limit is set below the
//! old layer, so every zstd-ref patch is one they would refuse.

mod common;

use common::{edited, random_bytes};
use petrel_delta::{apply_with_limits, diff, DeltaError, EncodeOptions, Limits, Method};

fn opts(methods: Vec<Method>) -> EncodeOptions {
    EncodeOptions {
        methods,
        limits: Limits {
            max_ref_prefix: 1024,
            ..Limits::default()
        },
        ..EncodeOptions::default()
    }
}

#[test]
fn a_candidate_the_devices_would_refuse_is_skipped_for_the_next_one() {
    let dir = tempfile::tempdir().unwrap();
    let old = random_bytes(5, 300_000);
    let new = edited(&old, 6, 20);
    let (o, n, p) = (
        dir.path().join("old"),
        dir.path().join("new"),
        dir.path().join("p"),
    );
    std::fs::write(&o, &old).unwrap();
    std::fs::write(&n, &new).unwrap();
    let opts = opts(vec![Method::ZstdRef, Method::BsdiffZstd]);
    let report = diff(&o, &n, &p, &opts).unwrap();
    assert_eq!(report.chosen, Method::BsdiffZstd, "{report:?}");
    // On this pair zstd-ref makes the smaller patch (762 vs 819 bytes), so
    // it was tried first and refused: the larger one shipped.
    let zstd_ref = report
        .tried
        .iter()
        .find(|t| t.0 == Method::ZstdRef)
        .unwrap();
    let bsdiff = report
        .tried
        .iter()
        .find(|t| t.0 == Method::BsdiffZstd)
        .unwrap();
    assert!(zstd_ref.1 < bsdiff.1, "the premise: {report:?}");
    assert_eq!(report.rejected.len(), 1, "{report:?}");
    assert_eq!(report.rejected[0].0, Method::ZstdRef);
    assert!(
        report.rejected[0].1.contains("over the limit"),
        "{report:?}"
    );
    let mut out = Vec::new();
    apply_with_limits(&o, &p, &mut out, &opts.limits).unwrap();
    assert!(out == new);
}

#[test]
fn when_no_candidate_passes_nothing_is_written_and_every_reason_is_listed() {
    let dir = tempfile::tempdir().unwrap();
    let old = random_bytes(7, 200_000);
    let (o, n, p) = (
        dir.path().join("old"),
        dir.path().join("new"),
        dir.path().join("p"),
    );
    std::fs::write(&o, &old).unwrap();
    std::fs::write(&n, edited(&old, 8, 10)).unwrap();
    let err = diff(&o, &n, &p, &opts(vec![Method::ZstdRef])).unwrap_err();
    match &err {
        DeltaError::NoVerifiedPatch(reasons) => {
            assert_eq!(reasons.len(), 1);
            assert_eq!(reasons[0].0, Method::ZstdRef);
        }
        other => panic!("expected NoVerifiedPatch, got {other}"),
    }
    assert!(err.to_string().contains("zstd-ref: "), "{err}");
    assert!(!p.exists(), "no patch file is left behind");
    let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(leftovers, 2, "only old and new remain");
}
