//! The batch generator: batching changes nothing but speed, sequences leave on cancel and
//! on a full KV cache without stopping the others, and a shared prompt prefix is decoded
//! once.
//!
//! The exactness tests load the model without weight repacking and use flash attention
//! and steps under 64 tokens, where ggml's arithmetic for a step does not depend on the
//! batch's size (see `BatchGenerator`'s docs for what still differs when sequences share a
//! step).

use std::collections::HashMap;
use std::sync::Arc;

use ember_llama::{
    BatchEvent, BatchGenerator, Context, ContextParams, Error, FinishReason, FlashAttention,
    GenerateOptions, GenerationStats, Model, SamplerBuilder, SequenceId, Token,
};

use crate::common;

fn params(n_ctx: u32, n_seq: u32) -> ContextParams {
    ContextParams::default()
        .with_n_ctx(n_ctx)
        .with_n_batch(512)
        .with_n_seq_max(n_seq)
        .with_kv_unified(true)
        .with_flash_attention(FlashAttention::Enabled)
        .with_threads(2)
        // These tests compare greedy outputs over prompts of 300+ tokens: a fixed count, as
        // flash attention over 512 KV cells sums by thread (see ContextParams::
        // with_adaptive_threads), and adaptive threads would follow the machine's load.
        .with_adaptive_threads(false)
}

fn engine(model: &Arc<Model>, n_ctx: u32, n_seq: u32) -> BatchGenerator {
    BatchGenerator::new(Context::new(model, &params(n_ctx, n_seq)).unwrap())
        .unwrap()
        .with_prompt_chunk(48)
}

fn tokens(model: &Model, text: &str) -> Vec<Token> {
    model.tokenize(text, true, true).unwrap()
}

fn submit(
    engine: &mut BatchGenerator,
    model: &Arc<Model>,
    prompt: Vec<Token>,
    n: usize,
) -> SequenceId {
    let sampler = SamplerBuilder::greedy().build(model).unwrap();
    let options = GenerateOptions::default().with_max_tokens(n);
    engine.submit(prompt, sampler, options).unwrap()
}

/// How one sequence ended.
#[derive(Debug, Default)]
struct Outcome {
    tokens: Vec<Token>,
    text: String,
    finish: Option<FinishReason>,
    error: Option<Error>,
    stats: GenerationStats,
}

/// Steps until nothing runs, recording each sequence's tokens and end.
fn run(engine: &mut BatchGenerator, out: &mut HashMap<SequenceId, Outcome>) {
    while !engine.is_idle() {
        record(engine.step(), out);
    }
}

fn record(events: Vec<BatchEvent>, out: &mut HashMap<SequenceId, Outcome>) {
    for event in events {
        match event {
            BatchEvent::Piece { id, piece, .. } => {
                let o = out.entry(id).or_default();
                o.tokens.push(piece.token);
                o.text.push_str(&piece.text);
            }
            BatchEvent::Finished { id, reason, stats } => {
                let o = out.entry(id).or_default();
                o.finish = Some(reason);
                o.stats = stats;
            }
            BatchEvent::Failed { id, error, stats } => {
                let o = out.entry(id).or_default();
                o.error = Some(error);
                o.stats = stats;
            }
        }
    }
}

const PROMPTS: [&str; 8] = [
    "The capital of France is",
    "Write a haiku about the sea:",
    "List three prime numbers:",
    "Once upon a time, in a small village,",
    "The main ingredients of bread are",
    "Q: What is the boiling point of water?\nA:",
    "def fibonacci(n):",
    "My favourite season is autumn because",
];

