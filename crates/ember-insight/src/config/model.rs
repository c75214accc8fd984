//! `[model]`: the GGUF file and its generation settings.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Most CPU threads a context may use: ggml's `GGML_MAX_N_THREADS` (it asserts above).
pub const MAX_THREADS: i32 = 512;

/// Model and generation settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelConfig {
    /// GGUF file; none means no insights and no `/v1` generation.
    pub path: Option<PathBuf>,
    /// Name shown by `/v1/models` (default: the file name without extension).
    pub name: Option<String>,
    /// Built-in chat template used when the model carries none (default: gemma for Gemma
    /// models, else chatml).
    pub chat_template: Option<String>,
    /// Most tokens (prompt plus output) of one generation; the engine's KV cache holds this
    /// many per sequence on average.
    pub ctx_size: u32,
    /// CPU threads per generation (default: all cores).
    pub threads: Option<i32>,
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
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            path: None,
            name: None,
            chat_template: None,
            ctx_size: 2048,
            threads: None,
            max_concurrent: 4,
            queue: 16,
            kv_unified: true,
            max_tokens: 1024,
            default_max_tokens: 128,
        }
    }
}
