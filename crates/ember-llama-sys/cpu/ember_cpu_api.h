// SPDX-License-Identifier: MIT OR Apache-2.0
/* The CPU backend's public API (ggml-cpu.h), one line per function: what the dispatcher
 * (ember_cpu.c) forwards to the chosen variant. R(variant, return type, name, parameters,
 * arguments) for a function with a result, V(variant, name, parameters, arguments) for a void
 * one; the dispatcher's definitions are checked against ggml-cpu.h's declarations by the
 * compiler, and build/variants.rs checks that this list names every function ggml-cpu.h
 * declares and ggml-cpu defines (the pinned ggml-cpu.h also declares
 * ggml_threadpool_get_n_threads, which no source defines). One function per line: the build
 * script reads the names from here. */
#ifndef EMBER_CPU_API_H
#define EMBER_CPU_API_H

#define EMBER_CPU_API(R, V, v) \
    V(v, ggml_numa_init, (enum ggml_numa_strategy numa), (numa)) \
    R(v, bool, ggml_is_numa, (void), ()) \
    R(v, struct ggml_tensor *, ggml_new_i32, (struct ggml_context * ctx, int32_t value), (ctx, value)) \
    R(v, struct ggml_tensor *, ggml_new_f32, (struct ggml_context * ctx, float value), (ctx, value)) \
    R(v, struct ggml_tensor *, ggml_set_i32, (struct ggml_tensor * tensor, int32_t value), (tensor, value)) \
    R(v, struct ggml_tensor *, ggml_set_f32, (struct ggml_tensor * tensor, float value), (tensor, value)) \
    R(v, int32_t, ggml_get_i32_1d, (const struct ggml_tensor * tensor, int i), (tensor, i)) \
    V(v, ggml_set_i32_1d, (const struct ggml_tensor * tensor, int i, int32_t value), (tensor, i, value)) \
    R(v, int32_t, ggml_get_i32_nd, (const struct ggml_tensor * tensor, int i0, int i1, int i2, int i3), (tensor, i0, i1, i2, i3)) \
    V(v, ggml_set_i32_nd, (const struct ggml_tensor * tensor, int i0, int i1, int i2, int i3, int32_t value), (tensor, i0, i1, i2, i3, value)) \
    R(v, float, ggml_get_f32_1d, (const struct ggml_tensor * tensor, int i), (tensor, i)) \
    V(v, ggml_set_f32_1d, (const struct ggml_tensor * tensor, int i, float value), (tensor, i, value)) \
    R(v, float, ggml_get_f32_nd, (const struct ggml_tensor * tensor, int i0, int i1, int i2, int i3), (tensor, i0, i1, i2, i3)) \
    V(v, ggml_set_f32_nd, (const struct ggml_tensor * tensor, int i0, int i1, int i2, int i3, float value), (tensor, i0, i1, i2, i3, value)) \
    R(v, struct ggml_threadpool *, ggml_threadpool_new, (struct ggml_threadpool_params * params), (params)) \
    V(v, ggml_threadpool_free, (struct ggml_threadpool * threadpool), (threadpool)) \
    V(v, ggml_threadpool_pause, (struct ggml_threadpool * threadpool), (threadpool)) \
    V(v, ggml_threadpool_resume, (struct ggml_threadpool * threadpool), (threadpool)) \
    R(v, struct ggml_cplan, ggml_graph_plan, (const struct ggml_cgraph * cgraph, int n_threads, struct ggml_threadpool * threadpool), (cgraph, n_threads, threadpool)) \
    R(v, enum ggml_status, ggml_graph_compute, (struct ggml_cgraph * cgraph, struct ggml_cplan * cplan), (cgraph, cplan)) \
    R(v, enum ggml_status, ggml_graph_compute_with_ctx, (struct ggml_context * ctx, struct ggml_cgraph * cgraph, int n_threads), (ctx, cgraph, n_threads)) \
    R(v, int, ggml_cpu_has_sse3, (void), ()) \
    R(v, int, ggml_cpu_has_ssse3, (void), ()) \
    R(v, int, ggml_cpu_has_avx, (void), ()) \
    R(v, int, ggml_cpu_has_avx_vnni, (void), ()) \
    R(v, int, ggml_cpu_has_avx2, (void), ()) \
    R(v, int, ggml_cpu_has_bmi2, (void), ()) \
    R(v, int, ggml_cpu_has_f16c, (void), ()) \
    R(v, int, ggml_cpu_has_fma, (void), ()) \
    R(v, int, ggml_cpu_has_avx512, (void), ()) \
    R(v, int, ggml_cpu_has_avx512_vbmi, (void), ()) \
    R(v, int, ggml_cpu_has_avx512_vnni, (void), ()) \
    R(v, int, ggml_cpu_has_avx512_bf16, (void), ()) \
    R(v, int, ggml_cpu_has_amx_int8, (void), ()) \
    R(v, int, ggml_cpu_has_neon, (void), ()) \
    R(v, int, ggml_cpu_has_arm_fma, (void), ()) \
    R(v, int, ggml_cpu_has_fp16_va, (void), ()) \
    R(v, int, ggml_cpu_has_dotprod, (void), ()) \
    R(v, int, ggml_cpu_has_matmul_int8, (void), ()) \
    R(v, int, ggml_cpu_has_sve, (void), ()) \
    R(v, int, ggml_cpu_get_sve_cnt, (void), ()) \
    R(v, int, ggml_cpu_has_sme, (void), ()) \
    R(v, int, ggml_cpu_has_sme2, (void), ()) \
    R(v, int, ggml_cpu_has_riscv_v, (void), ()) \
    R(v, int, ggml_cpu_get_rvv_vlen, (void), ()) \
    R(v, int, ggml_cpu_has_vsx, (void), ()) \
    R(v, int, ggml_cpu_has_vxe, (void), ()) \
    R(v, int, ggml_cpu_has_wasm_simd, (void), ()) \
    R(v, int, ggml_cpu_has_llamafile, (void), ()) \
    R(v, const struct ggml_type_traits_cpu *, ggml_get_type_traits_cpu, (enum ggml_type type), (type)) \
    V(v, ggml_cpu_init, (void), ()) \
    R(v, ggml_backend_t, ggml_backend_cpu_init, (void), ()) \
    R(v, bool, ggml_backend_is_cpu, (ggml_backend_t backend), (backend)) \
    V(v, ggml_backend_cpu_set_n_threads, (ggml_backend_t backend_cpu, int n_threads), (backend_cpu, n_threads)) \
    V(v, ggml_backend_cpu_set_threadpool, (ggml_backend_t backend_cpu, ggml_threadpool_t threadpool), (backend_cpu, threadpool)) \
    V(v, ggml_backend_cpu_set_abort_callback, (ggml_backend_t backend_cpu, ggml_abort_callback abort_callback, void * abort_callback_data), (backend_cpu, abort_callback, abort_callback_data)) \
    V(v, ggml_backend_cpu_set_use_ref, (ggml_backend_t backend_cpu, bool use_ref), (backend_cpu, use_ref)) \
    R(v, ggml_backend_reg_t, ggml_backend_cpu_reg, (void), ()) \
    V(v, ggml_cpu_fp32_to_fp32, (const float * x, float * y, int64_t n), (x, y, n)) \
    V(v, ggml_cpu_fp32_to_i32, (const float * x, int32_t * y, int64_t n), (x, y, n)) \
    V(v, ggml_cpu_fp32_to_fp16, (const float * x, ggml_fp16_t * y, int64_t n), (x, y, n)) \
    V(v, ggml_cpu_fp16_to_fp32, (const ggml_fp16_t * x, float * y, int64_t n), (x, y, n)) \
    V(v, ggml_cpu_fp32_to_bf16, (const float * x, ggml_bf16_t * y, int64_t n), (x, y, n)) \
    V(v, ggml_cpu_bf16_to_fp32, (const ggml_bf16_t * x, float * y, int64_t n), (x, y, n))

#endif
