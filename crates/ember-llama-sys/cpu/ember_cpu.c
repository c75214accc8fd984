// SPDX-License-Identifier: MIT OR Apache-2.0
/* The CPU variant dispatcher (see ember_cpu.h). Compiled for the target's baseline (no -m or
 * -march ISA flags), like everything that runs before the choice: it must run on every x86-64
 * or every ARMv8.0 CPU.
 *
 * ember_cpu_variants.h is written by the build script: either EMBER_CPU_VARIANTS(X), one
 * X(symbol, "name", xcr0 mask, "features") per variant linked in (symbol: the name as a C
 * identifier, armv8.2_2 -> armv8_2_2), or EMBER_CPU_FIXED_NAME. */
#include "ember_cpu.h"
#include "ember_cpu_variants.h"

#include <stdio.h>
#include <string.h>

#ifdef EMBER_CPU_FIXED_NAME

int ember_cpu_select(const char ** name, char * error, size_t error_len) {
    (void) error;
    (void) error_len;
    *name = EMBER_CPU_FIXED_NAME;
    return 0;
}

size_t ember_cpu_variant_count(void) {
    return 0;
}

int ember_cpu_variant_info(size_t i, const char ** name, const char ** features, int * runnable) {
    (void) i;
    (void) name;
    (void) features;
    (void) runnable;
    return -1;
}

#else /* runtime dispatch */

#include <stdint.h>
#include <stdlib.h>

#include "ggml-cpu.h"
#include "ember_cpu_api.h"

/* Each variant's renamed entry points (build/variants.rs renames `name` to
 * ggml_cpu_<variant>_name), typed from ggml-cpu.h's declarations, and its upstream score. */
#define EMBER_DECLARE_R(v, ret, name, params, args) extern __typeof__(name) ggml_cpu_##v##_##name;
#define EMBER_DECLARE_V(v, name, params, args) extern __typeof__(name) ggml_cpu_##v##_##name;
#define EMBER_DECLARE_VARIANT(v, display, xcr0, features) \
    EMBER_CPU_API(EMBER_DECLARE_R, EMBER_DECLARE_V, v) \
    extern int ggml_cpu_##v##_ggml_backend_score(void);
EMBER_CPU_VARIANTS(EMBER_DECLARE_VARIANT)

#define EMBER_FIELD_R(v, ret, name, params, args) __typeof__(name) * name;
#define EMBER_FIELD_V(v, name, params, args) __typeof__(name) * name;
struct ember_cpu_api {
    EMBER_CPU_API(EMBER_FIELD_R, EMBER_FIELD_V, _)
};

struct ember_cpu_variant {
    const char * name;
    const char * features;
    uint64_t xcr0;        /* register state the OS must have enabled */
    int (*score)(void);   /* 0: this CPU lacks a feature of the variant */
    struct ember_cpu_api api;
};

#define EMBER_ENTRY_R(v, ret, name, params, args) .name = ggml_cpu_##v##_##name,
#define EMBER_ENTRY_V(v, name, params, args) .name = ggml_cpu_##v##_##name,
#define EMBER_VARIANT_ROW(v, display, mask, feats) \
    { .name = display, .features = feats, .xcr0 = mask, .score = ggml_cpu_##v##_ggml_backend_score, \
      .api = { EMBER_CPU_API(EMBER_ENTRY_R, EMBER_ENTRY_V, v) } },
static const struct ember_cpu_variant VARIANTS[] = { EMBER_CPU_VARIANTS(EMBER_VARIANT_ROW) };
#define N_VARIANTS (sizeof(VARIANTS) / sizeof(VARIANTS[0]))

static const struct ember_cpu_variant * chosen;

#if defined(__x86_64__) || defined(__i386__)
/* XCR0: the register state the OS saves and restores (0 when it does not use XSAVE, and then
 * no AVX register may be touched). upstream's score checks CPUID only ("FIXME: this does not
 * check for OS support"). */
