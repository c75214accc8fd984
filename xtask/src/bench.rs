//! `cargo xtask bench report`: build-support/bench's summary of what it measured.
//!
//! Reads OUT/runs.tsv (backend, round, test, side, tokens_per_s; one row per run),
//! builds.tsv (backend, seconds), devices.tsv (backend, llama-bench's backends, gpu_info,
//! cpu_info) and probes.txt (build-support/bench-probes' output); prints the table and writes
//! bench.csv, bench.json and bench.svg.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::stats::median;

/// `cargo xtask bench report`.
#[derive(clap::Args)]
pub struct ReportArgs {
    /// The benchmark's output folder.
    out: PathBuf,
    /// The model benchmarked.
    #[arg(long)]
    model: String,
    #[arg(long)]
    threads: u32,
    /// Repetitions per run.
    #[arg(long)]
    reps: u32,
    #[arg(long)]
    rounds: u32,
}

/// One run: one side's tokens/s for one test in one round.
#[derive(Clone)]
pub struct Run {
    backend: String,
    round: u32,
    test: String,
    side: String,
    tokens_per_s: f64,
}

/// One line of the table: medians over the rounds for one backend and test.
pub struct Row {
    pub backend: String,
    pub test: String,
    pub upstream_tps: Option<f64>,
    pub ember_tps: f64,
    /// ember/upstream per round (empty for the generation-only test).
    pub ratios: Vec<f64>,
    /// Full generation over tg (the generation-only test).
    pub gen_over_tg: Option<f64>,
}

impl Row {
    pub fn median_ratio(&self) -> Option<f64> {
        median(self.ratios.iter().copied())
    }
}

fn tsv(path: &Path) -> Result<Vec<Vec<String>>> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(text
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect())
}

fn read_runs(path: &Path) -> Result<Vec<Run>> {
    let rows = tsv(path)?;
    let Some((header, rows)) = rows.split_first() else {
        bail!("{} is empty", path.display())
    };
    if header.join("\t") != "backend\tround\ttest\tside\ttokens_per_s" {
        bail!("{}: unexpected header {header:?}", path.display());
    }
    rows.iter()
        .enumerate()
        .map(|(i, r)| {
            let [backend, round, test, side, tps] = r.as_slice() else {
                bail!(
                    "{} line {}: {} fields, expected 5",
                    path.display(),
                    i + 2,
                    r.len()
                )
            };
            Ok(Run {
                backend: backend.clone(),
                round: round
                    .parse()
                    .with_context(|| format!("{} line {}: round", path.display(), i + 2))?,
                test: test.clone(),
                side: side.clone(),
                tokens_per_s: tps
                    .parse()
                    .with_context(|| format!("{} line {}: tokens/s", path.display(), i + 2))?,
            })
        })
        .collect()
}

/// Values in first-seen order, without repeats.
fn unique<'a>(items: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    for item in items {
        if !seen.iter().any(|s| s == item) {
            seen.push(item.to_string());
        }
    }
    seen
}

/// The table's rows: per backend, pp and tg with their per-round ratios, and the full
/// generation against tg.
pub fn summarise(runs: &[Run]) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for backend in unique(runs.iter().map(|r| r.backend.as_str())) {
        let of_backend: Vec<&Run> = runs.iter().filter(|r| r.backend == backend).collect();
        let tests = unique(of_backend.iter().map(|r| r.test.as_str()));
        let find = |prefix: &str| {
            tests
                .iter()
                .find(|t| t.starts_with(prefix))
                .cloned()
                .with_context(|| format!("{backend}: no {prefix} runs"))
        };
        let (pp, tg, gen) = (find("pp")?, find("tg")?, find("gen")?);
        for test in [&pp, &tg] {
            let mut per_round: BTreeMap<u32, BTreeMap<&str, f64>> = BTreeMap::new();
            for r in of_backend.iter().filter(|r| &r.test == test) {
                per_round
                    .entry(r.round)
                    .or_default()
                    .insert(r.side.as_str(), r.tokens_per_s);
            }
            let side = |name: &str| -> Result<Vec<f64>> {
                per_round
                    .iter()
                    .map(|(round, sides)| {
                        sides.get(name).copied().with_context(|| {
                            format!("{backend} {test} round {round}: no {name} run")
                        })
                    })
                    .collect()
            };
            let (upstream, ember) = (side("upstream")?, side("ember")?);
            rows.push(Row {
                backend: backend.clone(),
                test: test.clone(),
                upstream_tps: median(upstream.iter().copied()),
                ember_tps: median(ember.iter().copied()).unwrap_or(f64::NAN),
                ratios: ember.iter().zip(&upstream).map(|(e, u)| e / u).collect(),
                gen_over_tg: None,
            });
        }
        let tps = |test: &str, side: Option<&str>| {
            median(
                of_backend
                    .iter()
                    .filter(|r| r.test == test && side.is_none_or(|s| r.side == s))
                    .map(|r| r.tokens_per_s),
            )
            .unwrap_or(f64::NAN)
        };
        let gen_tps = tps(&gen, None);
        rows.push(Row {
            backend: backend.clone(),
            test: gen.clone(),
            upstream_tps: None,
            ember_tps: gen_tps,
            ratios: Vec::new(),
            gen_over_tg: Some(gen_tps / tps(&tg, Some("ember"))),
        });
    }
    Ok(rows)
}

