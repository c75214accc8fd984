//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong in `ember-llama`. Every failure of the safe API is one of
/// these: bad input never panics or aborts the process.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No variant of ggml's CPU backend can run: `EMBER_LLAMA_CPU_VARIANT` names one this
    /// binary lacks or this CPU cannot run, or none of the binary's runs here.
    #[error("cannot choose a CPU variant: {reason}")]
    CpuVariant {
        /// What is missing, and which variants would run.
        reason: String,
    },
    /// The model file does not exist or cannot be opened.
    // The I/O error is in the message and is not also a `source()`: `{:#}` (anyhow) would
    // print it twice.
    #[error("cannot open model file {path}: {error}")]
    ModelFile {
        /// The path given.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The file is not a well-formed GGUF file (checked before llama.cpp sees it).
    #[error("{path} is not a valid GGUF file: {reason}")]
    InvalidGguf {
        /// The path given.
        path: PathBuf,
        /// What is wrong, with the byte offset where it was found.
        reason: String,
    },
    /// llama.cpp refused to load the model (unsupported architecture, missing tensors, ...).
    #[error("llama.cpp could not load the model {path} (enable `log` output for its reason)")]
    ModelLoad {
        /// The path given.
        path: PathBuf,
    },
    /// A string passed to llama.cpp holds a NUL byte.
    #[error("{what} holds a NUL byte at offset {offset}")]
    NulByte {
        /// Which argument.
        what: &'static str,
        /// Byte offset of the NUL.
        offset: usize,
    },
    /// A parameter is out of its valid range.
    #[error("invalid parameter {name}: {reason}")]
    InvalidParameter {
        /// The parameter.
        name: &'static str,
        /// Why it is rejected.
        reason: String,
    },
    /// llama.cpp could not create a context with these parameters.
    #[error("llama.cpp could not create a context (n_ctx {n_ctx}, n_batch {n_batch}); enable `log` output for its reason")]
    ContextCreate {
        /// Requested context size.
        n_ctx: u32,
        /// Requested batch size.
        n_batch: u32,
    },
    /// ggml could not start the context's CPU worker threads.
    #[error("ggml could not start a thread pool of {n_threads} threads: lower the thread count or raise the process's thread limit")]
    ThreadPool {
        /// Requested threads.
        n_threads: i32,
    },
    /// The kernel refused a thread's scheduling priority.
    #[error("cannot give the decode threads {priority} priority: {reason}")]
    ThreadPriority {
        /// The priority asked for (`background`).
        priority: &'static str,
        /// What the kernel said.
        reason: String,
    },
    /// The model was loaded with `vocab_only` and has no weights.
    #[error("the model was loaded vocabulary-only: {what} needs the weights")]
    VocabOnly {
        /// The operation attempted.
        what: &'static str,
    },
    /// A token id is not in the vocabulary.
    #[error("token id {token} is outside the vocabulary (size {n_vocab})")]
    TokenOutOfRange {
        /// The token id.
        token: i32,
        /// Vocabulary size.
        n_vocab: i32,
    },
    /// Tokenizing failed (the text is too long for llama.cpp's 32-bit counts).
    #[error("tokenization failed for a text of {len} bytes")]
    Tokenize {
        /// Length of the text in bytes.
        len: usize,
    },
    /// Detokenized text is not valid UTF-8.
    #[error("detokenized text is not valid UTF-8: {0}")]
    InvalidUtf8(#[from] std::string::FromUtf8Error),
    /// The prompt (plus what is already in the context) does not fit the context window.
    #[error("prompt of {tokens} tokens does not fit the context of {n_ctx} tokens ({used} already used)")]
    PromptTooLong {
        /// Prompt length in tokens.
        tokens: usize,
        /// Positions already used in the sequence.
        used: usize,
        /// Context size.
        n_ctx: u32,
    },
    /// A [`Batch`](crate::Batch) is full.
    #[error("batch is full: capacity {capacity} tokens")]
    BatchFull {
        /// Capacity in tokens.
        capacity: usize,
    },
    /// A batch holds more tokens than the context's `n_batch` (or is empty).
    #[error("batch of {tokens} tokens does not fit the context's batch size {n_batch}")]
    BatchSize {
        /// Tokens in the batch.
        tokens: usize,
        /// The context's `n_batch`.
        n_batch: u32,
    },
    /// A sequence id is outside `0..n_seq_max`.
    #[error("sequence id {seq} is outside 0..{n_seq_max}")]
    SequenceOutOfRange {
        /// The sequence id.
        seq: i32,
        /// The context's `n_seq_max`.
        n_seq_max: u32,
    },
    /// The context has no logits (or embeddings) for this batch index.
    #[error("no output for batch index {index}: the last decoded batch did not request it")]
    NoOutput {
        /// The batch index.
        index: i32,
    },
    /// `llama_decode` found no room in the KV cache for the batch.
    #[error("the KV cache has no room for the batch (context full)")]
    ContextFull,
    /// Every sequence of a [`BatchGenerator`](crate::BatchGenerator) is running.
    #[error(
        "all {n_seq_max} sequences of the batch generator are running: wait for one to finish"
    )]
    NoFreeSequence {
        /// The generator's sequence count.
        n_seq_max: u32,
    },
    /// The KV cache shared by a [`BatchGenerator`](crate::BatchGenerator)'s sequences has no
    /// room left for this one; the others go on.
    #[error("the KV cache ({n_ctx} tokens over all sequences) is full; this sequence held {tokens} tokens: run fewer sequences at once or give the context more tokens")]
    KvCacheFull {
        /// Tokens the sequence held.
        tokens: usize,
        /// The context's size over all sequences.
        n_ctx: u32,
    },
    /// A batched decode failed for another sequence's reason; every sequence in it ends.
    #[error("the batched decode failed: {reason}")]
    BatchFailed {
        /// The first sequence's error.
        reason: String,
    },
    /// A decode was cancelled through a [`CancelHandle`](crate::CancelHandle).
    #[error("decoding was cancelled")]
    Cancelled,
    /// `llama_decode` failed with this return code.
    #[error("llama_decode failed with code {code}")]
    Decode {
        /// llama.cpp's return code.
        code: i32,
    },
    /// llama.cpp threw a C++ exception in `call` (caught by the barrier in ember-llama-sys):
    /// for example a grammar that no candidate token satisfies. The context or sampler may
    /// hold partial state: reset it (or make a new one) before using it again.
    #[error("llama.cpp failed in {call}: {message}")]
    Exception {
        /// The llama.cpp function that threw.
        call: &'static str,
        /// The exception's message.
        message: String,
    },
    /// A sequence's KV state could not be written to or read from `path` (llama.cpp's session
    /// file format; it reports no more than that the call failed).
    #[error("cannot {action} the sequence state file {path}: {reason}")]
    SequenceState {
        /// `"write"` or `"read"`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// What went wrong, as far as known.
        reason: String,
    },
    /// A sampler chain is not usable (for example, it selects no token).
    #[error("invalid sampler chain: {0}")]
    InvalidSampler(String),
    /// llama.cpp rejected a GBNF grammar.
    #[error(
        "invalid GBNF grammar (root rule `{root}`); enable `log` output for the parser's message"
    )]
    InvalidGrammar {
        /// The root rule name given.
        root: String,
    },
    /// The model has no chat template and none was named.
    #[error("the model has no chat template: name a built-in one (e.g. \"chatml\", \"gemma\")")]
    NoChatTemplate,
    /// llama.cpp does not know this chat template.
    #[error("chat template not supported by llama.cpp: {template}")]
    ChatTemplate {
        /// The template (or its first characters).
        template: String,
    },
    /// The context was not created in embeddings mode.
    #[error(
        "the context was not created with embeddings enabled (ContextParams::with_embeddings)"
    )]
    NotEmbeddingContext,
    /// llama.cpp returned no embedding.
    #[error("llama.cpp returned no embeddings for sequence {seq}")]
    NoEmbeddings {
        /// The sequence.
        seq: i32,
    },
}

impl Error {
    /// The message for whoever sent the input that failed: llama.cpp's own for
    /// [`Error::Exception`] (it names what in a template, schema or grammar it refused; the
    /// call's name means nothing to them), this error's text otherwise.
    pub fn input_message(&self) -> String {
        match self {
            Error::Exception { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A Rust string as a C string, or [`Error::NulByte`].
pub(crate) fn c_string(what: &'static str, text: &str) -> Result<std::ffi::CString> {
    std::ffi::CString::new(text).map_err(|e| Error::NulByte {
        what,
        offset: e.nul_position(),
    })
}
