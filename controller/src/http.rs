//! The HTTP API: images, releases, deployments, the fleet view, and the
//! blob server (`GET /v1/blobs/{digest}` with Range support).

use crate::blobs::BlobStore;
use crate::fleet::Fleet;
use crate::store::{Store, StoreError};
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use futures_util::TryStreamExt;
use petrel_protocol::{Digest, ImageConfig, ImageManifest, LayerDescriptor, ReleaseRef, SCHEMA};
use serde::Deserialize;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use tower::ServiceExt;

mod views;
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
}

/// An API error: status code and a message naming what failed.
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
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

fn bad_request(e: impl std::fmt::Display) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, e.to_string())
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

type ApiResult<T> = Result<T, ApiError>;

pub fn router(api: Api) -> Router {
    Router::new()
        .route("/v1/blobs/{digest}", get(get_blob))
        .route("/v1/deltas/{from}/{to}", get(get_delta))
        .route("/v1/layers/{diff_id}/paths", get(get_layer_paths))
        .route("/v1/layers", post(upload_layer))
        .route("/v1/images", get(list_images))
        .route("/v1/images/import", post(import_image))
        .route("/v1/images/{name}/{tag}", put(put_image))
        .route("/v1/releases", get(list_releases).post(create_release))
        .route("/v1/deployments", post(deploy))
        .route("/v1/devices", get(views::list_devices))
        .route("/v1/devices/{id}/events", get(views::device_events))
        .with_state(api)
}

async fn get_blob(State(api): State<Api>, Path(digest): Path<String>, req: Request) -> Response {
    let Ok(digest) = digest.parse::<Digest>() else {
        return bad_request(format!("invalid digest {digest:?}")).into_response();
    };
    if !api.blobs.has(&digest) {
        return ApiError(StatusCode::NOT_FOUND, format!("blob {digest} not found")).into_response();
    }
    serve_file(api.blobs.path(&digest), &digest, req).await
}

/// Serves a content-addressed file with Range support; the ETag is its
/// digest, so a resuming client can tell the bytes did not change.
async fn serve_file(path: std::path::PathBuf, digest: &Digest, req: Request) -> Response {
    match tower_http::services::ServeFile::new(path)
        .oneshot(req)
        .await
    {
        Ok(mut resp) => {
            if let Ok(v) = format!("\"{}\"", digest.hex()).parse() {
                resp.headers_mut().insert(axum::http::header::ETAG, v);
            }
            resp.map(Body::new)
        }
        Err(e) => internal(e).into_response(),
    }
}

async fn get_delta(
    State(api): State<Api>,
    Path((from, to)): Path<(String, String)>,
    req: Request,
) -> Response {
    let (Ok(from), Ok(to)) = (from.parse::<Digest>(), to.parse::<Digest>()) else {
        return bad_request("invalid diff_id in delta path").into_response();
    };
    match api.deltas.get(&from, &to).await {
        Ok(Some(delta)) => serve_file(delta.path, &delta.digest, req).await,
        Ok(None) => ApiError(
            StatusCode::NOT_FOUND,
            format!("no delta {from} -> {to} smaller than the blob: fetch the full blob"),
        )
        .into_response(),
        // a delta is an optimisation: when it cannot be made (e.g. a
        // source blob is damaged), the device falls back to the full blob
        Err(e) => {
            tracing::warn!(error = %e, "no delta served");
            ApiError(StatusCode::NOT_FOUND, format!("no delta: {e}")).into_response()
        }
    }
}

/// The path list as JSON, zstd-compressed (`Content-Encoding: zstd`) when
/// the client accepts it: a base layer lists thousands of paths that
/// compress ~10x, and devices sit on metered links.
async fn get_layer_paths(
    State(api): State<Api>,
    Path(diff_id): Path<String>,
    headers: axum::http::HeaderMap,
) -> ApiResult<Response> {
    let diff_id: Digest = diff_id.parse().map_err(bad_request)?;
    let (store, blobs, dir) = (api.store.clone(), api.blobs.clone(), api.paths_dir.clone());
    let d = diff_id.clone();
    let paths = tokio::task::spawn_blocking(move || {
        crate::layer_paths::layer_paths(&store, &blobs, &dir, &d)
    })
    .await
    .map_err(internal)?
    .map_err(internal)?;
    let paths = paths
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("layer {diff_id} not found")))?;
    let accepts_zstd = headers
        .get(axum::http::header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("zstd")));
    if !accepts_zstd {
        return Ok(Json(paths).into_response());
    }
    let json = serde_json::to_vec(&paths).map_err(internal)?;
    let packed = zstd::bulk::compress(&json, 9).map_err(internal)?;
    let headers = [
        (axum::http::header::CONTENT_TYPE, "application/json"),
        (axum::http::header::CONTENT_ENCODING, "zstd"),
    ];
    Ok((headers, packed).into_response())
}

/// Streams a request body into a temp file (uploads can be large).
async fn spool(api: &Api, body: Body) -> ApiResult<tempfile::TempPath> {
    let tmp = tempfile::NamedTempFile::new_in(&api.tmp_dir).map_err(internal)?;
    let (std_file, path) = tmp.into_parts();
    let mut file = tokio::fs::File::from_std(std_file);
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.try_next().await.map_err(bad_request)? {
        file.write_all(&chunk).await.map_err(internal)?;
    }
    file.flush().await.map_err(internal)?;
    Ok(path)
}

