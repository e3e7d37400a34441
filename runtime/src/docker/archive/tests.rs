use super::*;
use std::collections::HashMap;
use std::os::unix::fs::symlink;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};
use tempfile::TempDir;

fn make_tree(dir: &Path, name: &str) -> PathBuf {
    let root = dir.join(name);
    fs::create_dir_all(root.join("bin")).unwrap();
    fs::create_dir_all(root.join("etc/app")).unwrap();
    fs::write(root.join("bin/tool"), b"#!/bin/sh\necho hi\n").unwrap();
    fs::write(root.join("etc/app/config"), b"x = 1\n").unwrap();
    symlink("tool", root.join("bin/alias")).unwrap();
    root
}

/// Entries of a tar as path → (entry type, contents).
fn entries(bytes: &[u8]) -> HashMap<String, (EntryType, Vec<u8>)> {
    let mut archive = tar::Archive::new(bytes);
    let mut found = HashMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().display().to_string();
        let kind = entry.header().entry_type();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        found.insert(path, (kind, data));
    }
    found
}

#[test]
fn same_content_at_two_paths_gives_the_same_layer() {
    let dir = TempDir::new().unwrap();
    let a = layer_sum(&make_tree(dir.path(), "a")).unwrap();
    let b = layer_sum(&make_tree(dir.path(), "b")).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.diff_id.len(), 64);
}

#[test]
fn modification_times_do_not_change_the_layer() {
    let dir = TempDir::new().unwrap();
    let root = make_tree(dir.path(), "a");
    let before = layer_sum(&root).unwrap();
    let file = File::options()
        .write(true)
        .open(root.join("bin/tool"))
        .unwrap();
    file.set_modified(SystemTime::now() - Duration::from_secs(3600))
        .unwrap();
    assert_eq!(layer_sum(&root).unwrap(), before);
}

#[test]
fn changed_content_changes_the_layer() {
    let dir = TempDir::new().unwrap();
    let root = make_tree(dir.path(), "a");
    let before = layer_sum(&root).unwrap();
    fs::write(root.join("etc/app/config"), b"x = 2\n").unwrap();
    assert_ne!(layer_sum(&root).unwrap(), before);
}

#[test]
fn save_archive_holds_manifest_config_and_the_measured_layer() {
    let dir = TempDir::new().unwrap();
    let root = make_tree(dir.path(), "a");
    let layer = layer_sum(&root).unwrap();
    let bytes = write_save_archive(Vec::new(), &root, &layer, "petrel/rootfs:t").unwrap();
    let outer = entries(&bytes);
    let config = image_config(std::slice::from_ref(&layer), &ImageMeta::default());
    let config_name = format!("{}.json", sha256_hex(&config));
    assert_eq!(outer[&config_name].1, config);
    let manifest: serde_json::Value = serde_json::from_slice(&outer["manifest.json"].1).unwrap();
    assert_eq!(manifest[0]["Config"], config_name.as_str());
    assert_eq!(manifest[0]["RepoTags"][0], "petrel/rootfs:t");
    let layer_tar = &outer[&format!("{}/layer.tar", layer.diff_id)].1;
    assert_eq!(sha256_hex(layer_tar), layer.diff_id);
    let inner = entries(layer_tar);
    assert_eq!(inner["bin"].0, EntryType::Directory);
    assert_eq!(inner["bin/alias"].0, EntryType::Symlink);
    assert_eq!(inner["etc/app/config"].1, b"x = 1\n");
}

#[test]
fn a_rootfs_changed_after_measuring_is_refused() {
    let dir = TempDir::new().unwrap();
    let root = make_tree(dir.path(), "a");
    let layer = layer_sum(&root).unwrap();
    fs::write(root.join("new-file"), b"late").unwrap();
    let err = write_save_archive(io::sink(), &root, &layer, "petrel/rootfs:t").unwrap_err();
    assert!(err.to_string().contains("changed"), "{err}");
}

#[test]
fn config_lists_the_layer_and_the_managed_label() {
    let layer = LayerSum {
        diff_id: "ab".repeat(32),
        size: 1024,
    };
    let config: serde_json::Value = serde_json::from_slice(&image_config(
        std::slice::from_ref(&layer),
        &ImageMeta::default(),
    ))
    .unwrap();
    assert_eq!(
        config["rootfs"]["diff_ids"][0],
        format!("sha256:{}", "ab".repeat(32))
    );
    assert_eq!(config["config"]["Labels"][MANAGED_LABEL], "true");
    assert_eq!(config["os"], "linux");
}
