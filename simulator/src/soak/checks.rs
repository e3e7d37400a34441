//! What every iteration must end in, checked from outside the agent: the
//! controller's view (converged, or rolled back from a broken release),
//! the runtime's records and `/proc` (exactly one live instance, of the
//! expected generation, whose process writes the expected version), and
//! the data dir once the collection is done (no leftovers).

use super::liveness;
use crate::sample;
use anyhow::{bail, Context, Result};
use petrel_controller::client::Client;
use petrel_controller::http::DeviceView;
use petrel_protocol::Phase;
use std::path::Path;
use std::time::{Duration, Instant};

pub const DEVICE: &str = "soak-1";

/// What an iteration must end with.
#[derive(Debug, Clone, Copy)]
pub struct Expect {
    /// The version that must run.
    pub version: u32,
    /// The generation whose instance must be the live one.
    pub instance_generation: u64,
    /// The deploy's generation, and whether it was a broken release (the
    /// device ends rolled back to `version`).
    pub deployed: u64,
    pub broken: bool,
}

pub async fn device(client: &Client) -> Option<DeviceView> {
    client.device(DEVICE).await.ok()
}

/// Waits until the view shows `expect` reached: converged on the version
/// (or, for a broken release, rolled back to it), services running.
pub async fn wait_settled(client: &Client, expect: Expect) -> Result<DeviceView> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let view = device(client).await;
        if let Some(d) = &view {
            if settled(d, expect) {
                return Ok(d.clone());
            }
        }
        if Instant::now() > deadline {
            bail!("device did not settle on {expect:?}: {view:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn settled(d: &DeviceView, e: Expect) -> bool {
    let on_version = d
        .current
        .as_ref()
        .is_some_and(|c| c.version == e.version.to_string());
    let services_up = d.services.iter().all(|s| s.state == "running");
    let done = if e.broken {
        matches!(d.phase, Phase::RolledBack | Phase::Failed) && d.accepted_generation == e.deployed
    } else {
        d.converged() && d.applied_generation == e.deployed
    };
    done && on_version && services_up && d.target.is_none()
}

/// The invariant: once settled, exactly one live instance exists, it is
/// the expected generation's, and its heartbeat says the expected version.
pub async fn one_whole_release(client: &Client, data_dir: &Path, e: Expect) -> Result<()> {
    wait_settled(client, e).await?;
    let live = liveness::live_instances(&data_dir.join("runtime/instances"));
    let expected = format!("app-g{}", e.instance_generation);
    if live.len() != 1 || live[0].0 != expected {
        bail!("expected exactly {expected} live, found {live:?}");
    }
    let version = e.version.to_string();
    let beat = (0..40).find_map(|_| {
        std::thread::sleep(Duration::from_millis(50));
        std::fs::read_dir(data_dir.join("rootfs"))
            .ok()?
            .flatten()
            .find_map(|entry| {
                let b = sample::read_heartbeat(&entry.path())?;
                let writer = sample::heartbeat_writer(&entry.path(), &b)?;
                let in_instance = sample::process_group(writer) == Some(live[0].1);
                (in_instance && b.version == version).then_some(b)
            })
    });
    beat.map(drop).with_context(|| {
        let seen: Vec<_> = std::fs::read_dir(data_dir.join("rootfs"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|entry| {
                let beat = sample::read_heartbeat(&entry.path());
                (entry.file_name(), beat, sample::processes_in(&entry.path()))
            })
            .collect();
        format!(
            "live instance {expected} (pid {}) is not running v{version}; \
             rootfs heartbeats and processes: {seen:?}",
            live[0].1
        )
    })
}

/// What the data dir holds beyond the releases a device keeps (the one
/// running and the one before it, `layers_kept` layers in all): partial
/// downloads, temporaries, layers, bases, root filesystems, mounts.
/// Empty when clean.
pub fn leftovers(data_dir: &Path, layers_kept: usize) -> Vec<String> {
    let mut found = Vec::new();
    let names = |sub: &str| -> Vec<String> {
        std::fs::read_dir(data_dir.join(sub))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    };
    let partials = names("downloads");
    if !partials.is_empty() {
        found.push(format!("partial downloads: {partials:?}"));
    }
    for sub in ["layers", "layers-setid", "bases", "rootfs"] {
        let all = names(sub);
        let temps: Vec<&String> = all.iter().filter(|n| n.contains(".tmp-")).collect();
        if !temps.is_empty() {
            found.push(format!("temporaries in {sub}: {temps:?}"));
        }
        if sub != "rootfs" && all.len() > layers_kept {
            found.push(format!("{} entries in {sub}: {all:?}", all.len()));
        }
    }
    let roots: Vec<String> = names("rootfs")
        .into_iter()
        .filter(|n| !n.ends_with(".overlay"))
        .collect();
    if roots.len() > 2 {
        found.push(format!("{} root filesystems: {roots:?}", roots.len()));
    }
    let dir = data_dir
        .canonicalize()
        .unwrap_or_else(|_| data_dir.to_path_buf());
    let mounts = petrel_runtime::rootfs::mounts_under(&dir).unwrap_or_default();
    if mounts.len() > 2 {
        found.push(format!("{} mounts: {mounts:?}", mounts.len()));
    }
    found
}

pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
