//! `cargo xtask package`: `cargo package` of the six published crates in one workspace run,
//! with the third-party files they build with staged into them (git-ignored there: git keeps
//! one copy), then unstaged; each .crate's size is checked against crates.io's limit.
//!
//! Verification (on unless `--no-verify`) is cargo's own (cargo ≥ 1.90): each crate is
//! unpacked and built, and a dependent resolves the ember crates it needs from a local registry
//! that overlays crates.io with the crates just packaged, as it will once they are published.
//!
//! Staged:
//! - ember-llama-sys: the parts of vendor/llama.cpp the `llama` target compiles, into
//!   crates/ember-llama-sys/llama.cpp/ (see `include` in that crate's Cargo.toml), and
//!   docs-rs/bindings.rs;
//! - ember-probes: `vendor/vmlinux/<arch>/vmlinux.h` into `crates/ember-probes/vmlinux/` (its
//!   build.rs looks there first), and prebuilt/probes.bpf.o;
//!
//! docs.rs' files (docs_rs.rs) are a real build's bindings and BPF object, made first by
//! `cargo build -p` of the two crates.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::docs_rs;

/// The published crates, dependencies first (the order of the size table).
const CRATES: [&str; 6] = [
    "ember-llama-sys",
    "ember-llama",
    "ember-probes",
    "ember-serve",
    "ember-insight",
    "ember-kit",
];

/// crates.io's default upload limit (10 MiB).
const MAX_CRATE_BYTES: u64 = 10 * 1024 * 1024;

/// `cargo xtask package`.
#[derive(clap::Args)]
pub struct Args {
    /// Package only: skip cargo's verification build of each .crate.
    #[arg(long)]
    no_verify: bool,
}

/// Removes the staged folder however the task ends.
struct Stage(PathBuf);

impl Drop for Stage {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Removes docs.rs' staged files however the task ends.
struct Unstage<'a>(&'a Path, [docs_rs::Staged; 2]);

impl Drop for Unstage<'_> {
    fn drop(&mut self) {
        let _ = docs_rs::unstage(self.0, &self.1);
    }
}

pub fn run(args: &Args) -> Result<()> {
    let root = crate::root();
    // docs.rs' files first: a llama.cpp tree staged into the crate would be the one its build
    // script compiles (a rebuild of everything).
    let staged = [docs_rs::SYS, docs_rs::PROBES];
    docs_rs::stage(&root, &staged)?;
    let _docs_rs = Unstage(&root, staged);
    let _llama_cpp = stage_llama_cpp(&root)?;
    let _vmlinux = stage_vmlinux(&root)?;

    // --allow-dirty: the staged files are untracked on purpose. --workspace --exclude xtask:
    // cargo orders the six by their dependencies and verifies dependents against the overlay.
    let mut package = vec![
        "package",
        "--workspace",
        "--exclude",
        "xtask",
        "--allow-dirty",
        "--locked",
    ];
    if args.no_verify {
        package.push("--no-verify");
    }
    let version = workspace_version(&root)?;
    forget_unpacked(&version)?;
    forget_overlay_builds(&target_dir(&root).join("debug"), &version)?;
    let mut cmd = Command::new(cargo_bin());
    cmd.args(&package);
    // Verification builds llama.cpp twice (the sys crate itself, then the overlay's copy that
    // its dependents share): one CPU variant each is enough there; the eight are proven by
    // build-support/check-cpu-variants.
    if std::env::var_os("EMBER_LLAMA_CPU_VARIANTS").is_none() {
        cmd.env("EMBER_LLAMA_CPU_VARIANTS", "x64");
    }
    let started = std::time::Instant::now();
    run_cargo(&root, &mut cmd, &package)?;
    eprintln!(
        "cargo {} took {:.0} s",
        package.join(" "),
        started.elapsed().as_secs_f64()
    );

    let dir = target_dir(&root).join("package");
    let mut too_big = Vec::new();
    println!("| crate | .crate MB | files |");
    println!("|---|---|---|");
    for name in CRATES {
        let krate = dir.join(format!("{name}-{version}.crate"));
        let size = fs::metadata(&krate)
            .with_context(|| format!("{} was not written", krate.display()))?
            .len();
        println!(
            "| {name} | {:.2} | {} |",
            size as f64 / 1e6,
            count_files(&krate)?
        );
        if size > MAX_CRATE_BYTES {
            too_big.push(format!("{name} ({size} bytes)"));
        }
    }
    if !too_big.is_empty() {
        bail!(
            "over crates.io's {MAX_CRATE_BYTES}-byte limit: {}; trim the crate's `include`",
            too_big.join(", ")
        );
    }
    println!("packages in {}", dir.display());
    Ok(())
}

