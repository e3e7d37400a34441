//! `GET /v1/layers/{diff_id}/paths`: the regular-file paths of a layer, so
//! a device that holds no layer at the same position can still pick a
//! delta base: the held layer sharing the most paths. Computed once per
//! layer from its blob (headers only) and cached on disk.

use crate::blobs::BlobStore;
use crate::store::Store;
use petrel_protocol::Digest;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Regular-file paths of the layer `diff_id`, relative, without `./`.
pub fn layer_paths(
    store: &Store,
    blobs: &BlobStore,
    cache_dir: &Path,
    diff_id: &Digest,
) -> Result<Option<Vec<String>>, String> {
    let cached = cache_dir.join(format!("{}.json", diff_id.hex()));
    if let Ok(bytes) = std::fs::read(&cached) {
        if let Ok(paths) = serde_json::from_slice(&bytes) {
            return Ok(Some(paths));
        }
    }
    let Some(layer) = store.layer(diff_id).map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let blob = blobs.open_blob(&layer.digest).map_err(|e| e.to_string())?;
    let dec = zstd::stream::read::Decoder::new(blob).map_err(|e| e.to_string())?;
    let paths = regular_files(dec).map_err(|e| format!("reading layer {diff_id}: {e}"))?;
    std::fs::create_dir_all(cache_dir).map_err(|e| e.to_string())?;
    let tmp = cache_dir.join(format!("{}.tmp", diff_id.hex()));
    std::fs::write(&tmp, serde_json::to_vec(&paths).unwrap_or_default())
        .map_err(|e| e.to_string())?;
    std::fs::rename(&tmp, &cached).map_err(|e| e.to_string())?;
    Ok(Some(paths))
}

fn regular_files(tar: impl Read) -> std::io::Result<Vec<String>> {
    let mut archive = tar::Archive::new(tar);
    let mut out = Vec::new();
    for entry in archive.entries()? {
        let entry = entry?;
        if entry.header().entry_type().is_file() {
            let path: PathBuf = entry.path()?.components().collect();
            out.push(path.to_string_lossy().into_owned());
        }
    }
    Ok(out)
}
