//! The target's GNU binutils (`ld`, `objcopy`, `nm`, `objdump`, `readelf`, `ar`).
//!
//! The host's tools read only the host's object format as Debian builds them, so a cross build
//! (target ≠ host) asks the target's C compiler where its own are, as the compiler finds its
//! assembler and linker: `aarch64-linux-gnu-gcc -print-prog-name=objcopy` names
//! `/usr/aarch64-linux-gnu/bin/objcopy`. The compiler is the one the `cc` crate picks
//! (`CC_<target>`, `TARGET_CC`, `CC`, or `<triple>-gcc`). A native build runs the names as they
//! are, from PATH.

use std::ffi::OsString;
use std::process::Command;

use crate::env;

/// A command for binutils' `tool`, the target's own when cross-compiling.
pub fn command(tool: &str) -> Command {
    Command::new(program(tool))
}

/// The program to run for `tool`.
pub fn program(tool: &str) -> OsString {
    if env::cargo("TARGET") == env::cargo("HOST") {
        return tool.into();
    }
    let compiler = cc::Build::new().cargo_metadata(false).get_compiler();
    let asked = Command::new(compiler.path())
        .arg(format!("-print-prog-name={tool}"))
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string());
    match asked {
        // A compiler that does not know it answers the bare name: fall back to the prefix.
        Some(path) if std::path::Path::new(&path).is_absolute() => path.into(),
        _ => {
            let name = compiler
                .path()
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            match name.strip_suffix("gcc").or_else(|| name.strip_suffix("cc")) {
                Some(prefix) if prefix.ends_with('-') => format!("{prefix}{tool}").into(),
                _ => tool.into(),
            }
        }
    }
}