static uint64_t os_xcr0(void) {
    uint32_t eax, ebx, ecx, edx;
    __asm__ __volatile__("cpuid" : "=a"(eax), "=b"(ebx), "=c"(ecx), "=d"(edx) : "a"(1), "c"(0));
    if (!(ecx & (1u << 27))) { /* OSXSAVE */
        return 0;
    }
    uint32_t lo, hi;
    __asm__ __volatile__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t) hi << 32) | lo;
}

/* Why a forced variant cannot run: CPUID does not list what it lists. */
static void missing_features(const struct ember_cpu_variant * v, char * out, size_t len) {
    snprintf(out, len, "an instruction set that variant needs (%s)", v->features);
}
#else
/* ARM: no register state to check beyond what the kernel reports; every variant's mask is 0. */
static uint64_t os_xcr0(void) {
    return 0;
}

#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>

/* The kernel's HWCAP bits (arch/arm64/include/uapi/asm/hwcap.h), as upstream's score reads
 * them (ggml-feats.h). */
static int arm_has(const char * feature, size_t n) {
    const unsigned long hwcap = getauxval(AT_HWCAP), hwcap2 = getauxval(AT_HWCAP2);
#define EMBER_IS(name) (n == sizeof(name) - 1 && strncmp(feature, name, n) == 0)
    if (EMBER_IS("DOTPROD")) return !!(hwcap & (1UL << 20));              /* ASIMDDP */
    if (EMBER_IS("FP16_VECTOR_ARITHMETIC"))
        return (hwcap & (1UL << 9)) && (hwcap & (1UL << 10));              /* FPHP, ASIMDHP */
    if (EMBER_IS("SVE")) return !!(hwcap & (1UL << 22));                  /* SVE */
    if (EMBER_IS("MATMUL_INT8")) return !!(hwcap2 & (1UL << 13));         /* I8MM */
    if (EMBER_IS("SVE2")) return !!(hwcap2 & (1UL << 1));                 /* SVE2 */
    if (EMBER_IS("SME")) return !!(hwcap2 & (1UL << 23));                 /* SME */
#undef EMBER_IS
    return 1; /* NOSVE: a restriction, not a feature */
}
#else
static int arm_has(const char * feature, size_t n) {
    (void) feature;
    (void) n;
    return 0;
}
#endif

/* Why a forced variant cannot run: the features of the variant the kernel does not report. */
static void missing_features(const struct ember_cpu_variant * v, char * out, size_t len) {
    out[0] = '\0';
    for (const char * f = v->features; *f;) {
        size_t n = strcspn(f, " ");
        if (n && !arm_has(f, n)) {
            size_t used = strlen(out);
            snprintf(out + used, len - used, "%s%.*s", used ? " " : "", (int) n, f);
        }
        f += n;
        f += strspn(f, " ");
    }
    size_t used = strlen(out);
    snprintf(out + used, len - used, " (the kernel's HWCAPs; the variant needs %s)", v->features);
}
#endif

static int runnable(const struct ember_cpu_variant * v, uint64_t xcr0) {
    return (xcr0 & v->xcr0) == v->xcr0 && v->score() > 0;
}

/* "a, b, c": the names of the variants, all or only those this machine runs. */
static void list_names(char * out, size_t len, int only_runnable, uint64_t xcr0) {
    out[0] = '\0';
    for (size_t i = 0; i < N_VARIANTS; i++) {
        if (only_runnable && !runnable(&VARIANTS[i], xcr0)) {
            continue;
        }
        size_t used = strlen(out);
        snprintf(out + used, len - used, "%s%s", used ? ", " : "", VARIANTS[i].name);
    }
    if (!out[0]) {
        snprintf(out, len, "none");
    }
}

