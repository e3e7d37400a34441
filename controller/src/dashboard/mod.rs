//! The web dashboard, served by the controller on its API port: a page
//! shell, a small script and a style sheet compiled into the binary
//! (`assets/`, no build step), reading the same API as the CLI and
//! following the live stream (`GET /v1/stream`).
//!
//! Operators sign in with an API token: `POST /ui/login` checks it and
//! keeps it in an `HttpOnly`, `SameSite=Strict` cookie, which the API's
//! authorization reads like a bearer token (see [`crate::auth`]); the
//! token's role decides what the page may do (a viewer sees, an operator
//! may also pause, resume or abort rollouts).

use crate::http::Api;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};

/// The cookie that carries the operator's token.
pub const COOKIE: &str = "petrel_token";

/// How long a sign-in lasts (seconds).
const SESSION_S: u64 = 12 * 3600;

const INDEX: &str = include_str!("assets/index.html");
const LOGIN: &str = include_str!("assets/login.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE: &str = include_str!("assets/style.css");

/// Whether a path is one of the dashboard's public parts (sign-in and
/// sign-out, script, style): no token needed.
pub fn is_public(path: &str) -> bool {
    path == "/" || path == "/ui/login" || path == "/ui/logout" || path.starts_with("/ui/assets/")
}

/// The header the dashboard's script sends with every change it asks.
/// A page of another origin cannot set it without a CORS preflight the
/// controller never grants, so a change that carries the cookie but not
/// this header did not come from the dashboard (cross-site request
/// forgery from a sibling host or port, which `SameSite` lets through).
pub const CSRF_HEADER: &str = "x-petrel-dashboard";

/// Whether a request authenticated by the cookie may go on: reads always,
/// changes only with [`CSRF_HEADER`].
pub fn cookie_may(method: &axum::http::Method, headers: &axum::http::HeaderMap) -> bool {
    use axum::http::Method;
    matches!(*method, Method::GET | Method::HEAD) || headers.contains_key(CSRF_HEADER)
}

/// The dashboard's routes, merged into the API router.
pub fn routes() -> Router<Api> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(page))
        .route("/ui/login", get(login_page).post(login))
        .route("/ui/logout", post(logout))
        .route(
            "/ui/assets/app.js",
            get(|| asset(APP_JS, "text/javascript")),
        )
        .route("/ui/assets/style.css", get(|| asset(STYLE, "text/css")))
}

async fn asset(body: &'static str, kind: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, format!("{kind}; charset=utf-8")),
            (header::CACHE_CONTROL, "no-cache".to_string()),
        ],
        body,
    )
        .into_response()
}

/// Scripts and styles from this origin only (the script sets widths
/// inline); no framing (clickjacking of the rollout buttons).
const CSP: &str = "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'";

fn html(status: StatusCode, body: String) -> Response {
    let headers = [
        (header::CACHE_CONTROL, "no-store"),
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::REFERRER_POLICY, "no-referrer"),
    ];
    (status, headers, Html(body)).into_response()
}

/// The page shell (signed in: the authorization layer let it through).
async fn page() -> Response {
    html(StatusCode::OK, INDEX.to_string())
}

async fn login_page() -> Response {
    html(StatusCode::OK, LOGIN.replace("{{error}}", ""))
}

#[derive(serde::Deserialize)]
struct Login {
    token: String,
}

/// Checks the token; on success keeps it in the cookie and goes to the
/// dashboard, else shows the sign-in page again saying why.
async fn login(State(api): State<Api>, Form(form): Form<Login>) -> Response {
    let token = form.token.trim();
    if api.auth.tokens.verify(token).is_none() {
        let page = LOGIN.replace(
            "{{error}}",
            "<p class=\"error\">Unknown or deleted token.</p>",
        );
        return html(StatusCode::UNAUTHORIZED, page);
    }
    let secure = if api.auth.pki.is_some() {
        "; Secure"
    } else {
        ""
    };
    let cookie =
        format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={SESSION_S}{secure}");
    with_cookie(Redirect::to("/ui/").into_response(), &cookie)
}

async fn logout() -> Response {
    let cookie = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    with_cookie(Redirect::to("/ui/login").into_response(), &cookie)
}

fn with_cookie(mut resp: Response, cookie: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

/// The token in a request's cookie, if any.
pub fn cookie_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| kv.trim().strip_prefix(COOKIE)?.strip_prefix('='))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_read_from_among_other_cookies() {
        let mut h = axum::http::HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=1; petrel_token=pt_abc; b=2".parse().unwrap(),
        );
        assert_eq!(cookie_token(&h), Some("pt_abc"));
        h.insert(
            header::COOKIE,
            "petrel_token_x=1; petrel_token=".parse().unwrap(),
        );
        assert_eq!(cookie_token(&h), None);
    }

    #[test]
    fn a_change_with_the_cookie_needs_the_dashboards_header() {
        use axum::http::Method;
        let mut h = axum::http::HeaderMap::new();
        assert!(cookie_may(&Method::GET, &h));
        assert!(!cookie_may(&Method::POST, &h));
        h.insert(CSRF_HEADER, "1".parse().unwrap());
        assert!(cookie_may(&Method::POST, &h));
    }

    #[test]
    fn only_the_sign_in_page_and_the_assets_are_public() {
        assert!(is_public("/ui/login"));
        assert!(is_public("/ui/logout"));
        assert!(is_public("/ui/assets/app.js"));
        assert!(!is_public("/ui/"));
        assert!(!is_public("/v1/devices"));
    }
}
