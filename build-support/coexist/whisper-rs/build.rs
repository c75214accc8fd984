//! whisper-rs-sys 0.15 links `dylib=stdc++`. Under crt-static rustc passes it as
//! `-Wl,-Bdynamic -lstdc++`, the linker then takes libstdc++.so, and the "static-pie" it writes
//! keeps dynamic symbol relocations (GLOB_DAT of undefined weak symbols) that glibc's static
//! start-up resolves to the load address: the binary jumps there and crashes before `main`.
//! whisper-rs-sys has no static option, so: a linker script named `libstdc++.so` that reads
//! libstdc++.a, in a folder searched before the compiler's own.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let crt_static = std::env::var("CARGO_CFG_TARGET_FEATURE")
        .is_ok_and(|features| features.split(',').any(|f| f == "crt-static"));
    if !crt_static || std::env::var("CARGO_CFG_TARGET_ENV").as_deref() != Ok("gnu") {
        return;
    }
    let compiler = cc::Build::new().cpp(true).get_compiler();
    let out = Command::new(compiler.path())
        .arg("-print-file-name=libstdc++.a")
        .output()
        .expect("running the C++ compiler to find libstdc++.a");
    let archive = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    assert!(
        archive.is_absolute() && archive.is_file(),
        "libstdc++.a not found ({} printed {archive:?}): install the static C++ runtime \
         (Debian/Ubuntu: libstdc++-12-dev)",
        compiler.path().display()
    );
    let dir = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("static-stdcxx");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("libstdc++.so"),
        format!("INPUT({})\n", archive.display()),
    )
    .unwrap();
    println!("cargo:rustc-link-search=native={}", dir.display());
}
