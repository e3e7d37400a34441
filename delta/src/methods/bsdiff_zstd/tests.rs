//! Forged payloads: the decoder must follow the three-stream layout
//! exactly and refuse every table, stream or control value that would
//! reach outside the old layer, the patch file or the promised output.

use super::control::Control;
use super::layout::TABLE_LEN;
use super::*;
use crate::testdata::{edited, layer};
use std::io::Write as _;

type Step = (Control, Vec<u8>, Vec<u8>);

fn ctrl(diff_len: u64, extra_len: u64, seek: i64) -> Control {
    Control {
        diff_len,
        extra_len,
        seek,
    }
}

/// The raw control, diff and extra streams of `steps`.
fn raw_parts(steps: &[Step]) -> [Vec<u8>; 3] {
    let mut parts = [Vec::new(), Vec::new(), Vec::new()];
    for (c, diff, extra) in steps {
        c.write_to(&mut parts[0]);
        parts[1].extend_from_slice(diff);
        parts[2].extend_from_slice(extra);
    }
    parts
}

/// One zstd frame with window 2^`window_log` and no pledged size, so the
/// frame header asks the decoder for the whole window.
fn frame(data: &[u8], window_log: u32) -> Vec<u8> {
    let mut z = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
    z.window_log(window_log).unwrap();
    z.write_all(data).unwrap();
    z.finish().unwrap()
}

/// The table of the frames' lengths, then the frames.
fn assemble(frames: &[Vec<u8>; 3]) -> Vec<u8> {
    let table = Table {
        lens: frames.each_ref().map(|f| f.len() as u64),
    };
    let mut out = table.to_bytes().to_vec();
    frames.iter().for_each(|f| out.extend_from_slice(f));
    out
}

fn forge_parts(parts: &[Vec<u8>; 3]) -> Vec<u8> {
    let frames = [0, 1, 2].map(|i| frame(&parts[i], Part::ALL[i].window_log()));
    assemble(&frames)
}

fn forge(steps: &[Step]) -> Vec<u8> {
    forge_parts(&raw_parts(steps))
}

fn table_of(payload: &[u8]) -> [u64; 3] {
    [0, 1, 2].map(|i| u64::from_le_bytes(payload[i * 8..i * 8 + 8].try_into().unwrap()))
}

/// The three frames of an honest payload.
fn frames_of(payload: &[u8]) -> [Vec<u8>; 3] {
    let mut at = TABLE_LEN as usize;
    table_of(payload).map(|len| {
        let frame = payload[at..at + len as usize].to_vec();
        at += len as usize;
        frame
    })
}

/// `payload` with its table rewritten by `edit`.
fn with_table(payload: &[u8], edit: impl FnOnce(&mut [u64; 3])) -> Vec<u8> {
    let mut lens = table_of(payload);
    edit(&mut lens);
    let mut out = Table { lens }.to_bytes().to_vec();
    out.extend_from_slice(&payload[TABLE_LEN as usize..]);
    out
}

/// Applies `payload` (written to a file) to `old`, capped at `to_size`.
fn run(old: &[u8], payload: &[u8], to_size: u64) -> (Result<(), DeltaError>, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let (old_path, patch_path) = (dir.path().join("old"), dir.path().join("payload"));
    std::fs::write(&old_path, old).unwrap();
    std::fs::write(&patch_path, payload).unwrap();
    let layer = OldLayer {
        path: old_path,
        size: old.len() as u64,
    };
    let patch = PatchFile {
        path: patch_path,
        payload_start: 0,
        payload_len: payload.len() as u64,
    };
    let mut out = Vec::new();
    let result = apply(&layer, &patch, &mut Sink::new(&mut out, to_size)).map(drop);
    (result, out)
}

fn assert_corrupt(result: Result<(), DeltaError>, what: &str) {
    match result {
        Err(DeltaError::Corrupt(msg)) => assert!(msg.contains(what), "{msg}"),
        other => panic!("expected a corrupt-payload error about {what}, got {other:?}"),
    }
}