#[test]
fn one_sequence_through_the_engine_gives_the_tokens_generate_gives() {
    let Some(model) = common::model_without_repacking() else {
        return;
    };
    let n = 32;
    for prompt in &PROMPTS[..3] {
        let mut e = engine(&model, 512, 1).with_prefix_reuse(false);
        let id = submit(&mut e, &model, tokens(&model, prompt), n);
        let mut out = HashMap::new();
        run(&mut e, &mut out);
        let o = out.remove(&id).unwrap();
        assert_eq!(o.finish, Some(FinishReason::MaxTokens), "{prompt:?}: {o:?}");

        let mut ctx = Context::new(&model, &params(512, 1)).unwrap();
        let mut sampler = SamplerBuilder::greedy().build(&model).unwrap();
        let options = GenerateOptions::default().with_max_tokens(n);
        let mut generation = ctx.generate(&mut sampler, prompt, &options).unwrap();
        let mut text = String::new();
        let mut want = Vec::new();
        for piece in generation.by_ref() {
            let piece = piece.unwrap();
            want.push(piece.token);
            text.push_str(&piece.text);
        }
        assert_eq!(
            o.tokens, want,
            "{prompt:?}: BatchGenerator vs Context::generate"
        );
        assert_eq!(o.text, text);
        assert_eq!(
            o.stats.generated_tokens,
            generation.stats().generated_tokens
        );
    }
}

