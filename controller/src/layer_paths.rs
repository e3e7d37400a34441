//! The regular files of a layer, with their sizes, read once from its
//! blob (headers only) and cached on disk. Devices get the paths
//! (`GET /v1/layers/{diff_id}/paths`), so one that holds no layer at the
//! same position can still pick a delta base: the held layer sharing the
//! most paths. The controller uses the sizes too, to judge whether a
//! delta between two layers can pay off before it encodes one.

use crate::blobs::BlobStore;
use crate::store::Store;
use petrel_protocol::Digest;
use std::io::Read;
use std::path::{Path, PathBuf};

/// One regular file of a layer: its relative path (without `./`) and size.
pub type LayerFile = (String, u64);

/// Regular-file paths of the layer `diff_id`, relative, without `./`.
pub fn layer_paths(
    store: &Store,
    blobs: &BlobStore,
    cache_dir: &Path,
    diff_id: &Digest,
) -> Result<Option<Vec<String>>, String> {
    let files = layer_files(store, blobs, cache_dir, diff_id)?;
    Ok(files.map(|f| f.into_iter().map(|(path, _)| path).collect()))
}

/// Regular files of the layer `diff_id` and their sizes; `None` if the
/// layer is unknown.
pub fn layer_files(
    store: &Store,
    blobs: &BlobStore,
    cache_dir: &Path,
    diff_id: &Digest,
) -> Result<Option<Vec<LayerFile>>, String> {
    let cached = cache_dir.join(format!("{}.files.json", diff_id.hex()));
    if let Ok(bytes) = std::fs::read(&cached) {
        if let Ok(files) = serde_json::from_slice(&bytes) {
            return Ok(Some(files));
        }
    }
    let Some(layer) = store.layer(diff_id).map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let blob = blobs.open_blob(&layer.digest).map_err(|e| e.to_string())?;
    let dec = zstd::stream::read::Decoder::new(blob).map_err(|e| e.to_string())?;
    let files = regular_files(dec).map_err(|e| format!("reading layer {diff_id}: {e}"))?;
    std::fs::create_dir_all(cache_dir).map_err(|e| e.to_string())?;
    // a temp file of its own: two callers may list one layer at once
    let mut tmp = tempfile::NamedTempFile::new_in(cache_dir).map_err(|e| e.to_string())?;
    std::io::Write::write_all(&mut tmp, &serde_json::to_vec(&files).unwrap_or_default())
        .map_err(|e| e.to_string())?;
    tmp.persist(&cached).map_err(|e| e.to_string())?;
    Ok(Some(files))
}

fn regular_files(tar: impl Read) -> std::io::Result<Vec<LayerFile>> {
    let mut archive = tar::Archive::new(tar);
    let mut out = Vec::new();
    for entry in archive.entries()? {
        let entry = entry?;
        if entry.header().entry_type().is_file() {
            let path: PathBuf = entry.path()?.components().collect();
            out.push((path.to_string_lossy().into_owned(), entry.size()));
        }
    }
    Ok(out)
}
