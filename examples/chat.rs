//! Run with: `cargo run --release --example chat -- -m models/gemma-3-270m-q4_k_m.gguf`
//! (one-shot: add `--prompt "Why is the sky blue?"`)
//!
//! An interactive chat through the model's chat template, or a built-in one by name
//! (`--template gemma` for GGUFs without one).

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use ember::llama::{
    ChatMessage, Context, ContextParams, GenerateOptions, Model, ModelParams, SamplerBuilder,
};

/// Chat with a GGUF model.
#[derive(Parser)]
struct Args {
    /// GGUF model (default: $EMBER_TEST_MODEL).
    #[arg(short, long)]
    model: Option<PathBuf>,
    /// Ask one question, print the answer and exit.
    #[arg(long)]
    prompt: Option<String>,
    /// Built-in chat template to use instead of the model's (e.g. gemma, chatml, llama3).
    #[arg(long)]
    template: Option<String>,
    /// System message.
    #[arg(long)]
    system: Option<String>,
    /// Most tokens per answer.
    #[arg(short = 'n', long, default_value_t = 256)]
    max_tokens: usize,
    /// Sampling temperature; 0 means greedy.
    #[arg(long, default_value_t = 0.7)]
    temperature: f32,
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
    let model = Arc::new(Model::load(&path, &ModelParams::default())?);
    // Without a template in the GGUF, fall back to llama.cpp's built-in one of that name.
    let template = args
        .template
        .clone()
        .or_else(|| model.chat_template().is_none().then(|| "gemma".to_string()));
    let mut ctx = Context::new(&model, &ContextParams::default().with_n_ctx(4096))?;
    let builder = if args.temperature > 0.0 {
        SamplerBuilder::new()
            .top_k(40)
            .top_p(0.95, 1)
            .temperature(args.temperature)
            .seeded(42)
    } else {
        SamplerBuilder::greedy()
    };
    let mut sampler = builder.build(&model)?;
    let options = GenerateOptions::default().with_max_tokens(args.max_tokens);

    let mut messages: Vec<ChatMessage> = args.system.iter().map(ChatMessage::system).collect();
    let mut turn = |messages: &mut Vec<ChatMessage>, question: String| -> anyhow::Result<()> {
        messages.push(ChatMessage::user(question));
        let prompt = model.apply_chat_template(template.as_deref(), messages, true)?;
        let mut answer = String::new();
        let mut out = std::io::stdout().lock();
        for piece in ctx.generate(&mut sampler, &prompt, &options)? {
            let text = piece?.text;
            write!(out, "{text}")?;
            out.flush()?;
            answer.push_str(&text);
        }
        writeln!(out)?;
        messages.push(ChatMessage::assistant(answer.trim()));
        Ok(())
    };

    if let Some(question) = args.prompt {
        return turn(&mut messages, question);
    }
    eprintln!(
        "chat with {} (empty line or Ctrl-D to quit)",
        model.description()
    );
    let stdin = std::io::stdin();
    loop {
        eprint!("> ");
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 || line.trim().is_empty() {
            return Ok(());
        }
        turn(&mut messages, line.trim().to_string())?;
    }
}
