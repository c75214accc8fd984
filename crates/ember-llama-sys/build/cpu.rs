//! Which instruction sets the CPU backend is compiled for.
//!
//! On x86-64 and aarch64 Linux the default is runtime dispatch: `ggml-cpu` is built once per
//! variant of upstream's table for the architecture (`ggml_add_cpu_backend_variant` in
//! ggml/src/CMakeLists.txt), each variant's symbols are made private and renamed
//! (`variants.rs`), and the dispatcher (`cpu/ember_cpu.c`) picks one at start with upstream's
//! score (CPUID on x86, the kernel's HWCAPs on ARM) plus, on x86, an OS-support check (XCR0).
//! Upstream does the same with `GGML_BACKEND_DL` + `GGML_CPU_ALL_VARIANTS`, as `.so` files.

use crate::env;

/// The instruction-set family of a variant table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    X86,
    Arm,
}

/// One ISA variant of an upstream table: its name, upstream's tag (`haswell`, `armv8.2_2`),
/// and the features it turns on, separated by spaces (every other one is off): `GGML_<feature>`
/// options on x86, `GGML_INTERNAL_<feature>` ones on ARM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Variant {
    pub name: &'static str,
    pub features: &'static str,
    pub arch: Arch,
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
    Variant::x86("x64", ""),
    Variant::x86("sse42", "SSE42"),
    Variant::x86("sandybridge", "SSE42 AVX"),
    Variant::x86("ivybridge", "SSE42 AVX F16C"),
    Variant::x86("piledriver", "SSE42 AVX F16C FMA"),
    Variant::x86("haswell", "SSE42 AVX F16C FMA AVX2 BMI2"),
    Variant::x86("skylakex", "SSE42 AVX F16C FMA AVX2 BMI2 AVX512"),
    Variant::x86(
        "cannonlake",
        "SSE42 AVX F16C FMA AVX2 BMI2 AVX512 AVX512_VBMI",
    ),
    Variant::x86(
        "cascadelake",
        "SSE42 AVX F16C FMA AVX2 BMI2 AVX512 AVX512_VNNI",
    ),
    Variant::x86(
        "icelake",
        "SSE42 AVX F16C FMA AVX2 BMI2 AVX512 AVX512_VBMI AVX512_VNNI",
    ),
    Variant::x86(
        "cooperlake",
        "SSE42 AVX F16C FMA AVX2 BMI2 AVX512 AVX512_VNNI AVX512_BF16",
    ),
    Variant::x86(
        "zen4",
        "SSE42 AVX F16C FMA AVX2 BMI2 AVX512 AVX512_VBMI AVX512_VNNI AVX512_BF16",
    ),
    Variant::x86("alderlake", "SSE42 AVX F16C FMA AVX2 BMI2 AVX_VNNI"),
    Variant::x86(
        "sapphirerapids",
        "SSE42 AVX F16C FMA AVX2 BMI2 AVX512 AVX512_VBMI AVX512_VNNI AVX512_BF16 AMX_TILE AMX_INT8",
    ),
];

/// The ARM features upstream's variants combine (`GGML_INTERNAL_<feature>`), each with the
/// `-march` extension it adds and the first architecture version that has it, as
/// ggml/src/ggml-cpu/CMakeLists.txt turns them into `-march=<version><+extensions>`.
const ARM_FEATURES: &[(&str, &str, &str)] = &[
    ("DOTPROD", "+dotprod", "armv8.2-a"),
    ("FP16_VECTOR_ARITHMETIC", "+fp16", "armv8.2-a"),
    ("SVE", "+sve", "armv8.2-a"),
    ("MATMUL_INT8", "+i8mm", "armv8.6-a"),
    ("SVE2", "+sve2", "armv8.6-a"),
    ("NOSVE", "+nosve", ""),
    ("SME", "+sme", "armv9.2-a"),
];

