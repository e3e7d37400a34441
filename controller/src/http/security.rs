//! The security routes: operator tokens (`/v1/tokens`), device
//! certificates (`/v1/devices/{id}/certificate`, `/v1/devices/{id}/revoke`)
//! and the authorization layer every route passes through.

use super::tls::Peer;
use super::{bad_request, internal, Api, ApiError, ApiResult};
use crate::auth::{Refused, Role, TokenRecord};
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

/// Checks every request against [`crate::auth`]; the caller is left in
/// the request's extensions.
pub async fn authorize(State(api): State<Api>, mut req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<Peer>>()
        .map(|c| c.0.clone());
    let Some(peer) = peer else {
        return ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            "no peer information".into(),
        )
        .into_response();
    };
    match api
        .auth
        .authorize(&peer, req.method(), req.uri().path(), req.headers())
    {
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        // a browser without a valid sign-in goes to the sign-in page
        Err(Refused(StatusCode::UNAUTHORIZED, _)) if req.uri().path().starts_with("/ui/") => {
            axum::response::Redirect::to("/ui/login").into_response()
        }
        Err(Refused(code, message)) => ApiError(code, message).into_response(),
    }
}

/// Where devices reach the controller (written into provisioned configs).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Advertised {
    pub broker: String,
    pub controller_url: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct CreateToken {
    pub role: Role,
    pub name: String,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct CreatedToken {
    pub record: TokenRecord,
    /// Shown once: the controller keeps only its hash.
    pub token: String,
}

/// `POST /v1/tokens`
pub async fn create_token(
    State(api): State<Api>,
    Json(req): Json<CreateToken>,
) -> ApiResult<Json<CreatedToken>> {
    if req.name.trim().is_empty() || req.name.len() > 128 {
        return Err(bad_request("a token needs a name of 1-128 characters"));
    }
    let (record, token) = api
        .auth
        .tokens
        .create(req.role, &req.name)
        .map_err(internal)?;
    tracing::info!(id = %record.id, name = %record.name, role = %record.role, "token created");
    Ok(Json(CreatedToken { record, token }))
}

/// `GET /v1/tokens`
pub async fn list_tokens(State(api): State<Api>) -> Json<Vec<TokenRecord>> {
    Json(api.auth.tokens.list())
}

/// `DELETE /v1/tokens/{id}`
pub async fn delete_token(
    State(api): State<Api>,
    Path(id): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    match api.auth.tokens.delete(&id).map_err(internal)? {
        true => Ok(Json(serde_json::json!({ "deleted": id }))),
        false => Err(ApiError(StatusCode::NOT_FOUND, format!("no token {id:?}"))),
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct CertificateRequest {
    /// PEM CSR; the certificate names the device whatever it asks for.
    pub csr: String,
}

/// What a device needs to join the fleet (with the key it made).
#[derive(Debug, Serialize, Deserialize)]
pub struct DeviceBundle {
    pub device_id: String,
    pub certificate: String,
    pub ca: String,
    pub serial: String,
    /// The controller's public signing key (hex).
    pub controller_key: String,
    pub advertised: Advertised,
}

fn pki(api: &Api) -> ApiResult<&crate::pki::Pki> {
    api.auth.pki.as_ref().ok_or_else(|| {
        ApiError(
            StatusCode::CONFLICT,
            "this controller runs --insecure: it has no CA to issue device certificates".into(),
        )
    })
}

/// `POST /v1/devices/{id}/certificate`
pub async fn issue_certificate(
    State(api): State<Api>,
    Path(id): Path<String>,
    Json(req): Json<CertificateRequest>,
) -> ApiResult<Json<DeviceBundle>> {
    use crate::pki::PkiError;
    let issued = pki(&api)?.provision(&id, &req.csr).map_err(|e| match e {
        PkiError::BadId(..) | PkiError::Tls(_) => bad_request(e),
        other => internal(other),
    })?;
    Ok(Json(DeviceBundle {
        device_id: id,
        certificate: issued.cert_pem,
        ca: issued.ca_pem,
        serial: issued.serial,
        controller_key: api.fleet.public_key().to_hex(),
        advertised: api.advertised.clone(),
    }))
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Revoked {
    pub device_id: String,
    pub serials: Vec<String>,
}

/// `POST /v1/devices/{id}/revoke`
pub async fn revoke(State(api): State<Api>, Path(id): Path<String>) -> ApiResult<Json<Revoked>> {
    use crate::pki::PkiError;
    let serials = pki(&api)?.revoke(&id).map_err(|e| match e {
        PkiError::NotProvisioned(_) => ApiError(StatusCode::NOT_FOUND, e.to_string()),
        other => internal(other),
    })?;
    Ok(Json(Revoked {
        device_id: id,
        serials,
    }))
}
