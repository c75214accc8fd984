//! Link directives for the static libraries the CMake build made, in dependency order, and
//! for the runtimes they need. Libraries are named one by one: no globbing of `*.a`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cmake::Built;
use crate::env;
use crate::features::Selection;
use crate::private::Archive;

/// How the CPU backend is linked.
pub enum CpuBackend {
    /// The main build's `libggml-cpu.a`, as built.
    One,
    /// One renamed archive per variant, behind the dispatcher.
    Variants(Vec<Archive>),
}

/// The dispatcher alone (an installed llama.cpp brings its own CPU backend).
pub fn dispatcher(dir: &Path) {
    static_libs(&[Archive::new("ember_cpu", dir)]);
}

/// The static libraries the CMake build made, plus the dispatcher and the CPU variants, in
/// link order. Users first, providers last: libllama -> libggml (backend registry) -> each
/// backend -> the CPU backend (the dispatcher, then the variants it forwards to) ->
/// libggml-base (tensors, gguf, allocator).
pub fn built_archives(
    built: &Built,
    selection: &Selection,
    cpu: &CpuBackend,
    dispatcher_dir: &Path,
) -> Result<Vec<Archive>, String> {
    let mut libs = Vec::new();
    if selection.chat {
        // Before libllama, which it calls; build-info (llama-common-base) after it.
        libs.push(("llama-common", "common".to_string()));
        libs.push(("llama-common-base", "common".to_string()));
    }
    libs.extend([
        ("llama", "src".to_string()),
        ("ggml", "ggml/src".to_string()),
    ]);
    for backend in selection.gpu_backends() {
        libs.push((backend_lib(backend), format!("ggml/src/ggml-{backend}")));
    }
    let mut archives = Vec::new();
    for (name, hint) in &libs {
        archives.push(built_lib(built, name, hint)?);
    }
    match cpu {
        CpuBackend::One => {
            archives.push(built_lib(built, "ggml-cpu", "ggml/src")?);
            archives.push(Archive::new("ember_cpu", dispatcher_dir));
        }
        CpuBackend::Variants(variants) => {
            archives.push(Archive::new("ember_cpu", dispatcher_dir));
            archives.extend(variants.iter().cloned());
        }
    }
    archives.push(built_lib(built, "ggml-base", "ggml/src")?);
    Ok(archives)
}

/// Links `archives` in order, then the runtimes they need. `lib_dir` is what dependents get
/// as `DEP_EMBER_LLAMA_LIB_DIR`: the folder of the libraries as linked.
pub fn emit(
    built: &Built,
    lib_dir: &Path,
    archives: &[Archive],
    selection: &Selection,
) -> Result<(), String> {
    // Dependents get DEP_EMBER_LLAMA_LIB_DIR / DEP_EMBER_LLAMA_ROOT through `links`.
    println!("cargo:lib_dir={}", lib_dir.display());
    println!("cargo:root={}", built.build_dir.display());
    static_libs(archives);
    backend_runtimes(selection)?;
    cxx_runtime()?;
    if selection.openmp {
        openmp_runtime()?;
    }
    Ok(())
}

/// `-L` for each folder (once) and `-l static=` for each library, in order.
pub fn static_libs(archives: &[Archive]) {
    let mut dirs: Vec<&Path> = Vec::new();
    for archive in archives {
        if !dirs.contains(&archive.dir.as_path()) {
            dirs.push(&archive.dir);
            println!("cargo:rustc-link-search=native={}", archive.dir.display());
        }
    }
    for archive in archives {
        println!("cargo:rustc-link-lib=static={}", archive.name);
    }
}

fn built_lib(built: &Built, name: &str, hint: &str) -> Result<Archive, String> {
    let dir = find_static_lib(&built.build_dir, name, hint)?;
    Ok(Archive::new(name, &dir))
}

fn backend_lib(backend: &str) -> &'static str {
    match backend {
        "cuda" => "ggml-cuda",
        "hip" => "ggml-hip",
        "vulkan" => "ggml-vulkan",
        "metal" => "ggml-metal",
        "blas" => "ggml-blas",
        _ => unreachable!("unknown backend {backend}"),
    }
}

