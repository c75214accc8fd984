//! The CMake builds of llama.cpp: the `llama` target, plus the `ggml-cpu` target once per
//! extra CPU variant; always Release, always static.

use std::path::PathBuf;
use std::process::Command;

use crate::cpu::{CpuPlan, Variant, ISA_OPTIONS};
use crate::env;
use crate::features::Selection;
use crate::source::Tree;

/// What a CMake build produced: where its static libraries are.
pub struct Built {
    pub build_dir: PathBuf,
}

/// Options we always set. Tools, tests, examples and the server are not built (the `llama`
/// target alone takes about half the time; `common` comes with the `chat` feature, in
/// features.rs); OpenSSL, which the pinned
/// tree turns on by default for its downloader, would drag libssl into our binary.
const FIXED: &[(&str, &str)] = &[
    ("BUILD_SHARED_LIBS", "OFF"),
    ("GGML_BACKEND_DL", "OFF"),
    ("GGML_CPU", "ON"),
    ("GGML_STATIC", "OFF"),
    ("GGML_OPENMP_FETCH", "OFF"),
    ("LLAMA_BUILD_TESTS", "OFF"),
    ("LLAMA_BUILD_TOOLS", "OFF"),
    ("LLAMA_BUILD_EXAMPLES", "OFF"),
    ("LLAMA_BUILD_SERVER", "OFF"),
    ("LLAMA_BUILD_APP", "OFF"),
    ("LLAMA_BUILD_MTMD", "OFF"),
    ("LLAMA_OPENSSL", "OFF"),
    ("LLAMA_CURL", "OFF"),
    ("LLAMA_ALL_WARNINGS", "OFF"),
    ("GGML_ALL_WARNINGS", "OFF"),
    // CPU variants are renamed with binutils, which cannot read LTO objects.
    ("GGML_LTO", "OFF"),
];

pub fn build(tree: &Tree, selection: &Selection) -> Result<Built, String> {
    require_cmake()?;
    let options = options(tree, selection, selection.cpu.main_options())?;
    // `llama-common` depends on `llama`: one target builds both.
    let target = if selection.chat {
        "llama-common"
    } else {
        "llama"
    };
    let out = configure(tree, &options, target, None).build();
    Ok(Built {
        build_dir: out.join("build"),
    })
}

/// Builds only the `ggml-cpu` target of one CPU variant, in its own folder under OUT_DIR,
/// with the main build's options but the variant's ISA options; returns its `libggml-cpu.a`.
pub fn build_cpu_variant(
    tree: &Tree,
    selection: &Selection,
    variant: &Variant,
) -> Result<PathBuf, String> {
    let mut isa = vec![("GGML_NATIVE".to_string(), "OFF".to_string())];
    isa.extend(variant.cmake_options());
    let options = options(tree, selection, isa)?;
    let dir = env::out_dir().join("cpu-variants").join(variant.name);
    let out = configure(tree, &options, "ggml-cpu", Some(dir)).build();
    let lib = out.join("build/ggml/src/libggml-cpu.a");
    if !lib.is_file() {
        return Err(format!(
            "the CMake build of CPU variant `{}` finished but {} is missing; a llama.cpp tree \
             with another layout (LLAMA_CPP_SRC) may need `EMBER_LLAMA_CPU_VARIANTS=x64` or the \
             `native` feature.",
            variant.name,
            lib.display()
        ));
    }
    Ok(lib)
}

fn configure(
    tree: &Tree,
    options: &[(String, String)],
    target: &str,
    out_dir: Option<PathBuf>,
) -> cmake::Config {
    let mut config = cmake::Config::new(&tree.root);
    // A debug `cargo test` must not run an unoptimised llama.cpp: the C/C++ side is Release
    // whatever the Cargo profile is.
    config.profile("Release").build_target(target);
    if let Some(dir) = out_dir {
        config.out_dir(dir);
    }
    // cmake-rs forwards NUM_JOBS (set by Cargo) as --parallel unless CMAKE_BUILD_PARALLEL_LEVEL
    // is set; declare the latter so changing it is noticed.
    println!("cargo:rerun-if-env-changed=CMAKE_BUILD_PARALLEL_LEVEL");
    for (key, value) in options {
        config.define(key, value);
    }
    config
}

