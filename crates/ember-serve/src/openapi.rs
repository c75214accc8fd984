//! The OpenAPI 3.1 document of [`router`](crate::router)'s routes, derived by utoipa from the
//! handlers' `#[utoipa::path]` attributes and types; an application merges it into its own
//! (insightd serves the whole at `/openapi.json`).

use utoipa::OpenApi;

use crate::openai;

/// The routes' OpenAPI document: `ApiDoc::openapi()`.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "ember-serve",
        description = "An OpenAI-compatible server of a local model, with llama-server's routes.",
        license(name = "Apache-2.0 OR MIT"),
    ),
    paths(
        openai::health,
        openai::models,
        openai::completions,
        openai::completion,
        openai::chat_completions,
        openai::embeddings,
        openai::tokenize,
        openai::detokenize,
        openai::props,
        openai::slots,
        openai::slot_action,
        openai::native_embeddings,
        openai::apply_template,
        openai::input_tokens,
    ),
    tags(
        (name = "openai", description = "OpenAI-compatible endpoints served by the loaded model"),
    )
)]
pub struct ApiDoc;
