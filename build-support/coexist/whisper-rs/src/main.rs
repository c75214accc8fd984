//! ember-llama and whisper-rs in one static binary, each with its own ggml: generates greedy
//! text through ember, prints whisper.cpp's system info (its ggml's CPU features) and checks
//! that whisper.cpp refuses a model that does not exist (build-support/check-coexist).
//!
//! Usage: coexist-whisper-rs [MODEL.gguf [PROMPT]]   (MODEL default: $EMBER_TEST_MODEL)

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use whisper_rs::{WhisperContext, WhisperContextParameters};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const MAX_TOKENS: usize = 16;
const MISSING_MODEL: &str = "/nonexistent/ggml-tiny.en.bin";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let mut args = std::env::args_os().skip(1);
    let model = args
        .next()
        .or_else(|| std::env::var_os("EMBER_TEST_MODEL"))
        .map(PathBuf::from)
        .ok_or("no model: pass a GGUF path or set EMBER_TEST_MODEL")?;
    let prompt = match args.next() {
        Some(prompt) => prompt
            .into_string()
            .map_err(|_| "the prompt is not UTF-8")?,
        None => "The capital of France is".to_owned(),
    };

    let text = ember(&model, &prompt)?;
    println!("ember:       {text:?}");
    if text.is_empty() {
        return Err("ember generated no text".into());
    }

    println!(
        "whisper.cpp {}: {}",
        whisper_rs::get_whisper_version(),
        whisper_rs::print_system_info().trim_end()
    );
    // Routes whisper.cpp's and its ggml's logs to `log` (no logger: dropped), so the expected
    // failure below prints only our line.
    whisper_rs::install_logging_hooks();
    match WhisperContext::new_with_params(MISSING_MODEL, WhisperContextParameters::default()) {
        Ok(_) => Err(format!("whisper.cpp loaded {MISSING_MODEL}, which does not exist").into()),
        Err(err) => {
            println!("whisper.cpp: loading {MISSING_MODEL} failed as expected: {err}");
            Ok(())
        }
    }
}

/// Greedy generation through ember-llama (its llama.cpp and ggml, `ember_`-prefixed).
fn ember(path: &Path, prompt: &str) -> Result<String> {
    use ember_llama::{
        Context, ContextParams, GenerateOptions, Model, ModelParams, SamplerBuilder,
    };

    let model = Arc::new(Model::load(path, &ModelParams::default())?);
    let mut ctx = Context::new(&model, &ContextParams::default().with_n_ctx(512))?;
    let mut sampler = SamplerBuilder::greedy().build(&model)?;
    let options = GenerateOptions::default().with_max_tokens(MAX_TOKENS);
    let mut text = String::new();
    for piece in ctx.generate(&mut sampler, prompt, &options)? {
        text.push_str(&piece?.text);
    }
    Ok(text)
}
