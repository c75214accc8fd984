//! Text generation: [`Context::generate`] returns a [`Generation`], an iterator over
//! [`Piece`]s (token and text) with max tokens, stop strings, cancellation and stats.

mod options;
mod stats;
pub(crate) mod text;

use std::time::Instant;

use crate::batch::Batch;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::logprobs::Logprobs;
use crate::sampler::Sampler;
use crate::token::Token;
use text::TextStream;

pub use options::GenerateOptions;
pub use stats::GenerationStats;

/// One step of a generation: the token sampled and the text it released.
///
/// Text can lag behind tokens: bytes of an unfinished UTF-8 character, and text that
/// could be the start of a stop string, are held until they are decided. Concatenating
/// every `text` gives the whole output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Piece {
    /// The sampled token. When generation ends at an end-of-generation token while text
    /// was still held, a last piece carries that token and the held text.
    pub token: Token,
    /// Text released at this step (valid UTF-8, possibly empty).
    pub text: String,
}

/// Why a generation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinishReason {
    /// The model produced an end-of-generation token.
    EndOfGeneration,
    /// `max_tokens` were generated.
    MaxTokens,
    /// A stop string appeared.
    Stop,
    /// The [`CancelHandle`](crate::CancelHandle) was triggered.
    Cancelled,
    /// The context window is full.
    ContextFull,
}

/// A running generation; iterate it for [`Piece`]s. Created by [`Context::generate`].
pub struct Generation<'a> {
    ctx: &'a mut Context,
    sampler: &'a mut Sampler,
    options: GenerateOptions,
    batch: Batch,
    pos: i32,
    to_decode: Option<Token>,
    text: TextStream,
    finish: Option<FinishReason>,
    stats: GenerationStats,
    gen_start: Instant,
    done: bool,
    logprobs: Option<Logprobs>,
}

impl std::fmt::Debug for Generation<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generation")
            .field("pos", &self.pos)
            .field("finish", &self.finish)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Context {
    /// Starts generating from `prompt`: clears the KV cache, resets `sampler`, tokenizes
    /// and decodes the prompt, and returns the iterator.
    ///
    /// # Errors
    ///
    /// [`Error::PromptTooLong`] when the prompt leaves no room in the context, errors of
    /// tokenizing and decoding.
    pub fn generate<'a>(
        &'a mut self,
        sampler: &'a mut Sampler,
        prompt: &str,
        options: &GenerateOptions,
    ) -> Result<Generation<'a>> {
        let tokens = self
            .model()
            .tokenize(prompt, options.add_special, options.parse_special)?;
        self.generate_from_tokens(sampler, &tokens, options)
    }

    /// As [`Context::generate`], from prompt tokens.
    ///
    /// # Errors
    ///
    /// As [`Context::generate`]; [`Error::InvalidParameter`] for an empty prompt.
    pub fn generate_from_tokens<'a>(
        &'a mut self,
        sampler: &'a mut Sampler,
        prompt: &[Token],
        options: &GenerateOptions,
    ) -> Result<Generation<'a>> {
        if prompt.is_empty() {
            return Err(Error::InvalidParameter {
                name: "prompt",
                reason: "no tokens".into(),
            });
        }
        for &t in prompt {
            self.model().check_token(t)?;
        }
        if prompt.len() >= self.n_ctx() as usize {
            return Err(Error::PromptTooLong {
                tokens: prompt.len(),
                used: 0,
                n_ctx: self.n_ctx(),
            });
        }
        self.cancel_handle().reset();
        self.clear_kv();
        sampler.start(prompt);
        let n_batch = self.n_batch() as usize;
        let mut batch = Batch::new(n_batch.min(prompt.len()), 1);
        let start = Instant::now();
        let mut pos = 0i32;
        for chunk in prompt.chunks(n_batch) {
            batch.clear();
            let last = pos as usize + chunk.len() == prompt.len();
            batch.add_sequence(chunk, pos, 0, last)?;
            self.decode(&batch)?;
            pos += chunk.len() as i32;
        }
        let stats = GenerationStats {
            prompt_tokens: prompt.len(),
            prompt_time: start.elapsed(),
            ..GenerationStats::default()
        };
        batch.clear();
        Ok(Generation {
            ctx: self,
            sampler,
            options: options.clone(),
            batch,
            pos,
            to_decode: None,
            text: TextStream::new(&options.stop),
            finish: None,
            stats,
            gen_start: Instant::now(),
            done: false,
            logprobs: None,
        })
    }
}

