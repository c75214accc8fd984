//! [`Sampler`] chains, built with [`SamplerBuilder`]: how the next token is picked.

use std::ffi::CString;
use std::ptr::NonNull;
use std::sync::Arc;

use ember_llama_sys as sys;

use crate::context::Context;
use crate::error::{c_string, Error, Result};
use crate::model::Model;
use crate::token::Token;

/// One stage of a chain, kept as plain values until [`SamplerBuilder::build`].
#[derive(Clone, Debug)]
enum Stage {
    Greedy,
    Dist(u32),
    Temp(f32),
    TopK(i32),
    TopP(f32, usize),
    MinP(f32, usize),
    Typical(f32, usize),
    Penalties {
        last_n: i32,
        repeat: f32,
        frequency: f32,
        presence: f32,
    },
    Mirostat {
        seed: u32,
        tau: f32,
        eta: f32,
        m: i32,
    },
    MirostatV2 {
        seed: u32,
        tau: f32,
        eta: f32,
    },
    Grammar {
        gbnf: String,
        root: String,
    },
    LogitBias(Vec<(Token, f32)>),
    /// llama-server's grammar of a chat request (crate::chat_template): JSON settings.
    #[cfg(feature = "chat")]
    ChatGrammar(String),
}

impl Stage {
    /// Whether the stage constrains the output to a grammar (it runs first).
    fn is_grammar(&self) -> bool {
        match self {
            Stage::Grammar { .. } => true,
            #[cfg(feature = "chat")]
            Stage::ChatGrammar(_) => true,
            _ => false,
        }
    }

    /// Whether the stage picks a token (a chain must end with one).
    fn selects(&self) -> bool {
        matches!(
            self,
            Stage::Greedy | Stage::Dist(_) | Stage::Mirostat { .. } | Stage::MirostatV2 { .. }
        )
    }
}

/// Builds a [`Sampler`]: stages run in the order added, and the last one must select a
/// token (greedy, seeded random, or mirostat).
///
/// ```
/// use ember_llama::SamplerBuilder;
/// // Typical creative settings: penalties, then truncation, then temperature, then a draw.
/// let builder = SamplerBuilder::new()
///     .penalties(64, 1.1, 0.0, 0.0)
///     .top_k(40)
///     .top_p(0.95, 1)
///     .min_p(0.05, 1)
///     .temperature(0.8)
///     .seeded(42);
/// ```
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct SamplerBuilder {
    stages: Vec<Stage>,
    penalize_prompt: bool,
}

impl SamplerBuilder {
    /// An empty chain.
    pub fn new() -> Self {
        SamplerBuilder::default()
    }

    /// A chain that always picks the most likely token.
    ///
    /// ```
    /// let greedy = ember_llama::SamplerBuilder::greedy();
    /// ```
    pub fn greedy() -> Self {
        SamplerBuilder::new().select_greedy()
    }

    /// Selects the most likely token.
    pub fn select_greedy(mut self) -> Self {
        self.stages.push(Stage::Greedy);
        self
    }

    /// Draws a token at random from the distribution, with a fixed seed (reproducible).
    pub fn seeded(mut self, seed: u32) -> Self {
        self.stages.push(Stage::Dist(seed));
        self
    }

    /// Divides logits by `t` (`t <= 0` keeps only the most likely token).
    pub fn temperature(mut self, t: f32) -> Self {
        self.stages.push(Stage::Temp(t));
        self
    }

    /// Keeps the `k` most likely tokens (`k <= 0` keeps all).
    pub fn top_k(mut self, k: i32) -> Self {
        self.stages.push(Stage::TopK(k));
        self
    }

    /// Keeps the smallest set of tokens whose probability adds up to `p` (at least
    /// `min_keep`).
    pub fn top_p(mut self, p: f32, min_keep: usize) -> Self {
        self.stages.push(Stage::TopP(p, min_keep));
        self
    }

