//! Hostile input: damaged GGUF files, out-of-vocabulary tokens, overflows, bad grammars and parameters.

use std::path::PathBuf;

use ember_llama::{
    Batch, Context, ContextParams, Error, GenerateOptions, Model, ModelParams, SamplerBuilder,
    Token,
};

use crate::common;
use crate::gguf_corpus::corpus;

fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ember-llama-gguf-corpus-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn damaged_gguf_files_are_errors() {
    let real = common::model_path();
    let files = corpus(real.as_deref());
    assert!(files.len() >= 20);
    let dir = scratch_dir();
    for (i, (name, bytes)) in files.iter().enumerate() {
        let path = dir.join(format!("{i:03}.gguf"));
        std::fs::write(&path, bytes).unwrap();
        let result = Model::load(&path, &ModelParams::default());
        assert!(result.is_err(), "{name}: loaded");
        let err = result.unwrap_err();
        assert!(
            matches!(err, Error::InvalidGguf { .. } | Error::ModelLoad { .. }),
            "{name}: {err}"
        );
        // Sound structure, so llama.cpp's own loader is what refuses these.
        let sound = [
            "valid structure, not a model",
            "tensor name of 57 bytes of invalid UTF-8",
            "two keys that differ only in invalid UTF-8",
            "a second alignment behind a NUL is never read",
        ];
        if !sound.contains(&name.as_str()) {
            assert!(matches!(err, Error::InvalidGguf { .. }), "{name}: {err}");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
    let missing = Model::load(dir.join("missing.gguf"), &ModelParams::default());
    assert!(matches!(missing, Err(Error::ModelFile { .. })));
}

/// The validator's container rules and ggml's parser agree on every file of the corpus,
/// both ways; the full validator is stricter, never looser. The `gguf` fuzz target holds
/// the same on generated files.
#[test]
fn the_validator_and_ggml_agree_on_the_corpus() {
    let real = common::model_path();
    let mut files = corpus(real.as_deref());
    if let Some(real) = &real {
        files.push(("the real model".into(), std::fs::read(real).unwrap()));
    }
    let dir = scratch_dir().join("differential");
    std::fs::create_dir_all(&dir).unwrap();
    let (mut both_accept, mut both_reject, mut llama_stricter) = (0, 0, 0);
    for (i, (name, bytes)) in files.iter().enumerate() {
        let path = dir.join(format!("{i:03}.gguf"));
        std::fs::write(&path, bytes).unwrap();
        let ggml = ember_llama::gguf::ggml_accepts(&path);
        let container = ember_llama::gguf::validate_container(&path);
        let full = ember_llama::gguf::validate(&path);
        assert_eq!(
            container.is_ok(),
            ggml,
            "{name}: ggml accepts: {ggml}, the validator says {container:?}"
        );
        assert!(
            full.is_err() || container.is_ok(),
            "{name}: the full validator accepts what the container rules refuse"
        );
        match (ggml, full.is_ok()) {
            (true, true) => both_accept += 1,
            (false, _) => both_reject += 1,
            (true, false) => llama_stricter += 1,
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
    // Each kind of case is there: the corpus tests something in every direction.
    assert!(both_accept >= 1, "nothing accepted");
    assert!(both_reject >= 20, "{both_reject} rejected");
    assert!(llama_stricter >= 4, "{llama_stricter} only llama-refused");
}

#[test]
fn the_real_model_passes_validation() {
    let Some(path) = common::model_path() else {
        return;
    };
    let summary = ember_llama::gguf::validate(&path).unwrap();
    assert_eq!(summary.architecture.as_deref(), Some("gemma3"));
    assert!(summary.n_tensors > 100);
}

#[test]
fn token_ids_outside_the_vocabulary() {
    let Some(model) = common::model() else { return };
    let n = model.n_vocab();
    for bad in [Token(n), Token(-1), Token(i32::MAX)] {
        assert!(matches!(
            model.token_to_piece(bad, false),
            Err(Error::TokenOutOfRange { .. })
        ));
        assert!(matches!(
            model.detokenize(&[Token(2), bad], false, false),
            Err(Error::TokenOutOfRange { .. })
        ));
    }
    let mut ctx = Context::new(&model, &ContextParams::default().with_n_ctx(64)).unwrap();
    let mut batch = Batch::new(2, 1);
    batch.add(Token(2), 0, &[0], false).unwrap();
    batch.add(Token(n), 1, &[0], true).unwrap();
    assert!(matches!(
        ctx.decode(&batch),
        Err(Error::TokenOutOfRange { .. })
    ));
    let mut sampler = SamplerBuilder::greedy().build(&model).unwrap();
    let err = ctx.generate_from_tokens(
        &mut sampler,
        &[Token(2), Token(n + 5)],
        &GenerateOptions::default(),
    );
    assert!(matches!(err, Err(Error::TokenOutOfRange { .. })));
    // Sampling without a decoded output is an error, not an assertion.
    ctx.clear_kv();
    assert!(matches!(
        sampler.sample(&ctx, -1),
        Err(Error::NoOutput { .. })
    ));
}

#[test]
fn over_long_prompt_and_batch_overflow() {
    let Some(model) = common::model() else { return };
    let params = ContextParams::default()
        .with_n_ctx(64)
        .with_n_batch(32)
        .with_threads(2);
    let mut ctx = Context::new(&model, &params).unwrap();
    let mut sampler = SamplerBuilder::greedy().build(&model).unwrap();
    // llama.cpp rounds n_ctx up; the prompt exceeds what it really holds.
    let prompt = "word ".repeat(ctx.n_ctx() as usize + 10);
    let err = ctx.generate(&mut sampler, &prompt, &GenerateOptions::default());
    assert!(matches!(err, Err(Error::PromptTooLong { .. })), "{err:?}");
    // A batch larger than n_batch (llama.cpp would assert).
    let tokens = model.tokenize(&"word ".repeat(40), false, false).unwrap();
    let mut batch = Batch::new(tokens.len(), 1);
    batch.add_sequence(&tokens, 0, 0, true).unwrap();
    assert!(matches!(ctx.decode(&batch), Err(Error::BatchSize { .. })));
    assert!(matches!(
        batch.add(Token(2), 99, &[0], true),
        Err(Error::BatchFull { .. })
    ));
    assert!(matches!(
        ctx.decode(&Batch::new(4, 1)),
        Err(Error::BatchSize { .. })
    ));
    // A sequence id the context does not have.
    let mut one = Batch::new(1, 1);
    one.add(Token(2), 0, &[3], true).unwrap();
    assert!(matches!(
        ctx.decode(&one),
        Err(Error::SequenceOutOfRange { .. })
    ));
    // A prompt that fits n_ctx but not n_batch is decoded in chunks.
    let long = model.tokenize(&"word ".repeat(45), true, false).unwrap();
    assert!(
        long.len() > 32 && long.len() < ctx.n_ctx() as usize,
        "{}",
        long.len()
    );
    let options = GenerateOptions::default().with_max_tokens(2);
    let n = ctx
        .generate_from_tokens(&mut sampler, &long, &options)
        .unwrap()
        .count();
    assert!(n <= 2);
}

#[test]
fn invalid_grammars_and_sampler_chains() {
    let Some(model) = common::model() else { return };
    for grammar in [
        "root ::= undefined_rule",
        "root ::= [a-",
        "root ::= \"unterminated",
        "",
        "not a grammar",
    ] {
        let err = SamplerBuilder::new()
            .grammar(grammar, "root")
            .select_greedy()
            .build(&model);
        assert!(
            matches!(err, Err(Error::InvalidGrammar { .. })),
            "{grammar:?}: {err:?}"
        );
    }
    let err = SamplerBuilder::new()
        .grammar("start ::= \"a\"", "root")
        .select_greedy()
        .build(&model);
    assert!(
        matches!(err, Err(Error::InvalidGrammar { .. })),
        "missing root: {err:?}"
    );
    assert!(matches!(
        SamplerBuilder::new().build(&model),
        Err(Error::InvalidSampler(_))
    ));
    assert!(matches!(
        SamplerBuilder::new().top_k(5).build(&model),
        Err(Error::InvalidSampler(_))
    ));
    assert!(matches!(
        SamplerBuilder::greedy()
            .top_k(5)
            .select_greedy()
            .build(&model),
        Err(Error::InvalidSampler(_))
    ));
    assert!(matches!(
        SamplerBuilder::new()
            .top_p(1.5, 1)
            .select_greedy()
            .build(&model),
        Err(Error::InvalidSampler(_))
    ));
}

#[test]
fn bad_context_parameters() {
    let Some(model) = common::model() else { return };
    for params in [
        ContextParams::default().with_threads(0),
        // ggml asserts (aborts the process) above GGML_MAX_N_THREADS workers.
        ContextParams::default().with_threads(1_000_000),
        ContextParams::default()
            .with_threads(2)
            .with_threads_batch(513),
        ContextParams::default().with_n_batch(0),
        ContextParams::default().with_n_seq_max(100_000),
    ] {
        let err = Context::new(&model, &params);
        assert!(
            matches!(err, Err(Error::InvalidParameter { .. })),
            "{err:?}"
        );
    }
}
