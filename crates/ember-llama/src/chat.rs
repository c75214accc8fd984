//! Chat prompts: render role/content messages through a chat template.
//!
//! llama.cpp does not run Jinja here: it recognises its built-in templates, either by
//! name (`"chatml"`, `"gemma"`, `"llama3"`, ... see [`builtin_templates`]) or by matching
//! the template text stored in a GGUF.

use std::ffi::{c_char, CStr, CString};

use ember_llama_sys as sys;

use crate::error::{c_string, Error, Result};
use crate::model::Model;

/// One chat message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatMessage {
    /// `"system"`, `"user"` or `"assistant"`.
    pub role: String,
    /// The message text.
    pub content: String,
}

impl ChatMessage {
    /// A message with this role.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        ChatMessage {
            role: role.into(),
            content: content.into(),
        }
    }

    /// A `system` message.
    pub fn system(content: impl Into<String>) -> Self {
        ChatMessage::new("system", content)
    }

    /// A `user` message.
    pub fn user(content: impl Into<String>) -> Self {
        ChatMessage::new("user", content)
    }

    /// An `assistant` message.
    pub fn assistant(content: impl Into<String>) -> Self {
        ChatMessage::new("assistant", content)
    }
}

/// Names of llama.cpp's built-in chat templates.
pub fn builtin_templates() -> Vec<String> {
    // SAFETY: with a null output and length 0 it only returns the count.
    let n = unsafe { sys::llama_chat_builtin_templates(std::ptr::null_mut(), 0) };
    let Ok(n) = usize::try_from(n) else {
        return Vec::new();
    };
    let mut names: Vec<*const c_char> = vec![std::ptr::null(); n];
    // SAFETY: `names` has room for `n` pointers; llama.cpp fills them with static strings.
    let written = unsafe { sys::llama_chat_builtin_templates(names.as_mut_ptr(), n) };
    names
        .into_iter()
        .take(usize::try_from(written).unwrap_or(0))
        .filter(|p| !p.is_null())
        // SAFETY: non-null pointers to static NUL-terminated names.
        .map(|p| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
        .collect()
}

/// Renders `messages` with `template` (a built-in name or a template text llama.cpp
/// recognises). `add_assistant` ends the prompt with the opening of an assistant turn.
///
/// ```
/// use ember_llama::{apply_chat_template, ChatMessage};
/// let prompt = apply_chat_template("chatml", &[ChatMessage::user("Hi")], true)?;
/// assert!(prompt.contains("<|im_start|>user\nHi<|im_end|>"));
/// # Ok::<(), ember_llama::Error>(())
/// ```
///
/// # Errors
///
/// [`Error::ChatTemplate`] for a template llama.cpp does not know, [`Error::NulByte`].
pub fn apply_chat_template(
    template: &str,
    messages: &[ChatMessage],
    add_assistant: bool,
) -> Result<String> {
    let tmpl = c_string("chat template", template)?;
    let owned: Vec<(CString, CString)> = messages
        .iter()
        .map(|m| {
            Ok((
                c_string("chat role", &m.role)?,
                c_string("chat content", &m.content)?,
            ))
        })
        .collect::<Result<_>>()?;
    let raw: Vec<sys::llama_chat_message> = owned
        .iter()
        .map(|(role, content)| sys::llama_chat_message {
            role: role.as_ptr(),
            content: content.as_ptr(),
        })
        .collect();
    let total: usize = messages
        .iter()
        .map(|m| m.role.len() + m.content.len())
        .sum();
    let mut buf = vec![0u8; (total * 2 + 256).min(i32::MAX as usize)];
    let failed = || Error::ChatTemplate {
        template: template.chars().take(60).collect(),
    };
    for _ in 0..2 {
        let cap = i32::try_from(buf.len()).unwrap_or(i32::MAX);
        let mut n = 0;
        crate::barrier::guarded("llama_chat_apply_template", |err, len| {
            // SAFETY: `tmpl` and every message string are NUL-terminated and outlive the
            // call; `raw` holds `raw.len()` messages; `buf` has `cap` writable bytes; `n` and
            // `err` (`len` bytes) are writable.
            unsafe {
                sys::ember_chat_apply_template(
                    tmpl.as_ptr(),
                    raw.as_ptr(),
                    raw.len(),
                    add_assistant,
                    buf.as_mut_ptr().cast(),
                    cap,
                    &mut n,
                    err,
                    len,
                )
            }
        })?;
        let n = usize::try_from(n).map_err(|_| failed())?;
        if n <= buf.len() {
            buf.truncate(n);
            return String::from_utf8(buf).map_err(Error::from);
        }
        buf.resize(n, 0);
    }
    Err(failed())
}

impl Model {
    /// Renders `messages` with the model's chat template, or with the built-in template
    /// `name` when given (needed for GGUFs without a template).
    ///
    /// # Errors
    ///
    /// [`Error::NoChatTemplate`] when the model has none and no name is given; as
    /// [`apply_chat_template`].
    pub fn apply_chat_template(
        &self,
        name: Option<&str>,
        messages: &[ChatMessage],
        add_assistant: bool,
    ) -> Result<String> {
        let template = match name {
            Some(name) => name.to_string(),
            None => self.chat_template().ok_or(Error::NoChatTemplate)?,
        };
        apply_chat_template(&template, messages, add_assistant)
    }
}
