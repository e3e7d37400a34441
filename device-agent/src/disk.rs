//! Disk preflight: before an update downloads a byte, what it will need on
//! disk (layer copies, unpacked layers, copied root filesystems, a patch
//! being applied, headroom) is weighed against what is free. Short, the
//! agent first removes what no kept release needs (collection keeping the
//! current, previous and target releases); still short, the update stops
//! before it starts with an `insufficient-disk` event naming both numbers,
//! the running release untouched, and waits for space to return. A write
//! that fails with ENOSPC mid-update is handled the same way.

use crate::apply::{Paths, ProgressCounter};
use crate::machine::{AgentState, Input, Target};
use petrel_protocol::{LayerDescriptor, ReleaseManifest};

/// Unpacked size assumed for a layer whose image did not record it, as a
/// multiple of its compressed size (zstd on typical root filesystems).
pub const ASSUMED_RATIO: u64 = 4;

/// Free bytes kept aside beyond the estimate: the store, logs, reports.
pub const HEADROOM: u64 = 16 << 20;

/// What an update needs against what there is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shortfall {
    pub need: u64,
    pub free: u64,
}

impl std::fmt::Display for Shortfall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use petrel_protocol::policy::human_bytes;
        write!(
            f,
            "the update needs {} bytes ({}) on disk, {} bytes ({}) are free after removing what no release needs",
            self.need,
            human_bytes(self.need),
            self.free,
            human_bytes(self.free)
        )
    }
}

fn unpacked(l: &LayerDescriptor) -> u64 {
    l.unpacked_size
        .unwrap_or(l.size.saturating_mul(ASSUMED_RATIO))
}

/// Bytes `release` still needs on disk, with what the device holds.
/// `copies`: root filesystems are copies of their layers (no overlayfs).
pub fn estimate(paths: &Paths, release: &ReleaseManifest, copies: bool) -> u64 {
    let missing: Vec<&LayerDescriptor> = release
        .layers()
        .into_iter()
        .filter(|l| !paths.layers.has(&l.diff_id))
        .collect();
    let mut need = 0u64;
    let mut largest = 0u64;
    for l in &missing {
        let copy = match paths.fetcher.base_path(&l.diff_id).exists() {
            true => 0,
            false => l.size.saturating_sub(paths.fetcher.have(l)),
        };
        need = need.saturating_add(copy).saturating_add(unpacked(l));
        largest = largest.max(l.size);
    }
    // one patch or partial beside the copy it produces
    need = need.saturating_add(largest);
    if copies {
        for svc in release.services.values() {
            let dest = paths.rootfs_dir.join(crate::apply::rootfs_name(svc));
            if !dest.exists() {
                let image: u64 = svc.image.layers.iter().map(unpacked).sum();
                need = need.saturating_add(image);
            }
        }
    }
    need.saturating_add(HEADROOM)
}

/// Whether root filesystems here are copies: overlayfs needs root.
pub fn rootfs_copies() -> bool {
    !nix::unistd::geteuid().is_root()
}

/// The preflight: `Ok` if the target fits, after collecting what neither
/// `held` nor the target needs if that is what it takes (`held` is `None`
/// when the running release is not known: then nothing is). Blocking.
pub fn preflight(
    paths: &Paths,
    target: &ReleaseManifest,
    held: Option<&[ReleaseManifest]>,
) -> Result<(), Shortfall> {
    let need = estimate(paths, target, rootfs_copies());
    let free = || crate::facts::free_bytes(&paths.rootfs_dir).unwrap_or(u64::MAX);
    if free() >= need {
        return Ok(());
    }
    // the running release unknown (a rebuilt store): nothing is collected
    let Some(held) = held else {
        return Err(Shortfall { need, free: free() });
    };
    let mut keep = held.to_vec();
    keep.push(target.clone());
    let removed = crate::gc::collect(paths, &keep);
    tracing::info!(
        ?removed,
        need,
        "disk short for the update: collected what no release needs"
    );
    let free = free();
    match free >= need {
        true => Ok(()),
        false => Err(Shortfall { need, free }),
    }
}

/// The download action: the preflight, then the layers; a shortfall
/// either way (too little room, or ENOSPC mid-download) parks the update.
/// `known`: the held releases are all the device runs (not so after a
/// store loss, until the controller names the running release).
pub async fn download(
    paths: &Paths,
    t: &Target,
    held: &[ReleaseManifest],
    known: bool,
    progress: &ProgressCounter,
) -> Input {
    let generation = t.generation;
    if let Some(release) = t.release.clone() {
        let (p, h) = (paths.clone(), held.to_vec());
        let checked = tokio::task::spawn_blocking(move || {
            preflight(&p, &release, known.then_some(h.as_slice()))
        })
        .await;
        if let Ok(Err(short)) = checked {
            return Input::DiskShort {
                generation,
                need: short.need,
                reason: short.to_string(),
            };
        }
    }
    match crate::transfer::download(paths, t, held, progress).await {
        Ok(bytes) => Input::Downloaded { generation, bytes },
        Err(reason) if is_disk_full(&reason) => full(paths, t, held, known, &reason).await,
        Err(reason) => Input::Failed { generation, reason },
    }
}

