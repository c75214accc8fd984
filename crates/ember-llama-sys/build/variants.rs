//! Several `ggml-cpu` builds in one binary: each variant's archive becomes one object whose
//! only global symbols are its entry points, renamed `ggml_cpu_<variant>_<name>`.
//!
//! Why each step:
//! - `ld -r --whole-archive --force-group-allocation`: one relocatable object per variant, with
//!   its COMDAT groups (C++ templates, inline functions, vtables, typeinfo) resolved inside it,
//!   so no copy compiled for AVX-512 can be merged with another variant's or ggml-base's.
//! - `objcopy --redefine-syms`: ggml-cpu.h's functions and upstream's `ggml_backend_score` get
//!   the variant's prefix; GNU-unique symbols too (objcopy cannot make them local).
//! - `objcopy --keep-global-symbols`: everything else the variant defines becomes local.
//!
//! Each object is checked: no static initialisers (they would run before the choice, on any
//! CPU), no LTO sections (binutils cannot rename inside them), and only prefixed globals left.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::binutils;
use crate::cmake::{self, Built};
use crate::cpu::Variant;
use crate::dispatch;
use crate::env;
use crate::features::Selection;
use crate::private::Archive;
use crate::source::Tree;
use crate::symcheck;

/// Sections whose code would run before `main`, or at exit, whatever the CPU.
const STARTUP_SECTIONS: &[&str] = &[
    ".init_array",
    ".fini_array",
    ".preinit_array",
    ".ctors",
    ".dtors",
    ".init",
    ".fini",
];

/// What the dispatcher forwards and what `ggml-cpu.h` declares.
pub struct EntryPoints {
    /// The names in `cpu/ember_cpu_api.h`.
    pub forwarded: Vec<String>,
    /// ggml-cpu.h's declarations that are not forwarded: each must be defined nowhere in the
    /// variant (the pinned header declares one function that no source defines).
    pub unforwarded: Vec<String>,
}

/// Reads `cpu/ember_cpu_api.h` and checks it against the functions `ggml-cpu.h` declares.
pub fn entry_points(tree: &Tree) -> Result<EntryPoints, String> {
    let api_header = dispatch::dir().join("ember_cpu_api.h");
    println!("cargo:rerun-if-changed={}", api_header.display());
    let text = read(&api_header)?;
    let forwarded: Vec<String> = text
        .lines()
        .filter_map(|line| {
            let line = line.trim_start();
            let fields: Vec<&str> = line.split(',').map(str::trim).collect();
            if line.starts_with("R(v,") {
                fields.get(2).map(|s| s.to_string())
            } else if line.starts_with("V(v,") {
                fields.get(1).map(|s| s.to_string())
            } else {
                None
            }
        })
        .collect();
    let header = tree.path("ggml/include/ggml-cpu.h");
    let declared = declared_functions(&read(&header)?);
    let extra: Vec<&String> = forwarded.iter().filter(|n| !declared.contains(n)).collect();
    if !extra.is_empty() {
        return Err(format!(
            "{} forwards functions that {} does not declare: {extra:?}. Update ember_cpu_api.h \
             for this llama.cpp tree, or build one CPU backend (feature `native`, or {}=x64).",
            api_header.display(),
            header.display(),
            env::CPU_VARIANTS
        ));
    }
    let unforwarded = declared
        .into_iter()
        .filter(|n| !forwarded.contains(n))
        .collect();
    Ok(EntryPoints {
        forwarded,
        unforwarded,
    })
}

/// Function names from `GGML_BACKEND_API <type> <name>(` declarations.
fn declared_functions(header: &str) -> Vec<String> {
    header
        .lines()
        .filter(|line| line.trim_start().starts_with("GGML_BACKEND_API"))
        .filter_map(|line| {
            let before_paren = line.split('(').next()?;
            let name = before_paren.split_whitespace().last()?;
            Some(name.trim_start_matches('*').to_string())
        })
        .collect()
}

/// Compiles upstream's feature check for one variant (x86: CPUID, ARM: the HWCAPs) with the
/// variant's defines and no ISA flags: it runs before the choice. `GGML_BACKEND_DL` makes it
/// define `ggml_backend_score`.
pub fn compile_score(tree: &Tree, variant: &Variant) -> Result<Vec<PathBuf>, String> {
    let source = tree.path(variant.score_source());
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .std("c++17")
        .file(&source)
        .include(tree.path("ggml/src"))
        .include(tree.path("ggml/include"))
        .define("GGML_BACKEND_DL", None)
        .out_dir(variant_dir(variant).join("score"))
        .cargo_metadata(false)
        .warnings(false);
    for define in variant.score_defines() {
        build.define(&define, None);
    }
    build.try_compile_intermediates().map_err(|e| {
        format!(
            "compiling {} for CPU variant `{}` failed: {e}",
            source.display(),
            variant.name
        )
    })
}

