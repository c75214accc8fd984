//! `ember-serve`: an OpenAI-compatible server of a local model (ember-llama), as an axum
//! [`Router`] to mount in an application, with llama-server's routes and fields so that its
//! clients can switch to it. insightd serves it beside its telemetry API.
//!
//! - [`router`]: `/v1/models`, `/v1/completions`, `/v1/chat/completions` (the model's own
//!   Jinja chat template, tool calls, JSON Schema output, reasoning), `/v1/embeddings`, and
//!   llama-server's `/health`, `/completion`, `/props`, `/slots`, `/tokenize`,
//!   `/detokenize`, `/apply-template`, ...; errors in OpenAI's shape ([`ApiError`]);
//! - [`Server`]: the model and its settings ([`ModelConfig`]); every generation runs in one
//!   batching [`engine`] (`max_concurrent` sequences decoded together, `queue` more
//!   waiting, 429 beyond);
//! - [`ServeMetrics`]: Prometheus counters to register in the application's registry;
//! - [`ApiDoc`]: the OpenAPI 3.1 document of the routes.
//!
//! # Example
//!
//! ```no_run
//! use ember_serve::{ModelConfig, Server};
//!
//! # async fn run() -> anyhow::Result<()> {
//! let config = ModelConfig {
//!     path: Some("models/gemma-3-270m-q4_k_m.gguf".into()),
//!     ..ModelConfig::default()
//! };
//! let server = Server::load(config)?;
//! let app = ember_serve::router(server);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await?;
//! # Ok(())
//! # }
//! ```
//!
//! `examples/serve.rs` is that program; any OpenAI client then talks to
//! `http://127.0.0.1:8080/v1`.
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod config;
pub mod engine;
pub mod error;
pub mod llm;
pub mod metrics;
pub mod openai;
mod openapi;
pub mod state;

use axum::routing::{get, post};
use axum::Router;

pub use config::ModelConfig;
pub use error::{openai_errors, ApiError, ErrorBody};
pub use llm::Llm;
pub use metrics::ServeMetrics;
pub use openapi::ApiDoc;
pub use state::{AppState, ModelState, Server};

/// The routes of `server`, its state applied: merge them into an application's router, or
/// serve them alone. Error answers of these routes are OpenAI's shape ([`openai_errors`]).
/// No authentication: an application that needs it adds a layer (insightd's bearer token).
pub fn router(server: AppState) -> Router {
    Router::new()
        .route("/v1/models", get(openai::models))
        .route("/v1/completions", post(openai::completions))
        .route("/v1/chat/completions", post(openai::chat_completions))
        .route("/v1/embeddings", post(openai::embeddings))
        // llama-server's spellings, which its clients (and its test suite) call.
        .route("/health", get(openai::health))
        .route("/v1/health", get(openai::health))
        .route("/models", get(openai::models))
        .route("/props", get(openai::props))
        .route("/slots", get(openai::slots))
        .route("/slots/{id_slot}", post(openai::slot_action))
        .route("/apply-template", post(openai::apply_template))
        .route("/chat/completions/input_tokens", post(openai::input_tokens))
        .route(
            "/v1/chat/completions/input_tokens",
            post(openai::input_tokens),
        )
        .route("/completion", post(openai::completion))
        .route("/completions", post(openai::completion))
        .route("/chat/completions", post(openai::chat_completions))
        .route("/embedding", post(openai::native_embeddings))
        .route("/embeddings", post(openai::native_embeddings))
        .route("/tokenize", post(openai::tokenize))
        .route("/detokenize", post(openai::detokenize))
        .layer(axum::middleware::from_fn(openai_errors))
        .with_state(server)
}
