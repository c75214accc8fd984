//! Which instruction sets the CPU backend is compiled for.
//!
//! On x86-64 Linux the default is runtime dispatch: `ggml-cpu` is built once per variant of
//! upstream's x86 table (`ggml_add_cpu_backend_variant` in ggml/src/CMakeLists.txt), each
//! variant's symbols are made private and renamed (`variants.rs`), and the dispatcher
//! (`cpu/ember_cpu.c`) picks one at start with upstream's score plus an OS-support check.
//! Upstream does the same with `GGML_BACKEND_DL` + `GGML_CPU_ALL_VARIANTS`, as `.so` files.

use crate::env;

/// One ISA variant of upstream's x86 table: its name and the `GGML_<feature>` options it
/// turns on, separated by spaces (every other ISA option is off).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Variant {
    pub name: &'static str,
    pub features: &'static str,
}

/// Every ISA option ggml's CMake knows on x86; each build passes all of them, ON or OFF, so
/// an upstream default (AVX off when `SOURCE_DATE_EPOCH` is set, say) cannot change a build.
pub const ISA_OPTIONS: &[&str] = &[
    "SSE42",
    "AVX",
    "AVX2",
    "BMI2",
    "FMA",
    "F16C",
    "AVX_VNNI",
    "AVX512",
    "AVX512_VBMI",
    "AVX512_VNNI",
    "AVX512_BF16",
    "AMX_TILE",
    "AMX_INT8",
    "AMX_BF16",
];

/// Upstream's x86 variants, in its order and with its features (ggml/src/CMakeLists.txt,
/// `ggml_add_cpu_backend_variant` under GGML_CPU_ALL_VARIANTS).
pub const X86_VARIANTS: &[Variant] = &[
    Variant::new("x64", ""),
    Variant::new("sse42", "SSE42"),
    Variant::new("sandybridge", "SSE42 AVX"),
    Variant::new("ivybridge", "SSE42 AVX F16C"),
    Variant::new("piledriver", "SSE42 AVX F16C FMA"),
    Variant::new("haswell", "SSE42 AVX F16C FMA AVX2 BMI2"),
    Variant::new("skylakex", "SSE42 AVX F16C FMA AVX2 BMI2 AVX512"),
    Variant::new(
        "cannonlake",
        "SSE42 AVX F16C FMA AVX2 BMI2 AVX512 AVX512_VBMI",
    ),
    Variant::new(
        "cascadelake",
        "SSE42 AVX F16C FMA AVX2 BMI2 AVX512 AVX512_VNNI",
    ),
    Variant::new(
        "icelake",
        "SSE42 AVX F16C FMA AVX2 BMI2 AVX512 AVX512_VBMI AVX512_VNNI",
    ),
    Variant::new(
        "cooperlake",
        "SSE42 AVX F16C FMA AVX2 BMI2 AVX512 AVX512_VNNI AVX512_BF16",
    ),
    Variant::new(
        "zen4",
        "SSE42 AVX F16C FMA AVX2 BMI2 AVX512 AVX512_VBMI AVX512_VNNI AVX512_BF16",
    ),
    Variant::new("alderlake", "SSE42 AVX F16C FMA AVX2 BMI2 AVX_VNNI"),
    Variant::new(
        "sapphirerapids",
        "SSE42 AVX F16C FMA AVX2 BMI2 AVX512 AVX512_VBMI AVX512_VNNI AVX512_BF16 AMX_TILE AMX_INT8",
    ),
];

/// The default set: one variant per step that changes ggml's kernels (x86-64 v1, v2, AVX,
/// v3, AVX-512, AVX-512 VBMI/VNNI, AVX-VNNI, AVX-512 BF16), 8 of upstream's 14.
const DEFAULT_VARIANTS: &[&str] = &[
    "x64",
    "sse42",
    "sandybridge",
    "haswell",
    "skylakex",
    "icelake",
    "alderlake",
    "zen4",
];

impl Variant {
    const fn new(name: &'static str, features: &'static str) -> Variant {
        Variant { name, features }
    }

    /// The `GGML_<feature>` options it turns on.
    pub fn features(&self) -> impl Iterator<Item = &'static str> {
        self.features.split_whitespace()
    }

    /// `GGML_<option>=ON|OFF` for every ISA option.
    pub fn cmake_options(&self) -> Vec<(String, String)> {
        for feature in self.features() {
            assert!(
                ISA_OPTIONS.contains(&feature),
                "X86_VARIANTS: {} names {feature}, which is no ISA option",
                self.name
            );
        }
        ISA_OPTIONS
            .iter()
            .map(|option| {
                let on = self.features().any(|f| f == *option);
                (
                    format!("GGML_{option}"),
                    if on { "ON" } else { "OFF" }.to_string(),
                )
            })
            .collect()
    }

    /// The XCR0 bits the OS must have enabled for this variant's registers: SSE and AVX
    /// (YMM) state for AVX, plus opmask/ZMM state for AVX-512, plus tile state for AMX.
    pub fn xcr0_mask(&self) -> u64 {
        let has = |prefix: &str| self.features().any(|f| f.starts_with(prefix));
        let mut mask = 0;
        if has("AVX") || has("FMA") || has("F16C") {
            mask |= 0x6; // XMM | YMM
        }
        if has("AVX512") {
            mask |= 0xe0; // opmask | ZMM_Hi256 | Hi16_ZMM
        }
        if has("AMX") {
            mask |= 0x6_0000; // XTILECFG | XTILEDATA
        }
        mask
    }
}

