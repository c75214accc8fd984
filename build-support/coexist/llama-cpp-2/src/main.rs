//! ember-llama and llama-cpp-2 in one static binary, each with its own llama.cpp: generates
//! greedy text from the same prompt through each copy (build-support/check-coexist).
//!
//! Usage: coexist-llama-cpp-2 [MODEL.gguf [PROMPT]]   (MODEL default: $EMBER_TEST_MODEL)

use std::num::NonZeroU32;
use std::path::Path;
use std::process::ExitCode;

#[path = "../../common.rs"]
mod common;
use common::{Result, MAX_TOKENS, N_CTX};

fn main() -> ExitCode {
    common::main_with(run)
}

fn run(model: &Path, prompt: &str) -> Result<()> {
    let ember_text = common::ember(model, prompt)?;
    println!("ember:       {ember_text:?}");
    let llama_text = llama_cpp_2(model, prompt)?;
    println!("llama-cpp-2: {llama_text:?}");
    if ember_text.is_empty() || llama_text.is_empty() {
        return Err("a copy of llama.cpp generated no text".into());
    }
    Ok(())
}

/// Greedy generation through llama-cpp-2 (llama-cpp-sys-2's llama.cpp, unprefixed): the
/// same tokenization as ember's defaults (add and parse special tokens).
fn llama_cpp_2(path: &Path, prompt: &str) -> Result<String> {
    use llama_cpp_2::context::params::LlamaContextParams;
    use llama_cpp_2::llama_backend::LlamaBackend;
    use llama_cpp_2::llama_batch::LlamaBatch;
    use llama_cpp_2::model::params::LlamaModelParams;
    use llama_cpp_2::model::LlamaModel;
    use llama_cpp_2::sampling::LlamaSampler;

    let mut backend = LlamaBackend::init()?;
    // llama.cpp logs every load step to stderr by default; ember's copy logs through `log`.
    backend.void_logs();
    let model = LlamaModel::load_from_file(&backend, path, &LlamaModelParams::default())?;
    // llama.cpp defaults to 4 threads; use what this machine has, as ember does.
    let threads = std::thread::available_parallelism().map_or(4, |n| n.get().min(4));
    let threads = i32::try_from(threads)?;
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(N_CTX))
        .with_n_threads(threads)
        .with_n_threads_batch(threads);
    let mut ctx = model.new_context(&backend, params)?;
    let vocab = model.vocab();

    let tokens = vocab.tokenize(prompt.as_bytes(), true, true);
    let mut batch = LlamaBatch::new(N_CTX as usize, 1);
    for (i, &token) in tokens.iter().enumerate() {
        batch.add(token, i32::try_from(i)?, &[0], i + 1 == tokens.len())?;
    }
    ctx.decode(&mut batch)?;

    let mut sampler = LlamaSampler::greedy();
    let first = i32::try_from(tokens.len())?;
    let mut bytes = Vec::new();
    // Each sampled token is decoded at the next position, after the prompt's.
    for pos in first..first + i32::try_from(MAX_TOKENS)? {
        let token = sampler.sample(&ctx, batch.n_tokens() - 1);
        if vocab.is_eog(token) {
            break;
        }
        bytes.extend(vocab.token_to_piece(token, false, None));
        batch.clear();
        batch.add(token, pos, &[0], true)?;
        ctx.decode(&mut batch)?;
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}
