//! Read-only fleet views: one row per device joining desired state,
//! last report and presence.

use super::{Api, ApiResult};
use axum::extract::{Path, Query, State};
use axum::Json;
use petrel_protocol::{Event, Phase, Progress, ReleaseRef, ServiceState};
use serde::{Deserialize, Serialize};

/// What `petrel devices` shows for one device.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DeviceView {
    pub id: String,
    pub online: bool,
    pub last_seen_ms: u64,
    pub desired: Option<ReleaseRef>,
    pub desired_generation: u64,
    pub current: Option<ReleaseRef>,
    /// The release being installed, while an update is under way.
    pub target: Option<ReleaseRef>,
    pub applied_generation: u64,
    /// The highest desired generation the device has accepted (its own
    /// report): a failure or rollback shown in `phase` is about it.
    #[serde(default)]
    pub accepted_generation: u64,
    pub phase: Phase,
    pub progress: Progress,
    pub services: Vec<ServiceState>,
    pub last_error: Option<String>,
    /// In `deferred`: the update lock's holder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_by: Option<String>,
    /// Bytes the device's last update downloaded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_bytes: Option<u64>,
    /// When the device wrote its last report (its clock).
    pub reported_at_ms: u64,
    /// What the device runs images for, as it reports.
    #[serde(default)]
    pub platform: Option<petrel_protocol::Platform>,
    /// Registry facts the device reports.
    #[serde(default)]
    pub agent_version: String,
    #[serde(default)]
    pub hostname: Option<String>,
    #[serde(default)]
    pub free_disk_bytes: Option<u64>,
    /// The host's health with the device's last report (uptime, memory,
    /// load, disk size); none from agents before health reporting.
    #[serde(default)]
    pub health: Option<petrel_protocol::DeviceHealth>,
    /// The operator's labels (`petrel device label`).
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
}

impl DeviceView {
    /// What a selector sees of the device: its labels, `id`, `platform`,
    /// `hostname` and `agent_version`.
    pub fn facts(&self) -> std::collections::BTreeMap<String, String> {
        let mut facts = self.labels.clone();
        facts.insert("id".into(), self.id.clone());
        if let Some(p) = &self.platform {
            facts.insert("platform".into(), p.to_string());
        }
        if let Some(h) = &self.hostname {
            facts.insert("hostname".into(), h.clone());
        }
        if !self.agent_version.is_empty() {
            facts.insert("agent_version".into(), self.agent_version.clone());
        }
        facts
    }

    /// Whether the device runs what it was asked to run.
    pub fn converged(&self) -> bool {
        self.desired.is_some()
            && self.desired == self.current
            && self.applied_generation == self.desired_generation
            && self.phase == Phase::Running
            && self.target.is_none()
    }
}

pub fn view(store: &crate::store::Store, id: &str) -> ApiResult<DeviceView> {
    let desired = store.desired_head(id)?;
    let reported = store.reported(id)?.unwrap_or_default();
    let presence = store.presence(id)?.unwrap_or_default();
    Ok(DeviceView {
        id: id.to_string(),
        online: presence.online,
        last_seen_ms: presence.last_seen_ms,
        desired_generation: desired.as_ref().map_or(0, |d| d.generation),
        desired: desired.and_then(|d| d.release),
        current: reported.current,
        target: reported.target,
        applied_generation: reported.applied_generation,
        accepted_generation: reported.desired_generation,
        phase: reported.phase,
        progress: reported.progress,
        services: reported.services,
        last_error: reported.last_error,
        held_by: reported.held_by,
        update_bytes: reported.update_bytes,
        reported_at_ms: reported.updated_at_ms,
        platform: reported.platform,
        agent_version: reported.agent_version,
        hostname: reported.hostname,
        free_disk_bytes: reported.free_disk_bytes,
        health: reported.health,
        labels: store.labels(id)?,
    })
}

/// `GET /v1/devices[?after=ID&limit=N&filter=F]`: every device's view
/// (that `filter` selects, from the fleet index), or a page
/// of up to `limit` (at most [`MAX_PAGE`]) after `after`, in id order;
/// a page shorter than asked is the last. Read on a thread of its own:
/// neither on the async workers nor queued in the blocking pool behind
/// the file reads of thousands of downloads.
pub async fn list_devices(
    State(api): State<Api>,
    Query(q): Query<Page>,
) -> ApiResult<Json<Vec<DeviceView>>> {
    if q.limit == Some(0) {
        return Err(super::bad_request("limit=0: ask for 1 device at least"));
    }
    let store = api.store.clone();
    let filter = match q.filter.as_deref() {
        Some(f) => Some(super::fleet::parse_filter(Some(f))?),
        None => None,
    };
    let index = api.monitor.index.clone();
    let views = super::on_own_thread(move || -> ApiResult<Vec<DeviceView>> {
        let ids = match (filter, q.limit) {
            (Some(filter), limit) => {
                let (mut ids, _) = index.select(&filter, 0, usize::MAX);
                if let Some(after) = &q.after {
                    ids.retain(|id| id > after);
                }
                ids.truncate(limit.map_or(usize::MAX, |n| n.min(MAX_PAGE)));
                ids
            }
            (None, Some(n)) => store.device_ids_page(q.after.as_deref(), n.min(MAX_PAGE))?,
            (None, None) => store.device_ids()?,
        };
        ids.iter().map(|id| view(&store, id)).collect()
    })
    .await??;
    Ok(Json(views))
}

/// The most device views one page holds.
pub const MAX_PAGE: usize = 5_000;

/// Paging of `GET /v1/devices`.
#[derive(Debug, Default, Deserialize)]
pub struct Page {
    pub after: Option<String>,
    pub limit: Option<usize>,
    /// Only the devices this filter selects (see `GET /v1/fleet/devices`).
    pub filter: Option<String>,
}

/// A known device id, or 404 naming it.
pub(super) fn known(api: &Api, id: &str) -> ApiResult<()> {
    petrel_protocol::validate_device_id(id).map_err(super::bad_request)?;
    if api.store.knows_device(id)? {
        return Ok(());
    }
    let msg = format!("unknown device {id}: no such device has connected");
    Err(super::ApiError(axum::http::StatusCode::NOT_FOUND, msg))
}

pub async fn device_events(
    State(api): State<Api>,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<Event>>> {
    known(&api, &id)?;
    Ok(Json(api.store.events(&id)?))
}

/// `GET /v1/devices/{id}`: one device's view.
pub async fn show_device(
    State(api): State<Api>,
    Path(id): Path<String>,
) -> ApiResult<Json<DeviceView>> {
    known(&api, &id)?;
    Ok(Json(view(&api.store, &id)?))
}

/// `DELETE /v1/devices/{id}`: forgets a device (desired state, report,
/// presence, events) and clears its retained desired state on the broker,
/// so a device later provisioned under the same id starts clean. An agent
/// still running under that id shows up again with its next report.
pub async fn forget_device(
    State(api): State<Api>,
    Path(id): Path<String>,
) -> ApiResult<Json<DeviceView>> {
    known(&api, &id)?;
    let last = view(&api.store, &id)?;
    api.store.forget_device(&id)?;
    api.monitor.index.forget(&id);
    api.fleet.publish(&id);
    Ok(Json(last))
}
