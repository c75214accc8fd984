//! [`ModelParams`]: how a model is loaded.

use ember_llama_sys as sys;

/// How to load a model. `Default` is llama.cpp's `llama_model_default_params()`.
#[derive(Clone, Debug)]
pub struct ModelParams {
    pub(crate) raw: sys::llama_model_params,
    mmap: Option<bool>,
    mlock: bool,
}

// SAFETY: the raw struct's pointers (devices, overrides, progress callback) are always null
// in a `ModelParams`: no builder sets them, so moving it across threads shares nothing.
unsafe impl Send for ModelParams {}
// SAFETY: as above; `&ModelParams` only reads plain values.
unsafe impl Sync for ModelParams {}

impl Default for ModelParams {
    fn default() -> Self {
        // SAFETY: a plain value constructor without preconditions.
        let raw = unsafe { sys::llama_model_default_params() };
        ModelParams {
            raw,
            mmap: None,
            mlock: false,
        }
    }
}

impl ModelParams {
    /// Layers to offload to the GPU (`-1`, llama.cpp's default, means all; `0` none). Only
    /// matters when a GPU backend feature is enabled.
    ///
    /// ```
    /// let params = ember_llama::ModelParams::default().with_gpu_layers(0);
    /// assert_eq!(params.gpu_layers(), 0);
    /// ```
    #[must_use]
    pub fn with_gpu_layers(mut self, layers: i32) -> Self {
        self.raw.n_gpu_layers = layers;
        self
    }

    /// Memory-map the file (llama.cpp's default picks automatically). `false` reads it
    /// into memory.
    ///
    /// ```
    /// let params = ember_llama::ModelParams::default().with_mmap(false);
    /// assert!(!params.mmap());
    /// ```
    #[must_use]
    pub fn with_mmap(mut self, mmap: bool) -> Self {
        self.mmap = Some(mmap);
        self.update_load_mode();
        self
    }

    /// Lock the weights in RAM (`mlock`) so they are never swapped out.
    ///
    /// ```
    /// let params = ember_llama::ModelParams::default().with_mlock(true);
    /// assert!(params.mlock());
    /// ```
    #[must_use]
    pub fn with_mlock(mut self, mlock: bool) -> Self {
        self.mlock = mlock;
        self.update_load_mode();
        self
    }

    /// Load only the vocabulary (tokenizer, chat template, metadata): fast, no weights, no
    /// contexts.
    ///
    /// ```
    /// let params = ember_llama::ModelParams::default().with_vocab_only(true);
    /// assert!(params.vocab_only());
    /// ```
    #[must_use]
    pub fn with_vocab_only(mut self, vocab_only: bool) -> Self {
        self.raw.vocab_only = vocab_only;
        self
    }

    /// Whether ggml may repack weights into its faster CPU layouts (llama.cpp's
    /// `use_extra_bufts`, default on). Repacked matrices are multiplied by a different
    /// kernel for groups of 4 batch rows than for the rest, so a token's logits then depend
    /// on where it sits in a batch; off, every token's arithmetic is the same whatever else
    /// is decoded with it (what a [`BatchGenerator`](crate::BatchGenerator) needs for
    /// batched output to equal unbatched output exactly), at some cost in prompt speed.
    ///
    /// ```
    /// let params = ember_llama::ModelParams::default().with_weight_repacking(false);
    /// assert!(!params.weight_repacking());
    /// ```
    #[must_use]
    pub fn with_weight_repacking(mut self, on: bool) -> Self {
        self.raw.use_extra_bufts = on;
        self
    }

    /// Whether weights may be repacked.
    pub fn weight_repacking(&self) -> bool {
        self.raw.use_extra_bufts
    }

    /// Layers offloaded to the GPU.
    pub fn gpu_layers(&self) -> i32 {
        self.raw.n_gpu_layers
    }

    /// Whether the file is memory-mapped (`true` also for llama.cpp's automatic choice).
    pub fn mmap(&self) -> bool {
        self.mmap.unwrap_or(true)
    }

    /// Whether the weights are locked in RAM.
    pub fn mlock(&self) -> bool {
        self.mlock
    }

    /// Whether only the vocabulary is loaded.
    pub fn vocab_only(&self) -> bool {
        self.raw.vocab_only
    }

    fn update_load_mode(&mut self) {
        self.raw.load_mode = match (self.mmap, self.mlock) {
            (None, false) => sys::llama_load_mode_LLAMA_LOAD_MODE_AUTO,
            (Some(true) | None, true) => sys::llama_load_mode_LLAMA_LOAD_MODE_MMAP_MLOCK,
            (Some(true), false) => sys::llama_load_mode_LLAMA_LOAD_MODE_MMAP,
            (Some(false), true) => sys::llama_load_mode_LLAMA_LOAD_MODE_MLOCK,
            (Some(false), false) => sys::llama_load_mode_LLAMA_LOAD_MODE_NONE,
        };
    }
}
