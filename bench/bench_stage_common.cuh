/*
 * bench_stage_common.cuh: what the stage-level kernel labs (bench_qscore.cu, bench_entropy.cu)
 * share: a CUDA backend built from a few config keys with its replay filled and one minibatch
 * drawn (update 0: its draws are addressed by update index 0 every time the stage reruns), and
 * timing on the backend's own stream.
 *
 * defines: StageLab stage_lab_open stage_lab_close stage_lab_time
 */
#ifndef FLAME_BENCH_STAGE_COMMON_CUH
#define FLAME_BENCH_STAGE_COMMON_CUH

#include "backend_impl.cuh"
#include "bench_common.cuh"

extern "C" {
#include "flame/bench.h"
#include "flame/update.h"
}

typedef struct {
    FlameConfig cfg; /* outlives the backend */
    Backend *b;
    int S, D;
} StageLab;

typedef void (*StageTweak)(FlameConfig *c, int version);

/* A backend of FLAME-M with 3 x 256 critics and policy, batch B, K candidates, the version's
   kernel choices (tweak), a replay of 4 B transitions and the minibatch of update 0. */
static inline void stage_lab_open(StageLab *L, int S, int D, int B, int K, int version,
                                  StageTweak tweak) {
    memset(L, 0, sizeof *L);
    config_defaults(&L->cfg);
    L->cfg.update.batch_size = B;
    L->cfg.flow.sample_k = K;
    L->cfg.update.replay_size = 4 * (int64_t)B > 2048 ? 4 * (int64_t)B : 2048;
    L->cfg.backend.type = BACKEND_CUDA;
    L->cfg.backend.graphs = false;
    tweak(&L->cfg, version);
    config_resolve(&L->cfg);
    if (config_validate(&L->cfg) != FLAME_OK ||
        backend_cuda_ops.create(&L->cfg, S, D, &L->b) != FLAME_OK) {
        flame_fatal("stage lab backend: %s", flame_last_error());
    }
    L->S = S;
    L->D = D;
    bench_fill_replay(&backend_cuda_ops, L->b, S, D, L->cfg.update.replay_size);
    AgentCounters c0;
    memset(&c0, 0, sizeof c0);
    UpdateCtx u = update_context(&L->cfg, &c0);
    backend_cuda_ops.replay_sample(L->b, &u);
    CUDA_CHECK(cudaStreamSynchronize(L->b->ctx.stream));
}

static inline void stage_lab_close(StageLab *L) {
    backend_cuda_ops.destroy(L->b);
    L->b = NULL;
}

/* bench_time on the backend's stream */
static inline BenchTime stage_lab_time(BenchCtx *bc, StageLab *L, BenchFn fn, void *arg) {
    cudaStream_t own = bc->ctx.stream;
    bc->ctx.stream = L->b->ctx.stream;
    BenchTime t = bench_time(bc, fn, arg, bc->repeats);
    bc->ctx.stream = own;
    return t;
}

#endif
