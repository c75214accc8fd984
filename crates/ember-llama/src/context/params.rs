//! [`ContextParams`]: sizes, threads and modes of a [`Context`](crate::Context).

use ember_llama_sys as sys;

use crate::threads::{CpuBudget, ThreadPriority};

/// When to use flash attention.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlashAttention {
    /// llama.cpp decides per backend (its default).
    Auto,
    /// Always.
    Enabled,
    /// Never.
    Disabled,
}

/// Element type of the KV cache's keys or values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KvCacheType {
    /// 32-bit floats.
    F32,
    /// 16-bit floats (llama.cpp's default).
    F16,
    /// bfloat16.
    Bf16,
    /// 8-bit blocks.
    Q8_0,
    /// 4-bit blocks.
    Q4_0,
    /// 4-bit blocks with offset.
    Q4_1,
    /// 5-bit blocks.
    Q5_0,
    /// 5-bit blocks with offset.
    Q5_1,
}

impl KvCacheType {
    fn raw(self) -> sys::ggml_type {
        match self {
            KvCacheType::F32 => sys::ggml_type_GGML_TYPE_F32,
            KvCacheType::F16 => sys::ggml_type_GGML_TYPE_F16,
            KvCacheType::Bf16 => sys::ggml_type_GGML_TYPE_BF16,
            KvCacheType::Q8_0 => sys::ggml_type_GGML_TYPE_Q8_0,
            KvCacheType::Q4_0 => sys::ggml_type_GGML_TYPE_Q4_0,
            KvCacheType::Q4_1 => sys::ggml_type_GGML_TYPE_Q4_1,
            KvCacheType::Q5_0 => sys::ggml_type_GGML_TYPE_Q5_0,
            KvCacheType::Q5_1 => sys::ggml_type_GGML_TYPE_Q5_1,
        }
    }
}

/// How embeddings of a sequence are pooled into one vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pooling {
    /// The model's own pooling type (llama.cpp's default); mean for models without one
    /// when embeddings are enabled.
    Model,
    /// Mean of the token embeddings.
    Mean,
    /// The first (CLS) token's embedding.
    Cls,
    /// The last token's embedding.
    Last,
}

/// Parameters of a [`Context`](crate::Context). `Default` is llama.cpp's
/// `llama_context_default_params()` (context 512, batch 2048, ubatch 512, 4 threads), with
/// the threads capped at the CPUs this process may use ([`CpuBudget`]: affinity mask and
/// cgroup quota): ggml's workers spin while they wait, and 4 of them on 2 CPUs made
/// `generate` 100 times slower (0.5 against 51 tokens/s). Adaptive threads are on, at
/// normal priority (see [`crate::threads`]).
#[derive(Clone, Debug)]
pub struct ContextParams {
    pub(crate) raw: sys::llama_context_params,
    pub(crate) pooling: Pooling,
    pub(crate) thread_poll: u32,
    pub(crate) priority: ThreadPriority,
    pub(crate) adaptive_threads: bool,
}

/// llama.cpp's default polling level (its tools' `--poll 50`).
const DEFAULT_THREAD_POLL: u32 = 50;

// SAFETY: the raw struct's pointers (callbacks, samplers, ctx_other) are null in every
// ContextParams (no builder sets them), so moving it across threads shares nothing.
unsafe impl Send for ContextParams {}
// SAFETY: as above; `&ContextParams` only reads plain values.
unsafe impl Sync for ContextParams {}

impl Default for ContextParams {
    fn default() -> Self {
        // SAFETY: a plain value constructor without preconditions.
        let mut raw = unsafe { sys::llama_context_default_params() };
        let cpus = i32::try_from(CpuBudget::current().threads).unwrap_or(i32::MAX);
        raw.n_threads = raw.n_threads.min(cpus);
        raw.n_threads_batch = raw.n_threads_batch.min(cpus);
        ContextParams {
            raw,
            pooling: Pooling::Model,
            thread_poll: DEFAULT_THREAD_POLL,
            priority: ThreadPriority::Normal,
            adaptive_threads: true,
        }
    }
}

impl ContextParams {
    /// Context size in tokens (`0` = the model's trained context).
    ///
    /// ```
    /// let params = ember_llama::ContextParams::default().with_n_ctx(1024);
    /// assert_eq!(params.n_ctx(), 1024);
    /// ```
    #[must_use]
    pub fn with_n_ctx(mut self, n_ctx: u32) -> Self {
        self.raw.n_ctx = n_ctx;
        self
    }

    /// Most tokens one [`Context::decode`](crate::Context::decode) call accepts.
    ///
    /// ```
    /// let params = ember_llama::ContextParams::default().with_n_batch(256);
    /// assert_eq!(params.n_batch(), 256);
    /// ```
    #[must_use]
    pub fn with_n_batch(mut self, n_batch: u32) -> Self {
        self.raw.n_batch = n_batch;
        self
    }