/// Removes the ember crates that an earlier run's verification unpacked from the overlay
/// registry into `$CARGO_HOME/registry/src/<registry>/`. Cargo never unpacks a registry crate
/// twice: the version stays 0.1.0 from run to run, so without this a dependent would be
/// verified against the sources packaged the first time (seen: an edited README stayed old).
/// Unpacked again, the files are new and their builds are redone.
fn forget_unpacked(version: &str) -> Result<()> {
    let home = match std::env::var_os("CARGO_HOME") {
        Some(home) => PathBuf::from(home),
        None => PathBuf::from(std::env::var_os("HOME").context("neither CARGO_HOME nor HOME")?)
            .join(".cargo"),
    };
    let Ok(registries) = fs::read_dir(home.join("registry/src")) else {
        return Ok(());
    };
    for registry in registries {
        let registry = registry?.path();
        for name in CRATES {
            let unpacked = registry.join(format!("{name}-{version}"));
            if unpacked.is_dir() {
                fs::remove_dir_all(&unpacked)
                    .with_context(|| format!("removing {}", unpacked.display()))?;
            }
        }
    }
    Ok(())
}

/// Removes an earlier verification's builds of the packaged ember crates from the dev profile's
/// folder (`target/debug`). A .crate's files carry one fixed mtime (2006, for reproducible
/// .crate files), so neither cargo (registry crates are never rebuilt for their files) nor
/// CMake would see that they changed. They are the units whose dep-info (`deps/*.d`,
/// `build/*/*.d`) or build-script output (`build/*/output`: rerun-if-changed lines) names a
/// path under `target/package/<crate>-<version>/` or `registry/src/*/<crate>-<version>/`;
/// their fingerprints go, and a build script's whole folder (OUT_DIR: CMake's build of
/// llama.cpp, which ccache makes quick to redo).
fn forget_overlay_builds(profile: &Path, version: &str) -> Result<()> {
    let marks: Vec<String> = CRATES
        .iter()
        .map(|name| format!("/{name}-{version}/"))
        .collect();
    let from_overlay = |file: &Path| -> bool {
        fs::read(file).is_ok_and(|bytes| {
            let text = String::from_utf8_lossy(&bytes);
            text.lines().any(|line| {
                marks.iter().any(|m| {
                    line.contains(&format!("/package{m}"))
                        || (line.contains("/registry/src/") && line.contains(m.as_str()))
                })
            })
        })
    };
    let mut files = Vec::new();
    for dir in [profile.join("deps"), profile.join("build")] {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry?.path();
            if path.is_dir() {
                for inner in fs::read_dir(&path)? {
                    files.push(inner?.path());
                }
            } else {
                files.push(path);
            }
        }
    }
    let mut units = std::collections::BTreeSet::new();
    for file in files {
        let name = file
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let is_dep_info = name.ends_with(".d");
        if !(is_dep_info || name == "output") || !from_overlay(&file) {
            continue;
        }
        // deps/ember_llama-<hash>.d, build/<pkg>-<hash>/build_script_main-<hash>.d,
        // build/<pkg>-<hash>/output: the unit is <package>-<hash>.
        let unit = if name == "output" || file.parent() != Some(&profile.join("deps")) {
            file.parent().and_then(Path::file_name)
        } else {
            file.file_stem()
        };
        if let Some(unit) = unit {
            units.insert(unit.to_string_lossy().replace('_', "-"));
        }
    }
    for unit in &units {
        for dir in [
            profile.join(".fingerprint").join(unit),
            profile.join("build").join(unit),
        ] {
            if dir.is_dir() {
                fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
            }
        }
    }
    if !units.is_empty() {
        eprintln!(
            "forgot {} build units of an earlier run's packaged crates",
            units.len()
        );
    }
    Ok(())
}

