//! Reading values out of the JSON that tools print (llama-bench, cargo, insightd's /status).

use std::io::{BufRead, Read};

use anyhow::{bail, Context, Result};
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
    let mut found = None;
    for line in std::io::stdin().lock().lines() {
        let Ok(msg) = serde_json::from_str::<Value>(&line?) else {
            continue;
        };
        if msg["reason"] == "compiler-artifact" && msg["target"]["name"] == name {
            if let Some(exe) = msg["executable"].as_str() {
                found = Some(exe.to_string());
            }
        }
    }
    match found {
        Some(exe) => {
            println!("{exe}");
            Ok(())
        }
        None => bail!("cargo built no executable named {name}"),
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
}
