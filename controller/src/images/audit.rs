//! The import-time audit: every stored layer is read back and run through
//! the devices' own entry rules (`petrel_protocol::layer_policy`), so an
//! image a device would refuse never reaches a release, and what devices
//! will change (device nodes not created, setuid/setgid bits stripped) is
//! told to the operator at import instead of found on the device.

use super::ImageError;
use crate::blobs::BlobStore;
use petrel_protocol::layer_policy::{AuditSummary, EntryKind, LayerAudit};
use petrel_protocol::LayerDescriptor;
use std::io::{self, Read};

/// Audits each layer of an image (named for errors by `names`, in order)
/// and returns the image's total.
pub(crate) fn audit_layers<'a>(
    blobs: &BlobStore,
    layers: impl IntoIterator<Item = (&'a LayerDescriptor, String)>,
) -> Result<AuditSummary, ImageError> {
    let mut total = AuditSummary::default();
    for (layer, name) in layers {
        total.absorb(&audit_layer(blobs, layer, &name)?);
    }
    Ok(total)
}

/// Runs one stored layer through the devices' rules (setuid/setgid not
/// allowed: the strict default, so the summary counts what is stripped).
pub fn audit_layer(
    blobs: &BlobStore,
    layer: &LayerDescriptor,
    name: &str,
) -> Result<AuditSummary, ImageError> {
    let path = blobs.path(&layer.digest);
    let io_err = |source: io::Error| ImageError::Io {
        path: path.clone(),
        source,
    };
    let file = blobs.open_blob(&layer.digest)?;
    let decoder = zstd::stream::read::Decoder::new(file).map_err(io_err)?;
    let mut archive = tar::Archive::new(decoder);
    let mut audit = LayerAudit::new(false);
    for entry in archive.entries().map_err(io_err)? {
        let entry = entry.map_err(io_err)?;
        check_entry(&mut audit, &entry).map_err(|(entry, reason)| ImageError::Refused {
            layer: name.to_string(),
            entry,
            reason,
        })?;
    }
    Ok(audit.summary().clone())
}

/// One entry: `Err((entry, reason))` when devices would refuse the layer.
fn check_entry(
    audit: &mut LayerAudit,
    entry: &tar::Entry<impl Read>,
) -> Result<(), (String, String)> {
    let header = entry.header();
    let raw = entry.path().map_err(|e| (String::new(), e.to_string()))?;
    let shown = raw.display().to_string();
    if header.entry_type().is_pax_global_extensions() {
        return Ok(());
    }
    let kind = EntryKind::from_typeflag(header.entry_type().as_byte());
    let link = match kind {
        EntryKind::Symlink | EntryKind::HardLink => entry
            .link_name()
            .map_err(|e| (shown.clone(), e.to_string()))?,
        _ => None,
    };
    let treatment = audit
        .admit(&raw, &kind, link.as_deref())
        .map_err(|reason| (shown.clone(), reason))?;
    if let petrel_protocol::Treatment::Create(rel) = treatment {
        let mode = header.mode().map_err(|e| (shown, e.to_string()))?;
        audit.mode(&rel, mode);
    }
    Ok(())
}
