//! Run with: `build-support/callgrind-overhead` (counts instructions of both variants under
//! `valgrind --tool=callgrind` and prints their ratio).
//!
//! One fixed workload, `--api safe` through `ember::llama` or `--api raw` through
//! `ember::llama_sys` calls: load the model, decode a 64-token prompt, generate 32 greedy
//! tokens and turn them into text, on 1 thread. The prompt is the same 64 token ids in both
//! (tokenized from a fixed text, cut or padded to 64).

use std::ffi::{c_char, c_void, CString};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context as _};
use clap::{Parser, ValueEnum};
use ember::llama::{ContextParams, GenerateOptions, Model, ModelParams, SamplerBuilder, Token};
use ember::llama_sys as sys;

const PROMPT_TOKENS: usize = 64;
const GEN_TOKENS: usize = 32;
const TEXT: &str = "The history of computing is a story of ideas that seemed impossible until \
    someone built them. From mechanical calculators to electronic machines filling whole rooms, \
    each generation of engineers";

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Api {
    Safe,
    Raw,
}

/// The fixed load + 64-token prompt + 32 greedy tokens workload.
#[derive(Parser)]
struct Args {
    /// GGUF model.
    #[arg(short, long)]
    model: PathBuf,
    /// Which API runs the workload.
    #[arg(long, value_enum)]
    api: Api,
}

fn main() -> ExitCode {
    if no_model_given() {
        return ExitCode::SUCCESS;
    }
    let args = Args::parse();
    let result = match args.api {
        Api::Safe => safe(&args.model),
        Api::Raw => raw(&args.model),
    };
    match result {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The prompt's 64 ids: the text's tokens (with BOS), repeated to fill 64.
fn prompt_ids(mut tokenize: impl FnMut(&str) -> Vec<i32>) -> Vec<i32> {
    let base = tokenize(TEXT);
    base.iter().copied().cycle().take(PROMPT_TOKENS).collect()
}

fn safe(path: &std::path::Path) -> anyhow::Result<String> {
    let model = Arc::new(Model::load(path, &ModelParams::default())?);
    let ids = prompt_ids(|t| {
        let tokens = model.tokenize(t, true, false).unwrap_or_default();
        tokens.iter().map(|t| t.0).collect()
    });
    let prompt: Vec<Token> = ids.into_iter().map(Token).collect();
    let params = ContextParams::default().with_n_ctx(128).with_threads(1);
    let mut ctx = ember::llama::Context::new(&model, &params)?;
    let mut sampler = SamplerBuilder::greedy().build(&model)?;
    let options = GenerateOptions::default().with_max_tokens(GEN_TOKENS);
    let text = ctx
        .generate_from_tokens(&mut sampler, &prompt, &options)?
        .collect_text()?;
    Ok(text)
}

/// Drops llama.cpp's log lines, as the safe API does without a logger.
unsafe extern "C" fn quiet_log(_: sys::ggml_log_level, _: *const c_char, _: *mut c_void) {}

fn raw(path: &std::path::Path) -> anyhow::Result<String> {
    let c_path = CString::new(path.as_os_str().as_encoded_bytes()).context("NUL in path")?;
    // SAFETY: the whole block follows llama.h's documented call sequence (as in upstream's
    // examples/simple): every pointer is checked for null right after it is created and
    // freed once at the end; buffers are passed with their real lengths; token ids come from
    // the tokenizer or the sampler and so are in the vocabulary.
    unsafe {
        sys::llama_log_set(Some(quiet_log), std::ptr::null_mut());
        sys::llama_backend_init();
        let model =
            sys::llama_model_load_from_file(c_path.as_ptr(), sys::llama_model_default_params());
        if model.is_null() {
            bail!("llama.cpp could not load {}", path.display());
        }
        let vocab = sys::llama_model_get_vocab(model);
        let mut ids = prompt_ids(|t| {
            let mut out = vec![0i32; t.len() + 8];
            let n = sys::llama_tokenize(
                vocab,
                t.as_ptr().cast(),
                t.len() as i32,
                out.as_mut_ptr(),
                out.len() as i32,
                true,
                false,
            );
            out.truncate(n.max(0) as usize);
            out
        });
        let mut cparams = sys::llama_context_default_params();
        cparams.n_ctx = 128;
        cparams.n_threads = 1;
        cparams.n_threads_batch = 1;
        let ctx = sys::llama_init_from_model(model, cparams);
        if ctx.is_null() {
            bail!("llama.cpp could not create a context");
        }
        let chain = sys::llama_sampler_chain_init(sys::llama_sampler_chain_default_params());
        sys::llama_sampler_chain_add(chain, sys::llama_sampler_init_greedy());

        let mut batch = sys::llama_batch_init(PROMPT_TOKENS as i32, 0, 1);
        let fill = |batch: &mut sys::llama_batch, tokens: &[i32], pos0: usize| {
            for (i, &t) in tokens.iter().enumerate() {
                *batch.token.add(i) = t;
                *batch.pos.add(i) = (pos0 + i) as i32;
                *batch.n_seq_id.add(i) = 1;
                **batch.seq_id.add(i) = 0;
                *batch.logits.add(i) = i8::from(i + 1 == tokens.len());
            }
            batch.n_tokens = tokens.len() as i32;
        };
        fill(&mut batch, &ids, 0);
        let mut text = Vec::new();
        let mut pos = PROMPT_TOKENS;
        for step in 0..GEN_TOKENS {
            if sys::llama_decode(ctx, batch) != 0 {
                bail!("llama_decode failed");
            }
            let token = sys::llama_sampler_sample(chain, ctx, -1);
            if sys::llama_vocab_is_eog(vocab, token) {
                break;
            }
            let mut piece = [0u8; 256];
            let n =
                sys::llama_token_to_piece(vocab, token, piece.as_mut_ptr().cast(), 256, 0, false);
            text.extend_from_slice(&piece[..n.max(0) as usize]);
            if step + 1 < GEN_TOKENS {
                ids.clear();
                ids.push(token);
                fill(&mut batch, &ids, pos);
                pos += 1;
            }
        }
        sys::llama_batch_free(batch);
        sys::llama_sampler_free(chain);
        sys::llama_free(ctx);
        sys::llama_model_free(model);
        sys::llama_backend_free();
        Ok(String::from_utf8_lossy(&text).into_owned())
    }
}

/// `cargo test --all-targets` and `cargo bench` run this binary without a model: say how to
/// run it and succeed, so those commands only check that it builds.
fn no_model_given() -> bool {
    let given = std::env::args().any(|a| {
        a == "-m" || a == "--model" || a.starts_with("--model=") || a == "-h" || a == "--help"
    });
    if !given {
        eprintln!("nothing to run without --model: use build-support/callgrind-overhead");
    }
    !given
}
