//! The check that ember's llama.cpp is private: pure functions over `nm -P` text, shared with
//! `cargo xtask private-symbols` (which includes this file) so that its unit tests prove the
//! check fails when one symbol is left global.

use std::collections::BTreeSet;

/// Names whose unprefixed presence means a copy of llama.cpp, ggml or gguf that is not private.
pub fn is_llama_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    ["llama", "ggml", "gguf"].iter().any(|w| lower.contains(w))
}

/// `(name, nm type letter)` of each symbol line of `nm -P` output; the `lib.a[member.o]:`
/// header lines of an archive have one field and are skipped.
pub fn parse_nm(text: &str) -> Vec<(String, char)> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let name = fields.next()?;
            let kind = fields.next()?.chars().next()?;
            Some((name.to_string(), kind))
        })
        .collect()
}

/// The signature of each COMDAT group in `readelf -g -W` output: the last bracketed name of
/// each `COMDAT group section` line, before `contains N sections`. The linker keeps one group per signature across the
/// whole link: C++ constructors and destructors have signatures (`…C5Ev`, `…D5Ev`) that are
/// local symbols, not the functions' names, so they need renaming besides the globals.
pub fn parse_groups(text: &str) -> Vec<String> {
    text.lines()
        .filter(|line| line.trim_start().starts_with("COMDAT group section"))
        .filter_map(|line| {
            let head = &line[..line.rfind("] contains")?];
            Some(head[head.rfind('[')? + 1..].to_string())
        })
        .collect()
}

/// Checks renamed archives: every symbol they define globally (`defined`: `nm -P -g
/// --defined-only`) and every COMDAT group signature (`groups`: `readelf -g -W`) carries
/// `prefix`, and no reference they leave open (`undefined`: `nm -P -u`) is to a name ember's
/// libraries defined before renaming (`originals`: it would bind to another copy at link time)
/// or to an unprefixed llama/ggml/gguf name.
/// The error lists the offenders (at most 20 of each kind).
pub fn check_archives(
    prefix: &str,
    defined: &str,
    groups: &str,
    undefined: &str,
    originals: &BTreeSet<String>,
) -> Result<usize, String> {
    let defined = parse_nm(defined);
    let mut left: BTreeSet<&str> = BTreeSet::new();
    for (name, _) in &defined {
        if !name.starts_with(prefix) {
            left.insert(name);
        }
    }
    let groups = parse_groups(groups);
    let shared: BTreeSet<&str> = groups
        .iter()
        .filter(|g| !g.starts_with(prefix))
        .map(String::as_str)
        .collect();
    let mut escaped: BTreeSet<&str> = BTreeSet::new();
    let undefined = parse_nm(undefined);
    for (name, _) in &undefined {
        if originals.contains(name) || (!name.starts_with(prefix) && is_llama_name(name)) {
            escaped.insert(name);
        }
    }
    let mut problems = Vec::new();
    if !left.is_empty() {
        problems.push(format!(
            "{} symbol(s) are still global without the prefix `{prefix}`: {}",
            left.len(),
            first(&left)
        ));
    }
    if !shared.is_empty() {
        problems.push(format!(
            "{} COMDAT group(s) keep an unprefixed signature: the linker would keep one copy \
             of each for this and any other llama.cpp in the binary, and drop the other's: {}",
            shared.len(),
            first(&shared)
        ));
    }
    if !escaped.is_empty() {
        problems.push(format!(
            "{} reference(s) to unprefixed llama.cpp/ggml names are left open, which the link \
             would resolve in another copy of llama.cpp: {}",
            escaped.len(),
            first(&escaped)
        ));
    }
    if problems.is_empty() {
        Ok(defined.len())
    } else {
        Err(problems.join("\n"))
    }
}

fn first(names: &BTreeSet<&str>) -> String {
    let shown: Vec<&str> = names.iter().take(20).copied().collect();
    let more = names.len().saturating_sub(shown.len());
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}