    /// Physical batch size: tokens computed per graph evaluation.
    ///
    /// ```
    /// let params = ember_llama::ContextParams::default().with_n_ubatch(128);
    /// assert_eq!(params.n_ubatch(), 128);
    /// ```
    #[must_use]
    pub fn with_n_ubatch(mut self, n_ubatch: u32) -> Self {
        self.raw.n_ubatch = n_ubatch;
        self
    }

    /// Number of sequences (independent KV streams) the context holds.
    ///
    /// ```
    /// let params = ember_llama::ContextParams::default().with_n_seq_max(4);
    /// assert_eq!(params.n_seq_max(), 4);
    /// ```
    #[must_use]
    pub fn with_n_seq_max(mut self, n_seq_max: u32) -> Self {
        self.raw.n_seq_max = n_seq_max;
        self
    }

    /// One KV buffer shared by all sequences (llama.cpp's `kv_unified`, default off): every
    /// sequence may grow up to `n_ctx` while together they hold at most `n_ctx` tokens, and
    /// copying a cached prefix to another sequence shares its cells instead of copying
    /// them. Off, each sequence has its own `n_ctx / n_seq_max` cells.
    ///
    /// ```
    /// let params = ember_llama::ContextParams::default().with_kv_unified(true);
    /// assert!(params.kv_unified());
    /// ```
    #[must_use]
    pub fn with_kv_unified(mut self, on: bool) -> Self {
        self.raw.kv_unified = on;
        self
    }

    /// Threads for generation and for prompt processing.
    ///
    /// ```
    /// let params = ember_llama::ContextParams::default().with_threads(2);
    /// assert_eq!(params.threads(), 2);
    /// ```
    #[must_use]
    pub fn with_threads(mut self, threads: i32) -> Self {
        self.raw.n_threads = threads;
        self.raw.n_threads_batch = threads;
        self
    }

    /// Threads for prompt processing only (batches of more than one token).
    ///
    /// ```
    /// let params = ember_llama::ContextParams::default().with_threads(1).with_threads_batch(2);
    /// assert_eq!((params.threads(), params.threads_batch()), (1, 2));
    /// ```
    #[must_use]
    pub fn with_threads_batch(mut self, threads: i32) -> Self {
        self.raw.n_threads_batch = threads;
        self
    }

    /// How long the context's idle worker threads spin waiting for the next decode before
    /// they sleep, 0 to 100 (higher values are capped at 100). 50, llama.cpp's default, gives
    /// the fastest token generation; 0 sleeps at once, which costs the least CPU when a
    /// context sits idle or many contexts share few cores.
    ///
    /// ```
    /// let params = ember_llama::ContextParams::default().with_thread_poll(0);
    /// assert_eq!(params.thread_poll(), 0);
    /// ```
    #[must_use]
    pub fn with_thread_poll(mut self, level: u32) -> Self {
        self.thread_poll = level.min(100);
        self
    }

    /// Scheduling priority of the context's worker threads (default
    /// [`ThreadPriority::Normal`]). Part of each decode runs on the calling thread: give it
    /// the same priority with [`ThreadPriority::apply_to_current_thread`].
    ///
    /// ```
    /// use ember_llama::{threads::ThreadPriority, ContextParams};
    /// let params = ContextParams::default().with_priority(ThreadPriority::Background);
    /// assert_eq!(params.priority(), ThreadPriority::Background);
    /// ```
    #[must_use]
    pub fn with_priority(mut self, priority: ThreadPriority) -> Self {
        self.priority = priority;
        self
    }

    /// Adaptive threads (default on): before a decode, at most every 100 ms, use the count
    /// of the configured threads that runs fastest beside what other processes use, at
    /// least one. Off, every decode uses the configured count, and on a busy machine the
    /// workers wait for each other at every step (see [`crate::threads`]).
    ///
    /// The output is the same at any thread count but in one case: ggml's flash-attention
    /// decode of one token over 512 or more KV cells splits its sums by thread, so there
    /// the last bits, and rarely a greedy token, depend on the count (as they do upstream
    /// between `-t` values). Where the output must not depend on the machine's load, turn
    /// adaptive threads off (or flash attention, [`ContextParams::with_flash_attention`]).
    ///
    /// ```
    /// let params = ember_llama::ContextParams::default().with_adaptive_threads(false);
    /// assert!(!params.adaptive_threads());
    /// ```
    #[must_use]
    pub fn with_adaptive_threads(mut self, on: bool) -> Self {
        self.adaptive_threads = on;
        self
    }

