//! The OCI image layout: `oci-layout`, `index.json` and
//! `blobs/sha256/<hex>`. The index points to a manifest (or to one more
//! index: multi-platform images), the manifest to a config and layers.
//!
//! Every blob is checked against its descriptor's digest and size before it
//! is used, and every layer's computed `diff_id` against the config's
//! `rootfs.diff_ids`. Among several manifests, linux/amd64 is picked, else
//! the first.

use super::config::{check_layer_count, json, parse_config, read_small};
use super::extract::Unpacked;
use super::layers::{decompressed, store_layer, verify_bytes, verify_file, Compression};
use super::ImageError;
use crate::blobs::BlobStore;
use petrel_protocol::{Digest, ImageConfig, LayerDescriptor};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    #[serde(default)]
    media_type: String,
    digest: Digest,
    size: u64,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Debug, Clone, Deserialize)]
struct Platform {
    architecture: String,
    os: String,
}

/// An index or a manifest: told apart by which fields are present, since
/// `mediaType` is optional inside the documents themselves.
#[derive(Deserialize)]
struct Document {
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Layout {
    #[allow(dead_code)] // required to be present; its value is not used
    image_layout_version: String,
}

/// Imports the image an unpacked OCI layout's `index.json` points to.
pub(crate) fn import(
    src: &Unpacked,
    blobs: &BlobStore,
) -> Result<(Vec<LayerDescriptor>, ImageConfig), ImageError> {
    let _: Layout = json(
        &read_small(&src.resolve("oci-layout")?, "oci-layout")?,
        "oci-layout",
    )?;
    let index: Document = json(
        &read_small(&src.resolve("index.json")?, "index.json")?,
        "index.json",
    )?;
    let (digest, manifest) = find_manifest(src, index)?;
    let config_desc = manifest.config.ok_or(ImageError::NotAManifest { digest })?;
    let config_name = blob_name(&config_desc.digest);
    let parsed = parse_config(&read_blob(src, &config_desc)?, &config_name)?;
    check_layer_count(&parsed, manifest.layers.len())?;
    let expected = parsed.diff_ids.as_deref().unwrap_or_default();
    let layers = manifest
        .layers
        .iter()
        .enumerate()
        .map(|(i, layer)| import_layer(src, blobs, layer, expected.get(i)))
        .collect::<Result<_, _>>()?;
    Ok((layers, parsed.config))
}

/// Follows `index.json` to an image manifest, through at most one nested
/// index; returns the manifest's digest and document.
fn find_manifest(src: &Unpacked, index: Document) -> Result<(Digest, Document), ImageError> {
    let desc = pick(index.manifests.unwrap_or_default())?;
    let doc: Document = json(&read_blob(src, &desc)?, &blob_name(&desc.digest))?;
    let Some(nested) = doc.manifests else {
        return Ok((desc.digest, doc));
    };
    let desc = pick(nested)?;
    let doc: Document = json(&read_blob(src, &desc)?, &blob_name(&desc.digest))?;
    match doc.manifests {
        Some(_) => Err(ImageError::NestedIndex {
            digest: desc.digest,
        }),
        None => Ok((desc.digest, doc)),
    }
}

/// linux/amd64 if listed, else the first manifest.
fn pick(manifests: Vec<Descriptor>) -> Result<Descriptor, ImageError> {
    let is_amd64 = |d: &Descriptor| {
        d.platform
            .as_ref()
            .is_some_and(|p| p.os == "linux" && p.architecture == "amd64")
    };
    let chosen = manifests.iter().position(is_amd64).unwrap_or(0);
    manifests
        .into_iter()
        .nth(chosen)
        .ok_or(ImageError::NoManifest)
}

fn blob_name(digest: &Digest) -> String {
    format!("blobs/sha256/{}", digest.hex())
}

/// Reads a small blob (index, manifest, config), checked against `desc`.
fn read_blob(src: &Unpacked, desc: &Descriptor) -> Result<Vec<u8>, ImageError> {
    let name = blob_name(&desc.digest);
    let bytes = read_small(&src.resolve(&name)?, &name)?;
    if bytes.len() as u64 != desc.size {
        return Err(ImageError::BlobSizeMismatch {
            entry: name,
            digest: desc.digest.clone(),
            expected: desc.size,
            actual: bytes.len() as u64,
        });
    }
    verify_bytes(&bytes, &name, &desc.digest)?;
    Ok(bytes)
}

fn import_layer(
    src: &Unpacked,
    blobs: &BlobStore,
    desc: &Descriptor,
    expected: Option<&Digest>,
) -> Result<LayerDescriptor, ImageError> {
    let compression = Compression::from_media_type(&desc.media_type).ok_or_else(|| {
        ImageError::UnsupportedMediaType {
            digest: desc.digest.clone(),
            media_type: desc.media_type.clone(),
        }
    })?;
    let name = blob_name(&desc.digest);
    let (path, file) = src.open(&name)?;
    // Checked before use, in a first pass: nothing unverified is stored.
    verify_file(&path, &name, &desc.digest, Some(desc.size))?;
    let tar = decompressed(file, compression).map_err(|source| ImageError::Io { path, source })?;
    store_layer(blobs, tar, expected, &desc.digest.to_string())
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{
        docker_config, gzip, layer_tar, store, stored_blobs, tarball, TarEntry,
    };
    use super::super::{import_tarball, ImageError};
    use super::*;
    use serde_json::json;

    const GZIP_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

    /// Adds a blob to `entries` and returns its descriptor JSON.
    fn blob(entries: &mut Vec<TarEntry>, media_type: &str, bytes: &[u8]) -> serde_json::Value {
        let digest = Digest::of(bytes);
        entries.push(TarEntry::file(&blob_name(&digest), bytes));
        json!({"mediaType": media_type, "digest": digest.to_string(), "size": bytes.len()})
    }

    /// An OCI layout with one gzip layer; `index` wraps the manifest
    /// descriptor into the top-level index.
    fn layout(
        layer: &[u8],
        diff_id: &Digest,
        index: impl Fn(&mut Vec<TarEntry>, serde_json::Value) -> serde_json::Value,
    ) -> Vec<TarEntry> {
        let mut entries = vec![TarEntry::file(
            "oci-layout",
            br#"{"imageLayoutVersion": "1.0.0"}"#,
        )];
        let config = blob(
            &mut entries,
            "application/vnd.oci.image.config.v1+json",
            &docker_config(std::slice::from_ref(diff_id)),
        );
        let layer = blob(&mut entries, GZIP_LAYER, &gzip(layer));
        let manifest = json!({"schemaVersion": 2, "config": config, "layers": [layer]}).to_string();
        let desc = blob(
            &mut entries,
            "application/vnd.oci.image.manifest.v1+json",
            manifest.as_bytes(),
        );
        let top = index(&mut entries, desc);
        entries.push(TarEntry::file("index.json", top.to_string().as_bytes()));
        entries
    }

    fn plain_index(_: &mut Vec<TarEntry>, desc: serde_json::Value) -> serde_json::Value {
        json!({"schemaVersion": 2, "manifests": [desc]})
    }

    #[test]
    fn oci_layout_with_gzip_layer_imports_with_the_uncompressed_diff_id() {
        let (dir, blobs) = store();
        let tar = layer_tar(&[("srv/index.html", b"<h1>hi</h1>")]);
        let entries = layout(&tar, &Digest::of(&tar), plain_index);
        let image = import_tarball(
            &tarball(dir.path(), &entries),
            "image.tar",
            "web",
            "2",
            &blobs,
        )
        .unwrap()
        .image;
        assert_eq!(image.layers.len(), 1);
        assert_eq!(image.layers[0].diff_id, Digest::of(&tar));
        assert_eq!(image.config.entrypoint, ["/bin/app"]);
        let stored = zstd::decode_all(blobs.open_blob(&image.layers[0].digest).unwrap()).unwrap();
        assert_eq!(stored, tar);
    }

    #[test]
    fn oci_nested_index_is_followed_to_the_linux_amd64_manifest() {
        let (dir, blobs) = store();
        let tar = layer_tar(&[("a", b"amd64")]);
        let entries = layout(&tar, &Digest::of(&tar), |entries, mut desc| {
            desc["platform"] = json!({"os": "linux", "architecture": "amd64"});
            let arm = json!({"mediaType": "x", "digest": Digest::of(b"arm").to_string(), "size": 3,
                             "platform": {"os": "linux", "architecture": "arm64"}});
            let nested = json!({"schemaVersion": 2, "manifests": [arm, desc]}).to_string();
            let nested = blob(
                entries,
                "application/vnd.oci.image.index.v1+json",
                nested.as_bytes(),
            );
            json!({"schemaVersion": 2, "manifests": [nested]})
        });
        let image = import_tarball(
            &tarball(dir.path(), &entries),
            "image.tar",
            "web",
            "2",
            &blobs,
        )
        .unwrap()
        .image;
        assert_eq!(image.layers[0].diff_id, Digest::of(&tar));
    }

    #[test]
    fn oci_blob_with_wrong_digest_is_rejected_naming_the_digest() {
        let (dir, blobs) = store();
        let tar = layer_tar(&[("a", b"a")]);
        let mut entries = layout(&tar, &Digest::of(&tar), plain_index);
        let layer = entries
            .iter_mut()
            .find(|e| e.data.starts_with(&[0x1f, 0x8b]))
            .unwrap();
        let digest = layer.name.trim_start_matches("blobs/sha256/").to_string();
        let crc = layer.data.len() - 8; // the gzip CRC: same size, other bytes
        layer.data[crc] ^= 0xff;
        let err = import_tarball(
            &tarball(dir.path(), &entries),
            "image.tar",
            "web",
            "2",
            &blobs,
        )
        .unwrap_err();
        assert!(
            matches!(err, ImageError::BlobDigestMismatch { .. }),
            "{err}"
        );
        assert!(err.to_string().contains(&digest), "{err}");
        assert_eq!(stored_blobs(&blobs), 0);
    }

    #[test]
    fn oci_layer_with_wrong_diff_id_is_rejected_naming_the_digest() {
        let (dir, blobs) = store();
        let tar = layer_tar(&[("a", b"a")]);
        let claimed = Digest::of(b"another tar");
        let entries = layout(&tar, &claimed, plain_index);
        let err = import_tarball(
            &tarball(dir.path(), &entries),
            "image.tar",
            "web",
            "2",
            &blobs,
        )
        .unwrap_err();
        assert!(matches!(err, ImageError::DiffIdMismatch { .. }), "{err}");
        assert!(err.to_string().contains(&claimed.to_string()), "{err}");
    }
}
