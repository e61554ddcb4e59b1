/*
 * test_stages_fast_cuda.c: every stage op with the CUDA kernel choices backend.small_rows=cluster,
 * scoring=fused, backward=fused, entropy=fused, reductions=grid and merge_launches=true, one at a
 * time and all together, against the CPU reference with the checks of test_stages_cuda.c and its
 * tolerances: the new kernels sum in other orders ((a) and (d) of tests/tolerances.h), and fp32
 * scoring on tensor cores (3xTF32) drops only the lo x lo products (2^-22 relative), below the
 * fp32 allowance. TF32 scoring (precision tf32) is checked on its own: the draws exactly as in
 * fp32, the candidate and particle scores within the TF32 tolerance. In fp32 the particles take
 * the tensor-core kernel only when a chunk fills a wave of blocks: the chunked cases (B*Np =
 * 35,200 particles of the critic target, B*K = 34,100 candidates, acting on more states than one
 * 32,768-row chunk) reach it. FLAME_GPU_TEST_SIZES picks the cases.
 * The cluster choices need compute capability 9.0: exit 77 below that or without a device.
 */
#define FLAME_STAGE_CHECKS_ONLY
#include "test_stages_cuda.c"

#include "flame/flow_math.h"

static void tw_cluster(FlameConfig *c) {
    c->backend.small_rows = SMALL_CLUSTER;
}
static void tw_scoring(FlameConfig *c) {
    c->backend.scoring = PATH_FUSED;
}
static void tw_backward(FlameConfig *c) {
    c->backend.backward = PATH_FUSED;
}
static void tw_entropy(FlameConfig *c) {
    c->backend.entropy = PATH_FUSED;
}
static void tw_grid(FlameConfig *c) {
    c->backend.reductions = REDUCE_GRID;
}
static void tw_merge(FlameConfig *c) {
    c->backend.merge_launches = true;
}
static void tw_all(FlameConfig *c) {
    gpu_new_choices(c);
}
static void tw_all_decoupled(FlameConfig *c) {
    tw_all(c);
    tw_decoupled(c);
}
static void tw_all_rows(FlameConfig *c) {
    tw_all(c);
    tw_no_collapse(c);
}
static void tw_all_ema(FlameConfig *c) {
    tw_all(c);
    tw_ema_next(c);
}
static void tw_all_chunked(FlameConfig *c) {
    tw_all(c);
    tw_chunked(c);
}
static void tw_all_chunked_bk(FlameConfig *c) {
    tw_all(c);
    tw_chunked_bk(c);
}
static void tw_scoring_tf32(FlameConfig *c) {
    tw_scoring(c);
    c->backend.precision = PRECISION_TF32;
}

FLAME_TEST(test_each_choice) {
    if (gpu_runs_min_only()) { /* every choice is in the all-choices cases */
        return;
    }
    struct {
        GpuTweak tw;
        const char *name;
    } ch[] = {
        {tw_cluster, " small_rows=cluster"}, {tw_scoring, " scoring=fused"},
        {tw_backward, " backward=fused"},    {tw_entropy, " entropy=fused"},
        {tw_grid, " reductions=grid"},       {tw_merge, " merge_launches"},
    };
    for (size_t i = 0; i < sizeof ch / sizeof ch[0]; i++) {
        if (gpu_runs_small()) {
            run_case(ALGO_FLAME_M, COMPAT_REFERENCE, SIZE_ODD, KERNELS_FUSED, ch[i].tw, ch[i].name);
        }
        if (gpu_runs_real()) {
            run_case(ALGO_FLAME_M, COMPAT_REFERENCE, SIZE_HALFCHEETAH, KERNELS_FUSED, ch[i].tw,
                     ch[i].name);
        }
    }
}

