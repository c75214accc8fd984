//! Cargo features, mapped 1:1 to the official GGML CMake options.
//!
//! [`TABLE`] is the single source of that mapping (the crate README shows it for people).
//! Every option in it is passed explicitly, ON or OFF, so an upstream default that changes
//! between releases cannot change what we build.

use crate::cpu::CpuPlan;
use crate::env;

/// One Cargo feature and the CMake options it turns on (they are OFF when it is off).
pub struct Feature {
    pub name: &'static str,
    pub options: &'static [&'static str],
}

/// Feature -> CMake options. `native` is the one inverted knob: OFF (the default) means the
/// CPU variants chosen in [`CpuPlan`].
pub const TABLE: &[Feature] = &[
    Feature {
        name: "native",
        options: &["GGML_NATIVE"],
    },
    Feature {
        name: "openmp",
        options: &["GGML_OPENMP"],
    },
    Feature {
        name: "cuda",
        options: &["GGML_CUDA"],
    },
    Feature {
        name: "vulkan",
        options: &["GGML_VULKAN"],
    },
    Feature {
        name: "hip",
        options: &["GGML_HIP"],
    },
    Feature {
        name: "metal",
        options: &["GGML_METAL", "GGML_METAL_EMBED_LIBRARY"],
    },
    Feature {
        name: "blas",
        options: &["GGML_BLAS"],
    },
    // llama.cpp's `common` library: Jinja chat templates, tool-call parsers, JSON Schema.
    Feature {
        name: "chat",
        options: &["LLAMA_BUILD_COMMON"],
    },
];

/// The features Cargo enabled, validated.
pub struct Selection {
    /// Link an installed llama.cpp instead of building one.
    pub system: bool,
    pub openmp: bool,
    pub cuda: bool,
    pub vulkan: bool,
    pub hip: bool,
    pub metal: bool,
    pub blas: bool,
    /// llama.cpp's `common` library and the shim over it (shim/ember_chat.cpp).
    pub chat: bool,
    pub cpu: CpuPlan,
}

impl Selection {
    pub fn from_cargo() -> Result<Selection, String> {
        let enabled: Vec<&str> = TABLE
            .iter()
            .map(|f| f.name)
            .filter(|n| env::feature(n))
            .collect();
        let system = env::feature("system");
        if system && !enabled.is_empty() {
            return Err(format!(
                "feature `system` cannot be combined with {}: an installed llama.cpp was built with \
                 its backends already chosen. Drop `system` to build llama.cpp here with those \
                 features, or drop them to link the installed library.",
                list(&enabled)
            ));
        }
        let on = |name: &str| enabled.contains(&name);
        if on("cuda") && on("hip") {
            return Err(
                "features `cuda` and `hip` cannot be combined: ggml builds its HIP backend \
                        from the CUDA sources, one of them per build. Enable one."
                    .into(),
            );
        }
        let os = env::target_os();
        if on("metal") && os != "macos" && os != "ios" {
            return Err(format!(
                "feature `metal` needs an Apple target, but the target OS is `{os}`. \
                 Use `vulkan`, `cuda` or `hip` for GPUs on this target."
            ));
        }
        let cpu = if system {
            CpuPlan::System
        } else {
            CpuPlan::choose(on("native"))?
        };
        // OpenMP's barrier sleeps (after GOMP_SPINCOUNT spins, which the shim sets) where
        // ggml's own spins: on a busy node that is the difference between a fair share of the
        // CPU and a collapse (see ember-llama's `threads` module). GCC ships libgomp, so on
        // linux-gnu it is the default; elsewhere the `openmp` feature asks for it.
        // EMBER_LLAMA_OPENMP=0 keeps ggml's own pool where OpenMP would be the default.
        let default_openmp = match env::var(env::OPENMP).as_deref() {
            None | Some("1" | "on" | "ON") => os == "linux" && env::target_env() == "gnu",
            Some("0" | "off" | "OFF") => false,
            Some(other) => {
                return Err(format!(
                    "{}={other} is not understood: set 0 for ggml's own thread pool, 1 (or \
                     leave it unset) for OpenMP where it is the default (linux-gnu).",
                    env::OPENMP
                ))
            }
        };
        let openmp = !system && (on("openmp") || default_openmp);
        Ok(Selection {
            system,
            openmp,
            cuda: on("cuda"),
            vulkan: on("vulkan"),
            hip: on("hip"),
            metal: on("metal"),
            blas: on("blas"),
            chat: on("chat"),
            cpu,
        })
    }

    /// `(option, ON|OFF)` for every row of [`TABLE`].
    pub fn table_options(&self) -> Vec<(&'static str, &'static str)> {
        TABLE
            .iter()
            .flat_map(|f| {
                let on = env::feature(f.name) || (f.name == "openmp" && self.openmp);
                let value = if on { "ON" } else { "OFF" };
                f.options.iter().map(move |o| (*o, value))
            })
            .collect()
    }

    /// ggml backend libraries this selection builds, besides the CPU one.
    pub fn gpu_backends(&self) -> Vec<&'static str> {
        [
            (self.cuda, "cuda"),
            (self.hip, "hip"),
            (self.vulkan, "vulkan"),
            (self.metal, "metal"),
            (self.blas, "blas"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, name)| *name)
        .collect()
    }
}

fn list(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
