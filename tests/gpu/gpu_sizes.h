/*
 * gpu_sizes.h: which cases a GPU test runs, from FLAME_GPU_TEST_SIZES in the environment:
 *
 *   all    (default) the awkward small sizes, then the real sizes of the configs
 *   small  only the awkward small sizes (every case at them)
 *   real   only the real sizes (HalfCheetah, Humanoid)
 *   min    the fewest small cases that still reach every kernel once (compute-sanitizer runs,
 *          which slow kernels by 10-100x)
 *
 * FLAME_GPU_TEST_SMALL=1 is the older spelling of FLAME_GPU_TEST_SIZES=small. Any other value
 * stops the test with exit code 2. tests/gpu/run_gpu_checks.sh runs each GPU test once with
 * small and once with real, as two capped steps.
 *
 * defines: GpuScope gpu_scope gpu_small_only gpu_runs_small gpu_runs_real gpu_runs_min_only
 */
#ifndef FLAME_GPU_SIZES_H
#define FLAME_GPU_SIZES_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { GPU_SCOPE_ALL, GPU_SCOPE_SMALL, GPU_SCOPE_REAL, GPU_SCOPE_MIN } GpuScope;

static inline GpuScope gpu_scope(void) {
    const char *s = getenv("FLAME_GPU_TEST_SIZES");
    if (!s || !s[0]) {
        const char *old = getenv("FLAME_GPU_TEST_SMALL");
        return old && old[0] == '1' ? GPU_SCOPE_SMALL : GPU_SCOPE_ALL;
    }
    static const char *names[] = {"all", "small", "real", "min"};
    for (int i = 0; i < 4; i++) {
        if (!strcmp(s, names[i])) {
            return (GpuScope)i;
        }
    }
    fprintf(stderr, "FLAME_GPU_TEST_SIZES='%s': use all, small, real or min\n", s);
    exit(2);
}

/* no real sizes (small or min) */
static inline int gpu_small_only(void) {
    GpuScope s = gpu_scope();
    return s == GPU_SCOPE_SMALL || s == GPU_SCOPE_MIN;
}

/* the small-size cases run (all, small, min; min keeps only its subset) */
static inline int gpu_runs_small(void) {
    return gpu_scope() != GPU_SCOPE_REAL;
}

/* the real-size cases run (all, real) */
static inline int gpu_runs_real(void) {
    GpuScope s = gpu_scope();
    return s == GPU_SCOPE_ALL || s == GPU_SCOPE_REAL;
}

/* only the sanitizer subset of the small cases */
static inline int gpu_runs_min_only(void) {
    return gpu_scope() == GPU_SCOPE_MIN;
}

#endif
