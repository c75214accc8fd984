//! [`BatchGenerator`]: many generations in one [`Context`], advanced together by one
//! `llama_decode` per step.
//!
//! Each running sequence has its own sampler chain (grammar included), stop strings, token
//! limit and [`CancelHandle`]. A step gathers one token per generating sequence and chunks
//! of the prompts of new ones into one batch, decodes it, and samples each sequence at its
//! own output. Sequences join ([`BatchGenerator::submit`]) and leave between steps. On a
//! CPU, one decode of a batch of 8 costs far less than 8 decodes of 1, and only one set
//! of worker threads ever runs.
//!
//! A finished sequence's KV stays cached: a new prompt that starts with the same tokens
//! takes that slot (or, with a unified KV cache, shares the cells of whichever sequence
//! holds the longest match) and decodes only its new suffix.
//!
//! When the KV cache is full, the idle caches go first; if that is not enough, the most
//! recently admitted sequence in the batch ends with [`Error::KvCacheFull`] and the
//! others go on.
//!
//! # Exactness
//!
//! Batching changes nothing but speed (tested, greedy: eight sequences batched, joining
//! mid-way, give exactly the tokens each gives alone) when ggml's arithmetic for one token
//! does not depend on the rest of its step. On the CPU that takes:
//!
//! - weights not repacked ([`ModelParams::with_weight_repacking`](crate::ModelParams::with_weight_repacking)
//!   `(false)`): repacked matrices go through one kernel for each group of 4 rows of a step
//!   and another for the rest;
//! - `GGML_CPU_TILED_MM=0` in the process environment (read once, at the first decode):
//!   ggml multiplies K-quant matrices with a tiled kernel from 8 rows per step and with dot
//!   products below that, and the two round differently;
//! - steps under 64 tokens ([`BatchGenerator::with_prompt_chunk`] below `64 - running`), and
//!   fewer than 512 KV cells in use while a single sequence runs: flash attention switches to
//!   a tiled kernel from 64 rows and to a split-KV one for one row over 512 cells.
//!
//! Otherwise batched and unbatched outputs differ in their last bits, which greedy sampling
//! can turn into another token after some steps, as with llama.cpp's own server. Prefix
//! reuse is exact under the same conditions (tested).

mod prefix;
mod slots;

pub use slots::{SlotFile, SlotState};

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::batch::Batch;
use crate::context::{CancelHandle, Context};
use crate::error::{Error, Result};
use crate::generate::text::TextStream;
use crate::generate::{FinishReason, GenerateOptions, GenerationStats, Piece};
use crate::logprobs::Logprobs;
use crate::model::Model;
use crate::sampler::Sampler;
use crate::token::Token;

/// Names one sequence of a [`BatchGenerator`], unique over its lifetime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SequenceId(pub u64);

impl std::fmt::Display for SequenceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "seq#{}", self.0)
    }
}

/// What one [`BatchGenerator::step`] produced for one sequence.
#[derive(Debug)]
pub enum BatchEvent {
    /// A token was sampled (its text may be empty: held for UTF-8 or a possible stop).
    Piece {
        /// The sequence.
        id: SequenceId,
        /// Token and released text, as a [`Generation`](crate::Generation) yields them.
        piece: Piece,
        /// The token's log-probabilities, with [`GenerateOptions::with_logprobs`].
        logprobs: Option<Logprobs>,
    },
    /// The sequence ended normally; its slot is free.
    Finished {
        /// The sequence.
        id: SequenceId,
        /// Why.
        reason: FinishReason,
        /// Its counters.
        stats: GenerationStats,
    },
    /// The sequence ended with an error (KV cache full, grammar, decode failure); its slot
    /// is free and the other sequences go on.
    Failed {
        /// The sequence.
        id: SequenceId,
        /// What went wrong.
        error: Error,
        /// Its counters up to the failure.
        stats: GenerationStats,
    },
}

/// What the last [`BatchGenerator::step`] decoded.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StepStats {
    /// Sequences in the batch.
    pub sequences: usize,
    /// Tokens in the batch (prompt and generated).
    pub tokens: usize,
    /// Of those, prompt tokens.
    pub prompt_tokens: usize,
    /// Time of the decode and the sampling.
    pub time: Duration,
}

