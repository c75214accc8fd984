//! [`Context`]: one inference state (KV cache, logits) over a shared [`Model`].

pub mod kv;
pub mod params;
mod threadpool;

use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use ember_llama_sys as sys;

use crate::batch::Batch;
use crate::error::{Error, Result};
use crate::model::Model;
use crate::threads::{self, Contention, CpuBudget, ThreadPriority};
use threadpool::ThreadPool;

pub use params::{ContextParams, FlashAttention, KvCacheType, Pooling};

/// Stops a running decode or generation from another thread.
///
/// ```
/// let handle = ember_llama::CancelHandle::default();
/// handle.cancel();
/// assert!(handle.is_cancelled());
/// handle.reset();
/// ```
#[derive(Clone, Debug, Default)]
pub struct CancelHandle {
    flag: Arc<AtomicBool>,
}

impl CancelHandle {
    /// Asks the context to stop: the current decode returns [`Error::Cancelled`] and a
    /// generation ends with [`FinishReason::Cancelled`](crate::FinishReason::Cancelled).
    pub fn cancel(&self) {
        self.flag.store(true, Ordering::Relaxed);
    }

    /// Whether cancellation was asked for.
    pub fn is_cancelled(&self) -> bool {
        self.flag.load(Ordering::Relaxed)
    }

    /// Clears the request, so the context can decode again.
    pub fn reset(&self) {
        self.flag.store(false, Ordering::Relaxed);
    }
}

/// Prompt and generation counters kept by llama.cpp (with
/// [`ContextParams::with_perf_counters`]).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PerfCounters {
    /// Prompt tokens processed.
    pub prompt_tokens: u64,
    /// Milliseconds spent on them.
    pub prompt_ms: f64,
    /// Tokens generated (single-token decodes).
    pub generated_tokens: u64,
    /// Milliseconds spent on them.
    pub generated_ms: f64,
}

/// An inference context: KV cache, logits, threads. `Send` but not `Sync`: use one per
/// thread; many contexts can share one [`Model`] through `Arc`.
pub struct Context {
    raw: std::ptr::NonNull<sys::llama_context>,
    model: Arc<Model>,
    cancel: CancelHandle,
    n_ctx: u32,
    n_batch: u32,
    n_ubatch: u32,
    n_seq_max: u32,
    kv_unified: bool,
    embeddings: bool,
    /// Batch indices of the outputs of the last decode, in order.
    outputs: Vec<i32>,
    /// Worker threads for every decode; dropped after `raw` is freed (see `Drop`).
    _threads: ThreadPool,
    /// Generation and prompt threads as configured.
    max_threads: (i32, i32),
    /// Generation threads of the last decode.
    threads_in_use: i32,
    /// Picks the thread count of each decode from the free cores (adaptive threads).
    contention: Option<Contention>,
    /// The decode threads' priority, given to OpenMP's team before each decode.
    priority: ThreadPriority,
}

// SAFETY: a llama_context is used by one thread at a time (every method takes `&mut self`
// or only reads plain values fixed at creation); llama.cpp keeps no thread affinity for a
// context. The abort-callback data is an Arc the Context keeps alive.
unsafe impl Send for Context {}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("n_ctx", &self.n_ctx)
            .field("n_batch", &self.n_batch)
            .field("n_seq_max", &self.n_seq_max)
            .field("embeddings", &self.embeddings)
            .finish_non_exhaustive()
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: `raw` came from llama_init_from_model and is freed exactly once, before
        // the fields it uses (the Arc<Model>, the thread pool) are dropped.
        unsafe { sys::llama_free(self.raw.as_ptr()) };
    }
}

/// The abort callback: true when the context's CancelHandle was triggered.
unsafe extern "C" fn abort_requested(data: *mut c_void) -> bool {
    // SAFETY: `data` is `Arc::as_ptr` of the AtomicBool the Context keeps alive for as long
    // as llama.cpp may call this.
    unsafe { (*data.cast::<AtomicBool>()).load(Ordering::Relaxed) }
}

