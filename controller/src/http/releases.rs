//! Releases: created from compose files, listed, shown, deleted (refused
//! while a device is asked to run it or runs it).

use super::{bad_request, Api, ApiError, ApiResult};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use petrel_protocol::{ReleaseManifest, ReleaseRef};
use serde::Deserialize;

/// Body of `POST /v1/releases`.
#[derive(Deserialize, serde::Serialize)]
pub struct CreateRelease {
    pub name: String,
    pub version: String,
    /// The compose document (YAML) defining the services.
    pub compose: String,
}

pub(super) async fn create_release(
    State(api): State<Api>,
    Json(req): Json<CreateRelease>,
) -> ApiResult<(StatusCode, Json<CreatedRelease>)> {
    let store = api.store.clone();
    let compose =
        crate::compose::to_release_with_warnings(&req.compose, &req.name, &req.version, |n, t| {
            store.image(n, t).ok().flatten()
        })
        .map_err(|e| match &e {
            crate::compose::ComposeError::UnknownImage { image, .. } => {
                bad_request(format!("{e}; {}", known_tags(&api.store, image)))
            }
            _ => bad_request(e),
        })?;
    let (mut release, warnings) = compose;
    check_fits(&release, api.limits)?;
    // a multi-platform image reaches the release with all its variants;
    // each device gets its own at deploy
    for svc in release.services.values_mut() {
        let variants = api.store.image_variants(&svc.image.name, &svc.image.tag)?;
        if variants.len() > 1 {
            svc.variants = variants;
        }
    }
    api.store.put_release(&release)?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedRelease { release, warnings }),
    ))
}

/// A release as created, with the compose keys it accepted but ignores.
#[derive(Debug, serde::Serialize, Deserialize)]
pub struct CreatedRelease {
    #[serde(flatten)]
    pub release: ReleaseManifest,
    #[serde(default)]
    pub warnings: Vec<String>,
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

pub(super) async fn list_releases(
    State(api): State<Api>,
) -> ApiResult<Json<Vec<petrel_protocol::ReleaseManifest>>> {
    Ok(Json(api.store.releases()?))
}

fn release_ref(name: &str, version: &str) -> ApiResult<ReleaseRef> {
    format!("{name}@{version}").parse().map_err(bad_request)
}

/// `GET /v1/releases/{name}/{version}`
pub(super) async fn show_release(
    State(api): State<Api>,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult<Json<ReleaseManifest>> {
    Ok(Json(api.store.release(&release_ref(&name, &version)?)?))
}

/// `DELETE /v1/releases/{name}/{version}`: refused (409) while a device's
/// desired, current or in-progress release is this one.
pub(super) async fn delete_release(
    State(api): State<Api>,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult<Json<crate::gc::GcReport>> {
    let rref = release_ref(&name, &version)?;
    let release = api.store.release(&rref)?;
    let users = devices_using(&api, &rref)?;
    if !users.is_empty() {
        let msg = format!(
            "release {rref} is in use by {}: deploy another release to them first",
            users.join(", ")
        );
        return Err(ApiError(StatusCode::CONFLICT, msg));
    }
    api.store.delete_release(&rref)?;
    let doomed = release
        .services
        .into_values()
        .flat_map(|s| s.image.layers)
        .map(|l| l.digest)
        .collect();
    api.collect_garbage(doomed).await
}

/// Devices whose desired, current or target release is `rref`.
fn devices_using(api: &Api, rref: &ReleaseRef) -> ApiResult<Vec<String>> {
    let mut users = Vec::new();
    for id in api.store.device_ids()? {
        let desired = api
            .store
            .desired(&id)?
            .and_then(|d| d.release.map(|r| r.reference()));
        let reported = api.store.reported(&id)?.unwrap_or_default();
        if [desired, reported.current, reported.target].contains(&Some(rref.clone())) {
            users.push(id);
        }
    }
    Ok(users)
}

/// Room kept in a message for the signature, key id and endorsements.
const SIGNATURE_ROOM: usize = 8 * 1024;

/// Refuses a release whose desired state could never be published: over
/// the message limit devices (and the broker) accept.
fn check_fits(release: &ReleaseManifest, limits: petrel_protocol::Limits) -> ApiResult<()> {
    let desired = petrel_protocol::Desired {
        schema: petrel_protocol::SCHEMA,
        device_id: "x".repeat(64),
        generation: u64::MAX,
        release: Some(release.clone()),
        issued_at_ms: u64::MAX,
        expires_at_ms: Some(u64::MAX),
        window: None,
        lock_override_after_s: None,
        budget: None,
    };
    let size =
        petrel_protocol::encode(&petrel_protocol::Envelope::wrap(&desired)).len() + SIGNATURE_ROOM;
    if size <= limits.max_message_bytes {
        return Ok(());
    }
    Err(bad_request(format!(
        "release {}: its desired state would be about {size} bytes, over the {}-byte message limit devices accept ({} services); split it into smaller releases",
        release.reference(),
        limits.max_message_bytes,
        release.services.len()
    )))
}