impl Generation<'_> {
    /// Why it ended (`None` while running).
    pub fn finish_reason(&self) -> Option<FinishReason> {
        self.finish
    }

    /// Generation threads of the last decode ([`Context::threads_in_use`]).
    pub fn threads_in_use(&self) -> i32 {
        self.ctx.threads_in_use()
    }

    /// The log-probabilities of the token of the last piece, with
    /// [`GenerateOptions::with_logprobs`] (`None` without, or before the first piece).
    pub fn last_logprobs(&self) -> Option<&Logprobs> {
        self.logprobs.as_ref()
    }

    /// Counters so far (final once the iterator returned `None`).
    pub fn stats(&self) -> GenerationStats {
        self.stats
    }

    /// Runs to the end and returns the whole text.
    ///
    /// # Errors
    ///
    /// The first error of the iterator.
    pub fn collect_text(&mut self) -> Result<String> {
        let mut text = String::new();
        for piece in self.by_ref() {
            text.push_str(&piece?.text);
        }
        Ok(text)
    }

    fn end(&mut self, reason: FinishReason) {
        self.finish = Some(reason);
        self.done = true;
        self.stats.generation_time = self.gen_start.elapsed();
    }

    /// The held text, and `Stop` as the reason when a stop string ended it.
    fn finish_text(&mut self) -> String {
        let text = self.text.finish();
        if self.text.stopped() {
            self.end(FinishReason::Stop);
        }
        text
    }

    fn step(&mut self) -> Result<Option<Piece>> {
        if self.done {
            return Ok(None);
        }
        if self.ctx.cancel_handle().is_cancelled() {
            self.end(FinishReason::Cancelled);
            return Ok(None);
        }
        if self.stats.generated_tokens >= self.options.max_tokens {
            self.end(FinishReason::MaxTokens);
            return Ok(None);
        }
        if let Some(token) = self.to_decode.take() {
            if self.pos as u32 >= self.ctx.n_ctx() {
                self.end(FinishReason::ContextFull);
                return Ok(None);
            }
            self.batch.clear();
            self.batch.add(token, self.pos, &[0], true)?;
            match self.ctx.decode(&self.batch) {
                Ok(()) => {}
                Err(Error::Cancelled) => {
                    self.end(FinishReason::Cancelled);
                    return Ok(None);
                }
                Err(Error::ContextFull) => {
                    self.end(FinishReason::ContextFull);
                    return Ok(None);
                }
                Err(e) => {
                    self.done = true;
                    return Err(e);
                }
            }
            self.pos += 1;
        }
        let token = self.sampler.sample(self.ctx, -1)?;
        self.stats.generated_tokens += 1;
        if let Some(top) = self.options.logprobs {
            self.logprobs = Some(Logprobs::from_logits(self.ctx.logits(-1)?, token, top));
        }
        let model = std::sync::Arc::clone(self.ctx.model());
        if model.is_eog(token) {
            let text = self.finish_text();
            if self.finish.is_none() {
                self.end(FinishReason::EndOfGeneration);
            }
            return Ok((!text.is_empty()).then_some(Piece { token, text }));
        }
        let bytes = model.token_to_piece(token, self.options.render_special)?;
        let mut text = self.text.push(&bytes);
        if self.text.stopped() {
            self.end(FinishReason::Stop);
        }
        if self.finish.is_none() && self.stats.generated_tokens >= self.options.max_tokens {
            text.push_str(&self.finish_text());
            if self.finish.is_none() {
                self.end(FinishReason::MaxTokens);
            }
        }
        if self.finish.is_none() {
            self.to_decode = Some(token);
            self.stats.generation_time = self.gen_start.elapsed();
        }
        Ok(Some(Piece { token, text }))
    }
}

impl Iterator for Generation<'_> {
    type Item = Result<Piece>;

    fn next(&mut self) -> Option<Self::Item> {
        self.step().transpose()
    }
}
