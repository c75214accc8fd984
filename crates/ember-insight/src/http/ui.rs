//! The dashboard: `GET /` and `/ui/*`, a static page built from `crates/ember-insight/ui` by
//! `build-support/build-ui` and embedded here at compile time (no files, CDN or network at run
//! time). The page and its assets carry no data, so they are served without the bearer token;
//! the page asks the operator for the token and sends it with every API request.

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::AppState;

const INDEX_HTML: &str = include_str!("../../ui/dist/index.html");
const APP_JS: &str = include_str!("../../ui/dist/app.js");
const APP_CSS: &str = include_str!("../../ui/dist/app.css");

/// Whether `path` is one of the page's own files (served without the token).
pub fn is_page(path: &str) -> bool {
    path == "/" || path == "/ui" || path.starts_with("/ui/")
}

/// Same-origin only: the page may load its own script and style and talk to this daemon,
/// nothing else (no inline script, no frames, no form posts).
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            // Embedded in the binary: a new daemon may bring new files, so revalidate.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CSP),
            ),
        ],
        body,
    )
        .into_response()
}

/// `GET /`: the dashboard.
#[utoipa::path(get, path = "/", tag = "ui", security(()), responses(
    (status = 200, description = "the dashboard page (no data: it reads the API with the token)",
     body = String, content_type = "text/html")))]
pub async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

/// `/ui/auth.json`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct AuthInfo {
    /// Whether the API wants a bearer token (`--token`): the page asks for one before any
    /// request, instead of learning it from a 401.
    token_required: bool,
}

/// `GET /ui/auth.json`: whether the page must ask for a token (no secret, no data).
#[utoipa::path(get, path = "/ui/auth.json", tag = "ui", security(()), responses(
    (status = 200, description = "whether the API wants a token", body = AuthInfo)))]
pub async fn auth(State(state): State<AppState>) -> Response {
    let token_required = state.config.token.as_deref().is_some_and(|t| !t.is_empty());
    let mut resp = Json(AuthInfo { token_required }).into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// `GET /ui/{file}`: the dashboard's script and style sheet (`/ui/` is the page itself).
#[utoipa::path(get, path = "/ui/{file}", tag = "ui", security(()),
    params(("file" = String, Path, description = "`app.js`, `app.css` or `index.html`")),
    responses(
    (status = 200, description = "the file", body = String,
     content((String = "text/html"), (String = "text/javascript"), (String = "text/css"))),
    (status = 404, description = "no such file", body = super::ErrorBody)))]
pub async fn file(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    match file.as_str() {
        "" | "index.html" => asset("text/html; charset=utf-8", INDEX_HTML),
        "app.js" => asset("text/javascript; charset=utf-8", APP_JS),
        "app.css" => asset("text/css; charset=utf-8", APP_CSS),
        _ => super::ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("the dashboard has no file {file:?}: it serves index.html, app.js and app.css"),
        )
        .into_response(),
    }
}
