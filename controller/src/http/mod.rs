//! The HTTP API: images, releases, deployments, the fleet view, and the
//! blob server (`GET /v1/blobs/{digest}` with Range support).
//!
//! One file per concern: `blobs` (what devices download, layer uploads),
//! `images`, `releases`, `deploy`, `views` (the fleet and its devices),
//! `logs` (a service's log tail, asked of the device).

use crate::blobs::BlobStore;
use crate::fleet::Fleet;
use crate::store::{Store, StoreError};
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use futures_util::TryStreamExt;
use petrel_protocol::Digest;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;

mod blobs;
mod delta_guard;
pub(crate) mod deploy;
pub mod fleet;
pub mod groups;
mod images;
mod logs;
mod releases;
pub mod rollouts;
pub mod security;
pub mod tls;
pub mod views;

pub use deploy::{Deploy, Deployed, Undeployed};
pub use images::ImageSpec;
pub use releases::{CreateRelease, CreatedRelease};
pub use views::DeviceView;

/// Shared state of the handlers.
#[derive(Clone)]
pub struct Api {
    pub store: Store,
    pub blobs: Arc<BlobStore>,
    pub fleet: Fleet,
    pub deltas: crate::deltas::DeltaCache,
    pub tmp_dir: std::path::PathBuf,
    /// Cache of layer path lists.
    pub paths_dir: std::path::PathBuf,
    /// Serialises deployments so generations are assigned one at a time.
    pub deploy_lock: Arc<tokio::sync::Mutex<()>>,
    /// One collection at a time.
    pub gc_lock: Arc<std::sync::Mutex<()>>,
    /// Blobs younger than this are kept by GC ([`GC_MIN_AGE`] by default).
    pub gc_min_age: std::time::Duration,
    /// Message limits: a release whose desired state would not fit is
    /// refused at creation.
    pub limits: petrel_protocol::Limits,
    /// Largest upload accepted (413 beyond).
    pub max_upload_bytes: u64,
    /// Tokens and device certificates.
    pub auth: crate::auth::Auth,
    /// Where devices reach this controller.
    pub advertised: security::Advertised,
    /// Who may have deltas computed, how often.
    pub delta_guard: Arc<delta_guard::DeltaGuard>,
    /// What `GET /metrics` serves.
    pub metrics: crate::metrics::Metrics,
    /// The fleet index, alerts and live stream.
    pub monitor: crate::monitor::Monitor,
    /// Whether the broker is the embedded one (its connections counted).
    pub embedded_broker: bool,
    /// The rollout driver.
    pub rollouts: crate::rollouts::Rollouts,
}

/// An API error: status code and a message naming what failed.
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub String);

/// Data directories whose paths never appear in an answer (see
/// [`hide_paths_under`]).
static HIDDEN: std::sync::RwLock<Vec<String>> = std::sync::RwLock::new(Vec::new());

/// From now on, answers name files under `dir` as `<data>/…`: clients are
/// told what failed, not where the controller keeps its files.
pub fn hide_paths_under(dir: &std::path::Path) {
    let mut hidden = HIDDEN
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for form in [Some(dir.to_path_buf()), dir.canonicalize().ok()]
        .into_iter()
        .flatten()
    {
        let text = form.display().to_string();
        if !text.is_empty() && !hidden.contains(&text) {
            hidden.push(text);
        }
    }
    // longest first, so a nested directory is replaced whole
    hidden.sort_by_key(|t| std::cmp::Reverse(t.len()));
}

fn scrub(message: String) -> String {
    let hidden = HIDDEN
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    hidden
        .iter()
        .fold(message, |m, dir| m.replace(dir.as_str(), "<data>"))
}