static const struct ember_cpu_variant * choose(char * error, size_t error_len) {
    const uint64_t xcr0 = os_xcr0();
    char names[256];
    const char * forced = getenv("EMBER_LLAMA_CPU_VARIANT");
    if (forced && forced[0]) {
        for (size_t i = 0; i < N_VARIANTS; i++) {
            const struct ember_cpu_variant * v = &VARIANTS[i];
            if (strcmp(v->name, forced) != 0) {
                continue;
            }
            if (v->score() <= 0) {
                char missing[256];
                missing_features(v, missing, sizeof missing);
                list_names(names, sizeof names, 1, xcr0);
                snprintf(error, error_len,
                         "EMBER_LLAMA_CPU_VARIANT=%s: this CPU lacks %s; variants this CPU "
                         "runs: %s",
                         forced, missing, names);
                return NULL;
            }
            if ((xcr0 & v->xcr0) != v->xcr0) {
                list_names(names, sizeof names, 1, xcr0);
                snprintf(error, error_len,
                         "EMBER_LLAMA_CPU_VARIANT=%s: the CPU has %s, but the operating system "
                         "has not enabled those registers (XCR0 = 0x%llx, needs 0x%llx); "
                         "variants that run here: %s",
                         forced, v->features, (unsigned long long) xcr0,
                         (unsigned long long) v->xcr0, names);
                return NULL;
            }
            return v;
        }
        list_names(names, sizeof names, 0, xcr0);
        snprintf(error, error_len,
                 "EMBER_LLAMA_CPU_VARIANT=%s: this binary has no such CPU variant (it has: %s)",
                 forced, names);
        return NULL;
    }
    /* upstream's rule (ggml_backend_load_best): the highest score wins. */
    const struct ember_cpu_variant * best = NULL;
    int best_score = 0;
    for (size_t i = 0; i < N_VARIANTS; i++) {
        const struct ember_cpu_variant * v = &VARIANTS[i];
        if ((xcr0 & v->xcr0) != v->xcr0) {
            continue;
        }
        int score = v->score();
        if (score > best_score) {
            best = v;
            best_score = score;
        }
    }
    if (!best) {
        list_names(names, sizeof names, 0, xcr0);
        snprintf(error, error_len,
                 "no CPU variant of this binary runs on this CPU (it has: %s): rebuild with "
                 "the baseline variant (x64, armv8.0_1) in EMBER_LLAMA_CPU_VARIANTS",
                 names);
    }
    return best;
}

int ember_cpu_select(const char ** name, char * error, size_t error_len) {
    const struct ember_cpu_variant * v = __atomic_load_n(&chosen, __ATOMIC_ACQUIRE);
    if (!v) {
        v = choose(error, error_len);
        if (!v) {
            return -1;
        }
        /* Two first callers choose the same (the inputs are the CPU and the environment);
         * the first store wins and both report it. */
        const struct ember_cpu_variant * expected = NULL;
        if (!__atomic_compare_exchange_n(&chosen, &expected, v, 0, __ATOMIC_ACQ_REL,
                                         __ATOMIC_ACQUIRE)) {
            v = expected;
        }
    }
    *name = v->name;
    return 0;
}

size_t ember_cpu_variant_count(void) {
    return N_VARIANTS;
}

int ember_cpu_variant_info(size_t i, const char ** name, const char ** features, int * can_run) {
    if (i >= N_VARIANTS) {
        return -1;
    }
    *name = VARIANTS[i].name;
    *features = VARIANTS[i].features;
    *can_run = runnable(&VARIANTS[i], os_xcr0());
    return 0;
}

/* The chosen variant's functions; chooses on first use when the program did not. */
static const struct ember_cpu_api * api(void) {
    const struct ember_cpu_variant * v = __atomic_load_n(&chosen, __ATOMIC_ACQUIRE);
    if (v) {
        return &v->api;
    }
    const char * name;
    char error[512];
    if (ember_cpu_select(&name, error, sizeof error) != 0) {
        fprintf(stderr, "ember: cannot choose a CPU variant: %s\n", error);
        abort();
    }
    return &__atomic_load_n(&chosen, __ATOMIC_ACQUIRE)->api;
}

/* ggml-cpu.h's functions, each forwarding to the chosen variant. */
#define EMBER_FORWARD_R(v, ret, name, params, args) \
    ret name params { return api()->name args; }
#define EMBER_FORWARD_V(v, name, params, args) \
    void name params { api()->name args; }
EMBER_CPU_API(EMBER_FORWARD_R, EMBER_FORWARD_V, _)

#endif