FLAME_TEST(test_all_choices) {
    int algos[3] = {ALGO_FLAME_M, ALGO_FLAME_R, ALGO_SAC};
    if (gpu_runs_small()) { /* min too: these reach every new kernel */
        for (int a = 0; a < 3; a++) {
            run_case(algos[a], COMPAT_REFERENCE, SIZE_ODD, KERNELS_FUSED, tw_all, " all fast");
        }
        run_case(ALGO_FLAME_M, COMPAT_CONSISTENT, SIZE_ODD, KERNELS_FUSED, tw_all_decoupled,
                 " all fast, decoupled");
    }
    if (gpu_runs_small() && !gpu_runs_min_only()) {
        run_case(ALGO_FLAME_M, COMPAT_CONSISTENT, SIZE_ODD, KERNELS_FUSED, tw_all_rows,
                 " all fast, B*K rows");
        run_case(ALGO_FLAME_M, COMPAT_REFERENCE, SIZE_ODD, KERNELS_FUSED, tw_all_ema,
                 " all fast, ema/2 steps");
        run_case(ALGO_FLAME_M, COMPAT_REFERENCE, SIZE_WIDE, KERNELS_FUSED, tw_all,
                 " all fast (fallbacks)");
        /* the chunked stages: best-of-N and candidate scoring beyond one 32,768-row chunk (the
           fp32 particle scoring fills a wave there), the B*K-row flow loss over two chunks */
        run_case(ALGO_FLAME_M, COMPAT_REFERENCE, SIZE_ODD, KERNELS_FUSED, tw_all_chunked,
                 " all fast, chunked");
        run_case(ALGO_FLAME_M, COMPAT_CONSISTENT, SIZE_ODD, KERNELS_FUSED, tw_all_chunked_bk,
                 " all fast, chunked, B*K rows");
        run_case(ALGO_FLAME_R, COMPAT_REFERENCE, SIZE_ODD, KERNELS_FUSED, tw_all_chunked,
                 " all fast, chunked");
        /* acting in chunks of 1,024 states x 32 particles (tensor-core scoring), then 38 */
        run_act_chunks(ALGO_FLAME_M, SIZE_ODD, KERNELS_FUSED, tw_all_chunked,
                       " all fast, chunked,");
        run_act_chunks(ALGO_FLAME_R, SIZE_ODD, KERNELS_FUSED, tw_all_chunked,
                       " all fast, chunked,");
        run_act_chunks(ALGO_SAC, SIZE_ODD, KERNELS_FUSED, tw_all, " all fast,");
    }
    if (!gpu_runs_real()) {
        return;
    }
    run_case(ALGO_FLAME_M, COMPAT_REFERENCE, SIZE_HALFCHEETAH, KERNELS_FUSED, tw_all, " all fast");
    run_case(ALGO_FLAME_M, COMPAT_CONSISTENT, SIZE_HALFCHEETAH, KERNELS_FUSED, tw_all_decoupled,
             " all fast, decoupled");
    run_case(ALGO_FLAME_R, COMPAT_REFERENCE, SIZE_HALFCHEETAH, KERNELS_FUSED, tw_all, " all fast");
    run_case(ALGO_SAC, COMPAT_REFERENCE, SIZE_HALFCHEETAH, KERNELS_FUSED, tw_all, " all fast");
    run_case(ALGO_FLAME_M, COMPAT_REFERENCE, SIZE_HUMANOID, KERNELS_FUSED, tw_all, " all fast");
}

/* min(Q1, Q2) of every candidate from the CPU's draws, x and t (the CPU state of the pair) */
static void cpu_candidate_scores(const Pair *p, const CpuDebugView *c, float *qc) {
    const FlameConfig *cfg = &p->cc;
    const AgentLayout *L = &p->st.L;
    int B = c->B, S = c->S, D = c->D, K = c->K;
    bool consistent = cfg->algo == ALGO_FLAME_M && cfg->quirks.time_convention == QUIRK_CONSISTENT;
    float sd0 = consistent ? (float)cfg->flow.base_std : 1.0f;
    QWork w1, w2;
    qwork_alloc(&w1, L, K);
    qwork_alloc(&w2, L, K);
    float *s = (float *)malloc(sizeof(float) * (size_t)K * S);
    float *a = (float *)malloc(sizeof(float) * (size_t)K * D);
    for (int i = 0; i < B; i++) {
        for (int k = 0; k < K; k++) {
            memcpy(s + (size_t)k * S, c->obs + (size_t)i * S, (size_t)S * sizeof(float));
            for (int d = 0; d < D; d++) {
                a[(size_t)k * D + d] = flow_candidate(
                    c->x[(size_t)i * D + d], c->t[i],
                    c->noise->eps_post[((size_t)i * K + k) * D + d], sd0, consistent);
            }
        }
        const float *q1 = critic_forward(L, p->st.q1.params, s, a, K, &w1);
        const float *q2 = critic_forward(L, p->st.q2.params, s, a, K, &w2);
        for (int k = 0; k < K; k++) {
            qc[(size_t)i * K + k] = q1[k] < q2[k] ? q1[k] : q2[k];
        }
    }
    free(s), free(a);
    qwork_free(&w1);
    qwork_free(&w2);
}