impl IntoResponse for ApiError {
    /// A 500's cause (which may name the controller's files) goes to the
    /// log under a reference; the client gets the reference only. Other
    /// answers name the controller's files as `<data>/…`.
    fn into_response(self) -> Response {
        static REFS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let message = match self.0 {
            StatusCode::INTERNAL_SERVER_ERROR => {
                let r = REFS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::error!(reference = r, error = %self.1, "request failed");
                format!("internal error (reference {r} in the controller's log)")
            }
            _ => scrub(self.1),
        };
        (self.0, Json(serde_json::json!({ "error": message }))).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let code = match e {
            StoreError::NoRelease(_) => StatusCode::NOT_FOUND,
            StoreError::ReleaseConflict(_) => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(code, e.to_string())
    }
}

pub(super) fn bad_request(e: impl std::fmt::Display) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, e.to_string())
}

fn too_large(limit: u64) -> ApiError {
    let msg = format!(
        "upload exceeds the controller's limit of {limit} bytes (petrel-controller serve --max-upload-bytes)"
    );
    ApiError(StatusCode::PAYLOAD_TOO_LARGE, msg)
}

/// A write that failed: 507 when the disk is full, else 500.
pub(super) fn insufficient_storage(e: std::io::Error) -> ApiError {
    match e.kind() {
        std::io::ErrorKind::StorageFull => ApiError(
            StatusCode::INSUFFICIENT_STORAGE,
            "the controller's disk is full".into(),
        ),
        _ => internal(e),
    }
}

/// Runs `f` on a new thread: for an operator's occasional long read, which
/// must not wait in the blocking pool's queue behind the file reads of a
/// fleet downloading at once (at 10,000 devices: a minute).
pub(super) async fn on_own_thread<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> ApiResult<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("petrel-read".into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(internal)?;
    rx.await.map_err(internal)
}

pub(super) fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

pub(super) type ApiResult<T> = Result<T, ApiError>;

pub fn router(api: Api) -> Router {
    Router::new()
        .route("/v1/blobs/{digest}", get(blobs::get_blob))
        .route("/v1/deltas/{from}/{to}", get(blobs::get_delta))
        .route("/v1/layers/{diff_id}/paths", get(blobs::get_layer_paths))
        .route("/v1/layers", post(blobs::upload_layer))
        .route("/v1/images", get(images::list_images))
        .route("/v1/images/import", post(images::import_image))
        .route(
            "/v1/images/{name}/{tag}",
            put(images::put_image).delete(images::delete_image),
        )
        .route(
            "/v1/releases",
            get(releases::list_releases).post(releases::create_release),
        )
        .route(
            "/v1/releases/{name}/{version}",
            get(releases::show_release).delete(releases::delete_release),
        )
        .route("/v1/gc", post(collect_garbage))
        .route("/v1/keys", get(signing_key))
        .route("/v1/limits", get(limits))
        .route("/v1/keys/rotate", post(rotate_key))
        .route("/v1/keys/next", post(next_key))
        .route("/v1/keys/endorsed", post(install_endorsed_key))
        .route("/v1/deployments", post(deploy::deploy))
        .route("/v1/devices", get(views::list_devices))
        .route(
            "/v1/devices/{id}",
            get(views::show_device).delete(views::forget_device),
        )
        .route("/v1/devices/{id}/events", get(views::device_events))
        .route("/v1/devices/{id}/logs/{service}", get(logs::device_logs))
        .route(
            "/v1/devices/{id}/certificate",
            post(security::issue_certificate),
        )
        .route("/v1/devices/{id}/revoke", post(security::revoke))
        .route("/v1/devices/{id}/labels", post(rollouts::label))
        .route(
            "/v1/devices/{id}/desired",
            axum::routing::delete(deploy::undeploy),
        )
        .route("/v1/rollouts", get(rollouts::list).post(rollouts::create))
        .route("/v1/rollouts/{id}", get(rollouts::status))
        .route("/v1/groups", get(groups::list).post(groups::put))
        .route("/v1/groups/{name}", axum::routing::delete(groups::delete))
        .route("/v1/rollouts/{id}/{verb}", post(rollouts::command))
        .route(
            "/v1/tokens",
            get(security::list_tokens).post(security::create_token),
        )
        .route(
            "/v1/tokens/{id}",
            axum::routing::delete(security::delete_token),
        )
        .route("/v1/fleet/summary", get(fleet::summary))
        .route("/v1/fleet/devices", get(fleet::devices))
        .route("/v1/alerts", get(fleet::alerts))
        .route("/v1/stream", get(fleet::stream))
        .route("/metrics", get(metrics))
        .merge(crate::dashboard::routes())
        .layer(axum::middleware::from_fn_with_state(
            api.clone(),
            security::authorize,
        ))
        .layer(axum::middleware::from_fn_with_state(api.clone(), timed))
        .with_state(api)
}

