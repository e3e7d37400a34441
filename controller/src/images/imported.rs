//! An image as registered: its default variant, every platform variant of
//! a multi-platform image, and what devices will change in it.

use super::{audit, ImageError};
use crate::blobs::BlobStore;
use petrel_protocol::{AuditSummary, ImageConfig, ImageManifest, LayerDescriptor, Platform};

/// An image as registered, with what devices will change in it (device
/// nodes not created, setuid/setgid bits stripped): the import report.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Imported {
    /// The default variant: linux/amd64 if there is one, else the first.
    #[serde(flatten)]
    pub image: ImageManifest,
    /// Every platform variant, when the image has more than one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub variants: Vec<ImageManifest>,
    /// The default variant's report.
    #[serde(default)]
    pub audit: AuditSummary,
}

/// One platform variant as an importer found it.
pub(crate) struct Variant {
    pub layers: Vec<LayerDescriptor>,
    pub config: ImageConfig,
    pub platform: Option<Platform>,
}

impl Imported {
    /// Audits `image`'s layers (already in `blobs`); an entry devices
    /// would refuse is [`ImageError::Refused`], naming layer and entry.
    pub fn audit(image: ImageManifest, blobs: &BlobStore) -> Result<Imported, ImageError> {
        Imported::audit_variants(vec![image], blobs)
    }

    /// As [`Imported::audit`], for every platform variant of one image.
    pub fn audit_variants(
        mut variants: Vec<ImageManifest>,
        blobs: &BlobStore,
    ) -> Result<Imported, ImageError> {
        let default = variants.iter().position(is_linux_amd64).unwrap_or(0);
        let mut report = AuditSummary::default();
        for (i, image) in variants.iter().enumerate() {
            let on = image
                .platform
                .as_ref()
                .map_or(String::new(), |p| format!(", {p}"));
            let n = image.layers.len();
            let named = image
                .layers
                .iter()
                .enumerate()
                .map(|(k, l)| (l, format!("{} (layer {} of {n}{on})", l.diff_id, k + 1)));
            let summary = audit::audit_layers(blobs, named)?;
            if i == default {
                report = summary;
            }
        }
        let image = variants[default].clone();
        if variants.len() == 1 {
            variants.clear();
        }
        Ok(Imported {
            image,
            variants,
            audit: report,
        })
    }

    /// Every variant (the default one alone for a single-platform image).
    pub fn all_variants(&self) -> Vec<ImageManifest> {
        match self.variants.is_empty() {
            true => vec![self.image.clone()],
            false => self.variants.clone(),
        }
    }
}

fn is_linux_amd64(image: &ImageManifest) -> bool {
    image
        .platform
        .as_ref()
        .is_some_and(|p| p.os == "linux" && p.architecture == "amd64")
}
