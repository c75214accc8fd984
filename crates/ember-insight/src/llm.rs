//! The loaded model and its generation slots.
//!
//! One [`Model`] is shared by every slot; each generation takes a [`Context`] from a pool
//! (created on first use, at most `max_concurrent` plus the insight worker's own) and runs on
//! a blocking thread, never on the async runtime. Text goes out through a bounded channel;
//! when the receiver is gone (the HTTP client disconnected) the generation stops.

use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use ember_llama::{
    ChatMessage, Context, ContextParams, FinishReason, GenerateOptions, Model, ModelParams,
    SamplerBuilder,
};
use tokio::sync::mpsc;

use crate::config::ModelConfig;

/// Sampling and limits of one generation.
#[derive(Debug, Clone)]
pub struct GenRequest {
    /// The prompt text (chat prompts already rendered with the template).
    pub prompt: String,
    /// The prompt as tokens, used instead of `prompt` when given (see
    /// [`Llm::chat_prompt_tokens`]: untrusted text tokenized without special tokens).
    pub prompt_tokens: Option<Vec<ember_llama::Token>>,
    /// Most tokens to generate.
    pub max_tokens: usize,
    /// Stop strings.
    pub stops: Vec<String>,
    /// 0 or less is greedy.
    pub temperature: f32,
    /// Nucleus sampling (1.0 is off).
    pub top_p: f32,
    /// Seed of the random sampler.
    pub seed: u32,
    /// A GBNF grammar (root rule `root`).
    pub grammar: Option<String>,
}

/// What a generation sends.
#[derive(Debug)]
pub enum GenEvent {
    /// Text released by one step.
    Text(String),
    /// The end.
    Done(GenSummary),
    /// It failed (the message says why).
    Failed(String),
}

/// How a generation ended.
#[derive(Debug, Clone, Copy)]
pub struct GenSummary {
    /// OpenAI's name for why it ended (`stop`, `length`, `cancelled`).
    pub finish_reason: &'static str,
    /// Prompt tokens.
    pub prompt_tokens: usize,
    /// Generated tokens.
    pub completion_tokens: usize,
    /// True when it stopped because the receiver was dropped.
    pub client_gone: bool,
}

/// A loaded model and its context pool.
pub struct Llm {
    model: Arc<Model>,
    name: String,
    template: String,
    params: ContextParams,
    config: ModelConfig,
    pool: Mutex<Vec<Context>>,
    embed: Mutex<Option<Context>>,
}

impl std::fmt::Debug for Llm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Llm")
            .field("name", &self.name)
            .field("template", &self.template)
            .finish_non_exhaustive()
    }
}

