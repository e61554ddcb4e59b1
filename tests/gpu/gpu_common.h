/*
 * gpu_common.h: shared set-up of the CUDA tests: the skip rule (77 without a device), the
 * configurations at real and awkward sizes, a CPU and a CUDA backend with identical replay
 * contents and state, and CPU reference helpers (best-of-N particle scores, Adam on host copies).
 *
 * Which cases run (small, real, the sanitizer subset) comes from FLAME_GPU_TEST_SIZES
 * (gpu_sizes.h).
 */
#ifndef FLAME_GPU_COMMON_H
#define FLAME_GPU_COMMON_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flame/agent.h"
#include "flame/backend.h"
#include "flame/backend_cpu.h"
#include "flame/backend_cuda.h"
#include "flame/config.h"
#include "flame/cuda_api.h"
#include "flame/flow.h"
#include "flame/params.h"
#include "flame/rng.h"
#include "flame/update.h"
#include "algo_common.h"
#include "flame_test.h"
#include "gpu_sizes.h"
#include "tolerances.h"

/* Returns 77 from main() when no CUDA device is present (after checking FLAME_GPU_TEST_SIZES,
   which stops a test with exit code 2 when it is malformed, device or not). */
#define FLAME_REQUIRE_GPU()                                                                        \
    do {                                                                                           \
        (void)gpu_scope();                                                                         \
        if (flame_cuda_device_count() == 0) {                                                      \
            printf("skipped: no CUDA device\n");                                                   \
            return 77;                                                                             \
        }                                                                                          \
    } while (0)

/* Returns 77 from main() below compute capability 9.0 (thread-block clusters). */
#define FLAME_REQUIRE_CLUSTERS()                                                                   \
    do {                                                                                           \
        FlameCudaDevice dev_;                                                                      \
        memset(&dev_, 0, sizeof dev_);                                                             \
        if (flame_cuda_device_info(0, &dev_) != 0 || dev_.major < 9) {                             \
            printf("SKIPPED: the cluster kernels need compute capability 9.0 (device %s is "     \
                   "%d.%d)\n",                                                                     \
                   dev_.name, dev_.major, dev_.minor);                                             \
            return 77;                                                                             \
        }                                                                                          \
    } while (0)

/* Every new CUDA kernel choice on (the tests labelled gpu_new); a GpuTweak. */
static inline void gpu_new_choices(FlameConfig *c) {
    c->backend.small_rows = SMALL_CLUSTER;
    c->backend.scoring = PATH_FUSED;
    c->backend.backward = PATH_FUSED;
    c->backend.entropy = PATH_FUSED;
    c->backend.reductions = REDUCE_GRID;
    c->backend.merge_launches = true;
}

typedef enum { SIZE_HALFCHEETAH, SIZE_HUMANOID, SIZE_ODD, SIZE_WIDE } GpuSize;

typedef struct {
    GpuSize size;
    const char *name;
    int S, D;
} GpuShape;

static const GpuShape GPU_SHAPES[] = {
    {SIZE_HALFCHEETAH, "halfcheetah(S17,D6,3x256,B256,K100,Np32)", 17, 6},
    {SIZE_HUMANOID, "humanoid(S348,D17,3x256,B256,K100,Np32)", 348, 17},
    {SIZE_ODD, "odd(S11,D3,2x45,B37,K13,Np5)", 11, 3},
    {SIZE_WIDE, "wide(S9,D2,2x300,B19,K7,Np3)", 9, 2},
};

typedef void (*GpuTweak)(FlameConfig *cfg);

/* A resolved config of the given size (defaults are the real sizes: 3 x 256, B 256, K 100, 32
   particles); tweak (may be NULL) edits it before it is resolved. */
