//! The exception barrier (`shim/ember_shim.cpp`): compiled with the `cc` crate against the same
//! llama.cpp headers, linked before libllama so that its references resolve there.

use std::path::PathBuf;

use crate::env;

/// Folder of `ember_shim.h` and `ember_shim.cpp`.
pub fn dir() -> PathBuf {
    env::manifest_dir().join("shim")
}

/// Compiles the shim into `libember_shim.a` in OUT_DIR and tells cargo to link it.
pub fn compile(include_dirs: &[PathBuf]) -> Result<(), String> {
    let dir = dir();
    let source = dir.join("ember_shim.cpp");
    for file in [&source, &dir.join("ember_shim.h")] {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    let mut build = cc::Build::new();
    build
        .cpp(true)
        .std("c++17")
        .file(&source)
        .include(&dir)
        .includes(include_dirs.iter().map(PathBuf::as_path))
        .warnings(true);
    build.try_compile("ember_shim").map_err(|e| {
        format!(
            "compiling the exception barrier {} failed: {e}\n\
             It needs a C++17 compiler (`apt-get install g++`, or set CXX).",
            source.display()
        )
    })
}
