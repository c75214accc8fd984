//! The generation engine: one thread owns the model's one [`BatchGenerator`] and runs every
//! generation (API requests and insights) through it, one decode per step for all of them,
//! with the configured threads. However many requests are active, the CPU is never
//! oversubscribed.
//!
//! Requests arrive on a channel and wait in order until a sequence is free: the API gets
//! `model.max_concurrent` sequences, background work (insights) one more of its own, so an
//! insight never waits behind a full API queue. (How many API requests may wait is the HTTP
//! layer's `model.queue`.) Text goes back on an unbounded channel per request; when its
//! receiver is gone (the client disconnected) the sequence leaves the batch at the next
//! step.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{mpsc as std_mpsc, Arc};
use std::time::{Duration, Instant};

use ember_llama::{
    BatchEvent, BatchGenerator, CancelHandle, FinishReason, GenerateOptions, Model, SamplerBuilder,
    SequenceId, SlotFile, SlotState,
};
use tokio::sync::{mpsc, oneshot};

use crate::config::ModelPriority;
use crate::llm::{GenEvent, GenRequest, GenSummary, TokenLogprobs, TokenText};
use crate::metrics::EngineMetrics;

/// Who a generation is for: API requests and background work have separate sequences.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// An HTTP request (at most `model.max_concurrent` run at once).
    Api,
    /// The insight worker (one at a time, on its own sequence).
    Background,
}

struct Job {
    req: GenRequest,
    priority: Priority,
    events: mpsc::UnboundedSender<GenEvent>,
    cancel: CancelHandle,
}

impl Job {
    /// Whether nobody waits for it any more.
    fn abandoned(&self) -> bool {
        self.events.is_closed() || self.cancel.is_cancelled()
    }
}

/// A job's sequence while it runs.
struct Active {
    priority: Priority,
    events: mpsc::UnboundedSender<GenEvent>,
    cancel: CancelHandle,
    client_gone: bool,
    /// [`crate::llm::GenRequest::token_ids`].
    token_ids: bool,
}

/// A `/slots` action (llama-server's), run on the engine thread between steps. One on a slot
/// that a generation holds waits until it ends, as llama-server defers it.
#[derive(Debug, Clone)]
pub enum SlotAction {
    /// Each slot's state.
    List,
    /// Write the slot's cache to the file.
    Save {
        /// The slot (sequence) index.
        slot: usize,
        /// The file to write.
        path: PathBuf,
    },
    /// Replace the slot's cache with the file's.
    Restore {
        /// The slot (sequence) index.
        slot: usize,
        /// The file to read.
        path: PathBuf,
    },
    /// Empty the slot's cache.
    Erase {
        /// The slot (sequence) index.
        slot: usize,
    },
}

/// What a [`SlotAction`] did.
#[derive(Debug)]
pub enum SlotReply {
    /// Every slot of the engine, API and background.
    List(Vec<SlotState>),
    /// Saved, in this time.
    Saved(SlotFile, Duration),
    /// Restored, in this time.
    Restored(SlotFile, Duration),
    /// Erased this many tokens.
    Erased(usize),
}

impl SlotAction {
    fn slot(&self) -> Option<usize> {
        match self {
            SlotAction::List => None,
            SlotAction::Save { slot, .. }
            | SlotAction::Restore { slot, .. }
            | SlotAction::Erase { slot } => Some(*slot),
        }
    }
}

struct SlotJob {
    action: SlotAction,
    reply: oneshot::Sender<ember_llama::Result<SlotReply>>,
}

/// What the engine thread receives.
enum Msg {
    Generate(Box<Job>),
    Slot(SlotJob),
}

/// The handle the rest of the daemon submits to; the thread stops when it is dropped.
pub struct Engine {
    jobs: std_mpsc::Sender<Msg>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Engine")
    }
}

impl Engine {
    /// Starts the engine thread over `generator`, `api_sequences` of whose sequences serve
    /// [`Priority::Api`] and the rest background work; the thread runs at `priority`.
    ///
    /// # Errors
    ///
    /// The thread cannot be started.
    pub fn start(
        generator: BatchGenerator,
        api_sequences: usize,
        priority: ModelPriority,
        metrics: EngineMetrics,
    ) -> std::io::Result<Engine> {
        let (jobs, rx) = std_mpsc::channel();
        std::thread::Builder::new()
            .name("ember-engine".into())
            .spawn(move || {
                // Part of every decode runs on this thread: it takes the decode threads'
                // priority.
                if let Err(err) = priority.threads().apply_to_current_thread() {
                    log::warn!("{err}: the engine thread runs at normal priority");
                }
                Runner::new(generator, api_sequences, metrics).run(&rx)
            })?;
        Ok(Engine { jobs })
    }