/// Files in a .crate (a gzipped tar), by `tar -tzf`.
fn count_files(krate: &Path) -> Result<usize> {
    let out = Command::new("tar")
        .arg("-tzf")
        .arg(krate)
        .output()
        .context("running tar")?;
    if !out.status.success() {
        bail!("tar could not list {}", krate.display());
    }
    Ok(out
        .stdout
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .count())
}

fn stage_llama_cpp(root: &Path) -> Result<Stage> {
    let src = root.join("vendor/llama.cpp");
    if !src.join(".ember-pin").is_file() {
        bail!(
            "{} is missing: run build-support/fetch-llama-cpp",
            src.display()
        );
    }
    let stage = Stage(root.join("crates/ember-llama-sys/llama.cpp"));
    let _ = fs::remove_dir_all(&stage.0);
    fs::create_dir_all(&stage.0)?;
    let mut files = 0;
    for part in [
        ".ember-pin",
        "LICENSE",
        "CMakeLists.txt",
        "cmake",
        "include",
        "src",
        "vendor",
        "ggml",
        "common",
    ] {
        files += copy(&src.join(part), &stage.0.join(part))?;
    }
    eprintln!(
        "staged {files} files of llama.cpp into {}",
        stage.0.display()
    );
    Ok(stage)
}

fn stage_vmlinux(root: &Path) -> Result<Stage> {
    let src = root.join("vendor/vmlinux");
    let stage = Stage(root.join("crates/ember-probes/vmlinux"));
    let _ = fs::remove_dir_all(&stage.0);
    let mut arches = Vec::new();
    for entry in fs::read_dir(&src).with_context(|| format!("{} is missing", src.display()))? {
        let arch = entry?.file_name();
        let header = src.join(&arch).join("vmlinux.h");
        if header.is_file() {
            copy(&header, &stage.0.join(&arch).join("vmlinux.h"))?;
            arches.push(format!("{}/vmlinux.h", arch.to_string_lossy()));
        }
    }
    if arches.is_empty() {
        bail!("no vendor/vmlinux/<arch>/vmlinux.h to stage");
    }
    arches.sort();
    eprintln!("staged {} into {}", arches.join(" "), stage.0.display());
    Ok(stage)
}

/// Copies a file or a tree (symlinks as links, like `cp -a`); returns the files copied.
fn copy(from: &Path, to: &Path) -> Result<usize> {
    let meta = fs::symlink_metadata(from).with_context(|| format!("reading {}", from.display()))?;
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent)?;
    }
    if meta.file_type().is_symlink() {
        std::os::unix::fs::symlink(fs::read_link(from)?, to)?;
        Ok(1)
    } else if meta.is_dir() {
        fs::create_dir_all(to)?;
        let mut n = 0;
        for entry in fs::read_dir(from)? {
            let entry = entry?;
            n += copy(&entry.path(), &to.join(entry.file_name()))?;
        }
        Ok(n)
    } else {
        fs::copy(from, to)
            .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
        Ok(1)
    }
}

fn run_cargo(root: &Path, cmd: &mut Command, args: &[&str]) -> Result<()> {
    // stdout to stderr: the size table is this task's stdout.
    let status = cmd
        .current_dir(root)
        .stdout(std::io::stderr())
        .status()
        .context("running cargo")?;
    if !status.success() {
        bail!("cargo {} failed (see above)", args.join(" "));
    }
    Ok(())
}

/// The cargo that runs this task (`cargo xtask` sets CARGO).
pub fn cargo_bin() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => root.join(dir),
        _ => root.join("target"),
    }
}

fn workspace_version(root: &Path) -> Result<String> {
    let manifest: toml::Table = fs::read_to_string(root.join("Cargo.toml"))?.parse()?;
    manifest
        .get("workspace")
        .and_then(|w| w.get("package"))
        .and_then(|p| p.get("version"))
        .and_then(|v| v.as_str())
        .map(str::to_string)
        .context("Cargo.toml has no workspace.package.version")
}
