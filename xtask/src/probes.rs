//! build-support/bench-probes' figures, from the files it writes into its scratch folder:
//!
//! - `kernel`, `kernel-rate`: `name run_time_ns run_cnt` per program per run (bpf_stats);
//! - `attached`: `seconds events=N cpu_us=N ring_drops=N channel_drops=N` per attached round
//!   (the consumer's report after the spawner's seconds);
//! - `ratios`: attached/detached seconds per round;
//! - `rate`: `workers in_flight detached_seconds seconds key=value...` per phase-4 setting.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::Value;

use crate::stats::{median, read_numbers};

/// `cargo xtask bench probes-report`.
#[derive(clap::Args)]
pub struct ReportArgs {
    /// bench-probes' scratch folder.
    scratch: PathBuf,
    /// Spawns per round (phases 1-3).
    #[arg(long)]
    spawns: u64,
    /// Spawns per phase-4 setting (0: phase 4 was skipped).
    #[arg(long)]
    rate_spawns: u64,
}

fn read(path: &Path) -> Result<String> {
    fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// Summed run time and run count per program.
fn kernel_totals(path: &Path) -> Result<BTreeMap<String, (u64, u64)>> {
    let mut totals = BTreeMap::new();
    for line in read(path)?.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [name, ns, cnt] = f.as_slice() else {
            anyhow::bail!("{}: bad line {line:?}", path.display())
        };
        let t: &mut (u64, u64) = totals.entry(name.to_string()).or_default();
        t.0 += ns.parse::<u64>()?;
        t.1 += cnt.parse::<u64>()?;
    }
    Ok(totals)
}

/// The consumer's `key=value` report.
struct Report {
    events: u64,
    cpu_us: u64,
    drops: u64,
}

fn consumer_report<'a>(fields: impl Iterator<Item = &'a str>) -> Result<Report> {
    let kv: BTreeMap<&str, u64> = fields
        .filter_map(|f| f.split_once('='))
        .map(|(k, v)| Ok((k, v.parse::<u64>().with_context(|| format!("{k}={v}"))?)))
        .collect::<Result<_>>()?;
    let get = |k: &str| {
        kv.get(k)
            .copied()
            .with_context(|| format!("the consumer's report has no {k}"))
    };
    Ok(Report {
        events: get("events")?,
        cpu_us: get("cpu_us")?,
        drops: get("ring_drops")? + get("channel_drops")?,
    })
}

pub fn report(args: &ReportArgs) -> Result<()> {
    let dir = &args.scratch;
    println!("1. kernel cost per event (bpf_stats, all rounds):");
    for (name, (ns, cnt)) in kernel_totals(&dir.join("kernel"))? {
        println!(
            "   {name:12} {:8.0} ns  over {cnt} runs",
            ns as f64 / cnt.max(1) as f64
        );
    }
    let (mut events, mut cpu, mut drops, mut best) = (0, 0, 0, None::<f64>);
    for line in read(&dir.join("attached"))?
        .lines()
        .filter(|l| !l.trim().is_empty())
    {
        let mut f = line.split_whitespace();
        let secs: f64 = f
            .next()
            .unwrap_or("")
            .parse()
            .with_context(|| format!("attached: {line:?}"))?;
        let r = consumer_report(f)?;
        events += r.events;
        cpu += r.cpu_us;
        drops += r.drops;
        let rate = args.spawns as f64 / secs;
        if r.drops == 0 && best.is_none_or(|b| rate > b) {
            best = Some(rate);
        }
    }
    println!(
        "2. consumer CPU per event: {:.2} us  ({cpu} us over {events} events)",
        cpu as f64 / events.max(1) as f64
    );
    let ratios = read_numbers(&read(&dir.join("ratios"))?, "ratios")?;
    println!(
        "3. spawn time attached/detached, median of {}: {:.4}  (all: {})",
        ratios.len(),
        median(ratios.iter().copied()).unwrap_or(f64::NAN),
        ratios
            .iter()
            .map(|r| format!("{r:.4}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    match best {
        Some(b) => println!("   highest exec rate with 0 drops: {b:.0} exec/s"),
        None => println!("   every attached round dropped events"),
    }
    println!("   drops over all attached rounds: {drops}");

    if args.rate_spawns == 0 {
        return Ok(());
    }
    let n = args.rate_spawns as f64;
    println!(
        "4. exec rate with the static one-syscall program, {} spawns per setting:",
        args.rate_spawns
    );
    let mut best = None::<f64>;
    for line in read(&dir.join("rate"))?
        .lines()
        .filter(|l| !l.trim().is_empty())
    {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [w, c, detached, secs, rest @ ..] = f.as_slice() else {
            anyhow::bail!("rate: bad line {line:?}")
        };
        let (detached, secs): (f64, f64) = (detached.parse()?, secs.parse()?);
        let r = consumer_report(rest.iter().copied())?;
        let rate = n / secs;
        println!(
            "   {w:>2} workers x {c:>2} in flight: detached {:6.0}/s, attached {rate:6.0}/s, {} drops, \
             consumer {:.2} us/event over {} events",
            n / detached,
            r.drops,
            r.cpu_us as f64 / r.events.max(1) as f64,
            r.events
        );
        if r.drops == 0 && best.is_none_or(|b| rate > b) {
            best = Some(rate);
        }
    }
    match best {
        Some(b) => println!("   highest exec rate held with 0 drops: {b:.0} exec/s"),
        None => println!("   every setting dropped events"),
    }
    let kernel = kernel_totals(&dir.join("kernel-rate"))?;
    println!(
        "   kernel cost per event in this phase: {}",
        kernel
            .iter()
            .map(|(name, (ns, c))| format!("{name} {:.0} ns", *ns as f64 / (*c).max(1) as f64))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

/// The programs bench-probes loads (probes.bpf.c's process-lifecycle handlers).
const OURS: [&str; 3] = ["handle_exec", "handle_fork", "handle_exit"];

fn programs(path: &Path) -> Result<Vec<Value>> {
    let doc: Value = serde_json::from_str(&read(path)?)
        .with_context(|| format!("parsing {}", path.display()))?;
    Ok(doc.as_array().cloned().unwrap_or_default())
}

fn our_ids(path: &Path) -> Result<HashSet<u64>> {
    Ok(programs(path)?
        .iter()
        .filter(|p| p["name"].as_str().is_some_and(|n| OURS.contains(&n)))
        .filter_map(|p| p["id"].as_u64())
        .collect())
}

/// `cargo xtask bench bpf-stats`.
pub fn bpf_stats(before: &Path, loaded: &Path, now: &Path) -> Result<()> {
    let before = our_ids(before)?;
    let ours: HashSet<u64> = our_ids(loaded)?.difference(&before).copied().collect();
    for p in programs(now)? {
        if p["id"].as_u64().is_some_and(|id| ours.contains(&id)) {
            println!(
                "{} {} {}",
                p["name"].as_str().unwrap_or("?"),
                p["run_time_ns"].as_u64().unwrap_or(0),
                p["run_cnt"].as_u64().unwrap_or(0)
            );
        }
    }
    Ok(())
}
