//! Criterion benchmarks of the safe API on the backend this build enables.
//!
//! Run: `EMBER_TEST_MODEL=models/gemma-3-270m-q4_k_m.gguf cargo bench --bench backends`
//! (CPU), then the same with `--features vulkan` (or `cuda`, `hip`, `metal`) in the same
//! target dir: every id starts with the backend (`cpu/tg128`, `vulkan/tg128`), so the runs
//! sit side by side in one report, `target/criterion/report/index.html`.
//!
//! Benchmarks: `load_mmap` (model load, mmap), `pp512` (one 512-token batch), `tg128` (128
//! single-token decodes), `embed16` (16 short texts through an embeddings context) and the
//! sampler chains `sample_greedy` and `sample_chain` (penalties, top-k, top-p, min-p,
//! temperature, dist) on fixed logits; `constrained/sample_free`, `sample_json_schema` and
//! `sample_json_object`: the per-token cost of sampling inside generations, free and under
//! the grammar of a JSON Schema (llama.cpp's json-schema-to-grammar); `chat_parse/*`: a
//! streamed tool call read chunk by chunk, the parser settings read at each chunk or once.
//! Throughputs are in tokens (texts for `embed16`, chunks for `chat_parse`), so the report
//! shows tokens/s.
//!
//! Environment: EMBER_TEST_MODEL (the GGUF; without it this prints how to run and exits 0),
//! EMBER_BENCH_THREADS (default: all CPUs), EMBER_BENCH_GPU_LAYERS (default: 0 on cpu, all
//! layers on a GPU backend). `cargo test --all-targets` runs each benchmark once as a check.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

mod common;

use common::Lcg;
use criterion::{criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput};
use ember::llama::{
    Batch, Context, ContextParams, FlashAttention, Model, ModelParams, Pooling, SamplerBuilder,
    Token,
};

const PP: usize = 512;
const TG: usize = 128;
const EMBED_TEXTS: usize = 16;

/// The backend compiled in; a build enables at most one GPU backend for benchmarking.
fn backend() -> &'static str {
    if cfg!(feature = "cuda") {
        "cuda"
    } else if cfg!(feature = "vulkan") {
        "vulkan"
    } else if cfg!(feature = "hip") {
        "hip"
    } else if cfg!(feature = "metal") {
        "metal"
    } else {
        "cpu"
    }
}

struct Setup {
    path: PathBuf,
    model_params: ModelParams,
    threads: i32,
}

fn setup() -> Option<Setup> {
    let Some(path) = std::env::var_os("EMBER_TEST_MODEL").map(PathBuf::from) else {
        eprintln!(
            "benches/backends.rs: nothing to run without a model. Run:\n  \
             EMBER_TEST_MODEL=models/gemma-3-270m-q4_k_m.gguf cargo bench --bench backends \
             [--features vulkan|cuda]\n(build-support/fetch-model downloads the test model)"
        );
        return None;
    };
    let threads = env_number("EMBER_BENCH_THREADS")
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get() as i32));
    let gpu_layers =
        env_number("EMBER_BENCH_GPU_LAYERS").unwrap_or(if backend() == "cpu" { 0 } else { 999 });
    if gpu_layers > 0 {
        ember::llama::backend::init().unwrap_or_else(|e| panic!("{e}"));
        // SAFETY: plain query of the backend registry, after llama_backend_init (init above).
        let gpu = unsafe { ember::llama_sys::llama_supports_gpu_offload() };
        assert!(
            gpu,
            "the {} build sees no GPU device, so its ids would name a backend that is not used. \
             Without a GPU, Vulkan runs on lavapipe with \
             VK_ICD_FILENAMES=/usr/share/vulkan/icd.d/lvp_icd.x86_64.json GGML_VK_VISIBLE_DEVICES=0; \
             or set EMBER_BENCH_GPU_LAYERS=0",
            backend()
        );
    }
    Some(Setup {
        path,
        model_params: ModelParams::default().with_gpu_layers(gpu_layers),
        threads,
    })
}

fn env_number(name: &str) -> Option<i32> {
    let value = std::env::var(name).ok()?;
    match value.parse() {
        Ok(n) => Some(n),
        Err(_) => panic!("{name}={value}: expected a whole number"),
    }
}

fn load(path: &Path, params: &ModelParams) -> Arc<Model> {
    match Model::load(path, params) {
        Ok(model) => Arc::new(model),
        Err(err) => panic!("loading {}: {err}", path.display()),
    }
}