/// After ENOSPC mid-update: collect what no release needs, and park the
/// update until its estimate fits.
pub async fn full(
    paths: &Paths,
    t: &Target,
    held: &[ReleaseManifest],
    known: bool,
    reason: &str,
) -> Input {
    release_reserve(paths);
    let need = t
        .release
        .as_ref()
        .map_or(HEADROOM, |r| estimate(paths, r, rootfs_copies()));
    if known {
        let (p, mut keep) = (paths.clone(), held.to_vec());
        keep.extend(t.release.clone());
        let _ = tokio::task::spawn_blocking(move || crate::gc::collect(&p, &keep)).await;
    }
    Input::DiskShort {
        generation: t.generation,
        need,
        reason: format!(
            "the disk filled up during the update ({reason}); waiting for {need} bytes to be free"
        ),
    }
}

/// The input that retries a parked update, once its bytes are free: its
/// need is estimated again (what it downloaded before it stopped counts).
pub fn room_again(paths: &Paths, st: &AgentState) -> Option<Input> {
    let p = st.parked.as_ref()?;
    let free = crate::facts::free_bytes(&paths.rootfs_dir)?;
    let need = p
        .target
        .release
        .as_ref()
        .map_or(p.need, |r| estimate(paths, r, rootfs_copies()).min(p.need));
    if free < need {
        return None;
    }
    ensure_reserve(paths);
    Some(Input::SpaceFreed {
        generation: p.target.generation,
    })
}

/// Bytes kept in reserve on the data dir's filesystem: released when a
/// write finds the disk full, so the agent's own store (the journal and
/// the event outbox) can still write; sled treats a failed write as fatal
/// for the open store, and a full disk left the agent unable to journal
/// anything more until restarted.
pub const RESERVE: u64 = 8 << 20;

fn reserve_path(paths: &Paths) -> std::path::PathBuf {
    let data = paths.rootfs_dir.parent().unwrap_or(&paths.rootfs_dir);
    data.join("disk-reserve")
}

/// Creates the reserve if it is missing and the disk has ample room.
pub fn ensure_reserve(paths: &Paths) {
    let path = reserve_path(paths);
    let free = crate::facts::free_bytes(&paths.rootfs_dir).unwrap_or(0);
    if path.exists() || free < 4 * RESERVE {
        return;
    }
    let written = std::fs::File::create(&path).and_then(|mut f| {
        use std::io::Write;
        let chunk = vec![0u8; 1 << 20];
        for _ in 0..RESERVE / chunk.len() as u64 {
            f.write_all(&chunk)?;
        }
        f.sync_all()
    });
    if let Err(e) = written {
        tracing::warn!(path = %path.display(), error = %e, "could not create the disk reserve");
        let _ = std::fs::remove_file(&path);
    }
}

/// Frees the reserve (the disk is full): the store can write again.
pub fn release_reserve(paths: &Paths) {
    if std::fs::remove_file(reserve_path(paths)).is_ok() {
        tracing::warn!("disk full: released the agent's {RESERVE}-byte reserve for its own store");
    }
}

/// Whether an error's text says a write found the disk full (ENOSPC).
pub fn is_disk_full(reason: &str) -> bool {
    reason.contains("No space left on device") || reason.contains("os error 28")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_estimate_counts_copies_unpacked_layers_a_patch_and_copied_roots() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths::for_tests(dir.path());
        let mut release = crate::machine::tests::release("1");
        let svc = release.services.get_mut("web").unwrap();
        for (i, unpacked_size) in [Some(1_000), None].into_iter().enumerate() {
            let d = petrel_protocol::Digest::of(format!("layer {i}").as_bytes());
            svc.image.layers.push(LayerDescriptor {
                digest: d.clone(),
                diff_id: d,
                size: 100,
                unpacked_size,
            });
        }
        // 2 copies of 100, 1000 + 400 unpacked, a 100-byte patch
        let layers = 200 + 1_400 + 100;
        assert_eq!(estimate(&paths, &release, false), layers + HEADROOM);
        // a copied root filesystem holds the image's files once more
        assert_eq!(estimate(&paths, &release, true), layers + 1_400 + HEADROOM);
        // a blob already held costs no second copy
        let held = &release.services["web"].image.layers[0];
        std::fs::write(paths.fetcher.base_path(&held.diff_id), b"x").unwrap();
        assert_eq!(estimate(&paths, &release, false), layers - 100 + HEADROOM);
    }

    #[test]
    fn a_full_disk_is_recognised_in_any_errors_text() {
        let e = std::io::Error::from_raw_os_error(28);
        assert!(is_disk_full(&format!("write /data/x: {e}")));
        assert!(!is_disk_full("connection reset by peer"));
    }

    #[test]
    fn the_shortfall_names_both_numbers() {
        let s = Shortfall {
            need: 50_000_000,
            free: 1_000_000,
        };
        let text = s.to_string();
        assert!(
            text.contains("50000000 bytes (50 MB)") && text.contains("1000000 bytes (1.0 MB)"),
            "{text}"
        );
    }
}