/// The figures build-support/bench-probes printed that bench.json keeps as numbers.
fn probes_figures(text: &str) -> Value {
    let mut probes = json!({ "text": text.trim().lines().collect::<Vec<_>>() });
    let first_number = |s: &str| {
        s.split_whitespace()
            .next()
            .and_then(|n| n.parse::<f64>().ok())
    };
    for line in text.lines() {
        let after_colon = line.split_once(':').map(|(_, v)| v).unwrap_or("");
        if line.starts_with("3. spawn time attached/detached") {
            probes["spawn_ratio_median"] = first_number(after_colon).into();
        } else if line.starts_with("2. consumer CPU per event") {
            probes["consumer_us_per_event"] = first_number(after_colon).into();
        } else if line.starts_with("   ") && line.contains(" ns  over ") {
            let mut words = line.split_whitespace();
            if let (Some(name), Some(ns)) = (
                words.next(),
                words.next().and_then(|n| n.parse::<f64>().ok()),
            ) {
                if probes.get("kernel_ns_per_event").is_none() {
                    probes["kernel_ns_per_event"] = json!({});
                }
                probes["kernel_ns_per_event"][name] = ns.into();
            }
        }
    }
    probes
}

pub fn report(args: &ReportArgs) -> Result<()> {
    let out = &args.out;
    let runs = read_runs(&out.join("runs.tsv"))?;
    let builds: Vec<(String, String)> = tsv(&out.join("builds.tsv"))?
        .into_iter()
        .filter_map(|r| Some((r.first()?.clone(), r.get(1)?.clone())))
        .collect();
    let mut devices = serde_json::Map::new();
    for r in tsv(&out.join("devices.tsv"))? {
        let field = |i: usize| r.get(i).cloned().unwrap_or_default();
        devices.insert(
            field(0),
            json!({ "llama_bench_backends": field(1), "gpu_info": field(2), "cpu_info": field(3) }),
        );
    }
    let rows = summarise(&runs)?;
    let probes_text = fs::read_to_string(out.join("probes.txt")).context("reading probes.txt")?;
    let probes = probes_figures(&probes_text);
    let model_name = Path::new(&args.model)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();

    // The table.
    println!(
        "model {model_name}, {} threads, {} repetitions per run, {} rounds \
         (ratio = ember/upstream, target >= 0.98; spread = min..max over the rounds)",
        args.threads, args.reps, args.rounds
    );
    for (backend, d) in &devices {
        if backend == "dispatch" {
            // Not llama-bench: the two sides are ember builds (build-support/bench).
            println!(
                "{backend}: {}",
                d["llama_bench_backends"].as_str().unwrap_or("")
            );
            continue;
        }
        let gpu = d["gpu_info"].as_str().unwrap_or("");
        println!(
            "{backend}: llama-bench ran on backends={}{}, cpu={}",
            d["llama_bench_backends"].as_str().unwrap_or(""),
            if gpu.is_empty() {
                String::new()
            } else {
                format!(", gpu={gpu}")
            },
            d["cpu_info"].as_str().unwrap_or("")
        );
    }
    println!(
        "{:8} {:7} {:>13} {:>11} {:>13} {:>15}",
        "backend", "test", "upstream t/s", "ember t/s", "median ratio", "spread"
    );
    for r in &rows {
        match (r.upstream_tps, r.gen_over_tg) {
            (_, Some(gen_over_tg)) => println!(
                "{:8} {:7} {:>13} {:11.2} {:>13} {:>2}(full generation = {gen_over_tg:.3} x tg)",
                r.backend, r.test, "-", r.ember_tps, "-", ""
            ),
            (upstream, None) => {
                let (lo, hi) = r
                    .ratios
                    .iter()
                    .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
                        (lo.min(x), hi.max(x))
                    });
                println!(
                    "{:8} {:7} {:13.2} {:11.2} {:13.4} {lo:7.4}..{hi:.4}",
                    r.backend,
                    r.test,
                    upstream.unwrap_or(f64::NAN),
                    r.ember_tps,
                    r.median_ratio().unwrap_or(f64::NAN)
                );
            }
        }
    }
    println!(
        "build seconds (upstream llama-bench + wrapper, incremental): {}",
        builds
            .iter()
            .map(|(b, s)| format!("{b} {s}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("probe overhead (build-support/bench-probes):");
    for line in probes_text.trim().lines() {
        if ["1.", "2.", "3."].iter().any(|p| line.starts_with(p))
            || line.starts_with("   ")
            || line.starts_with("probe overhead")
        {
            println!("  {line}");
        }
    }

    // The files.
    let mut csv = String::from("backend,round,test,side,tokens_per_s\n");
    for r in &runs {
        writeln!(
            csv,
            "{},{},{},{},{:.3}",
            r.backend, r.round, r.test, r.side, r.tokens_per_s
        )?;
    }
    fs::write(out.join("bench.csv"), csv)?;
    let summary: Vec<Value> = rows
        .iter()
        .map(|r| {
            let (lo, hi) = (r.ratios.iter().copied().reduce(f64::min), r.ratios.iter().copied().reduce(f64::max));
            let mut v = json!({
                "backend": r.backend, "test": r.test, "upstream_tps": r.upstream_tps, "ember_tps": r.ember_tps,
                "median_ratio": r.median_ratio(), "min_ratio": lo, "max_ratio": hi, "ratios": r.ratios,
            });
            if let Some(g) = r.gen_over_tg {
                v["gen_over_tg"] = g.into();
            }
            v
        })
        .collect();
    let runs_json: Vec<Value> = runs
        .iter()
        .map(|r| json!({"backend": r.backend, "round": r.round, "test": r.test, "side": r.side, "tokens_per_s": r.tokens_per_s}))
        .collect();
    let build_seconds: serde_json::Map<String, Value> = builds
        .iter()
        .map(|(b, s)| {
            (
                b.clone(),
                s.parse::<u64>().map(Value::from).unwrap_or(Value::Null),
            )
        })
        .collect();
    let doc = json!({
        "model": args.model, "threads": args.threads, "repetitions": args.reps, "rounds": args.rounds,
        "summary": summary, "runs": runs_json, "devices": devices, "build_seconds": build_seconds,
        "probes": probes,
    });
    fs::write(
        out.join("bench.json"),
        serde_json::to_string_pretty(&doc)? + "\n",
    )?;
    fs::write(
        out.join("bench.svg"),
        crate::chart::tokens_per_backend(&rows, &model_name, args.threads, args.rounds),
    )?;
    println!(
        "wrote {}/bench.csv, bench.json, bench.svg, probes.txt",
        out.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(round: u32, test: &str, side: &str, tps: f64) -> Run {
        Run {
            backend: "cpu".into(),
            round,
            test: test.into(),
            side: side.into(),
            tokens_per_s: tps,
        }
    }

    #[test]
    fn ratios_pair_the_sides_of_each_round() {
        let runs = vec![
            run(1, "pp512", "upstream", 100.0),
            run(1, "pp512", "ember", 99.0),
            run(2, "pp512", "ember", 102.0),
            run(2, "pp512", "upstream", 100.0),
            run(3, "pp512", "upstream", 50.0),
            run(3, "pp512", "ember", 50.0),
            run(1, "tg128", "upstream", 20.0),
            run(1, "tg128", "ember", 20.0),
            run(1, "gen128", "ember", 19.0),
        ];
        let rows = summarise(&runs).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].ratios, vec![0.99, 1.02, 1.0]);
        assert_eq!(rows[0].median_ratio(), Some(1.0));
        assert_eq!(rows[0].upstream_tps, Some(100.0));
        assert_eq!(rows[0].ember_tps, 99.0);
        assert_eq!(rows[2].gen_over_tg, Some(0.95));
    }

    #[test]
    fn a_round_without_one_side_is_an_error() {
        let runs = vec![
            run(1, "pp512", "upstream", 1.0),
            run(1, "tg128", "upstream", 1.0),
            run(1, "gen128", "ember", 1.0),
        ];
        let err = summarise(&runs)
            .err()
            .expect("missing ember side")
            .to_string();
        assert!(err.contains("round 1: no ember run"), "{err}");
    }

    #[test]
    fn probe_figures_are_parsed() {
        let text = "1. kernel cost per event (bpf_stats, all rounds):\n   handle_exec       812 ns  over 100 runs\n\
                    2. consumer CPU per event: 1.25 us  (10 us over 8 events)\n\
                    3. spawn time attached/detached, median of 5: 1.0123  (all: ...)\n";
        let p = probes_figures(text);
        assert_eq!(p["spawn_ratio_median"], 1.0123);
        assert_eq!(p["consumer_us_per_event"], 1.25);
        assert_eq!(p["kernel_ns_per_event"]["handle_exec"], 812.0);
    }
}
