//! The server's Prometheus metrics (`prometheus-client`): what the API's generations and the
//! engine's decodes count. [`ServeMetrics::register`] adds them to an application's registry
//! (insightd registers them under its `insightd_` prefix); [`ServeMetrics::llama_server_text`]
//! gives the same figures under llama-server's `llamacpp:*` names.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Label of per-endpoint metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabel {
    /// `completions`, `chat_completions` or `embeddings`.
    pub endpoint: String,
}

/// The generation engine's metrics (handles shared with [`ServeMetrics`]; the engine gets a
/// clone).
#[derive(Clone, Debug)]
pub struct EngineMetrics {
    /// API requests waiting for a sequence.
    pub queue: Gauge,
    /// Sequences in each batched decode.
    pub batch_sequences: Histogram,
    /// Prompt tokens decoded.
    pub prompt_tokens_evaluated: Counter,
    /// Prompt tokens reused from the KV cache instead.
    pub prompt_tokens_reused: Counter,
    /// Tokens sampled per second over all sequences (5 s windows; 0 when idle).
    pub tokens_per_second: Gauge<f64, AtomicU64>,
    /// Batched decodes run (llama-server's `n_decode_total`).
    pub decodes: Counter,
    /// Sequences summed over those decodes (for `n_busy_slots_per_decode`).
    pub decode_sequences: Counter,
    /// Most tokens in one decode.
    pub decode_tokens_max: Gauge,
}

impl Default for EngineMetrics {
    fn default() -> Self {
        EngineMetrics {
            queue: Gauge::default(),
            batch_sequences: Histogram::new(exponential_buckets(1.0, 2.0, 9)),
            prompt_tokens_evaluated: Counter::default(),
            prompt_tokens_reused: Counter::default(),
            tokens_per_second: Gauge::default(),
            decodes: Counter::default(),
            decode_sequences: Counter::default(),
            decode_tokens_max: Gauge::default(),
        }
    }
}

/// Every metric of the server: handles that clones share, so an application keeps one copy
/// and the [`Server`](crate::Server) another.
#[derive(Clone, Debug, Default)]
pub struct ServeMetrics {
    /// Generations started through the API.
    pub generations: Family<EndpointLabel, Counter>,
    /// Requests answered 429 because every generation slot was busy.
    pub generations_rejected: Family<EndpointLabel, Counter>,
    /// Generations stopped because their client went away.
    pub generations_cancelled: Counter,
    /// Generations running now.
    pub generations_running: Gauge,
    /// Tokens generated through the API.
    pub generated_tokens: Counter,
    /// Prompt tokens decoded through the API.
    pub prompt_tokens: Counter,
    /// Of the API's prompt tokens, those reused from the KV cache.
    pub prompt_tokens_cached: Counter,
    /// Microseconds the API's prompts took to decode.
    pub prompt_micros: Counter,
    /// Microseconds from the API's first generated tokens to their last.
    pub generation_micros: Counter,
    /// The engine's own.
    pub engine: EngineMetrics,
}

