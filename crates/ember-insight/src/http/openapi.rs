//! The OpenAPI 3.1 document of the HTTP API, served at `/openapi.json`. utoipa derives it at
//! compile time from the handlers' `#[utoipa::path]` attributes and the request and response
//! types, so it cannot drift from them; `build-support/check-openapi` runs schemathesis against
//! a live daemon with it.

use std::sync::OnceLock;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi as Document, SecurityRequirement};
use utoipa::{Modify, OpenApi};

use super::{ops, ui, AppState};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "insightd",
        description = "Process telemetry, alerts, LLM-written insights and an OpenAI-compatible API.",
        license(name = "Apache-2.0 OR MIT"),
    ),
    paths(
        ui::index,
        ui::file,
        ui::auth,
        ops::healthz,
        ops::readyz,
        ops::version,
        ops::status,
        ops::processes,
        ops::process,
        ops::stream,
        ops::alerts,
        ops::insights,
        ops::metrics,
        document,
    ),
    tags(
        (name = "ops", description = "health, state, processes, alerts, insights, metrics"),
        (name = "ui", description = "the dashboard page and its files (no data, no token)"),
    )
)]
struct Api;

/// The optional bearer token (`--token`): every path but the probes and the dashboard's files
/// ([`super::is_open`]) asks for it when one is configured.
struct Bearer;

impl Modify for Bearer {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        for (path, item) in doc.paths.paths.iter_mut() {
            if super::is_open(path) {
                continue;
            }
            for op in [&mut item.get, &mut item.post].into_iter().flatten() {
                // Either the token, or none when the daemon has no token configured.
                op.security = Some(vec![
                    SecurityRequirement::new("bearer", Vec::<String>::new()),
                    SecurityRequirement::default(),
                ]);
            }
        }
    }
}

/// The document as JSON, made once: what the code declares, without this daemon's settings.
pub fn json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        // The OpenAI-compatible routes are ember-serve's; the token guards them too.
        let mut doc = Api::openapi().merge_from(ember_serve::ApiDoc::openapi());
        Bearer.modify(&mut doc);
        doc.info.version = crate::state::VERSION.to_string();
        doc.to_json().expect("the OpenAPI document serialises")
    })
}

/// The document of a daemon whose requests may ask for at most `max_tokens` tokens
/// (`model.max_tokens`): the bound a client can read before it sends.
pub fn document_for(max_tokens: usize) -> Value {
    let mut doc: Value = serde_json::from_str(json()).expect("the document is JSON");
    let sampling = &mut doc["components"]["schemas"]["Sampling"]["properties"];
    for field in ["max_tokens", "max_completion_tokens"] {
        sampling[field]["maximum"] = max_tokens.into();
    }
    doc
}

/// `GET /openapi.json`.
#[utoipa::path(get, path = "/openapi.json", tag = "ops", responses(
    (status = 200, description = "this document (OpenAPI 3.1), with this daemon's limits", body = Object),
    (status = 401, description = "missing or wrong bearer token", body = super::ErrorBody)))]
pub async fn document(State(state): State<AppState>) -> Response {
    let doc = document_for(state.config.model.max_tokens);
    (
        [(header::CONTENT_TYPE, "application/json")],
        doc.to_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    #[test]
    fn the_document_is_openapi_3_1_and_names_every_route() {
        let doc: Value = serde_json::from_str(super::json()).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
        let paths = doc["paths"].as_object().unwrap();
        for p in [
            "/healthz",
            "/readyz",
            "/version",
            "/status",
            "/processes",
            "/processes/{pid}",
            "/stream",
            "/alerts",
            "/insights",
            "/metrics",
            "/health",
            "/v1/models",
            "/v1/completions",
            "/v1/chat/completions",
            "/v1/embeddings",
            "/completion",
            "/embedding",
            "/props",
            "/apply-template",
            "/v1/chat/completions/input_tokens",
            "/openapi.json",
            "/",
            "/ui/{file}",
            "/ui/auth.json",
        ] {
            assert!(paths.contains_key(p), "{p} is missing");
        }
        // The model endpoints name every error they can send.
        for p in [
            "/v1/completions",
            "/v1/chat/completions",
            "/v1/embeddings",
            "/completion",
            "/embedding",
        ] {
            let codes: Vec<&str> = paths[p]["post"]["responses"]
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            assert_eq!(
                codes,
                ["200", "400", "401", "413", "429", "500", "503"],
                "{p}"
            );
        }
        let limited = super::document_for(8);
        let sampling = &limited["components"]["schemas"]["Sampling"]["properties"];
        assert_eq!(sampling["max_tokens"]["maximum"], 8);
        assert_eq!(sampling["max_tokens"]["minimum"], 1);
        // Every $ref resolves to a schema of the document.
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        let text = super::json();
        for part in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = &part[..part.find('"').unwrap()];
            assert!(schemas.contains_key(name), "dangling $ref {name}");
        }
    }
}
