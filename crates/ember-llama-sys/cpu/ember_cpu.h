// SPDX-License-Identifier: MIT OR Apache-2.0
/* Which CPU variant of ggml's CPU backend runs.
 *
 * A default x86-64 Linux build links ggml-cpu once per ISA variant (x64, sse42, sandybridge,
 * haswell, skylakex, icelake, alderlake, zen4; EMBER_LLAMA_CPU_VARIANTS at build time), each
 * variant's symbols renamed ggml_cpu_<variant>_*. ember_cpu.c provides ggml-cpu.h's functions
 * and forwards them to one variant, chosen once: the highest upstream score
 * (ggml-cpu/arch/x86/cpu-feats.cpp, compiled per variant) among the variants whose registers
 * the OS has enabled (XCR0), or the one the environment variable EMBER_LLAMA_CPU_VARIANT names.
 * A default aarch64 Linux build does the same with upstream's ARM variants (armv8.0_1, armv8.2_2,
 * armv8.6_1, armv8.6_2; scored from the kernel's HWCAPs, ggml-cpu/arch/arm/cpu-feats.cpp).
 * The first call of any ggml-cpu.h function chooses, if ember_cpu_select was not called before;
 * a choice that fails there prints why and aborts, so call ember_cpu_select first.
 *
 * Other builds (the native feature, one variant on a non-Linux target, other targets, an
 * installed llama.cpp) have no variants: ember_cpu_select always succeeds and names the build:
 * "native", the variant, "default" or "system". */
#ifndef EMBER_CPU_H
#define EMBER_CPU_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Chooses the variant (once per process; later calls return the same). Returns 0 with the
 * variant's name in *name, or -1 with the reason in error (NUL-terminated, cut to error_len
 * bytes): EMBER_LLAMA_CPU_VARIANT names a variant this binary lacks or this CPU cannot run,
 * or no variant of this binary runs on this CPU. */
int ember_cpu_select(const char ** name, char * error, size_t error_len);

/* Number of variants this binary carries (0 when it has one fixed CPU backend). */
size_t ember_cpu_variant_count(void);

/* Variant i (0 <= i < ember_cpu_variant_count()): its name, the ISA options it was built with
 * ("SSE42 AVX F16C FMA AVX2 BMI2"; empty for x64), and whether this CPU and OS can run it.
 * Returns -1 when i is out of range. */
int ember_cpu_variant_info(size_t i, const char ** name, const char ** features, int * runnable);

#ifdef __cplusplus
}
#endif

#endif
