//! What the model-backed targets share: the test model's vocabulary, loaded once.

use std::sync::{Arc, OnceLock};

use ember_llama::{Model, ModelParams};

/// The vocabulary of the test model (`EMBER_TEST_MODEL`); the targets need no weights.
pub fn vocab() -> &'static Arc<Model> {
    static MODEL: OnceLock<Arc<Model>> = OnceLock::new();
    MODEL.get_or_init(|| {
        let path = std::env::var_os("EMBER_TEST_MODEL")
            .expect("EMBER_TEST_MODEL must name the test model (build-support/fetch-model)");
        let params = ModelParams::default().with_vocab_only(true);
        Arc::new(Model::load(path, &params).expect("load the test model's vocabulary"))
    })
}
