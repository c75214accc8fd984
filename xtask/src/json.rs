//! Reading values out of the JSON that tools print (llama-bench, cargo, insightd's /status).

use std::io::{BufRead, Read};
use std::path::PathBuf;

use anyhow::{Context, Result};
use serde_json::Value;

/// The value at a dotted path (`0.avg_ts`, `telemetry.drops.channel`): numbers index arrays,
/// names index objects.
pub fn at<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(doc, |v, key| match v {
        Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
        Value::Object(map) => map.get(key),
        _ => None,
    })
}

/// A value as a shell reads it: strings bare, everything else as JSON.
pub fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `cargo xtask json PATH...`: the values on stdin's document, tab-separated.
pub fn get(paths: &[String]) -> Result<()> {
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text)?;
    let doc: Value = serde_json::from_str(&text).context("stdin is not one JSON document")?;
    let values = paths
        .iter()
        .map(|p| {
            at(&doc, p)
                .map(plain)
                .with_context(|| format!("no value at {p}"))
        })
        .collect::<Result<Vec<_>>>()?;
    println!("{}", values.join("\t"));
    Ok(())
}

/// `cargo xtask bench executable NAME`: from cargo's JSON messages on stdin, the path of the
/// named target's executable.
pub fn cargo_executable(name: &str) -> Result<()> {
    let mut messages = Vec::new();
    std::io::stdin().read_to_end(&mut messages)?;
    let exe = executable(&messages, name)?;
    println!("{}", exe.display());
    Ok(())
}

/// Each JSON message of cargo's `--message-format=json` output (other lines are skipped).
fn cargo_messages(messages: &[u8]) -> impl Iterator<Item = Value> + '_ {
    messages
        .lines()
        .map_while(|line| line.ok())
        .filter_map(|line| serde_json::from_str::<Value>(&line).ok())
}

/// The executable of the target `name` in cargo's JSON messages (the last one wins).
pub fn executable(messages: &[u8], name: &str) -> Result<PathBuf> {
    cargo_messages(messages)
        .filter(|msg| msg["reason"] == "compiler-artifact" && msg["target"]["name"] == name)
        .filter_map(|msg| msg["executable"].as_str().map(PathBuf::from))
        .last()
        .with_context(|| format!("cargo built no executable named {name}"))
}

/// The OUT_DIR of `package`'s build script in cargo's JSON messages (the last one wins).
pub fn build_script_out_dir(messages: &[u8], package: &str) -> Result<PathBuf> {
    cargo_messages(messages)
        .filter(|msg| msg["reason"] == "build-script-executed")
        .filter(|msg| package_of(msg["package_id"].as_str().unwrap_or_default()) == Some(package))
        .filter_map(|msg| msg["out_dir"].as_str().map(PathBuf::from))
        .last()
        .with_context(|| format!("cargo reported no build script output of {package}"))
}

/// The package name in a package id: `path+file:///…/ember-probes#0.1.0` (the folder's name
/// where it is the package's) or `path+file:///…/dir#name@0.1.0`.
fn package_of(id: &str) -> Option<&str> {
    let (url, fragment) = id.rsplit_once('#')?;
    match fragment.split_once('@') {
        Some((name, _)) => Some(name),
        None => url.rsplit('/').next(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_paths() {
        let doc: Value =
            serde_json::from_str(r#"[{"avg_ts": 21.5, "backends": "CPU", "drops": {"ring": 0}}]"#)
                .unwrap();
        assert_eq!(at(&doc, "0.avg_ts").map(plain).as_deref(), Some("21.5"));
        assert_eq!(at(&doc, "0.backends").map(plain).as_deref(), Some("CPU"));
        assert_eq!(at(&doc, "0.drops.ring").map(plain).as_deref(), Some("0"));
        assert!(at(&doc, "1.avg_ts").is_none());
        assert!(at(&doc, "0.avg_ts.x").is_none());
        assert!(at(&doc, "x").is_none());
    }

    #[test]
    fn package_ids() {
        let id = "path+file:///work/main/crates/ember-probes#0.1.0";
        assert_eq!(package_of(id), Some("ember-probes"));
        assert_eq!(
            package_of("path+file:///work/main#ember@0.1.0"),
            Some("ember")
        );
        // The name is exact: ember-llama is not ember-llama-sys.
        let sys = br#"{"reason":"build-script-executed","package_id":"path+file:///w/crates/ember-llama-sys#0.1.0","out_dir":"/t/sys/out"}"#;
        assert!(build_script_out_dir(sys, "ember-llama").is_err());
        assert_eq!(
            build_script_out_dir(sys, "ember-llama-sys").unwrap(),
            PathBuf::from("/t/sys/out")
        );
    }
}
