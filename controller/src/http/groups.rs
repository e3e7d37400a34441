//! Saved groups: a name for a selector, with optional update rules: a
//! maintenance window, how long an application's update lock may defer
//! the swap, and a data budget. A device's desired state carries each rule
//! from the first group (by name) that selects it and sets that rule: the
//! device downloads and installs at once, and swaps only inside the
//! window, once no lock holds it (or the override time has passed).

use super::{bad_request, Api, ApiError, ApiResult};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use petrel_protocol::policy::{parse_bytes, parse_seconds, DataBudget, UpdatePolicy};
use petrel_protocol::rollout::Selector;
use petrel_protocol::window::Window;
use serde::{Deserialize, Serialize};

/// A saved group.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Group {
    pub name: String,
    pub selector: Selector,
    #[serde(default)]
    pub window: Option<Window>,
    /// Swap despite an update lock after deferring this long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_override_after_s: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<DataBudget>,
}

impl Group {
    fn policy(&self) -> UpdatePolicy {
        UpdatePolicy {
            window: self.window.clone(),
            lock_override_after_s: self.lock_override_after_s,
            budget: self.budget,
        }
    }
}

/// Body of `POST /v1/groups`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupSpec {
    pub name: String,
    pub selector: String,
    /// `mon-fri 02:00-04:00 Europe/Berlin`; none: swaps any time.
    #[serde(default)]
    pub window: Option<String>,
    /// `30m`, `2h`: swap despite an update lock after deferring this long.
    #[serde(default)]
    pub lock_override_after: Option<String>,
    /// `50MB`: most bytes one update may download.
    #[serde(default)]
    pub max_bytes: Option<String>,
    /// `allow` (default) or `deny`: a full blob when no delta serves.
    #[serde(default)]
    pub full_fallback: Option<String>,
}

impl GroupSpec {
    fn budget(&self) -> Result<Option<DataBudget>, String> {
        if self.max_bytes.is_none() && self.full_fallback.is_none() {
            return Ok(None);
        }
        Ok(Some(DataBudget {
            max_bytes: self.max_bytes.as_deref().map(parse_bytes).transpose()?,
            full_fallback: self
                .full_fallback
                .as_deref()
                .map(str::parse)
                .transpose()?
                .unwrap_or_default(),
        }))
    }
}

/// `POST /v1/groups`: creates or replaces a group. Devices it selects
/// that have not finished their update get their desired state again
/// (a new generation) carrying the new window, so a held swap follows it.
pub(super) async fn put(
    State(api): State<Api>,
    Json(spec): Json<GroupSpec>,
) -> ApiResult<Json<Group>> {
    petrel_protocol::validate_name(&spec.name, 64).map_err(bad_request)?;
    let group = Group {
        selector: spec.selector.parse().map_err(bad_request)?,
        window: spec
            .window
            .as_deref()
            .map(str::parse)
            .transpose()
            .map_err(bad_request)?,
        lock_override_after_s: spec
            .lock_override_after
            .as_deref()
            .map(parse_seconds)
            .transpose()
            .map_err(bad_request)?,
        budget: spec.budget().map_err(bad_request)?,
        name: spec.name,
    };
    api.store.put_group(&group.name, &group)?;
    let _guard = api.deploy_lock.lock().await;
    for id in api.store.device_ids()? {
        let view = super::views::view(&api.store, &id)?;
        let pending = view.desired.is_some() && !view.converged();
        if pending && group.selector.matches(&view.facts()) {
            let release = api.store.desired(&id)?.and_then(|d| d.release);
            super::deploy::publish(&api, &id, release)?;
        }
    }
    Ok(Json(group))
}

/// `GET /v1/groups`
pub(super) async fn list(State(api): State<Api>) -> ApiResult<Json<Vec<Group>>> {
    Ok(Json(api.store.groups()?))
}

/// `DELETE /v1/groups/{name}`
pub(super) async fn delete(
    State(api): State<Api>,
    Path(name): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    match api.store.delete_group(&name)? {
        true => Ok(Json(serde_json::json!({ "deleted": name }))),
        false => Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no group {name:?}"),
        )),
    }
}

/// The update rules a device's desired state carries: each from the first
/// group (by name) that selects the device and sets it.
pub(crate) fn policy_for(api: &Api, device: &str) -> ApiResult<UpdatePolicy> {
    let groups: Vec<Group> = api.store.groups()?;
    let mut rules = UpdatePolicy::default();
    if groups.iter().all(|g| g.policy() == rules) {
        return Ok(rules);
    }
    let facts = super::views::view(&api.store, device)?.facts();
    for g in groups.iter().filter(|g| g.selector.matches(&facts)) {
        rules = rules.or(g.policy());
    }
    Ok(rules)
}
