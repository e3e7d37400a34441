//! A multi-platform OCI image layout directory built by hand, as `docker
//! buildx --output type=oci` or `skopeo copy --all` would lay it out: one
//! manifest per platform under an index, plus a buildx-style attestation
//! manifest (platform `unknown/unknown`) that importers must skip.

use anyhow::Result;
use petrel_protocol::Digest;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// One platform of the image: its `OS/ARCH[/VARIANT]` and the directory
/// that becomes its single layer.
pub struct PlatformVariant<'a> {
    pub platform: &'a str,
    pub dir: PathBuf,
}

/// Writes `blob` under `blobs/sha256/` and returns its descriptor.
fn blob(root: &Path, media_type: &str, bytes: &[u8]) -> Result<Value> {
    let digest = Digest::of(bytes);
    std::fs::write(root.join("blobs/sha256").join(digest.hex()), bytes)?;
    Ok(json!({"mediaType": media_type, "digest": digest.to_string(), "size": bytes.len()}))
}

fn platform_json(platform: &str) -> Value {
    let parts: Vec<&str> = platform.split('/').collect();
    let mut p = json!({"os": parts[0], "architecture": parts[1]});
    if let Some(v) = parts.get(2) {
        p["variant"] = json!(v);
    }
    p
}

/// An OCI layout directory at `dest` holding every variant, each running
/// `entrypoint`.
pub fn oci_layout_dir(
    dest: &Path,
    variants: &[PlatformVariant],
    entrypoint: &str,
) -> Result<PathBuf> {
    std::fs::create_dir_all(dest.join("blobs/sha256"))?;
    std::fs::write(
        dest.join("oci-layout"),
        br#"{"imageLayoutVersion": "1.0.0"}"#,
    )?;
    let mut manifests = Vec::new();
    for v in variants {
        let mut layer = Vec::new();
        petrel_controller::images::tar_dir(&v.dir, &mut layer)?;
        let mut config = platform_json(v.platform);
        config["config"] = json!({"Entrypoint": [entrypoint], "WorkingDir": "/app"});
        config["rootfs"] = json!({"type": "layers", "diff_ids": [Digest::of(&layer).to_string()]});
        let config = blob(
            dest,
            "application/vnd.oci.image.config.v1+json",
            config.to_string().as_bytes(),
        )?;
        let layer = blob(dest, "application/vnd.oci.image.layer.v1.tar", &layer)?;
        let manifest = json!({"schemaVersion": 2, "config": config, "layers": [layer]});
        let mut desc = blob(
            dest,
            "application/vnd.oci.image.manifest.v1+json",
            manifest.to_string().as_bytes(),
        )?;
        desc["platform"] = platform_json(v.platform);
        manifests.push(desc);
    }
    // an attestation as buildx adds it: not an image to run
    let mut attestation = manifests[0].clone();
    attestation["platform"] = json!({"os": "unknown", "architecture": "unknown"});
    manifests.push(attestation);
    let index = json!({"schemaVersion": 2, "manifests": manifests});
    std::fs::write(dest.join("index.json"), index.to_string())?;
    Ok(dest.to_path_buf())
}