/// A real old layer, new layer and payload.
fn real_pair() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let old = layer(7, 50_000);
    let new = edited(&old, 8, 20);
    let payload = encode(&old, &new, 3).unwrap();
    (old, new, payload)
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
    for seek in [6, i64::MAX, i64::MIN] {
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
    for (diff_len, extra_len) in [(0, 1 << 40), (i64::MAX as u64, 0), (3, u64::MAX - 3)] {
        let payload = forge(&[(ctrl(diff_len, extra_len, 0), vec![], vec![])]);
        let (result, out) = run(b"abcdef", &payload, 1000);
        assert!(
            matches!(result, Err(DeltaError::TooLarge { .. })),
            "{result:?}"
        );
        assert!(out.is_empty());
    }
    let payload = forge(&[(ctrl(u64::MAX, 1, 0), vec![], vec![])]);
    assert_corrupt(run(b"abcdef", &payload, 1000).0, "overflow");
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
fn diff_or_extra_streams_shorter_than_their_controls_are_truncated() {
    let short_extra = forge(&[(ctrl(0, 10, 0), vec![], b"abc".to_vec())]);
    let short_diff = forge(&[(ctrl(5, 0, 0), vec![0; 2], vec![])]);
    for payload in [short_extra, short_diff] {
        let (result, _) = run(b"abcdef", &payload, 100);
        assert!(matches!(result, Err(DeltaError::Truncated)), "{result:?}");
    }
}

#[test]
fn bytes_no_control_uses_left_in_the_diff_or_extra_stream_are_refused() {
    let extra_left = forge(&[(ctrl(1, 1, 0), vec![0], b"xy".to_vec())]);
    let (result, _) = run(b"abcdef", &extra_left, 100);
    assert_corrupt(result, "extra stream");
    let diff_left = forge(&[(ctrl(1, 1, 0), vec![0, 0], b"x".to_vec())]);
    let (result, _) = run(b"abcdef", &diff_left, 100);
    assert_corrupt(result, "diff stream");
}

#[test]
fn each_stream_is_refused_a_window_over_its_limit_and_granted_its_limit() {
    let parts = raw_parts(&[(ctrl(1, 2, 0), vec![1], b"yz".to_vec())]);
    let limits = Part::ALL.map(Part::window_log);
    let (result, out) = run(b"abcdef", &forge_parts(&parts), 100);
    result.unwrap();
    assert_eq!(out, b"byz");
    for (i, part) in Part::ALL.into_iter().enumerate() {
        let mut windows = limits;
        windows[i] += 1;
        let frames = [0, 1, 2].map(|j| frame(&parts[j], windows[j]));
        let (result, out) = run(b"abcdef", &assemble(&frames), 100);
        assert!(
            matches!(result, Err(DeltaError::Corrupt(_))),
            "{}: {result:?}",
            part.name()
        );
        // A stream's frame header is read at its first use: the extra
        // stream's comes after the first step's diff bytes were written
        // (the caller discards the output of any failed apply).
        assert!(out.len() < 3, "{}: {out:?}", part.name());
    }
}

#[test]
fn a_payload_shorter_than_its_table_is_truncated() {
    let (old, new, payload) = real_pair();
    for len in 0..TABLE_LEN as usize {
        let (result, out) = run(&old, &payload[..len], new.len() as u64);
        assert!(matches!(result, Err(DeltaError::Truncated)), "{result:?}");
        assert!(out.is_empty());
    }
}

#[test]
fn table_lengths_past_the_end_of_the_patch_are_truncated_before_writing() {
    let (old, new, payload) = real_pair();
    for i in 0..3 {
        for grow in [1, 1000, u64::MAX / 2] {
            let bad = with_table(&payload, |lens| lens[i] += grow);
            let (result, out) = run(&old, &bad, new.len() as u64);
            assert!(matches!(result, Err(DeltaError::Truncated)), "{result:?}");
            assert!(out.is_empty());
        }
        let overflow = with_table(&payload, |lens| lens[i] = u64::MAX);
        assert_corrupt(run(&old, &overflow, new.len() as u64).0, "overflow");
    }
}

#[test]
fn bytes_after_the_last_stream_or_a_short_table_are_refused_before_writing() {
    let (old, new, payload) = real_pair();
    let mut trailing = payload.clone();
    trailing.extend_from_slice(b"junk");
    let shrunk = with_table(&payload, |lens| lens[2] -= 1);
    for bad in [trailing, shrunk] {
        let (result, out) = run(&old, &bad, new.len() as u64);
        assert_corrupt(result, "follow the last stream");
        assert!(out.is_empty());
    }
}

#[test]
fn table_lengths_that_move_stream_boundaries_are_errors_never_wrong_output() {
    let (old, new, payload) = real_pair();
    let moves = [
        (0, 1, 1),
        (1, 0, 1),
        (1, 2, 1),
        (2, 1, 1),
        (0, 2, 7),
        (2, 0, 7),
    ];
    for (from, to, n) in moves {
        let bad = with_table(&payload, |lens| {
            let n = n.min(lens[from]);
            lens[from] -= n;
            lens[to] += n;
        });
        let (result, out) = run(&old, &bad, new.len() as u64);
        assert!(result.is_err(), "move {n} from {from} to {to} applied");
        assert!(out.len() <= new.len());
    }
    let [control, diff, extra] = frames_of(&payload);
    assert_eq!(
        assemble(&[control.clone(), diff.clone(), extra.clone()]),
        payload
    );
    for reordered in [
        [extra.clone(), diff.clone(), control.clone()],
        [control, extra, diff],
    ] {
        let (result, _) = run(&old, &assemble(&reordered), new.len() as u64);
        assert!(result.is_err(), "streams in the wrong order applied");
    }
}

#[test]
fn a_patch_that_jumps_far_before_every_byte_runs_out_of_read_budget_early() {
    // 4 MiB of output, each byte read after a jump of ~3 MiB: without the
    // budget, 4 Mi preads of a 4 KiB window (16 GiB fetched).
    let old = layer(41, 8 << 20);
    let to_size: u64 = 4 << 20;
    let steps: Vec<Step> = (0..to_size)
        .map(|i| {
            let seek = if i % 2 == 0 { 3 << 20 } else { -(3 << 20) - 2 };
            (ctrl(1, 0, seek), vec![0], Vec::new())
        })
        .collect();
    let payload = forge(&steps);
    let (result, out) = run(&old, &payload, to_size);
    match result {
        Err(DeltaError::OverBudget { output, .. }) => assert_eq!(output, to_size),
        other => panic!("expected the read budget to stop it, got {other:?}"),
    }
    // Stopped after about one byte in 64 (the budget's allowance of one
    // miss per 64 output bytes, plus the base), not after all of them.
    let allowed = to_size / 64 + 4096;
    assert!(
        (out.len() as u64) < 2 * allowed,
        "{} bytes written before refusal",
        out.len()
    );
}
