//! Arbitrary requests through insightd's router in-process (no socket, no model, no
//! probes): every answer is a response, never a panic, and no 5xx but 503 (no model).
#![no_main]

use std::sync::OnceLock;

use axum::body::Body;
use axum::http::{Method, Request};
use ember_insight::config::Config;
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

const PATHS: &[&str] = &[
    "/healthz",
    "/readyz",
    "/status",
    "/version",
    "/processes",
    "/processes/1",
    "/alerts",
    "/insights",
    "/metrics",
    "/v1/models",
    "/v1/completions",
    "/v1/chat/completions",
    "/v1/embeddings",
    "/openapi.json",
];
const METHODS: &[Method] = &[Method::GET, Method::POST, Method::PUT, Method::DELETE];

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

fn router() -> axum::Router {
    static APP: OnceLock<axum::Router> = OnceLock::new();
    APP.get_or_init(|| {
        ember_insight::http::app(ember_insight::state::Shared::new(Config::default()))
    })
    .clone()
}

fuzz_target!(|data: &[u8]| {
    let (head, body) = data.split_at(data.len().min(2));
    let method = METHODS[usize::from(head.first().copied().unwrap_or(0)) % METHODS.len()].clone();
    let pick = usize::from(head.get(1).copied().unwrap_or(0));
    // Mostly the real paths with the body as JSON; sometimes a path made of the input.
    let (uri, body) = if pick < 240 {
        (PATHS[pick % PATHS.len()].to_string(), body.to_vec())
    } else {
        let text = String::from_utf8_lossy(body);
        let (path, rest) = text.split_once(' ').unwrap_or((&text, ""));
        (
            format!("/{}", path.trim_start_matches('/')),
            rest.as_bytes().to_vec(),
        )
    };
    let Ok(req) = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(Body::from(body))
    else {
        return;
    };
    let resp = runtime()
        .block_on(router().oneshot(req))
        .expect("infallible");
    let status = resp.status();
    assert!(
        !status.is_server_error() || status.as_u16() == 503,
        "server error {status}"
    );
});
