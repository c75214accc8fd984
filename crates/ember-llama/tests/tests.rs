//! Integration tests on a real GGUF model (`EMBER_TEST_MODEL`, from
//! `build-support/fetch-model`). Without the model the model tests print why and return;
//! with `CI=true` a missing model (or `EMBER_LLAMA_SIMPLE` for the parity test) fails them.
//! One test binary; one file per topic (but `threads.rs`, its own binary: see there).

mod common;
mod gguf_corpus;

mod bad_input;
mod batched;
mod chat;
#[cfg(feature = "chat")]
mod chat_template;
mod cpu_variants;
mod embeddings;
mod generation;
mod model;
mod parity;
mod tokenizer;
