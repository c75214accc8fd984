//! The exception barrier (`shim/ember_shim.cpp`): compiled with the `cc` crate against the same
//! llama.cpp headers, linked before libllama so that its references resolve there.

use std::path::PathBuf;

use crate::env;
use crate::private::Archive;
use crate::source::Tree;

/// Folder of `ember_shim.h` and `ember_shim.cpp`.
pub fn dir() -> PathBuf {
    env::manifest_dir().join("shim")
}

/// Compiles the shim into `libember_shim.a` in OUT_DIR, with `shim/ember_openmp.c` (built
/// with `-fopenmp` when `openmp`) into `libember_openmp.a`, and returns both in link order.
/// With `emit_links` the `cc` crate tells cargo to link them (and libstdc++) itself.
pub fn compile(
    include_dirs: &[PathBuf],
    openmp: bool,
    emit_links: bool,
) -> Result<Vec<Archive>, String> {
    compile_openmp(openmp, emit_links)?;
    let dir = dir();
    let source = dir.join("ember_shim.cpp");
    for file in [
        &source,
        &dir.join("ember_shim.h"),
        &dir.join("ember_guard.hpp"),
    ] {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .std("c++17")
        .file(&source)
        .include(&dir)
        .includes(include_dirs.iter().map(PathBuf::as_path))
        .cargo_metadata(emit_links)
        .warnings(true);
    build.try_compile("ember_shim").map_err(|e| {
        format!(
            "compiling the exception barrier {} failed: {e}\n\
             It needs a C++17 compiler (`apt-get install g++`, or set CXX).",
            source.display()
        )
    })?;
    let out = env::out_dir();
    Ok(vec![
        Archive::new("ember_shim", &out),
        Archive::new("ember_openmp", &out),
    ])
}

/// `ember_chat.cpp` (feature `chat`) into `libember_chat.a`: the door to llama.cpp's `common`
/// library, compiled against its headers (`common/`) and the JSON library it vendors.
pub fn compile_chat(tree: &Tree) -> Result<Archive, String> {
    let dir = dir();
    let source = dir.join("ember_chat.cpp");
    for file in [
        &source,
        &dir.join("ember_chat.h"),
        &dir.join("ember_guard.hpp"),
    ] {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .std("c++17")
        .file(&source)
        .include(&dir)
        .includes(tree.header_dirs())
        // Upstream's headers as system headers: their unused static helpers are not ours to warn of.
        .flag("-isystem")
        .flag(tree.path("common").display().to_string())
        .flag("-isystem")
        .flag(tree.path("vendor").display().to_string())
        .cargo_metadata(false)
        .warnings(true);
    build.try_compile("ember_chat").map_err(|e| {
        format!(
            "compiling the chat shim {} failed: {e}\n\
             It needs a C++17 compiler and a llama.cpp tree with common/ (chat.h).",
            source.display()
        )
    })?;
    Ok(Archive::new("ember_chat", &env::out_dir()))
}

/// `ember_openmp.c`: the thread team's names and priority, and the spin count set before
/// libgomp starts. Without OpenMP it compiles to stubs, so the bindings always link.
fn compile_openmp(openmp: bool, emit_links: bool) -> Result<(), String> {
    let dir = dir();
    let source = dir.join("ember_openmp.c");
    for file in [&source, &dir.join("ember_openmp.h")] {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    let mut build = cc::Build::new();
    build
        .file(&source)
        .include(&dir)
        .cargo_metadata(emit_links)
        .warnings(true);
    if openmp {
        build.flag("-fopenmp");
        println!("cargo:rustc-cfg=ember_openmp");
    }
    build.try_compile("ember_openmp").map_err(|e| {
        format!(
            "compiling {} failed: {e}\n\
             It needs a C compiler with OpenMP (GCC: `apt-get install gcc`, or set CC).",
            source.display()
        )
    })
}
