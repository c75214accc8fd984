//! ember: local LLM inference (llama.cpp) and kernel telemetry (eBPF) from Rust.
//!
//! This crate is a facade: it re-exports the ember crates, each behind a feature of the
//! same concern, and owns the workspace's examples and benchmarks.
//!
//! | feature  | crate              | what it gives                                        |
//! |----------|--------------------|------------------------------------------------------|
//! | `llama`  | [`ember_llama`]     | safe inference API: models, contexts, sampling, chat, embeddings |
//! | `llama`  | [`ember_llama_sys`] | raw bindings to a statically linked, pinned llama.cpp |
//! | `probes` | [`ember_probes`]    | eBPF probes, typed kernel events, a process table     |
//! | `serve`  | [`ember_serve`](https://docs.rs/ember-serve) | an OpenAI-compatible server of a model as an axum `Router` |

// docs.rs (nightly, `--cfg docsrs`): items gated on a feature or target say so.
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "llama")]
pub use ember_llama as llama;
#[cfg(feature = "llama")]
pub use ember_llama_sys as llama_sys;
#[cfg(feature = "probes")]
pub use ember_probes as probes;
#[cfg(feature = "serve")]
pub use ember_serve as serve;
