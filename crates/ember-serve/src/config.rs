//! [`ModelConfig`]: the GGUF file and its generation settings (insightd's `[model]` section).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Most CPU threads a context may use: ggml's `GGML_MAX_N_THREADS` (it asserts above).
pub const MAX_THREADS: i32 = 512;

/// The scheduling priority of the engine's threads (the decode threads and the engine
/// thread). One batch holds API requests and insights together, so it is the engine's
/// setting, not a request's; probes, rules and HTTP always run at normal priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum ModelPriority {
    /// nice 19: the node's workloads come first; the model gets the CPU they leave.
    #[default]
    Background,
    /// nice 0, as the node's workloads: for nodes that exist to serve the API.
    Normal,
}

impl ModelPriority {
    /// The library's priority for the engine's threads.
    pub fn threads(self) -> ember_llama::threads::ThreadPriority {
        match self {
            ModelPriority::Background => ember_llama::threads::ThreadPriority::Background,
            ModelPriority::Normal => ember_llama::threads::ThreadPriority::Normal,
        }
    }
}

/// llama-server's `--reasoning-format` values (llama.cpp's `common_reasoning_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ReasoningFormat {
    /// Thinking stays in the content.
    None,
    /// As `deepseek`.
    Auto,
    /// Thinking in `reasoning_content`, also in stream deltas.
    #[default]
    Deepseek,
    /// As `deepseek`, but left in the content while streaming.
    DeepseekLegacy,
}

impl ReasoningFormat {
    /// llama.cpp's name.
    pub fn name(self) -> &'static str {
        match self {
            ReasoningFormat::None => "none",
            ReasoningFormat::Auto => "auto",
            ReasoningFormat::Deepseek => "deepseek",
            ReasoningFormat::DeepseekLegacy => "deepseek-legacy",
        }
    }
}

/// llama-server's `--reasoning` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Reasoning {
    /// As the template does.
    #[default]
    Auto,
    /// Thinking on.
    On,
    /// Thinking off (`enable_thinking = false`).
    Off,
}

/// Model and generation settings: every field has a default, so a TOML or JSON object of
/// the fields given is one (insightd's `[model]` section). Answers that name a setting call
/// it `model.<field>`, as insightd's configuration does.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// GGUF file; none means no insights and no `/v1` generation.
    pub path: Option<PathBuf>,
    /// Name shown by `/v1/models` (default: the file name without extension).
    pub name: Option<String>,
    /// Other names of the model, listed by `/v1/models` (llama-server's `--alias a,b`).
    pub aliases: Vec<String>,
    /// Labels listed by `/v1/models` (llama-server's `--tags`).
    pub tags: Vec<String>,
    /// Built-in chat template used when the model carries none (default: gemma for Gemma
    /// models, else chatml). A name of llama.cpp's list, rendered without Jinja.
    pub chat_template: Option<String>,
    /// A Jinja chat template file used instead of the model's own (llama-server's
    /// `--chat-template-file`).
    pub chat_template_file: Option<PathBuf>,
    /// Render chats with the template's Jinja source (the GGUF's `tokenizer.chat_template`
    /// or `chat_template_file`) through llama.cpp's own renderer, with tools, tool calls and
    /// reasoning parsed per model family (llama-server's `--jinja`, its default). `false`:
    /// llama.cpp's built-in templates only, and requests with `tools` are refused.
    pub jinja: bool,
    /// Where a reasoning model's thinking goes (llama-server's `--reasoning-format`):
    /// `deepseek` (default: `message.reasoning_content`, also in stream deltas), `auto`,
    /// `deepseek-legacy` (left in the content when streaming) or `none` (left in the
    /// content). A request's `reasoning_format` overrides it.
    pub reasoning_format: ReasoningFormat,
    /// Whether a reasoning model thinks (llama-server's `--reasoning`): `auto` (default: as
    /// the template does), `on` or `off` (the template is told `enable_thinking = false`).
    pub reasoning: Reasoning,
    /// Add `__verbose` (the rendered prompt) to every chat answer, as llama-server does with
    /// `--verbose`; a request can ask for it with `"verbose": true`.
    pub verbose: bool,
    /// Append llama-server's own metrics (`llamacpp:*`, what its dashboards read) to
    /// `/metrics` in the Prometheus text format (llama-server's `--metrics`). Off by default:
    /// their names break Prometheus' conventions (`:`, a counter without `_total`), which
    /// `promtool check metrics` reports.
    pub llama_server_metrics: bool,
    /// Most tokens (prompt plus output) of one generation; the engine's KV cache holds this
    /// many per sequence on average.
    pub ctx_size: u32,
    /// CPU threads per generation (default: the CPUs this process may use, from its
    /// affinity mask and cgroup CPU quota; `/status` says how many and why). Fewer run while
    /// other processes keep cores busy (adaptive threads).
    pub threads: Option<i32>,
    /// Scheduling priority of the engine's threads: `background` (nice 19, the default) or
    /// `normal`.
    pub priority: ModelPriority,
    /// API generations batched together (sequences of the engine); more wait in the queue.
    pub max_concurrent: usize,
    /// API requests that may wait for a sequence; beyond that they are answered 429.
    pub queue: usize,
    /// One KV cache shared by all sequences (`true`): a new prompt can share the cells of a
    /// busy sequence's prefix, but every decode attends over all cells in use, idle caches
    /// included. Or one cache per sequence (`false`, llama-server's default with
    /// `--parallel`): each sequence attends over its own cells only.
    pub kv_unified: bool,
    /// Upper bound on `max_tokens` of a request.
    pub max_tokens: usize,
    /// `max_tokens` when a request gives none.
    pub default_max_tokens: usize,
    /// `temperature` when a request gives none, 0 to 2 (llama-server's `--temp`).
    pub temperature: f32,
    /// `seed` when a request gives none (llama-server's `--seed`); without it each request
    /// gets its own.
    pub seed: Option<u32>,
    /// Serve `GET /slots` (llama-server's `--slots`): one entry per sequence the engine runs
    /// at once; off (501), as llama-server's default.
    pub slots: bool,
    /// The folder `POST /slots/{id}?action=save|restore` writes and reads a slot's cache in
    /// (llama-server's `--slot-save-path`), made at start when missing; unset: those
    /// actions (and erase) answer 501, as llama-server without it.
    pub slot_save_path: Option<PathBuf>,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            path: None,
            name: None,
            aliases: Vec::new(),
            tags: Vec::new(),
            chat_template: None,
            chat_template_file: None,
            jinja: true,
            reasoning_format: ReasoningFormat::Deepseek,
            reasoning: Reasoning::Auto,
            verbose: false,
            llama_server_metrics: false,
            ctx_size: 2048,
            threads: None,
            priority: ModelPriority::Background,
            max_concurrent: 4,
            queue: 16,
            kv_unified: true,
            max_tokens: 1024,
            default_max_tokens: 128,
            temperature: 0.8,
            seed: None,
            slots: false,
            slot_save_path: None,
        }
    }
}
