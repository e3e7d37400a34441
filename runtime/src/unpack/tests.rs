//! Tests of the defensive unpacker, with real (and hostile) tar files.

use super::*;
use std::os::unix::fs::MetadataExt;
use tar::EntryType;
use tempfile::TempDir;

/// One tar entry, its name written unchecked so hostile ones can be built.
pub(crate) struct Ent {
    name: String,
    kind: EntryType,
    mode: u32,
    data: Vec<u8>,
    link: Option<String>,
}

pub(crate) fn entry(name: &str, kind: EntryType, data: &[u8], link: Option<&str>) -> Ent {
    let (name, data, link) = (name.into(), data.into(), link.map(Into::into));
    Ent {
        name,
        kind,
        mode: 0o644,
        data,
        link,
    }
}

pub(crate) fn file(name: &str, data: &[u8]) -> Ent {
    entry(name, EntryType::Regular, data, None)
}

fn symlink_to(name: &str, target: &str) -> Ent {
    entry(name, EntryType::Symlink, b"", Some(target))
}

fn hardlink_to(name: &str, target: &str) -> Ent {
    entry(name, EntryType::Link, b"", Some(target))
}

impl Ent {
    fn mode(self, mode: u32) -> Ent {
        Ent { mode, ..self }
    }
}

pub(crate) fn tar_of(entries: &[Ent]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for e in entries {
        let mut header = tar::Header::new_gnu();
        header.as_old_mut().name[..e.name.len()].copy_from_slice(e.name.as_bytes());
        header.set_entry_type(e.kind);
        header.set_mode(e.mode);
        header.set_uid(1000);
        header.set_size(e.data.len() as u64);
        if let Some(target) = &e.link {
            header.set_link_name(target).unwrap();
        }
        header.set_cksum();
        builder.append(&header, &e.data[..]).unwrap();
    }
    builder.into_inner().unwrap()
}

/// Writes `tar` zstd-compressed to `dir/blob`; returns its path and diff_id.
pub(crate) fn blob_of(dir: &Path, tar: &[u8]) -> (PathBuf, Digest) {
    let blob = dir.join("blob");
    fs::write(&blob, zstd::encode_all(tar, 3).unwrap()).unwrap();
    (blob, Digest::of(tar))
}

/// Names in `dir` other than the blob: what an unpack left behind.
pub(crate) fn leftovers(dir: &Path) -> Vec<String> {
    let names = fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name());
    let mut names: Vec<String> = names.map(|n| n.to_string_lossy().into_owned()).collect();
    names.retain(|n| n != "blob");
    names.sort();
    names
}

fn unpack(entries: &[Ent], limits: UnpackLimits) -> (TempDir, Result<UnpackStats, UnpackError>) {
    let dir = TempDir::new().unwrap();
    let (blob, diff_id) = blob_of(dir.path(), &tar_of(entries));
    let result = unpack_layer_with(&blob, &diff_id, &dir.path().join("layer"), limits);
    (dir, result)
}