impl Context {
    /// Creates a context over `model`.
    ///
    /// # Errors
    ///
    /// [`Error::VocabOnly`] for a vocabulary-only model, [`Error::InvalidParameter`] for
    /// out-of-range sizes or threads, [`Error::ContextCreate`] when llama.cpp refuses,
    /// [`Error::ThreadPool`] when its worker threads cannot start.
    pub fn new(model: &Arc<Model>, params: &ContextParams) -> Result<Context> {
        if model.is_vocab_only() {
            return Err(Error::VocabOnly {
                what: "creating a context",
            });
        }
        let p = &params.raw;
        let invalid = |name, reason: &str| {
            Err(Error::InvalidParameter {
                name,
                reason: reason.into(),
            })
        };
        // ggml asserts (aborts) on more than GGML_MAX_N_THREADS workers.
        let max_threads = sys::GGML_MAX_N_THREADS as i32;
        if !(1..=max_threads).contains(&p.n_threads)
            || !(1..=max_threads).contains(&p.n_threads_batch)
        {
            return Err(Error::InvalidParameter {
                name: "threads",
                reason: format!(
                    "{} and {} (batch): each must be 1..={max_threads} (GGML_MAX_N_THREADS)",
                    p.n_threads, p.n_threads_batch
                ),
            });
        }
        if p.n_batch < 1 || p.n_ubatch < 1 {
            return invalid("n_batch/n_ubatch", "must be at least 1");
        }
        // SAFETY: plain getter.
        let max_seqs = unsafe { sys::llama_max_parallel_sequences() };
        if p.n_seq_max < 1 || p.n_seq_max as usize > max_seqs {
            return invalid("n_seq_max", &format!("must be in 1..={max_seqs}"));
        }
        let cancel = CancelHandle::default();
        let mut raw_params = *p;
        raw_params.abort_callback = Some(abort_requested);
        raw_params.abort_callback_data = Arc::as_ptr(&cancel.flag).cast_mut().cast();
        // Embeddings from a model without a pooling type: pool by mean, so `embed` always
        // returns one vector per input.
        let mut raw = Self::create(model, raw_params)?;
        if raw_params.embeddings && params.pooling == Pooling::Model {
            // SAFETY: `raw` is a valid context.
            let pooling = unsafe { sys::llama_pooling_type(raw.as_ptr()) };
            if pooling == sys::llama_pooling_type_LLAMA_POOLING_TYPE_NONE {
                // SAFETY: `raw` is valid and not yet owned by a Context.
                unsafe { sys::llama_free(raw.as_ptr()) };
                raw_params.pooling_type = sys::llama_pooling_type_LLAMA_POOLING_TYPE_MEAN;
                raw = Self::create(model, raw_params)?;
            }
        }
        let ptr = raw.as_ptr();
        let threads = match ThreadPool::new(
            raw_params.n_threads.max(raw_params.n_threads_batch),
            params.thread_poll,
            params.priority,
        ) {
            Ok(threads) => threads,
            Err(err) => {
                // SAFETY: `raw` is valid and not yet owned by a Context.
                unsafe { sys::llama_free(ptr) };
                return Err(err);
            }
        };
        // SAFETY: both pointers are valid; the pool outlives the context (field order and
        // Context's Drop), and one pool of max(n_threads, n_threads_batch) serves both kinds
        // of decode (ggml uses as many of its threads as the decode asks for).
        unsafe { sys::llama_attach_threadpool(ptr, threads.as_ptr(), threads.as_ptr()) };
        // With OpenMP the pool above has no threads: the team belongs to the thread that
        // decodes. Ready this thread's now (decode readies the decoding thread's).
        if let Err(err) = threads::prepare_team(
            raw_params.n_threads.max(raw_params.n_threads_batch),
            params.priority,
        ) {
            // SAFETY: `raw` is valid and not yet owned by a Context.
            unsafe { sys::llama_free(ptr) };
            return Err(err);
        }
        // SAFETY: `ptr` is a valid context; plain getters.
        let (n_ctx, n_batch, n_ubatch, n_seq_max) = unsafe {
            (
                sys::llama_n_ctx(ptr),
                sys::llama_n_batch(ptr),
                sys::llama_n_ubatch(ptr),
                sys::llama_n_seq_max(ptr),
            )
        };
        Ok(Context {
            raw,
            model: Arc::clone(model),
            cancel,
            n_ctx,
            n_batch,
            n_ubatch,
            n_seq_max,
            kv_unified: raw_params.kv_unified,
            embeddings: raw_params.embeddings,
            outputs: Vec::new(),
            _threads: threads,
            max_threads: (raw_params.n_threads, raw_params.n_threads_batch),
            threads_in_use: raw_params.n_threads,
            contention: params.adaptive_threads.then(|| {
                let most = raw_params.n_threads.max(raw_params.n_threads_batch);
                Contention::new(CpuBudget::current().cpus, most as usize, params.priority)
            }),
            priority: params.priority,
        })
    }