/// Upstream's Linux ARM variants, in its order and with its features (ggml/src/CMakeLists.txt,
/// `ggml_add_cpu_backend_variant` under GGML_CPU_ALL_VARIANTS, `CMAKE_SYSTEM_NAME` Linux).
pub const ARM_VARIANTS: &[Variant] = &[
    Variant::arm("armv8.0_1", ""),
    Variant::arm("armv8.2_1", "DOTPROD"),
    Variant::arm("armv8.2_2", "DOTPROD FP16_VECTOR_ARITHMETIC"),
    Variant::arm("armv8.2_3", "DOTPROD FP16_VECTOR_ARITHMETIC SVE"),
    Variant::arm(
        "armv8.6_1",
        "DOTPROD FP16_VECTOR_ARITHMETIC SVE MATMUL_INT8",
    ),
    Variant::arm(
        "armv8.6_2",
        "DOTPROD FP16_VECTOR_ARITHMETIC SVE MATMUL_INT8 SVE2",
    ),
    Variant::arm(
        "armv9.2_1",
        "DOTPROD FP16_VECTOR_ARITHMETIC SVE MATMUL_INT8 SME",
    ),
    Variant::arm(
        "armv9.2_2",
        "DOTPROD FP16_VECTOR_ARITHMETIC SVE MATMUL_INT8 SVE2 SME",
    ),
];

/// The default ARM set, 4 of upstream's 8, one per server generation: armv8.0 with NEON
/// (Cortex-A72: Graviton 1, Raspberry Pi 4), dotprod + fp16 (Neoverse N1: Graviton 2, Ampere
/// Altra), SVE + i8mm (Neoverse V1: Graviton 3), SVE2 (Neoverse V2/N2: Graviton 4, Grace).
/// Dotprod without fp16 and SVE without i8mm are rare; without KleidiAI (not built) the SME
/// variants run the same kernels as the SVE ones.
const DEFAULT_ARM_VARIANTS: &[&str] = &["armv8.0_1", "armv8.2_2", "armv8.6_1", "armv8.6_2"];

/// The default x86 set: one variant per step that changes ggml's kernels (x86-64 v1, v2, AVX,
/// v3, AVX-512, AVX-512 VBMI/VNNI, AVX-VNNI, AVX-512 BF16), 8 of upstream's 14.
const DEFAULT_X86_VARIANTS: &[&str] = &[
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
    const fn x86(name: &'static str, features: &'static str) -> Variant {
        Variant {
            name,
            features,
            arch: Arch::X86,
        }
    }

    const fn arm(name: &'static str, features: &'static str) -> Variant {
        Variant {
            name,
            features,
            arch: Arch::Arm,
        }
    }

    /// The name as a C identifier and symbol part (`armv8.2_2` -> `armv8_2_2`): the variant's
    /// entry points are renamed `ggml_cpu_<symbol>_<name>`.
    pub fn symbol(&self) -> String {
        self.name.replace('.', "_")
    }

    /// Its features.
    pub fn features(&self) -> impl Iterator<Item = &'static str> {
        self.features.split_whitespace()
    }

    /// The CMake options that select its ISA: on x86 `GGML_<option>=ON|OFF` for every ISA
    /// option; on ARM `GGML_CPU_ARM_ARCH=<-march value>`, the flags upstream's
    /// GGML_CPU_ALL_VARIANTS build gives the variant (which ggml allows only with
    /// GGML_BACKEND_DL).
    pub fn cmake_options(&self) -> Vec<(String, String)> {
        match self.arch {
            Arch::X86 => self.x86_options(),
            Arch::Arm => vec![("GGML_CPU_ARM_ARCH".to_string(), self.arm_march())],
        }
    }

    fn x86_options(&self) -> Vec<(String, String)> {
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

    /// `armv8.6-a+dotprod+fp16+sve+i8mm`: the lowest version that has every feature, then the
    /// extensions in upstream's order.
    pub fn arm_march(&self) -> String {
        let mut version = "armv8-a";
        let mut extensions = String::new();
        for (feature, extension, since) in ARM_FEATURES {
            if self.features().any(|f| f == *feature) {
                extensions.push_str(extension);
                if !since.is_empty() {
                    version = since;
                }
            }
        }
        for feature in self.features() {
            assert!(
                ARM_FEATURES.iter().any(|(f, _, _)| *f == feature),
                "ARM_VARIANTS: {} names {feature}, which is no ARM feature",
                self.name
            );
        }
        format!("{version}{extensions}")
    }

    /// The `-D` defines of upstream's score for this variant (arch/<arch>/cpu-feats.cpp):
    /// `GGML_<feature>` on x86, `GGML_USE_<feature>` on ARM.
    pub fn score_defines(&self) -> Vec<String> {
        let prefix = match self.arch {
            Arch::X86 => "GGML_",
            Arch::Arm => "GGML_USE_",
        };
        self.features()
            .filter(|f| *f != "NOSVE")
            .map(|f| format!("{prefix}{f}"))
            .collect()
    }

    /// The source file of upstream's feature check for this variant's architecture.
    pub fn score_source(&self) -> &'static str {
        match self.arch {
            Arch::X86 => "ggml/src/ggml-cpu/arch/x86/cpu-feats.cpp",
            Arch::Arm => "ggml/src/ggml-cpu/arch/arm/cpu-feats.cpp",
        }
    }

    /// The XCR0 bits the OS must have enabled for this variant's registers: SSE and AVX
    /// (YMM) state for AVX, plus opmask/ZMM state for AVX-512, plus tile state for AMX.
    /// None on ARM: the HWCAPs the score reads are what the kernel enabled.
    pub fn xcr0_mask(&self) -> u64 {
        if self.arch == Arch::Arm {
            return 0;
        }
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
    /// Several variants linked together, one chosen at run time (x86-64 and aarch64 Linux).
    Dispatch(Vec<Variant>),
    /// One build for the build machine (`native` feature, `GGML_NATIVE=ON`).
    Native,
    /// One build with fixed ISA options, no dispatcher (x86-64 targets other than Linux,
    /// whose object format the symbol renaming does not handle).
    Single(Variant),
    /// The compiler's default for the target (targets with no variant table: aarch64 outside
    /// Linux, and every other architecture).
    TargetDefault,
    /// An installed llama.cpp (`system` feature) chose its own.
    System,
}