    /// Queues `req`; its text and end arrive on the returned receiver. Dropping the
    /// receiver, or triggering the handle, cancels it (at the next step, or before it
    /// starts); with the handle, the receiver still gets the final
    /// [`GenEvent::Done`] (with `client_gone`).
    pub fn submit(
        &self,
        req: GenRequest,
        priority: Priority,
    ) -> (mpsc::UnboundedReceiver<GenEvent>, CancelHandle) {
        let (events, rx) = mpsc::unbounded_channel();
        let cancel = CancelHandle::default();
        let job = Job {
            req,
            priority,
            events,
            cancel: cancel.clone(),
        };
        if let Err(std_mpsc::SendError(Msg::Generate(job))) =
            self.jobs.send(Msg::Generate(Box::new(job)))
        {
            let _ = job
                .events
                .send(GenEvent::Failed("the generation engine has stopped".into()));
        }
        (rx, cancel)
    }

    /// Runs `action` on the engine thread (after the generation holding its slot, if one
    /// does); `None` when the engine has stopped.
    pub async fn slot(&self, action: SlotAction) -> Option<ember_llama::Result<SlotReply>> {
        let (reply, rx) = oneshot::channel();
        self.jobs.send(Msg::Slot(SlotJob { action, reply })).ok()?;
        rx.await.ok()
    }
}

struct Runner {
    generator: BatchGenerator,
    model: Arc<Model>,
    api_sequences: usize,
    metrics: EngineMetrics,
    waiting: VecDeque<Job>,
    /// `/slots` actions waiting for their slot's generation to end.
    slot_jobs: Vec<SlotJob>,
    active: HashMap<SequenceId, Active>,
    /// Tokens sampled in the current rate window, and when it began.
    window: (u64, Instant),
}

impl Runner {
    fn new(generator: BatchGenerator, api_sequences: usize, metrics: EngineMetrics) -> Runner {
        Runner {
            model: Arc::clone(generator.context().model()),
            generator,
            api_sequences,
            metrics,
            waiting: VecDeque::new(),
            slot_jobs: Vec::new(),
            active: HashMap::new(),
            window: (0, Instant::now()),
        }
    }

    fn run(mut self, jobs: &std_mpsc::Receiver<Msg>) {
        loop {
            if self.active.is_empty() && self.waiting.is_empty() {
                self.metrics.tokens_per_second.set(0.0);
                match jobs.recv() {
                    Ok(msg) => self.take(msg),
                    Err(_) => return,
                }
            }
            for msg in jobs.try_iter() {
                self.take(msg);
            }
            // Before admitting: a slot freed by the last step serves its action before a new
            // generation can take it.
            self.run_slot_jobs();
            self.admit();
            for (id, a) in &mut self.active {
                if (a.events.is_closed() || a.cancel.is_cancelled()) && !a.client_gone {
                    a.client_gone = true;
                    self.generator.cancel(*id);
                }
            }
            if self.active.is_empty() {
                continue;
            }
            let events = self.generator.step();
            let step = self.generator.last_step();
            if step.sequences > 0 {
                self.metrics.batch_sequences.observe(step.sequences as f64);
                self.metrics.decodes.inc();
                self.metrics.decode_sequences.inc_by(step.sequences as u64);
                crate::metrics::raise_gauge(&self.metrics.decode_tokens_max, step.tokens as i64);
                self.metrics
                    .prompt_tokens_evaluated
                    .inc_by(step.prompt_tokens as u64);
            }
            for event in events {
                self.dispatch(event);
            }
        }
    }

    fn take(&mut self, msg: Msg) {
        match msg {
            Msg::Generate(job) => self.waiting.push_back(*job),
            Msg::Slot(job) => self.slot_jobs.push(job),
        }
    }

