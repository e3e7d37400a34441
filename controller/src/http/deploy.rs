//! Deployments: a release set as the desired state of devices.

use super::{bad_request, internal, Api, ApiError, ApiResult};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use petrel_protocol::policy::UpdatePolicy;
use petrel_protocol::ReleaseRef;
use serde::Deserialize;

/// Body of `POST /v1/deployments`.
#[derive(Deserialize, serde::Serialize)]
pub struct Deploy {
    /// `name@version`
    pub release: String,
    pub devices: Vec<String>,
    /// Accept devices the controller has never heard of (provisioned but
    /// not yet connected). Off by default: a typo must not create a
    /// phantom device that waits forever.
    #[serde(default)]
    pub allow_new: bool,
    /// Swap even while an application holds its update lock.
    #[serde(default)]
    pub force: bool,
    /// This deployment's data budget (else the devices' groups').
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<petrel_protocol::policy::DataBudget>,
}

impl Deploy {
    /// The rules this deployment sets over the groups'.
    fn policy(&self) -> UpdatePolicy {
        UpdatePolicy {
            window: None,
            lock_override_after_s: self.force.then_some(0),
            budget: self.budget,
        }
    }
}

/// One device's new desired generation.
#[derive(Deserialize, serde::Serialize, Debug)]
pub struct Deployed {
    pub device: String,
    pub generation: u64,
}

pub(super) async fn deploy(
    State(api): State<Api>,
    Json(req): Json<Deploy>,
) -> ApiResult<Json<Vec<Deployed>>> {
    let rref: ReleaseRef = req.release.parse().map_err(bad_request)?;
    if req.devices.is_empty() {
        return Err(bad_request("no devices given"));
    }
    for id in &req.devices {
        petrel_protocol::validate_device_id(id).map_err(bad_request)?;
    }
    if !req.allow_new {
        let known = api.store.device_ids()?;
        let unknown: Vec<&str> = req
            .devices
            .iter()
            .filter(|id| !known.contains(id))
            .map(String::as_str)
            .collect();
        if !unknown.is_empty() {
            let msg = format!(
                "unknown device {}: no such device has connected; check the id, or allow new devices (petrel deploy --allow-new)",
                unknown.join(", ")
            );
            return Err(ApiError(StatusCode::NOT_FOUND, msg));
        }
    }
    let release = api.store.release(&rref)?;
    // each device gets the variant of every image for its platform; one
    // that cannot run the release stops the whole deployment
    let mut resolved = Vec::new();
    let mut refused = Vec::new();
    for id in &req.devices {
        let platform = api.store.reported(id)?.and_then(|r| r.platform);
        match release.for_platform(platform.as_ref()) {
            Ok(r) => resolved.push((id, r)),
            Err(e) => refused.push(format!(
                "{id} ({}): {e}",
                platform.map_or("?".into(), |p| p.to_string())
            )),
        }
    }
    if !refused.is_empty() {
        let msg = format!(
            "release {rref} cannot run on {}; nothing was deployed",
            refused.join("; ")
        );
        return Err(bad_request(msg));
    }
    let _guard = api.deploy_lock.lock().await;
    let changes = resolved
        .into_iter()
        .map(|(id, release)| (id.clone(), Some(release)))
        .collect();
    let out = set_desired(&api, changes, req.policy())?
        .into_iter()
        .map(|d| Deployed {
            device: d.device_id,
            generation: d.generation,
        })
        .collect();
    Ok(Json(out))
}

/// Sets `id`'s desired release (`None`: run nothing) under a new
/// generation: durable first, then published (a broker restart
/// re-publishes it). The caller holds `deploy_lock`.
pub(crate) fn publish(
    api: &Api,
    id: &str,
    release: Option<petrel_protocol::ReleaseManifest>,
) -> ApiResult<petrel_protocol::Desired> {
    let mut one = set_desired(
        api,
        vec![(id.to_string(), release)],
        UpdatePolicy::default(),
    )?;
    one.pop()
        .ok_or_else(|| internal("no desired state was recorded"))
}

/// [`publish`] for many devices, `policy` over their groups' rules: every desired state recorded, one flush,
/// then all handed to the fleet's publisher, which sends them in the
/// background; returns once they are durable.
pub(crate) fn set_desired(
    api: &Api,
    changes: Vec<(String, Option<petrel_protocol::ReleaseManifest>)>,
    policy: UpdatePolicy,
) -> ApiResult<Vec<petrel_protocol::Desired>> {
    let now = crate::now_ms();
    let mut prepared = std::collections::HashSet::new();
    let mut out = Vec::with_capacity(changes.len());
    for (id, release) in changes {
        if let Some(r) = &release {
            prepare_deltas(api, &id, r, &mut prepared);
        }
        let rules = policy.clone().or(super::groups::policy_for(api, &id)?);
        out.push(api.store.record_desired(&id, release, rules, now)?);
    }
    api.store.flush()?;
    for d in &out {
        // a device deployed to before it ever connected (--allow-new)
        // shows in the fleet views as never reported
        api.monitor.index.ensure(&d.device_id);
        api.fleet.publish(&d.device_id);
    }
    Ok(out)
}

/// Starts generating, ahead of the device asking, the deltas it will want:
/// each new layer against the layer at the same position of the same
/// service in the release the device reports running.
/// `prepared` holds the (release, platform) pairs already seen in this
/// batch: a fleet on one release is looked at once, not per device.
fn prepare_deltas(
    api: &Api,
    device: &str,
    release: &petrel_protocol::ReleaseManifest,
    prepared: &mut std::collections::HashSet<String>,
) {
    let Some(reported) = api.store.reported(device).ok().flatten() else {
        return;
    };
    let (Some(current), platform) = (reported.current, reported.platform) else {
        return;
    };
    let key = format!(
        "{current} {platform:?} {}@{}",
        release.name, release.version
    );
    if !prepared.insert(key) {
        return;
    }
    let Some(old) = api
        .store
        .release(&current)
        .ok()
        .and_then(|r| r.for_platform(platform.as_ref()).ok())
    else {
        return;
    };
    for (name, svc) in &release.services {
        let Some(old_svc) = old.services.get(name) else {
            continue;
        };
        for (new_l, old_l) in svc.image.layers.iter().zip(&old_svc.image.layers) {
            if new_l.diff_id != old_l.diff_id {
                api.deltas
                    .prepare(old_l.diff_id.clone(), new_l.diff_id.clone());
            }
        }
    }
}

/// What `DELETE /v1/devices/{id}/desired` did.
#[derive(Deserialize, serde::Serialize, Debug)]
pub struct Undeployed {
    pub device: String,
    /// The generation of the desired state removed (`None`: there was none).
    pub generation: Option<u64>,
}

/// `DELETE /v1/devices/{id}/desired`: the controller stops asking the
/// device for anything; it keeps running what it runs (an agent treats a
/// cleared retained message as no news), and its next desired state
/// continues above the old generation.
pub(super) async fn undeploy(
    State(api): State<Api>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> ApiResult<Json<Undeployed>> {
    petrel_protocol::validate_device_id(&id).map_err(bad_request)?;
    let _guard = api.deploy_lock.lock().await;
    let generation = api.store.clear_desired(&id)?;
    api.fleet.publish(&id);
    api.rollouts.observed(&id);
    Ok(Json(Undeployed {
        device: id,
        generation,
    }))
}
