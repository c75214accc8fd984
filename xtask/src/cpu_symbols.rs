//! `cargo xtask cpu-symbols`: checks a linked binary's symbol table (`nm`) against the CPU
//! variants ember-llama-sys linked into it (its `cpu-variants/manifest.txt`).
//!
//! What it proves, for a binary built with symbols (`-C strip=none`):
//! - each variant is linked once: its renamed entry points `ggml_cpu_<v>_*` are defined once,
//!   and nothing else of it is global;
//! - no ggml-cpu internal is global any more (`ggml_vec_dot_q4_K_q8_K` and the other strong
//!   symbols a variant's ggml-cpu defined): an unrenamed or doubly linked ggml-cpu would show
//!   here;
//! - the unprefixed ggml-cpu.h functions the program uses are defined once, by the dispatcher
//!   (at an address that is none of the variants' entry points);
//! - when ember-llama-sys made its llama.cpp private (`private/manifest.txt`: every symbol
//!   renamed `ember_*`), no C or C++ llama/ggml/gguf symbol of the binary is global without
//!   that prefix. The checks above then apply to the variants' names without the prefix.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::json;
use crate::symcheck;
use anyhow::{bail, ensure, Context, Result};

/// `cargo xtask cpu-symbols`'s arguments.
#[derive(clap::Args)]
pub struct Args {
    /// `cargo build --message-format=json` output of the build that made the binary.
    #[arg(long)]
    messages: PathBuf,
    /// The binary target's name (e.g. generate).
    #[arg(long)]
    target: String,
}

/// What ember-llama-sys' build wrote: the variants, the entry points the dispatcher
/// forwards, and the original global symbols of the variants with their `nm` type.
struct Manifest {
    variants: Vec<String>,
    entries: BTreeSet<String>,
    internals: BTreeMap<String, char>,
}

/// One `nm -P` line: name, type letter, address.
struct Symbol {
    name: String,
    kind: char,
    address: u64,
}

pub fn run(args: &Args) -> Result<()> {
    let (binary, out_dir) = from_messages(&args.messages, &args.target)?;
    let manifest = read_manifest(&out_dir.join("cpu-variants/manifest.txt"))?;
    let mut symbols = nm(&binary)?;
    ensure!(
        !symbols.is_empty(),
        "{} has no symbol table: build it with `-C strip=none`",
        binary.display()
    );
    let prefix = read_prefix(&out_dir.join("private/manifest.txt"))?;
    if let Some(prefix) = &prefix {
        let renamed = check_private(prefix, &symbols)?;
        println!(
            "{}: {renamed} global symbols of llama.cpp carry the prefix {prefix}, none is \
             left without it",
            binary.display()
        );
        // The variants' and dispatcher's names, and the variants' strong internals, are checked
        // below without the prefix. Not weak C++ names: libstdc++ defines some of them too.
        for s in &mut symbols {
            if let Some(rest) = s.name.strip_prefix(prefix.as_str()) {
                let strong_internal = manifest
                    .internals
                    .get(rest)
                    .is_some_and(|kind| !matches!(kind, 'W' | 'V' | 'u'));
                if rest.starts_with("ggml_cpu_")
                    || manifest.entries.contains(rest)
                    || strong_internal
                {
                    s.name = rest.to_string();
                }
            }
        }
    }
    let report = check(&manifest, &symbols)?;
    println!("{}: {report}", binary.display());
    Ok(())
}

