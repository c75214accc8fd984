//! [`Model`]: loaded weights and vocabulary, shared by every context; tokenizer and
//! metadata.

pub mod params;

use std::ffi::{c_char, CStr};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;

use ember_llama_sys as sys;

use crate::backend;
use crate::error::{c_string, Error, Result};
use crate::gguf;
use crate::token::Token;

pub use params::ModelParams;

/// A loaded GGUF model. Immutable after loading: `Send + Sync`, share it with `Arc` and
/// create one [`Context`](crate::Context) per thread.
#[derive(Debug)]
pub struct Model {
    raw: NonNull<sys::llama_model>,
    vocab: NonNull<sys::llama_vocab>,
    n_vocab: i32,
    vocab_only: bool,
    path: PathBuf,
}

// SAFETY: a llama_model is never mutated after llama_model_load_from_file returns: contexts
// only read its weights, and llama.h documents tokenization (the only vocab access here) as
// thread-safe. The pointer is owned by this struct alone and freed once in Drop.
unsafe impl Send for Model {}
// SAFETY: see Send; every method takes `&self` and calls only read-only llama.cpp functions
// (metadata getters, tokenizer, token pieces) that llama.cpp's server also calls from many
// threads at once on one model.
unsafe impl Sync for Model {}

impl Drop for Model {
    fn drop(&mut self) {
        // SAFETY: `raw` came from llama_model_load_from_file and is freed exactly once; every
        // Context holds an Arc<Model>, so none outlives it.
        unsafe { sys::llama_model_free(self.raw.as_ptr()) };
    }
}

/// Special tokens of a vocabulary (`None` where the model defines none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpecialTokens {
    /// Beginning of sequence.
    pub bos: Option<Token>,
    /// End of sequence.
    pub eos: Option<Token>,
    /// End of turn.
    pub eot: Option<Token>,
    /// Sentence separator.
    pub sep: Option<Token>,
    /// Newline.
    pub nl: Option<Token>,
    /// Padding.
    pub pad: Option<Token>,
    /// Whether tokenizing with `add_special` prepends BOS.
    pub add_bos: bool,
    /// Whether tokenizing with `add_special` appends EOS.
    pub add_eos: bool,
}

impl Model {
    /// Loads a GGUF model.
    ///
    /// The file is checked in Rust first (see [`gguf::validate`]), so a damaged file is an
    /// [`Error::InvalidGguf`], never an abort inside llama.cpp.
    ///
    /// # Errors
    ///
    /// [`Error::ModelFile`] (missing or unreadable), [`Error::InvalidGguf`],
    /// [`Error::ModelLoad`] (llama.cpp refused it), [`Error::NulByte`] in the path,
    /// [`Error::CpuVariant`] (no CPU variant can run, see [`crate::cpu`]).
    pub fn load(path: impl AsRef<Path>, params: &ModelParams) -> Result<Model> {
        let path = path.as_ref();
        backend::init()?;
        gguf::validate(path)?;
        let c_path = c_string("model path", &path.to_string_lossy())?;
        let mut raw = std::ptr::null_mut();
        crate::barrier::guarded("llama_model_load_from_file", |err, len| {
            // SAFETY: `c_path` is NUL-terminated and outlives the call; the params' pointers
            // are all null (ModelParams never sets them); `raw` and `err` (`len` bytes) are
            // writable. Leaves `raw` null on failure.
            unsafe {
                sys::ember_model_load_from_file(c_path.as_ptr(), params.raw, &mut raw, err, len)
            }
        })?;
        let raw = NonNull::new(raw).ok_or_else(|| Error::ModelLoad {
            path: path.to_path_buf(),
        })?;
        // SAFETY: `raw` is a valid model; the vocab lives inside it as long as it does.
        let vocab = unsafe { sys::llama_model_get_vocab(raw.as_ptr()) };
        let Some(vocab) = NonNull::new(vocab.cast_mut()) else {
            // SAFETY: `raw` is valid and not yet owned by a Model.
            unsafe { sys::llama_model_free(raw.as_ptr()) };
            return Err(Error::ModelLoad {
                path: path.to_path_buf(),
            });
        };
        // SAFETY: `vocab` is valid.
        let n_vocab = unsafe { sys::llama_vocab_n_tokens(vocab.as_ptr()) };
        Ok(Model {
            raw,
            vocab,
            n_vocab,
            vocab_only: params.vocab_only(),
            path: path.to_path_buf(),
        })
    }

    pub(crate) fn as_ptr(&self) -> *mut sys::llama_model {
        self.raw.as_ptr()
    }

    pub(crate) fn vocab_ptr(&self) -> *const sys::llama_vocab {
        self.vocab.as_ptr()
    }

    /// The file it was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether it was loaded with [`ModelParams::with_vocab_only`].
    pub fn is_vocab_only(&self) -> bool {
        self.vocab_only
    }

    /// A one-line description: architecture, size, quantisation.
    pub fn description(&self) -> String {
        // SAFETY: the model is valid; the closure passes a buffer of `len` bytes.
        read_string(|buf, len| unsafe { sys::llama_model_desc(self.as_ptr(), buf, len) })
            .unwrap_or_default()
    }