    /// Keeps tokens at least `p` times as likely as the most likely one.
    pub fn min_p(mut self, p: f32, min_keep: usize) -> Self {
        self.stages.push(Stage::MinP(p, min_keep));
        self
    }

    /// Locally typical sampling with mass `p`.
    pub fn typical(mut self, p: f32, min_keep: usize) -> Self {
        self.stages.push(Stage::Typical(p, min_keep));
        self
    }

    /// Repetition (`repeat`, 1.0 = off), frequency and presence (0.0 = off) penalties over
    /// the last `last_n` tokens.
    pub fn penalties(mut self, last_n: i32, repeat: f32, frequency: f32, presence: f32) -> Self {
        self.stages.push(Stage::Penalties {
            last_n,
            repeat,
            frequency,
            presence,
        });
        self
    }

    /// Adds `bias` to the logit of each listed token before the stages after it (OpenAI's
    /// `logit_bias`: -100 all but bans a token, 100 all but forces it; `f32::NEG_INFINITY`
    /// bans it). Ids must be in the vocabulary ([`SamplerBuilder::build`] checks).
    pub fn logit_bias(mut self, biases: impl IntoIterator<Item = (Token, f32)>) -> Self {
        self.stages
            .push(Stage::LogitBias(biases.into_iter().collect()));
        self
    }

    /// Whether a generation's prompt counts as text already seen: its tokens are fed to the
    /// stages after the grammar when the generation starts, so penalties count them, as
    /// llama-server does. Off by default (penalties see only generated tokens).
    pub fn penalize_prompt(mut self, on: bool) -> Self {
        self.penalize_prompt = on;
        self
    }

    /// Mirostat 1.0 (selects the token): target surprise `tau`, learning rate `eta`, `m`
    /// tokens for the estimate (100 in the paper).
    pub fn mirostat(mut self, seed: u32, tau: f32, eta: f32, m: i32) -> Self {
        self.stages.push(Stage::Mirostat { seed, tau, eta, m });
        self
    }

    /// Mirostat 2.0 (selects the token).
    pub fn mirostat_v2(mut self, seed: u32, tau: f32, eta: f32) -> Self {
        self.stages.push(Stage::MirostatV2 { seed, tau, eta });
        self
    }

    /// Constrains output to a GBNF grammar starting at rule `root` (usually `"root"`).
    ///
    /// Grammar stages always run first in the built chain, whatever the call order: a stage
    /// that narrows the candidates before the grammar (top-k, top-p, ...) can leave none the
    /// grammar accepts, and llama.cpp then throws a C++ exception that aborts the process.
    pub fn grammar(mut self, gbnf: &str, root: &str) -> Self {
        self.stages.push(Stage::Grammar {
            gbnf: gbnf.to_string(),
            root: root.to_string(),
        });
        self
    }

    /// Constrains output with the grammar of a chat request's settings, as
    /// [`ChatTemplates::apply`](crate::chat_template::ChatTemplates::apply) returns them
    /// (`grammar`, `grammar_type`, `grammar_lazy`, `grammar_triggers`, `preserved_tokens`,
    /// `generation_prompt`): a lazy grammar waits for its trigger (a tool call's opening
    /// tag) and lets free text through before it, as llama-server's sampling does. A
    /// grammar stage (see [`SamplerBuilder::grammar`]); the settings must hold a grammar.
    #[cfg(feature = "chat")]
    pub fn chat_grammar(mut self, settings: &str) -> Self {
        self.stages.push(Stage::ChatGrammar(settings.to_string()));
        self
    }

