//! The model's own Jinja chat template, tool calls and reasoning, through llama.cpp's
//! `common` library (feature `chat`): what llama-server does with `--jinja`, from the same
//! code.
//!
//! [`chat`](crate::chat) renders only llama.cpp's built-in templates, recognised by name or
//! by their text. [`ChatTemplates`] runs the GGUF's `tokenizer.chat_template` (or any Jinja
//! source), with tools, and gives what a server needs to generate and read the answer:
//! - [`ChatTemplates::apply`]: an OpenAI chat request (messages, tools, tool_choice,
//!   response_format, reasoning settings) → the prompt and its generation settings
//!   (grammar, lazy-grammar triggers, extra stops, the output parser), as JSON in llama-server's
//!   field names;
//! - [`ChatParser`] (or [`parse_output`] for one text): generated text → an OpenAI
//!   assistant message (content, `reasoning_content`, `tool_calls`), per model family;
//! - [`SamplerBuilder::chat_grammar`](crate::SamplerBuilder::chat_grammar): the tool-call or
//!   output grammar of those settings, lazy where the template asks for it;
//! - [`json_schema_to_grammar`]: JSON Schema → GBNF, llama.cpp's converter.
//!
//! The requests and results are JSON text: they are OpenAI's and llama-server's documents,
//! which the caller already holds as JSON.

use std::ffi::{c_char, CStr, CString};
use std::ptr::NonNull;
use std::sync::Arc;

use ember_llama_sys as sys;

use crate::error::{c_string, Result};
use crate::model::Model;

/// A model's chat templates, ready to render. `Send`; rendering takes `&self`.
#[derive(Debug)]
pub struct ChatTemplates {
    raw: NonNull<sys::ember_chat_templates>,
    /// The templates hold the model's BOS/EOS texts; the model outlives them anyway.
    _model: Arc<Model>,
}

// SAFETY: the templates are built once and only read afterwards (rendering copies what it
// needs into each call's own state); nothing in them is tied to the creating thread.
unsafe impl Send for ChatTemplates {}

impl ChatTemplates {
    /// The model's templates (`tokenizer.chat_template` and its named variants such as
    /// `tool_use`), or `template` instead when given: Jinja source, or the name of one of
    /// llama.cpp's built-in templates (`"chatml"`, ...).
    ///
    /// # Errors
    ///
    /// [`Error::Exception`](crate::Error::Exception) when the template does not parse.
    pub fn new(model: &Arc<Model>, template: Option<&str>) -> Result<Self> {
        let template = template.map(|t| c_string("chat template", t)).transpose()?;
        let mut raw = std::ptr::null_mut();
        crate::barrier::guarded("common_chat_templates_init", |err, len| {
            // SAFETY: the model is alive; the template is NUL-terminated or null; `raw`
            // receives a new object we own (freed in Drop).
            unsafe {
                sys::ember_chat_templates_init(
                    model.as_ptr(),
                    template.as_ref().map_or(std::ptr::null(), |t| t.as_ptr()),
                    &mut raw,
                    err,
                    len,
                )
            }
        })?;
        let raw = NonNull::new(raw).ok_or_else(|| crate::Error::Exception {
            call: "common_chat_templates_init",
            message: "no templates returned".into(),
        })?;
        Ok(ChatTemplates {
            raw,
            _model: Arc::clone(model),
        })
    }

    /// JSON object: `source` (the template's text), `tool_use_source` (or null), `caps` (what
    /// the template supports: tools, tool_calls, system role, ...), `supports_thinking`.
    ///
    /// # Errors
    ///
    /// [`Error::Exception`](crate::Error::Exception) when rendering the probe fails.
    pub fn info(&self) -> Result<String> {
        take_string("ember_chat_templates_info", |out, err, len| {
            // SAFETY: `raw` is valid for self's lifetime; `out` receives a malloc'd string.
            unsafe { sys::ember_chat_templates_info(self.raw.as_ptr(), out, err, len) }
        })
    }

