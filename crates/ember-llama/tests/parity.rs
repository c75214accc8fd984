//! Same tokens as upstream llama-simple (`EMBER_LLAMA_SIMPLE`) for a fixed greedy prompt.

use std::process::Command;

use ember_llama::{Context, ContextParams, GenerateOptions, SamplerBuilder};

use crate::common;

const PROMPTS: [&str; 3] = [
    "Hello my name is",
    "The three primary colors are",
    "Here is a short poem about the sea:",
];
const N_PREDICT: usize = 64;

/// The first 64 greedy tokens equal upstream `llama-simple`'s (built from the same tree
/// and flags by build-support/build-upstream-tools). llama-simple prints text, not ids,
/// so this compares texts: its stdout must be byte for byte the prompt's pieces and the
/// wrapper's 64 generated pieces (special tokens rendered, as llama-simple does), then
/// a newline. Context and batch sizes are set as llama-simple sets them. llama-simple is
/// built with the x86-64-v3 flags, so run this with `EMBER_LLAMA_CPU_VARIANT=haswell` (as
/// build-support/dev test does): another CPU variant may take the other side of a near-tie.
#[test]
#[ignore = "~7.5 min on 2 cores (llama-simple's fixed 4 threads oversubscribe \
            them), so build-support/dev test runs it alone, as its last step: \
            EMBER_LLAMA_SIMPLE=$(build-support/build-upstream-tools cpu | tail -n1) \
            cargo test -p ember-llama --test tests -- --ignored parity"]
fn greedy_matches_upstream_llama_simple() {
    let Some(model) = common::model() else { return };
    let Some(simple) = std::env::var_os("EMBER_LLAMA_SIMPLE") else {
        common::missing::<()>("EMBER_LLAMA_SIMPLE is not set (build-support/build-upstream-tools)");
        return;
    };
    for prompt in PROMPTS {
        let output = Command::new(&simple)
            .arg("-m")
            .arg(model.path())
            .args(["-n", &N_PREDICT.to_string(), prompt])
            .output()
            .expect("running llama-simple");
        assert!(output.status.success(), "llama-simple failed: {output:?}");

        let tokens = model.tokenize(prompt, true, true).unwrap();
        // Two threads, not llama-simple's four: ggml gives each thread whole rows of a
        // product, so the tokens do not depend on the thread count (this test checks it
        // too), and four spin-waiting threads crawl on 2 cores.
        let params = ContextParams::default()
            .with_n_ctx((tokens.len() + N_PREDICT - 1) as u32)
            .with_n_batch(tokens.len() as u32)
            .with_threads(2);
        let mut ctx = Context::new(&model, &params).unwrap();
        let mut sampler = SamplerBuilder::greedy().build(&model).unwrap();
        let options = GenerateOptions::default()
            .with_max_tokens(N_PREDICT)
            .with_render_special(true);
        let generated: Vec<_> = ctx
            .generate_from_tokens(&mut sampler, &tokens, &options)
            .unwrap()
            .map(|p| p.unwrap().token)
            .collect();
        assert_eq!(
            generated.len(),
            N_PREDICT,
            "stopped early at an end-of-generation token"
        );
        let mut expected = Vec::new();
        for &t in tokens.iter().chain(&generated) {
            expected.extend(model.token_to_piece(t, true).unwrap());
        }
        expected.push(b'\n');
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&expected),
            "prompt {prompt:?}"
        );
    }
}
