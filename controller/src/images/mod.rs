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
//! - `audit`: every stored layer run through the devices' entry rules.
//! - `imported`: an image as registered, its platform variants and report.
//!
//! Decision: imported layers are decompressed and recompressed with zstd,
//! never stored as received, so devices need one decompressor and deltas
//! are computed between uncompressed tars identified by `diff_id`.
//! Synchronous std I/O: async callers use `spawn_blocking`.

mod audit;
mod build;
mod config;
mod docker;
mod extract;
#[cfg(test)]
mod fixtures;
mod imported;
mod layers;
mod oci;

pub use audit::audit_layer;
pub use build::{build_from_dir, tar_dir};
pub use imported::Imported;
pub(crate) use imported::Variant;

use crate::blobs::{BlobError, BlobStore};
use petrel_protocol::{validate_name, Digest, ImageManifest, InvalidName, SCHEMA};
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
    #[error("reading {file}: {source}")]
    ReadTarball { file: String, source: io::Error },
    #[error("{file} is neither a docker-save archive (manifest.json) nor an OCI image layout (oci-layout + index.json)")]
    UnknownFormat { file: String },
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
    #[error("the OCI index lists no image manifest this archive holds (attestations and platforms whose blobs are absent are skipped)")]
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
    #[error("layer {layer}: devices would refuse entry {entry:?}: {reason}")]
    Refused {
        layer: String,
        entry: String,
        reason: String,
    },
    #[error("cannot archive {path}: {reason}")]
    UnsupportedFile { path: PathBuf, reason: &'static str },
}

/// The two tarball formats `import_tarball` understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Oci,
    Docker,
}