    /// Renders an OpenAI chat request (`request`: a JSON object with `messages`, and
    /// optionally `tools`, `tool_choice`, `response_format`, `json_schema`, `grammar`,
    /// `parallel_tool_calls`, `add_generation_prompt`, `continue_final_message`,
    /// `reasoning_format`, `reasoning_effort`, `chat_template_kwargs`) with the server's
    /// `options` (`use_jinja`, `prefill_assistant`, `reasoning_format`, `enable_thinking`,
    /// `chat_template_kwargs`) into a JSON object: `prompt`, `stop`, `grammar`,
    /// `grammar_type`, `grammar_lazy`, `grammar_triggers`, `preserved_tokens`,
    /// `generation_prompt`, `chat_format`, `chat_parser`, `parse_tool_calls`,
    /// `reasoning_format`, `is_continuation`: the settings [`parse_output`] and
    /// [`SamplerBuilder::chat_grammar`](crate::SamplerBuilder::chat_grammar) take.
    ///
    /// # Errors
    ///
    /// [`Error::Exception`](crate::Error::Exception) with llama.cpp's message when the
    /// request is invalid (a client error) or the template fails to render it.
    pub fn apply(&self, request: &str, options: &str) -> Result<String> {
        let request = c_string("chat request", request)?;
        let options = c_string("chat options", options)?;
        take_string("common_chat_templates_apply", |out, err, len| {
            // SAFETY: valid templates and NUL-terminated strings; `out` receives a malloc'd
            // string.
            unsafe {
                sys::ember_chat_templates_apply(
                    self.raw.as_ptr(),
                    request.as_ptr(),
                    options.as_ptr(),
                    out,
                    err,
                    len,
                )
            }
        })
    }
}

impl Drop for ChatTemplates {
    fn drop(&mut self) {
        // SAFETY: `raw` came from ember_chat_templates_init and is freed once.
        unsafe { sys::ember_chat_templates_free(self.raw.as_ptr()) }
    }
}

/// The output parser of one rendering: reads generated text into an OpenAI assistant
/// message. The settings are read once, so a stream parses its growing text on each chunk
/// without reading them again. `Send`; parsing takes `&self`.
#[derive(Debug)]
pub struct ChatParser {
    raw: NonNull<sys::ember_chat_parser>,
}

// SAFETY: the parser's settings are built once and only read by `common_chat_parse`, which
// keeps its state per call; nothing in them is tied to the creating thread.
unsafe impl Send for ChatParser {}

impl ChatParser {
    /// The parser of [`ChatTemplates::apply`]'s result (`settings`: its JSON, or any object
    /// with `chat_format`, `chat_parser`, `generation_prompt`, `reasoning_format`,
    /// `parse_tool_calls`, `is_continuation`).
    ///
    /// # Errors
    ///
    /// [`Error::Exception`](crate::Error::Exception) when the settings are not a JSON object
    /// or their `chat_parser` does not load.
    pub fn new(settings: &str) -> Result<Self> {
        let settings = c_string("chat parser settings", settings)?;
        let mut raw = std::ptr::null_mut();
        crate::barrier::guarded("ember_chat_parser_init", |err, len| {
            // SAFETY: NUL-terminated settings; `raw` receives a new object we own (freed in
            // Drop).
            unsafe { sys::ember_chat_parser_init(settings.as_ptr(), &mut raw, err, len) }
        })?;
        let raw = NonNull::new(raw).ok_or_else(|| crate::Error::Exception {
            call: "ember_chat_parser_init",
            message: "no parser returned".into(),
        })?;
        Ok(ChatParser { raw })
    }