impl CpuPlan {
    /// The plan for this build: the `native` feature, the target, and
    /// `EMBER_LLAMA_CPU_VARIANTS` (`default`, `all`, or names separated by commas).
    pub fn choose(native: bool) -> Result<CpuPlan, String> {
        let requested = env::var(env::CPU_VARIANTS);
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
        let table = match env::target_arch().as_str() {
            "x86_64" => Table::X86,
            "aarch64" if env::target_os() == "linux" => Table::ARM,
            arch => {
                if let Some(list) = requested {
                    return Err(format!(
                        "{}={list}: CPU variants are built for x86-64 and for aarch64 Linux; the \
                         target is `{arch}` on `{}`. Unset it.",
                        env::CPU_VARIANTS,
                        env::target_os()
                    ));
                }
                return Ok(CpuPlan::TargetDefault);
            }
        };
        let variants = table.parse(requested.as_deref().unwrap_or("default"))?;
        if env::target_os() != "linux" {
            // The renaming works on ELF objects with GNU binutils; elsewhere keep one ISA.
            return match variants.as_slice() {
                [one] => Ok(CpuPlan::Single(*one)),
                _ if requested.is_none() => Ok(CpuPlan::Single(table.find("haswell").unwrap())),
                _ => Err(format!(
                    "{}: several CPU variants in one binary need a Linux target (ELF and GNU \
                     binutils); the target OS is `{}`. Name one variant.",
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

/// An architecture's variants and its default set.
struct Table {
    variants: &'static [Variant],
    default: &'static [&'static str],
}

impl Table {
    const X86: Table = Table {
        variants: X86_VARIANTS,
        default: DEFAULT_X86_VARIANTS,
    };
    const ARM: Table = Table {
        variants: ARM_VARIANTS,
        default: DEFAULT_ARM_VARIANTS,
    };

    fn find(&self, name: &str) -> Option<Variant> {
        self.variants.iter().find(|v| v.name == name).copied()
    }

    /// `default`, `all`, or variant names separated by commas, in upstream's order, each once.
    fn parse(&self, text: &str) -> Result<Vec<Variant>, String> {
        let names: Vec<&str> = match text.trim() {
            "default" => self.default.to_vec(),
            "all" => self.variants.iter().map(|v| v.name).collect(),
            list => list
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .collect(),
        };
        let known = || {
            self.variants
                .iter()
                .map(|v| v.name)
                .collect::<Vec<_>>()
                .join(", ")
        };
        for name in &names {
            if self.find(name).is_none() {
                return Err(format!(
                    "{}: unknown CPU variant `{name}` for a `{}` target. Known: {} (or \
                     `default`, `all`).",
                    env::CPU_VARIANTS,
                    env::target_arch(),
                    known()
                ));
            }
        }
        let chosen: Vec<Variant> = self
            .variants
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
}