/// Every `-D` passed to CMake, in order: fixed, feature table, CPU ISA, backend settings,
/// then the user's escape hatch (last, so it wins).
fn options(
    tree: &Tree,
    selection: &Selection,
    isa: Vec<(String, String)>,
) -> Result<Vec<(String, String)>, String> {
    let mut options: Vec<(String, String)> = FIXED
        .iter()
        .chain(selection.table_options().iter())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    options.extend(isa);

    // The pinned tree has no `.git`; without these, CMake's build-info would ask git and
    // could find the enclosing ember repository's commit instead of llama.cpp's.
    if let Some(commit) = pinned_commit(tree) {
        options.push(("LLAMA_BUILD_COMMIT".into(), commit));
        options.push(("LLAMA_BUILD_NUMBER".into(), "0".into()));
    }
    if selection.cuda {
        if let Some(archs) = env::var(env::CUDA_ARCHITECTURES) {
            options.push(("CMAKE_CUDA_ARCHITECTURES".into(), archs));
        }
        // A toolkit outside PATH (build-support/setup-cuda's vendor/cuda): CMake must find the
        // same nvcc and libraries that link.rs links.
        if let Some(root) = env::var(env::CUDA_PATH) {
            let nvcc = PathBuf::from(&root).join("bin").join("nvcc");
            if !nvcc.is_file() {
                return Err(format!(
                    "{}={root}: no bin/nvcc there. Point it at a CUDA toolkit root, or run \
                     build-support/setup-cuda, which installs one into vendor/cuda.",
                    env::CUDA_PATH
                ));
            }
            options.push(("CUDAToolkit_ROOT".into(), root));
            options.push(("CMAKE_CUDA_COMPILER".into(), nvcc.display().to_string()));
        }
    }
    if selection.vulkan {
        // Vulkan headers newer than the host's (build-support/fetch-vulkan-headers); the
        // loader library is still the host's.
        if let Some(dir) = env::var(env::VULKAN_INCLUDE_DIR) {
            if !PathBuf::from(&dir)
                .join("vulkan")
                .join("vulkan.hpp")
                .is_file()
            {
                return Err(format!(
                    "{}={dir}: no vulkan/vulkan.hpp there. Point it at the folder that holds \
                     vulkan/ (build-support/fetch-vulkan-headers prints it).",
                    env::VULKAN_INCLUDE_DIR
                ));
            }
            options.push(("Vulkan_INCLUDE_DIR".into(), dir));
        }
    }
    if selection.blas {
        let vendor = env::var(env::BLAS_VENDOR).unwrap_or_else(|| "OpenBLAS".into());
        options.push(("GGML_BLAS_VENDOR".into(), vendor));
    }
    if env::var(env::CCACHE).is_some_and(|v| v == "1") {
        // Upstream's GGML_CCACHE covers only ggml's own folder; the launchers cover libllama
        // too, so the several builds of one test run (debug, static, packaged) share objects.
        require_program(
            "ccache",
            &format!("{}=1 asks for ccache", env::CCACHE),
            &format!(
                "Install it (Debian/Ubuntu: `apt-get install ccache`) or unset {}.",
                env::CCACHE
            ),
        )?;
        options.push(("CMAKE_C_COMPILER_LAUNCHER".into(), "ccache".into()));
        options.push(("CMAKE_CXX_COMPILER_LAUNCHER".into(), "ccache".into()));
    }
    if let Some(defines) = env::var(env::CMAKE_DEFINES) {
        let defines = parse_defines(&defines)?;
        if let CpuPlan::Dispatch(_) = selection.cpu {
            refuse_isa_defines(&defines)?;
        }
        options.extend(defines);
    }
    Ok(options)
}

/// `EMBER_LLAMA_CMAKE_DEFINES="K=V;K=V"`: the one escape hatch for options we do not map.
fn parse_defines(text: &str) -> Result<Vec<(String, String)>, String> {
    text.split(';')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            let (key, value) = item.split_once('=').ok_or_else(|| {
                format!(
                    "{}: `{item}` is not KEY=VALUE (example: GGML_LTO=ON;GGML_CUDA_FA=OFF)",
                    env::CMAKE_DEFINES
                )
            })?;
            let valid = !key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            if !valid {
                return Err(format!(
                    "{}: `{key}` is not a CMake option name (A-Z, 0-9 and _ only)",
                    env::CMAKE_DEFINES
                ));
            }
            if key == "BUILD_SHARED_LIBS" || key == "GGML_BACKEND_DL" {
                return Err(format!(
                    "{}: `{key}` cannot be changed: ember links llama.cpp statically",
                    env::CMAKE_DEFINES
                ));
            }
            Ok((key.to_string(), value.to_string()))
        })
        .collect()
}

/// With CPU variants, the ISA options are each variant's, and the variants' objects are
/// renamed with binutils, which cannot read LTO objects.
fn refuse_isa_defines(defines: &[(String, String)]) -> Result<(), String> {
    for (key, value) in defines {
        let isa = key.strip_prefix("GGML_").is_some_and(|option| {
            ISA_OPTIONS.contains(&option) || option == "NATIVE" || option == "CPU_ARM_ARCH"
        });
        let lto = key == "GGML_LTO" && !matches!(value.as_str(), "OFF" | "0" | "FALSE" | "NO");
        if isa || lto || key == "GGML_CPU_ALL_VARIANTS" {
            return Err(format!(
                "{}: `{key}={value}` cannot be set while ember builds CPU variants (each variant \
                 sets its own ISA options, and its objects must not be LTO objects). Choose the \
                 variants with {}, or build one CPU backend for this machine with the `native` \
                 feature.",
                env::CMAKE_DEFINES,
                env::CPU_VARIANTS
            ));
        }
    }
    Ok(())
}

/// The upstream commit recorded by `build-support/fetch-llama-cpp` in the tree's stamp.
fn pinned_commit(tree: &Tree) -> Option<String> {
    let stamp = std::fs::read_to_string(tree.path(".ember-pin")).ok()?;
    let commit = stamp
        .split_whitespace()
        .find_map(|w| w.strip_prefix("commit="))?;
    Some(commit.chars().take(7).collect())
}

fn require_cmake() -> Result<(), String> {
    let program = env::var("CMAKE").unwrap_or_else(|| "cmake".into());
    require_program(
        &program,
        "CMake (3.14 or newer) is needed to build llama.cpp",
        "Install it (Debian/Ubuntu: `apt-get install cmake`; `build-support/dev setup` does it), \
         or enable the `system` feature to link an installed llama.cpp.",
    )
}

/// Fails with `why` and `fix` when `program --version` does not run.
fn require_program(program: &str, why: &str, fix: &str) -> Result<(), String> {
    match Command::new(program).arg("--version").output() {
        Ok(out) if out.status.success() => Ok(()),
        _ => Err(format!("`{program} --version` failed: {why}.\n{fix}")),
    }
}