    /// Flash attention policy.
    ///
    /// ```
    /// use ember_llama::{ContextParams, FlashAttention};
    /// let params = ContextParams::default().with_flash_attention(FlashAttention::Disabled);
    /// assert_eq!(params.flash_attention(), FlashAttention::Disabled);
    /// ```
    #[must_use]
    pub fn with_flash_attention(mut self, fa: FlashAttention) -> Self {
        self.raw.flash_attn_type = match fa {
            FlashAttention::Auto => sys::llama_flash_attn_type_LLAMA_FLASH_ATTN_TYPE_AUTO,
            FlashAttention::Enabled => sys::llama_flash_attn_type_LLAMA_FLASH_ATTN_TYPE_ENABLED,
            FlashAttention::Disabled => sys::llama_flash_attn_type_LLAMA_FLASH_ATTN_TYPE_DISABLED,
        };
        self
    }

    /// KV cache element types for keys and values (quantised values need flash attention).
    ///
    /// ```
    /// use ember_llama::{ContextParams, KvCacheType};
    /// let params = ContextParams::default().with_kv_cache_types(KvCacheType::Q8_0, KvCacheType::F16);
    /// ```
    #[must_use]
    pub fn with_kv_cache_types(mut self, keys: KvCacheType, values: KvCacheType) -> Self {
        self.raw.type_k = keys.raw();
        self.raw.type_v = values.raw();
        self
    }

    /// Embeddings mode: [`Context::embed`](crate::Context::embed) returns pooled vectors.
    ///
    /// ```
    /// let params = ember_llama::ContextParams::default().with_embeddings(true);
    /// assert!(params.embeddings());
    /// ```
    #[must_use]
    pub fn with_embeddings(mut self, embeddings: bool) -> Self {
        self.raw.embeddings = embeddings;
        self
    }

    /// How embeddings are pooled (default: the model's type).
    ///
    /// ```
    /// use ember_llama::{ContextParams, Pooling};
    /// let params = ContextParams::default().with_embeddings(true).with_pooling(Pooling::Mean);
    /// ```
    #[must_use]
    pub fn with_pooling(mut self, pooling: Pooling) -> Self {
        self.pooling = pooling;
        self.raw.pooling_type = match pooling {
            Pooling::Model => sys::llama_pooling_type_LLAMA_POOLING_TYPE_UNSPECIFIED,
            Pooling::Mean => sys::llama_pooling_type_LLAMA_POOLING_TYPE_MEAN,
            Pooling::Cls => sys::llama_pooling_type_LLAMA_POOLING_TYPE_CLS,
            Pooling::Last => sys::llama_pooling_type_LLAMA_POOLING_TYPE_LAST,
        };
        self
    }

    /// Measure prompt and generation timings ([`Context::perf`](crate::Context::perf)).
    /// Off in llama.cpp's defaults.
    ///
    /// ```
    /// let params = ember_llama::ContextParams::default().with_perf_counters(true);
    /// ```
    #[must_use]
    pub fn with_perf_counters(mut self, on: bool) -> Self {
        self.raw.no_perf = !on;
        self
    }

    /// Whether the sequences share one KV buffer.
    pub fn kv_unified(&self) -> bool {
        self.raw.kv_unified
    }

    /// Context size (`0` = the model's).
    pub fn n_ctx(&self) -> u32 {
        self.raw.n_ctx
    }
    /// Logical batch size.
    pub fn n_batch(&self) -> u32 {
        self.raw.n_batch
    }
    /// Physical batch size.
    pub fn n_ubatch(&self) -> u32 {
        self.raw.n_ubatch
    }
    /// Number of sequences.
    pub fn n_seq_max(&self) -> u32 {
        self.raw.n_seq_max
    }
    /// Generation threads.
    pub fn threads(&self) -> i32 {
        self.raw.n_threads
    }
    /// Prompt-processing threads.
    pub fn threads_batch(&self) -> i32 {
        self.raw.n_threads_batch
    }
    /// Priority of the worker threads (see [`ContextParams::with_priority`]).
    pub fn priority(&self) -> ThreadPriority {
        self.priority
    }
    /// Whether adaptive threads are on (see [`ContextParams::with_adaptive_threads`]).
    pub fn adaptive_threads(&self) -> bool {
        self.adaptive_threads
    }
    /// Polling level of idle worker threads (see [`ContextParams::with_thread_poll`]).
    pub fn thread_poll(&self) -> u32 {
        self.thread_poll
    }
    /// Flash attention policy.
    pub fn flash_attention(&self) -> FlashAttention {
        match self.raw.flash_attn_type {
            sys::llama_flash_attn_type_LLAMA_FLASH_ATTN_TYPE_ENABLED => FlashAttention::Enabled,
            sys::llama_flash_attn_type_LLAMA_FLASH_ATTN_TYPE_DISABLED => FlashAttention::Disabled,
            _ => FlashAttention::Auto,
        }
    }
    /// Whether embeddings mode is on.
    pub fn embeddings(&self) -> bool {
        self.raw.embeddings
    }
}