/* TF32 scoring: the same draws, scores within the TF32 tolerance */
static void check_scoring_tf32(int compat, GpuSize size) {
    Pair p;
    pair_open(&p, ALGO_FLAME_M, compat, &GPU_SHAPES[size], KERNELS_FUSED, tw_scoring_tf32,
              " scoring=fused tf32");
    BackendBase *bc = backend_base(p.cpu);
    UpdateCtx u = update_context(&p.cc, &bc->counters);
    CPU->replay_sample(p.cpu, &u);
    GPU->replay_sample(p.gpu, &u);
    CPU->qweight(p.cpu, &u);
    GPU->qweight(p.gpu, &u);
    CpuDebugView c;
    CudaDebugView g;
    backend_cpu_debug(p.cpu, &c);
    backend_cuda_debug(p.gpu, &g);
    size_t B = (size_t)c.B, K = (size_t)c.K, D = (size_t)c.D;
    CLOSE(&p, "times t", g.t, c.t, B, TOL_DRAWS);
    CLOSE(&p, "noisy action x", g.x, c.x, B * D, TOL_DRAWS);
    CLOSE(&p, "candidate draws eps_bk", g.eps_post, c.noise->eps_post, B * K * D, TOL_TRUNC);
    float *qc = (float *)malloc(sizeof(float) * B * K);
    cpu_candidate_scores(&p, &c, qc);
    CLOSE(&p, "candidate scores (TF32)", g.qc, qc, B * K, TOL_SCORE_TF32);
    expect_weights_sum_to_one(&p, g.w, B, K);
    free(qc);
    /* the next-action particles are scored by the same kernel (from memory, unclipped) */
    CPU->critic_target(p.cpu, &u);
    GPU->critic_target(p.gpu, &u);
    backend_cpu_debug(p.cpu, &c);
    backend_cuda_debug(p.gpu, &g);
    int Np = p.cc.flow.num_particles;
    float *pa = (float *)malloc(sizeof(float) * B * Np * D);
    float *ps = (float *)malloc(sizeof(float) * B * Np);
    const float *P = p.cc.quirks.next_action_policy == NEXTPOL_EMA ? p.st.pol_ema : p.st.pol.params;
    gpu_cpu_particles(&p.cc, &p.st.L, P, p.st.q1.params, p.st.q2.params, c.next_obs,
                      c.noise->next_z, (int)B, pa, ps);
    CLOSE(&p, "particle scores (TF32)", g.pscore, ps, B * Np, TOL_SCORE_TF32);
    free(pa), free(ps);
    pair_close(&p);
}

FLAME_TEST(test_scoring_tf32) {
    if (gpu_runs_small()) { /* min too: the TF32 instance of the scoring kernel */
        check_scoring_tf32(COMPAT_REFERENCE, SIZE_ODD);
    }
    if (gpu_runs_real()) {
        check_scoring_tf32(COMPAT_CONSISTENT, SIZE_HALFCHEETAH);
        check_scoring_tf32(COMPAT_REFERENCE, SIZE_HUMANOID);
    }
}

int main(void) {
    FLAME_REQUIRE_GPU();
    FLAME_REQUIRE_CLUSTERS();
    RUN_TEST(test_each_choice);
    RUN_TEST(test_all_choices);
    RUN_TEST(test_scoring_tf32);
    return flame_test_report();
}
