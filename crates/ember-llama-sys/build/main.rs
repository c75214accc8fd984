//! Build script of ember-llama-sys: a decision list, one line of reason per branch.
//!
//! 0. `DOCS_RS` (docs.rs)     -> build nothing: the bindings come from the packaged
//!    `docs-rs/bindings.rs` (docs_rs.rs).
//! 1. `system` feature        -> link an installed llama.cpp found by pkg-config.
//! 2. otherwise               -> build the llama.cpp tree (LLAMA_CPP_SRC, the tree packaged in
//!    this crate, or the workspace's vendor/llama.cpp) with CMake, statically.
//!    On x86-64 and aarch64 Linux (no `native`): `ggml-cpu` once more per CPU variant, each
//!    made private and renamed (variants.rs), all linked behind the dispatcher (cpu/,
//!    dispatch.rs). A cross build takes the target's compilers from the `cc` crate's variables
//!    and the target's binutils from its compiler (binutils.rs).
//! 3. in both cases           -> compile the exception barrier (shim/) and the dispatcher (or
//!    its one-name stand-in) against those headers, and run bindgen over them into OUT_DIR.
//! 4. built here, on Linux    -> rename every global symbol of those static libraries to
//!    `ember_*` (private.rs) and check it, so the binary can hold another llama.cpp or ggml;
//!    the bindings keep their names and link to the renamed ones.
//!
//! It never touches the network. Every environment variable it reads goes through
//! [`env::var`], which declares it to Cargo.

mod bindings;
mod binutils;
mod cmake;
mod cpu;
mod dispatch;
mod docs_rs;
mod env;
mod features;
mod link;
mod private;
mod shim;
mod source;
mod symcheck;
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
    if env::var(env::DOCS_RS).is_some() {
        return docs_rs::bindings();
    }
    let selection = features::Selection::from_cargo()?;

    let (headers, prefix) = if selection.system {
        // An installed llama.cpp decides its own backends; we only link it. Its symbols are
        // its own: they cannot be renamed, so it cannot share a binary with another copy.
        let headers = system::probe()?;
        shim::compile(&headers, false, true)?;
        let dispatcher = dispatch::compile(&selection.cpu, &headers)?;
        link::dispatcher(&dispatcher);
        (headers, None)
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
        // First: the linker resolves the shim's references in the libraries after it.
        let mut archives = shim::compile(&tree.header_dirs(), selection.openmp, false)?;
        if selection.chat {
            archives.push(shim::compile_chat(&tree)?);
        }
        archives.extend(link::built_archives(&built, &selection, &cpu, &dispatcher)?);
        if private::applies() {
            let archives = private::privatize(&archives)?;
            link::emit(&built, &private::dir(), &archives, &selection)?;
            (tree.header_dirs(), Some(private::PREFIX))
        } else {
            println!(
                "cargo:warning=ember-llama-sys: on {} llama.cpp's symbols are not renamed \
                 (ELF/GNU binutils only): this binary cannot also link another llama.cpp or ggml",
                env::target_os()
            );
            link::emit(&built, &built.build_dir, &archives, &selection)?;
            (tree.header_dirs(), None)
        }
    };

    bindings::generate(&headers, prefix, selection.chat)
}
