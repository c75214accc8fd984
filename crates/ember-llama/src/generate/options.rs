//! [`GenerateOptions`]: what a generation stops at and how its prompt and output treat
//! special tokens.

/// Options of a generation.
///
/// ```
/// let options = ember_llama::GenerateOptions::default()
///     .with_max_tokens(32)
///     .with_stop("\n\n");
/// assert_eq!(options.max_tokens(), 32);
/// ```
#[derive(Clone, Debug)]
pub struct GenerateOptions {
    pub(super) max_tokens: usize,
    pub(super) stop: Vec<String>,
    pub(super) add_special: bool,
    pub(super) parse_special: bool,
    pub(super) render_special: bool,
    pub(super) logprobs: Option<usize>,
}

impl Default for GenerateOptions {
    /// 256 tokens, no stop strings, BOS added and special-token text parsed in the prompt
    /// (as llama.cpp's examples do), special tokens not rendered in the output.
    fn default() -> Self {
        GenerateOptions {
            max_tokens: 256,
            stop: Vec::new(),
            add_special: true,
            parse_special: true,
            render_special: false,
            logprobs: None,
        }
    }
}

impl GenerateOptions {
    /// Most tokens to generate.
    ///
    /// ```
    /// let options = ember_llama::GenerateOptions::default().with_max_tokens(8);
    /// assert_eq!(options.max_tokens(), 8);
    /// ```
    #[must_use]
    pub fn with_max_tokens(mut self, n: usize) -> Self {
        self.max_tokens = n;
        self
    }

    /// Adds a stop string: generation ends where it appears, and it is never emitted.
    /// Empty strings are ignored.
    ///
    /// ```
    /// let options = ember_llama::GenerateOptions::default().with_stop("User:");
    /// assert_eq!(options.stops(), ["User:"]);
    /// ```
    #[must_use]
    pub fn with_stop(mut self, stop: impl Into<String>) -> Self {
        let stop = stop.into();
        if !stop.is_empty() {
            self.stop.push(stop);
        }
        self
    }

    /// Whether BOS/EOS are added to the prompt as the model asks (default `true`).
    ///
    /// ```
    /// let options = ember_llama::GenerateOptions::default().with_add_special(false);
    /// ```
    #[must_use]
    pub fn with_add_special(mut self, on: bool) -> Self {
        self.add_special = on;
        self
    }

    /// Whether special-token text in the prompt (such as `<start_of_turn>`) becomes those
    /// tokens (default `true`).
    ///
    /// ```
    /// let options = ember_llama::GenerateOptions::default().with_parse_special(false);
    /// ```
    #[must_use]
    pub fn with_parse_special(mut self, on: bool) -> Self {
        self.parse_special = on;
        self
    }

    /// Whether generated special tokens are rendered as their text (default `false`).
    ///
    /// ```
    /// let options = ember_llama::GenerateOptions::default().with_render_special(true);
    /// ```
    #[must_use]
    pub fn with_render_special(mut self, on: bool) -> Self {
        self.render_special = on;
        self
    }

    /// Reports each sampled token's log-probability and the `top` most likely tokens at
    /// its step ([`Logprobs`](crate::Logprobs)): in [`BatchEvent::Piece`](crate::BatchEvent)
    /// and [`Generation::last_logprobs`](crate::Generation::last_logprobs). Off by default
    /// (it costs a softmax over the vocabulary per token).
    ///
    /// ```
    /// let options = ember_llama::GenerateOptions::default().with_logprobs(5);
    /// assert_eq!(options.logprobs(), Some(5));
    /// ```
    #[must_use]
    pub fn with_logprobs(mut self, top: usize) -> Self {
        self.logprobs = Some(top);
        self
    }

    /// How many alternatives [`GenerateOptions::with_logprobs`] asked for (`None`: off).
    pub fn logprobs(&self) -> Option<usize> {
        self.logprobs
    }

    /// Most tokens to generate.
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// The stop strings.
    pub fn stops(&self) -> &[String] {
        &self.stop
    }

    /// Whether generated special tokens are rendered as their text.
    pub fn render_special(&self) -> bool {
        self.render_special
    }
}
