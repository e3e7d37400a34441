//! Serving what devices download: blobs and deltas (Range, ETag), layer
//! path lists, and raw layer uploads.

use super::{bad_request, internal, spool, Api, ApiError, ApiResult};
use crate::deltas::Ready;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use petrel_protocol::{Digest, LayerDescriptor};
use tower::ServiceExt;

pub(super) async fn get_blob(
    State(api): State<Api>,
    Path(digest): Path<String>,
    req: Request,
) -> Response {
    let Ok(digest) = digest.parse::<Digest>() else {
        return bad_request(format!("invalid digest {digest:?}")).into_response();
    };
    if !api.blobs.has(&digest) {
        return ApiError(StatusCode::NOT_FOUND, format!("blob {digest} not found")).into_response();
    }
    let sent = api.metrics.bytes_served.with_label_values(&["blob"]);
    serve_file(api.blobs.path(&digest), &digest, req, &sent).await
}

/// Serves a content-addressed file with Range support; the ETag is its
/// digest, so a resuming client can tell the bytes did not change. `sent`
/// counts the bytes the answer carries (its Content-Length).
async fn serve_file(
    path: std::path::PathBuf,
    digest: &Digest,
    req: Request,
    sent: &prometheus::IntCounter,
) -> Response {
    match tower_http::services::ServeFile::new(path)
        .oneshot(req)
        .await
    {
        Ok(mut resp) => {
            if let Ok(v) = format!("\"{}\"", digest.hex()).parse() {
                resp.headers_mut().insert(axum::http::header::ETAG, v);
            }
            let length = resp
                .headers()
                .get(axum::http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
            sent.inc_by(length.unwrap_or(0));
            resp.map(Body::new)
        }
        Err(e) => internal(e).into_response(),
    }
}

pub(super) async fn get_delta(
    State(api): State<Api>,
    Path((from, to)): Path<(String, String)>,
    axum::Extension(caller): axum::Extension<crate::auth::Caller>,
    req: Request,
) -> Response {
    let (Ok(from), Ok(to)) = (from.parse::<Digest>(), to.parse::<Digest>()) else {
        return bad_request("invalid diff_id in delta path").into_response();
    };
    // asking again for a pair under way costs no new encoding: not charged
    let known = api.deltas.is_known(&from, &to);
    if let Err(refused) = api.delta_guard.admit(&api, &caller, &to, known) {
        return refused.into_response();
    }
    let result = if api.deltas.is_cached(&from, &to) {
        "hit"
    } else {
        "miss"
    };
    api.metrics.delta_cache.with_label_values(&[result]).inc();
    match api.deltas.get_within(&from, &to, DELTA_HOLD).await {
        Ok(Ready::Preparing(after)) => preparing(&from, &to, after),
        Ok(Ready::Done(Some(delta))) => {
            let sent = api.metrics.bytes_served.with_label_values(&["delta"]);
            let whole = !req.headers().contains_key(axum::http::header::RANGE);
            let full = api.store.layer(&to).ok().flatten().map(|l| l.size);
            let resp = serve_file(delta.path, &delta.digest, req, &sent).await;
            if let (true, true, Some(full)) = (whole, resp.status().is_success(), full) {
                api.metrics
                    .delta_saved
                    .inc_by(full.saturating_sub(delta.size));
            }
            resp
        }
        Ok(Ready::Done(None)) => ApiError(
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

/// How long a delta request waits for an encoding under way before it is
/// told to come back: short, so no connection is held for minutes.
const DELTA_HOLD: std::time::Duration = std::time::Duration::from_secs(2);

/// 503 with Retry-After: the delta is being prepared; the device asks
/// again then instead of fetching the full blob.
fn preparing(from: &Digest, to: &Digest, after: std::time::Duration) -> Response {
    let secs = after.as_secs().max(1).to_string();
    let body = format!("delta {from} -> {to} is being prepared: retry after {secs} s");
    let mut resp = ApiError(StatusCode::SERVICE_UNAVAILABLE, body).into_response();
    if let Ok(v) = secs.parse() {
        resp.headers_mut()
            .insert(axum::http::header::RETRY_AFTER, v);
    }
    resp
}

/// The path list as JSON, zstd-compressed (`Content-Encoding: zstd`) when
/// the client accepts it: a base layer lists thousands of paths that
/// compress ~10x, and devices sit on metered links.
pub(super) async fn get_layer_paths(
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

/// `POST /v1/layers`: one uncompressed layer tar, stored zstd'd.
pub(super) async fn upload_layer(
    State(api): State<Api>,
    headers: axum::http::HeaderMap,
    body: Body,
) -> ApiResult<Json<LayerDescriptor>> {
    let path = spool(&api, &headers, body).await?;
    let blobs = api.blobs.clone();
    let layer = tokio::task::spawn_blocking(move || {
        let f = std::fs::File::open(&path).map_err(internal)?;
        blobs.put_layer_tar(f).map_err(bad_request)
    })
    .await
    .map_err(internal)??;
    Ok(Json(layer))
}