static inline void gpu_config(FlameConfig *cfg, int algo, int compat, GpuSize size, int backend,
                              int kernels, GpuTweak tweak) {
    config_defaults(cfg);
    cfg->algo = algo;
    cfg->compat = compat;
    cfg->run.seed = 11;
    cfg->run.cpu_threads = 8;
    cfg->update.replay_size = 5000;
    cfg->backend.type = backend;
    cfg->backend.kernels = kernels;
    cfg->backend.graphs = false;
    if (size == SIZE_ODD) {
        cfg->net.hidden = 45;
        cfg->net.layers = 2;
        cfg->update.batch_size = 37;
        cfg->flow.sample_k = 13;
        cfg->flow.num_particles = 5;
        cfg->update.replay_size = 300;
    } else if (size == SIZE_WIDE) {
        /* widths over 256: the fused path falls back to the cuBLAS layers */
        cfg->net.hidden = 300;
        cfg->net.layers = 2;
        cfg->update.batch_size = 19;
        cfg->flow.sample_k = 7;
        cfg->flow.num_particles = 3;
        cfg->update.replay_size = 200;
    }
    if (tweak) {
        tweak(cfg);
    }
    config_resolve(cfg);
}

static inline void gpu_push_random(const BackendOps *ops, Backend *b, int S, int D, int n) {
    float *o = (float *)malloc(sizeof(float) * (size_t)S * n);
    float *no = (float *)malloc(sizeof(float) * (size_t)S * n);
    float *a = (float *)malloc(sizeof(float) * (size_t)D * n);
    float *r = (float *)malloc(sizeof(float) * (size_t)n);
    uint8_t *d = (uint8_t *)malloc((size_t)n);
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < S; j++) {
            o[(size_t)i * S + j] = rng_normal(99, RNG_STREAM_TEST, 1, (uint32_t)i, (uint32_t)j);
            no[(size_t)i * S + j] =
                o[(size_t)i * S + j] + 0.1f * rng_normal(99, RNG_STREAM_TEST, 2, (uint32_t)i,
                                                         (uint32_t)j);
        }
        for (int j = 0; j < D; j++) {
            a[(size_t)i * D + j] =
                1.3f * (2.0f * rng_uniform(99, RNG_STREAM_TEST, 3, (uint32_t)i, (uint32_t)j) - 1);
        }
        r[i] = rng_normal(99, RNG_STREAM_TEST, 4, (uint32_t)i, 0);
        d[i] = (i % 17) == 0;
    }
    /* two pushes, so the ring's segment logic is exercised */
    int h = n / 3;
    ops->replay_push(b, o, a, r, no, d, h);
    ops->replay_push(b, o + (size_t)h * S, a + (size_t)h * D, r + h, no + (size_t)h * S, d + h,
                     n - h);
    free(o), free(no), free(a), free(r), free(d);
}

static inline Backend *gpu_create(const BackendOps *ops, const FlameConfig *cfg, int S, int D) {
    if (config_validate(cfg) != FLAME_OK) {
        fprintf(stderr, "bad test config: %s\n", flame_last_error());
        exit(1);
    }
    Backend *b = NULL;
    if (ops->create(cfg, S, D, &b) != FLAME_OK) {
        fprintf(stderr, "%s create failed: %s\n", ops->name, flame_last_error());
        exit(1);
    }
    return b;
}

/* max |x| over n floats */
static inline double gpu_absmax(const float *x, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        m = fmax(m, fabs((double)x[i]));
    }
    return m;
}

/* gradient comparison: atol scaled by the largest reference element */
#define EXPECT_GRAD_CLOSE(name, got, ref, n, tol)                                                  \
    EXPECT_CLOSE(name, got, ref, n, (tol).atol * gpu_absmax(ref, n) + 1e-30, (tol).rtol)

