//! Forged payloads: every field the decoder reads from a patch can lie,
//! and each lie must end in a clear `DeltaError` — before anything past
//! the promised output is written, without allocating what the lie asks
//! for, and without a panic.

use super::super::encoder::{self, Raw};
use super::super::ops::{Op, OpReader, OpWriter};
use super::super::streams::Codec;
use super::super::zero_runs;
use super::layers::{gzip, text, Case, Layer};
use crate::methods::bsdiff_zstd::control::{write_varint, Control};
use crate::testdata::{edited, layer};
use crate::{DeltaError, Header, Method, FORMAT_VERSION};
use petrel_protocol::Digest;
use std::io::Read;

/// One element of an op program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Item {
    Op(Op),
    Step(Control),
}

fn step(diff_len: u64, extra_len: u64, seek: i64) -> Item {
    Item::Step(Control {
        diff_len,
        extra_len,
        seek,
    })
}

/// A program and the plain (not zero-run coded) diff bytes it reads.
#[derive(Clone)]
struct Forge {
    items: Vec<Item>,
    diff: Vec<u8>,
    extra: Vec<u8>,
    recipe: Vec<u8>,
}

impl Forge {
    fn raw(&self) -> Raw {
        let mut ops = Vec::new();
        let mut w = OpWriter::default();
        for item in &self.items {
            match item {
                Item::Op(op) => w.write(*op, &mut ops),
                Item::Step(c) => c.write_to(&mut ops),
            }
        }
        Raw {
            ops,
            diff: zero_runs::encode(&self.diff),
            extra: self.extra.clone(),
            recipe: self.recipe.clone(),
        }
    }
}

/// Old: two files; new: the first edited. Returns the case and the honest
/// program the encoder made for it.
fn honest() -> (Case, Forge) {
    let a = layer(70, 8_000);
    let b = layer(71, 3_000);
    let old = Layer::new().file("a", &a).file("b", &b).finish();
    let new = Layer::new()
        .file("a", &edited(&a, 72, 10))
        .file("b", &b)
        .finish();
    program(old, new)
}

/// The case `old` → `new` and the encoder's program for it.
fn program(old: Vec<u8>, new: Vec<u8>) -> (Case, Forge) {
    let case = Case::new(&old, &new);
    let raw = encoder::plan(&old, &new).unwrap();
    let mut r = &raw.ops[..];
    let (old_index, _) = encoder::index_pair(&old, &new).unwrap();
    let mut reader = OpReader::new(old_index.files.len() as u64);
    let mut items = Vec::new();
    loop {
        let op = reader.read(&mut r).unwrap();
        items.push(Item::Op(op));
        let len = match op {
            Op::Skeleton { len } | Op::Bsdiff { new_len: len, .. } => len,
            Op::Gz { plain_len, .. } => plain_len,
            _ => 0,
        };
        let mut written = 0;
        while written < len {
            let c = Control::read(&mut r).unwrap().unwrap();
            written += c.diff_len + c.extra_len;
            items.push(Item::Step(c));
        }
        if op == Op::End {
            break;
        }
    }
    let mut diff = Vec::new();
    zero_runs::Expand::new(&raw.diff[..])
        .read_to_end(&mut diff)
        .unwrap();
    let forge = Forge {
        items,
        diff,
        extra: raw.extra,
        recipe: raw.recipe,
    };
    (case, forge)
}

