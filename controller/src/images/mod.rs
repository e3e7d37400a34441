//! Images on the controller: import from `docker save` / OCI-layout
//! tarballs, or build from a directory. Either way every layer ends up in
//! the [`BlobStore`] as a zstd blob with its true `diff_id` (sha256 of the
//! uncompressed tar), and the result is an [`ImageManifest`].
//!
//! Layout:
//! - `extract`: safe unpacking of the outer tarball into a scratch dir.
//! - `docker`: the `docker save` format (`manifest.json`).
//! - `oci`: the OCI image layout (`oci-layout`, `index.json`, `blobs/`).
//! - `config`: the image config JSON (process settings, `rootfs.diff_ids`).
//! - `layers`: compression detection, digest checks, storing layers.
//! - `build`: a deterministic layer tar from a directory.
//!
//! Decision: imported layers are decompressed and recompressed with zstd,
//! never stored as received, so devices need one decompressor and deltas
//! are computed between uncompressed tars identified by `diff_id`.
//! Synchronous std I/O: async callers use `spawn_blocking`.

mod build;
mod config;
mod docker;
mod extract;
#[cfg(test)]
mod fixtures;
mod layers;
mod oci;

pub use build::{build_from_dir, tar_dir};

use crate::blobs::{BlobError, BlobStore};
use petrel_protocol::{
    validate_name, Digest, ImageConfig, ImageManifest, InvalidName, LayerDescriptor, SCHEMA,
};
use std::io;
use std::path::{Path, PathBuf};

/// Why an image could not be imported or built.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error(transparent)]
    Name(#[from] InvalidName),
    #[error(transparent)]
    Blob(#[from] BlobError),
    #[error("i/o on {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("reading tarball {path}: {source}")]
    ReadTarball { path: PathBuf, source: io::Error },
    #[error("{path} is neither a docker-save tarball (manifest.json) nor an OCI image layout (oci-layout + index.json)")]
    UnknownFormat { path: PathBuf },
    #[error(
        "tarball entry {entry:?} is absolute, climbs out with .., or links outside the archive"
    )]
    UnsafeEntry { entry: String },
    #[error("tarball entry {entry:?} has unsupported type {kind}")]
    UnsupportedEntry { entry: String, kind: String },
    #[error("tarball entry {entry:?}: too many levels of links")]
    LinkLoop { entry: String },
    #[error("tarball has no file {entry:?}")]
    Missing { entry: String },
    #[error("{entry}: {size} bytes is over the {limit}-byte limit for metadata")]
    TooLarge {
        entry: String,
        size: u64,
        limit: u64,
    },
    #[error("{entry}: invalid JSON: {source}")]
    Json {
        entry: String,
        source: serde_json::Error,
    },
    #[error("manifest.json lists {found} images; save exactly one image per tarball")]
    ImageCount { found: usize },
    #[error("OCI index lists no manifests")]
    NoManifest,
    #[error("OCI blob {digest} is an index nested more than one level deep")]
    NestedIndex { digest: Digest },
    #[error("OCI blob {digest} is not an image manifest (no config)")]
    NotAManifest { digest: Digest },
    #[error("OCI layer {digest} has unsupported media type {media_type:?}")]
    UnsupportedMediaType { digest: Digest, media_type: String },
    #[error("blob {expected} ({entry}) has sha256 {actual}: corrupt or tampered")]
    BlobDigestMismatch {
        entry: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("blob {digest} ({entry}) is {actual} bytes, its descriptor says {expected}")]
    BlobSizeMismatch {
        entry: String,
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    #[error("image has {layers} layers but its config lists {diff_ids} diff_ids")]
    LayerCount { layers: usize, diff_ids: usize },
    #[error("layer {layer}: computed diff_id {actual}, the image config says {expected}")]
    DiffIdMismatch {
        layer: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("layer {layer}: {source}")]
    StoreLayer { layer: String, source: BlobError },
    #[error("cannot archive {path}: {reason}")]
    UnsupportedFile { path: PathBuf, reason: &'static str },
}

/// The two tarball formats `import_tarball` understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Oci,
    Docker,
}

/// Imports a `docker save` or OCI image-layout tarball as image `name:tag`,
/// storing its layers in `blobs`.
///
/// The format is told by its top-level files: `oci-layout` + `index.json`
/// is OCI (preferred, as Docker 25+ writes both and OCI carries digests for
/// everything), else `manifest.json` is docker-save.
pub fn import_tarball(
    path: &Path,
    name: &str,
    tag: &str,
    blobs: &BlobStore,
) -> Result<ImageManifest, ImageError> {
    validate_name(name, 128)?;
    validate_name(tag, 128)?;
    let unpacked = extract::unpack(path, &blobs.tmp_dir())?;
    let (layers, config) = match detect(&unpacked) {
        Some(Format::Oci) => oci::import(&unpacked, blobs)?,
        Some(Format::Docker) => docker::import(&unpacked, blobs)?,
        None => return Err(ImageError::UnknownFormat { path: path.into() }),
    };
    Ok(manifest(name, tag, layers, config))
}

fn detect(unpacked: &extract::Unpacked) -> Option<Format> {
    if unpacked.has_file("oci-layout") && unpacked.has_file("index.json") {
        Some(Format::Oci)
    } else if unpacked.has_file("manifest.json") {
        Some(Format::Docker)
    } else {
        None
    }
}

fn manifest(
    name: &str,
    tag: &str,
    layers: Vec<LayerDescriptor>,
    config: ImageConfig,
) -> ImageManifest {
    ImageManifest {
        schema: SCHEMA,
        name: name.to_string(),
        tag: tag.to_string(),
        layers,
        config,
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{store, tarball, TarEntry};
    use super::*;

    #[test]
    fn tarball_with_neither_format_is_a_clear_error() {
        let (dir, blobs) = store();
        let path = tarball(dir.path(), &[TarEntry::file("hello.txt", b"hi")]);
        let err = import_tarball(&path, "app", "1", &blobs).unwrap_err();
        assert!(matches!(err, ImageError::UnknownFormat { .. }), "{err}");
        assert!(err.to_string().contains("manifest.json"), "{err}");
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn import_with_an_invalid_name_or_tag_is_refused() {
        let (dir, blobs) = store();
        let path = tarball(dir.path(), &[]);
        assert!(matches!(
            import_tarball(&path, "../app", "1", &blobs),
            Err(ImageError::Name(_))
        ));
        assert!(matches!(
            import_tarball(&path, "app", "a/b", &blobs),
            Err(ImageError::Name(_))
        ));
    }

    #[test]
    fn import_leaves_no_scratch_files_behind() {
        let (dir, blobs) = store();
        let path = tarball(dir.path(), &[TarEntry::file("x", b"x")]);
        let _ = import_tarball(&path, "app", "1", &blobs);
        assert_eq!(std::fs::read_dir(blobs.tmp_dir()).unwrap().count(), 0);
    }
}
