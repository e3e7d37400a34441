//! The OCI image layout: `oci-layout`, `index.json` and
//! `blobs/sha256/<hex>`. The index points to a manifest (or to one more
//! index: multi-platform images), the manifest to a config and layers.
//!
//! Every blob is checked against its descriptor's digest and size before it
//! is used, and every layer's computed `diff_id` against the config's
//! `rootfs.diff_ids`. A multi-platform index is imported whole: one variant
//! per platform. Attestation manifests (platform `unknown/unknown`) and
//! manifests whose blobs the archive does not hold (`docker save` of a
//! multi-platform image keeps only the local platform's) are skipped.

use super::config::{check_layer_count, json, parse_config, read_small};
use super::extract::Unpacked;
use super::layers::{decompressed, store_layer, verify_bytes, verify_file, Compression};
use super::{ImageError, Variant};
use crate::blobs::BlobStore;
use petrel_protocol::{Digest, LayerDescriptor};
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
    #[serde(default)]
    variant: Option<String>,
}

impl Platform {
    fn to_protocol(&self) -> petrel_protocol::Platform {
        petrel_protocol::Platform {
            os: self.os.clone(),
            architecture: self.architecture.clone(),
            variant: self.variant.clone().filter(|v| !v.is_empty()),
        }
    }
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

/// Imports every platform variant `index.json` points to.
pub(crate) fn import(src: &Unpacked, blobs: &BlobStore) -> Result<Vec<Variant>, ImageError> {
    let _: Layout = json(
        &read_small(&src.resolve("oci-layout")?, "oci-layout")?,
        "oci-layout",
    )?;
    let index: Document = json(
        &read_small(&src.resolve("index.json")?, "index.json")?,
        "index.json",
    )?;
    let manifests = find_manifests(src, index.manifests.unwrap_or_default(), 0)?;
    if manifests.is_empty() {
        return Err(ImageError::NoManifest);
    }
    manifests
        .into_iter()
        .map(|(digest, manifest, platform)| import_variant(src, blobs, digest, manifest, platform))
        .collect()
}

fn import_variant(
    src: &Unpacked,
    blobs: &BlobStore,
    digest: Digest,
    manifest: Document,
    platform: Option<petrel_protocol::Platform>,
) -> Result<Variant, ImageError> {
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
    Ok(Variant {
        layers,
        config: parsed.config,
        // the config says what the binaries are; the index may say more
        platform: parsed.platform.or(platform),
    })
}

/// A manifest the archive holds: digest, document, platform from the index.
type Found = (Digest, Document, Option<petrel_protocol::Platform>);

/// Follows index entries to image manifests, through at most one nested
/// index. Attestations and manifests whose blob is absent are skipped.
fn find_manifests(
    src: &Unpacked,
    entries: Vec<Descriptor>,
    depth: usize,
) -> Result<Vec<Found>, ImageError> {
    let mut found = Vec::new();
    for desc in entries {
        let platform = desc.platform.as_ref().map(Platform::to_protocol);
        if platform.as_ref().is_some_and(|p| p.os == "unknown") {
            continue; // buildx attestation (SBOM, provenance)
        }
        let bytes = match read_blob(src, &desc) {
            Err(ImageError::Missing { .. }) => continue,
            other => other?,
        };
        let doc: Document = json(&bytes, &blob_name(&desc.digest))?;
        match doc.manifests {
            None => found.push((desc.digest, doc, platform)),
            Some(_) if depth > 0 => {
                return Err(ImageError::NestedIndex {
                    digest: desc.digest,
                })
            }
            Some(nested) => found.extend(find_manifests(src, nested, depth + 1)?),
        }
    }
    Ok(found)
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
        docker_config, gzip, import_entries, layer_tar, store, stored_blobs, TarEntry,
    };
    use super::super::ImageError;
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
        let image = import_entries(dir.path(), &entries, "web", "2", &blobs)
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
        let image = import_entries(dir.path(), &entries, "web", "2", &blobs)
            .unwrap()
            .image;
        assert_eq!(image.layers[0].diff_id, Digest::of(&tar));
    }

    #[test]
    fn oci_multi_platform_index_imports_every_variant_and_skips_attestations() {
        let (dir, blobs) = store();
        let amd = layer_tar(&[("a", b"amd64")]);
        let arm = layer_tar(&[("a", b"arm64 binary")]);
        let entries = layout(&amd, &Digest::of(&amd), |entries, mut desc| {
            desc["platform"] = json!({"os": "linux", "architecture": "amd64"});
            let mut config: serde_json::Value =
                serde_json::from_slice(&docker_config(&[Digest::of(&arm)])).unwrap();
            config["architecture"] = json!("arm64");
            let config = blob(
                entries,
                "application/vnd.oci.image.config.v1+json",
                config.to_string().as_bytes(),
            );
            let layer = blob(entries, GZIP_LAYER, &gzip(&arm));
            let manifest =
                json!({"schemaVersion": 2, "config": config, "layers": [layer]}).to_string();
            let mut arm_desc = blob(
                entries,
                "application/vnd.oci.image.manifest.v1+json",
                manifest.as_bytes(),
            );
            arm_desc["platform"] = json!({"os": "linux", "architecture": "arm64"});
            let mut attestation = desc.clone();
            attestation["platform"] = json!({"os": "unknown", "architecture": "unknown"});
            json!({"schemaVersion": 2, "manifests": [arm_desc, desc, attestation]})
        });
        let imported = import_entries(dir.path(), &entries, "web", "2", &blobs).unwrap();
        assert_eq!(imported.variants.len(), 2, "the attestation is skipped");
        let platforms: Vec<String> = imported
            .variants
            .iter()
            .map(|v| v.platform.as_ref().unwrap().to_string())
            .collect();
        assert_eq!(platforms, ["linux/arm64", "linux/amd64"]);
        // the default variant is linux/amd64
        assert_eq!(imported.image.layers[0].diff_id, Digest::of(&amd));
        assert_eq!(imported.variants[0].layers[0].diff_id, Digest::of(&arm));
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
        let err = import_entries(dir.path(), &entries, "web", "2", &blobs).unwrap_err();
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
        let err = import_entries(dir.path(), &entries, "web", "2", &blobs).unwrap_err();
        assert!(matches!(err, ImageError::DiffIdMismatch { .. }), "{err}");
        assert!(err.to_string().contains(&claimed.to_string()), "{err}");
    }
}
