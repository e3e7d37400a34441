//! Byte-exact round trips on synthetic layers, each also checking that the
//! encoder took the path it should (which base, which op).

use super::super::matching::{self, Base};
use super::super::ops::Op;
use super::layers::{gzip, text, Case, Layer};
use crate::testdata::{edited, layer};
use tar::EntryType;

fn count(ops: &[Op], pred: impl Fn(&Op) -> bool) -> usize {
    ops.iter().filter(|op| pred(op)).count()
}

#[test]
fn a_library_renamed_to_its_next_version_is_diffed_against_the_old_version() {
    let lib = layer(1, 300_000);
    let py = layer(2, 80_000);
    let old = Layer::new()
        .dir("usr/lib/")
        .file("usr/lib/libfoo.so.1.2.3", &lib)
        .link(EntryType::Symlink, "usr/lib/libfoo.so.1", "libfoo.so.1.2.3")
        .file("usr/lib/python3.11/json/decoder.py", &py)
        .finish();
    let new = Layer::new()
        .dir("usr/lib/")
        .file("usr/lib/libfoo.so.1.2.4", &edited(&lib, 3, 30))
        .link(EntryType::Symlink, "usr/lib/libfoo.so.1", "libfoo.so.1.2.4")
        .file("usr/lib/python3.12/json/decoder.py", &edited(&py, 4, 10))
        .finish();
    let case = Case::new(&old, &new);
    let size = case.round_trip();
    assert!(
        size < 20_000,
        "patch of {size} bytes: the renamed files were not matched"
    );
    let ops = case.ops();
    assert_eq!(
        count(&ops, |op| matches!(op, Op::Bsdiff { .. })),
        2,
        "{ops:?}"
    );
}

#[test]
fn identical_files_moved_files_and_empty_files_cost_a_reference() {
    let files: Vec<Vec<u8>> = (0..20).map(|i| layer(10 + i, 5_000 + i as usize)).collect();
    let mut old = Layer::new();
    let mut new = Layer::new();
    for (i, data) in files.iter().enumerate() {
        old = old.file(&format!("usr/share/a/{i}.dat"), data);
        // Half the files move to another directory under another name.
        let path = if i % 2 == 0 {
            format!("usr/share/a/{i}.dat")
        } else {
            format!("opt/moved/{i}-renamed.bin")
        };
        new = new.file(&path, data);
    }
    let old = old.file("usr/empty", b"").finish();
    let new = new.file("usr/empty", b"").finish();
    let case = Case::new(&old, &new);
    let size = case.round_trip();
    assert!(size < 3_000, "patch of {size} bytes");
    let ops = case.ops();
    assert_eq!(
        count(&ops, |op| matches!(op, Op::Same { .. })),
        20,
        "{ops:?}"
    );
}

#[test]
fn new_files_stay_inline_and_deleted_files_are_simply_not_referenced() {
    let keep = layer(20, 40_000);
    let gone = layer(21, 30_000);
    let fresh = layer(22, 25_000);
    let old = Layer::new()
        .file("etc/keep.conf", &keep)
        .file("usr/bin/gone", &gone)
        .finish();
    let new = Layer::new()
        .file("etc/keep.conf", &keep)
        .file("usr/bin/brand-new", &fresh)
        .finish();
    let case = Case::new(&old, &new);
    let old_index =
        super::super::tar_index::index(&mut &old[..], super::super::tar_index::Detail::Full, "old")
            .unwrap();
    let new_index =
        super::super::tar_index::index(&mut &new[..], super::super::tar_index::Detail::Full, "new")
            .unwrap();
    let bases = matching::choose(&old_index, &old, &new_index, &new);
    assert_eq!(bases, [Base::Same(0), Base::None]);
    case.round_trip();
}

#[test]
fn gzip_members_are_diffed_inflated_and_rebuilt_bit_exactly() {
    let old_log = text(30, 4000);
    let mut new_log = text(31, 40);
    new_log.extend_from_slice(&old_log);
    let (old_gz, new_gz) = (gzip(&old_log), gzip(&new_log));
    let old = Layer::new()
        .file("usr/share/doc/pkg/changelog.gz", &old_gz)
        .file("usr/share/man/man1/pkg.1.gz", &gzip(&text(32, 300)))
        .finish();
    let new = Layer::new()
        .file("usr/share/doc/pkg/changelog.gz", &new_gz)
        .file("usr/share/man/man1/pkg.1.gz", &gzip(&text(32, 310)))
        .finish();
    let case = Case::new(&old, &new);
    let size = case.round_trip();
    // A byte diff of the compressed member would cost most of its size.
    assert!(
        size * 4 < new_gz.len(),
        "patch of {size} bytes for a {}-byte member",
        new_gz.len()
    );
    let ops = case.ops();
    assert_eq!(count(&ops, |op| matches!(op, Op::Gz { .. })), 2, "{ops:?}");
}

#[test]
fn a_gzip_member_that_cannot_be_rebuilt_falls_back_to_a_byte_diff() {
    // A gzip header around bytes that are not deflate data.
    let mut fake_old = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
    fake_old.extend(layer(40, 5000));
    let mut fake_new = fake_old.clone();
    fake_new[3000] ^= 1;
    let old = Layer::new().file("x.gz", &fake_old).finish();
    let new = Layer::new().file("x.gz", &fake_new).finish();
    let case = Case::new(&old, &new);
    case.round_trip();
    let ops = case.ops();
    assert_eq!(
        count(&ops, |op| matches!(op, Op::Bsdiff { .. })),
        1,
        "{ops:?}"
    );
}

#[test]
fn pax_and_gnu_long_paths_hardlinks_and_symlinks_round_trip() {
    let deep = format!(
        "usr/share/{}/data.bin",
        "very-long-directory-name/".repeat(8)
    );
    let a = layer(50, 20_000);
    let b = layer(51, 15_000);
    let old = Layer::new()
        .pax_file(&deep, &a)
        .file(&format!("{deep}.gnu"), &b)
        .link(EntryType::Link, "usr/hard", &deep)
        .link(EntryType::Symlink, "usr/soft", "hard")
        .finish();
    let new = Layer::new()
        .pax_file(&deep, &edited(&a, 52, 5))
        .file(&format!("{deep}.gnu"), &edited(&b, 53, 5))
        .link(EntryType::Link, "usr/hard", &deep)
        .link(EntryType::Symlink, "usr/soft", "hard")
        .dir("usr/new-dir/")
        .finish();
    let case = Case::new(&old, &new);
    let size = case.round_trip();
    assert!(
        size < 4_000,
        "patch of {size} bytes: the long paths were not matched"
    );
}

#[test]
fn a_new_tar_without_end_blocks_and_an_empty_old_tar_round_trip() {
    let data = layer(60, 10_000);
    let full = Layer::new().file("a", &data).finish();
    // Cut the end-of-archive blocks and the last member's padding.
    let cut = &full[..512 + data.len()];
    Case::new(&full, cut).round_trip();
    Case::new(&[], &full).round_trip();
    Case::new(&full, &[]).round_trip();
}

#[test]
fn the_ca_certificates_pair_round_trips_when_the_corpus_is_unpacked() {
    let dir = std::path::Path::new("/tmp/petrel-corpus/ca-certificates");
    let (Ok(old), Ok(new)) = (
        std::fs::read(dir.join("old.tar")),
        std::fs::read(dir.join("new.tar")),
    ) else {
        return; // corpus not unpacked here
    };
    let case = Case::new(&old, &new);
    let size = case.round_trip();
    assert!(size < 25_000, "patch of {size} bytes");
}