/* One Adam step on host copies of (p, m, v) with gradient g: what the device must produce. */
static inline void gpu_expect_adam(const char *name, const float *p0, const float *m0,
                                   const float *v0, const float *g, size_t n, double lr,
                                   const FlameConfig *cfg, int64_t t, const float *p1,
                                   const float *m1, const float *v1) {
    float *p = (float *)malloc(n * sizeof(float)), *m = (float *)malloc(n * sizeof(float)),
          *v = (float *)malloc(n * sizeof(float));
    memcpy(p, p0, n * sizeof(float));
    memcpy(m, m0, n * sizeof(float));
    memcpy(v, v0, n * sizeof(float));
    adam_step(p, g, m, v, n, lr, cfg->optim.beta1, cfg->optim.beta2, cfg->optim.eps, t);
    char nm[512];
    snprintf(nm, sizeof nm, "%s params", name);
    EXPECT_CLOSE_Q(nm, p1, p, n, TOL_ADAM.atol, TOL_ADAM.rtol);
    snprintf(nm, sizeof nm, "%s adam m", name);
    EXPECT_CLOSE_Q(nm, m1, m, n, TOL_ADAM.atol, TOL_ADAM.rtol);
    snprintf(nm, sizeof nm, "%s adam v", name);
    EXPECT_CLOSE_Q(nm, v1, v, n, TOL_ADAM.atol, TOL_ADAM.rtol);
    free(p), free(m), free(v);
}

/* CPU reference of best-of-N particles and their scores (algo_common.h) */
static inline void gpu_cpu_particles(const FlameConfig *cfg, const AgentLayout *L, const float *P,
                                     const float *Pq1, const float *Pq2, const float *s,
                                     const float *zstd, int n, float *a, float *score) {
    ref_particles(cfg, L, P, Pq1, Pq2, s, zstd, n, a, score);
}

/* Checks a best-of-N choice made on the GPU against CPU particle scores: the GPU's scores match
   (score_tol), its choice is a maximum of the CPU scores up to twice that tolerance (ties may
   resolve either way), and its action is the clipped CPU particle it chose. Returns the number of
   rows whose choice differs from the CPU's first maximum (near-ties). */
static inline int gpu_check_best_of_n_tol(const char *name, int n, int Np, int D,
                                          const float *cpu_a, const float *cpu_score,
                                          const float *gpu_score, const int *gpu_best,
                                          const float *gpu_action, FlameTol action_tol,
                                          FlameTol score_tol) {
    char nm[512];
    snprintf(nm, sizeof nm, "%s particle scores", name);
    EXPECT_CLOSE_Q(nm, gpu_score, cpu_score, (size_t)n * Np, score_tol.atol, score_tol.rtol);
    int ties = 0;
    float *chosen = (float *)malloc(sizeof(float) * (size_t)n * D);
    for (int i = 0; i < n; i++) {
        const float *sc = cpu_score + (size_t)i * Np;
        int cb = 0;
        for (int p = 1; p < Np; p++) {
            if (sc[p] > sc[cb]) {
                cb = p;
            }
        }
        int gb = gpu_best[i];
        EXPECT_MSG(gb >= 0 && gb < Np, "%s row %d: chosen particle %d", name, i, gb);
        if (gb < 0 || gb >= Np) {
            gb = 0;
        }
        double allow = 2 * (score_tol.atol + score_tol.rtol * fabs(sc[cb])) * flame_tol_scale();
        EXPECT_MSG(sc[gb] >= sc[cb] - allow,
                   "%s row %d: GPU chose particle %d (CPU score %.9g), CPU best %d (%.9g)", name, i,
                   gb, sc[gb], cb, sc[cb]);
        ties += gb != cb;
        for (int d = 0; d < D; d++) {
            float v = cpu_a[((size_t)i * Np + gb) * D + d];
            chosen[(size_t)i * D + d] = v < -1.0f ? -1.0f : (v > 1.0f ? 1.0f : v);
        }
    }
    snprintf(nm, sizeof nm, "%s chosen actions", name);
    EXPECT_CLOSE_Q(nm, gpu_action, chosen, (size_t)n * D, action_tol.atol, action_tol.rtol);
    free(chosen);
    if (ties) {
        printf("       %s: %d near-tie row(s) chose another maximum\n", name, ties);
    }
    return ties;
}

/* the same with the fp32 score tolerance */
static inline int gpu_check_best_of_n(const char *name, int n, int Np, int D, const float *cpu_a,
                                      const float *cpu_score, const float *gpu_score,
                                      const int *gpu_best, const float *gpu_action,
                                      FlameTol action_tol) {
    return gpu_check_best_of_n_tol(name, n, Np, D, cpu_a, cpu_score, gpu_score, gpu_best,
                                   gpu_action, action_tol, TOL_SCORE);
}

#endif
