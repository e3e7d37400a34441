//! The model on shell scripts run under the shim (coreutils: `sync FILE`
//! fsyncs a file or directory, bare `sync` syncs everything).

use super::{PowerCut, Replay};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Writes `files` into a fresh root (durable: the log starts after them),
/// runs `script` there under the shim and replays the power cut.
fn cut_after(files: &[(&str, &str)], script: &str) -> (tempfile::TempDir, PathBuf, Replay) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).unwrap();
    for (name, text) in files {
        std::fs::write(root.join(name), text).unwrap();
    }
    let cut = PowerCut::new(&tmp.path().join("cut"), &root).unwrap();
    let status = Command::new("sh")
        .args(["-e", "-c", script])
        .current_dir(&root)
        .envs(cut.env(None))
        .env("POWERCUT_CHILDREN", "1")
        .status()
        .unwrap();
    assert!(status.success(), "{script}");
    let replay = cut.replay().unwrap();
    assert!(
        replay.skipped.is_empty(),
        "{:?}\n{}",
        replay.skipped,
        cut.log()
    );
    (tmp, root, replay)
}

fn read(root: &Path, name: &str) -> Option<String> {
    std::fs::read_to_string(root.join(name)).ok()
}

#[test]
fn an_unsynced_write_is_lost_and_a_synced_one_kept() {
    let (_tmp, root, replay) = cut_after(
        &[("a", "old"), ("b", "old")],
        "printf XY >> a; printf XY >> b; sync b; printf Z >> b",
    );
    assert_eq!(read(&root, "a").as_deref(), Some("old"));
    assert_eq!(read(&root, "b").as_deref(), Some("oldXY"));
    assert_eq!(replay.writes_undone, 2);
}

#[test]
fn overwrites_and_truncations_go_back_to_the_bytes_they_replaced() {
    let (_tmp, root, _) = cut_after(
        &[("a", "old text"), ("b", "old text")],
        "printf new > a; truncate -s 2 b; printf 'more' >> b",
    );
    assert_eq!(read(&root, "a").as_deref(), Some("old text"));
    assert_eq!(read(&root, "b").as_deref(), Some("old text"));
}

#[test]
fn a_synced_file_renamed_over_another_without_a_directory_sync_is_undone() {
    let (_tmp, root, replay) = cut_after(
        &[("cfg", "v1")],
        "printf v2 > cfg.tmp; sync cfg.tmp; mv cfg.tmp cfg",
    );
    assert_eq!(read(&root, "cfg").as_deref(), Some("v1"));
    assert!(
        !root.join("cfg.tmp").exists(),
        "the temporary file was never durable"
    );
    assert_eq!(replay.entries_undone.len(), 2, "{replay:?}");
}

#[test]
fn a_rename_followed_by_a_directory_sync_stays() {
    let (_tmp, root, replay) = cut_after(
        &[("cfg", "v1")],
        "printf v2 > cfg.tmp; sync cfg.tmp; mv cfg.tmp cfg; sync .",
    );
    assert_eq!(read(&root, "cfg").as_deref(), Some("v2"));
    assert_eq!(replay.undone(), 0, "{replay:?}");
}

#[test]
fn a_new_directory_goes_with_its_synced_files_unless_its_parent_is_synced() {
    let script = "mkdir d; printf x > d/f; sync d/f d";
    let (_tmp, root, _) = cut_after(&[], script);
    assert!(!root.join("d").exists());
    let (_tmp, root, _) = cut_after(&[], &format!("{script}; sync ."));
    assert_eq!(read(&root, "d/f").as_deref(), Some("x"));
}

#[test]
fn removals_come_back_and_a_full_sync_keeps_everything() {
    let (_tmp, root, _) = cut_after(&[("a", "kept")], "mkdir d; rm a; rmdir d");
    assert_eq!(read(&root, "a").as_deref(), Some("kept"));
    assert!(!root.join("d").exists());
    let (_tmp, root, replay) = cut_after(&[("a", "gone")], "rm a; printf x > b; sync");
    assert!(!root.join("a").exists());
    assert_eq!(read(&root, "b").as_deref(), Some("x"));
    assert_eq!(replay.undone(), 0);
}

#[test]
fn a_file_moved_to_another_directory_is_found_by_inode_for_its_data_undo() {
    let (_tmp, root, _) = cut_after(
        &[("a", "old")],
        "mkdir d; sync .; printf XY >> a; mv a d/a; sync d .",
    );
    assert_eq!(read(&root, "d/a").as_deref(), Some("old"));
}

#[test]
fn a_removed_directory_comes_back_with_its_files_though_its_inode_was_reused() {
    let (_tmp, root, replay) = cut_after(
        &[],
        "mkdir a; printf x > a/f; sync a/f a .; rm a/f; rmdir a; mkdir b; printf y > b/g",
    );
    assert_eq!(read(&root, "a/f").as_deref(), Some("x"));
    assert!(!root.join("b").exists());
    assert_eq!(replay.entries_undone.len(), 4, "{replay:?}");
}

#[test]
fn a_new_directory_removed_again_is_gone_after_the_undo() {
    let (_tmp, root, replay) = cut_after(&[], "mkdir t; printf x > t/f; rm t/f; rmdir t");
    assert!(!root.join("t").exists());
    assert_eq!(replay.entries_undone.len(), 4, "{replay:?}");
}

#[test]
fn a_tree_renamed_aside_and_removed_comes_back_in_place() {
    let (_tmp, root, replay) = cut_after(
        &[],
        "mkdir -p t/sub; printf x > t/sub/f; sync; mv t t.old; rm -r t.old",
    );
    assert_eq!(read(&root, "t/sub/f").as_deref(), Some("x"));
    assert!(!root.join("t.old").exists());
    assert_eq!(replay.entries_undone.len(), 4, "{replay:?}");
}

#[test]
fn the_shim_cuts_the_power_right_after_the_operation_named() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let cut = PowerCut::new(&tmp.path().join("cut"), &root).unwrap();
    let status = Command::new("sh")
        .args(["-c", "printf x > a; printf y > b; printf z > c"])
        .current_dir(&root)
        .envs(cut.env(Some("C:/b$")))
        .status()
        .unwrap();
    assert!(!status.success(), "killed");
    assert!(cut.shim_cut(), "{}", cut.log());
    assert!(root.join("b").exists() && !root.join("c").exists());
}
