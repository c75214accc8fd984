// SPDX-License-Identifier: MIT OR Apache-2.0
/* See ember_openmp.h. Compiled with -fopenmp when the build uses OpenMP, plainly otherwise. */
#define _GNU_SOURCE
#include "ember_openmp.h"

#ifdef _OPENMP
#include <errno.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Priority 101, the first a program may use: .init_array entries with a priority run before
 * those without, libgomp's own environment reader among them, in static and dynamic links
 * alike (the build links libgomp statically). */
__attribute__((constructor(101))) static void ember_openmp_spincount(void) {
    if (getenv("GOMP_SPINCOUNT") == NULL && getenv("OMP_WAIT_POLICY") == NULL) {
        char value[32];
        snprintf(value, sizeof value, "%d", EMBER_OPENMP_SPINCOUNT);
        setenv("GOMP_SPINCOUNT", value, 0);
    }
}

int ember_openmp_prepare_team(int n_threads, int nice) {
    int failed = 0;
    if (n_threads < 2) {
        return 0;
    }
#pragma omp parallel num_threads(n_threads) reduction(max : failed)
    {
        if (omp_get_thread_num() != 0) {
            prctl(PR_SET_NAME, "ggml-worker", 0, 0, 0);
            if (nice >= 0 && nice <= 19 &&
                setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), nice) != 0) {
                failed = errno;
            }
        }
    }
    return failed;
}
#else
int ember_openmp_prepare_team(int n_threads, int nice) {
    (void)n_threads;
    (void)nice;
    return 0;
}
#endif