    /// Creates the chain for `model`'s vocabulary.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidSampler`] (no stage, a stage after the selecting one, or
    /// out-of-range values), [`Error::InvalidGrammar`], [`Error::NulByte`].
    pub fn build(&self, model: &Arc<Model>) -> Result<Sampler> {
        let Some(last) = self.stages.last() else {
            return Err(Error::InvalidSampler("the chain has no stage".into()));
        };
        if !last.selects() {
            return Err(Error::InvalidSampler(
                "the last stage must select a token (greedy, seeded or mirostat)".into(),
            ));
        }
        if self.stages[..self.stages.len() - 1]
            .iter()
            .any(Stage::selects)
        {
            return Err(Error::InvalidSampler(
                "only the last stage may select a token".into(),
            ));
        }
        for stage in &self.stages {
            validate(stage)?;
        }
        // SAFETY: plain value constructor.
        let mut params = unsafe { sys::llama_sampler_chain_default_params() };
        params.no_perf = true;
        // SAFETY: returns a new chain we own (freed in Sampler's Drop).
        let chain = unsafe { sys::llama_sampler_chain_init(params) };
        let chain = NonNull::new(chain)
            .ok_or_else(|| Error::InvalidSampler("llama.cpp could not create a chain".into()))?;
        // Grammar stages first (see `grammar`), the others in the order given.
        let (grammars, others): (Vec<&Stage>, Vec<&Stage>) =
            self.stages.iter().partition(|stage| stage.is_grammar());
        let mut sampler = Sampler {
            raw: chain,
            model: Arc::clone(model),
            prompt_from: self.penalize_prompt.then_some(grammars.len() as i32),
            prefill: Vec::new(),
            n_grammar: grammars.len() as i32,
        };
        for (index, stage) in grammars.into_iter().chain(others).enumerate() {
            let raw = stage_raw(stage, model)?;
            // SAFETY: `raw` is a new, non-null sampler; the chain takes ownership of it.
            unsafe { sys::llama_sampler_chain_add(sampler.raw.as_ptr(), raw.as_ptr()) };
            #[cfg(feature = "chat")]
            if let Stage::ChatGrammar(settings) = stage {
                let tokens = crate::chat_template::grammar_prefill(model, settings)?;
                if !tokens.is_empty() {
                    sampler.prefill.push((index as i32, tokens));
                }
            }
            #[cfg(not(feature = "chat"))]
            let _ = index;
        }
        sampler.feed_prefill()?;
        Ok(sampler)
    }
}

fn validate(stage: &Stage) -> Result<()> {
    let bad = |what: &str| Err(Error::InvalidSampler(what.to_string()));
    let finite = |v: f32| v.is_finite();
    match *stage {
        Stage::Temp(t) if !finite(t) => bad("temperature must be finite"),
        Stage::TopP(p, _) | Stage::MinP(p, _) | Stage::Typical(p, _)
            if !(0.0..=1.0).contains(&p) =>
        {
            bad("top-p, min-p and typical mass must be in 0..=1")
        }
        Stage::Penalties {
            repeat,
            frequency,
            presence,
            last_n,
        } if !(repeat > 0.0 && finite(repeat) && finite(frequency) && finite(presence))
            || last_n < -1 =>
        {
            bad("penalties: repeat must be > 0, all finite, last_n >= -1")
        }
        Stage::Mirostat { tau, eta, m, .. } if !(finite(tau) && finite(eta) && m > 0) => {
            bad("mirostat: tau and eta finite, m > 0")
        }
        Stage::MirostatV2 { tau, eta, .. } if !(finite(tau) && finite(eta)) => {
            bad("mirostat v2: tau and eta finite")
        }
        // -inf bans a token; NaN or +inf would poison every later stage's arithmetic.
        Stage::LogitBias(ref biases)
            if biases
                .iter()
                .any(|&(_, b)| b.is_nan() || b == f32::INFINITY) =>
        {
            bad("logit bias: each bias must be a number or -inf")
        }
        _ => Ok(()),
    }
}