impl ServeMetrics {
    /// Adds the metrics to `registry` (its prefix, if any, comes before their names:
    /// `generations`, `generations_rejected`, `generation_queue`, ...).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "generations",
            "Generations started through the API",
            self.generations.clone(),
        );
        registry.register(
            "generations_rejected",
            "Generation requests answered 429 because every slot was busy",
            self.generations_rejected.clone(),
        );
        registry.register(
            "generations_cancelled",
            "Generations stopped because their client disconnected",
            self.generations_cancelled.clone(),
        );
        registry.register(
            "generations_running",
            "Generations running now",
            self.generations_running.clone(),
        );
        registry.register(
            "generated_tokens",
            "Tokens generated through the API",
            self.generated_tokens.clone(),
        );
        registry.register(
            "prompt_tokens",
            "Prompt tokens decoded through the API",
            self.prompt_tokens.clone(),
        );
        registry.register(
            "generation_queue",
            "API generation requests waiting for a sequence",
            self.engine.queue.clone(),
        );
        registry.register(
            "batch_sequences",
            "Sequences in each batched decode",
            self.engine.batch_sequences.clone(),
        );
        registry.register(
            "prompt_tokens_evaluated",
            "Prompt tokens decoded by the engine (API and insights)",
            self.engine.prompt_tokens_evaluated.clone(),
        );
        registry.register(
            "prompt_tokens_reused",
            "Prompt tokens reused from the KV cache instead of decoded",
            self.engine.prompt_tokens_reused.clone(),
        );
        registry.register(
            "generation_tokens_per_second",
            "Tokens sampled per second over all sequences (5 s windows)",
            self.engine.tokens_per_second.clone(),
        );
    }

    /// llama-server's own metrics (`llamacpp:*`, Prometheus text format with its names,
    /// types and help lines), which dashboards and its tests read, from the API's
    /// generations and the engine's decodes. Appended to the Prometheus text format only:
    /// OpenMetrics has no counter without `_total` (`n_tokens_max`) nor `:` in its names'
    /// conventions; insightd's own `insightd_*` metrics carry the same figures.
    pub fn llama_server_text(&self) -> String {
        let e = &self.engine;
        let prompt = self
            .prompt_tokens
            .get()
            .saturating_sub(self.prompt_tokens_cached.get());
        let prompt_s = self.prompt_micros.get() as f64 / 1e6;
        let predicted = self.generated_tokens.get();
        let predicted_s = self.generation_micros.get() as f64 / 1e6;
        let rate = |n: u64, s: f64| if s > 0.0 { n as f64 / s } else { 0.0 };
        let decodes = e.decodes.get();
        let busy = if decodes > 0 {
            e.decode_sequences.get() as f64 / decodes as f64
        } else {
            0.0
        };
        let running = (self.generations_running.get() - e.queue.get()).max(0);
        let rows: [(&str, &str, &str, f64); 15] = [
            (
                "prompt_tokens_total",
                "counter",
                "Number of prompt tokens processed.",
                prompt as f64,
            ),
            (
                "prompt_tokens_cached_total",
                "counter",
                "Number of prompt tokens reused from the KV cache.",
                self.prompt_tokens_cached.get() as f64,
            ),
            (
                "prompt_seconds_total",
                "counter",
                "Prompt process time",
                prompt_s,
            ),
            (
                "tokens_predicted_total",
                "counter",
                "Number of generation tokens processed.",
                predicted as f64,
            ),
            (
                "tokens_predicted_seconds_total",
                "counter",
                "Predict process time",
                predicted_s,
            ),
            (
                "n_decode_total",
                "counter",
                "Total number of llama_decode() calls",
                decodes as f64,
            ),
            (
                "n_tokens_max",
                "counter",
                "Largest observed n_tokens.",
                e.decode_tokens_max.get() as f64,
            ),
            (
                "spec_decode_num_draft_tokens_total",
                "counter",
                "Number of draft tokens (no speculative decoding here).",
                0.0,
            ),
            (
                "spec_decode_num_accepted_tokens_total",
                "counter",
                "Number of accepted draft tokens (no speculative decoding here).",
                0.0,
            ),
            (
                "spec_decode_num_drafts_total",
                "counter",
                "Number of drafts (no speculative decoding here).",
                0.0,
            ),
            (
                "prompt_tokens_seconds",
                "gauge",
                "Average prompt throughput in tokens/s.",
                rate(prompt, prompt_s),
            ),
            (
                "predicted_tokens_seconds",
                "gauge",
                "Average generation throughput in tokens/s.",
                rate(predicted, predicted_s),
            ),
            (
                "requests_processing",
                "gauge",
                "Number of requests processing.",
                running as f64,
            ),
            (
                "requests_deferred",
                "gauge",
                "Number of requests deferred.",
                e.queue.get().max(0) as f64,
            ),
            (
                "n_busy_slots_per_decode",
                "gauge",
                "Average number of busy slots per llama_decode() call",
                busy,
            ),
        ];
        let mut out = String::new();
        for (name, kind, help, value) in rows {
            out.push_str(&format!(
                "# HELP llamacpp:{name} {help}\n# TYPE llamacpp:{name} {kind}\nllamacpp:{name} {value}\n"
            ));
        }
        out
    }
}

/// Raises a gauge to `value` when that is higher (a maximum observed).
pub fn raise_gauge(gauge: &Gauge, value: i64) {
    if value > gauge.get() {
        gauge.set(value);
    }
}