fn benches(c: &mut Criterion) {
    let Some(setup) = setup() else { return };
    let backend = backend();
    let model = load(&setup.path, &setup.model_params);
    let n_vocab = model.n_vocab();
    let params = ContextParams::default()
        .with_n_batch(PP as u32)
        .with_n_ubatch(PP as u32)
        .with_threads(setup.threads)
        .with_flash_attention(FlashAttention::Auto);
    let id = |name: &str| BenchmarkId::new(backend, name);

    // Model load: page-cache warm after the load above, so this is mmap + tensor setup (and
    // the upload to the GPU on a GPU backend).
    let mut group = c.benchmark_group("load");
    group.sample_size(10).sampling_mode(SamplingMode::Flat);
    group.bench_function(id("load_mmap"), |b| {
        b.iter(|| load(&setup.path, &setup.model_params.clone().with_mmap(true)))
    });
    group.finish();

    let mut group = c.benchmark_group("decode");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(20));

    // pp512: one batch of 512 tokens into an empty KV cache.
    let mut ctx = Context::new(&model, &params.clone().with_n_ctx(PP as u32)).expect("context");
    let mut rng = Lcg(42);
    let mut batch = Batch::new(PP, 1);
    for pos in 0..PP {
        batch
            .add(rng.token(n_vocab), pos as i32, &[0], pos + 1 == PP)
            .expect("batch");
    }
    group.throughput(Throughput::Elements(PP as u64));
    group.bench_function(id("pp512"), |b| {
        b.iter(|| {
            ctx.clear_kv();
            ctx.decode(&batch).expect("decode");
        })
    });

    // tg128: 128 single-token decodes, each attending to the ones before.
    let mut ctx = Context::new(&model, &params.clone().with_n_ctx(TG as u32)).expect("context");
    let tokens: Vec<Token> = (0..TG).map(|_| rng.token(n_vocab)).collect();
    let mut one = Batch::new(1, 1);
    group.throughput(Throughput::Elements(TG as u64));
    group.bench_function(id("tg128"), |b| {
        b.iter(|| {
            ctx.clear_kv();
            for (pos, token) in tokens.iter().enumerate() {
                one.clear();
                one.add(*token, pos as i32, &[0], true).expect("batch");
                ctx.decode(&one).expect("decode");
            }
        })
    });
    group.finish();

    // Embeddings: 16 short texts, mean-pooled, one sequence at a time.
    let texts: Vec<String> = (0..EMBED_TEXTS)
        .map(|i| format!("Sentence number {i} about benchmarks, backends and tokens per second."))
        .collect();
    let mut embed_ctx = Context::new(
        &model,
        &params
            .clone()
            .with_n_ctx(PP as u32)
            .with_embeddings(true)
            .with_pooling(Pooling::Mean),
    )
    .expect("embeddings context");
    let mut group = c.benchmark_group("embeddings");
    group
        .sample_size(10)
        .throughput(Throughput::Elements(EMBED_TEXTS as u64));
    group.bench_function(id("embed16"), |b| {
        b.iter(|| black_box(embed_ctx.embed(&texts).expect("embed")))
    });
    group.finish();

    // Sampler chains on the fixed logits of one decode: the per-token cost sampling adds.
    let mut ctx = Context::new(&model, &params.clone().with_n_ctx(PP as u32)).expect("context");
    ctx.decode(&batch).expect("decode");
    let mut group = c.benchmark_group("sampler");
    group.throughput(Throughput::Elements(1));
    let chains = [
        ("sample_greedy", SamplerBuilder::greedy()),
        (
            "sample_chain",
            SamplerBuilder::new()
                .penalties(64, 1.1, 0.0, 0.0)
                .top_k(40)
                .top_p(0.95, 1)
                .min_p(0.05, 1)
                .temperature(0.8)
                .seeded(7),
        ),
    ];
    for (name, builder) in chains {
        let mut sampler = builder.build(&model).expect("sampler");
        group.bench_function(id(name), |b| {
            b.iter(|| black_box(sampler.sample(&ctx, -1).expect("sample")))
        });
    }
    group.finish();

    constrained(c, &model, &params, backend);
    chat_parse(c, &model, backend);
}

