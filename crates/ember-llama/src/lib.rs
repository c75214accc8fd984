//! Safe Rust API over a statically linked [llama.cpp](https://github.com/ggml-org/llama.cpp)
//! (the raw bindings are `ember-llama-sys`).
//!
//! The pieces follow llama.cpp's concepts, one module each:
//!
//! - [`Model`] ([`model`]): a GGUF file loaded once, `Send + Sync`, shared with `Arc`. It
//!   carries the metadata, the special tokens and the tokenizer
//!   ([`Model::tokenize`], [`Model::token_to_piece`], [`Model::detokenize`]).
//!   [`TokenDecoder`] turns a stream of token pieces into text without splitting a UTF-8
//!   character.
//! - [`Context`] ([`context`]): one inference state (KV cache, logits) per thread, with
//!   [`ContextParams`]. It decodes [`Batch`]es, manages its KV cache (clear, remove or copy
//!   sequence ranges) and reports perf counters.
//! - [`Sampler`] ([`sampler`]): a chain built with [`SamplerBuilder`]: greedy, seeded,
//!   temperature, top-k/p, min-p, typical, penalties, mirostat, GBNF grammars.
//! - [`Generation`] ([`generate`]): an iterator of [`Piece`]s with max tokens, stop strings,
//!   cancellation ([`CancelHandle`]) and [`GenerationStats`].
//! - [`BatchGenerator`] ([`batched`]): many generations in one context, one decode per step
//!   for all of them, with per-sequence samplers, limits, cancellation and prompt-prefix
//!   reuse; what a server uses.
//! - [`chat`]: llama.cpp's built-in chat templates; `chat_template` (feature `chat`): the
//!   model's own Jinja template, tool calls, reasoning and JSON Schema grammars through
//!   llama.cpp's `common` library, as llama-server; [`embedding`]: pooled, normalised sentence vectors.
//! - [`cpu`]: which variant of ggml's CPU backend runs (one binary carries one per
//!   instruction-set level and chooses at start).
//!
//! Every failure is an [`Error`]; bad input (damaged GGUF files, token ids outside the
//! vocabulary, over-long prompts, invalid grammars) never panics or aborts: where llama.cpp
//! would assert, this crate checks first. llama.cpp's log lines go to the [`log`] crate
//! under the target `llama.cpp`.
//!
//! # Example
//!
//! ```no_run
//! use std::sync::Arc;
//! use ember_llama::{Context, ContextParams, GenerateOptions, Model, ModelParams, SamplerBuilder};
//!
//! let model = Arc::new(Model::load("gemma-3-270m-q4_k_m.gguf", &ModelParams::default())?);
//! let mut ctx = Context::new(&model, &ContextParams::default().with_n_ctx(1024))?;
//! let mut sampler = SamplerBuilder::greedy().build(&model)?;
//! let options = GenerateOptions::default().with_max_tokens(32).with_stop("\n\n");
//! let mut generation = ctx.generate(&mut sampler, "The capital of France is", &options)?;
//! for piece in generation.by_ref() {
//!     print!("{}", piece?.text);
//! }
//! let stats = generation.stats();
//! println!("\n{:.1} tokens/s", stats.generation_tokens_per_second());
//! # Ok::<(), ember_llama::Error>(())
//! ```

#![deny(missing_docs)]
// docs.rs (nightly, `--cfg docsrs`): items gated on a feature or target say so.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod backend;
mod barrier;
pub mod batch;
pub mod batched;
pub mod chat;
#[cfg(feature = "chat")]
#[cfg_attr(docsrs, doc(cfg(feature = "chat")))]
pub mod chat_template;
pub mod context;
pub mod cpu;
pub mod embedding;
pub mod error;
pub mod generate;
pub mod gguf;
pub mod logprobs;
pub mod model;
pub mod sampler;
pub mod threads;
pub mod token;

pub use backend::system_info;
pub use batch::Batch;
pub use batched::{BatchEvent, BatchGenerator, SequenceId, SlotFile, SlotState, StepStats};
pub use chat::{apply_chat_template, builtin_templates, ChatMessage};
pub use context::{
    CancelHandle, Context, ContextParams, FlashAttention, KvCacheType, PerfCounters, Pooling,
};
pub use cpu::CpuVariant;
pub use embedding::cosine_similarity;
pub use error::{Error, Result};
pub use generate::{FinishReason, GenerateOptions, Generation, GenerationStats, Piece};
pub use logprobs::{Logprobs, TokenLogprob};
pub use model::{Model, ModelParams, SpecialTokens};
pub use sampler::{Sampler, SamplerBuilder};
pub use token::{Token, TokenDecoder};
