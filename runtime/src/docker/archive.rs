//! A `docker load` archive of one assembled rootfs, written deterministically
//! so that the same content always gives the same layer `diff_id` and the
//! same image id (the engine's id is the sha256 of our config bytes).
//!
//! The layer tar lists entries depth-first in byte order of their names,
//! with mode, uid and gid taken from the files and mtime 0. Regular files,
//! directories and symlinks are archived; hard links become copies, and
//! sockets, fifos and device nodes are skipped (the engine provides `/dev`).
//!
//! The archive is the docker-save layout: `manifest.json`, `<id>.json` (the
//! image config, listing the diff_id) and `<diff_id>/layer.tar`. It is
//! written in two passes over the rootfs: [`layer_sum`] measures the layer
//! (size and digest, nothing stored), then [`write_save_archive`] streams it
//! and fails if the rootfs changed in between.

use serde::Serialize;
use sha2::{Digest, Sha256};
use std::ffi::OsString;
use std::fs::{self, File, Metadata};
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use tar::{Builder, EntryType, Header};

/// Label marking every image and container Petrel created.
pub(super) const MANAGED_LABEL: &str = "io.petrel.managed";
/// Epoch used for every timestamp, so archives are reproducible.
const EPOCH: &str = "1970-01-01T00:00:00Z";

/// Size and sha256 (hex) of a layer tar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct LayerSum {
    pub diff_id: String,
    pub size: u64,
}

/// Measures the layer tar of `rootfs` (or of one layer's tree) without
/// storing it.
pub(super) fn layer_sum(rootfs: &Path) -> io::Result<LayerSum> {
    let mut out = Summing::new(io::sink());
    write_layer(rootfs, &mut out)?;
    Ok(out.sum())
}

/// What an image config says besides its layers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ImageMeta {
    /// RFC 3339; the epoch when unknown (so ids stay reproducible).
    pub created: String,
    pub labels: std::collections::BTreeMap<String, String>,
    /// The image's process settings, so `docker inspect` (and `docker
    /// run`) see what the image says; containers get theirs from the spec.
    pub process: petrel_protocol::ImageConfig,
}

impl Default for ImageMeta {
    /// An assembled rootfs: created at the epoch, labelled managed.
    fn default() -> ImageMeta {
        ImageMeta {
            created: EPOCH.into(),
            labels: [(MANAGED_LABEL.to_string(), "true".to_string())].into(),
            process: Default::default(),
        }
    }
}

/// Image config bytes for `layers` (base first); the engine's image id is
/// their sha256.
pub(super) fn image_config(layers: &[LayerSum], meta: &ImageMeta) -> Vec<u8> {
    let config = ImageConfig {
        // the engine's names are OCI's (Go's): amd64, arm64, ...
        architecture: petrel_protocol::Platform::host().architecture,
        os: "linux",
        created: meta.created.clone(),
        config: Config {
            labels: meta.labels.clone(),
            entrypoint: meta.process.entrypoint.clone(),
            cmd: meta.process.cmd.clone(),
            env: meta.process.env.clone(),
            working_dir: meta.process.working_dir.clone(),
            user: meta.process.user.clone(),
        },
        rootfs: RootFs {
            kind: "layers",
            diff_ids: layers
                .iter()
                .map(|l| format!("sha256:{}", l.diff_id))
                .collect(),
        },
        history: layers
            .iter()
            .map(|_| History {
                created: meta.created.clone(),
                created_by: "petrel: layer",
            })
            .collect(),
    };
    // Serialising plain structs of strings cannot fail.
    serde_json::to_vec(&config).unwrap_or_default()
}

/// Hex sha256 of `bytes`.
pub(super) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// One layer of a save archive: its tree, its measured sum, and whether
/// its bytes are written (`false`: the engine holds that layer chain
/// already and does not read the file, so it is left empty).
pub(super) struct ArchiveLayer<'a> {
    pub tree: &'a Path,
    pub sum: LayerSum,
    pub include: bool,
}

/// Writes the docker-save archive of `rootfs` tagged `tag` to `out`.
/// `layer` must come from [`layer_sum`] of the same, unchanged, rootfs.
pub(super) fn write_save_archive<W: Write>(
    out: W,
    rootfs: &Path,
    layer: &LayerSum,
    tag: &str,
) -> io::Result<W> {
    let layers = [ArchiveLayer {
        tree: rootfs,
        sum: layer.clone(),
        include: true,
    }];
    let config = image_config(std::slice::from_ref(layer), &ImageMeta::default());
    write_archive(out, &layers, &config, tag)
}

