//! Where the llama.cpp tree comes from. Never downloads: a missing tree is an error that
//! names the fetch script and `LLAMA_CPP_SRC`.

use std::path::{Path, PathBuf};

use crate::env;

/// A llama.cpp source tree that has the files the build needs.
pub struct Tree {
    pub root: PathBuf,
}

/// Folders and files whose change should rebuild llama.cpp. Narrow on purpose: watching the
/// whole tree (docs, models, tests) would re-run CMake for nothing.
const WATCHED: &[&str] = &[
    "CMakeLists.txt",
    "cmake",
    "include",
    "src",
    "ggml/CMakeLists.txt",
    "ggml/cmake",
    "ggml/include",
    "ggml/src",
    "vendor",
    ".ember-pin",
];

/// 1. `LLAMA_CPP_SRC` -> that tree, whatever else exists.
/// 2. `llama.cpp/` inside this crate -> the tree `cargo package` carried.
/// 3. `vendor/llama.cpp/` of the workspace -> the tree `build-support/fetch-llama-cpp` made.
pub fn locate() -> Result<Tree, String> {
    if let Some(path) = env::var(env::LLAMA_CPP_SRC) {
        return Tree::check(PathBuf::from(&path)).map_err(|missing| {
            format!(
                "LLAMA_CPP_SRC={path} is not a llama.cpp tree ({missing} is missing).\n\
                 Point LLAMA_CPP_SRC at a llama.cpp checkout, or unset it to use the pinned tree."
            )
        });
    }
    let manifest = env::manifest_dir();
    let candidates = [
        manifest.join("llama.cpp"),
        manifest.join("../../vendor/llama.cpp"),
    ];
    for candidate in &candidates {
        if let Ok(tree) = Tree::check(candidate.clone()) {
            return Ok(tree);
        }
    }
    Err(format!(
        "no llama.cpp source tree found (looked in {}).\n\
         Fetch the pinned tree with `build-support/fetch-llama-cpp` from the ember workspace, \
         or set LLAMA_CPP_SRC=/path/to/llama.cpp to build another checkout.",
        candidates
            .iter()
            .map(|c| c.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

impl Tree {
    fn check(root: PathBuf) -> Result<Tree, String> {
        for needed in ["CMakeLists.txt", "include/llama.h", "ggml/include/ggml.h"] {
            if !root.join(needed).is_file() {
                return Err(root.join(needed).display().to_string());
            }
        }
        let root = root.canonicalize().map_err(|e| e.to_string())?;
        for watched in WATCHED {
            let path = root.join(watched);
            if path.exists() {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
        Ok(Tree { root })
    }

    /// Include folders for bindgen and for dependents (`DEP_EMBER_LLAMA_INCLUDE`).
    pub fn header_dirs(&self) -> Vec<PathBuf> {
        vec![self.root.join("include"), self.root.join("ggml/include")]
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.root.join(Path::new(relative))
    }
}
