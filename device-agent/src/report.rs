//! The reported state: what the device tells the controller with every
//! heartbeat and change (phase, progress, services, host health).

use crate::driver::{now_ms, Driver};
use petrel_protocol::{Phase, Progress, Reported, ServiceState, SCHEMA};
use petrel_runtime::Runtime;
use std::sync::atomic::Ordering;

/// The device's state as the driver knows it now.
pub async fn build<R: Runtime>(d: &Driver<R>) -> Reported {
    let st = &d.machine.state;
    let instances = st
        .current
        .as_ref()
        .map(|c| c.instances.clone())
        .unwrap_or_default();
    let mut services = Vec::new();
    for name in instances {
        let s = d.runtime.inspect(&name).await;
        services.push(ServiceState {
            state: s.as_ref().map_or("missing".into(), |s| s.state.clone()),
            pid: s.as_ref().and_then(|s| s.pid),
            restarts: s.as_ref().map_or(0, |s| s.restarts),
            exit_code: s.and_then(|s| s.exit_code),
            name,
        });
    }
    let progress = if st.phase.in_progress() {
        Progress {
            bytes_done: d.progress.done.load(Ordering::Relaxed),
            bytes_total: d.progress.total.load(Ordering::Relaxed),
        }
    } else {
        Progress::default()
    };
    let problem = st
        .phase
        .in_progress()
        .then(|| d.progress.problem())
        .flatten();
    let held_by = match st.phase {
        Phase::Deferred => st
            .target
            .as_ref()
            .and_then(|t| t.deferred.as_ref())
            .map(|x| x.holder.clone()),
        _ => None,
    };
    Reported {
        schema: SCHEMA,
        device_id: d.device_id.clone(),
        agent_version: env!("CARGO_PKG_VERSION").into(),
        desired_generation: st.desired_generation,
        applied_generation: st.current.as_ref().map_or(0, |c| c.generation),
        current: st.current_ref(),
        target: st.target_ref(),
        phase: st.phase,
        progress,
        services,
        // While downloading, why the download is not moving (an
        // unreachable controller_url, say) is the error to show.
        last_error: problem.or_else(|| st.last_error.clone()),
        held_by,
        update_bytes: st.update_bytes,
        updated_at_ms: now_ms(),
        platform: Some(d.platform.clone()),
        hostname: crate::facts::hostname(),
        free_disk_bytes: crate::facts::free_bytes(&d.paths.rootfs_dir),
        health: crate::facts::health(d.started, &d.paths.rootfs_dir),
    }
}
