//! bindgen over llama.h and the ggml headers the safe crate needs, into OUT_DIR.

use std::path::PathBuf;

use crate::env;

/// Headers wrapped, in include order.
const HEADERS: &[&str] = &[
    "llama.h",
    "ggml.h",
    "ggml-cpu.h",
    "ggml-backend.h",
    "gguf.h",
    // The exception barrier (shim/): what the safe crate calls instead of the throwing ones.
    "ember_shim.h",
    // OpenMP's thread team and spin count (shim/ember_openmp.c).
    "ember_openmp.h",
    // Which CPU variant runs (cpu/).
    "ember_cpu.h",
];

/// Gives each function and extern variable the link name `<prefix><name>`, keeping its Rust
/// name (bindgen writes `#[link_name]`): the build renamed the C symbols (build/private.rs).
#[derive(Debug)]
struct PrivateLinkNames {
    prefix: &'static str,
}

impl bindgen::callbacks::ParseCallbacks for PrivateLinkNames {
    fn generated_link_name_override(
        &self,
        item: bindgen::callbacks::ItemInfo<'_>,
    ) -> Option<String> {
        match item.kind {
            bindgen::callbacks::ItemKind::Function | bindgen::callbacks::ItemKind::Var
                if !item.name.starts_with(self.prefix) =>
            {
                Some(format!("{}{}", self.prefix, item.name))
            }
            _ => None,
        }
    }
}

/// Writes OUT_DIR/bindings.rs; `prefix` is the one the linked symbols carry, if any.
/// With `chat`, also the door to llama.cpp's `common` library (shim/ember_chat.h).
pub fn generate(
    include_dirs: &[PathBuf],
    prefix: Option<&'static str>,
    chat: bool,
) -> Result<(), String> {
    let out = env::out_dir();
    for dir in include_dirs {
        println!("cargo:include={}", dir.display());
    }
    let wrapper: String = HEADERS
        .iter()
        .chain(chat.then_some(&"ember_chat.h"))
        .map(|h| format!("#include <{h}>\n"))
        .collect();
    let mut builder = bindgen::Builder::default()
        .header_contents("ember_llama_wrapper.h", &wrapper)
        .clang_args(include_dirs.iter().map(|d| format!("-I{}", d.display())))
        .clang_arg(format!("-I{}", crate::shim::dir().display()))
        .clang_arg(format!("-I{}", crate::dispatch::dir().display()))
        .allowlist_function("(llama|ggml|gguf|ember)_.*")
        .allowlist_type("(llama|ggml|gguf)_.*")
        .allowlist_var("(LLAMA|GGML|GGUF|EMBER)_.*")
        // C enums stay integer constants: a value the C side adds later is not UB in Rust.
        .default_enum_style(bindgen::EnumVariation::Consts)
        .derive_default(true)
        .derive_debug(true)
        .generate_comments(true)
        .layout_tests(true);
    if let Some(prefix) = prefix {
        builder = builder.parse_callbacks(Box::new(PrivateLinkNames { prefix }));
    }
    let bindings = builder.generate().map_err(|e| {
        format!(
            "bindgen could not parse the llama.cpp headers ({e}).\n\
             bindgen needs libclang: `apt-get install libclang-dev clang` (or set LIBCLANG_PATH)."
        )
    })?;
    bindings
        .write_to_file(out.join("bindings.rs"))
        .map_err(|e| format!("writing {}: {e}", out.join("bindings.rs").display()))
}