    /// Size of the weights in bytes.
    pub fn size(&self) -> u64 {
        // SAFETY: the model is valid.
        unsafe { sys::llama_model_size(self.as_ptr()) }
    }

    /// Number of parameters.
    pub fn n_params(&self) -> u64 {
        // SAFETY: the model is valid.
        unsafe { sys::llama_model_n_params(self.as_ptr()) }
    }

    /// Context length the model was trained with.
    pub fn n_ctx_train(&self) -> u32 {
        // SAFETY: the model is valid.
        let n = unsafe { sys::llama_model_n_ctx_train(self.as_ptr()) };
        u32::try_from(n).unwrap_or(0)
    }

    /// Embedding size (width of the hidden state).
    pub fn n_embd(&self) -> usize {
        // SAFETY: the model is valid.
        let n = unsafe { sys::llama_model_n_embd(self.as_ptr()) };
        usize::try_from(n).unwrap_or(0)
    }

    /// Number of tokens in the vocabulary.
    pub fn n_vocab(&self) -> i32 {
        self.n_vocab
    }

    /// The chat template stored in the GGUF (`tokenizer.chat_template`), if any.
    pub fn chat_template(&self) -> Option<String> {
        // SAFETY: the model is valid; a null name asks for the default template. The result
        // is null or a NUL-terminated string owned by the model.
        let ptr = unsafe { sys::llama_model_chat_template(self.as_ptr(), std::ptr::null()) };
        if ptr.is_null() {
            return None;
        }
        // SAFETY: non-null, NUL-terminated, alive as long as the model.
        Some(
            unsafe { CStr::from_ptr(ptr) }
                .to_string_lossy()
                .into_owned(),
        )
    }

    /// The value of any GGUF metadata key, as text (arrays are summarised by llama.cpp).
    pub fn meta(&self, key: &str) -> Option<String> {
        let key = c_string("metadata key", key).ok()?;
        // SAFETY: the model is valid, `key` is NUL-terminated; the closure passes a buffer of
        // `len` bytes. A missing key returns -1.
        read_string(|buf, len| unsafe {
            sys::llama_model_meta_val_str(self.as_ptr(), key.as_ptr(), buf, len)
        })
    }

    /// Every metadata key and its value as text, in file order.
    pub fn metadata(&self) -> Vec<(String, String)> {
        // SAFETY: the model is valid.
        let n = unsafe { sys::llama_model_meta_count(self.as_ptr()) };
        (0..n)
            .filter_map(|i| {
                // SAFETY: `i` is in 0..count; the closures pass buffers of `len` bytes.
                let key = read_string(|buf, len| unsafe {
                    sys::llama_model_meta_key_by_index(self.as_ptr(), i, buf, len)
                })?;
                // SAFETY: as above.
                let value = read_string(|buf, len| unsafe {
                    sys::llama_model_meta_val_str_by_index(self.as_ptr(), i, buf, len)
                })?;
                Some((key, value))
            })
            .collect()
    }

    /// The vocabulary's special tokens.
    pub fn special_tokens(&self) -> SpecialTokens {
        let v = self.vocab_ptr();
        let opt = |t: i32| (t >= 0 && t < self.n_vocab).then_some(Token(t));
        // SAFETY: the vocab is valid for the model's lifetime; these are plain getters.
        unsafe {
            SpecialTokens {
                bos: opt(sys::llama_vocab_bos(v)),
                eos: opt(sys::llama_vocab_eos(v)),
                eot: opt(sys::llama_vocab_eot(v)),
                sep: opt(sys::llama_vocab_sep(v)),
                nl: opt(sys::llama_vocab_nl(v)),
                pad: opt(sys::llama_vocab_pad(v)),
                add_bos: sys::llama_vocab_get_add_bos(v),
                add_eos: sys::llama_vocab_get_add_eos(v),
            }
        }
    }

    /// Whether `token` ends generation (EOS, EOT, ...). Out-of-vocabulary ids are not.
    pub fn is_eog(&self, token: Token) -> bool {
        // SAFETY: the id was checked against the vocabulary size.
        self.check_token(token).is_ok()
            && unsafe { sys::llama_vocab_is_eog(self.vocab_ptr(), token.0) }
    }

    /// `Ok` when `token` is in the vocabulary.
    ///
    /// # Errors
    ///
    /// [`Error::TokenOutOfRange`].
    pub fn check_token(&self, token: Token) -> Result<()> {
        if token.0 < 0 || token.0 >= self.n_vocab {
            return Err(Error::TokenOutOfRange {
                token: token.0,
                n_vocab: self.n_vocab,
            });
        }
        Ok(())
    }

