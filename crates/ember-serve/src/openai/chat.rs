//! A chat request rendered by the model's chat template (llama.cpp's `common` library, as
//! llama-server), and the assistant's answer read back from the generated text: content,
//! `reasoning_content` and `tool_calls`, whole or as stream deltas.

use ember_llama::chat_template::ChatParser;
use serde_json::{json, Map, Value};

use super::request::{ChatFields, Message};
use crate::llm::{GenRequest, Llm};
use crate::ApiError;

/// How a chat's prompt ends (llama-server's and vLLM's fields).
#[derive(Debug, Clone, Copy, Default, serde::Deserialize, utoipa::ToSchema)]
pub struct PromptEnd {
    /// Open the assistant's turn after the messages (default true).
    pub(super) add_generation_prompt: Option<bool>,
    /// Continue the last message, which must be the assistant's, instead of opening a new
    /// turn (vLLM's name; a last assistant message is continued anyway unless
    /// `add_generation_prompt` is false).
    pub(super) continue_final_message: Option<bool>,
}

/// A chat rendered for generation.
pub(super) struct Rendered {
    /// The prompt text.
    pub(super) prompt: String,
    /// llama.cpp's settings of the rendering (JSON object, see
    /// [`ember_llama::chat_template::ChatTemplates::apply`]).
    settings: Value,
}

impl Rendered {
    /// The generation settings the template adds to a request: its stop strings, and the
    /// tool-call grammar (refused beside a grammar of the client's).
    pub(super) fn apply_to(&self, req: &mut GenRequest) -> Result<(), ApiError> {
        if let Some(stops) = self.settings["stop"].as_array() {
            for stop in stops.iter().filter_map(Value::as_str) {
                if !req.stops.iter().any(|s| s == stop) {
                    req.stops.push(stop.to_string());
                }
            }
        }
        if self.settings["grammar"]
            .as_str()
            .is_some_and(|g| !g.is_empty())
        {
            if req.grammar.is_some() {
                return Err(ApiError::bad_request(
                    "Cannot use custom grammar constraints with tools: drop response_format, json_schema or grammar, or the tools",
                ));
            }
            req.chat_grammar = Some(self.settings.to_string());
        }
        Ok(())
    }

    /// The reader of the answer, when the output needs one: tool calls may come, or the
    /// template's format marks reasoning or other structure. `None`: the text is the content.
    pub(super) fn reader(&self) -> Option<AnswerReader> {
        let tools = self.settings["parse_tool_calls"].as_bool().unwrap_or(false);
        let structured = self.settings["chat_format"].as_i64().unwrap_or(0) != 0;
        (tools || structured).then(|| {
            // Read once for the whole answer (the shim takes the parser's own fields).
            let parser = ChatParser::new(&self.settings.to_string())
                .map_err(|e| log::warn!("the chat output parser did not load ({e}): the answer is read as plain text"))
                .ok();
            let mut reader = AnswerReader {
                parser,
                text: String::new(),
                last: Answer::default(),
                base: Answer::default(),
                tool_ids: Vec::new(),
            };
            // A continued message: the parser reads the prefill as the answer's start, which
            // the client sent and does not get back (llama-server's `echo` off).
            if self.settings["is_continuation"].as_bool().unwrap_or(false) {
                reader.base = reader.parse(true);
                reader.last = reader.base.clone();
            }
            reader
        })
    }
}

/// Renders the chat of a request (messages, tools, tool_choice, how the prompt ends,
/// reasoning settings) with the model's template. llama.cpp's refusals become 400s.
pub(super) fn render(
    llm: &Llm,
    messages: &[Message],
    end: PromptEnd,
    fields: &ChatFields,
) -> Result<Rendered, ApiError> {
    if messages.is_empty() {
        return Err(ApiError::bad_request("messages is empty"));
    }
    let mut request = Map::new();
    request.insert("messages".into(), json!(messages));
    if let Some(v) = end.add_generation_prompt {
        request.insert("add_generation_prompt".into(), json!(v));
    }
    if let Some(v) = end.continue_final_message {
        request.insert("continue_final_message".into(), json!(v));
    }
    for (key, value) in [
        ("tools", fields.tools.as_ref().map(|t| json!(t))),
        ("tool_choice", fields.tool_choice.clone()),
        (
            "parallel_tool_calls",
            fields.parallel_tool_calls.map(|v| json!(v)),
        ),
        (
            "reasoning_format",
            fields.reasoning_format.clone().map(Value::String),
        ),
        (
            "reasoning_effort",
            fields.reasoning_effort.clone().map(Value::String),
        ),
        ("chat_template_kwargs", fields.chat_template_kwargs.clone()),
    ] {
        if let Some(value) = value.filter(|v| !v.is_null()) {
            request.insert(key.into(), value);
        }
    }
    let settings = llm
        .render_chat(&Value::Object(request))
        .map_err(|e| ApiError::bad_request(format!("{e:#}")))?;
    let prompt = settings["prompt"].as_str().unwrap_or_default().to_string();
    Ok(Rendered { prompt, settings })
}

