//! A private llama.cpp: every global symbol that the static libraries ember links define
//! (llama, ggml, ggml-base, the GPU backends, the CPU variants, the dispatcher, the shim) gets
//! the prefix [`PREFIX`], so one binary can also hold another llama.cpp, whisper.cpp or ggml
//! (llama-cpp-2, whisper-rs) without duplicate symbols or one library's calls landing in the
//! other's copy.
//!
//! Why this way:
//! - All names, not only `llama_*`/`ggml_*`: `dequantize_row_q4_0`, `unicode_cpt_flags_*` and
//!   C++ template instantiations over llama.cpp's types exist in the other copies too.
//!   Mangled C++ names get the prefix as they are (`ember__ZN11llama_vocab…`): unique.
//! - COMDAT group signatures too: the linker keeps one group per signature and drops the other
//!   copies with the symbols inside them. Constructors' and destructors' signatures (`…C5Ev`,
//!   `…D5Ev`) are local symbols; left alone, another llama.cpp's group would replace ours and
//!   our renamed references would resolve to address 0.
//! - `objcopy --redefine-syms` over each archive renames definitions and references alike and
//!   keeps archive members apart (`--gc-sections` still drops unused ones); names a library
//!   only references (libc, libstdc++, libgomp, the GPU runtimes) are never in the map.
//! - The bindings keep their Rust names and link to the new ones (build/bindings.rs).
//!
//! ELF with GNU binutils only (Linux); elsewhere the build says it is not private.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::binutils;
use crate::env;
use crate::symcheck;

/// The prefix of every global symbol of ember's llama.cpp. One per crate, not per version:
/// `links` already keeps two ember-llama-sys versions out of one build.
pub const PREFIX: &str = "ember_";

/// A static library to link: `lib<name>.a` in `dir`.
#[derive(Clone, Debug)]
pub struct Archive {
    pub name: String,
    pub dir: PathBuf,
}

impl Archive {
    pub fn new(name: &str, dir: &Path) -> Self {
        Archive {
            name: name.to_string(),
            dir: dir.to_path_buf(),
        }
    }

    fn path(&self) -> PathBuf {
        self.dir.join(format!("lib{}.a", self.name))
    }
}

/// Whether this target's objects can be renamed (ELF, GNU binutils).
pub fn applies() -> bool {
    env::target_os() == "linux"
}

/// Where the renamed archives are written.
pub fn dir() -> PathBuf {
    env::out_dir().join("private")
}

/// Renames every global symbol of `archives` to `PREFIX<name>`, writes the results to
/// OUT_DIR/private (as `lib<PREFIX-less name>` archives: `ember-llama`, `ember-ggml`…),
/// checks them, and returns them in the same (link) order.
pub fn privatize(archives: &[Archive]) -> Result<Vec<Archive>, String> {
    let dir = dir();
    fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;

    // Global names, and COMDAT group signatures (local for constructors and destructors).
    let mut originals = BTreeSet::new();
    for archive in archives {
        let defined = symcheck::parse_nm(&nm(&archive.path(), &["-g", "--defined-only"])?);
        let groups = symcheck::parse_groups(&readelf_groups(&archive.path())?);
        for name in defined.into_iter().map(|(name, _)| name).chain(groups) {
            if !name.starts_with(PREFIX) {
                originals.insert(name);
            }
        }
    }
    // A test hook for the check below (README "A private llama.cpp"): leave one name out of the
    // map, and the build must fail. It can only make the build fail, never succeed.
    let left_out = env::var(env::TEST_LEAVE_GLOBAL);
    let map: String = originals
        .iter()
        .filter(|name| Some(name.as_str()) != left_out.as_deref())
        .map(|name| format!("{name} {PREFIX}{name}\n"))
        .collect();
    let map_file = dir.join("redefine-syms.txt");
    write(&map_file, &map)?;

    let mut private = Vec::new();
    for archive in archives {
        let name = if archive.name.starts_with(PREFIX) {
            archive.name.clone()
        } else {
            format!("{}{}", PREFIX.replace('_', "-"), archive.name)
        };
        let out = Archive::new(&name, &dir);
        if out.path() == archive.path() {
            return Err(format!(
                "{} would be renamed onto itself",
                out.path().display()
            ));
        }
        tool(
            binutils::command("objcopy")
                .arg(format!("--redefine-syms={}", map_file.display()))
                .arg(archive.path())
                .arg(out.path()),
        )?;
        // objcopy writes the archive's symbol index; rebuild it in case an old binutils did not.
        tool(binutils::command("ar").arg("s").arg(out.path()))?;
        private.push(out);
    }

    let mut defined = String::new();
    let mut groups = String::new();
    let mut undefined = String::new();
    for archive in &private {
        defined.push_str(&nm(&archive.path(), &["-g", "--defined-only"])?);
        groups.push_str(&readelf_groups(&archive.path())?);
        undefined.push_str(&nm(&archive.path(), &["-u"])?);
    }
    let count = symcheck::check_archives(PREFIX, &defined, &groups, &undefined, &originals)
        .map_err(|problem| {
            format!(
                "making llama.cpp private (prefix `{PREFIX}`, archives in {}) failed its \
                 check:\n{problem}\nAnother llama.cpp or ggml in the same binary would clash \
                 with these names.{}",
                dir.display(),
                match &left_out {
                    Some(name) => format!(
                        "\n({} is set: `{name}` was left out of the renaming on purpose.)",
                        env::TEST_LEAVE_GLOBAL
                    ),
                    None => String::new(),
                }
            )
        })?;
    write(
        &dir.join("manifest.txt"),
        &format!(
            "# ember-llama-sys: every global symbol of its llama.cpp carries this prefix \
             (build/private.rs)\nprefix {PREFIX}\nrenamed {}\nglobal {count}\n",
            originals.len()
        ),
    )?;
    println!(
        "ember-llama-sys: {} names renamed to {PREFIX}*, {count} global definitions checked",
        originals.len()
    );
    println!("cargo:symbol_prefix={PREFIX}");
    println!(
        "cargo:private_manifest={}",
        dir.join("manifest.txt").display()
    );
    Ok(private)
}

fn readelf_groups(archive: &Path) -> Result<String, String> {
    tool(binutils::command("readelf").args(["-g", "-W"]).arg(archive))
}

fn nm(archive: &Path, args: &[&str]) -> Result<String, String> {
    tool(binutils::command("nm").arg("-P").args(args).arg(archive))
}

fn tool(command: &mut Command) -> Result<String, String> {
    let program = command.get_program().to_string_lossy().to_string();
    let out = command.output().map_err(|e| {
        format!(
            "could not run `{program}` ({e}): making llama.cpp's symbols private needs GNU \
             binutils (objcopy, nm, readelf, ar) on PATH (Debian/Ubuntu: `apt-get install binutils`)."
        )
    })?;
    if !out.status.success() {
        return Err(format!(
            "making llama.cpp's symbols private: `{command:?}` failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    fs::write(path, text).map_err(|e| format!("writing {}: {e}", path.display()))
}
