//! Test factories: outer tarballs, layer tars and configs assembled by hand
//! as real files in temp dirs.

use crate::blobs::BlobStore;
use petrel_protocol::Digest;
use std::io::Write;
use std::path::{Path, PathBuf};
use tar::{EntryType, Header};

/// One member of a hand-made outer tarball.
pub struct TarEntry {
    pub name: String,
    pub data: Vec<u8>,
    pub link: Option<String>,
}

impl TarEntry {
    pub fn file(name: &str, data: &[u8]) -> TarEntry {
        TarEntry {
            name: name.into(),
            data: data.to_vec(),
            link: None,
        }
    }

    pub fn symlink(name: &str, target: &str) -> TarEntry {
        TarEntry {
            name: name.into(),
            data: vec![],
            link: Some(target.into()),
        }
    }
}

/// A blob store in a fresh temp dir (keep the dir alive).
pub fn store() -> (tempfile::TempDir, BlobStore) {
    let dir = tempfile::tempdir().unwrap();
    let blobs = BlobStore::open(dir.path().join("blobs")).unwrap();
    (dir, blobs)
}

/// How many blobs the store holds.
pub fn stored_blobs(blobs: &BlobStore) -> usize {
    let dir = blobs.path(&Digest::of(b"")).parent().unwrap().to_path_buf();
    std::fs::read_dir(dir).unwrap().count()
}

/// Tar bytes of `entries` (regular files and symlinks).
pub fn tar_bytes(entries: &[TarEntry]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(0);
        h.set_entry_type(EntryType::Regular);
        match &e.link {
            Some(target) => {
                h.set_entry_type(EntryType::Symlink);
                builder.append_link(&mut h, &e.name, target).unwrap();
            }
            None => {
                h.set_size(e.data.len() as u64);
                builder.append_data(&mut h, &e.name, &e.data[..]).unwrap();
            }
        }
    }
    builder.into_inner().unwrap()
}

/// Writes `entries` as `image.tar` in `dir`.
pub fn tarball(dir: &Path, entries: &[TarEntry]) -> PathBuf {
    let path = dir.join("image.tar");
    std::fs::write(&path, tar_bytes(entries)).unwrap();
    path
}

/// A layer tar of regular files.
pub fn layer_tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let entries: Vec<TarEntry> = files.iter().map(|(n, d)| TarEntry::file(n, d)).collect();
    tar_bytes(&entries)
}

/// A one-entry tar whose name is written raw, bypassing the tar crate's
/// own refusal of `..` and absolute names.
pub fn raw_entry(name: &str, data: &[u8]) -> Vec<u8> {
    let mut h = Header::new_gnu();
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_mode(0o644);
    h.set_entry_type(EntryType::Regular);
    h.set_size(data.len() as u64);
    h.set_cksum();
    let mut builder = tar::Builder::new(Vec::new());
    builder.append(&h, data).unwrap();
    builder.into_inner().unwrap()
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// A Docker/OCI image config with the given `rootfs.diff_ids`.
pub fn docker_config(diff_ids: &[Digest]) -> Vec<u8> {
    let ids: Vec<String> = diff_ids.iter().map(Digest::to_string).collect();
    serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Entrypoint": ["/bin/app"],
            "Cmd": null,
            "Env": ["PATH=/bin"],
            "WorkingDir": "/srv",
            "ExposedPorts": {"8080/tcp": {}}
        },
        "rootfs": {"type": "layers", "diff_ids": ids}
    })
    .to_string()
    .into_bytes()
}

/// The members of a docker-save archive of one image with these layers.
pub fn docker_save(layers: &[(&str, Vec<u8>)], diff_ids: &[Digest]) -> Vec<TarEntry> {
    let config = docker_config(diff_ids);
    let config_name = format!("{}.json", Digest::of(&config).hex());
    let layer_names: Vec<&str> = layers.iter().map(|(n, _)| *n).collect();
    let manifest = serde_json::json!([{
        "Config": config_name, "RepoTags": ["probe:1"], "Layers": layer_names,
    }]);
    let mut entries = vec![
        TarEntry::file("manifest.json", manifest.to_string().as_bytes()),
        TarEntry::file(&config_name, &config),
    ];
    entries.extend(layers.iter().map(|(n, bytes)| TarEntry::file(n, bytes)));
    entries
}

/// Imports `entries`, written as `image.tar` in `dir`, as `name:tag`.
pub fn import_entries(
    dir: &Path,
    entries: &[TarEntry],
    name: &str,
    tag: &str,
    blobs: &BlobStore,
) -> Result<super::Imported, super::ImageError> {
    super::import_tarball(&tarball(dir, entries), "image.tar", name, tag, blobs)
}
