//! Rollouts over HTTP: create (the devices the selector picks now, the
//! policy checked), list, status, pause, resume, abort; and device labels,
//! which selectors read.

use super::{bad_request, Api, ApiError, ApiResult};
use crate::rollouts::RolloutRecord;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use petrel_protocol::rollout::{parse_waves, Breach, Input, Policy, Rollout, Selector};
use petrel_protocol::ReleaseRef;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

fn default_success() -> u8 {
    95
}
fn default_soak() -> u64 {
    60
}
fn default_max_failed() -> u8 {
    10
}
fn default_min_failed() -> u32 {
    1
}
fn default_timeout() -> u64 {
    3600
}
fn default_waves() -> String {
    "100%".into()
}

/// Body of `POST /v1/rollouts`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateRollout {
    /// Default: `<release name>-<version>-<unix seconds>`.
    #[serde(default)]
    pub id: Option<String>,
    /// `name@version`.
    pub release: String,
    /// `key=value,key!=value,key`; empty: every device.
    #[serde(default)]
    pub selector: String,
    /// A saved group whose selector applies too.
    #[serde(default)]
    pub group: Option<String>,
    /// Cumulative waves, `1%,10%,50%,100%` or counts.
    #[serde(default = "default_waves")]
    pub waves: String,
    #[serde(default)]
    pub canary: Vec<String>,
    #[serde(default)]
    pub per_minute: Option<u32>,
    /// The rate grows by this share each minute.
    #[serde(default)]
    pub rate_growth_percent: u16,
    #[serde(default = "default_success")]
    pub success_percent: u8,
    #[serde(default = "default_soak")]
    pub soak_s: u64,
    #[serde(default = "default_max_failed")]
    pub max_failed_percent: u8,
    #[serde(default = "default_min_failed")]
    pub min_failed: u32,
    /// `pause` (default) or `abort`.
    #[serde(default)]
    pub on_breach: Option<Breach>,
    #[serde(default = "default_timeout")]
    pub device_timeout_s: u64,
    #[serde(default)]
    pub retries: u32,
}

/// `POST /v1/rollouts`
pub(super) async fn create(
    State(api): State<Api>,
    Json(req): Json<CreateRollout>,
) -> ApiResult<(StatusCode, Json<RolloutRecord>)> {
    let release: ReleaseRef = req.release.parse().map_err(bad_request)?;
    api.store.release(&release)?;
    let selector = selector_for(&api, &req)?;
    let policy = Policy {
        waves: parse_waves(&req.waves).map_err(bad_request)?,
        canary: req.canary.clone(),
        per_minute: req.per_minute,
        rate_growth_percent: req.rate_growth_percent,
        success_percent: req.success_percent,
        soak_ms: req.soak_s * 1000,
        max_failed_percent: req.max_failed_percent,
        min_failed: req.min_failed,
        on_breach: req.on_breach.unwrap_or(Breach::Pause),
        device_timeout_ms: req.device_timeout_s.max(1) * 1000,
        retries: req.retries,
    };
    policy.validate().map_err(bad_request)?;
    let now = crate::now_ms();
    let id = req
        .id
        .clone()
        .unwrap_or_else(|| format!("{}-{}-{}", release.name, release.version, now / 1000));
    petrel_protocol::validate_name(&id, 64).map_err(bad_request)?;
    let mut devices = Vec::new();
    for device in api.store.device_ids()? {
        let view = super::views::view(&api.store, &device)?;
        if selector.matches(&view.facts()) {
            devices.push((device, view.current));
        }
    }
    let rollout = Rollout::new(&id, release, selector, policy, devices, now);
    let rec = api.rollouts.create(rollout).await.map_err(conflict)?;
    Ok((StatusCode::CREATED, Json(rec)))
}

/// The request's selector, with the saved group's terms first.
fn selector_for(api: &Api, req: &CreateRollout) -> ApiResult<Selector> {
    let mut text = req.selector.trim().to_string();
    if let Some(name) = &req.group {
        let groups: Vec<super::groups::Group> = api.store.groups()?;
        let group = groups
            .into_iter()
            .find(|g| &g.name == name)
            .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no group {name:?}")))?;
        let saved = group.selector.to_string();
        text = [saved, text]
            .into_iter()
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
            .join(",");
    }
    text.parse().map_err(bad_request)
}

fn conflict(e: String) -> ApiError {
    let code = match e.contains("exists") {
        true => StatusCode::CONFLICT,
        false => StatusCode::NOT_FOUND,
    };
    ApiError(code, e)
}

/// `GET /v1/rollouts`: every rollout without its members (tallies only).
pub(super) async fn list(State(api): State<Api>) -> ApiResult<Json<Vec<RolloutRecord>>> {
    Ok(Json(crate::rollouts::persist::summaries(&api.store)?))
}

/// `GET /v1/rollouts/{id}`
pub(super) async fn status(
    State(api): State<Api>,
    Path(id): Path<String>,
) -> ApiResult<Json<RolloutRecord>> {
    crate::rollouts::persist::load(&api.store, &id)?
        .map(Json)
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no rollout {id}")))
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Command {
    #[serde(default)]
    pub reason: Option<String>,
}

/// `POST /v1/rollouts/{id}/{pause|resume|abort}`
pub(super) async fn command(
    State(api): State<Api>,
    Path((id, verb)): Path<(String, String)>,
    body: Option<Json<Command>>,
) -> ApiResult<Json<RolloutRecord>> {
    let reason = body
        .and_then(|b| b.0.reason)
        .unwrap_or_else(|| "by the operator".into());
    let input = match verb.as_str() {
        "pause" => Input::Pause,
        "resume" => Input::Resume,
        "abort" => Input::Abort { reason },
        other => {
            return Err(bad_request(format!(
                "{other:?} is not pause, resume or abort"
            )))
        }
    };
    let rec = api.rollouts.command(&id, input).await.map_err(conflict)?;
    Ok(Json(rec))
}

/// Body of `POST /v1/devices/{id}/labels`.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct LabelChange {
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    #[serde(default)]
    pub remove: Vec<String>,
}

/// `POST /v1/devices/{id}/labels`: the device's labels after the change;
/// rollouts see it at once (a device may join or leave their selectors).
pub(super) async fn label(
    State(api): State<Api>,
    Path(id): Path<String>,
    Json(change): Json<LabelChange>,
) -> ApiResult<Json<BTreeMap<String, String>>> {
    petrel_protocol::validate_device_id(&id).map_err(bad_request)?;
    let mut labels = api.store.labels(&id)?;
    for (k, v) in &change.set {
        petrel_protocol::rollout::validate_label(k, v).map_err(bad_request)?;
        labels.insert(k.clone(), v.clone());
    }
    for k in &change.remove {
        labels.remove(k);
    }
    api.store.set_labels(&id, &labels)?;
    api.monitor.index.labels(&id, labels.clone());
    api.rollouts.observed(&id);
    Ok(Json(labels))
}
