//! Embeddings and their similarity.

use ember_llama::{cosine_similarity, Context, ContextParams, Error};

use crate::common;

#[test]
fn deterministic_unit_norm_and_semantic() {
    let Some(model) = common::model() else { return };
    let params = ContextParams::default()
        .with_n_ctx(128)
        .with_embeddings(true)
        .with_threads(2);
    let mut ctx = Context::new(&model, &params).unwrap();
    let texts = [
        "The cat is sleeping on the sofa.",
        "A cat naps on the couch.",
        "Interest rates rose sharply in the bond market.",
    ];
    let first = ctx.embed(&texts).unwrap();
    let second = ctx.embed(&texts).unwrap();
    assert_eq!(first, second);
    for v in &first {
        assert_eq!(v.len(), model.n_embd());
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
    }
    let close = cosine_similarity(&first[0], &first[1]);
    let far0 = cosine_similarity(&first[0], &first[2]);
    let far1 = cosine_similarity(&first[1], &first[2]);
    assert!(
        close > far0 && close > far1,
        "paraphrases {close}, unrelated {far0} {far1}"
    );
}

#[test]
fn embed_needs_an_embeddings_context() {
    let Some(model) = common::model() else { return };
    let mut ctx = Context::new(&model, &ContextParams::default().with_n_ctx(64)).unwrap();
    assert!(matches!(ctx.embed(&["x"]), Err(Error::NotEmbeddingContext)));
}
