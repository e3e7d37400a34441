//! `GET /v1/devices/{id}/logs/{service}?tail=N`: the last lines of a
//! service's output, asked of the device over MQTT (see
//! [`crate::fleet::logs`]). Needs the operator role (see
//! [`crate::auth::need`]): a service's output may carry what a viewer's
//! dashboard should not show, and each request makes the device work.

use super::{bad_request, ApiError, ApiResult};
use crate::fleet::logs::LogsError;
use crate::http::Api;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use petrel_protocol::LogReply;
use serde::Deserialize;
use std::time::Duration;

/// How long a device has to answer.
pub const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// Lines asked for when the query names none.
pub const DEFAULT_TAIL: u32 = 100;

#[derive(Debug, Deserialize)]
pub struct TailQuery {
    /// Text, so a malformed number is our 400 naming it, not the
    /// extractor's.
    pub tail: Option<String>,
}

/// 404 for an unknown device (or a service the device does not run, its
/// own words), 400 for a bad tail or service name, 504 if the device does
/// not answer within [`ANSWER_WITHIN`]; else the device's reply.
pub async fn device_logs(
    State(api): State<Api>,
    Path((id, service)): Path<(String, String)>,
    Query(q): Query<TailQuery>,
) -> ApiResult<Json<LogReply>> {
    super::views::known(&api, &id)?;
    let tail = match q.tail.as_deref() {
        None => DEFAULT_TAIL,
        Some(t) => t
            .parse()
            .map_err(|_| bad_request(format!("tail={t:?}: give a number of lines")))?,
    };
    let reply = api
        .fleet
        .request_logs(&id, &service, tail, ANSWER_WITHIN)
        .await
        .map_err(|e| match e {
            LogsError::Invalid(_) => bad_request(e),
            LogsError::Timeout { .. } => {
                ApiError(StatusCode::GATEWAY_TIMEOUT, with_presence(&api, &id, e))
            }
            LogsError::Publish(_) => ApiError(StatusCode::BAD_GATEWAY, e.to_string()),
        })?;
    match &reply.error {
        Some(why) => Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("device {id}: {why}"),
        )),
        None => Ok(Json(reply)),
    }
}

/// The timeout's message, with when the controller last heard of the
/// device.
fn with_presence(api: &Api, id: &str, e: LogsError) -> String {
    match api.store.presence(id) {
        Ok(Some(p)) => {
            let ago = crate::now_ms().saturating_sub(p.last_seen_ms) / 1000;
            let state = if p.online { "online" } else { "offline" };
            format!("{e}; last seen {state} {ago} s ago")
        }
        _ => e.to_string(),
    }
}