/// A running sequence.
struct Running {
    id: SequenceId,
    /// Admission order: on a full KV cache, the newest leaves first.
    order: u64,
    prompt: Vec<Token>,
    sampler: Sampler,
    options: GenerateOptions,
    text: TextStream,
    /// Sampled and not yet decoded.
    pending: Option<Token>,
    cancel: CancelHandle,
    stats: GenerationStats,
    admitted: Instant,
    generation_start: Option<Instant>,
    /// Tokens in the current batch, and the batch index of its output.
    in_batch: usize,
    output: Option<i32>,
}

/// One sequence id of the context, with the tokens its KV cache holds.
struct Slot {
    seq: i32,
    /// The tokens at positions `0..cached.len()` of this sequence's KV.
    cached: Vec<Token>,
    running: Option<Running>,
    last_used: u64,
}

/// Runs many generations in one [`Context`] (one sequence each, up to its `n_seq_max`),
/// decoding all of them in one batch per [`step`](BatchGenerator::step).
///
/// ```no_run
/// use std::sync::Arc;
/// use ember_llama::{BatchEvent, BatchGenerator, Context, ContextParams, GenerateOptions,
///     Model, ModelParams, SamplerBuilder};
///
/// let model = Arc::new(Model::load("gemma-3-270m-q4_k_m.gguf", &ModelParams::default())?);
/// let params = ContextParams::default().with_n_ctx(4096).with_n_seq_max(4).with_kv_unified(true);
/// let mut engine = BatchGenerator::new(Context::new(&model, &params)?)?;
/// let options = GenerateOptions::default().with_max_tokens(16);
/// for prompt in ["The sky is", "Rust is"] {
///     let tokens = model.tokenize(prompt, true, true)?;
///     engine.submit(tokens, SamplerBuilder::greedy().build(&model)?, options.clone())?;
/// }
/// while !engine.is_idle() {
///     for event in engine.step() {
///         if let BatchEvent::Piece { id, piece, .. } = event {
///             println!("{id}: {:?}", piece.text);
///         }
///     }
/// }
/// # Ok::<(), ember_llama::Error>(())
/// ```
pub struct BatchGenerator {
    ctx: Context,
    model: Arc<Model>,
    slots: Vec<Slot>,
    batch: Batch,
    next_id: u64,
    clock: u64,
    max_sequence_tokens: usize,
    prompt_chunk: usize,
    prefix_reuse: bool,
    last_step: StepStats,
}

impl std::fmt::Debug for BatchGenerator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchGenerator")
            .field("ctx", &self.ctx)
            .field("running", &self.running())
            .field("max_sequence_tokens", &self.max_sequence_tokens)
            .field("prompt_chunk", &self.prompt_chunk)
            .field("prefix_reuse", &self.prefix_reuse)
            .finish_non_exhaustive()
    }
}

impl BatchGenerator {
    /// Takes over `ctx` (its KV cache is cleared): one slot per sequence of its
    /// `n_seq_max`, each sequence up to [`Context::n_ctx_seq`] positions, prompts decoded up
    /// to `n_batch` tokens per step, prefix reuse on.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] for an embeddings context, or when `n_seq_max` exceeds
    /// `n_batch` (every running sequence needs its token in each batch).
    pub fn new(mut ctx: Context) -> Result<BatchGenerator> {
        if ctx.embeddings_enabled() {
            return Err(Error::InvalidParameter {
                name: "ctx",
                reason: "an embeddings context cannot generate".into(),
            });
        }
        if ctx.n_seq_max() > ctx.n_batch() {
            return Err(Error::InvalidParameter {
                name: "n_seq_max",
                reason: format!(
                    "{} sequences do not fit a batch of {} tokens",
                    ctx.n_seq_max(),
                    ctx.n_batch()
                ),
            });
        }
        ctx.clear_kv();
        let slots = (0..ctx.n_seq_max() as i32)
            .map(|seq| Slot {
                seq,
                cached: Vec::new(),
                running: None,
                last_used: 0,
            })
            .collect();
        Ok(BatchGenerator {
            model: Arc::clone(ctx.model()),
            batch: Batch::new(ctx.n_batch() as usize, 1),
            max_sequence_tokens: ctx.n_ctx_seq() as usize,
            prompt_chunk: ctx.n_batch() as usize,
            slots,
            ctx,
            next_id: 1,
            clock: 0,
            prefix_reuse: true,
            last_step: StepStats::default(),
        })
    }

    /// Most prompt tokens decoded in one step (over all new sequences), so a long prompt
    /// does not stall the generating ones for long (default and most: `n_batch`).
    #[must_use]
    pub fn with_prompt_chunk(mut self, tokens: usize) -> Self {
        self.prompt_chunk = tokens.clamp(1, self.ctx.n_batch() as usize);
        self
    }