/// `lib<name>.a` is in `<build>/<hint>` for the pinned tree; other trees may place it one level
/// deeper, so look there too before giving up with the paths tried.
fn find_static_lib(build_dir: &Path, name: &str, hint: &str) -> Result<PathBuf, String> {
    let file = format!("lib{name}.a");
    let candidates = [
        build_dir.join(hint),
        build_dir.join(hint).join(name),
        build_dir.join("ggml/src").join(name),
        build_dir.join("lib"),
    ];
    candidates
        .iter()
        .find(|dir| dir.join(&file).is_file())
        .cloned()
        .ok_or_else(|| {
            format!(
                "the CMake build finished but {file} is not where expected (looked in {}).\n\
                 If LLAMA_CPP_SRC points at a different llama.cpp version, its layout may differ \
                 from the pinned tree's; use the pinned tree (unset LLAMA_CPP_SRC).",
                candidates
                    .iter()
                    .map(|c| c.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}

/// Runtimes of GPU backends. Vendor libraries are static where the vendor ships them static;
/// what the host provides (the CUDA driver, the Vulkan loader, ROCm) stays dynamic.
fn backend_runtimes(selection: &Selection) -> Result<(), String> {
    if selection.cuda {
        let root = env::var(env::CUDA_PATH).unwrap_or_else(|| "/usr/local/cuda".into());
        let mut dirs = Vec::new();
        for sub in ["lib64", "lib", "lib64/stubs", "lib/stubs"] {
            let dir = Path::new(&root).join(sub);
            if dir.is_dir() {
                println!("cargo:rustc-link-search=native={}", dir.display());
                dirs.push(dir);
            }
        }
        let has = |file: &str| dirs.iter().any(|d| d.join(file).is_file());
        // A full toolkit ships static cuBLAS; NVIDIA's PyPI wheels (build-support/setup-cuda)
        // ship only the shared libraries, which then must be found at run time too.
        if has("libcublas_static.a") {
            for lib in ["cublas_static", "cublasLt_static"] {
                println!("cargo:rustc-link-lib=static={lib}");
            }
        } else {
            for lib in ["cublas", "cublasLt"] {
                println!("cargo:rustc-link-lib=dylib={lib}");
            }
        }
        println!("cargo:rustc-link-lib=static=cudart_static");
        // Static cuBLAS needs culibos; CUDA 13 no longer ships it.
        if has("libculibos.a") {
            println!("cargo:rustc-link-lib=static=culibos");
        }
        println!("cargo:rustc-link-lib=dylib=cuda");
        for lib in ["dl", "rt", "pthread"] {
            println!("cargo:rustc-link-lib=dylib={lib}");
        }
    }
    if selection.hip {
        for lib in ["hipblas", "rocblas", "amdhip64"] {
            println!("cargo:rustc-link-lib=dylib={lib}");
        }
    }
    if selection.vulkan {
        println!("cargo:rustc-link-lib=dylib=vulkan");
    }
    if selection.blas {
        let vendor = env::var(env::BLAS_VENDOR).unwrap_or_else(|| "OpenBLAS".into());
        let lib = match vendor.as_str() {
            "OpenBLAS" => "openblas",
            "FLAME" => "blis",
            "Intel10_64lp" | "Intel10_64lp_seq" => "mkl_rt",
            other => {
                return Err(format!(
                    "{}={other}: ember does not know which library to link for this vendor; \
                     use OpenBLAS, FLAME or Intel10_64lp",
                    env::BLAS_VENDOR
                ))
            }
        };
        println!("cargo:rustc-link-lib=dylib={lib}");
    }
    if selection.metal {
        for framework in ["Foundation", "Metal", "MetalKit"] {
            println!("cargo:rustc-link-lib=framework={framework}");
        }
    }
    Ok(())
}

/// The C++ standard library llama.cpp needs: static when the C runtime is (`crt-static`) or
/// when EMBER_LLAMA_STATIC_STDCXX=1 asks for it, so the binary has no libstdc++.so dependency.
fn cxx_runtime() -> Result<(), String> {
    let os = env::target_os();
    if os == "macos" || os == "ios" {
        println!("cargo:rustc-link-lib=dylib=c++");
        return Ok(());
    }
    let forced = env::var(env::STATIC_STDCXX).is_some_and(|v| v == "1");
    if env::crt_static() || forced {
        add_search_path_of("libstdc++.a")?;
        println!("cargo:rustc-link-lib=static=stdc++");
    } else {
        println!("cargo:rustc-link-lib=dylib=stdc++");
    }
    Ok(())
}

/// GNU OpenMP, always static: libgomp reads its environment in a constructor, and the
/// shim's constructor that sets GOMP_SPINCOUNT must run first, which a link orders only
/// inside one binary (a shared libgomp would be initialised before the program).
fn openmp_runtime() -> Result<(), String> {
    add_search_path_of("libgomp.a")?;
    println!("cargo:rustc-link-lib=static=gomp");
    Ok(())
}

/// The folder of a compiler runtime archive, as the target's C++ compiler reports it (the one
/// the `cc` crate picks: `CXX_<target>`, `TARGET_CXX`, `CXX`, or `<triple>-g++`).
fn add_search_path_of(file: &str) -> Result<(), String> {
    let compiler = cc::Build::new()
        .cpp(true)
        .cargo_metadata(false)
        .get_compiler();
    let cxx = compiler.path().display().to_string();
    let output = Command::new(compiler.path())
        .arg(format!("-print-file-name={file}"))
        .output()
        .map_err(|e| {
            format!(
                "could not run `{cxx}` to find {file}: {e}. Install g++ (`apt-get install g++`)."
            )
        })?;
    let path = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    if !path.is_absolute() || !path.is_file() {
        return Err(format!(
            "a static link needs {file}, but `{cxx} -print-file-name={file}` did not find it.\n\
             Install the static runtime (Debian/Ubuntu: `apt-get install libstdc++-12-dev libgcc-12-dev`)."
        ));
    }
    if let Some(dir) = path.parent() {
        println!("cargo:rustc-link-search=native={}", dir.display());
    }
    Ok(())
}
