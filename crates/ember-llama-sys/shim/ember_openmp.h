// SPDX-License-Identifier: MIT OR Apache-2.0
/* ember's side of the OpenMP thread team ggml decodes with (GGML_OPENMP=ON, the default on
 * linux-gnu).
 *
 * libgomp reads its settings from the environment once, before main. ggml's barriers then
 * spin GOMP_SPINCOUNT times before sleeping on a futex. libgomp's default (300 000 spins,
 * about a millisecond) is as bad as ggml's own spinning barrier on a busy node: a thread
 * whose partner lost its core burns its time slice waiting. A short spin keeps the idle
 * speed (a barrier between two running threads is crossed within a few hundred spins) and
 * lets a waiting thread give its core away at once under contention. So, unless the
 * environment already says otherwise (GOMP_SPINCOUNT or OMP_WAIT_POLICY), a constructor that
 * runs before libgomp's sets GOMP_SPINCOUNT to EMBER_OPENMP_SPINCOUNT. */
#ifndef EMBER_OPENMP_H
#define EMBER_OPENMP_H

#ifdef __cplusplus
extern "C" {
#endif

/* The spin count set when the environment sets none. */
#define EMBER_OPENMP_SPINCOUNT 1000

/* Readies the calling thread's OpenMP team of `n_threads` (libgomp keeps one per calling
 * thread and reuses it for every parallel region ggml runs from that thread): names the
 * workers `ggml-worker` and, when `nice` is 0..19, gives them that nice value (a decode's
 * workers are created by the thread that decodes and inherit its priority, not the
 * context's). Returns 0, or the errno of a setpriority the kernel refused. A no-op returning
 * 0 without OpenMP. */
int ember_openmp_prepare_team(int n_threads, int nice);

#ifdef __cplusplus
}
#endif

#endif