    /// Generation threads the last decode used: the configured count, or fewer where
    /// adaptive threads found fewer free cores (see [`crate::threads`]).
    pub fn threads_in_use(&self) -> i32 {
        self.threads_in_use
    }

    /// With adaptive threads, sets the next decode's thread counts to the free cores.
    fn adapt_threads(&mut self) {
        let Some(contention) = &mut self.contention else {
            return;
        };
        let free = i32::try_from(contention.threads()).unwrap_or(i32::MAX);
        let (most, most_batch) = self.max_threads;
        let (n, n_batch) = (free.min(most), free.min(most_batch));
        if n != self.threads_in_use {
            self.threads_in_use = n;
            // SAFETY: valid context, exclusively borrowed; both counts are in 1..=the pool's
            // size (the pool has max(n_threads, n_threads_batch) workers).
            unsafe { sys::llama_set_n_threads(self.as_ptr(), n, n_batch) };
        }
    }

    fn create(
        model: &Arc<Model>,
        params: sys::llama_context_params,
    ) -> Result<std::ptr::NonNull<sys::llama_context>> {
        let mut raw = std::ptr::null_mut();
        crate::barrier::guarded("llama_init_from_model", |err, len| {
            // SAFETY: the model is valid and outlives the context (the Context keeps an Arc);
            // the only pointer in `params` is the abort-callback data, kept alive by the
            // caller; `raw` and `err` (`len` bytes) are writable.
            unsafe { sys::ember_init_from_model(model.as_ptr(), params, &mut raw, err, len) }
        })?;
        std::ptr::NonNull::new(raw).ok_or(Error::ContextCreate {
            n_ctx: params.n_ctx,
            n_batch: params.n_batch,
        })
    }

    pub(crate) fn as_ptr(&self) -> *mut sys::llama_context {
        self.raw.as_ptr()
    }

    /// The model this context runs.
    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    /// Context size in tokens.
    pub fn n_ctx(&self) -> u32 {
        self.n_ctx
    }

    /// Most tokens per [`Context::decode`].
    pub fn n_batch(&self) -> u32 {
        self.n_batch
    }

    /// Physical batch size.
    pub fn n_ubatch(&self) -> u32 {
        self.n_ubatch
    }

    /// Number of sequences.
    pub fn n_seq_max(&self) -> u32 {
        self.n_seq_max
    }

    /// Most positions one sequence can hold: `n_ctx` with a unified KV cache, else the
    /// sequence's share of it.
    pub fn n_ctx_seq(&self) -> u32 {
        // SAFETY: valid context; plain getter.
        unsafe { sys::llama_n_ctx_seq(self.as_ptr()) }
    }

    /// Whether the sequences share one KV buffer ([`ContextParams::with_kv_unified`]).
    pub fn kv_unified(&self) -> bool {
        self.kv_unified
    }

    /// Threads for generation and for prompt processing.
    pub fn threads(&self) -> (i32, i32) {
        // SAFETY: valid context; plain getters.
        unsafe {
            (
                sys::llama_n_threads(self.as_ptr()),
                sys::llama_n_threads_batch(self.as_ptr()),
            )
        }
    }

    /// Whether the context was created in embeddings mode.
    pub fn embeddings_enabled(&self) -> bool {
        self.embeddings
    }

    /// A handle that cancels this context's decodes from any thread.
    pub fn cancel_handle(&self) -> CancelHandle {
        self.cancel.clone()
    }

    pub(crate) fn check_seq(&self, seq: i32) -> Result<()> {
        if seq < 0 || seq as u32 >= self.n_seq_max {
            return Err(Error::SequenceOutOfRange {
                seq,
                n_seq_max: self.n_seq_max,
            });
        }
        Ok(())
    }