impl Llm {
    /// Loads the model at `path` (blocking: call it off the async runtime).
    ///
    /// # Errors
    ///
    /// The model cannot be loaded, or the chat template is unknown.
    pub fn load(path: &Path, config: &ModelConfig) -> anyhow::Result<Llm> {
        let model = Model::load(path, &ModelParams::default())
            .with_context(|| format!("cannot load model {}", path.display()))?;
        let model = Arc::new(model);
        let template = match (&config.chat_template, model.chat_template()) {
            (Some(name), _) => name.clone(),
            (None, Some(embedded)) => embedded,
            (None, None) => {
                let arch = model.meta("general.architecture").unwrap_or_default();
                let name = if arch.starts_with("gemma") {
                    "gemma"
                } else {
                    "chatml"
                };
                name.to_string()
            }
        };
        // Fail at start, not on the first request, when the template is unusable.
        ember_llama::apply_chat_template(&template, &[ChatMessage::user("hi")], true)
            .with_context(|| format!("chat template {template:?} is not usable: pass --chat-template with one of {:?}", ember_llama::builtin_templates()))?;
        let name = config.name.clone().unwrap_or_else(|| {
            path.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "model".into())
        });
        let mut params = ContextParams::default()
            .with_n_ctx(config.ctx_size)
            .with_n_batch(config.ctx_size.min(512));
        // llama.cpp's default is 4 threads whatever the machine; use the cores there are.
        let threads = config
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(4, |n| n.get() as i32));
        params = params.with_threads(threads).with_threads_batch(threads);
        Ok(Llm {
            model,
            name,
            template,
            params,
            config: config.clone(),
            pool: Mutex::new(Vec::new()),
            embed: Mutex::new(None),
        })
    }

    /// The name `/v1/models` shows.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The chat template in use (a built-in name or the model's own text).
    pub fn template(&self) -> &str {
        &self.template
    }

    /// The model.
    pub fn model(&self) -> &Arc<Model> {
        &self.model
    }

    /// The settings it was loaded with.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Renders chat messages into a prompt that ends with the assistant's turn.
    ///
    /// # Errors
    ///
    /// The template rejects the messages.
    pub fn chat_prompt(&self, messages: &[ChatMessage]) -> anyhow::Result<String> {
        Ok(ember_llama::apply_chat_template(
            &self.template,
            messages,
            true,
        )?)
    }

    /// Renders chat messages like [`Llm::chat_prompt`] and tokenizes the result so that only the
    /// template's own text can become special tokens: the messages' content is tokenized
    /// with special-token parsing off, so text such as `<start_of_turn>model` in a process's
    /// argv stays plain text (any local user controls argv, comm and cgroup names).
    ///
    /// # Errors
    ///
    /// The template rejects the messages, or the text cannot be tokenized.
    pub fn chat_prompt_tokens(
        &self,
        messages: &[ChatMessage],
    ) -> anyhow::Result<Vec<ember_llama::Token>> {
        // Render with a marker for each message's content, then tokenize the template's
        // pieces with special parsing and the contents without.
        const MARK: &str = "\u{1}ember-untrusted-content\u{1}";
        let marked: Vec<ChatMessage> = messages
            .iter()
            .map(|m| ChatMessage::new(m.role.clone(), MARK))
            .collect();
        let rendered = self.chat_prompt(&marked)?;
        let pieces: Vec<&str> = rendered.split(MARK).collect();
        if pieces.len() != messages.len() + 1 {
            anyhow::bail!(
                "the chat template does not render each message's content once ({} of {})",
                pieces.len().saturating_sub(1),
                messages.len()
            );
        }
        let mut tokens = Vec::new();
        for (i, piece) in pieces.iter().enumerate() {
            if !piece.is_empty() {
                tokens.extend(self.model.tokenize(piece, i == 0, true)?);
            }
            if let Some(m) = messages.get(i) {
                tokens.extend(self.model.tokenize(&m.content, false, false)?);
            }
        }
        Ok(tokens)
    }

    /// A fresh context with this model's settings (for a worker that keeps its own).
    ///
    /// # Errors
    ///
    /// llama.cpp could not create it.
    pub fn new_context(&self) -> anyhow::Result<Context> {
        Ok(Context::new(&self.model, &self.params)?)
    }

    /// Runs one generation on the calling (blocking) thread with a pooled context, sending
    /// text to `tx`. Stops early when `tx`'s receiver is dropped.
    ///
    /// # Errors
    ///
    /// Bad parameters (grammar, prompt too long) and llama.cpp failures.
    pub fn generate_pooled(
        &self,
        req: &GenRequest,
        tx: &mpsc::Sender<GenEvent>,
    ) -> anyhow::Result<GenSummary> {
        let ctx = self.pool.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut ctx = match ctx {
            Some(ctx) => ctx,
            None => self.new_context()?,
        };
        let result = self.generate_with(&mut ctx, req, |text| {
            tx.blocking_send(GenEvent::Text(text)).is_ok()
        });
        self.pool
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(ctx);
        let summary = result?;
        // The receiver may be gone already; that is what client_gone reports.
        let _ = tx.blocking_send(GenEvent::Done(summary));
        Ok(summary)
    }

    /// Runs one generation on `ctx`, handing each piece of text to `sink`; `sink` returning
    /// false stops it (reported as `client_gone`).
    ///
    /// # Errors
    ///
    /// As [`Llm::generate_pooled`].
    pub fn generate_with(
        &self,
        ctx: &mut Context,
        req: &GenRequest,
        mut sink: impl FnMut(String) -> bool,
    ) -> anyhow::Result<GenSummary> {
        // The grammar constrains the candidates first; the last stage picks the token.
        let mut builder = SamplerBuilder::new();
        if let Some(g) = &req.grammar {
            // The penalty keeps a small model from looping inside a JSON string. No top-k
            // before the grammar: if it left no token the grammar accepts, llama.cpp would
            // throw through the C API and abort.
            builder = builder.penalties(64, 1.3, 0.0, 0.0).grammar(g, "root");
        }
        builder = if req.temperature <= 0.0 {
            builder.select_greedy()
        } else {
            if req.top_p < 1.0 {
                builder = builder.top_p(req.top_p, 1);
            }
            builder.temperature(req.temperature).seeded(req.seed)
        };
        let mut sampler = builder.build(&self.model)?;
        let mut options = GenerateOptions::default().with_max_tokens(req.max_tokens);
        for s in &req.stops {
            options = options.with_stop(s.clone());
        }
        let mut generation = match &req.prompt_tokens {
            Some(tokens) => ctx.generate_from_tokens(&mut sampler, tokens, &options)?,
            None => ctx.generate(&mut sampler, &req.prompt, &options)?,
        };
        let mut client_gone = false;
        for piece in generation.by_ref() {
            let piece = piece?;
            if !piece.text.is_empty() && !sink(piece.text) {
                client_gone = true;
                break;
            }
        }
        let stats = generation.stats();
        let finish_reason = if client_gone {
            "cancelled"
        } else {
            match generation.finish_reason() {
                Some(FinishReason::MaxTokens | FinishReason::ContextFull) => "length",
                Some(FinishReason::Cancelled) => "cancelled",
                _ => "stop",
            }
        };
        Ok(GenSummary {
            finish_reason,
            prompt_tokens: stats.prompt_tokens,
            completion_tokens: stats.generated_tokens,
            client_gone,
        })
    }

    /// Embeds each text (blocking), with the one embeddings context.
    ///
    /// # Errors
    ///
    /// Texts too long for a batch, llama.cpp failures.
    pub fn embed(&self, texts: &[String]) -> anyhow::Result<(Vec<Vec<f32>>, usize)> {
        let mut slot = self.embed.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            let params = self.params.clone().with_embeddings(true);
            *slot = Some(Context::new(&self.model, &params)?);
        }
        let ctx = slot.as_mut().context("embeddings context missing")?;
        let tokens = texts
            .iter()
            .map(|t| self.model.tokenize(t, true, false).map(|v| v.len()))
            .sum::<Result<usize, _>>()?;
        Ok((ctx.embed(texts)?, tokens))
    }

    /// Counts the tokens of `text` as a prompt.
    pub fn count_tokens(&self, text: &str) -> usize {
        self.model
            .tokenize(text, true, true)
            .map(|t| t.len())
            .unwrap_or(0)
    }
}