/// Runs `test` again in a child process of this test binary with `GGML_CPU_TILED_MM=0`
/// (ggml reads it once per process, at the first decode, so it cannot be set here) and
/// checks that it passed there; true in that child, where the test body runs.
fn in_batch_invariant_process(test: &str) -> bool {
    if std::env::var_os("EMBER_BATCH_INVARIANT_CHILD").is_some() {
        assert_eq!(std::env::var("GGML_CPU_TILED_MM").as_deref(), Ok("0"));
        return true;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env("GGML_CPU_TILED_MM", "0")
        .env("EMBER_BATCH_INVARIANT_CHILD", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let log: String = stderr
        .lines()
        .filter(|l| !l.starts_with("llama") && !l.starts_with("load"))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "the test failed in its child process:\n{stdout}\n{log}"
    );
    false
}

/// `prompt` run on its own: one sequence in an engine of its own, `n_ctx` cells, no
/// prefix reuse, at most `n` tokens.
fn run_alone(model: &Arc<Model>, prompt: Vec<Token>, n: usize, n_ctx: u32) -> Outcome {
    let mut e = engine(model, n_ctx, 1).with_prefix_reuse(false);
    let id = submit(&mut e, model, prompt, n);
    let mut out = HashMap::new();
    run(&mut e, &mut out);
    out.remove(&id).unwrap()
}

/// Must show 1: eight greedy sequences batched (four start together, four join three steps
/// later, prompts chunked next to generated tokens) give exactly the tokens each gives alone.
#[test]
fn eight_concurrent_greedy_sequences_give_the_tokens_each_gives_alone() {
    if !in_batch_invariant_process(
        "batched::eight_concurrent_greedy_sequences_give_the_tokens_each_gives_alone",
    ) {
        return;
    }
    let Some(model) = common::model_without_repacking() else {
        return;
    };
    let n = 32;
    let mut alone = Vec::new();
    for prompt in PROMPTS {
        let o = run_alone(&model, tokens(&model, prompt), n, 512);
        assert_eq!(o.finish, Some(FinishReason::MaxTokens), "{prompt:?}: {o:?}");
        alone.push(o.tokens);
    }
    let mut e = engine(&model, 4096, 8).with_prefix_reuse(false);
    let mut ids = Vec::new();
    let mut out = HashMap::new();
    for prompt in &PROMPTS[..4] {
        ids.push(submit(&mut e, &model, tokens(&model, prompt), n));
    }
    for _ in 0..3 {
        record(e.step(), &mut out);
    }
    for prompt in &PROMPTS[4..] {
        ids.push(submit(&mut e, &model, tokens(&model, prompt), n));
    }
    let mut widest = 0;
    while !e.is_idle() {
        record(e.step(), &mut out);
        widest = widest.max(e.last_step().sequences);
    }
    assert_eq!(widest, 8, "all eight sequences shared a decode");
    for (i, id) in ids.iter().enumerate() {
        let o = &out[id];
        assert_eq!(
            o.finish,
            Some(FinishReason::MaxTokens),
            "{:?}: {o:?}",
            PROMPTS[i]
        );
        assert_eq!(
            o.tokens, alone[i],
            "{:?}: batched differs from alone",
            PROMPTS[i]
        );
    }
}

#[test]
fn sequences_join_and_leave_between_steps() {
    let Some(model) = common::model() else { return };
    let mut e = engine(&model, 4096, 8);
    let mut ids = Vec::new();
    let mut out = HashMap::new();
    for prompt in &PROMPTS[..4] {
        ids.push(submit(&mut e, &model, tokens(&model, prompt), 16));
    }
    for _ in 0..3 {
        record(e.step(), &mut out);
    }
    for (i, prompt) in PROMPTS[4..].iter().enumerate() {
        ids.push(submit(&mut e, &model, tokens(&model, prompt), 8 + i));
    }
    assert!(!e.has_free_slot());
    let sampler = SamplerBuilder::greedy().build(&model).unwrap();
    let err = e
        .submit(
            tokens(&model, "one more"),
            sampler,
            GenerateOptions::default(),
        )
        .unwrap_err();
    assert!(
        matches!(err, Error::NoFreeSequence { n_seq_max: 8 }),
        "{err}"
    );
    let mut widest = 0;
    while !e.is_idle() {
        record(e.step(), &mut out);
        widest = widest.max(e.last_step().sequences);
    }
    assert_eq!(widest, 8);
    for (i, id) in ids.iter().enumerate() {
        let want = if i < 4 { 16 } else { 8 + i - 4 };
        assert_eq!(
            out[id].finish,
            Some(FinishReason::MaxTokens),
            "{:?}",
            out[id]
        );
        assert_eq!(out[id].tokens.len(), want);
        assert!(!out[id].text.is_empty());
    }
}

#[test]
fn a_cancelled_sequence_leaves_and_the_others_finish() {
    let Some(model) = common::model() else { return };
    let mut e = engine(&model, 2048, 3);
    let ids: Vec<SequenceId> = PROMPTS[..3]
        .iter()
        .map(|p| submit(&mut e, &model, tokens(&model, p), 24))
        .collect();
    let mut out = HashMap::new();
    for _ in 0..4 {
        record(e.step(), &mut out);
    }
    let handle = e.cancel_handle(ids[1]).unwrap();
    std::thread::spawn(move || handle.cancel()).join().unwrap();
    let before = out[&ids[1]].tokens.len();
    record(e.step(), &mut out);
    assert_eq!(out[&ids[1]].finish, Some(FinishReason::Cancelled));
    assert_eq!(
        out[&ids[1]].tokens.len(),
        before,
        "nothing sampled after the cancel"
    );
    assert_eq!(e.running(), 2);
    run(&mut e, &mut out);
    for id in [ids[0], ids[2]] {
        assert_eq!(
            out[&id].finish,
            Some(FinishReason::MaxTokens),
            "{:?}",
            out[&id]
        );
        assert_eq!(out[&id].tokens.len(), 24);
    }
    assert!(!e.cancel(ids[0]), "a finished sequence cannot be cancelled");
}

#[test]
fn a_full_kv_cache_ends_one_sequence_and_the_others_go_on() {
    let Some(model) = common::model() else { return };
    // 256 cells shared by three sequences that each want ~200.
    let mut e = engine(&model, 256, 3);
    let prompt = "Count from 1 to 300, separated by commas: 1, 2, 3, 4,";
    let ids: Vec<SequenceId> = (0..3)
        .map(|_| submit(&mut e, &model, tokens(&model, prompt), 180))
        .collect();
    let mut out = HashMap::new();
    run(&mut e, &mut out);
    let failed: Vec<&Outcome> = ids
        .iter()
        .map(|id| &out[id])
        .filter(|o| o.error.is_some())
        .collect();
    let finished: Vec<&Outcome> = ids
        .iter()
        .map(|id| &out[id])
        .filter(|o| o.finish == Some(FinishReason::MaxTokens))
        .collect();
    assert!(
        !failed.is_empty()
            && failed
                .iter()
                .all(|o| matches!(o.error, Some(Error::KvCacheFull { .. }))),
        "{out:?}"
    );
    assert!(
        !finished.is_empty(),
        "a sequence finished after another left: {out:?}"
    );
    for o in &finished {
        assert_eq!(o.tokens.len(), 180);
    }
    // The generator still works.
    let id = submit(&mut e, &model, tokens(&model, PROMPTS[0]), 8);
    run(&mut e, &mut out);
    assert_eq!(out[&id].finish, Some(FinishReason::MaxTokens));
}

/// A system part of well over 300 tokens, shared by two requests.
fn long_prefix() -> String {
    let mut s = String::from(
        "You are a careful assistant for a Linux fleet. Read the telemetry below and answer briefly.\n",
    );
    for i in 0..16 {
        s.push_str(&format!(
            "process {i}: worker-{i} exited with status {} after {} ms\n",
            i % 3,
            100 + i * 7
        ));
    }
    s
}

/// Two prompts that share [`long_prefix`] and differ in their question.
fn two_questions(model: &Model) -> (Vec<Token>, Vec<Token>) {
    let prefix = long_prefix();
    let question = |q: &str| tokens(model, &format!("{prefix}Question: {q}\nAnswer:"));
    (
        question("which process ran longest?"),
        question("how many exited with status 2?"),
    )
}

#[test]
fn a_shared_prompt_prefix_is_reused_and_changes_nothing() {
    let Some(model) = common::model_without_repacking() else {
        return;
    };
    let (first, second) = two_questions(&model);
    let shared = first
        .iter()
        .zip(&second)
        .take_while(|(a, b)| a == b)
        .count();
    assert!(shared >= 300, "the prefix is {shared} tokens");

    let reference = run_alone(&model, second.clone(), 24, 4096);
    assert_eq!(reference.stats.cached_prompt_tokens, 0);
    let mut out = HashMap::new();

    // One after the other: the second takes the first's finished slot.
    let mut warm = engine(&model, 4096, 2);
    let a = submit(&mut warm, &model, first.clone(), 8);
    run(&mut warm, &mut out);
    assert_eq!(out[&a].stats.cached_prompt_tokens, 0);
    let b = submit(&mut warm, &model, second.clone(), 24);
    run(&mut warm, &mut out);
    let reused = &out[&b];
    assert!(
        reused.stats.cached_prompt_tokens >= 290,
        "{:?}",
        reused.stats
    );
    assert_eq!(reused.stats.prompt_tokens, second.len());
    assert_eq!(reused.tokens, reference.tokens, "reuse changed the output");

    // While the first still runs: the second shares its cells (unified KV).
    // (Its tokens are not compared: a prompt decoded in the same step as another
    // sequence's token can differ in the last bits; see BatchGenerator's docs.)
    let mut busy = engine(&model, 4096, 2);
    let mut out: HashMap<SequenceId, Outcome> = HashMap::new();
    let a = submit(&mut busy, &model, first, 24);
    while out.get(&a).is_none_or(|o| o.tokens.is_empty()) {
        record(busy.step(), &mut out);
    }
    let b = submit(&mut busy, &model, second, 24);
    run(&mut busy, &mut out);
    assert_eq!(out[&a].finish, Some(FinishReason::MaxTokens));
    let shared_run = &out[&b];
    assert!(
        shared_run.stats.cached_prompt_tokens >= 290,
        "{:?}",
        shared_run.stats
    );
    assert_eq!(shared_run.finish, Some(FinishReason::MaxTokens));
}

#[test]
fn a_saved_slot_restored_in_another_engine_is_reused_and_changes_nothing() {
    let Some(model) = common::model_without_repacking() else {
        return;
    };
    let (first, second) = two_questions(&model);
    let reference = run_alone(&model, second.clone(), 24, 4096);
    let dir = std::env::temp_dir().join(format!("ember-llama-slots-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("slot.bin");

    let mut out = HashMap::new();
    let mut saver = engine(&model, 4096, 2);
    let a = submit(&mut saver, &model, first.clone(), 8);
    let running = saver
        .slots()
        .iter()
        .position(|s| s.running == Some(a))
        .unwrap();
    let busy = saver.save_slot(running, &file).unwrap_err();
    assert!(busy.to_string().contains("running a generation"), "{busy}");
    run(&mut saver, &mut out);
    let slot = saver
        .slots()
        .iter()
        .position(|s| s.cached_tokens > 0)
        .expect("the finished prompt stays cached");
    let saved = saver.save_slot(slot, &file).unwrap();
    assert!(saved.tokens >= first.len(), "{saved:?}");
    assert!(saved.bytes > 0 && std::fs::metadata(&file).unwrap().len() as usize >= saved.bytes);
    assert_eq!(saver.erase_slot(slot).unwrap(), saved.tokens);
    assert!(saver.slots().iter().all(|s| s.cached_tokens == 0));
    assert!(out[&a].finish.is_some());

    // Another engine (another context of the model): the restored cache serves the next
    // prompt's shared prefix, and the output is the one without any cache.
    let mut restorer = engine(&model, 4096, 2);
    let restored = restorer.restore_slot(1, &file).unwrap();
    assert_eq!(restored.tokens, saved.tokens);
    assert_eq!(restorer.slots()[1].cached_tokens, saved.tokens);
    // (Sequence ids are per engine: a map of its own.)
    let mut out = HashMap::new();
    let b = submit(&mut restorer, &model, second.clone(), 24);
    run(&mut restorer, &mut out);
    assert!(
        out[&b].stats.cached_prompt_tokens >= 290,
        "{:?}",
        out[&b].stats
    );
    assert_eq!(
        out[&b].tokens, reference.tokens,
        "the restored cache changed the output"
    );

    // What cannot be restored leaves the slot empty, with the file named.
    std::fs::write(&file, b"not a state file").unwrap();
    let bad = restorer.restore_slot(0, &file).unwrap_err();
    assert!(matches!(bad, Error::SequenceState { .. }), "{bad}");
    assert!(bad.to_string().contains("slot.bin"), "{bad}");
    assert_eq!(restorer.slots()[0].cached_tokens, 0);
    let missing = restorer.restore_slot(0, &dir.join("none.bin")).unwrap_err();
    assert!(missing.to_string().contains("no such file"), "{missing}");
    assert!(restorer.erase_slot(9).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn logprobs_come_with_each_piece_as_a_plain_generation_reports_them() {
    let Some(model) = common::model() else { return };
    let prompt = tokens(&model, "The capital of France is");
    let options = GenerateOptions::default()
        .with_max_tokens(6)
        .with_logprobs(4);
    let mut e = engine(&model, 512, 1);
    let sampler = SamplerBuilder::greedy().build(&model).unwrap();
    e.submit(prompt.clone(), sampler, options.clone()).unwrap();
    let mut batched = Vec::new();
    while !e.is_idle() {
        for event in e.step() {
            if let BatchEvent::Piece {
                piece, logprobs, ..
            } = event
            {
                batched.push((piece.token, logprobs.expect("logprobs were asked for")));
            }
        }
    }
    assert_eq!(batched.len(), 6);
    for (token, lp) in &batched {
        assert_eq!(lp.sampled.token, *token);
        assert_eq!(lp.top.len(), 4);
        assert_eq!(lp.top[0], lp.sampled, "greedy takes the most likely token");
        assert!(lp.top.windows(2).all(|w| w[0].logprob >= w[1].logprob));
        assert!(lp.sampled.logprob <= 0.0 && lp.sampled.logprob.is_finite());
    }

    let mut ctx = Context::new(&model, &params(512, 1)).unwrap();
    let mut sampler = SamplerBuilder::greedy().build(&model).unwrap();
    let mut g = ctx
        .generate_from_tokens(&mut sampler, &prompt, &options)
        .unwrap();
    assert!(g.last_logprobs().is_none());
    let mut i = 0;
    while let Some(piece) = g.next() {
        let piece = piece.unwrap();
        let lp = g.last_logprobs().unwrap();
        assert_eq!(lp.sampled.token, piece.token);
        assert_eq!(piece.token, batched[i].0);
        assert!(
            (lp.sampled.logprob - batched[i].1.sampled.logprob).abs() < 1e-3,
            "{lp:?} vs {:?}",
            batched[i].1
        );
        i += 1;
    }
    assert_eq!(i, 6);
}
