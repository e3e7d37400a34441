//! Forged bsdiff streams: the decoder must follow the bsdiff crate's format
//! exactly and refuse every control value that would reach outside the old
//! layer or past the promised output.

use super::control::Control;
use super::*;
use crate::testdata::{edited, layer};
use std::io::Write as _;

/// A bsdiff stream from (control, diff bytes, extra bytes), zstd-compressed.
fn forge(steps: &[(Control, Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut raw = Vec::new();
    for (ctrl, diff, extra) in steps {
        raw.extend_from_slice(&ctrl.to_bytes());
        raw.extend_from_slice(diff);
        raw.extend_from_slice(extra);
    }
    zstd::encode_all(&raw[..], 1).unwrap()
}

fn ctrl(diff_len: u64, extra_len: u64, seek: i64) -> Control {
    Control {
        diff_len,
        extra_len,
        seek,
    }
}

/// Applies `payload` to `old`, capped at `to_size` output bytes.
fn run(old: &[u8], payload: &[u8], to_size: u64) -> (Result<(), DeltaError>, Vec<u8>) {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(old).unwrap();
    let layer = OldLayer {
        path: file.path().to_path_buf(),
        size: old.len() as u64,
    };
    let mut out = Vec::new();
    let result = apply(&layer, payload, &mut Sink::new(&mut out, to_size));
    (result, out)
}

fn assert_corrupt(result: Result<(), DeltaError>, what: &str) {
    match result {
        Err(DeltaError::Corrupt(msg)) => assert!(msg.contains(what), "{msg}"),
        other => panic!("expected a corrupt-payload error about {what}, got {other:?}"),
    }
}

#[test]
fn streaming_apply_matches_the_bsdiff_crates_own_patch() {
    let old = layer(7, 300_000);
    let new = edited(&old, 8, 40);
    let mut raw = Vec::new();
    bsdiff::diff(&old, &new, &mut raw).unwrap();
    let mut expected = Vec::new();
    bsdiff::patch(&old, &mut &raw[..], &mut expected).unwrap();
    assert_eq!(expected, new);
    let payload = encode(&old, &new, 3).unwrap();
    let (result, out) = run(&old, &payload, new.len() as u64);
    result.unwrap();
    assert_eq!(out, new);
}

#[test]
fn forged_seeks_forwards_and_backwards_are_followed() {
    let old = b"0123456789".to_vec();
    let payload = forge(&[
        (ctrl(2, 1, 5), vec![0, 1], b"x".to_vec()), // "02" "x", pos 2 -> 7
        (ctrl(3, 0, -10), vec![0, 0, 0], vec![]),   // "789", pos 10 -> 0
        (ctrl(1, 0, 0), vec![0], vec![]),           // "0"
    ]);
    let (result, out) = run(&old, &payload, 100);
    result.unwrap();
    assert_eq!(out, b"02x7890");
}

#[test]
fn a_control_that_seeks_before_the_start_is_rejected() {
    let payload = forge(&[(ctrl(1, 0, -2), vec![0], vec![])]);
    let (result, _) = run(b"abcdef", &payload, 100);
    assert_corrupt(result, "outside the old layer");
}

#[test]
fn a_control_that_seeks_past_the_end_is_rejected() {
    for seek in [6, i64::MAX, -i64::MAX] {
        let payload = forge(&[(ctrl(1, 0, seek), vec![0], vec![])]);
        let (result, _) = run(b"abcdef", &payload, 100);
        assert_corrupt(result, "outside the old layer");
    }
}

#[test]
fn a_control_that_reads_past_the_old_layer_is_rejected_before_writing() {
    let payload = forge(&[(ctrl(7, 0, 0), vec![0; 7], vec![])]);
    let (result, out) = run(b"abcdef", &payload, 100);
    assert_corrupt(result, "past the old layer");
    assert!(out.is_empty());
}

#[test]
fn oversize_lengths_are_refused_before_any_byte_is_written() {
    for (diff_len, extra_len) in [(0, 1 << 40), (i64::MAX as u64, 0), (3, i64::MAX as u64)] {
        let payload = forge(&[(ctrl(diff_len, extra_len, 0), vec![], vec![])]);
        let (result, out) = run(b"abcdef", &payload, 1000);
        assert!(
            matches!(result, Err(DeltaError::TooLarge { .. })),
            "{result:?}"
        );
        assert!(out.is_empty());
    }
}

#[test]
fn endless_empty_steps_are_cut_off() {
    let empty = (ctrl(0, 0, 0), vec![], vec![]);
    let payload = forge(&vec![empty; 10_000]);
    let (result, out) = run(b"abcdef", &payload, 100);
    assert_corrupt(result, "control steps");
    assert!(out.is_empty());
}

#[test]
fn a_stream_ending_inside_a_step_is_truncated() {
    let payload = forge(&[(ctrl(0, 10, 0), vec![], b"abc".to_vec())]);
    let (result, _) = run(b"abcdef", &payload, 100);
    assert!(matches!(result, Err(DeltaError::Truncated)), "{result:?}");
}

#[test]
fn a_frame_asking_for_a_window_over_the_device_limit_is_refused() {
    let mut z = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
    z.window_log(WINDOW_LOG + 4).unwrap();
    z.write_all(&ctrl(0, 3, 0).to_bytes()).unwrap();
    z.write_all(b"abc").unwrap();
    let payload = z.finish().unwrap();
    let (result, out) = run(b"abcdef", &payload, 100);
    assert!(matches!(result, Err(DeltaError::Corrupt(_))), "{result:?}");
    assert!(out.is_empty());
}