    /// Most positions (prompt plus generated) of one sequence; a sequence that reaches it
    /// ends with [`FinishReason::ContextFull`]. Default and most: [`Context::n_ctx_seq`].
    #[must_use]
    pub fn with_max_sequence_tokens(mut self, tokens: usize) -> Self {
        self.max_sequence_tokens = tokens.clamp(1, self.ctx.n_ctx_seq() as usize);
        self
    }

    /// Whether a new prompt reuses a cached prefix (default on). Off, every prompt is
    /// decoded whole.
    #[must_use]
    pub fn with_prefix_reuse(mut self, on: bool) -> Self {
        self.prefix_reuse = on;
        self
    }

    /// The context.
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// How many sequences can run at once.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Sequences running now.
    pub fn running(&self) -> usize {
        self.slots.iter().filter(|s| s.running.is_some()).count()
    }

    /// Whether [`BatchGenerator::submit`] would find a free sequence.
    pub fn has_free_slot(&self) -> bool {
        self.running() < self.slots.len()
    }

    /// Whether nothing is running (a [`step`](BatchGenerator::step) would do nothing).
    pub fn is_idle(&self) -> bool {
        self.running() == 0
    }

    /// Most positions of one sequence.
    pub fn max_sequence_tokens(&self) -> usize {
        self.max_sequence_tokens
    }

    /// What the last step decoded.
    pub fn last_step(&self) -> StepStats {
        self.last_step
    }

    /// Starts a sequence from `prompt` with its own `sampler` ([`Sampler::start`]ed here) and
    /// `options`
    /// (their special-token settings for the prompt do not apply: the prompt is tokens).
    /// Its prompt is decoded from the next step on.
    ///
    /// # Errors
    ///
    /// [`Error::NoFreeSequence`] when every sequence is running; [`Error::InvalidParameter`]
    /// for an empty prompt; [`Error::TokenOutOfRange`]; [`Error::PromptTooLong`] when it
    /// leaves no room for a token within [`BatchGenerator::max_sequence_tokens`].
    pub fn submit(
        &mut self,
        prompt: Vec<Token>,
        mut sampler: Sampler,
        options: GenerateOptions,
    ) -> Result<SequenceId> {
        if prompt.is_empty() {
            return Err(Error::InvalidParameter {
                name: "prompt",
                reason: "no tokens".into(),
            });
        }
        for &t in &prompt {
            self.model.check_token(t)?;
        }
        if prompt.len() >= self.max_sequence_tokens {
            return Err(Error::PromptTooLong {
                tokens: prompt.len(),
                used: 0,
                n_ctx: self.max_sequence_tokens as u32,
            });
        }
        let caches: Vec<(&[Token], bool, u64)> = self
            .slots
            .iter()
            .map(|s| (&s.cached[..], s.running.is_none(), s.last_used))
            .collect();
        let reuse = if self.prefix_reuse { &prompt[..] } else { &[] };
        let place =
            prefix::place(reuse, &caches, self.ctx.kv_unified()).ok_or(Error::NoFreeSequence {
                n_seq_max: self.slots.len() as u32,
            })?;
        let mut reused = place.reused;
        let dst = self.slots[place.slot].seq;
        if place.source != place.slot {
            let src = self.slots[place.source].seq;
            self.ctx.kv_remove(dst, None, None)?;
            self.ctx.kv_copy(src, dst, Some(0), Some(reused as u32))?;
        } else if !self.ctx.kv_remove(dst, Some(reused as u32), None)? {
            // Recurrent models cannot cut a sequence short: start it over.
            self.ctx.kv_remove(dst, None, None)?;
            reused = 0;
        }
        let slot = &mut self.slots[place.slot];
        slot.cached = prompt[..reused].to_vec();
        sampler.start(&prompt);
        let id = SequenceId(self.next_id);
        self.next_id += 1;
        self.clock += 1;
        slot.running = Some(Running {
            id,
            order: self.clock,
            text: TextStream::new(options.stops()),
            stats: GenerationStats {
                prompt_tokens: prompt.len(),
                cached_prompt_tokens: reused,
                ..GenerationStats::default()
            },
            prompt,
            sampler,
            options,
            pending: None,
            cancel: CancelHandle::default(),
            admitted: Instant::now(),
            generation_start: None,
            in_batch: 0,
            output: None,
        });
        Ok(id)
    }

    fn slot_of(&self, id: SequenceId) -> Option<usize> {
        self.slots
            .iter()
            .position(|s| s.running.as_ref().is_some_and(|r| r.id == id))
    }

