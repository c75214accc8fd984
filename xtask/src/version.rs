//! The build version and the /version.json an image carries (build-support/docker/README.md).

use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

const BACKENDS: [&str; 4] = ["cpu", "vulkan", "cuda", "rocm"];

/// `cargo xtask version-json`.
#[derive(clap::Args)]
pub struct JsonArgs {
    /// The image's GGML backend.
    #[arg(long, value_parser = BACKENDS)]
    backend: String,
    /// Comma-separated Cargo features the binaries were built with.
    #[arg(long, default_value = "")]
    features: String,
    /// `static`, or what the binaries load from the host.
    #[arg(long, default_value = "static")]
    linkage: String,
    /// Check FILE instead of printing: exit 1 with every reason it is wrong.
    #[arg(long, value_name = "FILE")]
    check: Option<PathBuf>,
}

/// `yymmddhhmm-<short sha>`: the commit time, not the build time, so the same commit always
/// gets the same version. EMBER_VERSION, when set, wins (and is checked).
pub fn current() -> Result<String> {
    let version = match std::env::var("EMBER_VERSION") {
        Ok(v) if !v.is_empty() => v,
        _ => {
            let stamp = git(&[
                "log",
                "-1",
                "--format=%cd",
                "--date=format-local:%y%m%d%H%M",
            ])?;
            format!("{stamp}-{}", git(&["rev-parse", "--short=7", "HEAD"])?)
        }
    };
    if !is_version(&version) {
        bail!("\"{version}\" is not yymmddhhmm-<short git sha>");
    }
    Ok(version)
}

fn git(args: &[&str]) -> Result<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(crate::root())
        .env("TZ", "UTC")
        .output()
        .context("running git")?;
    if !out.status.success() {
        bail!(
            "not a git checkout (git {}: {}); set EMBER_VERSION=yymmddhhmm-<sha>",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8(out.stdout)?.trim().to_string())
}

/// `^[0-9]{10}-[0-9a-f]{7,40}$`.
fn is_version(v: &str) -> bool {
    let Some((stamp, sha)) = v.split_once('-') else {
        return false;
    };
    stamp.len() == 10
        && stamp.bytes().all(|b| b.is_ascii_digit())
        && (7..=40).contains(&sha.len())
        && sha.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The llama.cpp pin of vendor/llama.cpp.toml, as /version.json states it.
fn llama_pin() -> Result<Value> {
    let path = crate::root().join("vendor/llama.cpp.toml");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let pin: toml::Table = text
        .parse()
        .with_context(|| format!("parsing {}", path.display()))?;
    let field = |table: &str, key: &str| -> Result<String> {
        pin.get(table)
            .and_then(|t| t.get(key))
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .with_context(|| format!("{}: no string {table}.{key}", path.display()))
    };
    Ok(json!({
        "commit": field("upstream", "commit")?,
        "ggml_version": field("upstream", "ggml-version")?,
        "source": format!("{}=={}", field("source", "package")?, field("source", "version")?),
        "sha256": field("source", "sha256")?,
    }))
}

/// `cargo xtask version-json`: print the document, or check one.
pub fn json(args: &JsonArgs) -> Result<()> {
    if let Some(path) = &args.check {
        return check(path, &args.backend);
    }
    let data = json!({
        "version": current()?,
        "backend": args.backend,
        "llama_cpp": llama_pin()?,
        "features": args.features.split(',').filter(|f| !f.is_empty()).collect::<Vec<_>>(),
        "linkage": args.linkage,
    });
    println!("{}", serde_json::to_string_pretty(&data)?);
    Ok(())
}

fn check(path: &std::path::Path, backend: &str) -> Result<()> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let data: Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let mut problems = Vec::new();
    match data.get("version").and_then(Value::as_str) {
        Some(v) if is_version(v) => {
            let ours = current()?;
            if v != ours {
                problems.push(format!("version {v} is not this checkout's {ours}"));
            }
        }
        other => problems.push(format!("version {other:?} is not yymmddhhmm-<sha>")),
    }
    if data.get("backend").and_then(Value::as_str) != Some(backend) {
        problems.push(format!(
            "backend {}, expected \"{backend}\"",
            data.get("backend").unwrap_or(&Value::Null)
        ));
    }
    if data.get("llama_cpp") != Some(&llama_pin()?) {
        problems.push(format!(
            "llama_cpp {} does not match vendor/llama.cpp.toml",
            data.get("llama_cpp").unwrap_or(&Value::Null)
        ));
    }
    let features_ok = data
        .get("features")
        .and_then(Value::as_array)
        .is_some_and(|f| f.iter().all(Value::is_string));
    if !features_ok {
        problems.push(format!(
            "features {} is not a list of names",
            data.get("features").unwrap_or(&Value::Null)
        ));
    }
    if !problems.is_empty() {
        bail!("{}: {}", path.display(), problems.join("; "));
    }
    // serde_json's map is ordered by key: this is the sorted form.
    println!(
        "version-json: {} is correct: {}",
        path.display(),
        serde_json::to_string(&data)?
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::is_version;

    #[test]
    fn version_format() {
        assert!(is_version("2611232055-ea974aa"));
        assert!(is_version(
            "2611232055-ea974aa0123456789abcdef0123456789abcdef0"
        ));
        assert!(!is_version("261123205-ea974aa"), "9-digit stamp");
        assert!(!is_version("2611232055-ea974a"), "6-digit sha");
        assert!(!is_version("2611232055-EA974AA"), "upper-case sha");
        assert!(!is_version("2611232055ea974aa"));
    }

    #[test]
    fn pin_reads_the_vendor_toml() {
        let pin = super::llama_pin().unwrap();
        for key in ["commit", "ggml_version", "source", "sha256"] {
            assert!(
                pin[key].as_str().is_some_and(|v| !v.is_empty()),
                "{key}: {pin}"
            );
        }
    }
}
