//! Loading: metadata, sizes, the load progress callback, missing files.

use ember_llama::{Model, ModelParams};

use crate::common;

#[test]
fn metadata_of_the_test_model() {
    let Some(model) = common::model() else { return };
    assert_eq!(model.n_vocab(), 262_144);
    assert_eq!(model.n_embd(), 640);
    assert_eq!(model.n_ctx_train(), 32_768);
    assert!(model.n_params() > 200_000_000, "{}", model.n_params());
    assert!(model.size() > 100 << 20);
    assert!(!model.description().is_empty());
    assert_eq!(
        model.meta("general.architecture").as_deref(),
        Some("gemma3")
    );
    assert_eq!(model.meta("no.such.key"), None);
    assert!(model
        .metadata()
        .iter()
        .any(|(k, _)| k == "general.architecture"));
    assert_eq!(
        model.chat_template(),
        None,
        "the test GGUF carries no template"
    );
    let special = model.special_tokens();
    assert!(special.bos.is_some() && special.eos.is_some());
    assert!(model.is_eog(special.eos.unwrap()));
}

#[test]
fn vocab_only_model_tokenizes_but_makes_no_context() {
    let Some(path) = common::model_path() else {
        return;
    };
    let model = Model::load(&path, &ModelParams::default().with_vocab_only(true)).unwrap();
    assert!(!model
        .tokenize("hello world", false, false)
        .unwrap()
        .is_empty());
    let model = std::sync::Arc::new(model);
    let err = ember_llama::Context::new(&model, &ember_llama::ContextParams::default());
    assert!(
        matches!(err, Err(ember_llama::Error::VocabOnly { .. })),
        "{err:?}"
    );
}
