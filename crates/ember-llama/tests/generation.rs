//! Contexts, batches, sampler chains, greedy and sampled generation, stops and cancellation.

use std::sync::Arc;

use ember_llama::{
    Context, ContextParams, FinishReason, GenerateOptions, Model, SamplerBuilder, Token,
};

use crate::common;

pub fn greedy(model: &Arc<Model>, prompt: &str, n: usize, threads: i32) -> Vec<Token> {
    let params = ContextParams::default()
        .with_n_ctx(256)
        .with_threads(threads);
    let mut ctx = Context::new(model, &params).unwrap();
    let mut sampler = SamplerBuilder::greedy().build(model).unwrap();
    let options = GenerateOptions::default().with_max_tokens(n);
    let generation = ctx.generate(&mut sampler, prompt, &options).unwrap();
    generation.map(|p| p.unwrap().token).collect()
}

#[test]
fn greedy_is_deterministic_and_stops_at_max_tokens() {
    let Some(model) = common::model() else { return };
    let params = ContextParams::default()
        .with_n_ctx(256)
        .with_threads(2)
        .with_perf_counters(true);
    let mut ctx = Context::new(&model, &params).unwrap();
    let mut sampler = SamplerBuilder::greedy().build(&model).unwrap();
    let options = GenerateOptions::default().with_max_tokens(12);
    let mut first = ctx
        .generate(&mut sampler, "The capital of France is", &options)
        .unwrap();
    let text = first.collect_text().unwrap();
    let stats = first.stats();
    assert_eq!(first.finish_reason(), Some(FinishReason::MaxTokens));
    assert_eq!(stats.generated_tokens, 12);
    assert!(stats.prompt_tokens > 3);
    assert!(stats.generation_tokens_per_second() > 0.0);
    let perf = ctx.perf();
    assert_eq!(perf.prompt_tokens as usize, stats.prompt_tokens);
    assert_eq!(
        perf.generated_tokens, 11,
        "the 12th token is sampled, never decoded"
    );
    let again = ctx
        .generate(&mut sampler, "The capital of France is", &options)
        .unwrap()
        .collect_text()
        .unwrap();
    assert_eq!(text, again);
    assert!(text.chars().any(char::is_alphabetic), "{text:?}");
}

#[test]
fn stop_strings_end_generation_and_are_never_emitted() {
    let Some(model) = common::model() else { return };
    let prompt = "List the days of the week: Monday, Tuesday,";
    let params = ContextParams::default().with_n_ctx(256).with_threads(2);
    let mut ctx = Context::new(&model, &params).unwrap();
    let mut sampler = SamplerBuilder::greedy().build(&model).unwrap();
    let full = ctx
        .generate(
            &mut sampler,
            prompt,
            &GenerateOptions::default().with_max_tokens(16),
        )
        .unwrap()
        .collect_text()
        .unwrap();
    // A stop string from the middle of the greedy output, spanning token boundaries.
    let chars: Vec<(usize, char)> = full.char_indices().collect();
    assert!(chars.len() > 12, "{full:?}");
    let (start, end) = (chars[chars.len() / 2 - 2].0, chars[chars.len() / 2 + 2].0);
    let stop = &full[start..end];
    let expected = &full[..full.find(stop).unwrap()];
    let options = GenerateOptions::default()
        .with_max_tokens(16)
        .with_stop(stop);
    let mut generation = ctx.generate(&mut sampler, prompt, &options).unwrap();
    let mut text = String::new();
    for piece in generation.by_ref() {
        text.push_str(&piece.unwrap().text);
        assert!(!text.contains(stop));
    }
    assert_eq!(generation.finish_reason(), Some(FinishReason::Stop));
    assert_eq!(text, expected);
}

