//! The router in-process (`tower::ServiceExt::oneshot`): no socket, no probes, and a model only
//! where a case needs one. Auth, body limits and every rejection, in milliseconds.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use serde_json::{json, Value};
use tower::ServiceExt;

use super::app;
use crate::config::Config;
use crate::state::{ModelState, Shared};

/// One request through a fresh router on `state`: status, headers and the body as JSON (or
/// as a JSON string when it is text).
async fn call(
    state: &Arc<Shared>,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<String>,
) -> (StatusCode, axum::http::HeaderMap, Value) {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let req = match body {
        Some(b) => req
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(b)),
        None => req.body(Body::empty()),
    }
    .unwrap();
    let resp = app(state.clone()).oneshot(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (parts.status, parts.headers, value)
}

fn state_with(edit: impl FnOnce(&mut Config)) -> Arc<Shared> {
    let mut config = Config::default();
    edit(&mut config);
    Shared::new(config)
}

/// OpenAI's error object, with the status as its code.
fn assert_error(what: &str, status: StatusCode, body: &Value, kind: &str) {
    let err = &body["error"];
    assert!(
        err["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: {body}"
    );
    assert_eq!(err["type"], kind, "{what}: {body}");
    assert_eq!(err["code"], status.as_u16(), "{what}: {body}");
    assert!(err.get("param").is_some(), "{what}: {body}");
}

#[tokio::test]
async fn the_token_guards_every_path_but_the_probes() {
    let state = state_with(|c| c.token = Some("s3cret".into()));
    for path in [
        "/status",
        "/metrics",
        "/v1/models",
        "/models",
        "/processes",
        "/openapi.json",
    ] {
        for token in [None, Some("wrong"), Some("s3cre"), Some("s3cret2")] {
            let (status, headers, body) = call(&state, Method::GET, path, token, None).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{path} {token:?}");
            assert_eq!(headers[header::WWW_AUTHENTICATE], "Bearer", "{path}");
            assert_error(path, status, &body, "authentication_error");
        }
    }
    let (status, _, _) = call(&state, Method::GET, "/status", Some("s3cret"), None).await;
    assert_eq!(status, StatusCode::OK);
    // Orchestrators probe without the secret.
    let (status, _, _) = call(&state, Method::GET, "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, body) = call(&state, Method::GET, "/readyz", None, None).await;
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "no telemetry yet: {body}"
    );
    // llama-server's probe too: 200 without a model configured (its router mode's answer).
    for path in ["/health", "/v1/health"] {
        let (status, _, body) = call(&state, Method::GET, path, None, None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert_eq!(body, serde_json::json!({"status": "ok"}), "{path}");
    }
    assert_eq!(state.metrics.unauthorized.get(), 24);
}

#[tokio::test]
async fn the_dashboard_loads_without_the_token_and_holds_no_data() {
    let state = state_with(|c| c.token = Some("s3cret".into()));
    for (path, content_type) in [
        ("/", "text/html"),
        ("/ui/", "text/html"),
        ("/ui/index.html", "text/html"),
        ("/ui/app.js", "text/javascript"),
        ("/ui/app.css", "text/css"),
    ] {
        let (status, headers, body) = call(&state, Method::GET, path, None, None).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        let ct = headers[header::CONTENT_TYPE].to_str().unwrap();
        assert!(ct.starts_with(content_type), "{path}: {ct}");
        let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.contains("connect-src 'self'"), "{path}: {csp}");
        assert!(!body.as_str().unwrap().is_empty(), "{path}");
    }
    // The page learns that it must ask for the token, and nothing else.
    let (status, _, body) = call(&state, Method::GET, "/ui/auth.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"token_required": true}));
    let open = state_with(|_| {});
    let (_, _, body) = call(&open, Method::GET, "/ui/auth.json", None, None).await;
    assert_eq!(body, json!({"token_required": false}));
    let (status, _, body) = call(&state, Method::GET, "/ui/secrets", None, None).await;
    assert_error("/ui/secrets", status, &body, "not_found");
    assert_eq!(state.metrics.unauthorized.get(), 0);
}

/// What a case sends (what, method, path, body) and wants back (status, error type).
type Case = (
    &'static str,
    Method,
    &'static str,
    Option<String>,
    StatusCode,
    &'static str,
);

#[tokio::test]
async fn every_rejection_is_an_openai_error_with_openais_status() {
    let state = state_with(|c| c.limits.body_bytes = 1024);
    let big = json!({"prompt": "x".repeat(2048)}).to_string();
    let cases: [Case; 10] = [
        (
            "broken JSON",
            Method::POST,
            "/v1/completions",
            Some("{\"prompt\":".into()),
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
        ),
        (
            "wrong field type",
            Method::POST,
            "/v1/chat/completions",
            Some(json!({"messages": 3}).to_string()),
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
        ),
        (
            "missing field",
            Method::POST,
            "/v1/embeddings",
            Some("{}".into()),
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
        ),
        (
            "body over limits.body_bytes",
            Method::POST,
            "/v1/completions",
            Some(big),
            StatusCode::PAYLOAD_TOO_LARGE,
            "request_too_large",
        ),
        (
            "no such path",
            Method::GET,
            "/v2/nothing",
            None,
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            "wrong method",
            Method::DELETE,
            "/v1/completions",
            None,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        ),
        (
            "bad path parameter",
            Method::GET,
            "/processes/-1",
            None,
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
        ),
        (
            "bad query",
            Method::GET,
            "/processes?limit=x",
            None,
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
        ),
        (
            "no model loaded",
            Method::POST,
            "/v1/completions",
            Some(json!({"prompt": "hi"}).to_string()),
            StatusCode::SERVICE_UNAVAILABLE,
            "model_not_loaded",
        ),
        (
            "/slots off (model.slots), as llama-server without --slots",
            Method::GET,
            "/slots",
            None,
            StatusCode::NOT_IMPLEMENTED,
            "not_supported_error",
        ),
    ];
    for (what, method, path, body, want, kind) in cases {
        let (status, headers, value) = call(&state, method, path, None, body).await;
        assert_eq!(status, want, "{what}: {value}");
        assert!(
            headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("application/json"),
            "{what}"
        );
        assert_error(what, status, &value, kind);
        if want == StatusCode::METHOD_NOT_ALLOWED {
            assert!(headers.contains_key(header::ALLOW), "{what}: no Allow");
        }
    }
}

#[tokio::test]
async fn the_process_table_and_stream_limits_answer_503_with_the_reason() {
    let state = state_with(|c| c.limits.sse_clients = 1);
    let (status, _, body) = call(&state, Method::GET, "/processes", None, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_error("no table", status, &body, "not_ready");
    // One stream client is allowed; the second is refused while the first is connected.
    let first = app(state.clone())
        .oneshot(Request::get("/stream").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    let (status, _, body) = call(&state, Method::GET, "/stream", None, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_error("second stream", status, &body, "too_many_streams");
    drop(first);
    let (status, _, _) = call(&state, Method::GET, "/status", None, None).await;
    assert_eq!(status, StatusCode::OK);
}

/// The test model, or a visible skip (a failure under CI=true).
fn test_model() -> Option<std::path::PathBuf> {
    match std::env::var_os("EMBER_TEST_MODEL").map(std::path::PathBuf::from) {
        Some(p) if p.is_file() => Some(p),
        _ => {
            assert!(
                std::env::var("CI").map_or(true, |v| v != "true"),
                "CI=true and EMBER_TEST_MODEL does not name the test model"
            );
            // Straight to stderr: libtest captures print!, and a skip must show.
            use std::io::Write;
            let test = std::thread::current().name().unwrap_or("?").to_string();
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: EMBER_TEST_MODEL is not set (build-support/fetch-model)"
            );
            None
        }
    }
}

#[tokio::test]
async fn busy_slots_answer_429_and_count_the_rejection() {
    let Some(path) = test_model() else { return };
    let state = state_with(|c| {
        c.model.max_concurrent = 1;
        c.model.queue = 0;
    });
    let llm = crate::llm::Llm::load(&path, &state.config.model, Default::default()).unwrap();
    state.set_model(ModelState::Ready(Arc::new(llm)));
    let held = state.serve.slots.clone().try_acquire_owned().unwrap();
    let body = json!({"prompt": "hi", "max_tokens": 1}).to_string();
    let (status, _, value) = call(
        &state,
        Method::POST,
        "/v1/completions",
        None,
        Some(body.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{value}");
    assert_error("busy", status, &value, "rate_limit_exceeded");
    drop(held);
    let (status, _, value) = call(&state, Method::POST, "/v1/completions", None, Some(body)).await;
    assert_eq!(status, StatusCode::OK, "{value}");
    assert_eq!(value["usage"]["completion_tokens"], 1);
    let metrics = state.metrics.encode();
    assert!(
        metrics.contains("insightd_generations_rejected_total{endpoint=\"completions\"} 1"),
        "{metrics}"
    );
}