/// The assistant's message as read from its text.
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct Answer {
    pub(super) content: String,
    pub(super) reasoning: String,
    /// `(name, arguments)` of each call, in order.
    pub(super) calls: Vec<(String, String)>,
}

/// Reads a generation's text into an [`Answer`], as the text grows (a stream) or once.
pub(super) struct AnswerReader {
    /// `None`: the settings' parser did not load, and the text is the content.
    parser: Option<ChatParser>,
    text: String,
    last: Answer,
    /// What the parser makes of no text (a continued message's prefill): not part of the
    /// answer.
    base: Answer,
    /// One id per call, made when it first appears.
    tool_ids: Vec<String>,
}

impl AnswerReader {
    /// The whole answer of a complete text.
    pub(super) fn read_all(mut self, text: &str) -> (Answer, Vec<String>) {
        self.text = text.to_string();
        let mut answer = self.parse(false);
        if let Some(rest) = answer.content.strip_prefix(self.base.content.as_str()) {
            answer.content = rest.to_string();
        }
        if let Some(rest) = answer.reasoning.strip_prefix(self.base.reasoning.as_str()) {
            answer.reasoning = rest.to_string();
        }
        self.ids_for(&answer);
        (answer, self.tool_ids)
    }

    /// Adds streamed text (`None`: the end) and returns what the answer gained, as an
    /// OpenAI stream `delta` (empty when nothing did).
    pub(super) fn delta(&mut self, text: Option<&str>) -> Map<String, Value> {
        let done = text.is_none();
        self.text.push_str(text.unwrap_or(""));
        let now = self.parse(!done);
        self.ids_for(&now);
        let mut delta = Map::new();
        if let Some(more) = now.content.strip_prefix(self.last.content.as_str()) {
            if !more.is_empty() {
                delta.insert("content".into(), json!(more));
            }
        }
        if let Some(more) = now.reasoning.strip_prefix(self.last.reasoning.as_str()) {
            if !more.is_empty() {
                delta.insert("reasoning_content".into(), json!(more));
            }
        }
        let mut calls = Vec::new();
        for (index, (name, arguments)) in now.calls.iter().enumerate() {
            match self.last.calls.get(index) {
                None => calls.push(
                    json!({"index": index, "id": self.tool_ids[index], "type": "function",
                    "function": {"name": name, "arguments": arguments}}),
                ),
                Some((_, before)) => {
                    if let Some(more) = arguments.strip_prefix(before.as_str()) {
                        if !more.is_empty() {
                            calls.push(json!({"index": index, "function": {"arguments": more}}));
                        }
                    }
                }
            }
        }
        if !calls.is_empty() {
            delta.insert("tool_calls".into(), Value::Array(calls));
        }
        // A partial parse can hold back or revise its tail; only growth is sent, so keep
        // the last state that the sent deltas describe.
        if now.content.starts_with(&self.last.content)
            && now.reasoning.starts_with(&self.last.reasoning)
        {
            self.last = now;
        }
        delta
    }

    fn ids_for(&mut self, answer: &Answer) {
        while self.tool_ids.len() < answer.calls.len() {
            self.tool_ids.push(format!(
                "call_{}",
                super::generation::NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            ));
        }
    }

    /// llama.cpp's parser over the text so far; a text it cannot read is content.
    fn parse(&self, partial: bool) -> Answer {
        let message = self
            .parser
            .as_ref()
            .and_then(|parser| parser.parse(&self.text, partial).ok())
            .and_then(|m| serde_json::from_str::<Value>(&m).ok());
        let Some(message) = message else {
            return Answer {
                content: self.text.clone(),
                ..Answer::default()
            };
        };
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        Answer {
            content: text(&message["content"]),
            reasoning: text(&message["reasoning_content"]),
            calls: message["tool_calls"]
                .as_array()
                .map(|calls| {
                    calls
                        .iter()
                        .map(|c| {
                            (
                                text(&c["function"]["name"]),
                                text(&c["function"]["arguments"]),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}