    /// A handle that makes sequence `id` leave at the next step (with
    /// [`FinishReason::Cancelled`]), from any thread. `None` when it is not running.
    pub fn cancel_handle(&self, id: SequenceId) -> Option<CancelHandle> {
        let slot = self.slot_of(id)?;
        self.slots[slot].running.as_ref().map(|r| r.cancel.clone())
    }

    /// Makes sequence `id` leave at the next step; false when it is not running.
    pub fn cancel(&mut self, id: SequenceId) -> bool {
        self.cancel_handle(id).map(|h| h.cancel()).is_some()
    }

    /// Runs one decode over every running sequence and samples each that produced an
    /// output. Returns what happened to each; never fails as a whole: errors end only the
    /// sequences they concern.
    pub fn step(&mut self) -> Vec<BatchEvent> {
        let mut events = Vec::new();
        self.last_step = StepStats::default();
        let started = Instant::now();
        for i in 0..self.slots.len() {
            let Some(run) = &self.slots[i].running else {
                continue;
            };
            if run.cancel.is_cancelled() {
                self.finish(i, FinishReason::Cancelled, &mut events);
            } else if run.pending.is_some()
                && self.slots[i].cached.len() >= self.max_sequence_tokens
            {
                self.finish(i, FinishReason::ContextFull, &mut events);
            }
        }
        loop {
            self.fill_batch();
            if self.batch.is_empty() {
                return events;
            }
            match self.ctx.decode(&self.batch) {
                Ok(()) => break,
                Err(Error::ContextFull) => {
                    if self.drop_idle_caches() {
                        continue;
                    }
                    let newest = (0..self.slots.len())
                        .filter(|&i| {
                            self.slots[i]
                                .running
                                .as_ref()
                                .is_some_and(|r| r.in_batch > 0)
                        })
                        .max_by_key(|&i| self.slots[i].running.as_ref().map_or(0, |r| r.order));
                    let Some(i) = newest else { return events };
                    let error = Error::KvCacheFull {
                        tokens: self.slots[i].cached.len(),
                        n_ctx: self.ctx.n_ctx(),
                    };
                    self.fail(i, error, &mut events);
                }
                Err(error) => {
                    let reason = error.to_string();
                    let mut first = Some(error);
                    for i in 0..self.slots.len() {
                        if self.slots[i]
                            .running
                            .as_ref()
                            .is_some_and(|r| r.in_batch > 0)
                        {
                            let error = first.take().unwrap_or_else(|| Error::BatchFailed {
                                reason: reason.clone(),
                            });
                            self.fail(i, error, &mut events);
                        }
                    }
                    return events;
                }
            }
        }
        self.last_step.tokens = self.batch.len();
        for i in 0..self.slots.len() {
            self.advance(i, &mut events);
        }
        self.last_step.time = started.elapsed();
        events
    }

    /// Puts one token of each generating sequence, then prompt chunks (oldest first), into
    /// the batch.
    fn fill_batch(&mut self) {
        self.batch.clear();
        let capacity = self.batch.capacity();
        let mut prompts = Vec::new();
        for (i, slot) in self.slots.iter_mut().enumerate() {
            let Some(run) = slot.running.as_mut() else {
                continue;
            };
            run.in_batch = 0;
            run.output = None;
            match run.pending {
                Some(token) => {
                    let index = self.batch.len() as i32;
                    // Cannot fail: n_seq_max <= n_batch (checked in new), positions fit i32.
                    if self
                        .batch
                        .add(token, slot.cached.len() as i32, &[slot.seq], true)
                        .is_ok()
                    {
                        run.in_batch = 1;
                        run.output = Some(index);
                    }
                }
                None => prompts.push((run.order, i)),
            }
        }
        prompts.sort_unstable();
        let mut budget = self.prompt_chunk;
        for (_, i) in prompts {
            let room = (capacity - self.batch.len()).min(budget);
            if room == 0 {
                break;
            }
            let slot = &mut self.slots[i];
            let Some(run) = slot.running.as_mut() else {
                continue;
            };
            let start = slot.cached.len();
            let n = (run.prompt.len() - start).min(room);
            let last = start + n == run.prompt.len();
            if self
                .batch
                .add_sequence(&run.prompt[start..start + n], start as i32, slot.seq, last)
                .is_ok()
            {
                run.in_batch = n;
                run.output = last.then(|| self.batch.len() as i32 - 1);
                budget -= n;
                self.last_step.prompt_tokens += n;
            }
        }
        self.last_step.sequences = self
            .slots
            .iter()
            .filter(|s| s.running.as_ref().is_some_and(|r| r.in_batch > 0))
            .count();
    }

