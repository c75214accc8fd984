//! Sentence embeddings: [`Context::embed`] returns one pooled, L2-normalised vector per
//! input.

use ember_llama_sys as sys;

use crate::batch::Batch;
use crate::context::Context;
use crate::error::{Error, Result};

impl Context {
    /// Embeds each text: tokenized (with BOS/EOS as the model asks), decoded in
    /// embeddings mode, pooled per the context's pooling type (the model's, or mean for
    /// models without one) and normalised to unit length.
    ///
    /// Texts are processed one sequence at a time; each must fit in `n_ubatch` tokens.
    ///
    /// # Errors
    ///
    /// [`Error::NotEmbeddingContext`], [`Error::PromptTooLong`], decode errors.
    pub fn embed<S: AsRef<str>>(&mut self, texts: &[S]) -> Result<Vec<Vec<f32>>> {
        if !self.embeddings_enabled() {
            return Err(Error::NotEmbeddingContext);
        }
        let n_embd = self.model().n_embd();
        let limit = self.n_ubatch().min(self.n_batch()).min(self.n_ctx()) as usize;
        let mut out = Vec::with_capacity(texts.len());
        for text in texts {
            let tokens = self.model().tokenize(text.as_ref(), true, false)?;
            if tokens.is_empty() {
                return Err(Error::InvalidParameter {
                    name: "texts",
                    reason: "a text has no tokens".into(),
                });
            }
            if tokens.len() > limit {
                return Err(Error::PromptTooLong {
                    tokens: tokens.len(),
                    used: 0,
                    n_ctx: limit as u32,
                });
            }
            self.clear_kv();
            let mut batch = Batch::new(tokens.len(), 1);
            for (i, &t) in tokens.iter().enumerate() {
                batch.add(t, i as i32, &[0], true)?;
            }
            self.decode(&batch)?;
            // SAFETY: the context is in embeddings mode with a pooling type other than NONE
            // (Context::new picks mean when the model has none), so after a successful
            // decode llama.cpp holds n_embd floats for sequence 0, or returns null.
            let ptr = unsafe { sys::llama_get_embeddings_seq(self.as_ptr(), 0) };
            if ptr.is_null() {
                return Err(Error::NoEmbeddings { seq: 0 });
            }
            // SAFETY: non-null pointer to n_embd floats, valid until the next decode.
            let vector = unsafe { std::slice::from_raw_parts(ptr, n_embd) };
            out.push(normalise(vector));
        }
        self.clear_kv();
        Ok(out)
    }
}

/// `v / |v|` (zero vectors stay zero).
fn normalise(v: &[f32]) -> Vec<f32> {
    let norm = v
        .iter()
        .map(|x| f64::from(*x) * f64::from(*x))
        .sum::<f64>()
        .sqrt();
    if norm == 0.0 {
        return v.to_vec();
    }
    v.iter().map(|x| (f64::from(*x) / norm) as f32).collect()
}

/// Cosine similarity of two vectors (their dot product when both are unit length).
///
/// ```
/// let s = ember_llama::cosine_similarity(&[1.0, 0.0], &[0.0, 1.0]);
/// assert_eq!(s, 0.0);
/// ```
pub fn cosine_similarity(a: &[f32], b: &[f32]) -> f32 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum();
    let na: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    if na == 0.0 || nb == 0.0 {
        return 0.0;
    }
    (dot / (na * nb)) as f32
}
