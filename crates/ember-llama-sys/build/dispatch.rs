//! The CPU variant dispatcher (`cpu/ember_cpu.c`, C, compiled for the target's baseline by the
//! `cc` crate): the header the build writes for it, and its compilation into
//! `libember_cpu.a`, linked between the backends that call ggml-cpu.h and the variants.

use std::fs;
use std::path::PathBuf;

use crate::cpu::{CpuPlan, Variant};
use crate::env;

/// Folder of `ember_cpu.h`, `ember_cpu_api.h` and `ember_cpu.c`.
pub fn dir() -> PathBuf {
    env::manifest_dir().join("cpu")
}

/// Writes `ember_cpu_variants.h` for `plan` and compiles the dispatcher against it (and, for
/// dispatch, against ggml's headers in `include_dirs`). Returns the folder of
/// `libember_cpu.a`; the caller emits the link directive in link order.
pub fn compile(plan: &CpuPlan, include_dirs: &[PathBuf]) -> Result<PathBuf, String> {
    let src = dir();
    for file in ["ember_cpu.h", "ember_cpu_api.h", "ember_cpu.c"] {
        println!("cargo:rerun-if-changed={}", src.join(file).display());
    }
    let out = env::out_dir().join("cpu-dispatch");
    fs::create_dir_all(&out).map_err(|e| format!("creating {}: {e}", out.display()))?;
    let header = out.join("ember_cpu_variants.h");
    fs::write(&header, variants_header(plan))
        .map_err(|e| format!("writing {}: {e}", header.display()))?;

    let mut build = cc::Build::new();
    build
        .file(src.join("ember_cpu.c"))
        .std("c11")
        .include(&out)
        .include(&src)
        .out_dir(&out)
        .cargo_metadata(false)
        .warnings(true);
    if let CpuPlan::Dispatch(_) = plan {
        build.includes(include_dirs.iter().map(PathBuf::as_path));
    }
    build.try_compile("ember_cpu").map_err(|e| {
        format!(
            "compiling the CPU variant dispatcher {} failed: {e}\nIt needs a C11 compiler \
             (`apt-get install gcc`, or set CC).",
            src.join("ember_cpu.c").display()
        )
    })?;
    Ok(out)
}

/// `EMBER_CPU_VARIANTS(X)`: `X(symbol, "name", xcr0 mask, "features")` per variant, or the
/// fixed name.
fn variants_header(plan: &CpuPlan) -> String {
    let mut text =
        String::from("/* Written by ember-llama-sys' build script (build/dispatch.rs). */\n");
    match plan {
        CpuPlan::Dispatch(variants) => {
            text.push_str("#define EMBER_CPU_VARIANTS(X) \\\n");
            let rows: Vec<String> = variants.iter().map(row).collect();
            text.push_str(&rows.join(" \\\n"));
            text.push('\n');
        }
        other => {
            let name = other.fixed_name().unwrap_or("default");
            text.push_str(&format!("#define EMBER_CPU_FIXED_NAME \"{name}\"\n"));
        }
    }
    text
}

fn row(variant: &Variant) -> String {
    format!(
        "    X({}, \"{}\", 0x{:x}ULL, \"{}\")",
        variant.symbol(),
        variant.name,
        variant.xcr0_mask(),
        variant.features
    )
}
