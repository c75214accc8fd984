//! `cargo xtask docs-rs stage|unstage|plan`: what docs.rs needs to document the crates.
//!
//! docs.rs sets `DOCS_RS` and has no network, no CMake build time and perhaps no clang, so the
//! two crates that build native code read a real build's output from their package instead:
//! - ember-llama-sys: `OUT_DIR/bindings.rs` as `docs-rs/bindings.rs`;
//! - ember-probes: `OUT_DIR/probes.bpf.o` as `prebuilt/probes.bpf.o`.
//!
//! Both are git-ignored (build outputs; the bindings are derived from llama.cpp's headers) and
//! listed in the crates' `include`. `cargo xtask package` stages the one of its crate;
//! build-support/check-docs-rs stages both and documents every crate as docs.rs would.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;

use crate::json;

/// `cargo xtask docs-rs`.
#[derive(clap::Subcommand)]
pub enum Task {
    /// Build ember-llama-sys and ember-probes (as `cargo build -p` would, in the usual target
    /// folder) and copy the bindings and the BPF object into the crates; prints their paths.
    Stage,
    /// Remove what `stage` copied.
    Unstage,
    /// One line per package with `[package.metadata.docs.rs]`: its name, its library's name
    /// (the docs' folder), then the `cargo doc` flags that metadata asks for (target, features,
    /// no-default-features, all-features).
    Plan,
}

/// A file docs.rs builds with: `file` of `package`'s build-script OUT_DIR, copied to
/// `staged` (relative to the workspace root).
pub struct Staged {
    package: &'static str,
    file: &'static str,
    staged: &'static str,
}

pub const SYS: Staged = Staged {
    package: "ember-llama-sys",
    file: "bindings.rs",
    staged: "crates/ember-llama-sys/docs-rs/bindings.rs",
};

pub const PROBES: Staged = Staged {
    package: "ember-probes",
    file: "probes.bpf.o",
    staged: "crates/ember-probes/prebuilt/probes.bpf.o",
};

pub fn run(task: &Task) -> Result<()> {
    let root = crate::root();
    match task {
        Task::Stage => {
            for path in stage(&root, &[SYS, PROBES])? {
                println!("{}", path.display());
            }
            Ok(())
        }
        Task::Unstage => unstage(&root, &[SYS, PROBES]),
        Task::Plan => plan(&root),
    }
}

/// Builds the packages of `files` and copies each file from its build script's OUT_DIR.
pub fn stage(root: &Path, files: &[Staged]) -> Result<Vec<PathBuf>> {
    let mut args = vec![
        "build",
        "--locked",
        "--message-format=json-render-diagnostics",
    ];
    for f in files {
        args.extend(["-p", f.package]);
    }
    // The bindings of every optional part of the shim (the `chat` door to llama.cpp's
    // `common`): docs.rs documents ember-llama's `chat_template` with them.
    if files.iter().any(|f| f.package == "ember-llama-sys") {
        args.extend(["--features", "ember-llama-sys/chat"]);
    }
    eprintln!("building {} for docs.rs' files", args[3..].join(" "));
    // DOCS_RS would make the build copy the staged files instead of making them.
    let output = Command::new(crate::package::cargo_bin())
        .args(&args)
        .current_dir(root)
        .env_remove("DOCS_RS")
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo build")?;
    ensure!(output.status.success(), "cargo build failed (see above)");
    let mut staged = Vec::new();
    for f in files {
        let out_dir = json::build_script_out_dir(&output.stdout, f.package)?;
        let from = out_dir.join(f.file);
        let to = root.join(f.staged);
        fs::create_dir_all(to.parent().expect("staged paths have a folder"))?;
        fs::copy(&from, &to)
            .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
        eprintln!("staged {} from {}", f.staged, from.display());
        staged.push(to);
    }
    Ok(staged)
}

pub fn unstage(root: &Path, files: &[Staged]) -> Result<()> {
    for f in files {
        let path = root.join(f.staged);
        match fs::remove_file(&path) {
            Ok(()) => eprintln!("removed {}", f.staged),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", path.display())),
        }
        // The folder exists only for the staged file.
        let _ = fs::remove_dir(path.parent().expect("staged paths have a folder"));
    }
    Ok(())
}

/// The docs.rs metadata keys the check reproduces; any other would make it differ from docs.rs.
const KEYS: &[&str] = &["targets", "features", "no-default-features", "all-features"];

fn plan(root: &Path) -> Result<()> {
    let output = Command::new(crate::package::cargo_bin())
        .args(["metadata", "--format-version=1", "--no-deps", "--offline"])
        .current_dir(root)
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo metadata")?;
    ensure!(output.status.success(), "cargo metadata failed (see above)");
    let doc: Value = serde_json::from_slice(&output.stdout)?;
    let packages = doc["packages"].as_array().context("no packages")?;
    for package in packages {
        let name = package["name"]
            .as_str()
            .context("a package without a name")?;
        let Some(meta) = package["metadata"]["docs"]["rs"].as_object() else {
            continue;
        };
        if let Some(key) = meta.keys().find(|k| !KEYS.contains(&k.as_str())) {
            bail!("{name}: [package.metadata.docs.rs] `{key}` is not reproduced by this check");
        }
        // The docs' folder is the library's name (ember-kit's is `ember`).
        let lib = package["targets"]
            .as_array()
            .and_then(|targets| {
                targets.iter().find(|t| {
                    t["kind"]
                        .as_array()
                        .is_some_and(|kinds| kinds.iter().any(|k| k == "lib"))
                })
            })
            .and_then(|t| t["name"].as_str())
            .with_context(|| format!("{name} has docs.rs metadata but no library"))?;
        let mut line = vec![name.to_string(), lib.to_string()];
        // docs.rs builds the first of `targets` by default, with `--target`.
        if let Some(target) = meta.get("targets").and_then(|t| t.get(0)) {
            let target = target.as_str().context("a target is not a string")?;
            line.push(format!("--target={target}"));
        }
        if meta.get("no-default-features") == Some(&Value::Bool(true)) {
            line.push("--no-default-features".into());
        }
        if meta.get("all-features") == Some(&Value::Bool(true)) {
            line.push("--all-features".into());
        }
        if let Some(features) = meta.get("features") {
            let features: Vec<&str> = features
                .as_array()
                .context("features is not a list")?
                .iter()
                .map(|f| f.as_str().context("a feature is not a string"))
                .collect::<Result<_>>()?;
            if !features.is_empty() {
                line.push(format!("--features={}", features.join(",")));
            }
        }
        println!("{}", line.join(" "));
    }
    Ok(())
}