    /// Runs the `/slots` actions whose slot is free; the others wait.
    fn run_slot_jobs(&mut self) {
        // Called before every step: no slot states gathered when no action waits.
        if self.slot_jobs.is_empty() {
            return;
        }
        let states = self.generator.slots();
        let (ready, busy): (Vec<SlotJob>, Vec<SlotJob>) = std::mem::take(&mut self.slot_jobs)
            .into_iter()
            .filter(|job| !job.reply.is_closed())
            .partition(|job| {
                job.action
                    .slot()
                    .and_then(|slot| states.get(slot))
                    .is_none_or(|state| state.running.is_none())
            });
        self.slot_jobs = busy;
        for job in ready {
            let start = Instant::now();
            let result = match job.action {
                SlotAction::List => Ok(SlotReply::List(self.generator.slots())),
                SlotAction::Save { slot, path } => self
                    .generator
                    .save_slot(slot, &path)
                    .map(|f| SlotReply::Saved(f, start.elapsed())),
                SlotAction::Restore { slot, path } => self
                    .generator
                    .restore_slot(slot, &path)
                    .map(|f| SlotReply::Restored(f, start.elapsed())),
                SlotAction::Erase { slot } => {
                    self.generator.erase_slot(slot).map(SlotReply::Erased)
                }
            };
            let _ = job.reply.send(result);
        }
    }

    fn running(&self, priority: Priority) -> usize {
        self.active
            .values()
            .filter(|a| a.priority == priority)
            .count()
    }

    /// Starts waiting jobs, oldest first, while their kind has a free sequence.
    fn admit(&mut self) {
        let mut api_free = self
            .api_sequences
            .saturating_sub(self.running(Priority::Api));
        let mut background_free = self
            .generator
            .capacity()
            .saturating_sub(self.api_sequences)
            .saturating_sub(self.running(Priority::Background));
        let mut still_waiting = VecDeque::new();
        while let Some(job) = self.waiting.pop_front() {
            if job.abandoned() {
                if !job.events.is_closed() {
                    let _ = job.events.send(GenEvent::Done(GenSummary {
                        finish_reason: "cancelled",
                        client_gone: true,
                        ..GenSummary::default()
                    }));
                }
                continue;
            }
            let free = match job.priority {
                Priority::Api => &mut api_free,
                Priority::Background => &mut background_free,
            };
            if *free == 0 || !self.generator.has_free_slot() {
                still_waiting.push_back(job);
                continue;
            }
            *free -= 1;
            self.start(job);
        }
        self.waiting = still_waiting;
        self.metrics.queue.set(self.waiting.len() as i64);
    }

    fn start(&mut self, job: Job) {
        let submitted = self.tokens(&job.req).and_then(|tokens| {
            let sampler = sampler(&self.model, &job.req)?;
            let mut options = GenerateOptions::default().with_max_tokens(job.req.max_tokens);
            if let Some(top) = job.req.logprobs {
                options = options.with_logprobs(top);
            }
            for s in &job.req.stops {
                options = options.with_stop(s.clone());
            }
            Ok(self.generator.submit(tokens, sampler, options)?)
        });
        match submitted {
            Ok(id) => {
                self.active.insert(
                    id,
                    Active {
                        priority: job.priority,
                        events: job.events,
                        cancel: job.cancel,
                        client_gone: false,
                        token_ids: job.req.token_ids,
                    },
                );
            }
            Err(e) => {
                let _ = job.events.send(GenEvent::Failed(format!("{e:#}")));
            }
        }
    }

    fn tokens(&self, req: &GenRequest) -> anyhow::Result<Vec<ember_llama::Token>> {
        Ok(match &req.prompt_tokens {
            Some(tokens) => tokens.clone(),
            None => self.model.tokenize(&req.prompt, true, true)?,
        })
    }