/// `GET /metrics`: the Prometheus text exposition format; the fleet's
/// gauges are read from the fleet index, the alerts and the rollouts.
async fn metrics(State(api): State<Api>) -> ApiResult<impl axum::response::IntoResponse> {
    let summary = api.monitor.index.summary();
    let mut rollouts: Vec<crate::rollouts::RolloutRecord> =
        crate::rollouts::persist::summaries(&api.store)?;
    rollouts.sort_by_key(|r| std::cmp::Reverse(r.rollout.created_ms));
    rollouts.truncate(ROLLOUTS_IN_METRICS);
    let mut rollout_devices = Vec::new();
    for r in &rollouts {
        for (wave, t) in r.rollout.tallies.iter().enumerate() {
            let id = &r.rollout.id;
            for (state, n) in [
                ("queued", t.queued),
                ("started", t.started),
                ("succeeded", t.succeeded),
                ("failed", t.failed),
                ("other", t.other),
            ] {
                rollout_devices.push(((id.clone(), wave, state), u64::from(n)));
            }
        }
    }
    let text = api.metrics.scrape(&crate::metrics::FleetGauges {
        phases: summary.phases,
        online: summary.online,
        alerts_active: api.monitor.alerts.active_counts(),
        rollout_devices,
        mqtt_connections: api
            .embedded_broker
            .then(crate::broker::front::open_connections),
    });
    Ok((
        [(axum::http::header::CONTENT_TYPE, prometheus::TEXT_FORMAT)],
        text,
    ))
}

/// Rollouts whose waves `/metrics` reports (the most recent).
const ROLLOUTS_IN_METRICS: usize = 50;

/// Times every request into the latency histogram, by route pattern (not
/// the path: device ids and digests would make a series each).
async fn timed(
    State(api): State<Api>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("unmatched".to_string(), |p| p.as_str().to_string());
    let started = std::time::Instant::now();
    let resp = next.run(req).await;
    api.metrics
        .http_seconds
        .with_label_values(&[route.as_str(), resp.status().as_str()])
        .observe(started.elapsed().as_secs_f64());
    resp
}

/// Streams a request body into a temp file (uploads can be large).
pub(super) async fn spool(
    api: &Api,
    headers: &axum::http::HeaderMap,
    body: Body,
) -> ApiResult<tempfile::TempPath> {
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > api.max_upload_bytes) {
        return Err(too_large(api.max_upload_bytes));
    }
    let tmp = tempfile::NamedTempFile::new_in(&api.tmp_dir).map_err(internal)?;
    let (std_file, path) = tmp.into_parts();
    let mut file = tokio::fs::File::from_std(std_file);
    let mut stream = body.into_data_stream();
    let mut received = 0u64;
    while let Some(chunk) = stream.try_next().await.map_err(bad_request)? {
        received += chunk.len() as u64;
        if received > api.max_upload_bytes {
            // the spool file goes with `path` (a TempPath)
            return Err(too_large(api.max_upload_bytes));
        }
        file.write_all(&chunk).await.map_err(insufficient_storage)?;
    }
    file.flush().await.map_err(internal)?;
    Ok(path)
}