fn stage_raw(stage: &Stage, model: &Model) -> Result<NonNull<sys::llama_sampler>> {
    let n_vocab = model.n_vocab();
    // SAFETY: (every arm) constructors with values validated above; each returns a new
    // sampler or null. The grammar one gets NUL-terminated strings that outlive the call
    // and the model's vocab, which the Sampler keeps alive through its Arc<Model>.
    let raw = unsafe {
        match stage {
            Stage::Greedy => sys::llama_sampler_init_greedy(),
            Stage::Dist(seed) => sys::llama_sampler_init_dist(*seed),
            Stage::Temp(t) => sys::llama_sampler_init_temp(*t),
            Stage::TopK(k) => sys::llama_sampler_init_top_k(*k),
            Stage::TopP(p, keep) => sys::llama_sampler_init_top_p(*p, *keep),
            Stage::MinP(p, keep) => sys::llama_sampler_init_min_p(*p, *keep),
            Stage::Typical(p, keep) => sys::llama_sampler_init_typical(*p, *keep),
            Stage::Penalties {
                last_n,
                repeat,
                frequency,
                presence,
            } => {
                sys::llama_sampler_init_penalties(n_vocab, *last_n, *repeat, *frequency, *presence)
            }
            Stage::Mirostat { seed, tau, eta, m } => {
                sys::llama_sampler_init_mirostat(n_vocab, *seed, *tau, *eta, *m)
            }
            Stage::MirostatV2 { seed, tau, eta } => {
                sys::llama_sampler_init_mirostat_v2(*seed, *tau, *eta)
            }
            Stage::LogitBias(biases) => {
                if let Some((token, _)) = biases.iter().find(|(t, _)| !(0..n_vocab).contains(&t.0))
                {
                    return Err(Error::InvalidSampler(format!(
                        "logit bias: token {} is not in the vocabulary (0..{n_vocab})",
                        token.0
                    )));
                }
                let raw: Vec<sys::llama_logit_bias> = biases
                    .iter()
                    .map(|&(token, bias)| sys::llama_logit_bias {
                        token: token.0,
                        bias,
                    })
                    .collect();
                // llama.cpp copies the array.
                sys::llama_sampler_init_logit_bias(n_vocab, raw.len() as i32, raw.as_ptr())
            }
            Stage::Grammar { gbnf, root } => {
                let gbnf_c: CString = c_string("grammar", gbnf)?;
                let root_c: CString = c_string("grammar root", root)?;
                let mut raw = std::ptr::null_mut();
                crate::barrier::guarded("llama_sampler_init_grammar", |err, len| {
                    sys::ember_sampler_init_grammar(
                        model.vocab_ptr(),
                        gbnf_c.as_ptr(),
                        root_c.as_ptr(),
                        &mut raw,
                        err,
                        len,
                    )
                })?;
                if raw.is_null() || gbnf.trim().is_empty() {
                    if !raw.is_null() {
                        sys::llama_sampler_free(raw);
                    }
                    return Err(Error::InvalidGrammar { root: root.clone() });
                }
                raw
            }
            #[cfg(feature = "chat")]
            Stage::ChatGrammar(settings) => {
                let settings = crate::chat_template::grammar_settings(settings)?;
                let mut raw = std::ptr::null_mut();
                crate::barrier::guarded("ember_chat_grammar_sampler", |err, len| {
                    sys::ember_chat_grammar_sampler(
                        model.vocab_ptr(),
                        settings.as_ptr(),
                        &mut raw,
                        err,
                        len,
                    )
                })?;
                if raw.is_null() {
                    return Err(Error::InvalidSampler(
                        "the chat settings hold no grammar: add the stage only when they do".into(),
                    ));
                }
                raw
            }
        }
    };
    NonNull::new(raw).ok_or_else(|| Error::InvalidSampler(format!("llama.cpp rejected {stage:?}")))
}