/// Writes a docker-save archive of `layers` (base first) with `config`
/// (from [`image_config`] of the same sums), tagged `tag`.
pub(super) fn write_archive<W: Write>(
    out: W,
    layers: &[ArchiveLayer],
    config: &[u8],
    tag: &str,
) -> io::Result<W> {
    let config_name = format!("{}.json", sha256_hex(config));
    let layer_names: Vec<String> = layers
        .iter()
        .map(|l| format!("{}/layer.tar", l.sum.diff_id))
        .collect();
    let manifest = [Manifest {
        config: &config_name,
        repo_tags: [tag],
        layers: layer_names.iter().map(String::as_str).collect(),
    }];
    let manifest = serde_json::to_vec(&manifest).map_err(io::Error::other)?;
    let mut archive = Builder::new(out);
    append_bytes(&mut archive, "manifest.json", &manifest)?;
    append_bytes(&mut archive, &config_name, config)?;
    let mut written = std::collections::HashSet::new();
    for (layer, name) in layers.iter().zip(&layer_names) {
        // a layer listed twice is stored once, as docker save does
        if written.insert(name) {
            append_layer(&mut archive, layer, name)?;
        }
    }
    archive.into_inner()
}

/// Streams one layer tar straight into the outer tar: header, body, pad.
fn append_layer<W: Write>(
    archive: &mut Builder<W>,
    layer: &ArchiveLayer,
    name: &str,
) -> io::Result<()> {
    let size = if layer.include { layer.sum.size } else { 0 };
    let mut header = file_header(size);
    header.set_path(name)?;
    header.set_cksum();
    let raw = archive.get_mut();
    raw.write_all(header.as_bytes())?;
    if !layer.include {
        return Ok(());
    }
    let mut body = Summing::new(&mut *raw);
    write_layer(layer.tree, &mut body)?;
    if body.sum() != layer.sum {
        return Err(io::Error::other(format!(
            "{} changed while it was being archived",
            layer.tree.display()
        )));
    }
    let pad = (512 - size % 512) % 512;
    raw.write_all(&[0; 512][..pad as usize])
}

fn append_bytes<W: Write>(archive: &mut Builder<W>, path: &str, bytes: &[u8]) -> io::Result<()> {
    let mut header = file_header(bytes.len() as u64);
    archive.append_data(&mut header, path, bytes)
}

fn file_header(size: u64) -> Header {
    let mut header = Header::new_gnu();
    header.set_entry_type(EntryType::Regular);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_size(size);
    header
}

/// Writes the deterministic layer tar of `rootfs` to `out`.
fn write_layer<W: Write>(rootfs: &Path, out: W) -> io::Result<W> {
    let mut layer = Builder::new(out);
    append_tree(&mut layer, rootfs, Path::new(""))?;
    layer.into_inner()
}

fn append_tree<W: Write>(layer: &mut Builder<W>, root: &Path, rel: &Path) -> io::Result<()> {
    let dir = root.join(rel);
    let mut names = fs::read_dir(&dir)?
        .map(|entry| entry.map(|e| e.file_name()))
        .collect::<io::Result<Vec<OsString>>>()?;
    names.sort();
    for name in names {
        let rel = rel.join(name);
        let path = root.join(&rel);
        let meta = fs::symlink_metadata(&path)?;
        append_entry(layer, &path, &rel, &meta)?;
        if meta.is_dir() {
            append_tree(layer, root, &rel)?;
        }
    }
    Ok(())
}

fn append_entry<W: Write>(
    layer: &mut Builder<W>,
    path: &Path,
    rel: &Path,
    meta: &Metadata,
) -> io::Result<()> {
    let mut header = Header::new_gnu();
    header.set_mode(meta.mode() & 0o7777);
    header.set_uid(meta.uid().into());
    header.set_gid(meta.gid().into());
    header.set_mtime(0);
    header.set_size(0);
    let kind = meta.file_type();
    if kind.is_dir() {
        header.set_entry_type(EntryType::Directory);
        layer.append_data(&mut header, rel, io::empty())
    } else if kind.is_symlink() {
        header.set_entry_type(EntryType::Symlink);
        layer.append_link(&mut header, rel, fs::read_link(path)?)
    } else if kind.is_file() {
        header.set_entry_type(EntryType::Regular);
        header.set_size(meta.len());
        let file = File::open(path)?.take(meta.len());
        layer.append_data(&mut header, rel, file)
    } else {
        tracing::warn!(path = %path.display(), "skipping special file in rootfs");
        Ok(())
    }
}

/// A writer that hashes and counts what goes through it.
struct Summing<W> {
    inner: W,
    hash: Sha256,
    size: u64,
}

impl<W> Summing<W> {
    fn new(inner: W) -> Summing<W> {
        Summing {
            inner,
            hash: Sha256::new(),
            size: 0,
        }
    }

    fn sum(&self) -> LayerSum {
        LayerSum {
            diff_id: hex::encode(self.hash.clone().finalize()),
            size: self.size,
        }
    }
}

impl<W: Write> Write for Summing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Manifest<'a> {
    config: &'a str,
    repo_tags: [&'a str; 1],
    layers: Vec<&'a str>,
}

#[derive(Serialize)]
struct ImageConfig {
    architecture: String,
    os: &'static str,
    created: String,
    config: Config,
    rootfs: RootFs,
    history: Vec<History>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Config {
    labels: std::collections::BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    entrypoint: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    cmd: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    env: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    working_dir: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<String>,
}

#[derive(Serialize)]
struct RootFs {
    #[serde(rename = "type")]
    kind: &'static str,
    diff_ids: Vec<String>,
}

#[derive(Serialize)]
struct History {
    created: String,
    created_by: &'static str,
}

#[cfg(test)]
mod tests;
