//! Garbage collection after an update: keeps the layers, layer copies
//! (delta bases) and root filesystems that the current and the previous
//! release need (the previous one for rollback), and removes the rest,
//! along with abandoned partial downloads. The disk preflight runs it too,
//! keeping the release to install as well.

use crate::apply::Paths;
use petrel_protocol::ReleaseManifest;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};

/// What one collection removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Collected {
    pub layers: usize,
    pub bases: usize,
    pub rootfs: usize,
    pub partials: usize,
}

/// Removes everything `keep` does not need. Blocking.
pub fn collect(paths: &Paths, keep: &[ReleaseManifest]) -> Collected {
    collect_until(paths, keep, &AtomicBool::new(false))
}

/// [`collect`], stopping before the next removal once `stop` is set (an
/// update needs the disk and the files: the collection yields to it).
pub fn collect_until(paths: &Paths, keep: &[ReleaseManifest], stop: &AtomicBool) -> Collected {
    let services: Vec<&petrel_protocol::ServiceSpec> =
        keep.iter().flat_map(|r| r.services.values()).collect();
    let diff_ids: HashSet<String> = keep
        .iter()
        .flat_map(|r| r.layers())
        .map(|l| l.diff_id.hex().to_string())
        .collect();
    let setid_ids: HashSet<String> = services
        .iter()
        .filter(|s| s.allow_setid)
        .flat_map(|s| &s.image.layers)
        .map(|l| l.diff_id.hex().to_string())
        .collect();
    let image_ids: HashSet<String> = services
        .iter()
        .map(|s| crate::apply::rootfs_name(s))
        .collect();
    let mut done = Collected::default();
    for (store, live) in [
        (&paths.layers, &diff_ids),
        (&paths.setid_layers, &setid_ids),
    ] {
        for d in store.list() {
            if stopped(stop) {
                break;
            }
            if !live.contains(d.hex()) && store.remove(&d).is_ok() {
                done.layers += 1;
            }
        }
    }
    done.bases = remove_unlisted(paths.fetcher.bases_dir(), stop, |name| {
        name.strip_suffix(".tar.zst")
            .is_some_and(|hex| diff_ids.contains(hex))
    });
    // An overlay rootfs keeps its state in `<id>.overlay` beside it, which
    // goes with its rootfs (unmounted first); alone, it is a crash leftover.
    done.rootfs = remove_unlisted(&paths.rootfs_dir, stop, |name| {
        match name.strip_suffix(".overlay") {
            Some(id) => image_ids.contains(id) || paths.rootfs_dir.join(id).exists(),
            None => image_ids.contains(name),
        }
    });
    // a kept release's downloads under way stay (resumed, not restarted)
    let wanted: Vec<String> = keep
        .iter()
        .flat_map(|r| r.layers())
        .flat_map(|l| [l.digest.hex().to_string(), l.diff_id.hex().to_string()])
        .collect();
    done.partials = remove_unlisted(paths.fetcher.downloads_dir(), stop, |name| {
        wanted.iter().any(|hex| name.contains(hex.as_str()))
    });
    done
}

/// The images (name and tag) of the releases kept, for the runtime's own
/// image pruning.
pub fn images_of(paths: &Paths, keep: &[ReleaseManifest]) -> Vec<petrel_runtime::ImageLayers> {
    keep.iter()
        .flat_map(|r| r.services.values())
        .map(|s| crate::apply::image_layers(&paths.rootfs_dir, s))
        .collect()
}

fn stopped(stop: &AtomicBool) -> bool {
    stop.load(Ordering::Relaxed)
}

/// Removes the entries of `dir` whose name `keep` rejects, until `stop`
/// is set; returns how many.
fn remove_unlisted(dir: &std::path::Path, stop: &AtomicBool, keep: impl Fn(&str) -> bool) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut n = 0;
    for e in entries.flatten() {
        if stopped(stop) {
            break;
        }
        let name = e.file_name().to_string_lossy().into_owned();
        if keep(&name) {
            continue;
        }
        let path = e.path();
        let removed = if path.is_dir() {
            petrel_runtime::rootfs::remove(&path).is_ok()
        } else {
            std::fs::remove_file(&path).is_ok()
        };
        n += usize::from(removed);
    }
    n
}