/// The patch file for `payload`, promising the case's new layer.
fn patch(case: &Case, payload: &[u8]) -> Vec<u8> {
    let header = Header {
        version: FORMAT_VERSION,
        method: Method::TarAware,
        from: Digest::of(&case.old_bytes),
        to: Digest::of(&case.new),
        from_size: case.old_bytes.len() as u64,
        to_size: case.new.len() as u64,
    };
    let mut out = header.to_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

fn payload(raw: &Raw) -> Vec<u8> {
    encoder::pack(raw, 3, |_| vec![Codec::Zstd]).unwrap()
}

/// Applies the forged program; returns the error (it must fail).
fn refused(case: &Case, forge: &Forge) -> DeltaError {
    let (result, out) = case.apply(&patch(case, &payload(&forge.raw())));
    assert!(out.len() <= case.new.len());
    result.expect_err("a forged patch applied")
}

#[test]
fn the_honest_program_reassembled_applies() {
    let (case, forge) = honest();
    let (result, out) = case.apply(&patch(&case, &payload(&forge.raw())));
    result.unwrap();
    assert!(out == case.new);
}

#[test]
fn an_old_index_past_the_old_tar_is_corrupt() {
    let (case, mut forge) = honest();
    for item in &mut forge.items {
        if let Item::Op(Op::Same { old }) = item {
            *old = 2;
        }
    }
    assert!(matches!(refused(&case, &forge), DeltaError::Corrupt(_)));
}

#[test]
fn lying_lengths_are_errors_before_the_output_passes_its_promise() {
    let (case, forge) = honest();
    for grow in [1u64, 1 << 40] {
        let mut f = forge.clone();
        for item in &mut f.items {
            if let Item::Op(Op::Bsdiff { new_len, .. }) = item {
                *new_len += grow;
            }
        }
        let err = refused(&case, &f);
        assert!(
            matches!(
                err,
                DeltaError::TooLarge { .. } | DeltaError::Corrupt(_) | DeltaError::Truncated
            ),
            "{err}"
        );
    }
    // A piece that writes nothing is refused outright.
    let mut f = forge.clone();
    f.items = vec![Item::Op(Op::Skeleton { len: 0 }), Item::Op(Op::End)];
    assert!(matches!(refused(&case, &f), DeltaError::Corrupt(_)));
}

#[test]
fn more_ops_than_the_promised_output_holds_are_too_large() {
    let (case, forge) = honest();
    let mut f = forge.clone();
    f.items.pop(); // End
    for _ in 0..200 {
        f.items.push(Item::Op(Op::Same { old: 1 }));
    }
    f.items.push(Item::Op(Op::End));
    assert!(matches!(refused(&case, &f), DeltaError::TooLarge { .. }));
}

#[test]
fn steps_that_write_nothing_cannot_spin_the_decoder() {
    let (case, forge) = honest();
    let mut f = forge.clone();
    f.items = vec![Item::Op(Op::Skeleton { len: 1 })];
    f.items.extend(vec![step(0, 0, 0); 2_000_000]);
    f.items.extend([step(1, 0, 0), Item::Op(Op::End)]);
    let err = refused(&case, &f);
    assert!(
        matches!(err, DeltaError::Corrupt(ref m) if m.contains("too many")),
        "{err}"
    );
}

#[test]
fn reads_and_seeks_outside_the_old_piece_are_corrupt() {
    let (case, forge) = honest();
    // A file op reading past its old file, then one seeking before it.
    for bad in [step(9_000, 0, 0), step(0, 1, -100_000)] {
        let mut f = forge.clone();
        f.items = vec![
            Item::Op(Op::Bsdiff {
                old: 0,
                new_len: 9_000,
            }),
            bad,
            Item::Op(Op::End),
        ];
        f.diff = vec![0; 9_000];
        f.extra = vec![1];
        let err = refused(&case, &f);
        assert!(matches!(err, DeltaError::Corrupt(_)), "{err}");
    }
}

#[test]
fn truncated_and_overlong_streams_are_errors() {
    let (case, forge) = honest();
    // No End op: the ops stream ends inside the program.
    let mut f = forge.clone();
    f.items.pop();
    assert!(matches!(refused(&case, &f), DeltaError::Truncated));
    // Too few diff bytes.
    let mut f = forge.clone();
    f.diff.truncate(f.diff.len() / 2);
    assert!(matches!(refused(&case, &f), DeltaError::Truncated));
    // Extra bytes no step uses, and ops after End.
    let mut f = forge.clone();
    f.extra.push(7);
    assert!(matches!(refused(&case, &f), DeltaError::Corrupt(_)));
    let mut f = forge.clone();
    f.items.push(Item::Op(Op::End));
    assert!(matches!(refused(&case, &f), DeltaError::Corrupt(_)));
    // A zero run of 2^64 - 1 bytes left unused costs nothing to refuse.
    let (result, _) = case.apply(&patch(&case, &{
        let mut raw = forge.raw();
        write_varint(&mut raw.diff, 0);
        write_varint(&mut raw.diff, u64::MAX);
        payload(&raw)
    }));
    assert!(matches!(result, Err(DeltaError::Corrupt(_))), "{result:?}");
}

#[test]
fn windows_over_the_cap_unknown_codecs_and_lengths_past_the_file_are_refused() {
    let (case, forge) = honest();
    let honest_payload = payload(&forge.raw());
    // Table: per stream codec, window log, LEB128 length.
    let mut huge_window = honest_payload.clone();
    huge_window[3] = 30; // the diff stream's window log (ops len < 128)
    let mut bad_codec = honest_payload.clone();
    bad_codec[0] = 9;
    for (payload, what) in [(huge_window, "window"), (bad_codec, "codec")] {
        let (result, out) = case.apply(&patch(&case, &payload));
        let err = result.expect_err(what);
        assert!(
            matches!(err, DeltaError::TooLarge { .. } | DeltaError::Corrupt(_)),
            "{what}: {err}"
        );
        assert!(out.is_empty());
    }
    let cut = &honest_payload[..honest_payload.len() - 1];
    let (result, out) = case.apply(&patch(&case, cut));
    assert!(matches!(result, Err(DeltaError::Truncated)), "{result:?}");
    assert!(out.is_empty());
}

#[test]
fn gz_ops_over_their_caps_or_with_bad_recipes_are_refused() {
    let (case, forge) = honest();
    let gz = |new_len, plain_len, recipe_len| Op::Gz {
        old: 0,
        new_len,
        plain_len,
        recipe_len,
    };
    let cap = super::super::GZ_MAX;
    for op in [
        gz(cap + 1, 10, 10),
        gz(10, cap + 1, 10),
        gz(10, 10, 1 << 30),
    ] {
        let mut f = forge.clone();
        f.items = vec![Item::Op(op), Item::Op(Op::End)];
        let err = refused(&case, &f);
        assert!(matches!(err, DeltaError::TooLarge { .. }), "{op:?}: {err}");
    }
    // The old file is not gzip: inflating it fails cleanly.
    let mut f = forge.clone();
    f.items = vec![Item::Op(gz(10, 1, 4)), step(0, 1, 0), Item::Op(Op::End)];
    f.extra = vec![b'x'];
    f.recipe = vec![1, 2, 3, 4];
    let err = refused(&case, &f);
    assert!(!matches!(err, DeltaError::TooLarge { .. }), "{err}");
}

#[test]
fn a_recipe_that_does_not_rebuild_the_member_is_an_error() {
    let log = text(80, 2000);
    let mut longer = text(81, 20);
    longer.extend_from_slice(&log);
    let old = Layer::new().file("changelog.gz", &gzip(&log)).finish();
    let new = Layer::new().file("changelog.gz", &gzip(&longer)).finish();
    let (case, forge) = program(old, new);
    assert!(forge
        .items
        .iter()
        .any(|i| matches!(i, Item::Op(Op::Gz { .. }))));
    let (result, out) = case.apply(&patch(&case, &payload(&forge.raw())));
    result.unwrap();
    assert!(out == case.new);
    // Every single-byte change of the recipe is an error or, if the
    // recipe format ignores that byte, the exact member again.
    for at in 0..forge.recipe.len() {
        let mut f = forge.clone();
        f.recipe[at] ^= 0x41;
        let (result, out) = case.apply(&patch(&case, &payload(&f.raw())));
        match result {
            Ok(_) => assert!(out == case.new, "recipe byte {at}"),
            Err(e) => assert!(!matches!(e, DeltaError::Io { .. }), "{e}"),
        }
    }
    // A member length that the recipe does not rebuild.
    let mut f = forge.clone();
    for item in &mut f.items {
        if let Item::Op(Op::Gz { new_len, .. }) = item {
            *new_len -= 1;
        }
    }
    let err = refused(&case, &f);
    assert!(
        matches!(err, DeltaError::Corrupt(_) | DeltaError::TooLarge { .. }),
        "{err}"
    );
}
