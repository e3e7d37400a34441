//! The fleet at a glance, for the dashboard and `petrel watch`: the
//! summary, filtered pages of devices, alerts, and the live stream
//! (Server-Sent Events), all read from the in-memory fleet index.

use super::views::{view, DeviceView};
use super::{bad_request, Api, ApiResult};
use crate::monitor::alerts::Alert;
use crate::monitor::LiveTick;
use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Json;
use futures_util::Stream;
use petrel_protocol::rollout::Selector;
use serde::{Deserialize, Serialize};
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

/// The most devices one filtered page holds.
pub const MAX_FLEET_PAGE: usize = 500;

/// `GET /v1/fleet/summary`: counts by phase, presence, release; alerts.
pub async fn summary(State(api): State<Api>) -> Json<LiveTick> {
    Json(api.monitor.tick_now(Vec::new(), false))
}

/// Query of `GET /v1/fleet/devices`.
#[derive(Debug, Default, Deserialize)]
pub struct FleetQuery {
    /// A selector over labels and facts, with `phase`, `release`,
    /// `online` and `id~text` (see [`crate::monitor::index::filter_facts`]).
    #[serde(default)]
    pub filter: Option<String>,
    #[serde(default)]
    pub offset: usize,
    #[serde(default)]
    pub limit: Option<usize>,
}

/// One page of a filtered fleet.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FleetPage {
    /// Devices the filter selects in all.
    pub total: usize,
    pub offset: usize,
    pub devices: Vec<DeviceView>,
}

/// A filter as the API takes it: empty selects every device.
pub fn parse_filter(filter: Option<&str>) -> ApiResult<Selector> {
    filter.unwrap_or("").parse().map_err(bad_request)
}

/// `GET /v1/fleet/devices?filter=&offset=&limit=`: a page (default 50,
/// at most [`MAX_FLEET_PAGE`]) of the devices a filter selects, in id
/// order, with their number.
pub async fn devices(
    State(api): State<Api>,
    Query(q): Query<FleetQuery>,
) -> ApiResult<Json<FleetPage>> {
    let filter = parse_filter(q.filter.as_deref())?;
    let limit = q.limit.unwrap_or(50).clamp(1, MAX_FLEET_PAGE);
    let (ids, total) = api.monitor.index.select(&filter, q.offset, limit);
    let store = api.store.clone();
    let devices = super::on_own_thread(move || -> ApiResult<Vec<DeviceView>> {
        ids.iter().map(|id| view(&store, id)).collect()
    })
    .await??;
    Ok(Json(FleetPage {
        total,
        offset: q.offset,
        devices,
    }))
}

/// Query of `GET /v1/alerts`.
#[derive(Debug, Default, Deserialize)]
pub struct AlertQuery {
    #[serde(default)]
    pub device: Option<String>,
    /// Only the active ones.
    #[serde(default)]
    pub active: bool,
    #[serde(default)]
    pub limit: Option<usize>,
}

/// `GET /v1/alerts[?device=ID&active=true&limit=N]`: newest first.
pub async fn alerts(
    State(api): State<Api>,
    Query(q): Query<AlertQuery>,
) -> ApiResult<Json<Vec<Alert>>> {
    let limit = q.limit.unwrap_or(100).min(10_000);
    if q.active {
        let mut active = api.monitor.alerts.active();
        active.retain(|a| q.device.as_ref().is_none_or(|d| &a.device_id == d));
        active.truncate(limit);
        return Ok(Json(active));
    }
    let alerts = api.monitor.alerts.clone();
    let recent = super::on_own_thread(move || alerts.recent(q.device.as_deref(), limit)).await??;
    Ok(Json(recent))
}

/// `GET /v1/stream`: Server-Sent Events, one `tick` ([`LiveTick`]) at
/// once and then whenever devices change (every 15 s when none do). A
/// subscriber too slow to keep up gets a tick with `all` set.
pub async fn stream(State(api): State<Api>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let first = Some(api.monitor.tick_now(Vec::new(), true));
    let rx = api.monitor.subscribe();
    let monitor = api.monitor.clone();
    let ticks = futures_util::stream::unfold((first, rx), move |(first, mut rx)| {
        let monitor = monitor.clone();
        async move {
            if let Some(tick) = first {
                return Some((Ok(tick_event(&tick)), (None, rx)));
            }
            let next = tokio::select! {
                next = rx.recv() => next,
                () = monitor.closed() => return None,
            };
            let tick = match next {
                Ok(tick) => tick_event(&tick),
                Err(RecvError::Lagged(_)) => tick_event(&monitor.tick_now(Vec::new(), true)),
                Err(RecvError::Closed) => return None,
            };
            Some((Ok(tick), (None, rx)))
        }
    });
    Sse::new(ticks).keep_alive(KeepAlive::new().interval(Duration::from_secs(10)))
}

fn tick_event(tick: &LiveTick) -> Event {
    Event::default()
        .event("tick")
        .data(serde_json::to_string(tick).unwrap_or_default())
}
