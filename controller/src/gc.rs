//! Controller-side garbage collection: layer blobs, cached deltas and
//! cached path lists that no image or release references any more.
//!
//! Live means: a layer of a stored image or of a stored release (releases
//! embed their images, so a release keeps its layers even if the image
//! record went). A blob younger than `min_age` is kept whatever it is: it
//! may be a layer uploaded a moment ago whose image is not registered yet
//! (`POST /v1/layers` then `PUT /v1/images`). A delta's file names its two
//! diff_ids; it goes when either is dead.

use crate::blobs::BlobStore;
use crate::store::{Store, StoreError};
use petrel_protocol::Digest;
use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// What one collection removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GcReport {
    pub blobs: u64,
    pub blob_bytes: u64,
    pub deltas: u64,
    pub delta_bytes: u64,
    pub path_lists: u64,
}

/// The controller's cache directories.
#[derive(Debug, Clone, Copy)]
pub struct CacheDirs<'a> {
    pub deltas: &'a Path,
    pub paths: &'a Path,
}

/// The layers something still references.
#[derive(Debug, Default)]
pub struct Live {
    pub blobs: HashSet<Digest>,
    pub diff_ids: HashSet<Digest>,
}

impl Live {
    pub fn of(store: &Store) -> Result<Live, StoreError> {
        let mut live = Live::default();
        let images = store.images()?;
        let releases = store.releases()?;
        let release_images = releases
            .iter()
            .flat_map(|r| r.services.values().map(|s| &s.image));
        for image in images.iter().chain(release_images) {
            for layer in &image.layers {
                live.blobs.insert(layer.digest.clone());
                live.diff_ids.insert(layer.diff_id.clone());
            }
        }
        Ok(live)
    }
}

/// Removes what nothing references, and the store's dead layer records.
/// A dead blob goes when older than `min_age` or listed in `doomed` (the
/// layers of the image or release just deleted).
pub fn collect(
    store: &Store,
    blobs: &BlobStore,
    dirs: CacheDirs<'_>,
    min_age: Duration,
    doomed: &HashSet<Digest>,
) -> Result<GcReport, StoreError> {
    let live = Live::of(store)?;
    let mut report = GcReport::default();
    let now = SystemTime::now();
    for (digest, path) in blobs.list() {
        let old_enough = std::fs::metadata(&path)
            .and_then(|m| m.modified())
            .is_ok_and(|t| now.duration_since(t).unwrap_or_default() >= min_age);
        if !live.blobs.contains(&digest) && (old_enough || doomed.contains(&digest)) {
            report.blob_bytes += remove(&path);
            report.blobs += 1;
        }
    }
    for (path, ids) in named_files(dirs.deltas) {
        if ids.iter().any(|id| !live.diff_ids.contains(id)) {
            report.delta_bytes += remove(&path);
            report.deltas += 1;
        }
    }
    for (path, ids) in named_files(dirs.paths) {
        if ids.iter().any(|id| !live.diff_ids.contains(id)) {
            remove(&path);
            report.path_lists += 1;
        }
    }
    store.retain_layers(|diff_id| live.diff_ids.contains(diff_id))?;
    Ok(report)
}

/// Removes a file, returning its size (0 if it could not be removed).
fn remove(path: &Path) -> u64 {
    let size = std::fs::metadata(path).map_or(0, |m| m.len());
    match std::fs::remove_file(path) {
        Ok(()) => size,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "gc could not remove a file");
            0
        }
    }
}

/// Files of a cache directory with the digests their names start with
/// (`<hex>-<hex>.v1.patch`, `<hex>.json`); other files are left alone.
fn named_files(dir: &Path) -> Vec<(std::path::PathBuf, Vec<Digest>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let stem = name.split('.').next()?;
            let ids: Option<Vec<Digest>> =
                stem.split('-').map(|h| Digest::from_hex(h).ok()).collect();
            Some((e.path(), ids.filter(|ids| !ids.is_empty())?))
        })
        .collect()
}

#[cfg(test)]
mod tests;
