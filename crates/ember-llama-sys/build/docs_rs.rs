//! docs.rs (`DOCS_RS` set): no network, no time or memory for eight builds of llama.cpp, and
//! perhaps no CMake or libclang. Nothing native is built; the bindings are a real build's
//! `OUT_DIR/bindings.rs`, which `cargo xtask package` stages into the packaged crate as
//! `docs-rs/bindings.rs`. Git does not keep it: it is derived from llama.cpp's headers (their
//! comments included), and nothing of llama.cpp is committed.

use std::path::Path;

use crate::env;

/// The bindings, relative to the crate's manifest.
pub const STAGED: &str = "docs-rs/bindings.rs";

/// Copies the staged bindings to `OUT_DIR/bindings.rs`, where `src/lib.rs` includes them.
pub fn bindings() -> Result<(), String> {
    let staged = env::manifest_dir().join(STAGED);
    rerun_if_changed(&staged);
    if !staged.is_file() {
        return Err(format!(
            "{} is set, so llama.cpp is not built and the bindings come from {}, which is \
             missing. Stage it from a real build with `cargo xtask docs-rs stage` (`cargo xtask \
             package` does this for the packaged crate), or unset {} to build llama.cpp.",
            env::DOCS_RS,
            staged.display(),
            env::DOCS_RS
        ));
    }
    // `OPENMP` as a build with these features has it (docs.rs enables `openmp`), not `false`.
    if env::feature("openmp") {
        println!("cargo:rustc-cfg=ember_openmp");
    }
    let out = env::out_dir().join("bindings.rs");
    std::fs::copy(&staged, &out)
        .map(drop)
        .map_err(|e| format!("copying {} to {}: {e}", staged.display(), out.display()))
}

/// Only for a path that exists: one that does not makes Cargo rerun the script every build.
fn rerun_if_changed(path: &Path) {
    if path.exists() {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}
