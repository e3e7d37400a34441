//! Who may call which route of the HTTP API.
//!
//! - Operators present a bearer token ([`tokens`]) whose role must cover
//!   the route: reads need `viewer`, changes `operator`, keys, tokens and
//!   device certificates `admin`. A service's log tail is a read that
//!   needs `operator`: a service's output may carry secrets a viewer (a
//!   wall screen) should not see, and each one makes the device work.
//! - Devices present their client certificate (HTTPS): they may fetch
//!   blobs, deltas and layer path lists, nothing else; a revoked
//!   certificate is refused.
//! - With `--insecure` (no TLS, no device certificates) the device routes
//!   are open; every other route still needs a token.
//! - The dashboard's browser sends the token in a cookie (see
//!   [`crate::dashboard`]); its sign-in page and assets are public.

pub mod tokens;

use crate::http::tls::Peer;
use crate::pki::Pki;
use axum::http::{HeaderMap, Method, StatusCode};
use petrel_protocol::acl::Identity;
use std::sync::Arc;
pub use tokens::{Role, TokenRecord, Tokens};

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// A device's download: a device certificate or any token.
    Device,
    Role(Role),
    /// The dashboard's sign-in page and assets.
    Public,
}

/// Who made a request (a request extension, for handlers that care).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Device(String),
    Operator {
        name: String,
        role: Role,
    },
    /// A device route without credentials (insecure mode only).
    Anonymous,
}

/// The route table's security column.
pub fn need(method: &Method, path: &str) -> Need {
    if crate::dashboard::is_public(path) {
        return Need::Public;
    }
    let device_route = path.starts_with("/v1/blobs/")
        || path.starts_with("/v1/deltas/")
        || (path.starts_with("/v1/layers/") && path.ends_with("/paths"));
    if method == Method::GET && device_route {
        return Need::Device;
    }
    let admin = path.starts_with("/v1/keys/")
        || path.starts_with("/v1/tokens")
        || path.ends_with("/certificate")
        || path.ends_with("/revoke");
    let logs = matches!(
        path.split('/').collect::<Vec<_>>()[..],
        ["", "v1", "devices", _, "logs", _]
    );
    match (method, admin) {
        (_, true) => Need::Role(Role::Admin),
        _ if logs => Need::Role(Role::Operator),
        (&Method::GET, false) | (&Method::HEAD, false) => Need::Role(Role::Viewer),
        _ => Need::Role(Role::Operator),
    }
}

/// The credentials the API checks.
#[derive(Clone)]
pub struct Auth {
    pub tokens: Arc<Tokens>,
    /// `None` in insecure mode.
    pub pki: Option<Pki>,
}

/// A refusal: 401 (who are you?) or 403 (not you).
pub struct Refused(pub StatusCode, pub String);

impl Auth {
    pub fn authorize(
        &self,
        peer: &Peer,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
    ) -> Result<Caller, Refused> {
        let need = need(method, path);
        if need == Need::Public {
            return Ok(Caller::Anonymous);
        }
        let cookie = crate::dashboard::cookie_token(headers);
        if let Some(token) = bearer(headers).or(cookie) {
            if bearer(headers).is_none() && !crate::dashboard::cookie_may(method, headers) {
                return Err(Refused(
                    StatusCode::FORBIDDEN,
                    format!("{method} {path} with the dashboard's cookie must come from the dashboard (header {} missing)", crate::dashboard::CSRF_HEADER),
                ));
            }
            let rec = self.tokens.verify(token).ok_or_else(|| {
                Refused(StatusCode::UNAUTHORIZED, "unknown or deleted token".into())
            })?;
            return match need {
                Need::Role(r) if rec.role < r => Err(Refused(
                    StatusCode::FORBIDDEN,
                    format!(
                        "token {:?} has role {}; {method} {path} needs {r}",
                        rec.name, rec.role
                    ),
                )),
                _ => Ok(Caller::Operator {
                    name: rec.name,
                    role: rec.role,
                }),
            };
        }
        if let Some(cert) = &peer.cert {
            if self
                .pki
                .as_ref()
                .is_some_and(|p| p.is_revoked(&cert.serial))
            {
                let why = format!("certificate of {} is revoked", cert.identity);
                return Err(Refused(StatusCode::FORBIDDEN, why));
            }
            if let (Ok(Identity::Device(id)), Need::Device) =
                (Identity::from_common_name(&cert.identity), need)
            {
                return Ok(Caller::Device(id));
            }
            let why = format!("a device certificate may only download blobs; {method} {path} needs an operator token");
            return Err(Refused(StatusCode::FORBIDDEN, why));
        }
        match (need, &self.pki) {
            (Need::Device, None) => Ok(Caller::Anonymous),
            (Need::Device, Some(_)) => Err(Refused(
                StatusCode::UNAUTHORIZED,
                "downloads need a device certificate or a token".into(),
            )),
            (Need::Public, _) => Ok(Caller::Anonymous),
            (Need::Role(r), _) => Err(Refused(
                StatusCode::UNAUTHORIZED,
                format!("{method} {path} needs a token with role {r} or above: set PETREL_TOKEN (the first admin token is in the controller's <data>/auth/admin.token; `petrel token create --role ROLE` makes more)"),
            )),
        }
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

#[cfg(test)]
mod tests;