#[test]
fn cancellation_ends_the_generation() {
    let Some(model) = common::model() else { return };
    let params = ContextParams::default().with_n_ctx(128).with_threads(2);
    let mut ctx = Context::new(&model, &params).unwrap();
    let handle = ctx.cancel_handle();
    let mut sampler = SamplerBuilder::greedy().build(&model).unwrap();
    let options = GenerateOptions::default().with_max_tokens(50);
    let mut generation = ctx
        .generate(&mut sampler, "Once upon a time", &options)
        .unwrap();
    assert!(generation.next().unwrap().is_ok());
    handle.cancel();
    assert!(generation.next().is_none());
    assert_eq!(generation.finish_reason(), Some(FinishReason::Cancelled));
    assert_eq!(generation.stats().generated_tokens, 1);
}

#[test]
fn one_model_four_threads_same_greedy_output() {
    let Some(model) = common::model() else { return };
    let prompts = [
        "The quick brown fox",
        "In 1969, the first humans",
        "def fibonacci(n):",
        "Water boils at",
    ];
    let single: Vec<Vec<Token>> = prompts.iter().map(|p| greedy(&model, p, 16, 1)).collect();
    let handles: Vec<_> = prompts
        .iter()
        .map(|p| {
            let model = Arc::clone(&model);
            let prompt = p.to_string();
            std::thread::spawn(move || greedy(&model, &prompt, 16, 1))
        })
        .collect();
    let threaded: Vec<Vec<Token>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(single, threaded);
    assert!(single.iter().all(|t| t.len() == 16));
}

#[test]
fn kv_prefix_copy_and_remove() {
    let Some(model) = common::model() else { return };
    let params = ContextParams::default()
        .with_n_ctx(128)
        .with_n_seq_max(2)
        .with_threads(2);
    let mut ctx = Context::new(&model, &params).unwrap();
    let tokens = model
        .tokenize("A shared prefix of several tokens", true, false)
        .unwrap();
    let mut batch = ember_llama::Batch::new(tokens.len(), 2);
    batch.add_sequence(&tokens, 0, 0, true).unwrap();
    ctx.decode(&batch).unwrap();
    let last = tokens.len() as u32 - 1;
    assert_eq!(ctx.kv_pos_max(0).unwrap(), Some(last));
    assert_eq!(ctx.kv_pos_max(1).unwrap(), None);
    ctx.kv_copy(0, 1, None, None).unwrap();
    assert_eq!(ctx.kv_pos_max(1).unwrap(), Some(last));
    assert!(ctx.kv_remove(1, Some(2), None).unwrap());
    assert_eq!(ctx.kv_pos_max(1).unwrap(), Some(1));
    assert!(ctx.kv_remove(5, None, None).is_err());
    ctx.clear_kv();
    assert_eq!(ctx.kv_pos_max(0).unwrap(), None);
}

#[test]
fn json_grammar_output_parses_as_json() {
    let Some(model) = common::model() else { return };
    // A JSON object of a fixed shape, bounded so that greedy decoding must close it.
    let grammar = r#"
root   ::= "{" ws "\"name\":" ws string "," ws "\"age\":" ws number "," ws "\"tags\":" ws tags ws "}"
tags   ::= "[" ws ( string ( "," ws string ){0,2} )? ws "]"
string ::= "\"" [a-zA-Z0-9 ]{1,16} "\""
number ::= [1-9] [0-9]{0,2}
ws     ::= " "?
"#;
    let params = ContextParams::default().with_n_ctx(256).with_threads(2);
    let mut ctx = Context::new(&model, &params).unwrap();
    let mut sampler = SamplerBuilder::new()
        .grammar(grammar, "root")
        .select_greedy()
        .build(&model)
        .unwrap();
    let options = GenerateOptions::default().with_max_tokens(120);
    let mut generation = ctx
        .generate(&mut sampler, "A person described as JSON:\n", &options)
        .unwrap();
    let text = generation.collect_text().unwrap();
    assert_eq!(
        generation.finish_reason(),
        Some(FinishReason::EndOfGeneration),
        "{text:?}"
    );
    let value: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text:?}"));
    assert!(
        value["name"].is_string() && value["age"].is_u64(),
        "{value}"
    );

    // Top-k given before the grammar: the builder still runs the grammar first, so the
    // candidate set is never emptied (llama.cpp would throw and abort) and the answer
    // is the same greedy one.
    let mut sampler = SamplerBuilder::new()
        .top_k(1)
        .grammar(grammar, "root")
        .select_greedy()
        .build(&model)
        .unwrap();
    ctx.clear_kv();
    let again = ctx
        .generate(&mut sampler, "A person described as JSON:\n", &options)
        .unwrap()
        .collect_text()
        .unwrap();
    assert_eq!(again, text);
}