/// Imports a `docker save` or OCI image-layout tarball (plain, gzip or
/// zstd) as image `name:tag`, storing its layers in `blobs`. `shown` names
/// the file in errors: the user's file name, not the spooled upload.
///
/// The format is told by its top-level files: `oci-layout` + `index.json`
/// is OCI (preferred, as Docker 25+ writes both and OCI carries digests for
/// everything), else `manifest.json` is docker-save.
pub fn import_tarball(
    path: &Path,
    shown: &str,
    name: &str,
    tag: &str,
    blobs: &BlobStore,
) -> Result<Imported, ImageError> {
    validate_name(name, 128)?;
    validate_name(tag, 128)?;
    let unpacked = extract::unpack(path, shown, &blobs.tmp_dir())?;
    let variants = match detect(&unpacked) {
        Some(Format::Oci) => oci::import(&unpacked, blobs)?,
        Some(Format::Docker) => vec![docker::import(&unpacked, blobs)?],
        None => return Err(ImageError::UnknownFormat { file: shown.into() }),
    };
    let manifests = variants
        .into_iter()
        .map(|v| manifest(name, tag, v))
        .collect();
    Imported::audit_variants(manifests, blobs)
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

fn manifest(name: &str, tag: &str, variant: Variant) -> ImageManifest {
    ImageManifest {
        schema: SCHEMA,
        name: name.to_string(),
        tag: tag.to_string(),
        layers: variant.layers,
        config: variant.config,
        platform: variant.platform,
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{self, store, tarball, TarEntry};
    use super::*;

    #[test]
    fn tarball_with_neither_format_is_a_clear_error() {
        let (dir, blobs) = store();
        let path = tarball(dir.path(), &[TarEntry::file("hello.txt", b"hi")]);
        let err = import_tarball(&path, "image.tar", "app", "1", &blobs).unwrap_err();
        assert!(matches!(err, ImageError::UnknownFormat { .. }), "{err}");
        assert!(err.to_string().contains("manifest.json"), "{err}");
        assert!(err.to_string().starts_with("image.tar is neither"), "{err}");
        assert!(!err.to_string().contains(&path.display().to_string()));
    }

    #[test]
    fn gzip_and_zstd_compressed_archives_import_like_plain_ones() {
        let (dir, blobs) = store();
        let layer = fixtures::layer_tar(&[("bin/app", b"#!/bin/sh\n")]);
        let entries =
            fixtures::docker_save(&[("abc/layer.tar", layer.clone())], &[Digest::of(&layer)]);
        let plain = std::fs::read(tarball(dir.path(), &entries)).unwrap();
        let forms = [
            ("app.tar.gz", fixtures::gzip(&plain)),
            ("app.tar.zst", zstd::encode_all(&plain[..], 3).unwrap()),
        ];
        for (shown, bytes) in forms {
            let path = dir.path().join(shown);
            std::fs::write(&path, bytes).unwrap();
            let image = import_tarball(&path, shown, "app", "1", &blobs)
                .unwrap()
                .image;
            assert_eq!(image.layers[0].diff_id, Digest::of(&layer), "{shown}");
        }
    }

    #[test]
    fn a_truncated_compressed_archive_is_an_error_naming_the_users_file() {
        let (dir, blobs) = store();
        let layer = fixtures::layer_tar(&[("bin/app", &[7u8; 50_000])]);
        let entries =
            fixtures::docker_save(&[("abc/layer.tar", layer.clone())], &[Digest::of(&layer)]);
        let plain = std::fs::read(tarball(dir.path(), &entries)).unwrap();
        let gz = fixtures::gzip(&plain);
        let path = dir.path().join("cut.tar.gz");
        std::fs::write(&path, &gz[..gz.len() / 2]).unwrap();
        let err = import_tarball(&path, "cut.tar.gz", "app", "1", &blobs).unwrap_err();
        assert!(err.to_string().contains("cut.tar.gz"), "{err}");
        assert_eq!(fixtures::stored_blobs(&blobs), 0);
    }

    #[test]
    fn import_with_an_invalid_name_or_tag_is_refused() {
        let (dir, blobs) = store();
        let path = tarball(dir.path(), &[]);
        assert!(matches!(
            import_tarball(&path, "image.tar", "../app", "1", &blobs),
            Err(ImageError::Name(_))
        ));
        assert!(matches!(
            import_tarball(&path, "image.tar", "app", "a/b", &blobs),
            Err(ImageError::Name(_))
        ));
    }

    #[test]
    fn import_leaves_no_scratch_files_behind() {
        let (dir, blobs) = store();
        let path = tarball(dir.path(), &[TarEntry::file("x", b"x")]);
        let _ = import_tarball(&path, "image.tar", "app", "1", &blobs);
        assert_eq!(std::fs::read_dir(blobs.tmp_dir()).unwrap().count(), 0);
    }

    /// A layer tar from `(name, type, mode, link)` entries, empty files.
    fn typed_layer(entries: &[(&str, tar::EntryType, u32, Option<&str>)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, kind, mode, link) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_mode(*mode);
            h.set_size(0);
            match link {
                Some(target) => builder.append_link(&mut h, name, target).unwrap(),
                None => builder.append_data(&mut h, name, &[][..]).unwrap(),
            }
        }
        builder.into_inner().unwrap()
    }

    #[test]
    fn import_reports_device_nodes_and_setuid_bits_devices_will_change() {
        let (dir, blobs) = store();
        use tar::EntryType::{Char, Directory, Regular};
        let layer = typed_layer(&[
            ("./dev/", Directory, 0o755, None),
            ("./dev/null", Char, 0o666, None),
            ("./dev/console", Char, 0o600, None),
            ("./bin/su", Regular, 0o4755, None),
        ]);
        let entries =
            fixtures::docker_save(&[("l/layer.tar", layer.clone())], &[Digest::of(&layer)]);
        let imported = import_tarball(
            &tarball(dir.path(), &entries),
            "image.tar",
            "base",
            "1",
            &blobs,
        )
        .unwrap();
        assert_eq!(imported.audit.devices_skipped, 2);
        assert_eq!(imported.audit.device_paths, ["dev/null", "dev/console"]);
        assert_eq!(imported.audit.setid_stripped, 1);
        assert_eq!(imported.audit.setid_paths, ["bin/su"]);
    }

    #[test]
    fn import_refuses_a_layer_devices_would_refuse_naming_layer_and_entry() {
        let (dir, blobs) = store();
        use tar::EntryType::{Regular, Symlink};
        let layer = typed_layer(&[
            ("etc", Symlink, 0o777, Some("/host-etc")),
            ("etc/passwd", Regular, 0o644, None),
        ]);
        let entries =
            fixtures::docker_save(&[("l/layer.tar", layer.clone())], &[Digest::of(&layer)]);
        let err = import_tarball(
            &tarball(dir.path(), &entries),
            "image.tar",
            "base",
            "1",
            &blobs,
        )
        .unwrap_err();
        assert!(matches!(err, ImageError::Refused { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("etc/passwd") && text.contains("layer 1 of 1"),
            "{text}"
        );
        assert!(text.contains(&Digest::of(&layer).to_string()), "{text}");
    }
}
