/* algo_common.h: shared set-up for the algorithm tests: small resolved configs and a CPU backend
   whose replay buffer holds random transitions. */
#ifndef FLAME_ALGO_COMMON_H
#define FLAME_ALGO_COMMON_H

#include <stdio.h>
#include <string.h>

#include "flame/backend.h"
#include "flame/backend_cpu.h"
#include "flame/config.h"
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

#endif