    /// After a successful decode: records what sequence `i` decoded and samples it.
    fn advance(&mut self, i: usize, events: &mut Vec<BatchEvent>) {
        let slot = &mut self.slots[i];
        let Some(run) = slot.running.as_mut() else {
            return;
        };
        if run.in_batch == 0 {
            return;
        }
        match run.pending.take() {
            Some(token) => slot.cached.push(token),
            None => {
                let start = slot.cached.len();
                slot.cached
                    .extend_from_slice(&run.prompt[start..start + run.in_batch]);
            }
        }
        run.in_batch = 0;
        let Some(index) = run.output.take() else {
            return;
        };
        if run.generation_start.is_none() {
            run.stats.prompt_time = run.admitted.elapsed();
            run.generation_start = Some(Instant::now());
        }
        if run.stats.generated_tokens >= run.options.max_tokens() {
            self.finish(i, FinishReason::MaxTokens, events);
            return;
        }
        let token = match run.sampler.sample(&self.ctx, index) {
            Ok(token) => token,
            Err(error) => return self.fail(i, error, events),
        };
        run.stats.generated_tokens += 1;
        let logprobs = match run.options.logprobs() {
            None => None,
            Some(top) => match self.ctx.logits(index) {
                Ok(logits) => Some(Logprobs::from_logits(logits, token, top)),
                Err(error) => return self.fail(i, error, events),
            },
        };
        let id = run.id;
        if self.model.is_eog(token) {
            let text = run.text.finish();
            let reason = if run.text.stopped() {
                FinishReason::Stop
            } else {
                FinishReason::EndOfGeneration
            };
            if !text.is_empty() || logprobs.is_some() {
                events.push(BatchEvent::Piece {
                    id,
                    piece: Piece { token, text },
                    logprobs,
                });
            }
            return self.finish(i, reason, events);
        }
        let bytes = match self
            .model
            .token_to_piece(token, run.options.render_special())
        {
            Ok(bytes) => bytes,
            Err(error) => return self.fail(i, error, events),
        };
        let mut text = run.text.push(&bytes);
        let mut reason = run.text.stopped().then_some(FinishReason::Stop);
        if reason.is_none() && run.stats.generated_tokens >= run.options.max_tokens() {
            text.push_str(&run.text.finish());
            reason = Some(if run.text.stopped() {
                FinishReason::Stop
            } else {
                FinishReason::MaxTokens
            });
        }
        events.push(BatchEvent::Piece {
            id,
            piece: Piece { token, text },
            logprobs,
        });
        match reason {
            Some(reason) => self.finish(i, reason, events),
            None => run.pending = Some(token),
        }
    }

    /// Ends sequence `i` normally; its KV stays cached for a prompt that shares it.
    fn finish(&mut self, i: usize, reason: FinishReason, events: &mut Vec<BatchEvent>) {
        let Some(mut run) = self.slots[i].running.take() else {
            return;
        };
        if let Some(t) = run.generation_start {
            run.stats.generation_time = t.elapsed();
        }
        self.clock += 1;
        self.slots[i].last_used = self.clock;
        events.push(BatchEvent::Finished {
            id: run.id,
            reason,
            stats: run.stats,
        });
    }

    /// Ends sequence `i` with `error` and empties its KV.
    fn fail(&mut self, i: usize, error: Error, events: &mut Vec<BatchEvent>) {
        let Some(mut run) = self.slots[i].running.take() else {
            return;
        };
        if let Some(t) = run.generation_start {
            run.stats.generation_time = t.elapsed();
        }
        self.clear_slot(i);
        events.push(BatchEvent::Failed {
            id: run.id,
            error,
            stats: run.stats,
        });
    }

    fn clear_slot(&mut self, i: usize) {
        let seq = self.slots[i].seq;
        // Cannot fail: `seq` is one of the context's sequences.
        let _ = self.ctx.kv_remove(seq, None, None);
        self.slots[i].cached.clear();
    }

    /// Empties the caches of idle slots; true when any held tokens.
    fn drop_idle_caches(&mut self) -> bool {
        let mut dropped = false;
        for i in 0..self.slots.len() {
            if self.slots[i].running.is_none() && !self.slots[i].cached.is_empty() {
                self.clear_slot(i);
                dropped = true;
            }
        }
        dropped
    }
}