/// Turns one variant's `libggml-cpu.a` (plus its score object) into `libggml-cpu-<v>.a` whose
/// only globals are `ggml_cpu_<v>_*`. Returns the original global names it defined (for the
/// final binary's check) and where the archive is.
pub fn privatize(
    variant: &Variant,
    archive: &Path,
    score: &[PathBuf],
    entry: &EntryPoints,
) -> Result<(Archive, BTreeMap<String, char>), String> {
    let dir = variant_dir(variant);
    fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let prefix = format!("ggml_cpu_{}_", variant.symbol());
    let combined = dir.join("combined.o");
    let renamed = dir.join("renamed.o");
    let private = dir.join(format!("ggml-cpu-{}.o", variant.symbol()));

    let mut ld = binutils::command("ld");
    ld.arg("-r")
        .arg("--force-group-allocation")
        .arg("-o")
        .arg(&combined)
        .arg("--whole-archive")
        .arg(archive)
        .arg("--no-whole-archive")
        .args(score);
    run(&mut ld, variant)?;
    check_sections(&combined, variant)?;

    let globals = defined_globals(&combined)?;
    let defines = |name: &str| globals.iter().any(|(n, _)| n == name);
    if let Some(name) = entry.unforwarded.iter().find(|n| defines(n)) {
        return Err(format!(
            "ggml-cpu.h declares `{name}` and CPU variant `{}` defines it, but the dispatcher \
             does not forward it ({}): add it there, or build one CPU backend (feature `native`).",
            variant.name,
            dispatch::dir().join("ember_cpu_api.h").display()
        ));
    }
    let mut renames: Vec<&str> = Vec::new();
    for name in entry
        .forwarded
        .iter()
        .map(String::as_str)
        .chain(["ggml_backend_score"])
    {
        if !defines(name) {
            return Err(format!(
                "CPU variant `{}` does not define `{name}`, which the dispatcher forwards to it \
                 (is {} the ggml-cpu of this tree?)",
                variant.name,
                archive.display()
            ));
        }
        renames.push(name);
    }
    // GNU-unique symbols (static locals of inline functions) stay global whatever objcopy is
    // told: give them the variant's name so that no two variants share one.
    renames.extend(
        globals
            .iter()
            .filter(|(_, kind)| *kind == 'u')
            .map(|(n, _)| n.as_str()),
    );
    let map: String = renames
        .iter()
        .map(|n| format!("{n} {prefix}{n}\n"))
        .collect();
    let keep: String = renames.iter().map(|n| format!("{prefix}{n}\n")).collect();
    let map_file = dir.join("redefine-syms.txt");
    let keep_file = dir.join("keep-global-symbols.txt");
    write(&map_file, &map)?;
    write(&keep_file, &keep)?;
    // Two passes: in one, objcopy would match --keep-global-symbols against the new names
    // before renaming and localise the entry points too.
    let mut redefine = binutils::command("objcopy");
    redefine
        .arg(format!("--redefine-syms={}", map_file.display()))
        .arg(&combined)
        .arg(&renamed);
    run(&mut redefine, variant)?;
    let mut localise = binutils::command("objcopy");
    localise
        .arg(format!("--keep-global-symbols={}", keep_file.display()))
        .arg(&renamed)
        .arg(&private);
    run(&mut localise, variant)?;

    let left: Vec<String> = defined_globals(&private)?
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| !n.starts_with(&prefix))
        .collect();
    if !left.is_empty() {
        return Err(format!(
            "CPU variant `{}`: after renaming, {} still defines unprefixed global symbols: {left:?}",
            variant.name,
            private.display()
        ));
    }

    let lib_name = format!("ggml-cpu-{}", variant.symbol());
    cc::Build::new()
        .object(&private)
        .out_dir(&dir)
        .cargo_metadata(false)
        .try_compile(&lib_name)
        .map_err(|e| format!("archiving {}: {e}", private.display()))?;
    Ok((Archive::new(&lib_name, &dir), globals.into_iter().collect()))
}

