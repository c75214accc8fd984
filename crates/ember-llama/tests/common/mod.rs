//! The shared test model (loaded once) and what a test does without it.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use ember_llama::{Model, ModelParams};

/// Whether missing resources are failures (CI) rather than skips.
pub fn strict() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Skips (returns `None`) or, under CI=true, fails with `reason`.
pub fn missing<T>(reason: &str) -> Option<T> {
    if strict() {
        panic!("CI=true and {reason}");
    }
    skipped(reason);
    None
}

/// Says that the running test is skipped, and why, where `cargo test` shows it: straight to
/// stderr (libtest captures `eprintln!`, which would make the skip a silent pass).
pub fn skipped(reason: &str) {
    use std::io::Write;
    let test = std::thread::current().name().unwrap_or("?").to_string();
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {reason}");
}

pub fn model_path() -> Option<PathBuf> {
    match std::env::var_os("EMBER_TEST_MODEL").map(PathBuf::from) {
        Some(p) if p.is_file() => Some(p),
        Some(p) => missing(&format!("EMBER_TEST_MODEL={} is not a file", p.display())),
        None => missing("EMBER_TEST_MODEL is not set (run build-support/fetch-model)"),
    }
}

/// The test model, loaded once and shared by every test (and thread).
pub fn model() -> Option<Arc<Model>> {
    static MODEL: OnceLock<Option<Arc<Model>>> = OnceLock::new();
    let path = model_path()?;
    MODEL
        .get_or_init(|| {
            let model = Model::load(&path, &ModelParams::default())
                .unwrap_or_else(|e| panic!("loading {}: {e}", path.display()));
            Some(Arc::new(model))
        })
        .clone()
}

/// The test model loaded without weight repacking, for the batch generator's exactness tests
/// ([`ModelParams::with_weight_repacking`]).
pub fn model_without_repacking() -> Option<Arc<Model>> {
    static MODEL: OnceLock<Option<Arc<Model>>> = OnceLock::new();
    let path = model_path()?;
    MODEL
        .get_or_init(|| {
            let params = ModelParams::default().with_weight_repacking(false);
            let model = Model::load(&path, &params)
                .unwrap_or_else(|e| panic!("loading {}: {e}", path.display()));
            Some(Arc::new(model))
        })
        .clone()
}
