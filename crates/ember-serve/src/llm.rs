//! The loaded model and its generation engine.
//!
//! Every generation runs through the one [`Engine`]: a thread that batches all running
//! sequences into one decode per step (see [`crate::engine`]). Text goes out through a
//! channel per request; when the receiver is gone (the HTTP client disconnected) the
//! sequence leaves the batch.

use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use ember_llama::chat_template::ChatTemplates;
use ember_llama::{BatchGenerator, ChatMessage, Context, ContextParams, Model, ModelParams};
use tokio::sync::mpsc;

use crate::config::ModelConfig;
use crate::engine::{Engine, Priority, SlotAction, SlotReply};
use crate::metrics::EngineMetrics;

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
    /// The other stages of the chain (all off by default).
    pub stages: SamplingStages,
    /// A GBNF grammar (root rule `root`).
    pub grammar: Option<String>,
    /// Or the grammar of a chat's rendering ([`Llm::render_chat`]'s settings, JSON): a
    /// tool-call grammar, lazy where the template's format says so.
    pub chat_grammar: Option<String>,
    /// Report each token's log-probability and this many most likely alternatives
    /// ([`GenEvent::Token`]); `None`: off.
    pub logprobs: Option<usize>,
    /// Send each generated token's id ([`GenEvent::Id`]), as llama-server's `/completion`
    /// returns them.
    pub token_ids: bool,
}

/// Sampling stages a request may add, llama-server's names and meanings; [`Default`] turns
/// each off. They run in llama-server's order: logit bias, penalties, top-k, typical, top-p
/// (in [`GenRequest`]), min-p, temperature.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SamplingStages {
    /// Added to the listed tokens' logits.
    pub logit_bias: Vec<(ember_llama::Token, f32)>,
    /// Repetition penalties over the last tokens; `None` is off.
    pub penalties: Option<Penalties>,
    /// Keep the k most likely tokens.
    pub top_k: Option<i32>,
    /// Locally typical sampling with this mass.
    pub typical_p: Option<f32>,
    /// Keep tokens at least this fraction as likely as the most likely.
    pub min_p: Option<f32>,
}

/// llama.cpp's penalties stage.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Penalties {
    /// Tokens looked back at (-1: the whole context).
    pub last_n: i32,
    /// Divides a repeated token's logit (1.0 is off).
    pub repeat: f32,
    /// Subtracted per earlier occurrence.
    pub frequency: f32,
    /// Subtracted once for any earlier occurrence.
    pub presence: f32,
}

/// A token's text and log-probability.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenText {
    /// Its id in the vocabulary.
    pub id: i32,
    /// Its text (invalid UTF-8 of a partial character replaced).
    pub text: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// `ln p` under the model's distribution.
    pub logprob: f32,
}

/// A sampled token's log-probability and the most likely tokens at its step.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenLogprobs {
    /// The sampled token.
    pub sampled: TokenText,
    /// The most likely tokens, most likely first.
    pub top: Vec<TokenText>,
}

/// What a generation sends.
#[derive(Debug)]
pub enum GenEvent {
    /// A generated token's id (with [`GenRequest::token_ids`]), before the text of its step;
    /// an end-of-generation token is not sent.
    Id(ember_llama::Token),
    /// A sampled token's log-probabilities (with [`GenRequest::logprobs`]), before the
    /// text of its step.
    Token(TokenLogprobs),
    /// Text released by one step.
    Text(String),
    /// The end.
    Done(GenSummary),
    /// It failed (the message says why).
    Failed(String),
}

/// How a generation ended.
#[derive(Debug, Clone, Copy, Default)]
pub struct GenSummary {
    /// OpenAI's name for why it ended (`stop`, `length`, `cancelled`).
    pub finish_reason: &'static str,
    /// llama-server's (`stop_type`): `eos` (the model ended it), `word` (a stop string),
    /// `limit` (max tokens or a full context) or `none` (cancelled).
    pub stop_type: &'static str,
    /// Prompt tokens.
    pub prompt_tokens: usize,
    /// Of those, tokens reused from the KV cache (a prefix shared with an earlier prompt).
    pub cached_tokens: usize,
    /// Generated tokens.
    pub completion_tokens: usize,
    /// Milliseconds from admission to the first token (prompt decoding).
    pub prompt_ms: f64,
    /// Milliseconds from the first token to the last.
    pub generation_ms: f64,
    /// True when it stopped because the receiver was dropped.
    pub client_gone: bool,
}

/// The chat template and how chats are rendered with it (llama.cpp's `common` library).
struct ChatRenderer {
    templates: Mutex<ChatTemplates>,
    /// The server's side of a rendering: `use_jinja`, `reasoning_format`, `enable_thinking`.
    options: String,
}