/// The prefix ember-llama-sys gave its llama.cpp's symbols, if it renamed them.
fn read_prefix(path: &Path) -> Result<Option<String>> {
    if !path.exists() {
        return Ok(None);
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let prefix = text
        .lines()
        .find_map(|l| l.strip_prefix("prefix "))
        .with_context(|| format!("{} names no prefix", path.display()))?;
    Ok(Some(prefix.trim().to_string()))
}

/// Whether `name` is a Rust symbol (v0 or legacy mangling), which is not llama.cpp's. ThinLTO
/// may promote a local one to a global with a `.llvm.<number>` suffix (seen on aarch64).
fn is_rust_symbol(name: &str) -> bool {
    if name.starts_with("_R") {
        return true;
    }
    let name = match name.rsplit_once(".llvm.") {
        Some((base, suffix)) if suffix.bytes().all(|b| b.is_ascii_digit()) => base,
        _ => name,
    };
    let Some(body) = name.strip_suffix('E') else {
        return false;
    };
    body.len() > 19
        && body[body.len() - 19..].starts_with("17h")
        && body[body.len() - 16..]
            .bytes()
            .all(|b| b.is_ascii_hexdigit())
}

/// Fails on any global C or C++ symbol naming llama/ggml/gguf without `prefix`; returns how
/// many global symbols carry it.
fn check_private(prefix: &str, symbols: &[Symbol]) -> Result<usize> {
    let global = |s: &&Symbol| s.kind.is_ascii_uppercase() || s.kind == 'u';
    let left: Vec<&str> = symbols
        .iter()
        .filter(global)
        .filter(|s| !s.name.starts_with(prefix) && !is_rust_symbol(&s.name))
        .filter(|s| symcheck::is_llama_name(&s.name))
        .map(|s| s.name.as_str())
        .collect();
    ensure!(
        left.is_empty(),
        "{} llama.cpp symbols are global without the prefix {prefix} (another copy of \
         llama.cpp or ggml in this binary would clash with them): {:?}",
        left.len(),
        &left[..left.len().min(20)]
    );
    Ok(symbols
        .iter()
        .filter(global)
        .filter(|s| s.name.starts_with(prefix))
        .count())
}

/// The checks; on success, a one-line summary.
fn check(manifest: &Manifest, symbols: &[Symbol]) -> Result<String> {
    let global = |s: &&Symbol| {
        s.kind.is_ascii_uppercase() && !matches!(s.kind, 'U' | 'W' | 'V')
            || matches!(s.kind, 'W' | 'V' | 'u')
    };
    let globals: Vec<&Symbol> = symbols.iter().filter(global).collect();
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for s in &globals {
        *count.entry(&s.name).or_default() += 1;
    }
    let doubled: Vec<_> = count
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(s, _)| *s)
        .collect();
    ensure!(
        doubled.is_empty(),
        "global symbols defined more than once: {doubled:?}"
    );

    // Each variant once, with only its renamed entry points global.
    let mut variant_entries: BTreeMap<&str, u64> = BTreeMap::new();
    for variant in &manifest.variants {
        let prefix = format!("ggml_cpu_{variant}_");
        let score = format!("{prefix}ggml_backend_score");
        ensure!(
            count.contains_key(score.as_str()),
            "variant {variant} is not linked in: {score} is missing"
        );
        for s in globals.iter().filter(|s| s.name.starts_with(&prefix)) {
            let rest = &s.name[prefix.len()..];
            let known = manifest.entries.contains(rest)
                || rest == "ggml_backend_score"
                || manifest.internals.get(rest) == Some(&'u');
            ensure!(
                known,
                "{} is global but is no entry point of variant {variant}",
                s.name
            );
            variant_entries.insert(&s.name, s.address);
        }
    }

    // No ggml-cpu internal left global; the entry points only from the dispatcher.
    let mut dispatched = 0;
    for s in &globals {
        let Some(kind) = manifest.internals.get(&s.name) else {
            continue;
        };
        if manifest.entries.contains(&s.name) {
            let aliased: Vec<_> = variant_entries
                .iter()
                .filter(|(_, a)| **a == s.address)
                .map(|(n, _)| *n)
                .collect();
            ensure!(
                aliased.is_empty(),
                "{} is at the address of {aliased:?}: a variant's entry point, not the dispatcher's",
                s.name
            );
            dispatched += 1;
        } else if !matches!(kind, 'W' | 'V' | 'u') {
            bail!(
                "{} ({}) is a global symbol of the binary, but it is a ggml-cpu internal that \
                 every variant should hold privately",
                s.name,
                s.kind
            );
        }
    }
    // Weak ones may stay global under their name: ggml-base's or libllama's own copy.
    let private = manifest
        .internals
        .keys()
        .filter(|n| !count.contains_key(n.as_str()))
        .count();
    Ok(format!(
        "{} variants ({}), {} renamed entry points global, {} ggml-cpu.h functions from the \
         dispatcher, {} ggml-cpu internals private",
        manifest.variants.len(),
        manifest.variants.join(" "),
        variant_entries.len(),
        dispatched,
        private
    ))
}

/// The target's executable and ember-llama-sys' OUT_DIR, from cargo's JSON messages.
fn from_messages(path: &Path, target: &str) -> Result<(PathBuf, PathBuf)> {
    let messages = std::fs::read(path).with_context(|| format!("opening {}", path.display()))?;
    let context = || path.display().to_string();
    let binary = json::executable(&messages, target).with_context(context)?;
    let out_dir = json::build_script_out_dir(&messages, "ember-llama-sys").with_context(context)?;
    Ok((binary, out_dir))
}

fn read_manifest(path: &Path) -> Result<Manifest> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "reading {}: was ember-llama-sys built with CPU variants (x86-64 Linux, no `native`)?",
            path.display()
        )
    })?;
    let mut manifest = Manifest {
        variants: Vec::new(),
        entries: BTreeSet::new(),
        internals: BTreeMap::new(),
    };
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            ["variant", name] => manifest.variants.push(name.to_string()),
            ["entry", name] => {
                manifest.entries.insert(name.to_string());
            }
            ["internal", name, kind] => {
                let kind = kind.chars().next().unwrap_or('?');
                manifest.internals.insert(name.to_string(), kind);
            }
            _ => bail!("{}: unexpected line `{line}`", path.display()),
        }
    }
    ensure!(
        !manifest.variants.is_empty(),
        "{} lists no variant",
        path.display()
    );
    Ok(manifest)
}

