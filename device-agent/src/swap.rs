//! Swapping the running release for the new one, and undoing it.
//!
//! Per service, `handover` starts the new instance while the old one still
//! runs and stops the old one only once the new one is healthy; `stop-first`
//! stops the old instance first (ports or devices that cannot be shared).
//! Both steps are idempotent: after a crash the driver re-runs the one the
//! journal names (`Swapping` or `RollingBack`), which converges to exactly
//! one whole release.

use crate::apply::instances;
use crate::health::wait_healthy;
use crate::machine::{Applied, Target};
use crate::recover::parse_instance_name;
use petrel_protocol::{HealthCheck, ReleaseManifest, SwapStrategy};
use petrel_runtime::{InstanceSpec, Runtime};
use std::path::Path;

/// One service instance of a release, with how to check and swap it.
pub struct Planned {
    pub service: String,
    pub spec: InstanceSpec,
    pub health: Option<HealthCheck>,
    pub swap: SwapStrategy,
}

/// The instances a release runs at a generation, in start order (each
/// after what it `depends_on`); stops go in reverse.
pub fn plan(rootfs_dir: &Path, generation: u64, release: &Option<ReleaseManifest>) -> Vec<Planned> {
    let Some(r) = release else {
        return vec![];
    };
    let mut planned: Vec<Planned> = r
        .services
        .iter()
        .zip(instances(rootfs_dir, generation, release))
        .map(|((name, svc), spec)| Planned {
            service: name.clone(),
            spec,
            health: svc.healthcheck.clone(),
            swap: svc.swap,
        })
        .collect();
    // validated on arrival, so the order exists; by name if it ever did not
    let order = r.start_order().unwrap_or_default();
    planned.sort_by_key(|p| order.iter().position(|n| *n == p.service));
    planned
}

fn applied_plan(rootfs_dir: &Path, a: &Option<Applied>) -> Vec<Planned> {
    a.as_ref()
        .map(|a| plan(rootfs_dir, a.generation, &a.release))
        .unwrap_or_default()
}

/// The instances of `from` to stop, as (service, instance name) in stop
/// order: its plan's, then any it ran that its manifest does not name (a
/// release rebuilt from the runtime after a store loss has no manifest).
fn old_instances(rootfs_dir: &Path, from: &Option<Applied>) -> Vec<(String, String)> {
    let mut old: Vec<(String, String)> = applied_plan(rootfs_dir, from)
        .into_iter()
        .rev()
        .map(|p| (p.service, p.spec.name))
        .collect();
    for name in from.iter().flat_map(|a| &a.instances) {
        if let Some((service, _)) = parse_instance_name(name) {
            if !old.iter().any(|(_, n)| n == name) {
                old.push((service.to_string(), name.clone()));
            }
        }
    }
    old
}

/// Moves from `from` to `to`. `Err(reason)`: the new release did not start
/// or is unhealthy; the caller journals `RollingBack` and calls [`rollback`].
pub async fn swap<R: Runtime>(
    runtime: &R,
    rootfs_dir: &Path,
    from: &Option<Applied>,
    to: &Target,
) -> Result<Vec<String>, String> {
    let new = plan(rootfs_dir, to.generation, &to.release);
    let old = old_instances(rootfs_dir, from);
    let is_new = |name: &str| new.iter().any(|n| n.spec.name == name);
    for n in new
        .iter()
        .rev()
        .filter(|n| n.swap == SwapStrategy::StopFirst)
    {
        for (_, name) in old
            .iter()
            .filter(|(service, name)| *service == n.service && !is_new(name))
        {
            runtime.stop(name).await.map_err(|e| e.to_string())?;
        }
    }
    for n in &new {
        tracing::info!(instance = %n.spec.name, "starting");
        start_afresh(runtime, &n.spec).await?;
    }
    let checks = new
        .iter()
        .map(|n| wait_healthy(runtime, &n.spec, n.health.as_ref()));
    for (n, result) in new.iter().zip(futures_util::future::join_all(checks).await) {
        if let Err(reason) = result {
            // the service's last words make the rollback reason actionable
            let last = runtime.logs(&n.spec.name, 3).await.unwrap_or_default();
            let last = last.trim();
            return Err(if last.is_empty() {
                reason
            } else {
                format!("{reason}; last output: {last}")
            });
        }
    }
    for (_, name) in old.iter().filter(|(_, name)| !is_new(name)) {
        tracing::info!(instance = %name, "stopping");
        runtime.stop(name).await.map_err(|e| e.to_string())?;
    }
    Ok(new.into_iter().map(|n| n.spec.name).collect())
}

/// Starts a new instance. One the runtime already has but not up and
/// unrestarted is stopped first, so that its health is judged from a fresh
/// start: a swap resumed after a power cut finds its new instances dead
/// and the runtime restarting them from their records (as it restarts any
/// service that died while no agent watched), and the reboot's restart
/// would otherwise count as the release's failure and roll it back.
async fn start_afresh<R: Runtime>(runtime: &R, spec: &InstanceSpec) -> Result<(), String> {
    let status = runtime.inspect(&spec.name).await;
    if status.is_some_and(|s| !s.is_running() || s.restarts > 0) {
        tracing::info!(instance = %spec.name, "restarting an instance the swap left down");
        runtime.stop(&spec.name).await.map_err(|e| e.to_string())?;
    }
    runtime.start(spec).await.map_err(|e| e.to_string())
}

/// Stops every instance of the failed target and starts the release that
/// ran before (if any). Idempotent.
pub async fn rollback<R: Runtime>(
    runtime: &R,
    rootfs_dir: &Path,
    failed: &Target,
    restore: &Option<Applied>,
) -> Result<(), String> {
    let restore_plan = applied_plan(rootfs_dir, restore);
    for n in plan(rootfs_dir, failed.generation, &failed.release)
        .iter()
        .rev()
    {
        if !restore_plan.iter().any(|r| r.spec.name == n.spec.name) {
            runtime
                .stop(&n.spec.name)
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    for r in &restore_plan {
        runtime.start(&r.spec).await.map_err(|e| e.to_string())?;
    }
    Ok(())
}
