//! Run with: `build-support/bench` (which builds this with `cargo build --release --bench
//! llama_bench`, per backend, and runs it against upstream `llama-bench`).
//!
//! The wrapper's equivalent of upstream `llama-bench`'s pp and tg tests, through the safe
//! `ember::llama` API: `pp` decodes `-p` random tokens in batches of `-b`; `tg` decodes `-n`
//! single tokens; `gen` runs a full greedy `Generation` (sampling and detokenising included)
//! of `-n` tokens. Like llama-bench: one warmup run, the KV cache cleared before each
//! repetition, the context sized `p + n`. Prints one JSON line: the mean tokens/s over `-r`
//! repetitions and each sample. `--cpu-variant` alone prints the CPU variant it would run.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

mod common;

use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use common::Lcg;
use ember::llama::{
    Batch, Context, ContextParams, FlashAttention, GenerateOptions, Model, ModelParams,
    SamplerBuilder, Token,
};

#[derive(Clone, Copy, ValueEnum)]
enum Test {
    /// Prompt processing.
    Pp,
    /// Token generation (decode only).
    Tg,
    /// Full generation: decode, greedy sampling and detokenising.
    Gen,
}

#[derive(Clone, Copy, ValueEnum)]
enum Fa {
    On,
    Off,
    Auto,
}

/// llama-bench's pp/tg tests through the safe API.
#[derive(Parser)]
struct Args {
    /// GGUF model.
    #[arg(short, long)]
    model: PathBuf,
    /// Which test.
    #[arg(long, value_enum)]
    test: Test,
    /// Prompt tokens (pp).
    #[arg(short = 'p', default_value_t = 512)]
    n_prompt: usize,
    /// Generated tokens (tg, gen).
    #[arg(short = 'n', default_value_t = 128)]
    n_gen: usize,
    /// Threads.
    #[arg(short, long)]
    threads: i32,
    /// Batch size.
    #[arg(short = 'b', default_value_t = 2048)]
    n_batch: u32,
    /// Micro-batch size.
    #[arg(long = "ub", default_value_t = 512)]
    n_ubatch: u32,
    /// Flash attention.
    #[arg(long = "fa", value_enum, default_value_t = Fa::Auto)]
    flash_attn: Fa,
    /// Repetitions.
    #[arg(short, default_value_t = 5)]
    reps: usize,
    /// Layers offloaded to the GPU backend (llama-bench's `-ngl`); 0 on the CPU backend.
    #[arg(long = "ngl", default_value_t = 0)]
    gpu_layers: i32,
}

fn main() -> ExitCode {
    // `--cpu-variant` alone: which CPU variant this binary runs (build-support/bench reports it).
    if std::env::args().nth(1).as_deref() == Some("--cpu-variant") {
        return match ember::llama::cpu::variant() {
            Ok(name) => {
                println!("{name}");
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("error: {err}");
                ExitCode::FAILURE
            }
        };
    }
    if no_model_given() {
        return ExitCode::SUCCESS;
    }
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    if args.gpu_layers > 0 {
        ember::llama::backend::init()?;
        // SAFETY: plain query of the backend registry, after llama_backend_init (init above).
        let gpu = unsafe { ember::llama_sys::llama_supports_gpu_offload() };
        anyhow::ensure!(
            gpu,
            "--ngl {} but this build sees no GPU device (without a GPU, Vulkan runs on lavapipe \
             with GGML_VK_VISIBLE_DEVICES=0)",
            args.gpu_layers
        );
    }
    let model = Arc::new(Model::load(
        &args.model,
        &ModelParams::default().with_gpu_layers(args.gpu_layers),
    )?);
    let (n_prompt, n_gen) = match args.test {
        Test::Pp => (args.n_prompt, 0),
        Test::Tg | Test::Gen => (0, args.n_gen),
    };
    let fa = match args.flash_attn {
        Fa::On => FlashAttention::Enabled,
        Fa::Off => FlashAttention::Disabled,
        Fa::Auto => FlashAttention::Auto,
    };
    let params = ContextParams::default()
        .with_n_ctx((n_prompt + n_gen + usize::from(matches!(args.test, Test::Gen))) as u32)
        .with_n_batch(args.n_batch)
        .with_n_ubatch(args.n_ubatch)
        .with_threads(args.threads)
        .with_flash_attention(fa);
    let mut ctx = Context::new(&model, &params)?;
    let mut sampler = SamplerBuilder::greedy().build(&model)?;
    let special = model.special_tokens();
    let first = if special.add_bos { special.bos } else { None };
    let mut rng = Lcg(42);
    let n_vocab = model.n_vocab();

    let mut samples = Vec::new();
    for rep in 0..=args.reps {
        ctx.clear_kv();
        let start = Instant::now();
        let rate = match args.test {
            Test::Pp => {
                let mut batch = Batch::new(args.n_batch as usize, 1);
                let mut done = 0;
                while done < n_prompt {
                    let n = (n_prompt - done).min(args.n_batch as usize);
                    batch.clear();
                    for i in 0..n {
                        let t = match (done + i, first) {
                            (0, Some(bos)) => bos,
                            _ => rng.token(n_vocab),
                        };
                        batch.add(t, (done + i) as i32, &[0], i + 1 == n)?;
                    }
                    ctx.decode(&batch)?;
                    done += n;
                }
                n_prompt as f64 / start.elapsed().as_secs_f64()
            }
            Test::Tg => {
                let mut batch = Batch::new(1, 1);
                let mut token = first.unwrap_or_else(|| rng.token(n_vocab));
                // The warmup run decodes one token, as llama-bench's does.
                let n = if rep == 0 { 1 } else { n_gen };
                for pos in 0..n {
                    batch.clear();
                    batch.add(token, pos as i32, &[0], true)?;
                    ctx.decode(&batch)?;
                    token = rng.token(n_vocab);
                }
                n as f64 / start.elapsed().as_secs_f64()
            }
            Test::Gen => {
                let bos = first.unwrap_or(Token(2));
                let options =
                    GenerateOptions::default().with_max_tokens(if rep == 0 { 1 } else { n_gen });
                let mut generation = ctx.generate_from_tokens(&mut sampler, &[bos], &options)?;
                let text = generation.collect_text().context("generation")?;
                std::hint::black_box(text);
                // Tokens/s after the prompt: sampling, detokenising and decoding.
                generation.stats().generation_tokens_per_second()
            }
        };
        if rep > 0 {
            samples.push(rate);
        }
    }
    let mean = samples.iter().sum::<f64>() / samples.len().max(1) as f64;
    let name = match args.test {
        Test::Pp => format!("pp{n_prompt}"),
        Test::Tg => format!("tg{n_gen}"),
        Test::Gen => format!("gen{n_gen}"),
    };
    let list: Vec<String> = samples.iter().map(|s| format!("{s:.3}")).collect();
    println!(
        "{{\"test\": \"{name}\", \"threads\": {}, \"avg_ts\": {mean:.3}, \"samples_ts\": [{}]}}",
        args.threads,
        list.join(", ")
    );
    Ok(())
}

/// `cargo test --all-targets` and `cargo bench` run this binary without a model: say how to
/// run it and succeed, so those commands only check that it builds.
fn no_model_given() -> bool {
    let given = std::env::args().any(|a| {
        a == "-m" || a == "--model" || a.starts_with("--model=") || a == "-h" || a == "--help"
    });
    if !given {
        eprintln!("nothing to run without --model: use build-support/bench");
    }
    !given
}