async fn upload_layer(State(api): State<Api>, body: Body) -> ApiResult<Json<LayerDescriptor>> {
    let path = spool(&api, body).await?;
    let blobs = api.blobs.clone();
    let layer = tokio::task::spawn_blocking(move || {
        let f = std::fs::File::open(&path).map_err(internal)?;
        blobs.put_layer_tar(f).map_err(bad_request)
    })
    .await
    .map_err(internal)??;
    Ok(Json(layer))
}

#[derive(Deserialize)]
struct NameTag {
    name: String,
    tag: String,
}

async fn import_image(
    State(api): State<Api>,
    Query(q): Query<NameTag>,
    body: Body,
) -> ApiResult<(StatusCode, Json<ImageManifest>)> {
    let path = spool(&api, body).await?;
    let blobs = api.blobs.clone();
    let manifest = tokio::task::spawn_blocking(move || {
        crate::images::import_tarball(&path, &q.name, &q.tag, &blobs).map_err(bad_request)
    })
    .await
    .map_err(internal)??;
    api.store.put_image(&manifest)?;
    Ok((StatusCode::CREATED, Json(manifest)))
}

/// Body of `PUT /v1/images/{name}/{tag}`: already-uploaded layers + config.
#[derive(Deserialize, serde::Serialize)]
pub struct ImageSpec {
    pub layers: Vec<LayerDescriptor>,
    #[serde(default)]
    pub config: ImageConfig,
}

async fn put_image(
    State(api): State<Api>,
    Path((name, tag)): Path<(String, String)>,
    Json(spec): Json<ImageSpec>,
) -> ApiResult<(StatusCode, Json<ImageManifest>)> {
    petrel_protocol::validate_name(&name, 128).map_err(bad_request)?;
    petrel_protocol::validate_name(&tag, 128).map_err(bad_request)?;
    if spec.layers.is_empty() {
        return Err(bad_request("an image needs at least one layer"));
    }
    if let Some(l) = spec.layers.iter().find(|l| !api.blobs.has(&l.digest)) {
        return Err(bad_request(format!(
            "layer blob {} was not uploaded",
            l.digest
        )));
    }
    let manifest = ImageManifest {
        schema: SCHEMA,
        name,
        tag,
        layers: spec.layers,
        config: spec.config,
    };
    api.store.put_image(&manifest)?;
    Ok((StatusCode::CREATED, Json(manifest)))
}

async fn list_images(State(api): State<Api>) -> ApiResult<Json<Vec<ImageManifest>>> {
    Ok(Json(api.store.images()?))
}

/// Body of `POST /v1/releases`.
#[derive(Deserialize, serde::Serialize)]
pub struct CreateRelease {
    pub name: String,
    pub version: String,
    /// The compose document (YAML) defining the services.
    pub compose: String,
}

async fn create_release(
    State(api): State<Api>,
    Json(req): Json<CreateRelease>,
) -> ApiResult<(StatusCode, Json<petrel_protocol::ReleaseManifest>)> {
    let store = api.store.clone();
    let release = crate::compose::to_release(&req.compose, &req.name, &req.version, |n, t| {
        store.image(n, t).ok().flatten()
    })
    .map_err(|e| match &e {
        crate::compose::ComposeError::UnknownImage { image, .. } => {
            bad_request(format!("{e}; {}", known_tags(&api.store, image)))
        }
        _ => bad_request(e),
    })?;
    api.store.put_release(&release)?;
    Ok((StatusCode::CREATED, Json(release)))
}

/// What the controller holds under an image reference's name (`image:`
/// without a tag means `latest`): for the error of a compose file naming
/// an image that is not there.
fn known_tags(store: &crate::store::Store, image: &str) -> String {
    let name = image.rsplit_once(':').map_or(image, |(n, _)| n);
    let mut tags: Vec<String> = store
        .images()
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m.name == name)
        .map(|m| m.tag)
        .collect();
    tags.sort();
    match tags.is_empty() {
        true => format!("no image is named {name} (see petrel image list)"),
        false => format!("{name} has the tags {}", tags.join(", ")),
    }
}

async fn list_releases(
    State(api): State<Api>,
) -> ApiResult<Json<Vec<petrel_protocol::ReleaseManifest>>> {
    Ok(Json(api.store.releases()?))
}

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
}

/// One device's new desired generation.
#[derive(Deserialize, serde::Serialize, Debug)]
pub struct Deployed {
    pub device: String,
    pub generation: u64,
}

async fn deploy(State(api): State<Api>, Json(req): Json<Deploy>) -> ApiResult<Json<Vec<Deployed>>> {
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
    let _guard = api.deploy_lock.lock().await;
    let mut out = Vec::new();
    for id in &req.devices {
        prepare_deltas(&api, id, &release);
        // durable first, then published: a broker restart re-publishes it
        let desired = api
            .store
            .set_desired(id, Some(release.clone()), crate::now_ms())?;
        api.fleet
            .publish_desired(&desired)
            .await
            .map_err(internal)?;
        out.push(Deployed {
            device: id.clone(),
            generation: desired.generation,
        });
    }
    Ok(Json(out))
}

/// Starts generating, ahead of the device asking, the deltas it will want:
/// each new layer against the layer at the same position of the same
/// service in the release the device reports running.
fn prepare_deltas(api: &Api, device: &str, release: &petrel_protocol::ReleaseManifest) {
    let Some(current) = api
        .store
        .reported(device)
        .ok()
        .flatten()
        .and_then(|r| r.current)
    else {
        return;
    };
    let Ok(old) = api.store.release(&current) else {
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