#[test]
fn seeded_sampling_is_reproducible() {
    let Some(model) = common::model() else { return };
    let params = ContextParams::default().with_n_ctx(128).with_threads(2);
    let mut ctx = Context::new(&model, &params).unwrap();
    let chain = SamplerBuilder::new()
        .penalties(32, 1.1, 0.1, 0.1)
        .top_k(40)
        .typical(0.95, 1)
        .top_p(0.9, 1)
        .min_p(0.05, 1)
        .temperature(0.9)
        .seeded(7);
    let options = GenerateOptions::default().with_max_tokens(8);
    let mut run = |b: &SamplerBuilder| {
        let mut s = b.build(&model).unwrap();
        let g = ctx
            .generate(&mut s, "My favourite food is", &options)
            .unwrap();
        g.map(|p| p.unwrap().token).collect::<Vec<_>>()
    };
    assert_eq!(run(&chain), run(&chain));
    let mirostat = SamplerBuilder::new()
        .temperature(0.8)
        .mirostat_v2(3, 5.0, 0.1);
    assert_eq!(run(&mirostat).len(), 8);
    let mirostat1 = SamplerBuilder::new()
        .temperature(0.8)
        .mirostat(3, 5.0, 0.1, 100);
    assert_eq!(run(&mirostat1).len(), 8);
}

/// `penalize_prompt`: the prompt's tokens count for the penalties (llama-server's behaviour),
/// so a greedy continuation of a repeated word leaves it from the first token; without it the
/// first token is the repeated word, penalised only once generated. A logit bias acts before
/// the greedy pick, and an id outside the vocabulary is refused.
#[test]
fn penalties_can_count_the_prompt_and_logit_bias_moves_the_pick() {
    let Some(model) = common::model() else { return };
    let params = ContextParams::default().with_n_ctx(256).with_threads(2);
    let mut ctx = Context::new(&model, &params).unwrap();
    let prompt = "one one one one one one one one";
    let options = GenerateOptions::default().with_max_tokens(1);
    let mut first = |builder: SamplerBuilder| {
        let mut sampler = builder.select_greedy().build(&model).unwrap();
        let mut generation = ctx.generate(&mut sampler, prompt, &options).unwrap();
        generation.collect_text().unwrap()
    };
    let plain = first(SamplerBuilder::new());
    assert_eq!(plain, " one");
    let generated_only = first(SamplerBuilder::new().penalties(64, 3.0, 0.0, 0.0));
    assert_eq!(generated_only, " one", "nothing generated yet to penalise");
    let with_prompt = first(
        SamplerBuilder::new()
            .penalties(64, 3.0, 0.0, 0.0)
            .penalize_prompt(true),
    );
    assert_ne!(with_prompt, " one", "the prompt's ' one' was not penalised");

    let banana = model.tokenize(" banana", false, false).unwrap()[0];
    let forced = first(SamplerBuilder::new().logit_bias([(banana, 100.0)]));
    assert_eq!(forced, " banana");
    let err = SamplerBuilder::new()
        .logit_bias([(Token(model.n_vocab()), 1.0)])
        .select_greedy()
        .build(&model)
        .unwrap_err();
    assert!(err.to_string().contains("not in the vocabulary"), "{err}");
    let err = SamplerBuilder::new()
        .logit_bias([(banana, f32::NAN)])
        .select_greedy()
        .build(&model)
        .unwrap_err();
    assert!(err.to_string().contains("logit bias"), "{err}");
}
