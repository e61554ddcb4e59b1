/*
 * bench_qscore.cu: kernel lab for candidate scoring (the Q-reweighting stage): K posterior
 * candidates per state drawn from the truncated normal, both critics on [s, a-hat] for all B*K
 * rows, the twin minimum, the softmax weights and v-bar (cuda_stage_qweight on a CUDA backend).
 * FLOPs: both critics' forward on B*K rows (the fused kernel skips the state part of the first
 * layer for all but one row per state, so it does fewer); GFLOP/s and the share of the TF32
 * ceiling of this run (cuBLAS, 8192^3) are reported on that count.
 *
 * versions (--version N):
 *   1  staged, fp32 fused tile kernel for the twin critic (backend.kernels=fused, scoring=staged)
 *   2  staged, cuBLAS layers fp32 (backend.kernels=cublas)
 *   3  fused tensor-core kernel, 3xTF32 (backend.scoring=fused, precision fp32)
 *   4  fused tensor-core kernel, TF32 (backend.scoring=fused, precision tf32)
 *   5  staged, cuBLAS layers TF32 (backend.kernels=cublas, precision tf32)
 * Sizes: HalfCheetah (S 17, D 6) B = 256 and 4096, Humanoid (348, 17) B = 256; K = 100.
 * Validation: the candidate scores min(Q1, Q2) of 8 states (first, middle, last) against the CPU
 * critics on the backend's draws, before and after timing.
 */
#include "bench_stage_common.cuh"

#include "../tests/tolerances.h"

extern "C" {
#include "flame/flow.h"
#include "flame/flow_math.h"
}

typedef struct {
    const char *env;
    int S, D, B, K;
} QsSize;

static void qs_tweak(FlameConfig *c, int v) {
    c->backend.kernels = (v == 2 || v == 5) ? KERNELS_CUBLAS : KERNELS_FUSED;
    c->backend.scoring = (v == 3 || v == 4) ? PATH_FUSED : PATH_STAGED;
    c->backend.precision = (v == 4 || v == 5) ? PRECISION_TF32 : PRECISION_FP32;
}

static void run_qs(BenchCtx *bc, void *arg) {
    (void)bc;
    cuda_stage_qweight((Backend *)arg);
}

/* the scores of 8 states against the CPU critics (bench_compare) */
static bool qs_validate(StageLab *L, FlameTol tol, double *rel) {
    Backend *b = L->b;
    CudaDebugView v;
    backend_cuda_debug(b, &v);
    AgentState st;
    agent_state_init(&st, &L->cfg, L->S, L->D);
    backend_cuda_ops.get_state(b, &st);
    int B = v.B, K = v.K, S = v.S, D = v.D, sel[8];
    for (int i = 0; i < 8; i++) {
        sel[i] = B <= 8 ? i % B : (i < 3 ? i : (i < 5 ? B / 2 + i - 3 : B - 8 + i));
    }
    bool consistent = L->cfg.quirks.time_convention == QUIRK_CONSISTENT;
    float sd0 = consistent ? (float)L->cfg.flow.base_std : 1.0f;
    QWork w1, w2;
    qwork_alloc(&w1, &st.L, K);
    qwork_alloc(&w2, &st.L, K);
    float *s = (float *)malloc(sizeof(float) * (size_t)K * S);
    float *a = (float *)malloc(sizeof(float) * (size_t)K * D);
    float *got = (float *)malloc(sizeof(float) * 8 * (size_t)K);
    float *ref = (float *)malloc(sizeof(float) * 8 * (size_t)K);
    for (int q = 0; q < 8; q++) {
        int i = sel[q];
        for (int k = 0; k < K; k++) {
            memcpy(s + (size_t)k * S, v.obs + (size_t)i * S, (size_t)S * sizeof(float));
            for (int d = 0; d < D; d++) {
                a[(size_t)k * D + d] =
                    flow_candidate(v.x[(size_t)i * D + d], v.t[i],
                                   v.eps_post[((size_t)i * K + k) * D + d], sd0, consistent);
            }
        }
        const float *q1 = critic_forward(&st.L, st.q1.params, s, a, K, &w1);
        const float *q2 = critic_forward(&st.L, st.q2.params, s, a, K, &w2);
        for (int k = 0; k < K; k++) {
            ref[(size_t)q * K + k] = q1[k] < q2[k] ? q1[k] : q2[k];
            got[(size_t)q * K + k] = v.qc[(size_t)i * K + k];
        }
    }
    bool ok = bench_compare(got, ref, 8 * (size_t)K, tol.atol, tol.rtol, rel);
    free(s), free(a), free(got), free(ref);
    qwork_free(&w1);
    qwork_free(&w2);
    agent_state_free(&st);
    return ok;
}