impl ChatRenderer {
    /// The template text or name (for `/props` and `/status`) and its renderer: the file's
    /// Jinja, a built-in name, the model's own Jinja, or gemma/chatml when the model has none.
    fn new(model: &Arc<Model>, config: &ModelConfig) -> anyhow::Result<(String, ChatRenderer)> {
        let (text, use_jinja) = if let Some(file) = &config.chat_template_file {
            let text = std::fs::read_to_string(file).with_context(|| {
                format!("cannot read model.chat_template_file {}", file.display())
            })?;
            (Some(text), true)
        } else if let Some(name) = &config.chat_template {
            (Some(name.clone()), false)
        } else if model.chat_template().is_some() {
            (None, config.jinja)
        } else {
            let arch = model.meta("general.architecture").unwrap_or_default();
            let name = if arch.starts_with("gemma") {
                "gemma"
            } else {
                "chatml"
            };
            (Some(name.to_string()), false)
        };
        if !use_jinja {
            if let Some(name) = &text {
                // Fail at start, not on the first request, when the name is unknown.
                ember_llama::apply_chat_template(name, &[ChatMessage::user("hi")], true)
                    .with_context(|| format!("chat template {name:?} is not usable: pass --chat-template with one of {:?}, or model.chat_template_file with a Jinja template", ember_llama::builtin_templates()))?;
            }
        }
        let templates = ChatTemplates::new(model, text.as_deref())
            .context("the chat template does not parse (model.chat_template_file, or the model's own: model.jinja = false renders llama.cpp's built-in templates instead)")?;
        let info: serde_json::Value = serde_json::from_str(&templates.info()?)?;
        let source = match (&text, use_jinja) {
            (Some(name), false) => name.clone(),
            _ => info["source"].as_str().unwrap_or_default().to_string(),
        };
        let options = serde_json::json!({
            "use_jinja": use_jinja,
            "prefill_assistant": true,
            "reasoning_format": config.reasoning_format.name(),
            "enable_thinking": config.reasoning != crate::config::Reasoning::Off,
        })
        .to_string();
        let renderer = ChatRenderer {
            templates: Mutex::new(templates),
            options,
        };
        // Fail at start when the template cannot render a plain chat.
        renderer
            .render(&serde_json::json!({"messages": [{"role": "user", "content": "hi"}]}))
            .context("the chat template cannot render a one-message chat")?;
        Ok((source, renderer))
    }

    fn render(&self, request: &serde_json::Value) -> anyhow::Result<serde_json::Value> {
        let templates = self.templates.lock().unwrap_or_else(|e| e.into_inner());
        let out = templates
            .apply(&request.to_string(), &self.options)
            .map_err(|e| anyhow::anyhow!(e.input_message()))?;
        log::trace!("chat rendering: {out}");
        Ok(serde_json::from_str(&out)?)
    }
}

