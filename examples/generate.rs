//! Run with: `cargo run --release --example generate -- -m models/gemma-3-270m-q4_k_m.gguf "Once upon a time"`
//!
//! Streams generated text as it is produced, then prints prompt and generation speed.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use ember::llama::{
    cpu, system_info, Context, ContextParams, GenerateOptions, Model, ModelParams, SamplerBuilder,
};

/// Generate text from a prompt with a GGUF model.
#[derive(Parser)]
struct Args {
    /// GGUF model (default: $EMBER_TEST_MODEL).
    #[arg(short, long)]
    model: Option<PathBuf>,
    /// The prompt.
    #[arg(default_value = "The three laws of robotics are")]
    prompt: String,
    /// Most tokens to generate.
    #[arg(short = 'n', long, default_value_t = 64)]
    max_tokens: usize,
    /// Sampling temperature; 0 means greedy.
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    /// Seed for sampling at a temperature above 0.
    #[arg(long, default_value_t = 42)]
    seed: u32,
    /// Stop strings (repeatable).
    #[arg(long)]
    stop: Vec<String>,
    /// Threads (default: llama.cpp's 4, at most the CPUs this process may use).
    #[arg(short, long)]
    threads: Option<i32>,
    /// Context size in tokens.
    #[arg(long, default_value_t = 2048)]
    ctx_size: u32,
    /// Print the CPU variant in use and llama.cpp's system info on stderr first.
    #[arg(short, long)]
    verbose: bool,
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
    let path = args
        .model
        .or_else(|| std::env::var_os("EMBER_TEST_MODEL").map(PathBuf::from))
        .context("no model: pass -m PATH or set EMBER_TEST_MODEL (build-support/fetch-model)")?;
    if args.verbose {
        // The variant of ggml's CPU backend this CPU runs (EMBER_LLAMA_CPU_VARIANT forces one).
        eprintln!("cpu variant: {}", cpu::variant()?);
        eprintln!("system info: {}", system_info()?);
    }
    let model = Arc::new(Model::load(&path, &ModelParams::default())?);
    let mut params = ContextParams::default().with_n_ctx(args.ctx_size);
    if let Some(threads) = args.threads {
        params = params.with_threads(threads);
    }
    let mut ctx = Context::new(&model, &params)?;
    let builder = if args.temperature > 0.0 {
        SamplerBuilder::new()
            .top_k(40)
            .top_p(0.95, 1)
            .temperature(args.temperature)
            .seeded(args.seed)
    } else {
        SamplerBuilder::greedy()
    };
    let mut sampler = builder.build(&model)?;
    let mut options = GenerateOptions::default().with_max_tokens(args.max_tokens);
    for stop in args.stop {
        options = options.with_stop(stop);
    }

    let mut generation = ctx.generate(&mut sampler, &args.prompt, &options)?;
    let mut out = std::io::stdout().lock();
    write!(out, "{}", args.prompt)?;
    for piece in generation.by_ref() {
        write!(out, "{}", piece?.text)?;
        out.flush()?;
    }
    writeln!(out)?;
    let stats = generation.stats();
    eprintln!(
        "prompt: {} tokens, {:.1} tokens/s; generation: {} tokens, {:.1} tokens/s ({:?})",
        stats.prompt_tokens,
        stats.prompt_tokens_per_second(),
        stats.generated_tokens,
        stats.generation_tokens_per_second(),
        generation
            .finish_reason()
            .unwrap_or(ember::llama::FinishReason::MaxTokens),
    );
    Ok(())
}