static void qs_lab_size(BenchCtx *bc, const QsSize *sz) {
    const char *names[6] = {"",           "staged fused fp32", "staged cuBLAS fp32", "fused 3xTF32",
                            "fused TF32", "staged cuBLAS TF32"};
    char sizes_json[256], sizes_txt[96];
    snprintf(sizes_json, sizeof sizes_json,
             "\"env\": \"%s\", \"S\": %d, \"D\": %d, \"B\": %d, \"K\": %d, \"rows\": %d, "
             "\"hidden\": 256, \"layers\": 3, \"nets\": 2",
             sz->env, sz->S, sz->D, sz->B, sz->K, sz->B * sz->K);
    snprintf(sizes_txt, sizeof sizes_txt, "%s B=%d K=%d", sz->env, sz->B, sz->K);
    for (int v = 1; v <= 5; v++) {
        if (bc->version > 0 && bc->version != v) {
            continue;
        }
        bool fused = v == 3 || v == 4;
        if (fused && bc->ctx.smem_optin < 221 * 1024) { /* the kernel's shared memory (sm_90) */
            BenchTime z = {0, 0};
            bench_record(bc, "qscore", v, names[v], 0, sizes_json, sizes_txt, z, 0, 0, true, true,
                         0, true);
            continue;
        }
        StageLab L;
        stage_lab_open(&L, sz->S, sz->D, sz->B, sz->K, v, qs_tweak);
        double flops = 2.0 * sz->B * sz->K * mlp_flops(&L.b->L.q);
        double bytes = 4.0 * ((double)sz->B * sz->K * (sz->D + 3) + 4.0 * L.b->nq);
        if (fused && !cuda_qscore_ok(L.b)) {
            flame_fatal("qscore lab: the fused scoring does not apply to %s", sizes_txt);
        }
        FlameTol tol = (v == 4 || v == 5) ? TOL_SCORE_TF32 : TOL_SCORE;
        bool ok[2];
        double rel = 0;
        BenchTime bt = {0, 0};
        for (int pass = 0; pass < 2; pass++) {
            CUDA_CHECK(cudaMemsetAsync(L.b->qc, 0xff, (size_t)sz->B * sz->K * sizeof(float),
                                       L.b->ctx.stream));
            cuda_stage_qweight(L.b);
            ok[pass] = qs_validate(&L, tol, &rel);
            if (pass == 0) {
                bt = stage_lab_time(bc, &L, run_qs, L.b);
            }
        }
        bench_record(bc, "qscore", v, names[v], 0, sizes_json, sizes_txt, bt, flops, bytes, ok[0],
                     ok[1], rel, false);
        stage_lab_close(&L);
    }
}

static void bench_qscore_lab(BenchCtx *bc) {
    static const QsSize tiny[] = {{"HalfCheetah", 17, 6, 16, 13}};
    static const QsSize quick[] = {{"HalfCheetah", 17, 6, 256, 100}};
    static const QsSize full[] = {{"HalfCheetah", 17, 6, 256, 100},
                                  {"HalfCheetah", 17, 6, 4096, 100},
                                  {"Humanoid", 348, 17, 256, 100}};
    const QsSize *s = bc->tiny ? tiny : (bc->quick ? quick : full);
    int n = bc->tiny ? 1 : (bc->quick ? 1 : 3);
    for (int i = 0; i < n; i++) {
        qs_lab_size(bc, &s[i]);
    }
}

#ifdef FLAME_BENCH_MAIN
int main(int argc, char **argv) {
    return bench_lab_main(argc, argv, "bench_qscore", bench_qscore_lab);
}
#endif
