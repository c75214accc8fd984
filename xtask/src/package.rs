//! `cargo xtask package sys|probes`: `cargo package` with the third-party files a crate
//! builds with staged into it (git-ignored there: git keeps one copy), then unstaged. Each
//! also carries what docs.rs builds it from (docs_rs.rs: a real build's bindings or BPF object,
//! made first by `cargo build -p` of the crate).
//!
//! - sys: the parts of vendor/llama.cpp the `llama` target compiles, into
//!   crates/ember-llama-sys/llama.cpp/ (see `include` in that crate's Cargo.toml);
//!   build-support/check-sys-package verifies the .crate offline.
//! - probes: `vendor/vmlinux/<arch>/vmlinux.h` into `crates/ember-probes/vmlinux/` (its build.rs
//!   looks there first); `--verify` also builds the unpacked .crate offline, outside the
//!   workspace, with the workspace's Cargo.lock.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::docs_rs;

/// `cargo xtask package`.
#[derive(clap::Args)]
pub struct Args {
    /// Which crate.
    #[arg(value_enum)]
    krate: Crate,
    /// Also unpack the .crate and build it offline, outside the workspace, with the
    /// workspace's Cargo.lock (probes only: build-support/check-sys-package does this for sys,
    /// with a program that calls into it).
    #[arg(long)]
    verify: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Crate {
    /// ember-llama-sys with the llama.cpp sources.
    Sys,
    /// ember-probes with vendor/vmlinux's headers.
    Probes,
}

/// Removes the staged folder however the task ends.
struct Stage(PathBuf);

impl Drop for Stage {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Removes docs.rs' staged file however the task ends.
struct Unstage<'a>(&'a Path, docs_rs::Staged);

impl Drop for Unstage<'_> {
    fn drop(&mut self) {
        let _ = docs_rs::unstage(self.0, std::slice::from_ref(&self.1));
    }
}

pub fn run(args: &Args) -> Result<()> {
    let root = crate::root();
    // docs.rs' file first: a llama.cpp tree staged into the crate would be the one its build
    // script compiles (a rebuild of everything).
    let docs_rs = match args.krate {
        Crate::Sys => docs_rs::SYS,
        Crate::Probes => docs_rs::PROBES,
    };
    docs_rs::stage(&root, std::slice::from_ref(&docs_rs))?;
    let _docs_rs = Unstage(&root, docs_rs);
    let (name, stage) = match args.krate {
        Crate::Sys => ("ember-llama-sys", stage_llama_cpp(&root)?),
        Crate::Probes => ("ember-probes", stage_vmlinux(&root)?),
    };
    // --allow-dirty: the staged files are untracked on purpose. --no-verify: the offline
    // builds outside the workspace (below, check-sys-package) are the verification that counts.
    cargo(
        &root,
        &[
            "package",
            "-p",
            name,
            "--allow-dirty",
            "--no-verify",
            "--locked",
        ],
    )?;
    drop(stage);

    let version = workspace_version(&root)?;
    let target = target_dir(&root);
    let krate = target
        .join("package")
        .join(format!("{name}-{version}.crate"));
    let size = fs::metadata(&krate)
        .with_context(|| format!("{} was not written", krate.display()))?
        .len();
    eprintln!("packaged {} ({:.1} MB)", krate.display(), size as f64 / 1e6);

    if args.verify {
        if !matches!(args.krate, Crate::Probes) {
            bail!("--verify is for probes; build-support/check-sys-package verifies sys");
        }
        verify(&root, &target, &krate, &format!("{name}-{version}"))?;
    }
    println!("{}", krate.display());
    Ok(())
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

/// Unpacks the .crate and builds its library offline with the workspace's Cargo.lock (the
/// registry cache is filled first, from the lock file: the build itself never downloads).
fn verify(root: &Path, target: &Path, krate: &Path, name: &str) -> Result<()> {
    cargo(root, &["fetch", "--locked"])?;
    let work = target.join("package-check-probes");
    let _ = fs::remove_dir_all(&work);
    fs::create_dir_all(&work)?;
    let status = Command::new("tar")
        .arg("-xzf")
        .arg(krate)
        .arg("-C")
        .arg(&work)
        .status()?;
    if !status.success() {
        bail!("tar could not unpack {}", krate.display());
    }
    let dir = work.join(name);
    fs::copy(root.join("Cargo.lock"), dir.join("Cargo.lock"))?;
    // The unpacked crate lies under target/, inside this workspace: an empty [workspace]
    // makes it a workspace of its own, as it is for a user.
    let manifest = dir.join("Cargo.toml");
    let text = fs::read_to_string(&manifest)?;
    fs::write(&manifest, text + "\n[workspace]\n")?;
    eprintln!("building {} offline, outside the workspace", dir.display());
    let target_dir = work.join("target");
    let status = Command::new(cargo_bin())
        .args(["build", "--offline", "--lib"])
        .current_dir(&dir)
        .env("CARGO_TARGET_DIR", &target_dir)
        .status()?;
    if !status.success() {
        bail!("the packaged crate does not build on its own (see above)");
    }
    eprintln!("ok: the packaged crate builds on its own");
    Ok(())
}

fn cargo(root: &Path, args: &[&str]) -> Result<()> {
    // stdout to stderr: the .crate's path is this task's only stdout.
    let status = Command::new(cargo_bin())
        .args(args)
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
