//! The CPU variants linked into this binary (ember-llama-sys' default x86-64 Linux build):
//! the dispatcher's view of which run here agrees with Rust's own CPU detection, and every
//! variant this CPU runs, forced with `EMBER_LLAMA_CPU_VARIANT`, gives the same greedy tokens.

use std::process::Command;

use ember_llama::{cpu, Context, ContextParams, GenerateOptions, SamplerBuilder};

use crate::common;

/// A prompt whose greedy path has no near-tie: on x64 the smallest gap between the two most
/// likely tokens over these 32 steps is 0.39 (log-probability), and the variants' sampled
/// log-probabilities differ from x64's by at most 0.23 (measured on the test model). At a
/// near-tie, ISA-dependent rounding may pick either token, in upstream's variants as here:
/// "The capital of France is" splits at its 12th token (gap 0.018 on x64, 0.008 on haswell).
const PROMPT: &str = "def fibonacci(n):";
const N_TOKENS: usize = 32;
/// Largest difference allowed between a variant's and x64's log-probability of a token.
const LOGPROB_TOLERANCE: f32 = 0.5;

/// What `is_x86_feature_detected!` (std's CPUID and XCR0 checks) says of one ggml ISA option.
#[cfg(target_arch = "x86_64")]
fn std_detects(option: &str) -> bool {
    match option {
        "SSE42" => is_x86_feature_detected!("sse4.2"),
        "AVX" => is_x86_feature_detected!("avx"),
        "AVX2" => is_x86_feature_detected!("avx2"),
        "BMI2" => is_x86_feature_detected!("bmi2"),
        "FMA" => is_x86_feature_detected!("fma"),
        "F16C" => is_x86_feature_detected!("f16c"),
        "AVX_VNNI" => is_x86_feature_detected!("avxvnni"),
        // ggml's AVX512 option compiles with -mavx512{f,cd,vl,dq,bw}.
        "AVX512" => {
            is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx512cd")
                && is_x86_feature_detected!("avx512vl")
                && is_x86_feature_detected!("avx512dq")
                && is_x86_feature_detected!("avx512bw")
        }
        "AVX512_VBMI" => is_x86_feature_detected!("avx512vbmi"),
        "AVX512_VNNI" => is_x86_feature_detected!("avx512vnni"),
        "AVX512_BF16" => is_x86_feature_detected!("avx512bf16"),
        other => panic!("no std feature check for ggml option {other}: add it here"),
    }
}

/// The dispatcher says a variant runs here exactly when std detects all its instruction
/// sets; the variant in use is the runnable one upstream's score rates highest (its
/// variants are ordered so that this is the last runnable one with the most features).
#[cfg(target_arch = "x86_64")]
#[test]
fn the_dispatcher_agrees_with_std_on_what_this_cpu_runs() {
    let variants = cpu::variants();
    if variants.is_empty() {
        common::missing::<()>("this build has one CPU backend (feature `native`?), no variants");
        return;
    }
    for v in &variants {
        let expected = v.features.iter().all(|f| std_detects(f));
        assert_eq!(
            v.runnable, expected,
            "variant {} ({:?}): the dispatcher says runnable = {}, std's detection {}",
            v.name, v.features, v.runnable, expected
        );
    }
    let chosen = cpu::variant().unwrap();
    let runnable: Vec<_> = variants.iter().filter(|v| v.runnable).collect();
    let widest = runnable.iter().map(|v| v.features.len()).max().unwrap();
    let chosen = variants.iter().find(|v| v.name == chosen).unwrap();
    assert!(
        chosen.runnable,
        "chose {} but it cannot run here",
        chosen.name
    );
    if std::env::var_os("EMBER_LLAMA_CPU_VARIANT").is_none() {
        assert_eq!(
            chosen.features.len(),
            widest,
            "chose {} although a runnable variant has more instruction sets",
            chosen.name
        );
    }
}