/// Asserts that `bad` is rejected for a reason containing `why` and
/// that nothing is left behind.
fn assert_unsafe(entries: &[Ent], bad: &str, why: &str) {
    let (dir, result) = unpack(entries, UnpackLimits::default());
    match result {
        Err(UnpackError::UnsafeEntry { entry, reason, .. }) => {
            assert_eq!(entry, Path::new(bad));
            assert!(reason.contains(why), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(leftovers(dir.path()), Vec::<String>::new());
}

fn mode_of(path: &Path) -> u32 {
    fs::symlink_metadata(path).unwrap().mode() & 0o7777
}

#[test]
fn a_normal_layer_unpacks_with_its_content_modes_and_links() {
    let (dir, result) = unpack(
        &[
            entry("./", EntryType::Directory, b"", None),
            entry("bin/", EntryType::Directory, b"", None).mode(0o750),
            file("bin/tool", b"#!/bin/sh\n").mode(0o4755),
            file("etc/conf", b"a=1").mode(0o640),
            symlink_to("bin/sh", "tool"),
            symlink_to("conf", "/etc/conf"),
            hardlink_to("etc/conf2", "etc/conf"),
            file("etc/.wh.old", b""),
            entry("ro/", EntryType::Directory, b"", None).mode(0o555),
            file("ro/f", b"x"),
        ],
        UnpackLimits::default(),
    );
    assert_eq!(
        result.unwrap(),
        UnpackStats {
            entries: 10,
            bytes: 14,
            devices_skipped: 0,
            setid_stripped: 1,
        }
    );
    let layer = dir.path().join("layer");
    assert_eq!(fs::read(layer.join("etc/conf2")).unwrap(), b"a=1");
    assert_eq!(fs::read(layer.join("ro/f")).unwrap(), b"x");
    assert_eq!(fs::metadata(layer.join("etc/.wh.old")).unwrap().len(), 0);
    let modes = ["bin", "bin/tool", "etc/conf", "etc", "ro"].map(|p| mode_of(&layer.join(p)));
    // setuid stripped: the release did not allow it
    assert_eq!(modes, [0o750, 0o755, 0o640, 0o755, 0o555]);
    assert_eq!(
        fs::read_link(layer.join("bin/sh")).unwrap(),
        Path::new("tool")
    );
    assert_eq!(
        fs::read_link(layer.join("conf")).unwrap(),
        Path::new("/etc/conf")
    );
    let as_root = nix::unistd::geteuid().is_root();
    assert!(!as_root || fs::symlink_metadata(layer.join("conf")).unwrap().uid() == 1000);
    assert_eq!(leftovers(dir.path()), ["layer"]);
}

#[test]
fn a_wrong_diff_id_is_rejected_and_leaves_nothing_behind() {
    let dir = TempDir::new().unwrap();
    let (blob, _) = blob_of(dir.path(), &tar_of(&[file("a", b"a")]));
    let wrong = Digest::of(b"something else");
    let result = unpack_layer(&blob, &wrong, &dir.path().join("layer"));
    assert!(
        matches!(&result, Err(UnpackError::DigestMismatch { expected, .. }) if *expected == wrong)
    );
    assert_eq!(leftovers(dir.path()), Vec::<String>::new());
}

#[test]
fn a_truncated_or_garbled_blob_is_rejected_and_leaves_nothing_behind() {
    let dir = TempDir::new().unwrap();
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7919 % 251) as u8).collect();
    let (blob, diff_id) = blob_of(dir.path(), &tar_of(&[file("big", &data)]));
    let compressed = fs::read(&blob).unwrap();
    for bad in [&compressed[..compressed.len() / 2], b"not zstd at all"] {
        fs::write(&blob, bad).unwrap();
        let result = unpack_layer(&blob, &diff_id, &dir.path().join("layer"));
        assert!(
            matches!(result, Err(UnpackError::Corrupt { .. })),
            "{result:?}"
        );
        assert_eq!(leftovers(dir.path()), Vec::<String>::new());
    }
}

#[test]
fn corrupted_tar_bytes_give_errors_not_panics_or_leftovers() {
    let tar = tar_of(&[
        file("a/b", b"hello"),
        symlink_to("l", "a"),
        file("c", &[7; 700]),
    ]);
    for at in (0..tar.len()).step_by(37) {
        let mut bad = tar.clone();
        bad[at] ^= 0x5a;
        let dir = TempDir::new().unwrap();
        let (blob, diff_id) = blob_of(dir.path(), &bad);
        if unpack_layer(&blob, &diff_id, &dir.path().join("layer")).is_err() {
            assert_eq!(leftovers(dir.path()), Vec::<String>::new(), "byte {at}");
        }
    }
}

#[test]
fn paths_with_dot_dot_or_a_root_are_rejected() {
    for (name, why) in [
        ("../evil", "`..`"),
        ("a/../b", "`..`"),
        ("/abs", "absolute"),
    ] {
        assert_unsafe(&[file(name, b"x")], name, why);
    }
}

#[test]
fn symlinks_escaping_the_root_are_rejected() {
    assert_unsafe(&[symlink_to("link", "../../etc")], "link", "escapes");
    assert_unsafe(&[symlink_to("up", "..")], "up", "escapes");
    assert_unsafe(&[symlink_to("a/b/c", "../../../x")], "a/b/c", "escapes");
}

#[test]
fn writes_through_a_symlinked_directory_are_rejected() {
    let outside = TempDir::new().unwrap();
    let target = outside.path().to_str().unwrap();
    assert_unsafe(
        &[symlink_to("link", target), file("link/x", b"pwned")],
        "link/x",
        "symlink",
    );
    let entries = [
        symlink_to("d", "."),
        symlink_to("d/e", target),
        file("d/e/x", b""),
    ];
    assert_unsafe(&entries, "d/e", "symlink");
    assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
}

#[test]
fn a_later_entry_replaces_an_earlier_symlink_instead_of_writing_through_it() {
    let outside = TempDir::new().unwrap();
    let target = outside.path().join("victim");
    let entries = [symlink_to("f", target.to_str().unwrap()), file("f", b"new")];
    let (dir, result) = unpack(&entries, UnpackLimits::default());
    result.unwrap();
    assert_eq!(fs::read(dir.path().join("layer/f")).unwrap(), b"new");
    assert!(!target.exists());
}

#[test]
fn device_nodes_are_recorded_and_skipped_and_the_rest_of_the_layer_unpacks() {
    let (dir, result) = unpack(
        &[
            entry("dev/", EntryType::Directory, b"", None),
            entry("dev/null", EntryType::Char, b"", None),
            entry("dev/console", EntryType::Char, b"", None),
            entry("dev/sda", EntryType::Block, b"", None),
            file("etc/hostname", b"pi"),
        ],
        UnpackLimits::default(),
    );
    let stats = result.unwrap();
    assert_eq!((stats.entries, stats.devices_skipped), (5, 3));
    let layer = dir.path().join("layer");
    assert!(layer.join("dev").is_dir());
    assert_eq!(fs::read_dir(layer.join("dev")).unwrap().count(), 0);
    assert_eq!(fs::read(layer.join("etc/hostname")).unwrap(), b"pi");
}

#[test]
fn setuid_and_setgid_bits_are_kept_only_when_allowed() {
    let entries = [
        file("bin/su", b"x").mode(0o4755),
        file("bin/wall", b"y").mode(0o2755),
        file("bin/ls", b"z").mode(0o755),
    ];
    for (allow_setid, want, stripped) in [
        (false, [0o755, 0o755, 0o755], 2),
        (true, [0o4755, 0o2755, 0o755], 0),
    ] {
        let limits = UnpackLimits {
            allow_setid,
            ..UnpackLimits::default()
        };
        let (dir, result) = unpack(&entries, limits);
        assert_eq!(result.unwrap().setid_stripped, stripped);
        let layer = dir.path().join("layer");
        let modes = ["bin/su", "bin/wall", "bin/ls"].map(|p| mode_of(&layer.join(p)));
        assert_eq!(modes, want, "allow_setid {allow_setid}");
    }
}

#[test]
fn hard_links_outside_the_tree_or_to_missing_files_are_rejected() {
    assert_unsafe(&[hardlink_to("h", "../etc/passwd")], "h", "`..`");
    assert_unsafe(&[hardlink_to("h", "/etc/passwd")], "h", "absolute");
    assert_unsafe(
        &[hardlink_to("h", "later"), file("later", b"")],
        "h",
        "earlier",
    );
    assert_unsafe(
        &[symlink_to("s", "/etc/passwd"), hardlink_to("h", "s")],
        "h",
        "earlier",
    );
}

#[test]
fn layers_over_the_limits_are_rejected_and_leave_nothing_behind() {
    let defaults = UnpackLimits::default();
    let cases = [
        (
            UnpackLimits {
                max_entry_bytes: 4,
                ..defaults
            },
            vec![file("a", b"12345")],
        ),
        (
            UnpackLimits {
                max_entries: 1,
                ..defaults
            },
            vec![file("a", b""), file("b", b"")],
        ),
        (
            UnpackLimits {
                max_total_bytes: 1024,
                ..defaults
            },
            vec![file("a", &[0; 600])],
        ),
    ];
    for (limits, entries) in cases {
        let (dir, result) = unpack(&entries, limits);
        assert!(
            matches!(result, Err(UnpackError::TooLarge { .. })),
            "{result:?}"
        );
        assert_eq!(leftovers(dir.path()), Vec::<String>::new());
    }
}

#[test]
fn long_names_and_blank_owners_from_tar_builder_unpack() {
    let long = format!("{}/file", "d".repeat(150));
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(2);
    header.set_mode(0o600);
    builder.append_data(&mut header, &long, &b"hi"[..]).unwrap();
    let dir = TempDir::new().unwrap();
    let (blob, diff_id) = blob_of(dir.path(), &builder.into_inner().unwrap());
    unpack_layer(&blob, &diff_id, &dir.path().join("layer")).unwrap();
    let path = dir.path().join("layer").join(&long);
    assert_eq!(fs::read(&path).unwrap(), b"hi");
    assert_eq!(mode_of(&path), 0o600);
    let as_root = nix::unistd::geteuid().is_root();
    assert!(!as_root || fs::metadata(&path).unwrap().uid() == 0);
}