/// How the CPU backend is built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CpuPlan {
    /// Several variants linked together, one chosen at run time (x86-64 Linux).
    Dispatch(Vec<Variant>),
    /// One build for the build machine (`native` feature, `GGML_NATIVE=ON`).
    Native,
    /// One build with fixed ISA options, no dispatcher (x86-64 targets other than Linux,
    /// whose object format the symbol renaming does not handle).
    Single(Variant),
    /// The compiler's default for the target (non-x86 targets).
    TargetDefault,
    /// An installed llama.cpp (`system` feature) chose its own.
    System,
}

impl CpuPlan {
    /// The plan for this build: the `native` feature, the target, and
    /// `EMBER_LLAMA_CPU_VARIANTS` (`default`, `all`, or names separated by commas).
    pub fn choose(native: bool) -> Result<CpuPlan, String> {
        let requested = env::var(env::CPU_VARIANTS);
        let x86 = env::target_arch() == "x86_64";
        if native {
            if let Some(list) = requested {
                return Err(format!(
                    "feature `native` builds one CPU backend for this machine, so \
                     {}={list} cannot apply: drop `native` to build those variants, or unset {}.",
                    env::CPU_VARIANTS,
                    env::CPU_VARIANTS
                ));
            }
            return Ok(CpuPlan::Native);
        }
        if !x86 {
            if let Some(list) = requested {
                return Err(format!(
                    "{}={list}: CPU variants are x86-64 only, and the target arch is `{}`. \
                     Unset it.",
                    env::CPU_VARIANTS,
                    env::target_arch()
                ));
            }
            return Ok(CpuPlan::TargetDefault);
        }
        let variants = parse_variants(requested.as_deref().unwrap_or("default"))?;
        if env::target_os() != "linux" {
            // The renaming works on ELF objects with GNU binutils; elsewhere keep one ISA.
            return match variants.as_slice() {
                [one] => Ok(CpuPlan::Single(*one)),
                _ if requested.is_none() => Ok(CpuPlan::Single(variant("haswell").unwrap())),
                _ => Err(format!(
                    "{}: several CPU variants in one binary need an x86-64 Linux target (ELF and \
                     GNU binutils); the target OS is `{}`. Name one variant.",
                    env::CPU_VARIANTS,
                    env::target_os()
                )),
            };
        }
        Ok(CpuPlan::Dispatch(variants))
    }

    /// The ISA options of the main CMake build: for dispatch, those of the first variant
    /// (its `ggml-cpu` becomes that variant; the others are built on their own).
    pub fn main_options(&self) -> Vec<(String, String)> {
        match self {
            CpuPlan::Dispatch(variants) => variants[0].cmake_options_native_off(),
            CpuPlan::Single(variant) => variant.cmake_options_native_off(),
            CpuPlan::Native | CpuPlan::TargetDefault | CpuPlan::System => Vec::new(),
        }
    }

    /// The name reported at run time when nothing is chosen at run time.
    pub fn fixed_name(&self) -> Option<&'static str> {
        match self {
            CpuPlan::Dispatch(_) => None,
            CpuPlan::Native => Some("native"),
            CpuPlan::Single(variant) => Some(variant.name),
            CpuPlan::TargetDefault => Some("default"),
            CpuPlan::System => Some("system"),
        }
    }
}

impl Variant {
    fn cmake_options_native_off(&self) -> Vec<(String, String)> {
        let mut options = vec![("GGML_NATIVE".to_string(), "OFF".to_string())];
        options.extend(self.cmake_options());
        options
    }
}

fn variant(name: &str) -> Option<Variant> {
    X86_VARIANTS.iter().find(|v| v.name == name).copied()
}

/// `default`, `all`, or variant names separated by commas, in upstream's order, each once.
fn parse_variants(text: &str) -> Result<Vec<Variant>, String> {
    let names: Vec<&str> = match text.trim() {
        "default" => DEFAULT_VARIANTS.to_vec(),
        "all" => X86_VARIANTS.iter().map(|v| v.name).collect(),
        list => list
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .collect(),
    };
    let known = || {
        X86_VARIANTS
            .iter()
            .map(|v| v.name)
            .collect::<Vec<_>>()
            .join(", ")
    };
    for name in &names {
        if variant(name).is_none() {
            return Err(format!(
                "{}: unknown CPU variant `{name}`. Known: {} (or `default`, `all`).",
                env::CPU_VARIANTS,
                known()
            ));
        }
    }
    let chosen: Vec<Variant> = X86_VARIANTS
        .iter()
        .filter(|v| names.contains(&v.name))
        .copied()
        .collect();
    if chosen.is_empty() {
        return Err(format!(
            "{}={text} names no CPU variant. Known: {}.",
            env::CPU_VARIANTS,
            known()
        ));
    }
    Ok(chosen)
}