/// One greedy step as a child reports it.
#[derive(Debug, PartialEq)]
struct Step {
    token: i32,
    logprob: f32,
    gap: f32,
}

#[test]
fn every_runnable_cpu_variant_gives_the_same_greedy_tokens() {
    let Some(path) = common::model_path() else {
        return;
    };
    let runnable: Vec<_> = cpu::variants().into_iter().filter(|v| v.runnable).collect();
    if runnable.is_empty() {
        common::missing::<()>("this build has one CPU backend (feature `native`?), no variants");
        return;
    }
    let runs: Vec<(&str, Vec<Step>)> = runnable
        .iter()
        .map(|v| (v.name, greedy_path_of(v.name, &path)))
        .collect();
    let (reference_name, reference) = &runs[0];
    assert_eq!(reference.len(), N_TOKENS, "{reference_name} stopped early");
    for (name, steps) in &runs[1..] {
        for (i, (want, got)) in reference.iter().zip(steps).enumerate() {
            assert_eq!(
                want.token, got.token,
                "{name} differs from {reference_name} at step {i}: token {} (gap to the next \
                 best {:.4}) against {} (gap {:.4})",
                got.token, got.gap, want.token, want.gap
            );
            assert!(
                (want.logprob - got.logprob).abs() <= LOGPROB_TOLERANCE,
                "{name} at step {i}: log-probability {} against {reference_name}'s {}",
                got.logprob,
                want.logprob
            );
        }
        assert_eq!(steps.len(), reference.len(), "{name}: another length");
    }
    eprintln!(
        "same {N_TOKENS} greedy tokens from {}",
        runs.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
    );
}

/// Runs [`greedy_path_in_child`] in a child process with `EMBER_LLAMA_CPU_VARIANT=variant`
/// (the choice is made once per process) and returns the steps it printed.
fn greedy_path_of(variant: &str, model: &std::path::Path) -> Vec<Step> {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "cpu_variants::greedy_path_in_child",
            "--exact",
            "--include-ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("EMBER_LLAMA_CPU_VARIANT", variant)
        .env("EMBER_TEST_MODEL", model)
        .env("EMBER_CPU_VARIANT_CHILD", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "variant {variant}: the child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        // libtest prints "test NAME ... " before the first line without a newline.
        .filter_map(|line| line.split_once("@step ").map(|(_, rest)| rest))
        .map(|rest| {
            let f: Vec<&str> = rest.split_whitespace().collect();
            Step {
                token: f[0].parse().unwrap(),
                logprob: f[1].parse().unwrap(),
                gap: f[2].parse().unwrap(),
            }
        })
        .collect()
}

/// The child's part: checks that the forced variant runs, then prints `@step TOKEN LOGPROB
/// GAP` per greedy token.
#[test]
#[ignore = "run in a child process by every_runnable_cpu_variant_gives_the_same_greedy_tokens"]
fn greedy_path_in_child() {
    assert!(
        std::env::var_os("EMBER_CPU_VARIANT_CHILD").is_some(),
        "a helper of every_runnable_cpu_variant_gives_the_same_greedy_tokens"
    );
    let forced = std::env::var("EMBER_LLAMA_CPU_VARIANT").unwrap();
    assert_eq!(cpu::variant().unwrap(), forced);
    let model = common::model().unwrap();
    let params = ContextParams::default().with_n_ctx(256).with_threads(2);
    let mut ctx = Context::new(&model, &params).unwrap();
    let mut sampler = SamplerBuilder::greedy().build(&model).unwrap();
    let options = GenerateOptions::default()
        .with_max_tokens(N_TOKENS)
        .with_logprobs(2);
    let mut generation = ctx.generate(&mut sampler, PROMPT, &options).unwrap();
    while let Some(piece) = generation.next() {
        let piece = piece.unwrap();
        let lp = generation.last_logprobs().unwrap();
        println!(
            "@step {} {} {}",
            piece.token.0,
            lp.sampled.logprob,
            lp.top[0].logprob - lp.top[1].logprob
        );
    }
}
