//! `insightd`: kernel telemetry, alert rules, local LLM insights and an OpenAI-compatible API
//! in one static binary.
//!
//! The pieces, one module each, in the order data flows:
//!
//! - [`config`]: command-line flags over an optional YAML or TOML file;
//! - [`telemetry`]: `ember-probes` (BPF, or `/proc` polling when BPF cannot load) feeding
//!   [`rules`] and the event [`hub`];
//! - [`rules`]: thresholds over sliding windows (fork rate, subtree RSS and CPU, OOM kills,
//!   failing exits, run-queue latency p99) raising deduplicated alerts;
//! - [`insights`]: the loaded model ([`llm`], `ember-llama`) explains new alerts as JSON under a
//!   grammar;
//! - [`http`]: the axum API (health, status, processes, SSE stream, alerts, insights,
//!   Prometheus [`metrics`], OpenAI-compatible `/v1`);
//! - [`server`]: [`server::serve`] runs it all until SIGTERM/SIGINT; [`server::once`] watches
//!   for a while and returns a [`report`].
//!
//! # Example
//!
//! ```no_run
//! use ember_insight::config::Config;
//!
//! let config = Config::default(); // 127.0.0.1:3000, no model
//! let report = ember_insight::server::once(config, std::time::Duration::from_secs(2))?;
//! println!("{report}");
//! # Ok::<(), anyhow::Error>(())
//! ```
#![deny(missing_docs)]
// docs.rs (nightly, `--cfg docsrs`): items gated on a feature or target say so.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod alertmanager;
pub mod alerts;
pub mod cli;
pub mod config;
pub mod history;
pub mod http;
pub mod hub;
pub mod insights;
pub mod metrics;
pub mod otlp;
pub mod pod;
pub mod push;
pub mod report;
pub mod rules;
pub mod server;
pub mod state;
pub mod telemetry;
mod time;

// The model, its engine and the OpenAI-compatible routes are ember-serve's.
pub use ember_serve::{engine, llm};
