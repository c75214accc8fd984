//! Run with: `cargo run --release --example embed -- -m models/gemma-3-270m-q4_k_m.gguf "first text" "second text"`
//!
//! Prints the embedding vector of each text, or with `--similarity` the cosine similarity
//! of two texts.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context as _};
use clap::Parser;
use ember::llama::{cosine_similarity, Context, ContextParams, Model, ModelParams};

/// Sentence embeddings with a GGUF model.
#[derive(Parser)]
struct Args {
    /// GGUF model (default: $EMBER_TEST_MODEL).
    #[arg(short, long)]
    model: Option<PathBuf>,
    /// Print the cosine similarity of exactly two texts instead of the vectors.
    #[arg(short, long)]
    similarity: bool,
    /// Texts to embed.
    #[arg(required = true)]
    texts: Vec<String>,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    if args.similarity && args.texts.len() != 2 {
        bail!(
            "--similarity needs exactly two texts, got {}",
            args.texts.len()
        );
    }
    let path = args
        .model
        .or_else(|| std::env::var_os("EMBER_TEST_MODEL").map(PathBuf::from))
        .context("no model: pass -m PATH or set EMBER_TEST_MODEL (build-support/fetch-model)")?;
    let model = Arc::new(Model::load(&path, &ModelParams::default())?);
    let params = ContextParams::default()
        .with_n_ctx(512)
        .with_embeddings(true);
    let mut ctx = Context::new(&model, &params)?;
    let vectors = ctx.embed(&args.texts)?;
    if args.similarity {
        println!("{:.4}", cosine_similarity(&vectors[0], &vectors[1]));
        return Ok(());
    }
    for (text, vector) in args.texts.iter().zip(&vectors) {
        let head: Vec<String> = vector.iter().take(8).map(|x| format!("{x:.4}")).collect();
        println!(
            "{text:?}: [{}, ...] ({} dims)",
            head.join(", "),
            vector.len()
        );
    }
    Ok(())
}
