//! The `system` feature: link an installed llama.cpp found by pkg-config.

use std::path::PathBuf;

/// Probes `llama.pc` (pkg-config prints the link directives) and returns its include folders.
pub fn probe() -> Result<Vec<PathBuf>, String> {
    let library = pkg_config::Config::new()
        .cargo_metadata(true)
        .probe("llama")
        .map_err(|e| {
            format!(
                "feature `system`: pkg-config found no installed llama.cpp ({e}).\n\
                 Install llama.cpp with its pkg-config file (`cmake --install` of a llama.cpp build \
                 writes lib/pkgconfig/llama.pc) and set PKG_CONFIG_PATH to its folder, or drop \
                 `system` to build the pinned llama.cpp."
            )
        })?;
    for dir in &library.include_paths {
        println!("cargo:include={}", dir.display());
    }
    Ok(library.include_paths)
}
