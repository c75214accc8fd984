//! Build script of ember-llama-sys: a decision list, one line of reason per branch.
//!
//! 1. `system` feature        -> link an installed llama.cpp found by pkg-config.
//! 2. otherwise               -> build the llama.cpp tree (LLAMA_CPP_SRC, the tree packaged in
//!    this crate, or the workspace's vendor/llama.cpp) with CMake, statically.
//!    On x86-64 Linux (no `native`): `ggml-cpu` once more per CPU variant, each made private
//!    and renamed (variants.rs), all linked behind the dispatcher (cpu/, dispatch.rs).
//! 3. in both cases           -> compile the exception barrier (shim/) and the dispatcher (or
//!    its one-name stand-in) against those headers, and run bindgen over them into OUT_DIR.
//!
//! It never touches the network. Every environment variable it reads goes through
//! [`env::var`], which declares it to Cargo.

mod bindings;
mod cmake;
mod cpu;
mod dispatch;
mod env;
mod features;
mod link;
mod shim;
mod source;
mod system;
mod variants;

use std::process::ExitCode;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("\nerror: ember-llama-sys: {message}\n");
            eprintln!(
                "(host {}, target {}, ember-llama-sys {})",
                env::cargo("HOST"),
                env::cargo("TARGET"),
                env::cargo("CARGO_PKG_VERSION")
            );
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    println!("cargo:rerun-if-changed=build");
    println!("cargo:rustc-check-cfg=cfg(ember_openmp)");
    let selection = features::Selection::from_cargo()?;

    let headers = if selection.system {
        // An installed llama.cpp decides its own backends; we only link it.
        let headers = system::probe()?;
        shim::compile(&headers, false)?;
        let dispatcher = dispatch::compile(&selection.cpu, &headers)?;
        link::dispatcher(&dispatcher);
        headers
    } else {
        let tree = source::locate()?;
        let built = cmake::build(&tree, &selection)?;
        let cpu = match &selection.cpu {
            cpu::CpuPlan::Dispatch(variants) => link::CpuBackend::Variants(variants::build_all(
                &tree, &selection, &built, variants,
            )?),
            _ => link::CpuBackend::One,
        };
        let dispatcher = dispatch::compile(&selection.cpu, &tree.header_dirs())?;
        // Before the static libraries: the linker resolves the shim's references in them.
        shim::compile(&tree.header_dirs(), selection.openmp)?;
        link::emit(&built, &selection, &cpu, &dispatcher)?;
        tree.header_dirs()
    };

    bindings::generate(&headers)
}
