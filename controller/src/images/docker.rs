//! The `docker save` tarball: `manifest.json` at the top,
//! `[{"Config": "<hex>.json", "RepoTags": [...], "Layers": [...]}]`.
//!
//! Docker 20.10 writes `<id>/layer.tar` (uncompressed; a layer saved twice
//! is a symlink to the first copy) and names the config after its sha256;
//! Docker 25+ writes `blobs/sha256/<hex>` paths (possibly gzip'd). Where a
//! file name carries a digest it is checked, and every layer's computed
//! `diff_id` is checked against the config's `rootfs.diff_ids`.

use super::config::{check_layer_count, json, parse_config, read_small};
use super::extract::Unpacked;
use super::layers::{sniffed, store_layer, verify_bytes, verify_file};
use super::{ImageError, Variant};
use crate::blobs::BlobStore;
use petrel_protocol::{Digest, LayerDescriptor};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Entry {
    config: String,
    layers: Vec<String>,
}

/// Imports the one image of an unpacked docker-save tarball.
pub(crate) fn import(src: &Unpacked, blobs: &BlobStore) -> Result<Variant, ImageError> {
    let entry = read_manifest(src)?;
    let config_bytes = read_small(&src.resolve(&entry.config)?, &entry.config)?;
    if let Some(expected) = digest_in_name(&entry.config) {
        verify_bytes(&config_bytes, &entry.config, &expected)?;
    }
    let parsed = parse_config(&config_bytes, &entry.config)?;
    check_layer_count(&parsed, entry.layers.len())?;
    let expected = parsed.diff_ids.as_deref().unwrap_or_default();
    let layers = entry
        .layers
        .iter()
        .enumerate()
        .map(|(i, name)| import_layer(src, blobs, name, expected.get(i)))
        .collect::<Result<_, _>>()?;
    Ok(Variant {
        layers,
        config: parsed.config,
        platform: parsed.platform,
    })
}

fn read_manifest(src: &Unpacked) -> Result<Entry, ImageError> {
    let name = "manifest.json";
    let mut entries: Vec<Entry> = json(&read_small(&src.resolve(name)?, name)?, name)?;
    match entries.len() {
        1 => Ok(entries.remove(0)),
        found => Err(ImageError::ImageCount { found }),
    }
}

fn import_layer(
    src: &Unpacked,
    blobs: &BlobStore,
    name: &str,
    expected: Option<&Digest>,
) -> Result<LayerDescriptor, ImageError> {
    let (path, file) = src.open(name)?;
    if let Some(digest) = digest_in_name(name) {
        verify_file(&path, name, &digest, None)?;
    }
    store_layer(blobs, sniffed(file, &path)?, expected, name)
}

/// The digest a member's name states: `blobs/sha256/<hex>` (Docker 25+) or
/// a top-level `<hex>.json` config (the image id is the config's sha256).
fn digest_in_name(name: &str) -> Option<Digest> {
    let hex = match name.strip_prefix("blobs/sha256/") {
        Some(hex) => hex,
        None => name.strip_suffix(".json").filter(|h| !h.contains('/'))?,
    };
    Digest::from_hex(hex).ok()
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{docker_save, gzip, import_entries, layer_tar, store, TarEntry};
    use super::super::ImageError;
    use super::*;

    #[test]
    fn docker_save_tarball_imports_with_its_config_and_layer_diff_id() {
        let (dir, blobs) = store();
        let layer = layer_tar(&[("bin/app", b"#!/bin/sh\n")]);
        let entries = docker_save(&[("abc/layer.tar", layer.clone())], &[Digest::of(&layer)]);
        let image = import_entries(dir.path(), &entries, "app", "1", &blobs)
            .unwrap()
            .image;
        assert_eq!((image.name.as_str(), image.tag.as_str()), ("app", "1"));
        assert_eq!(image.layers.len(), 1);
        assert_eq!(image.layers[0].diff_id, Digest::of(&layer));
        assert!(blobs.has(&image.layers[0].digest));
        assert_eq!(image.config.entrypoint, ["/bin/app"]);
        assert_eq!(image.config.env, ["PATH=/bin"]);
        assert_eq!(image.config.working_dir.as_deref(), Some("/srv"));
        assert_eq!(image.config.exposed_ports, ["8080/tcp"]);
    }

    #[test]
    fn docker_save_gzip_layers_and_symlinked_duplicates_import() {
        let (dir, blobs) = store();
        let layer = layer_tar(&[("etc/motd", b"hi\n")]);
        let mut entries = docker_save(
            &[("a/layer.tar", gzip(&layer)), ("b/layer.tar", vec![])],
            &[Digest::of(&layer), Digest::of(&layer)],
        );
        entries.pop(); // b/layer.tar becomes a link to a's copy, as docker 20.10 writes it
        entries.push(TarEntry::symlink("b/layer.tar", "../a/layer.tar"));
        let image = import_entries(dir.path(), &entries, "app", "1", &blobs)
            .unwrap()
            .image;
        assert_eq!(image.layers[0], image.layers[1]);
        assert_eq!(image.layers[0].diff_id, Digest::of(&layer));
    }

    #[test]
    fn docker_save_layer_with_wrong_diff_id_is_rejected_naming_the_digest() {
        let (dir, blobs) = store();
        let layer = layer_tar(&[("a", b"a")]);
        let claimed = Digest::of(b"something else");
        let entries = docker_save(&[("abc/layer.tar", layer)], std::slice::from_ref(&claimed));
        let err = import_entries(dir.path(), &entries, "app", "1", &blobs).unwrap_err();
        assert!(matches!(err, ImageError::DiffIdMismatch { .. }), "{err}");
        assert!(err.to_string().contains(&claimed.to_string()), "{err}");
        assert!(err.to_string().contains("abc/layer.tar"), "{err}");
    }

    #[test]
    fn docker_save_config_not_matching_its_digest_name_is_rejected() {
        let (dir, blobs) = store();
        let layer = layer_tar(&[("a", b"a")]);
        let mut entries = docker_save(&[("abc/layer.tar", layer.clone())], &[Digest::of(&layer)]);
        let bogus = Digest::of(b"not the config");
        entries[1].name = format!("{}.json", bogus.hex());
        let manifest =
            serde_json::json!([{"Config": entries[1].name, "Layers": ["abc/layer.tar"]}]);
        entries[0] = TarEntry::file("manifest.json", manifest.to_string().as_bytes());
        let err = import_entries(dir.path(), &entries, "app", "1", &blobs).unwrap_err();
        assert!(
            matches!(err, ImageError::BlobDigestMismatch { .. }),
            "{err}"
        );
        assert!(err.to_string().contains(&bogus.to_string()), "{err}");
    }

    #[test]
    fn docker_manifest_naming_a_file_outside_the_archive_is_refused() {
        let (dir, blobs) = store();
        let manifest = br#"[{"Config": "../../etc/passwd", "Layers": []}]"#;
        let entries = [TarEntry::file("manifest.json", manifest)];
        let err = import_entries(dir.path(), &entries, "app", "1", &blobs).unwrap_err();
        assert!(matches!(err, ImageError::UnsafeEntry { .. }), "{err}");
    }
}
