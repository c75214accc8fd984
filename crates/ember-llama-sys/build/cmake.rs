//! The CMake build of llama.cpp: only the `llama` target, always Release, always static.

use std::path::PathBuf;
use std::process::Command;

use crate::env;
use crate::features::Selection;
use crate::source::Tree;

/// What a CMake build produced: where its static libraries are.
pub struct Built {
    pub build_dir: PathBuf,
}

/// Options we always set. Tools, tests, examples, the server and the `common` library are
/// not built (the `llama` target alone takes about half the time); OpenSSL, which the pinned
/// tree turns on by default for its downloader, would drag libssl into our binary.
const FIXED: &[(&str, &str)] = &[
    ("BUILD_SHARED_LIBS", "OFF"),
    ("GGML_BACKEND_DL", "OFF"),
    ("GGML_CPU", "ON"),
    ("GGML_STATIC", "OFF"),
    ("GGML_OPENMP_FETCH", "OFF"),
    ("LLAMA_BUILD_COMMON", "OFF"),
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
];

pub fn build(tree: &Tree, selection: &Selection) -> Result<Built, String> {
    require_cmake()?;
    let mut config = cmake::Config::new(&tree.root);
    // A debug `cargo test` must not run an unoptimised llama.cpp: the C/C++ side is Release
    // whatever the Cargo profile is.
    config.profile("Release").build_target("llama");
    // cmake-rs forwards NUM_JOBS (set by Cargo) as --parallel unless CMAKE_BUILD_PARALLEL_LEVEL
    // is set; declare the latter so changing it is noticed.
    println!("cargo:rerun-if-env-changed=CMAKE_BUILD_PARALLEL_LEVEL");

    for (key, value) in options(tree, selection)? {
        config.define(key, value);
    }
    let out = config.build();
    Ok(Built {
        build_dir: out.join("build"),
    })
}

/// Every `-D` passed to CMake, in order: fixed, feature table, CPU ISA, backend settings,
/// then the user's escape hatch (last, so it wins).
fn options(tree: &Tree, selection: &Selection) -> Result<Vec<(String, String)>, String> {
    let mut options: Vec<(String, String)> = FIXED
        .iter()
        .chain(selection.table_options().iter())
        .chain(selection.cpu.options().iter())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();

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
        options.extend(parse_defines(&defines)?);
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
