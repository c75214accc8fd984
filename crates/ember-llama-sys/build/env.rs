//! The one accessor for environment variables (the openssl-sys pattern).
//!
//! [`var`] is for variables a user sets: it declares `cargo:rerun-if-env-changed` and logs
//! the value, so a changed setting rebuilds and a build log shows what was used.
//! [`cargo`] is for the variables Cargo itself sets for build scripts.

use std::path::PathBuf;

/// Variables the build reads, each documented in the crate README.
pub const LLAMA_CPP_SRC: &str = "LLAMA_CPP_SRC";
pub const CMAKE_DEFINES: &str = "EMBER_LLAMA_CMAKE_DEFINES";
pub const CUDA_ARCHITECTURES: &str = "EMBER_LLAMA_CUDA_ARCHITECTURES";
pub const CUDA_PATH: &str = "EMBER_LLAMA_CUDA_PATH";
pub const VULKAN_INCLUDE_DIR: &str = "EMBER_LLAMA_VULKAN_INCLUDE_DIR";
pub const BLAS_VENDOR: &str = "EMBER_LLAMA_BLAS_VENDOR";
pub const STATIC_STDCXX: &str = "EMBER_LLAMA_STATIC_STDCXX";
pub const CCACHE: &str = "EMBER_LLAMA_CCACHE";
pub const CPU_VARIANTS: &str = "EMBER_LLAMA_CPU_VARIANTS";
pub const OPENMP: &str = "EMBER_LLAMA_OPENMP";
/// Set by docs.rs: no native build, bindings from the packaged `docs-rs/bindings.rs`.
pub const DOCS_RS: &str = "DOCS_RS";
/// Test only: a symbol name left out of the renaming, which must make the build fail.
pub const TEST_LEAVE_GLOBAL: &str = "EMBER_LLAMA_TEST_LEAVE_GLOBAL";

/// A user-set variable; empty counts as unset.
pub fn var(name: &str) -> Option<String> {
    println!("cargo:rerun-if-env-changed={name}");
    let value = std::env::var(name).ok().filter(|v| !v.is_empty());
    match &value {
        Some(v) => println!("ember-llama-sys: {name}={v}"),
        None => println!("ember-llama-sys: {name} is not set"),
    }
    value
}

/// A variable Cargo sets for every build script.
pub fn cargo(name: &str) -> String {
    std::env::var(name).unwrap_or_default()
}

/// Whether Cargo enabled the crate feature `name`.
pub fn feature(name: &str) -> bool {
    let key = format!("CARGO_FEATURE_{}", name.to_uppercase().replace('-', "_"));
    std::env::var_os(key).is_some()
}

pub fn out_dir() -> PathBuf {
    PathBuf::from(cargo("OUT_DIR"))
}

pub fn manifest_dir() -> PathBuf {
    PathBuf::from(cargo("CARGO_MANIFEST_DIR"))
}

/// Target facts come from `CARGO_CFG_TARGET_*`: `cfg!(..)` here would describe the host.
pub fn target_os() -> String {
    cargo("CARGO_CFG_TARGET_OS")
}

pub fn target_env() -> String {
    cargo("CARGO_CFG_TARGET_ENV")
}

pub fn target_arch() -> String {
    cargo("CARGO_CFG_TARGET_ARCH")
}

/// Whether the target links the C runtime statically (`-C target-feature=+crt-static`).
pub fn crt_static() -> bool {
    cargo("CARGO_CFG_TARGET_FEATURE")
        .split(',')
        .any(|f| f == "crt-static")
}