/// A sampler chain. `Send`; use one per generation stream.
#[derive(Debug)]
pub struct Sampler {
    raw: NonNull<sys::llama_sampler>,
    /// Keeps the vocabulary a grammar stage points into alive.
    model: Arc<Model>,
    /// With [`SamplerBuilder::penalize_prompt`]: the first stage after the grammars, from
    /// which [`Sampler::start`] feeds the prompt.
    prompt_from: Option<i32>,
    /// Tokens a grammar stage (by chain index) accepts after each reset: the generation
    /// prompt a chat template's grammar starts with ([`SamplerBuilder::chat_grammar`]).
    prefill: Vec<(i32, Vec<Token>)>,
    /// Grammar stages at the chain's start: sampled grammar-last (see `sample`).
    n_grammar: i32,
}

// SAFETY: the chain (and the stages it owns) is only used through `&mut self`; llama.cpp
// samplers keep no thread affinity. The grammar stage points into the vocabulary of the
// model this Sampler holds an Arc of, and Model is Sync.
unsafe impl Send for Sampler {}

impl Drop for Sampler {
    fn drop(&mut self) {
        // SAFETY: the chain came from llama_sampler_chain_init; freeing it frees its stages.
        unsafe { sys::llama_sampler_free(self.raw.as_ptr()) };
    }
}

impl Sampler {
    /// Picks the next token from the logits of batch entry `index` of the context's last
    /// decode (`-1` = last output) and records it in the chain's state (penalties, grammar).
    ///
    /// # Errors
    ///
    /// [`Error::NoOutput`] when the last decode has no output there.
    pub fn sample(&mut self, ctx: &Context, index: i32) -> Result<Token> {
        if ctx.model().n_vocab() != self.model.n_vocab() {
            return Err(Error::InvalidSampler(
                "the sampler was built for a model with another vocabulary".into(),
            ));
        }
        let i = ctx.output_index(index)?;
        let mut token = 0;
        // A grammar that rejects every candidate makes llama.cpp throw; the barrier turns
        // that into Error::Exception.
        if self.n_grammar > 0 {
            // As llama-server: the other stages pick, the grammars check that one token, and
            // only a token they reject makes the whole chain run with the grammars first. A
            // grammar over the whole vocabulary at every step costs ~30x the sampling.
            crate::barrier::guarded("llama_sampler_sample", |err, len| {
                // SAFETY: as below; the first `n_grammar` stages are the grammars (build puts
                // them first) and the chain owns them.
                unsafe {
                    sys::ember_sampler_sample_grammar_last(
                        self.raw.as_ptr(),
                        self.n_grammar,
                        ctx.as_ptr(),
                        i,
                        &mut token,
                        err,
                        len,
                    )
                }
            })?;
            return Ok(Token(token));
        }
        crate::barrier::guarded("llama_sampler_sample", |err, len| {
            // SAFETY: the chain ends with a selecting stage (checked in build), so llama.cpp's
            // assertion on the selection holds; `i` is an output of the last decode, so its
            // logits exist (llama.cpp asserts that too); `token` and `err` (`len` bytes) are
            // writable for the call.
            unsafe {
                sys::ember_sampler_sample(self.raw.as_ptr(), ctx.as_ptr(), i, &mut token, err, len)
            }
        })?;
        Ok(Token(token))
    }

    /// Resets the chain for a generation from `prompt`: with
    /// [`SamplerBuilder::penalize_prompt`], the stages after the grammar then take the
    /// prompt's tokens as seen (the grammar never does: it constrains the output only).
    pub fn start(&mut self, prompt: &[Token]) {
        self.reset();
        if let Err(e) = self.feed_prefill() {
            // The same tokens were accepted when the chain was built: not expected to fail.
            log::warn!("a chat grammar did not take its generation prompt again: {e}");
        }
        let Some(from) = self.prompt_from else { return };
        // SAFETY: valid chain, exclusively borrowed; `i` is below the chain's length, so
        // chain_get returns a stage the chain owns; accept takes any token id (the
        // generators checked the prompt's against the vocabulary).
        unsafe {
            let n = sys::llama_sampler_chain_n(self.raw.as_ptr());
            for i in from..n {
                let stage = sys::llama_sampler_chain_get(self.raw.as_ptr(), i);
                for &token in prompt {
                    sys::llama_sampler_accept(stage, token.0);
                }
            }
        }
    }

