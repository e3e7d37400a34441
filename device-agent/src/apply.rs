//! The side effects of an update after the download, each idempotent so a
//! crash at any point can re-run it: install the layers (unpack + assemble
//! root filesystems) and swap the running instances.

use crate::fetch::Fetcher;
use crate::machine::{Applied, Target};
use petrel_protocol::ReleaseManifest;
use petrel_runtime::{rootfs, InstanceSpec, LayerStore, Runtime};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

/// Where the device keeps things.
#[derive(Clone)]
pub struct Paths {
    pub fetcher: Fetcher,
    pub layers: Arc<LayerStore>,
    pub rootfs_dir: PathBuf,
}

/// Bytes done / total of the download in progress.
#[derive(Default)]
pub struct ProgressCounter {
    pub done: AtomicU64,
    pub total: AtomicU64,
}

/// Unpacks every layer (verifying diff_ids) and assembles each image's
/// root filesystem. Blocking work: run it on a blocking thread.
pub fn install(paths: &Paths, target: &Target) -> Result<(), String> {
    let Some(release) = &target.release else {
        return Ok(());
    };
    for layer in release.layers() {
        let blob = paths.fetcher.base_path(&layer.diff_id);
        paths.layers.install(&blob, &layer.diff_id).map_err(|e| {
            // a copy that does not unpack to its diff_id is useless as a base
            let _ = std::fs::remove_file(&blob);
            format!("layer {}: {e}", layer.diff_id)
        })?;
    }
    for svc in release.services.values() {
        let dirs: Vec<PathBuf> = svc
            .image
            .layers
            .iter()
            .map(|l| paths.layers.path(&l.diff_id))
            .collect();
        let dest = rootfs_path(&paths.rootfs_dir, &svc.image);
        rootfs::assemble(&dirs, &dest).map_err(|e| format!("rootfs {}: {e}", dest.display()))?;
    }
    Ok(())
}

fn rootfs_path(dir: &Path, image: &petrel_protocol::ImageManifest) -> PathBuf {
    dir.join(image.id().hex())
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
                name: format!("{name}-g{generation}"),
                rootfs: rootfs_path(rootfs_dir, &svc.image),
                argv: svc.argv(),
                env,
                working_dir: svc.image.config.working_dir.clone(),
                restart: svc.restart,
            }
        })
        .collect()
}

/// How long a new instance must stay up before the swap counts as done.
const SETTLE: Duration = Duration::from_millis(1500);

/// Stop-first swap: stop the old instances, start the new ones, check they
/// stay up; on failure stop the new ones and start the old ones again.
pub async fn swap<R: Runtime>(
    runtime: &R,
    rootfs_dir: &Path,
    from: &Option<Applied>,
    to: &Target,
) -> Result<Vec<String>, String> {
    let new = instances(rootfs_dir, to.generation, &to.release);
    let old = from
        .as_ref()
        .map(|a| instances(rootfs_dir, a.generation, &a.release))
        .unwrap_or_default();
    for spec in old.iter().filter(|o| !new.iter().any(|n| n.name == o.name)) {
        runtime.stop(&spec.name).await.map_err(|e| e.to_string())?;
    }
    match start_all(runtime, &new).await {
        Ok(()) => Ok(new.into_iter().map(|s| s.name).collect()),
        Err(reason) => {
            for spec in &new {
                let _ = runtime.stop(&spec.name).await;
            }
            for spec in &old {
                if let Err(e) = runtime.start(spec).await {
                    tracing::error!(instance = %spec.name, error = %e, "rollback could not restart the previous release");
                }
            }
            Err(format!("{reason}; previous release restored"))
        }
    }
}

async fn start_all<R: Runtime>(runtime: &R, specs: &[InstanceSpec]) -> Result<(), String> {
    for spec in specs {
        runtime.start(spec).await.map_err(|e| e.to_string())?;
    }
    tokio::time::sleep(SETTLE).await;
    for spec in specs {
        match runtime.inspect(&spec.name).await {
            Some(s) if s.is_running() && s.restarts == 0 => {}
            Some(s) => {
                return Err(format!(
                    "service {} did not stay up ({}, exit code {:?})",
                    spec.name, s.state, s.exit_code
                ))
            }
            None => return Err(format!("service {} vanished after start", spec.name)),
        }
    }
    Ok(())
}
