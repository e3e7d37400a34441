//! Saved groups: a name for a selector, with an optional maintenance
//! window. A device's desired state carries the window of the first group
//! (by name) that selects it and has one: the device downloads and
//! installs at once, and swaps only inside the window.

use super::{bad_request, Api, ApiError, ApiResult};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
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
}

/// Body of `POST /v1/groups`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupSpec {
    pub name: String,
    pub selector: String,
    /// `mon-fri 02:00-04:00 Europe/Berlin`; none: swaps any time.
    #[serde(default)]
    pub window: Option<String>,
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

/// The maintenance window a device's desired state carries.
pub(crate) fn window_for(api: &Api, device: &str) -> ApiResult<Option<Window>> {
    let groups: Vec<Group> = api.store.groups()?;
    if groups.iter().all(|g| g.window.is_none()) {
        return Ok(None);
    }
    let facts = super::views::view(&api.store, device)?.facts();
    Ok(groups
        .into_iter()
        .find(|g| g.window.is_some() && g.selector.matches(&facts))
        .and_then(|g| g.window))
}