/// Blobs younger than this are never collected: an upload whose image is
/// not registered yet (`POST /v1/layers`, then `PUT /v1/images/...`).
pub const GC_MIN_AGE: std::time::Duration = std::time::Duration::from_secs(600);

impl Api {
    /// Removes blobs, deltas and path lists nothing references; `doomed`
    /// blobs (the layers of what was just deleted) go whatever their age.
    pub async fn collect_garbage(
        &self,
        doomed: Vec<Digest>,
    ) -> ApiResult<Json<crate::gc::GcReport>> {
        let api = self.clone();
        let report = tokio::task::spawn_blocking(move || {
            let _busy = api.gc_lock.lock();
            let dirs = crate::gc::CacheDirs {
                deltas: api.deltas.dir(),
                paths: &api.paths_dir,
            };
            let doomed = doomed.into_iter().collect();
            crate::gc::collect(&api.store, &api.blobs, dirs, api.gc_min_age, &doomed)
        })
        .await
        .map_err(internal)??;
        if report.blobs + report.deltas > 0 {
            tracing::info!(?report, "garbage collected");
        }
        Ok(Json(report))
    }
}

/// `POST /v1/gc`
async fn collect_garbage(State(api): State<Api>) -> ApiResult<Json<crate::gc::GcReport>> {
    api.collect_garbage(Vec::new()).await
}

/// The controller's signing key, as agents pin it.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct KeyView {
    /// Public key, hex: `controller_key` in agent.toml.
    pub public_key: String,
    pub id: String,
}

fn key_view(key: petrel_protocol::PublicKey) -> Json<KeyView> {
    Json(KeyView {
        public_key: key.to_hex(),
        id: key.id(),
    })
}

/// `GET /v1/keys`
async fn signing_key(State(api): State<Api>) -> Json<KeyView> {
    key_view(api.fleet.public_key())
}

/// `POST /v1/keys/rotate`: a new signing key endorsed by the current one;
/// every desired state is re-published signed by it.
async fn rotate_key(State(api): State<Api>) -> ApiResult<Json<KeyView>> {
    let key = api.fleet.rotate_key(&api.store).map_err(internal)?;
    Ok(key_view(key))
}

/// `POST /v1/keys/next`: a key prepared for a root-endorsed rotation.
async fn next_key(State(api): State<Api>) -> ApiResult<Json<KeyView>> {
    Ok(key_view(api.fleet.prepare_next_key().map_err(internal)?))
}

/// `POST /v1/keys/endorsed`: installs the prepared key, endorsed offline
/// by a root key devices pin (the root key never reaches the controller).
async fn install_endorsed_key(
    State(api): State<Api>,
    Json(endorsement): Json<petrel_protocol::Endorsement>,
) -> ApiResult<Json<KeyView>> {
    let key = api
        .fleet
        .install_endorsed_key(&api.store, endorsement)
        .map_err(bad_request)?;
    Ok(key_view(key))
}

/// What the controller accepts.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct LimitsView {
    pub max_upload_bytes: u64,
    pub max_message_bytes: usize,
}

/// `GET /v1/limits`
async fn limits(State(api): State<Api>) -> Json<LimitsView> {
    Json(LimitsView {
        max_upload_bytes: api.max_upload_bytes,
        max_message_bytes: api.limits.max_message_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn answers_name_the_controllers_files_relative_to_its_data_dir() {
        hide_paths_under(std::path::Path::new("/var/lib/petrel-scrub"));
        let said = scrub("i/o on /var/lib/petrel-scrub/blobs/sha256/ab: incomplete frame".into());
        assert_eq!(said, "i/o on <data>/blobs/sha256/ab: incomplete frame");
        let response =
            ApiError(StatusCode::INTERNAL_SERVER_ERROR, "/etc/secret".into()).into_response();
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let body = String::from_utf8_lossy(&body);
        assert!(
            body.contains("reference") && !body.contains("/etc/secret"),
            "{body}"
        );
    }
}