    fn dispatch(&mut self, event: BatchEvent) {
        match event {
            BatchEvent::Piece {
                id,
                piece,
                logprobs,
            } => {
                self.count_token();
                let Some(a) = self.active.get_mut(&id) else {
                    return;
                };
                let eog = self.model.is_eog(piece.token);
                if a.token_ids && !eog {
                    let _ = a.events.send(GenEvent::Id(piece.token));
                }
                if let Some(lp) = logprobs.filter(|_| !eog) {
                    let _ = a
                        .events
                        .send(GenEvent::Token(token_logprobs(&self.model, &lp)));
                }
                if !piece.text.is_empty()
                    && a.events.send(GenEvent::Text(piece.text)).is_err()
                    && !a.client_gone
                {
                    a.client_gone = true;
                    self.generator.cancel(id);
                }
            }
            BatchEvent::Finished { id, reason, stats } => {
                let Some(a) = self.active.remove(&id) else {
                    return;
                };
                self.metrics
                    .prompt_tokens_reused
                    .inc_by(stats.cached_prompt_tokens as u64);
                // llama-server's stop type; OpenAI's finish reason follows from it.
                let stop_type = match reason {
                    _ if a.client_gone => "none",
                    FinishReason::MaxTokens | FinishReason::ContextFull => "limit",
                    FinishReason::Stop => "word",
                    FinishReason::EndOfGeneration => "eos",
                    FinishReason::Cancelled => "none",
                };
                let finish_reason = match stop_type {
                    "limit" => "length",
                    "none" => "cancelled",
                    _ => "stop",
                };
                let summary = GenSummary {
                    finish_reason,
                    stop_type,
                    prompt_tokens: stats.prompt_tokens,
                    cached_tokens: stats.cached_prompt_tokens,
                    completion_tokens: stats.generated_tokens,
                    prompt_ms: stats.prompt_time.as_secs_f64() * 1e3,
                    generation_ms: stats.generation_time.as_secs_f64() * 1e3,
                    client_gone: a.client_gone,
                };
                // The receiver may be gone already; that is what client_gone reports.
                let _ = a.events.send(GenEvent::Done(summary));
            }
            BatchEvent::Failed { id, error, .. } => {
                if let Some(a) = self.active.remove(&id) {
                    let _ = a.events.send(GenEvent::Failed(error.to_string()));
                }
            }
        }
    }

    /// Counts a sampled token into the tokens/s gauge (5 s windows).
    fn count_token(&mut self) {
        self.window.0 += 1;
        let elapsed = self.window.1.elapsed();
        if elapsed >= Duration::from_secs(5) {
            self.metrics
                .tokens_per_second
                .set(self.window.0 as f64 / elapsed.as_secs_f64());
            self.window = (0, Instant::now());
        }
    }
}

/// A token's log-probabilities with the tokens' text.
fn token_logprobs(model: &Model, lp: &ember_llama::Logprobs) -> TokenLogprobs {
    let text = |t: &ember_llama::TokenLogprob| {
        let bytes = model.token_to_piece(t.token, false).unwrap_or_default();
        TokenText {
            id: t.token.0,
            text: String::from_utf8_lossy(&bytes).into_owned(),
            bytes,
            // JSON has no -inf: a token the model rules out gets the lowest finite value.
            logprob: t.logprob.max(f32::MIN),
        }
    };
    TokenLogprobs {
        sampled: text(&lp.sampled),
        top: lp.top.iter().map(text).collect(),
    }
}

/// The sampler chain of a request: the grammar constrains the candidates first; then, in
/// llama-server's order, logit bias, penalties, top-k, typical, top-p, min-p, temperature;
/// the last stage picks the token (greedy at temperature 0, after the bias and penalties,
/// which change which token is most likely).
fn sampler(model: &Arc<Model>, req: &GenRequest) -> anyhow::Result<ember_llama::Sampler> {
    let mut builder = SamplerBuilder::new();
    let stages = &req.stages;
    if let Some(g) = &req.grammar {
        // No top-k before the grammar: if it left no token the grammar accepts, llama.cpp
        // would throw through the C API and abort.
        builder = builder.grammar(g, "root");
    }
    if let Some(settings) = &req.chat_grammar {
        builder = builder.chat_grammar(settings);
    }
    if !stages.logit_bias.is_empty() {
        builder = builder.logit_bias(stages.logit_bias.iter().copied());
    }
    match (stages.penalties, req.grammar.is_some()) {
        // The client's penalties count the prompt too, as llama-server's do.
        (Some(p), _) => {
            builder = builder
                .penalties(p.last_n, p.repeat, p.frequency, p.presence)
                .penalize_prompt(true);
        }
        // Unless the client chose penalties, one keeps a small model from looping inside a
        // JSON string.
        (None, true) => builder = builder.penalties(64, 1.3, 0.0, 0.0),
        (None, false) => {}
    }
    if req.temperature <= 0.0 {
        return Ok(builder.select_greedy().build(model)?);
    }
    if let Some(k) = stages.top_k {
        builder = builder.top_k(k);
    }
    if let Some(p) = stages.typical_p {
        builder = builder.typical(p, 1);
    }
    if req.top_p < 1.0 {
        builder = builder.top_p(req.top_p, 1);
    }
    if let Some(p) = stages.min_p {
        builder = builder.min_p(p, 1);
    }
    Ok(builder
        .temperature(req.temperature)
        .seeded(req.seed)
        .build(model)?)
}
