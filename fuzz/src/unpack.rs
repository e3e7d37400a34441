//! The `tar_unpack` harness. The fuzzer's bytes are an uncompressed layer
//! tar; the harness zstd-compresses them into a blob, as a layer ships,
//! and unpacks it with `petrel_runtime::unpack::unpack_layer` (the layer
//! store's call, default limits) against the bytes' own sha256, so that a
//! valid tar is unpacked to the end and committed.
//!
//! Each run uses a fresh scratch directory:
//! `scratch/{layer.tar.zst, canary/, layers/}`, unpacking to
//! `layers/root`. Afterwards the harness checks that nothing was written
//! beside the tree: the scratch directory holds exactly those three
//! entries, `canary/` is still empty, the blob is unchanged, and
//! `layers/` holds `root` if the unpack succeeded and nothing if it
//! failed (no temporary tree left behind). Any difference panics: a
//! finding. (Writes through an absolute path elsewhere on the machine are
//! not looked for.)

use crate::{scratch, Seed};
use petrel_protocol::Digest;
use std::fs;
use std::path::Path;
use tar::{EntryType, Header};

pub fn run(data: &[u8]) -> Result<(), String> {
    let dir = scratch::tempdir();
    let (blob, canary, layers) = (
        dir.path().join("layer.tar.zst"),
        dir.path().join("canary"),
        dir.path().join("layers"),
    );
    let compressed = zstd::encode_all(data, 1).expect("zstd into memory");
    fs::write(&blob, &compressed).expect("write the blob");
    fs::create_dir(&canary).expect("create canary/");
    fs::create_dir(&layers).expect("create layers/");
    let result =
        petrel_runtime::unpack::unpack_layer(&blob, &Digest::of(data), &layers.join("root"));
    assert_eq!(names(dir.path()), ["canary", "layer.tar.zst", "layers"]);
    assert_eq!(names(&canary), [] as [&str; 0], "written into canary/");
    assert!(
        fs::read(&blob).is_ok_and(|b| b == compressed),
        "blob changed"
    );
    let expected: &[&str] = match &result {
        Ok(_) => &["root"],
        Err(_) => &[],
    };
    assert_eq!(names(&layers), expected, "layers/ after {result:?}");
    scratch::remove(dir);
    result.map(|_| ()).map_err(|e| e.to_string())
}

/// The sorted names in `dir`.
fn names(dir: &Path) -> Vec<String> {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("list {}: {e}", dir.display()));
    let mut names: Vec<String> = entries
        .map(|e| {
            e.expect("a directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

/// Layers using every entry kind, and hostile ones (each refused at its
/// first bad entry, so one attack per seed).
pub fn seeds() -> Vec<Seed> {
    let file = |name: &str, data: &[u8]| ent(name, EntryType::Regular, 0o644, data, None);
    let dir = |name: &str, mode| ent(name, EntryType::Directory, mode, b"", None);
    let symlink = |name: &str, to| ent(name, EntryType::Symlink, 0o777, b"", Some(to));
    let hardlink = |name: &str, to| ent(name, EntryType::Link, 0o644, b"", Some(to));
    let every_kind = vec![
        dir("./", 0o755),
        dir("app/", 0o755),
        ent(
            "app/run",
            EntryType::Regular,
            0o4755,
            b"#!/bin/sh\necho hi\n",
            None,
        ),
        symlink("app/link", "run"),
        symlink("app/abs", "/usr/bin/env"),
        hardlink("app/hard", "app/run"),
        ent("app/fifo", EntryType::Fifo, 0o600, b"", None),
        ent("dev/null", EntryType::Char, 0o666, b"", None),
        ent("dev/sda", EntryType::Block, 0o660, b"", None),
        file("app/.wh.old", b""),
        file("app/.wh..wh..opq", b""),
        dir("ro/", 0o555),
        file("ro/inside", b"read-only parent"),
        file("app/run", b"replaced"),
    ];
    let mut seeds = vec![
        ("empty".to_string(), vec![0; 1024]),
        ("every-kind".into(), tar(&every_kind)),
        ("long-names".into(), long_names()),
    ];
    let mut trailing = tar(&[file("a", b"x")]);
    trailing.extend_from_slice(b"bytes after the end of the archive");
    seeds.push(("trailing".into(), trailing));
    let hostile = [
        ("dotdot", vec![file("../escape", b"x")]),
        ("deep-dotdot", vec![file("a/../../escape", b"x")]),
        ("absolute", vec![file("/etc/escape", b"x")]),
        (
            "through-symlink",
            vec![symlink("l", "/"), file("l/tmp/escape", b"x")],
        ),
        (
            "up-symlink",
            vec![symlink("l", "../.."), file("l/escape", b"x")],
        ),
        (
            "symlink-then-dir",
            vec![symlink("d", "/tmp"), dir("d/", 0o755)],
        ),
        ("hardlink-out", vec![hardlink("h", "/etc/passwd")]),
        ("hardlink-up", vec![hardlink("h", "../layer.tar.zst")]),
        ("file-over-dir", vec![dir("a/", 0o755), file("a", b"x")]),
        ("file-as-parent", vec![file("a", b"x"), file("a/b", b"y")]),
    ];
    for (name, entries) in hostile {
        seeds.push((name.into(), tar(&entries)));
    }
    seeds
}

/// One entry, its name and link written raw, unchecked.
struct Ent {
    header: Header,
    data: Vec<u8>,
}

fn ent(name: &str, kind: EntryType, mode: u32, data: &[u8], link: Option<&str>) -> Ent {
    let mut header = Header::new_gnu();
    let old = header.as_old_mut();
    old.name[..name.len()].copy_from_slice(name.as_bytes());
    if let Some(link) = link {
        old.linkname[..link.len()].copy_from_slice(link.as_bytes());
    }
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_uid(1000);
    header.set_gid(1000);
    header.set_size(data.len() as u64);
    header.set_cksum();
    let data = data.to_vec();
    Ent { header, data }
}

fn tar(entries: &[Ent]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for e in entries {
        builder
            .append(&e.header, &e.data[..])
            .expect("append to an in-memory tar");
    }
    builder.into_inner().expect("finish an in-memory tar")
}

/// A GNU long name, a long link name, and PAX records (per entry and global).
fn long_names() -> Vec<u8> {
    let long = format!("{}/file", "d".repeat(150));
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = Header::new_gnu();
    header.set_size(4);
    header.set_mode(0o644);
    builder
        .append_data(&mut header, &long, &b"long"[..])
        .expect("append to an in-memory tar");
    let mut link = Header::new_gnu();
    link.set_entry_type(EntryType::Symlink);
    link.set_mode(0o777);
    link.set_size(0);
    builder
        .append_link(&mut link, "to-long", &long)
        .expect("append to an in-memory tar");
    builder
        .append_pax_extensions([("path", &b"pax/named"[..]), ("mtime", b"1.5")])
        .expect("append to an in-memory tar");
    let mut pax = Header::new_ustar();
    pax.set_size(3);
    pax.set_mode(0o600);
    builder
        .append_data(&mut pax, "short", &b"pax"[..])
        .expect("append to an in-memory tar");
    builder.into_inner().expect("finish an in-memory tar")
}
