//! Installing a downloaded release (unpack + assemble root filesystems,
//! idempotent so a crash can re-run it) and the instance specs a release
//! runs as.

use crate::fetch::Fetcher;
use crate::machine::Target;
use petrel_protocol::{ReleaseManifest, ServiceSpec};
use petrel_runtime::{
    rootfs, ImageLayers, InstanceSpec, LayerError, LayerStore, Mount, UnpackError,
};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

/// Where the device keeps things.
#[derive(Clone)]
pub struct Paths {
    pub fetcher: Fetcher,
    /// Layers as the policy unpacks them: setuid/setgid bits stripped.
    pub layers: Arc<LayerStore>,
    /// The same layers with their setuid/setgid bits, unpacked only for
    /// services that allow them (`x-petrel-allow-setid`).
    pub setid_layers: Arc<LayerStore>,
    pub rootfs_dir: PathBuf,
}

impl Paths {
    /// Paths under `dir` with a fetcher aimed at nothing (unit tests).
    #[cfg(test)]
    pub(crate) fn for_tests(dir: &Path) -> Paths {
        let open = |name: &str| LayerStore::open(dir.join(name)).expect("layer store");
        Paths {
            fetcher: Fetcher::new("http://127.0.0.1:9", dir, None).expect("fetcher"),
            layers: Arc::new(open("layers")),
            setid_layers: Arc::new(open("layers-setid")),
            rootfs_dir: dir.join("rootfs"),
        }
    }

    /// The layer store a service's image is unpacked into.
    pub fn store_for(&self, svc: &ServiceSpec) -> &LayerStore {
        match svc.allow_setid {
            true => &self.setid_layers,
            false => &self.layers,
        }
    }
}

/// Bytes done / total of the download in progress, and what keeps it
/// from progressing, if anything (reported as the device's last error
/// while the phase stays `downloading`).
#[derive(Default)]
pub struct ProgressCounter {
    pub done: AtomicU64,
    pub total: AtomicU64,
    /// Bytes this update received over the network (its data cost).
    pub received: AtomicU64,
    problem: std::sync::Mutex<Option<String>>,
}

impl ProgressCounter {
    /// Counts `n` bytes received: progress, and the update's data cost.
    pub fn add_received(&self, n: u64) {
        self.done.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        self.received
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }

    /// Records why the download is stuck (`None`: it moves again).
    /// Returns whether that changed, so callers log once per change
    /// rather than once per retry.
    pub fn set_problem(&self, problem: Option<String>) -> bool {
        let mut slot = self.problem.lock().unwrap_or_else(|e| e.into_inner());
        let changed = *slot != problem;
        *slot = problem;
        changed
    }

    pub fn problem(&self) -> Option<String> {
        self.problem
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Unpacks every layer (verifying diff_ids) and assembles each image's
/// root filesystem. Blocking work: run it on a blocking thread.
pub fn install(paths: &Paths, target: &Target) -> Result<(), String> {
    let Some(release) = &target.release else {
        return Ok(());
    };
    for svc in release.services.values() {
        let store = paths.store_for(svc);
        for layer in &svc.image.layers {
            let blob = paths.fetcher.base_path(&layer.diff_id);
            store.install(&blob, &layer.diff_id).map_err(|e| {
                if blob_is_useless(&e) {
                    let _ = std::fs::remove_file(&blob);
                }
                format!("layer {}: {e}", layer.diff_id)
            })?;
        }
    }
    for svc in release.services.values() {
        let dirs: Vec<PathBuf> = svc
            .image
            .layers
            .iter()
            .map(|l| paths.store_for(svc).path(&l.diff_id))
            .collect();
        let dest = rootfs_path(&paths.rootfs_dir, svc);
        rootfs::assemble(&dirs, &dest).map_err(|e| format!("rootfs {}: {e}", dest.display()))?;
    }
    Ok(())
}

/// Whether a base that failed to unpack must be fetched again: only if its
/// bytes are wrong (not the diff_id, or not a readable zstd tar). A layer
/// refused by policy (an unsafe entry, a size limit) keeps its verified
/// blob, so a fixed agent or a changed policy does not download it again.
fn blob_is_useless(e: &LayerError) -> bool {
    matches!(
        e,
        LayerError::Unpack(UnpackError::DigestMismatch { .. } | UnpackError::Corrupt { .. })
    )
}

/// The root filesystem of a service's image: one per image, and one more
/// with setuid/setgid bits for services that allow them.
pub fn rootfs_name(svc: &ServiceSpec) -> String {
    let id = svc.image.id();
    match svc.allow_setid {
        true => format!("{}-setid", id.hex()),
        false => id.hex().to_string(),
    }
}

fn rootfs_path(dir: &Path, svc: &ServiceSpec) -> PathBuf {
    dir.join(rootfs_name(svc))
}

/// A service's image as a layered runtime loads it: the layer trees of
/// its store, tagged `<tag>-setid` when its bits are kept.
pub fn image_layers(rootfs_dir: &Path, svc: &ServiceSpec) -> ImageLayers {
    let (dir, tag) = match svc.allow_setid {
        true => ("layers-setid", format!("{}-setid", svc.image.tag)),
        false => ("layers", svc.image.tag.clone()),
    };
    let store = rootfs_dir.parent().unwrap_or(rootfs_dir).join(dir);
    ImageLayers {
        name: svc.image.name.clone(),
        tag,
        layers: svc
            .image
            .layers
            .iter()
            .map(|l| store.join(l.diff_id.hex()))
            .collect(),
        created: svc.image.config.created.clone(),
        config: svc.image.config.clone(),
    }
}

/// Named volumes live beside the root filesystems, outside any release,
/// so they persist across updates and are never collected.
pub fn volumes_dir(rootfs_dir: &Path) -> PathBuf {
    rootfs_dir.parent().unwrap_or(rootfs_dir).join("volumes")
}

/// The runtime instance of a release's service at a generation.
pub fn instance_name(service: &str, generation: u64) -> String {
    format!("{service}-g{generation}")
}

/// The instance specs of a release at a generation.
pub fn instances(
    rootfs_dir: &Path,
    generation: u64,
    release: &Option<ReleaseManifest>,
) -> Vec<InstanceSpec> {
    let Some(release) = release else {
        return vec![];
    };
    release
        .services
        .iter()
        .map(|(name, svc)| {
            let mut env: Vec<(String, String)> = vec![(
                "PATH".into(),
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            )];
            let image_env = svc
                .image
                .config
                .env
                .iter()
                .filter_map(|kv| kv.split_once('='));
            for (k, v) in image_env.chain(
                svc.environment
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            ) {
                env.retain(|(ek, _)| ek != k);
                env.push((k.to_string(), v.to_string()));
            }
            InstanceSpec {
                name: instance_name(name, generation),
                rootfs: rootfs_path(rootfs_dir, svc),
                argv: svc.argv(),
                env,
                working_dir: svc.image.config.working_dir.clone(),
                restart: svc.restart,
                // validated with the release on receipt
                mounts: svc
                    .volume_mounts()
                    .unwrap_or_default()
                    .into_iter()
                    .map(|v| Mount {
                        source: volumes_dir(rootfs_dir).join(&v.name),
                        target: v.target,
                        read_only: v.read_only,
                    })
                    .collect(),
                ports: svc.listen_ports().unwrap_or_default(),
                memory_limit: svc.mem_limit,
                cpu_millis: svc.cpu_millis,
                image: Some(image_layers(rootfs_dir, svc)),
                user: svc.user.clone(),
                network: svc.network_mode,
            }
        })
        .collect()
}
