/* algo_common.h: shared set-up for the algorithm tests: small resolved configs, a CPU backend
   whose replay buffer holds random transitions, and best-of-N particles computed directly from the
   MLP core (the reference the backends' choices are checked against). */
#ifndef FLAME_ALGO_COMMON_H
#define FLAME_ALGO_COMMON_H

#include <stdio.h>
#include <string.h>

#include "flame/backend.h"
#include "flame/backend_cpu.h"
#include "flame/config.h"
#include "flame/flow.h"
#include "flame/rng.h"
#include "flame/update.h"
#include "flame_test.h"

/* A small FLAME config: S, D as given, 2 x 32 mish, B = 16, K = 8, 6 particles. */
static inline void small_config(FlameConfig *cfg, int algo, int compat) {
    config_defaults(cfg);
    cfg->algo = algo;
    cfg->compat = compat;
    cfg->net.hidden = 32;
    cfg->net.layers = 2;
    cfg->update.batch_size = 16;
    cfg->update.replay_size = 1000;
    cfg->flow.sample_k = 8;
    cfg->flow.num_particles = 6;
    cfg->run.start_steps = 1000;
    cfg->run.seed = 7;
    cfg->backend.type = BACKEND_CPU;
}

/* Creates the backend (config resolved and validated) and pushes n random transitions, with
   actions up to 1.3 in magnitude (out-of-box, as exploration noise produces) and some terminals. */
static inline Backend *make_backend(FlameConfig *cfg, int S, int D, int n) {
    config_resolve(cfg);
    if (config_validate(cfg) != FLAME_OK) {
        fprintf(stderr, "bad test config: %s\n", flame_last_error());
        exit(1);
    }
    Backend *b = NULL;
    if (backend_cpu_ops.create(cfg, S, D, &b) != FLAME_OK) {
        fprintf(stderr, "create failed: %s\n", flame_last_error());
        exit(1);
    }
    float *o = malloc(sizeof(float) * (size_t)S), *no = malloc(sizeof(float) * (size_t)S);
    float *a = malloc(sizeof(float) * (size_t)D);
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < S; j++) {
            o[j] = rng_normal(99, RNG_STREAM_TEST, 1, (uint32_t)i, (uint32_t)j);
            no[j] = o[j] + 0.1f * rng_normal(99, RNG_STREAM_TEST, 2, (uint32_t)i, (uint32_t)j);
        }
        for (int j = 0; j < D; j++) {
            a[j] = 1.3f * (2.0f * rng_uniform(99, RNG_STREAM_TEST, 3, (uint32_t)i, (uint32_t)j) - 1);
        }
        float r = rng_normal(99, RNG_STREAM_TEST, 4, (uint32_t)i, 0);
        uint8_t d = (i % 17) == 0;
        backend_cpu_ops.replay_push(b, o, a, &r, no, &d, 1);
    }
    free(o), free(no), free(a);
    return b;
}

/* CPU reference of best-of-N: particle actions a (n x Np x D, unclipped) and their scores
   min(Q1, Q2) (n x Np) from standard-normal base draws zstd (n x Np x D). */
static inline void ref_particles(const FlameConfig *cfg, const AgentLayout *L, const float *P,
                                 const float *Pq1, const float *Pq2, const float *s,
                                 const float *zstd, int n, float *a, float *score) {
    int S = L->obs_dim, D = L->act_dim, Np = cfg->flow.num_particles, N = cfg->flow.sample_steps;
    int rows = n * Np;
    FlowWork fw;
    QWork w1, w2;
    flow_work_alloc(&fw, L, rows);
    qwork_alloc(&w1, L, rows);
    qwork_alloc(&w2, L, rows);
    float *srep = (float *)malloc(sizeof(float) * (size_t)rows * S);
    float *rr = (float *)malloc(sizeof(float) * (size_t)rows);
    float *tt = (float *)malloc(sizeof(float) * (size_t)rows);
    float sd = (float)cfg->flow.base_std;
    for (int i = 0; i < n; i++) {
        for (int p = 0; p < Np; p++) {
            size_t row = (size_t)i * Np + p;
            memcpy(srep + row * S, s + (size_t)i * S, (size_t)S * sizeof(float));
            for (int d = 0; d < D; d++) {
                a[row * D + d] = sd * zstd[row * D + d];
            }
        }
    }
    if (cfg->algo == ALGO_FLAME_M) {
        float c = cfg->quirks.multistep_scale == QUIRK_CONSISTENT ? 1.0f / (float)N : 1.0f;
        for (int k = 0; k < N; k++) {
            float tau = (float)(1.0 - (double)k / N), rk = (float)(1.0 - (double)(k + 1) / N);
            for (int i = 0; i < rows; i++) {
                rr[i] = rk;
                tt[i] = tau;
            }
            const float *u = flow_forward(L, P, srep, a, rr, tt, rows, &fw);
            for (size_t i = 0; i < (size_t)rows * D; i++) {
                a[i] -= c * u[i];
            }
        }
    } else {
        for (int k = 0; k < N; k++) {
            for (int i = 0; i < rows; i++) {
                tt[i] = (float)((double)k / N);
            }
            const float *v = flow_forward(L, P, srep, a, NULL, tt, rows, &fw);
            for (size_t i = 0; i < (size_t)rows * D; i++) {
                a[i] += v[i] / (float)N;
            }
        }
    }
    const float *q1 = critic_forward(L, Pq1, srep, a, rows, &w1);
    const float *q2 = critic_forward(L, Pq2, srep, a, rows, &w2);
    for (int i = 0; i < rows; i++) {
        score[i] = q1[i] < q2[i] ? q1[i] : q2[i];
    }
    free(srep), free(rr), free(tt);
    flow_work_free(&fw);
    qwork_free(&w1);
    qwork_free(&w2);
}

#endif
