//! An OpenAI-compatible server of a GGUF model in one axum application, through
//! `ember_serve::router`: `cargo run -p ember-serve --example serve -- MODEL [ADDR]`, then
//! point any OpenAI client at `http://ADDR/v1` (default 127.0.0.1:8080).
use axum::routing::get;
use axum::Router;
use ember_serve::{ModelConfig, Server};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let model = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: serve MODEL.gguf [ADDR]"))?;
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8080".into());
    let config = ModelConfig {
        path: Some(model.into()),
        max_concurrent: 2,
        ..ModelConfig::default()
    };
    // Loads the model and starts its batching engine (blocking, before serving).
    let server = Server::load(config)?;
    // The application's own routes beside the model's.
    let app = Router::new()
        .route("/hello", get(|| async { "hello from the application\n" }))
        .merge(ember_serve::router(server));
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("serving on http://{}/v1", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