    /// Splits `text` into tokens. `add_special` adds BOS/EOS as the model asks;
    /// `parse_special` turns special-token text (such as `<start_of_turn>`) into those
    /// tokens instead of plain text.
    ///
    /// # Errors
    ///
    /// [`Error::Tokenize`] for texts beyond llama.cpp's 32-bit limits.
    pub fn tokenize(
        &self,
        text: &str,
        add_special: bool,
        parse_special: bool,
    ) -> Result<Vec<Token>> {
        let len = i32::try_from(text.len()).map_err(|_| Error::Tokenize { len: text.len() })?;
        let mut tokens: Vec<sys::llama_token> = vec![0; text.len() + 2];
        for _ in 0..2 {
            let cap =
                i32::try_from(tokens.len()).map_err(|_| Error::Tokenize { len: text.len() })?;
            let mut n = 0;
            crate::barrier::guarded("llama_tokenize", |err, err_len| {
                // SAFETY: `text` is `len` readable bytes (no NUL needed: the length is given);
                // `tokens` has room for `cap` tokens; the vocab is valid; `n` and `err`
                // (`err_len` bytes) are writable.
                unsafe {
                    sys::ember_tokenize(
                        self.vocab_ptr(),
                        text.as_ptr().cast(),
                        len,
                        tokens.as_mut_ptr(),
                        cap,
                        add_special,
                        parse_special,
                        &mut n,
                        err,
                        err_len,
                    )
                }
            })?;
            if n >= 0 {
                tokens.truncate(n as usize);
                return Ok(tokens.into_iter().map(Token).collect());
            }
            if n == i32::MIN {
                break;
            }
            tokens.resize(n.unsigned_abs() as usize, 0);
        }
        Err(Error::Tokenize { len: text.len() })
    }

    /// The bytes of one token. A piece may be part of a UTF-8 character; use
    /// [`TokenDecoder`](crate::TokenDecoder) to stream text. `special` renders special
    /// tokens (such as `<eos>`) as their text instead of nothing.
    ///
    /// # Errors
    ///
    /// [`Error::TokenOutOfRange`].
    pub fn token_to_piece(&self, token: Token, special: bool) -> Result<Vec<u8>> {
        self.check_token(token)?;
        let mut buf = vec![0u8; 64];
        for _ in 0..2 {
            let cap = i32::try_from(buf.len()).unwrap_or(i32::MAX);
            let mut n = 0;
            crate::barrier::guarded("llama_token_to_piece", |err, len| {
                // SAFETY: the token is in the vocabulary (checked above, llama.cpp would throw
                // otherwise); `buf` has `cap` writable bytes, `n` and `err` (`len` bytes) are
                // writable.
                unsafe {
                    sys::ember_token_to_piece(
                        self.vocab_ptr(),
                        token.0,
                        buf.as_mut_ptr().cast(),
                        cap,
                        0,
                        special,
                        &mut n,
                        err,
                        len,
                    )
                }
            })?;
            if n >= 0 {
                buf.truncate(n as usize);
                return Ok(buf);
            }
            buf.resize(n.unsigned_abs() as usize, 0);
        }
        Ok(Vec::new())
    }

    /// Turns tokens back into text. `remove_special` drops BOS/EOS added by the model;
    /// `unparse_special` renders special tokens as text.
    ///
    /// # Errors
    ///
    /// [`Error::TokenOutOfRange`] for an id outside the vocabulary,
    /// [`Error::InvalidUtf8`] when the bytes are not UTF-8 (a cut multi-byte character).
    pub fn detokenize(
        &self,
        tokens: &[Token],
        remove_special: bool,
        unparse_special: bool,
    ) -> Result<String> {
        for &t in tokens {
            self.check_token(t)?;
        }
        let n_tokens =
            i32::try_from(tokens.len()).map_err(|_| Error::Tokenize { len: tokens.len() })?;
        let ids: Vec<sys::llama_token> = tokens.iter().map(|t| t.0).collect();
        let mut buf = vec![0u8; tokens.len() * 8 + 16];
        for _ in 0..2 {
            let cap = i32::try_from(buf.len()).unwrap_or(i32::MAX);
            // SAFETY: every id is in the vocabulary; `ids` holds `n_tokens` tokens, `buf`
            // has `cap` writable bytes.
            let n = unsafe {
                sys::llama_detokenize(
                    self.vocab_ptr(),
                    ids.as_ptr(),
                    n_tokens,
                    buf.as_mut_ptr().cast(),
                    cap,
                    remove_special,
                    unparse_special,
                )
            };
            if n >= 0 {
                buf.truncate(n as usize);
                return Ok(String::from_utf8(buf)?);
            }
            if n == i32::MIN {
                break;
            }
            buf.resize(n.unsigned_abs() as usize, 0);
        }
        Err(Error::Tokenize { len: tokens.len() })
    }
}

/// Calls a llama.cpp "write into this buffer, return the full length" function, growing the
/// buffer once when it was too small. `None` when the function reports an error.
pub(crate) fn read_string(mut call: impl FnMut(*mut c_char, usize) -> i32) -> Option<String> {
    let mut buf = vec![0u8; 256];
    for _ in 0..2 {
        let n = usize::try_from(call(buf.as_mut_ptr().cast(), buf.len())).ok()?;
        if n < buf.len() {
            buf.truncate(n);
            return Some(String::from_utf8_lossy(&buf).into_owned());
        }
        buf.resize(n + 1, 0);
    }
    None
}