/// Reading a streamed answer (issue 34): the text so far parsed at each chunk (a tool call
/// behind reasoning, Qwen3's template, a 1300-token system prompt), with the settings read
/// at each chunk (`parse_output` over the whole rendering, as insightd did) or once
/// (`ChatParser`, as it does now). Throughput in chunks.
fn chat_parse(c: &mut Criterion, model: &Arc<Model>, backend: &str) {
    use ember::llama::chat_template::{parse_output, ChatParser, ChatTemplates};
    let id = |name: &str| BenchmarkId::new(backend, name);
    let template = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/vendor/llama.cpp/models/templates/Qwen-Qwen3-0.6B.jinja"
    ))
    .expect("Qwen3's template in the pinned tree (build-support/fetch-llama-cpp)");
    let templates = ChatTemplates::new(model, Some(&template)).expect("templates");
    let request = serde_json::json!({
        "messages": [
            {"role": "system", "content": "You watch a fleet of Linux nodes. ".repeat(200)},
            {"role": "user", "content": "What is the weather in Paris?"}
        ],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {
            "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
    });
    let settings = templates
        .apply(&request.to_string(), r#"{"use_jinja": true}"#)
        .expect("render");
    let text = "<think>\nThe user asks for the weather: I call the tool.\n</think>\n\n\
        <tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>";
    let ends: Vec<usize> = (1..=text.len())
        .filter(|&i| text.is_char_boundary(i))
        .collect();
    let mut group = c.benchmark_group("chat_parse");
    group
        .throughput(Throughput::Elements(ends.len() as u64))
        .sample_size(10);
    group.bench_function(id("stream_settings_each_chunk"), |b| {
        b.iter(|| {
            for &end in &ends {
                black_box(parse_output(&settings, &text[..end], end < text.len()).expect("parse"));
            }
        })
    });
    group.bench_function(id("stream_parser_once"), |b| {
        b.iter(|| {
            let parser = ChatParser::new(&settings).expect("parser");
            for &end in &ends {
                black_box(parser.parse(&text[..end], end < text.len()).expect("parse"));
            }
        })
    });
    group.finish();
}

/// Per-token cost of constrained sampling (issue 34): greedy sampling inside real generations,
/// free and under llama.cpp's grammar of a JSON Schema (`pattern`, `anyOf`, `$ref`, bounds)
/// and of `json_object`. Only the `sample` calls are timed (each accepts its token into the
/// grammar, as a generation does); the decodes between them are not.
fn constrained(c: &mut Criterion, model: &Arc<Model>, params: &ContextParams, backend: &str) {
    let id = |name: &str| BenchmarkId::new(backend, name);
    use ember::llama::chat_template::json_schema_to_grammar;
    let schema = serde_json::json!({
        "$defs": {"language": {"type": "string", "enum": ["rust", "c", "python"]}},
        "type": "object",
        "properties": {
            "name": {"type": "string", "pattern": "^[A-Z][a-z]{1,10}$"},
            "age": {"type": "integer", "minimum": 18, "maximum": 99},
            "language": {"$ref": "#/$defs/language"},
            "nickname": {"anyOf": [{"type": "null"}, {"type": "string", "maxLength": 12}]}
        },
        "required": ["name", "age", "language", "nickname"],
        "additionalProperties": false
    });
    let schema_gbnf = json_schema_to_grammar(&schema.to_string()).expect("schema grammar");
    let object_gbnf = json_schema_to_grammar(r#"{"type": "object"}"#).expect("object grammar");
    let prompt = model
        .tokenize("Describe a programmer as a JSON object:", true, false)
        .expect("tokenize");
    let mut ctx = Context::new(model, &params.clone().with_n_ctx(256)).expect("context");
    let mut group = c.benchmark_group("constrained");
    group.throughput(Throughput::Elements(1)).sample_size(20);
    let chains = [
        ("sample_free", SamplerBuilder::greedy()),
        (
            "sample_json_schema",
            SamplerBuilder::new()
                .grammar(&schema_gbnf, "root")
                .select_greedy(),
        ),
        (
            "sample_json_object",
            SamplerBuilder::new()
                .grammar(&object_gbnf, "root")
                .select_greedy(),
        ),
    ];
    for (name, builder) in chains {
        let mut sampler = builder.build(model).expect("sampler");
        group.bench_function(id(name), |b| {
            b.iter_custom(|tokens| {
                let mut sampling = Duration::ZERO;
                let mut done = 0;
                while done < tokens {
                    // One generation of up to 64 tokens, or to the grammar's end.
                    ctx.clear_kv();
                    sampler.start(&prompt);
                    let mut batch = Batch::new(prompt.len(), 1);
                    for (pos, &t) in prompt.iter().enumerate() {
                        batch
                            .add(t, pos as i32, &[0], pos + 1 == prompt.len())
                            .expect("batch");
                    }
                    ctx.decode(&batch).expect("decode");
                    let mut one = Batch::new(1, 1);
                    for pos in prompt.len()..prompt.len() + 64 {
                        let started = std::time::Instant::now();
                        let token = sampler.sample(&ctx, -1).expect("sample");
                        sampling += started.elapsed();
                        done += 1;
                        if done == tokens || model.is_eog(token) {
                            break;
                        }
                        one.clear();
                        one.add(token, pos as i32, &[0], true).expect("batch");
                        ctx.decode(&one).expect("decode");
                    }
                }
                sampling
            })
        });
    }
    group.finish();
}

// In a private module: the `pub fn` that criterion_group! defines needs no docs there.
mod group {
    criterion::criterion_group!(backends, super::benches);
}
criterion_main!(group::backends);
