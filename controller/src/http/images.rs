//! Registering images: import of an archive, registration of uploaded
//! layers (both audited against the devices' entry rules), listing, and
//! deletion (refused while a release uses the image).

use super::{bad_request, internal, spool, Api, ApiError, ApiResult};
use crate::images::Imported;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use petrel_protocol::{ImageConfig, ImageManifest, LayerDescriptor, SCHEMA};
use serde::Deserialize;

#[derive(Deserialize)]
pub(super) struct ImportQuery {
    name: String,
    tag: String,
    /// The user's file name, shown in errors instead of the spool's.
    #[serde(default)]
    file: Option<String>,
}

pub(super) async fn import_image(
    State(api): State<Api>,
    Query(q): Query<ImportQuery>,
    headers: axum::http::HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<Imported>)> {
    let path = spool(&api, &headers, body).await?;
    let blobs = api.blobs.clone();
    let shown = q.file.unwrap_or_else(|| "the uploaded archive".into());
    let manifest = tokio::task::spawn_blocking(move || {
        crate::images::import_tarball(&path, &shown, &q.name, &q.tag, &blobs).map_err(bad_request)
    })
    .await
    .map_err(internal)??;
    api.store
        .put_image_variants(&manifest.image, &manifest.variants)?;
    Ok((StatusCode::CREATED, Json(manifest)))
}

/// Body of `PUT /v1/images/{name}/{tag}`: already-uploaded layers + config.
#[derive(Deserialize, serde::Serialize)]
pub struct ImageSpec {
    pub layers: Vec<LayerDescriptor>,
    #[serde(default)]
    pub config: ImageConfig,
    /// What the layers are built for; none: runs anywhere.
    #[serde(default)]
    pub platform: Option<petrel_protocol::Platform>,
}

pub(super) async fn put_image(
    State(api): State<Api>,
    Path((name, tag)): Path<(String, String)>,
    Json(spec): Json<ImageSpec>,
) -> ApiResult<(StatusCode, Json<Imported>)> {
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
    let mut config = spec.config;
    config.created.get_or_insert_with(crate::now_rfc3339);
    let manifest = ImageManifest {
        schema: SCHEMA,
        name,
        tag,
        layers: spec.layers,
        config,
        platform: spec.platform,
    };
    let blobs = api.blobs.clone();
    let imported =
        tokio::task::spawn_blocking(move || Imported::audit(manifest, &blobs).map_err(bad_request))
            .await
            .map_err(internal)??;
    api.store.put_image(&imported.image)?;
    Ok((StatusCode::CREATED, Json(imported)))
}

pub(super) async fn list_images(State(api): State<Api>) -> ApiResult<Json<Vec<ImageManifest>>> {
    Ok(Json(api.store.images()?))
}

/// `DELETE /v1/images/{name}/{tag}`: refused (409) while a release uses
/// the image; then its layers nothing else uses are collected.
pub(super) async fn delete_image(
    State(api): State<Api>,
    Path((name, tag)): Path<(String, String)>,
) -> ApiResult<Json<crate::gc::GcReport>> {
    let Some(image) = api.store.image(&name, &tag)? else {
        let msg = format!("image {name}:{tag} not found (see petrel image list)");
        return Err(ApiError(StatusCode::NOT_FOUND, msg));
    };
    let users: Vec<String> = api
        .store
        .releases()?
        .iter()
        .filter(|r| {
            r.services
                .values()
                .any(|s| s.image.name == name && s.image.tag == tag)
        })
        .map(|r| r.reference().to_string())
        .collect();
    if !users.is_empty() {
        let msg = format!(
            "image {name}:{tag} is used by release {}: delete those releases first",
            users.join(", ")
        );
        return Err(ApiError(StatusCode::CONFLICT, msg));
    }
    let variants = api.store.image_variants(&name, &tag)?;
    api.store.delete_image(&name, &tag)?;
    let doomed = variants
        .into_iter()
        .chain([image])
        .flat_map(|v| v.layers)
        .map(|l| l.digest)
        .collect();
    api.collect_garbage(doomed).await
}