fn nm(binary: &Path) -> Result<Vec<Symbol>> {
    let out = Command::new("nm")
        .args(["-P", "--defined-only"])
        .arg(binary)
        .output()
        .context("running nm (Debian package binutils)")?;
    ensure!(
        out.status.success(),
        "nm {} failed: {}",
        binary.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(parse_nm(&String::from_utf8_lossy(&out.stdout)))
}

/// An ARM ELF mapping symbol (`$x`, `$d`, `$x.12`: where code and data start), which marks
/// bytes and names nothing; an `nm` without an AArch64 back end lists them as symbols.
fn is_mapping_symbol(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next() == Some('$')
        && matches!(chars.next(), Some('a' | 'd' | 't' | 'x'))
        && matches!(chars.next(), None | Some('.'))
}

fn parse_nm(text: &str) -> Vec<Symbol> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let name = f.next().filter(|n| !is_mapping_symbol(n))?.to_string();
            let kind = f.next()?.chars().next()?;
            let address = u64::from_str_radix(f.next().unwrap_or("0"), 16).unwrap_or(0);
            Some(Symbol {
                name,
                kind,
                address,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest {
            variants: vec!["x64".into(), "haswell".into()],
            entries: ["ggml_backend_cpu_reg".to_string()].into(),
            internals: [
                ("ggml_backend_cpu_reg".to_string(), 'T'),
                ("ggml_vec_dot_q4_K_q8_K".to_string(), 'T'),
                ("_ZNSt6vectorIiE9push_backEi".to_string(), 'W'),
            ]
            .into(),
        }
    }

    const GOOD: &str = "\
ggml_backend_cpu_reg T 100 10
ggml_cpu_x64_ggml_backend_cpu_reg T 200 10
ggml_cpu_x64_ggml_backend_score T 210 10
ggml_cpu_haswell_ggml_backend_cpu_reg T 300 10
ggml_cpu_haswell_ggml_backend_score T 310 10
ggml_vec_dot_q4_K_q8_K t 400 10
ggml_vec_dot_q4_K_q8_K t 500 10
_ZNSt6vectorIiE9push_backEi W 600 10
";

    #[test]
    fn arm_mapping_symbols_are_no_symbols() {
        let symbols = parse_nm("$d N 10 0\n$x.3 T 20 0\n$dollar T 30 0\nggml_abort T 40 0\n");
        let names: Vec<&str> = symbols.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["$dollar", "ggml_abort"]);
    }

    #[test]
    fn rust_symbols_with_thinlto_suffixes_are_rust() {
        let legacy = "_ZN11ember_llama7backend7BACKEND17ha789515be3511743E";
        assert!(is_rust_symbol(legacy));
        assert!(is_rust_symbol(&format!(
            "{legacy}.llvm.15460950479728731612"
        )));
        // A C++ name of llama.cpp with such a suffix stays llama.cpp's.
        assert!(!is_rust_symbol("_ZN11llama_vocab4implD2Ev.llvm.123"));
        assert!(!is_rust_symbol(&format!("{legacy}.llvm.x1")));
    }

    #[test]
    fn a_privatised_binary_passes() {
        let report = check(&manifest(), &parse_nm(GOOD)).unwrap();
        assert!(report.contains("2 variants"), "{report}");
        assert!(report.contains("4 renamed entry points"), "{report}");
        assert!(report.contains("1 ggml-cpu.h functions"), "{report}");
    }

    #[test]
    fn an_internal_left_global_fails() {
        let text = GOOD.replace(
            "ggml_vec_dot_q4_K_q8_K t 500",
            "ggml_vec_dot_q4_K_q8_K T 500",
        );
        let err = check(&manifest(), &parse_nm(&text))
            .unwrap_err()
            .to_string();
        assert!(err.contains("ggml_vec_dot_q4_K_q8_K"), "{err}");
    }

    #[test]
    fn an_unprefixed_llama_symbol_left_global_fails() {
        let text = "\
ember_llama_decode T 100 10
ember__ZN11llama_vocab4loadEv T 110 10
_ZN11ember_llama7context7Context6decode17h0123456789abcdefE T 120 10
_RNvCs123_11ember_llama6decode T 130 10
memcpy T 140 10
";
        assert_eq!(check_private("ember_", &parse_nm(text)).unwrap(), 2);
        for leak in ["llama_decode T 150 10", "_ZN11llama_vocab4loadEv W 150 10"] {
            let text = format!("{text}{leak}\n");
            let err = check_private("ember_", &parse_nm(&text))
                .unwrap_err()
                .to_string();
            assert!(err.contains(leak.split(' ').next().unwrap()), "{err}");
        }
        // Local copies are no concern.
        let text = format!("{text}ggml_vec_dot_q4_K_q8_K t 150 10\n");
        assert!(check_private("ember_", &parse_nm(&text)).is_ok());
    }

    #[test]
    fn a_missing_variant_or_an_aliased_entry_point_fails() {
        let text = GOOD.replace("ggml_cpu_haswell_ggml_backend_score T 310 10\n", "");
        assert!(check(&manifest(), &parse_nm(&text)).is_err());
        let text = GOOD.replace("ggml_backend_cpu_reg T 100", "ggml_backend_cpu_reg T 200");
        let err = check(&manifest(), &parse_nm(&text))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not the dispatcher's"), "{err}");
    }
}