    /// Runs the model on `batch`, appending its tokens to the KV cache.
    ///
    /// # Errors
    ///
    /// Checked first: [`Error::BatchSize`] (empty, or more than `n_batch` tokens),
    /// [`Error::TokenOutOfRange`], [`Error::SequenceOutOfRange`]. From llama.cpp:
    /// [`Error::ContextFull`], [`Error::Cancelled`], [`Error::Decode`].
    pub fn decode(&mut self, batch: &Batch) -> Result<()> {
        let n = batch.len();
        if n == 0 || n > self.n_batch as usize {
            return Err(Error::BatchSize {
                tokens: n,
                n_batch: self.n_batch,
            });
        }
        // SAFETY: valid context; plain getter.
        let causal = unsafe { sys::llama_get_causal_attn(self.as_ptr()) };
        if !causal && n > self.n_ubatch as usize {
            return Err(Error::BatchSize {
                tokens: n,
                n_batch: self.n_ubatch,
            });
        }
        let mut outputs = Vec::new();
        for i in 0..n {
            let Some((token, _, output)) = batch.entry(i) else {
                break;
            };
            self.model.check_token(token)?;
            for &seq in batch.seqs(i) {
                self.check_seq(seq)?;
            }
            if output {
                outputs.push(i as i32);
            }
        }
        if self.cancel.is_cancelled() {
            return Err(Error::Cancelled);
        }
        self.adapt_threads();
        let (most, most_batch) = self.max_threads;
        threads::prepare_team(most.max(most_batch), self.priority)?;
        self.outputs.clear();
        let mut code = 0;
        crate::barrier::guarded("llama_decode", |err, len| {
            // SAFETY: the context is valid; the batch's arrays hold `n` checked entries and
            // stay alive (borrowed) for the call; n <= n_batch as llama.cpp asserts; `code`
            // and `err` (`len` bytes) are writable.
            unsafe { sys::ember_decode(self.as_ptr(), batch.raw(), &mut code, err, len) }
        })?;
        match code {
            0 => {
                self.outputs = outputs;
                Ok(())
            }
            1 => Err(Error::ContextFull),
            2 => Err(Error::Cancelled),
            code => Err(Error::Decode { code }),
        }
    }

    /// Resolves a batch index of the last decode (negative counts from the last output)
    /// to the index llama.cpp expects, checking that it produced an output.
    pub(crate) fn output_index(&self, index: i32) -> Result<i32> {
        let found = if index < 0 {
            let back = index.unsigned_abs() as usize;
            self.outputs
                .len()
                .checked_sub(back)
                .map(|i| self.outputs[i])
        } else {
            self.outputs.contains(&index).then_some(index)
        };
        found.ok_or(Error::NoOutput { index })
    }

    /// Logits (one per vocabulary entry) of batch entry `index` of the last decode;
    /// `-1` is the last output.
    ///
    /// # Errors
    ///
    /// [`Error::NoOutput`] when that entry did not ask for output.
    pub fn logits(&self, index: i32) -> Result<&[f32]> {
        let i = self.output_index(index)?;
        // SAFETY: `i` is an output of the last successful decode, so llama.cpp has n_vocab
        // logits for it, valid until the next decode (which needs `&mut self`).
        let ptr = unsafe { sys::llama_get_logits_ith(self.as_ptr(), i) };
        if ptr.is_null() {
            return Err(Error::NoOutput { index });
        }
        // SAFETY: non-null, n_vocab floats, alive while `self` is borrowed.
        Ok(unsafe { std::slice::from_raw_parts(ptr, self.model.n_vocab() as usize) })
    }

    /// Prompt and generation counters (zero unless the context was created with
    /// [`ContextParams::with_perf_counters`]).
    pub fn perf(&self) -> PerfCounters {
        // SAFETY: valid context; returns a plain struct.
        let data = unsafe { sys::llama_perf_context(self.as_ptr()) };
        PerfCounters {
            prompt_tokens: data.n_p_eval.max(0) as u64,
            prompt_ms: data.t_p_eval_ms,
            generated_tokens: data.n_eval.max(0) as u64,
            generated_ms: data.t_eval_ms,
        }
    }

    /// Resets the perf counters.
    pub fn reset_perf(&mut self) {
        // SAFETY: valid context, exclusively borrowed.
        unsafe { sys::llama_perf_context_reset(self.as_ptr()) };
    }
}