/// Builds, renames and archives every variant: the first is the main build's `ggml-cpu`
/// (built with its ISA options), the others get a CMake build of their own.
pub fn build_all(
    tree: &Tree,
    selection: &Selection,
    main: &Built,
    variants: &[Variant],
) -> Result<Vec<Archive>, String> {
    let entry = entry_points(tree)?;
    let mut linkables = Vec::new();
    let mut originals = BTreeMap::new();
    for (i, variant) in variants.iter().enumerate() {
        let archive = if i == 0 {
            main.build_dir.join("ggml/src/libggml-cpu.a")
        } else {
            cmake::build_cpu_variant(tree, selection, variant)?
        };
        let score = compile_score(tree, variant)?;
        let (linkable, names) = privatize(variant, &archive, &score, &entry)?;
        linkables.push(linkable);
        originals.extend(names);
    }
    write_manifest(variants, &entry.forwarded, &originals)?;
    Ok(linkables)
}

/// Writes what the final binary's check (`cargo xtask cpu-symbols`) compares against: the
/// variants, the entry points, and every global symbol a variant's ggml-cpu defined, with
/// its `nm` type (`W`/`V`: weak, shared by name with other libraries).
fn write_manifest(
    variants: &[Variant],
    entry_points: &[String],
    originals: &BTreeMap<String, char>,
) -> Result<PathBuf, String> {
    let mut text = String::from(
        "# ember-llama-sys: the CPU variants linked into this build (build/variants.rs)\n",
    );
    for variant in variants {
        text.push_str(&format!("variant {}\n", variant.symbol()));
    }
    for name in entry_points {
        text.push_str(&format!("entry {name}\n"));
    }
    for (name, kind) in originals {
        text.push_str(&format!("internal {name} {kind}\n"));
    }
    let path = env::out_dir().join("cpu-variants").join("manifest.txt");
    write(&path, &text)?;
    println!("cargo:cpu_manifest={}", path.display());
    Ok(path)
}

fn variant_dir(variant: &Variant) -> PathBuf {
    env::out_dir()
        .join("cpu-variants")
        .join(variant.name)
        .join("private")
}

/// Refuses a combined object with startup code or LTO sections.
fn check_sections(object: &Path, variant: &Variant) -> Result<(), String> {
    let out = output(
        binutils::command("objdump").arg("-h").arg("-w").arg(object),
        variant,
    )?;
    for line in out.lines() {
        let Some(name) = line.split_whitespace().nth(1) else {
            continue;
        };
        if STARTUP_SECTIONS.contains(&name) {
            return Err(format!(
                "CPU variant `{}` has static initialisation or finalisation code (section \
                 {name}): it would run at start or exit on every CPU, before or without the \
                 dispatcher's choice, and could fault on a CPU without the variant's \
                 instructions. This llama.cpp tree cannot be linked with several CPU variants; \
                 use {}=x64 or the `native` feature.",
                variant.name,
                env::CPU_VARIANTS
            ));
        }
        if name.starts_with(".gnu.lto_") {
            return Err(format!(
                "CPU variant `{}` holds LTO objects (section {name}), which binutils cannot \
                 rename: build without GGML_LTO and without -flto in CFLAGS/CXXFLAGS.",
                variant.name
            ));
        }
    }
    Ok(())
}

/// `(name, nm type letter)` of every global symbol `object` defines.
fn defined_globals(object: &Path) -> Result<Vec<(String, char)>, String> {
    let out = binutils::command("nm")
        .args(["-P", "-g", "--defined-only"])
        .arg(object)
        .output()
        .map_err(|e| missing_binutils("nm", &e))?;
    if !out.status.success() {
        return Err(format!(
            "nm {} failed: {}",
            object.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(symcheck::parse_nm(&String::from_utf8_lossy(&out.stdout)))
}

fn run(command: &mut Command, variant: &Variant) -> Result<(), String> {
    output(command, variant).map(|_| ())
}

fn output(command: &mut Command, variant: &Variant) -> Result<String, String> {
    let program = command.get_program().to_string_lossy().to_string();
    let out = command
        .output()
        .map_err(|e| missing_binutils(&program, &e))?;
    if !out.status.success() {
        return Err(format!(
            "making CPU variant `{}` private: `{command:?}` failed:\n{}",
            variant.name,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn missing_binutils(program: &str, error: &std::io::Error) -> String {
    format!(
        "could not run `{program}` ({error}): linking several CPU variants needs GNU binutils \
         (ld 2.30 or newer, objcopy, nm, objdump) on PATH. Install them (Debian/Ubuntu: \
         `apt-get install binutils`), or build one CPU backend: feature `native`, or {}=haswell.",
        env::CPU_VARIANTS
    )
}

fn read(path: &Path) -> Result<String, String> {
    fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    fs::write(path, text).map_err(|e| format!("writing {}: {e}", path.display()))
}