    /// Generated `text` as an OpenAI assistant message: `{"role": "assistant", "content",
    /// "reasoning_content", "tool_calls"}`. With `partial`, `text` may stop anywhere (a
    /// stream so far).
    ///
    /// # Errors
    ///
    /// [`Error::Exception`](crate::Error::Exception) when a complete text does not parse.
    pub fn parse(&self, text: &str, partial: bool) -> Result<String> {
        take_string("common_chat_parse", |out, err, len| {
            // SAFETY: the parser is alive; `text` is passed with its length (it may hold NUL
            // bytes); `out` receives a malloc'd string.
            unsafe {
                sys::ember_chat_parser_parse(
                    self.raw.as_ptr(),
                    text.as_ptr().cast(),
                    text.len(),
                    partial,
                    out,
                    err,
                    len,
                )
            }
        })
    }
}

impl Drop for ChatParser {
    fn drop(&mut self) {
        // SAFETY: `raw` came from ember_chat_parser_init and is freed once.
        unsafe { sys::ember_chat_parser_free(self.raw.as_ptr()) }
    }
}

/// [`ChatParser::new`] then [`ChatParser::parse`], for one text.
///
/// # Errors
///
/// As those two.
pub fn parse_output(settings: &str, text: &str, partial: bool) -> Result<String> {
    ChatParser::new(settings)?.parse(text, partial)
}

/// JSON Schema (`schema`, JSON text) → a GBNF grammar whose root rule accepts exactly the
/// JSON documents valid against it, with llama.cpp's `json-schema-to-grammar` (`$ref`/`$defs`,
/// `anyOf`/`oneOf`/`allOf`, `pattern`, `minimum`/`maximum`, string and array lengths,
/// `additionalProperties`, `enum`/`const`, formats).
///
/// # Errors
///
/// [`Error::Exception`](crate::Error::Exception) naming what the converter does not support.
pub fn json_schema_to_grammar(schema: &str) -> Result<String> {
    let schema = c_string("JSON schema", schema)?;
    take_string("json_schema_to_grammar", |out, err, len| {
        // SAFETY: NUL-terminated schema; `out` receives a malloc'd string.
        unsafe { sys::ember_json_schema_to_grammar(schema.as_ptr(), out, err, len) }
    })
}

/// Runs a shim call that returns a malloc'd string in `out`, and takes it.
fn take_string(
    what: &'static str,
    call: impl FnOnce(*mut *mut c_char, *mut c_char, usize) -> i32,
) -> Result<String> {
    let mut out: *mut c_char = std::ptr::null_mut();
    crate::barrier::guarded(what, |err, len| call(&mut out, err, len))?;
    if out.is_null() {
        return Ok(String::new());
    }
    // SAFETY: the shim returned a NUL-terminated malloc'd string, freed right after copying.
    let text = unsafe { CStr::from_ptr(out) }
        .to_string_lossy()
        .into_owned();
    // SAFETY: `out` came from the shim's malloc and is freed once.
    unsafe { sys::ember_chat_string_free(out) };
    Ok(text)
}

/// The generation-prompt tokens the grammar of `settings` starts past (see
/// `ember_chat_grammar_prefill`).
pub(crate) fn grammar_prefill(model: &Model, settings: &str) -> Result<Vec<crate::Token>> {
    let settings = grammar_settings(settings)?;
    let mut tokens = vec![0; 64];
    loop {
        let mut n = 0usize;
        crate::barrier::guarded("ember_chat_grammar_prefill", |err, len| {
            // SAFETY: valid vocabulary and NUL-terminated settings; at most `tokens.len()`
            // tokens are written into `tokens`.
            unsafe {
                sys::ember_chat_grammar_prefill(
                    model.vocab_ptr(),
                    settings.as_ptr(),
                    tokens.as_mut_ptr(),
                    tokens.len(),
                    &mut n,
                    err,
                    len,
                )
            }
        })?;
        if n <= tokens.len() {
            tokens.truncate(n);
            return Ok(tokens.into_iter().map(crate::Token).collect());
        }
        tokens = vec![0; n];
    }
}

/// The settings as a C string, for [`SamplerBuilder::chat_grammar`](crate::SamplerBuilder::chat_grammar).
pub(crate) fn grammar_settings(settings: &str) -> Result<CString> {
    c_string("chat grammar settings", settings)
}