/// A loaded model and its generation engine.
pub struct Llm {
    model: Arc<Model>,
    name: String,
    template: String,
    chat: ChatRenderer,
    params: ContextParams,
    config: ModelConfig,
    /// Threads per decode (at most) and how that count was chosen.
    threads: (i32, String),
    engine: Engine,
    embed: Mutex<Option<Context>>,
    /// The end-of-generation tokens (what `ignore_eos` bans), found on first use.
    eog: std::sync::OnceLock<Vec<ember_llama::Token>>,
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
    /// Loads the model at `path` and starts its engine (blocking: call it off the async
    /// runtime). The engine's context holds `max_concurrent` API sequences and one for
    /// background work, `ctx_size` tokens each on average in one unified KV cache.
    ///
    /// # Errors
    ///
    /// The model cannot be loaded, the chat template is unknown, or the engine's context
    /// cannot be created.
    pub fn load(path: &Path, config: &ModelConfig, metrics: EngineMetrics) -> anyhow::Result<Llm> {
        let model = Model::load(path, &ModelParams::default())
            .with_context(|| format!("cannot load model {}", path.display()))?;
        let model = Arc::new(model);
        if let Some(dir) = &config.slot_save_path {
            std::fs::create_dir_all(dir).with_context(|| {
                format!(
                    "cannot make model.slot_save_path {} (the folder of saved slot caches)",
                    dir.display()
                )
            })?;
        }
        let (template, chat) = ChatRenderer::new(&model, config)?;
        let name = config.name.clone().unwrap_or_else(|| {
            path.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "model".into())
        });
        let mut params = ContextParams::default()
            .with_n_ctx(config.ctx_size)
            .with_n_batch(config.ctx_size.min(512));
        // llama.cpp's default is 4 threads whatever the machine; use the CPUs this process
        // may use (affinity and cgroup quota).
        let budget = ember_llama::threads::CpuBudget::current();
        let (threads, threads_reason) = match config.threads {
            Some(n) => (n, format!("model.threads = {n} ({})", budget.reason)),
            None => (budget.threads as i32, budget.reason),
        };
        params = params
            .with_threads(threads)
            .with_threads_batch(threads)
            .with_priority(config.priority.threads());
        let sequences = config.max_concurrent + 1;
        let engine_params = params
            .clone()
            .with_n_ctx(config.ctx_size.saturating_mul(sequences as u32))
            .with_n_seq_max(sequences as u32)
            .with_kv_unified(config.kv_unified);
        let ctx = Context::new(&model, &engine_params).with_context(|| {
            format!(
                "cannot create the generation context ({sequences} sequences of {} tokens): lower model.max_concurrent or model.ctx_size",
                config.ctx_size
            )
        })?;
        let generator = BatchGenerator::new(ctx)
            .context("cannot start the batch generator")?
            .with_max_sequence_tokens(config.ctx_size as usize);
        let engine = Engine::start(generator, config.max_concurrent, config.priority, metrics)
            .context("cannot start the generation engine thread")?;
        Ok(Llm {
            model,
            name,
            template,
            chat,
            params,
            config: config.clone(),
            threads: (threads, threads_reason),
            engine,
            embed: Mutex::new(None),
            eog: std::sync::OnceLock::new(),
        })
    }

    /// Threads per decode (at most: fewer run while other processes keep cores busy), and
    /// how the count was chosen.
    pub fn threads(&self) -> (i32, &str) {
        (self.threads.0, &self.threads.1)
    }

    /// The name `/v1/models` shows.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The chat template in use (a built-in name or the model's own text).
    pub fn template(&self) -> &str {
        &self.template
    }

    /// Every token of the vocabulary that ends a generation (EOS, EOT, ...).
    pub fn eog_tokens(&self) -> &[ember_llama::Token] {
        self.eog.get_or_init(|| {
            (0..self.model.n_vocab())
                .map(ember_llama::Token)
                .filter(|&t| self.model.is_eog(t))
                .collect()
        })
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
        self.chat_prompt_with(messages, true)
    }

    /// As [`Llm::chat_prompt`], opening the assistant's turn at the end only when
    /// `add_generation_prompt` says so.
    ///
    /// # Errors
    ///
    /// The template rejects the messages.
    pub fn chat_prompt_with(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> anyhow::Result<String> {
        let messages: Vec<serde_json::Value> = messages
            .iter()
            .map(|m| serde_json::json!({"role": m.role, "content": m.content}))
            .collect();
        let request = serde_json::json!({
            "messages": messages,
            "add_generation_prompt": add_generation_prompt,
        });
        let settings = self.render_chat(&request)?;
        Ok(settings["prompt"].as_str().unwrap_or_default().to_string())
    }

    /// Renders an OpenAI chat request (messages, tools, tool_choice, reasoning settings) with
    /// the model's chat template, as llama-server does: the prompt and the settings its
    /// generation and the reading of its output take (see
    /// [`ember_llama::chat_template::ChatTemplates::apply`]).
    ///
    /// # Errors
    ///
    /// llama.cpp's message when the request is invalid or the template cannot render it.
    pub fn render_chat(&self, request: &serde_json::Value) -> anyhow::Result<serde_json::Value> {
        self.chat.render(request)
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

    /// Queues a generation; its text and end arrive on the returned receiver. Dropping
    /// the receiver, or triggering the handle, cancels it.
    pub fn submit(
        &self,
        req: GenRequest,
        priority: Priority,
    ) -> (mpsc::UnboundedReceiver<GenEvent>, ember_llama::CancelHandle) {
        self.engine.submit(req, priority)
    }

    /// Runs a `/slots` action on the engine thread (after the generation holding its slot).
    ///
    /// # Errors
    ///
    /// The engine has stopped (the outer error); the action failed (the inner one).
    pub async fn slot(&self, action: SlotAction) -> anyhow::Result<ember_llama::Result<SlotReply>> {
        self.engine
            .slot(action)
            .await
            .context("the generation engine has stopped")
    }

    /// Runs one generation to its end on the calling (blocking, non-async) thread and
    /// returns its whole text.
    ///
    /// # Errors
    ///
    /// Bad parameters (grammar, prompt too long) and llama.cpp failures.
    pub fn generate_blocking(
        &self,
        req: GenRequest,
        priority: Priority,
    ) -> anyhow::Result<(String, GenSummary)> {
        let (mut rx, _cancel) = self.submit(req, priority);
        let mut text = String::new();
        while let Some(event) = rx.blocking_recv() {
            match event {
                GenEvent::Text(t) => text.push_str(&t),
                GenEvent::Token(_) | GenEvent::Id(_) => {}
                GenEvent::Done(summary) => return Ok((text, summary)),
                GenEvent::Failed(e) => anyhow::bail!("generation failed: {e}"),
            }
        }
        anyhow::bail!("the generation engine ended without a result")
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

    /// Whether llama.cpp accepts the GBNF `grammar` (root rule `root`) for this model, so
    /// that a request can be refused before it is queued.
    ///
    /// # Errors
    ///
    /// The grammar does not parse.
    pub fn check_grammar(&self, grammar: &str) -> anyhow::Result<()> {
        ember_llama::SamplerBuilder::new()
            .grammar(grammar, "root")
            .select_greedy()
            .build(&self.model)?;
        Ok(())
    }
}