    /// Feeds each grammar stage the tokens it starts past (see `prefill`).
    fn feed_prefill(&mut self) -> Result<()> {
        for (index, tokens) in &self.prefill {
            // SAFETY: valid chain, exclusively borrowed; `index` is a stage the chain owns;
            // the tokens came from this vocabulary's tokenizer.
            let stage = unsafe { sys::llama_sampler_chain_get(self.raw.as_ptr(), *index) };
            for &token in tokens {
                crate::barrier::guarded("llama_sampler_accept", |err, len| {
                    // SAFETY: as above; the shim catches the grammar's exception.
                    unsafe { sys::ember_sampler_accept(stage, token.0, err, len) }
                })?;
            }
        }
        Ok(())
    }

    /// Resets the chain's state (penalty history, grammar, mirostat).
    pub fn reset(&mut self) {
        // SAFETY: valid chain, exclusively borrowed.
        unsafe { sys::llama_sampler_reset(self.raw.as_ptr()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Context, ContextParams, GenerateOptions, ModelParams};

    /// The chain order SamplerBuilder no longer builds (a narrowing stage before the grammar,
    /// as before 2b50421): top-k keeps one candidate, the grammar rejects it, greedy picks it
    /// anyway, and accepting it empties the grammar stack, so llama.cpp throws from
    /// `llama_sampler_sample`. Through the barrier that is an error; without it the C++
    /// exception reached Rust and aborted the process.
    #[test]
    fn an_exception_in_sampling_is_an_error_not_an_abort() {
        let Some(path) = std::env::var_os("EMBER_TEST_MODEL") else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "EMBER_TEST_MODEL not set"
            );
            eprintln!("skipped: EMBER_TEST_MODEL not set");
            return;
        };
        let model = Arc::new(Model::load(path, &ModelParams::default()).unwrap());
        let params = ContextParams::default().with_n_ctx(128).with_threads(2);
        let mut ctx = Context::new(&model, &params).unwrap();
        // SAFETY: a new chain we own; freed by the Sampler's Drop.
        let chain =
            unsafe { sys::llama_sampler_chain_init(sys::llama_sampler_chain_default_params()) };
        let mut sampler = Sampler {
            raw: NonNull::new(chain).unwrap(),
            model: Arc::clone(&model),
            prompt_from: None,
            prefill: Vec::new(),
            n_grammar: 0,
        };
        let grammar = Stage::Grammar {
            gbnf: "root ::= \"\u{1F600}\u{1F600}\"".into(),
            root: "root".into(),
        };
        for stage in [Stage::TopK(1), grammar, Stage::Greedy] {
            let raw = stage_raw(&stage, &model).unwrap();
            // SAFETY: `raw` is a new, non-null sampler; the chain takes ownership of it.
            unsafe { sys::llama_sampler_chain_add(sampler.raw.as_ptr(), raw.as_ptr()) };
        }
        let options = GenerateOptions::default().with_max_tokens(4);
        let mut generation = ctx
            .generate(&mut sampler, "The weather today is", &options)
            .unwrap();
        match generation.next().expect("a first step") {
            Err(Error::Exception { call, message }) => {
                assert_eq!(call, "llama_sampler_sample");
                assert!(message.contains("grammar"), "{message}");
            }
            other => panic!("expected the barrier's Error::Exception, got {other:?}"),
        }
        drop(generation);
        // The context still works with a sound chain.
        let mut greedy = SamplerBuilder::greedy().build(&model).unwrap();
        let text = ctx
            .generate(&mut greedy, "The weather today is", &options)
            .unwrap()
            .collect_text()
            .unwrap();
        assert!(!text.is_empty());
    }
}
