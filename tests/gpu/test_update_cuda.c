/*
 * test_update_cuda.c: whole updates on the CUDA backend against the CPU reference (design.md §7
 * level 3): 10 updates from the same state and replay contents, losses compared at every update
 * and every parameter array at the end, for FLAME-M (both compat modes), FLAME-R and SAC, with
 * fused and cuBLAS kernels, with update graphs and eagerly, fp32 and TF32; plus the state and
 * replay round trips (bitwise) and checkpoint interchange CPU -> CUDA -> CPU through ckpt files.
 *
 * Parameter comparisons: with Adam eps = 1e-3 the update is a continuous function of the gradient
 * and parameters are compared element-wise (TOL_UPDATE_PARAMS); with the default eps = 1e-8 they
 * are compared by displacement norm (see tolerances.h for why).
 */
#include <unistd.h>

#include "flame/ckpt.h"
#include "gpu_common.h"

static const BackendOps *CPU = &backend_cpu_ops;
static const BackendOps *GPU = &backend_cuda_ops;

#define N_UPDATES 10

typedef struct {
    UpdateMetrics m[N_UPDATES];
    bool actor[N_UPDATES];
    AgentState start, end;
} Trajectory;

static void tw_eps(FlameConfig *c) {
    c->optim.eps = 1e-3;
}

/* the CPU reference: 2 warm-up updates, the start state, then N_UPDATES updates */
static void cpu_trajectory(const FlameConfig *cfg, int S, int D, Trajectory *tr) {
    Backend *b = gpu_create(CPU, cfg, S, D);
    int n = (int)(cfg->update.replay_size < 900 ? cfg->update.replay_size - 10 : 900);
    gpu_push_random(CPU, b, S, D, n);
    update_step(CPU, b);
    update_step(CPU, b);
    agent_state_init(&tr->start, cfg, S, D);
    agent_state_init(&tr->end, cfg, S, D);
    CPU->get_state(b, &tr->start);
    for (int i = 0; i < N_UPDATES; i++) {
        tr->actor[i] = update_context(cfg, &backend_base(b)->counters).do_actor;
        update_step(CPU, b);
        CPU->get_metrics(b, &tr->m[i]);
    }
    CPU->get_state(b, &tr->end);
    CPU->destroy(b);
}

static void traj_free(Trajectory *tr) {
    agent_state_free(&tr->start);
    agent_state_free(&tr->end);
}

/* ||(got - p0) - (ref - p0)|| / ||ref - p0|| */
static double displacement_error(const float *got, const float *ref, const float *p0, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)got[i] - ref[i], r = (double)ref[i] - p0[i];
        num += d * d;
        den += r * r;
    }
    return den > 0 ? sqrt(num / den) : (num > 0 ? INFINITY : 0.0);
}

typedef enum { CMP_ELEMENTWISE, CMP_DISPLACEMENT } CmpMode;

static void gpu_against(const FlameConfig *cg, int S, int D, const Trajectory *tr, CmpMode mode,
                        const char *tag) {
    bool tf32 = cg->backend.precision == PRECISION_TF32;
    FlameTol lt = tf32 ? TOL_UPDATE_LOSS_TF32 : TOL_UPDATE_LOSS;
    printf("  -- %s\n", tag);
    Backend *b = gpu_create(GPU, cg, S, D);
    int n = (int)(cg->update.replay_size < 900 ? cg->update.replay_size - 10 : 900);
    gpu_push_random(GPU, b, S, D, n);
    GPU->set_state(b, &tr->start);
    char nm[256];
    for (int i = 0; i < N_UPDATES; i++) {
        update_step(GPU, b);
        UpdateMetrics m;
        GPU->get_metrics(b, &m);
        const UpdateMetrics *r = &tr->m[i];
        snprintf(nm, sizeof nm, "%s update %d", tag, i);
        EXPECT_NEAR_Q(nm, m.critic_loss[0], r->critic_loss[0], lt.atol, lt.rtol);
        EXPECT_NEAR_Q(nm, m.critic_loss[1], r->critic_loss[1], lt.atol, lt.rtol);
        EXPECT_NEAR_Q(nm, m.q_mean, r->q_mean, lt.atol, lt.rtol);
        EXPECT_NEAR_Q(nm, m.target_mean, r->target_mean, lt.atol, lt.rtol);
        EXPECT_NEAR_Q(nm, m.entropy, r->entropy, 10 * lt.atol, lt.rtol);
        EXPECT_NEAR_Q(nm, m.alpha, r->alpha, lt.atol, lt.rtol);
        if (tr->actor[i]) {
            EXPECT_NEAR_Q(nm, m.actor_loss, r->actor_loss, lt.atol, lt.rtol);
            EXPECT_NEAR_Q(nm, m.fm_loss, r->fm_loss, lt.atol, lt.rtol);
            EXPECT_NEAR_Q(nm, m.qterm_loss, r->qterm_loss, lt.atol, lt.rtol);
        }
        if (cg->algo != ALGO_SAC) {
            EXPECT_NEAR_Q(nm, m.ess_mean, r->ess_mean, 10 * lt.atol, lt.rtol);
        }
        EXPECT(isfinite(m.critic_loss[0]) && isfinite(m.actor_loss));
    }
    AgentState got;
    agent_state_init(&got, cg, S, D);
    GPU->get_state(b, &got);
    EXPECT(got.updates == tr->end.updates && got.actor_steps == tr->end.actor_steps &&
           got.critic_steps == tr->end.critic_steps && got.alpha_steps == tr->end.alpha_steps);
    struct {
        const char *name;
        const float *g, *r, *p0;
        size_t n;
        bool policy;
    } arr[] = {
        {"policy", got.pol.params, tr->end.pol.params, tr->start.pol.params, got.pol.n, true},
        {"critic 1", got.q1.params, tr->end.q1.params, tr->start.q1.params, got.q1.n, false},
        {"critic 2", got.q2.params, tr->end.q2.params, tr->start.q2.params, got.q2.n, false},
        {"EMA policy", got.pol_ema, tr->end.pol_ema, tr->start.pol_ema, got.pol.n, true},
        {"target critic 1", got.q1_targ, tr->end.q1_targ, tr->start.q1_targ, got.q1.n, false},
        {"target critic 2", got.q2_targ, tr->end.q2_targ, tr->start.q2_targ, got.q2.n, false},
    };
    for (size_t k = 0; k < sizeof arr / sizeof arr[0]; k++) {
        snprintf(nm, sizeof nm, "%s: %s after %d updates", tag, arr[k].name, N_UPDATES);
        if (mode == CMP_ELEMENTWISE && arr[k].policy) {
            double e = displacement_error(arr[k].g, arr[k].r, arr[k].p0, arr[k].n);
            double lim = TOL_UPDATE_DISPLACEMENT_EPS * flame_tol_scale();
            printf("       %s: displacement error %.3g (limit %.3g)\n", nm, e, lim);
            EXPECT_MSG(e <= lim, "%s: displacement error %.3g", nm, e);
        } else if (mode == CMP_ELEMENTWISE) {
            EXPECT_CLOSE(nm, arr[k].g, arr[k].r, arr[k].n, TOL_UPDATE_PARAMS.atol,
                         TOL_UPDATE_PARAMS.rtol);
        } else {
            double e = displacement_error(arr[k].g, arr[k].r, arr[k].p0, arr[k].n);
            double lim = (tf32 ? TOL_UPDATE_DISPLACEMENT_TF32 : TOL_UPDATE_DISPLACEMENT) *
                         flame_tol_scale();
            printf("       %s: displacement error %.3g (limit %.3g)\n", nm, e, lim);
            EXPECT_MSG(e <= lim, "%s: displacement error %.3g", nm, e);
        }
    }
    snprintf(nm, sizeof nm, "%s: log alpha", tag);
    EXPECT_NEAR(nm, got.log_alpha, tr->end.log_alpha, 1e-5, 1e-4);
    if (cg->backend.graphs) {
        int g = backend_cuda_graph_count(b);
        printf("       %s: %d update graph(s) captured\n", tag, g);
        EXPECT_MSG(g >= 1, "%s: no update graph was captured", tag);
    } else {
        EXPECT(backend_cuda_graph_count(b) == 0);
    }
    agent_state_free(&got);
    GPU->destroy(b);
}

/* the checks above serve other tests too (test_update_fast_cuda.c) */
#ifndef FLAME_UPDATE_CHECKS_ONLY
static void run_algo(int algo, int compat, GpuSize size, bool full) {
    const GpuShape *sh = &GPU_SHAPES[size];
    FlameConfig cc;
    gpu_config(&cc, algo, compat, size, BACKEND_CPU, KERNELS_FUSED, tw_eps);
    Trajectory tr;
    cpu_trajectory(&cc, sh->S, sh->D, &tr);
    struct {
        int kernels, graphs, tf32;
        const char *what;
    } v[] = {
        {KERNELS_FUSED, 1, 0, "fused, graphs"},
        {KERNELS_CUBLAS, 1, 0, "cublas, graphs"},
        {KERNELS_FUSED, 0, 0, "fused, eager"},
        {KERNELS_CUBLAS, 0, 0, "cublas, eager"},
        {KERNELS_CUBLAS, 1, 1, "cublas tf32, graphs"},
    };
    int nv = full ? 5 : 3;
    for (int i = 0; i < nv; i++) {
        FlameConfig cg;
        gpu_config(&cg, algo, compat, size, BACKEND_CUDA, v[i].kernels, tw_eps);
        cg.backend.graphs = v[i].graphs;
        cg.backend.precision = v[i].tf32 ? PRECISION_TF32 : PRECISION_FP32;
        char tag[256];
        snprintf(tag, sizeof tag, "%s %s %s, %s", config_algo_name(algo),
                 compat ? "consistent" : "reference", sh->name, v[i].what);
        gpu_against(&cg, sh->S, sh->D, &tr, v[i].tf32 ? CMP_DISPLACEMENT : CMP_ELEMENTWISE, tag);
    }
    traj_free(&tr);
}

FLAME_TEST(test_update_small) {
    int algos[3] = {ALGO_FLAME_M, ALGO_FLAME_R, ALGO_SAC};
    for (int a = 0; a < 3; a++) {
        for (int c = 0; c < 2; c++) {
            run_algo(algos[a], c, SIZE_ODD, true);
        }
    }
    run_algo(ALGO_FLAME_M, COMPAT_REFERENCE, SIZE_WIDE, false);
}

FLAME_TEST(test_update_real_sizes) {
    if (gpu_small_only()) {
        printf("       (FLAME_GPU_TEST_SMALL=1: real sizes skipped)\n");
        return;
    }
    run_algo(ALGO_FLAME_M, COMPAT_REFERENCE, SIZE_HALFCHEETAH, true);
    run_algo(ALGO_FLAME_M, COMPAT_CONSISTENT, SIZE_HALFCHEETAH, false);
    run_algo(ALGO_FLAME_R, COMPAT_REFERENCE, SIZE_HALFCHEETAH, false);
    run_algo(ALGO_SAC, COMPAT_REFERENCE, SIZE_HALFCHEETAH, false);
    run_algo(ALGO_FLAME_M, COMPAT_REFERENCE, SIZE_HUMANOID, false);
}

/* the default Adam eps: parameters by displacement, losses every update */
FLAME_TEST(test_update_default_eps) {
    GpuSize size = gpu_small_only() ? SIZE_ODD : SIZE_HALFCHEETAH;
    const GpuShape *sh = &GPU_SHAPES[size];
    FlameConfig cc, cg;
    gpu_config(&cc, ALGO_FLAME_M, COMPAT_REFERENCE, size, BACKEND_CPU, KERNELS_FUSED, NULL);
    gpu_config(&cg, ALGO_FLAME_M, COMPAT_REFERENCE, size, BACKEND_CUDA, KERNELS_FUSED, NULL);
    cg.backend.graphs = true;
    Trajectory tr;
    cpu_trajectory(&cc, sh->S, sh->D, &tr);
    gpu_against(&cg, sh->S, sh->D, &tr, CMP_DISPLACEMENT, "flame-m default eps, fused, graphs");
    traj_free(&tr);
}

/* set_state/get_state and set_replay/get_replay are lossless; the device ring holds what the CPU
   ring holds after the same pushes */
FLAME_TEST(test_state_and_replay_round_trip) {
    int algos[3] = {ALGO_FLAME_M, ALGO_FLAME_R, ALGO_SAC};
    const GpuShape *sh = &GPU_SHAPES[SIZE_ODD];
    for (int a = 0; a < 3; a++) {
        FlameConfig cc, cg;
        gpu_config(&cc, algos[a], COMPAT_REFERENCE, SIZE_ODD, BACKEND_CPU, KERNELS_FUSED, NULL);
        gpu_config(&cg, algos[a], COMPAT_REFERENCE, SIZE_ODD, BACKEND_CUDA, KERNELS_FUSED, NULL);
        Backend *c = gpu_create(CPU, &cc, sh->S, sh->D), *g = gpu_create(GPU, &cg, sh->S, sh->D);
        /* more transitions than the capacity: the ring wraps */
        int n = (int)cc.update.replay_size + 57;
        gpu_push_random(CPU, c, sh->S, sh->D, n);
        gpu_push_random(GPU, g, sh->S, sh->D, n);
        update_step(CPU, c);
        update_step(CPU, c);
        AgentState s1, s2;
        agent_state_init(&s1, &cc, sh->S, sh->D);
        agent_state_init(&s2, &cc, sh->S, sh->D);
        CPU->get_state(c, &s1);
        /* fresh CUDA state differs from the trained one, then equals it bit for bit */
        GPU->get_state(g, &s2);
        char what[64] = "";
        EXPECT(!agent_state_equal(&s1, &s2, what, sizeof what));
        GPU->set_state(g, &s1);
        GPU->get_state(g, &s2);
        EXPECT_MSG(agent_state_equal(&s1, &s2, what, sizeof what), "state round trip: %s", what);
        Replay rc, rg;
        replay_init(&rc, cc.update.replay_size, sh->S, sh->D);
        replay_init(&rg, cc.update.replay_size, sh->S, sh->D);
        CPU->get_replay(c, &rc);
        GPU->get_replay(g, &rg);
        size_t cap = (size_t)rc.capacity, S = (size_t)sh->S, D = (size_t)sh->D;
        EXPECT(rc.size == rg.size && rc.head == rg.head && rg.size == rc.capacity);
        EXPECT(!memcmp(rc.obs, rg.obs, cap * S * sizeof(float)));
        EXPECT(!memcmp(rc.next_obs, rg.next_obs, cap * S * sizeof(float)));
        EXPECT(!memcmp(rc.act, rg.act, cap * D * sizeof(float)));
        EXPECT(!memcmp(rc.rew, rg.rew, cap * sizeof(float)));
        EXPECT(!memcmp(rc.done, rg.done, cap));
        /* into a fresh device ring and back */
        Backend *g2 = gpu_create(GPU, &cg, sh->S, sh->D);
        EXPECT(GPU->replay_size(g2) == 0);
        GPU->set_replay(g2, &rc);
        EXPECT(GPU->replay_size(g2) == rc.size);
        Replay r2;
        replay_init(&r2, cc.update.replay_size, sh->S, sh->D);
        GPU->get_replay(g2, &r2);
        EXPECT(r2.size == rc.size && r2.head == rc.head);
        EXPECT(!memcmp(rc.obs, r2.obs, cap * S * sizeof(float)));
        EXPECT(!memcmp(rc.act, r2.act, cap * D * sizeof(float)));
        EXPECT(!memcmp(rc.done, r2.done, cap));
        replay_free(&rc);
        replay_free(&rg);
        replay_free(&r2);
        agent_state_free(&s1);
        agent_state_free(&s2);
        CPU->destroy(c);
        GPU->destroy(g);
        GPU->destroy(g2);
    }
}

/* CPU -> checkpoint -> CUDA (3 updates) -> checkpoint -> CPU (3 updates) equals 6 CPU updates */
FLAME_TEST(test_checkpoint_interchange) {
    const GpuShape *sh = &GPU_SHAPES[SIZE_ODD];
    FlameConfig cc, cg;
    gpu_config(&cc, ALGO_FLAME_M, COMPAT_REFERENCE, SIZE_ODD, BACKEND_CPU, KERNELS_FUSED, tw_eps);
    gpu_config(&cg, ALGO_FLAME_M, COMPAT_REFERENCE, SIZE_ODD, BACKEND_CUDA, KERNELS_FUSED, tw_eps);
    cg.backend.graphs = true;
    int S = sh->S, D = sh->D;
    char p1[] = "/tmp/flame_ckpt_a_XXXXXX", p2[] = "/tmp/flame_ckpt_b_XXXXXX";
    close(mkstemp(p1));
    close(mkstemp(p2));
    TrainCounters tc;
    memset(&tc, 0, sizeof tc);

    /* reference: 2 + 6 updates on the CPU */
    Backend *ref = gpu_create(CPU, &cc, S, D);
    gpu_push_random(CPU, ref, S, D, 250);
    for (int i = 0; i < 8; i++) {
        update_step(CPU, ref);
    }
    AgentState want;
    agent_state_init(&want, &cc, S, D);
    CPU->get_state(ref, &want);

    /* 2 CPU updates, checkpoint with the replay buffer */
    Backend *c = gpu_create(CPU, &cc, S, D);
    gpu_push_random(CPU, c, S, D, 250);
    update_step(CPU, c);
    update_step(CPU, c);
    AgentState st;
    agent_state_init(&st, &cc, S, D);
    CPU->get_state(c, &st);
    Replay rp;
    replay_init(&rp, cc.update.replay_size, S, D);
    CPU->get_replay(c, &rp);
    EXPECT(ckpt_write(p1, &cc, &st, &tc, &rp, NULL, 0, "cpu") == FLAME_OK);

    /* into the CUDA backend: the loaded state is the written one, bit for bit */
    Checkpoint ck;
    EXPECT(ckpt_read(p1, &ck, true) == FLAME_OK);
    Backend *g = gpu_create(GPU, &cg, S, D);
    GPU->set_state(g, &ck.st);
    GPU->set_replay(g, &ck.replay);
    AgentState chk;
    agent_state_init(&chk, &cc, S, D);
    GPU->get_state(g, &chk);
    char what[64] = "";
    EXPECT_MSG(agent_state_equal(&chk, &st, what, sizeof what), "CPU -> CUDA: %s", what);
    for (int i = 0; i < 3; i++) {
        update_step(GPU, g);
    }
    GPU->get_state(g, &chk);
    Replay rg;
    replay_init(&rg, cc.update.replay_size, S, D);
    GPU->get_replay(g, &rg);
    EXPECT(ckpt_write(p2, &cg, &chk, &tc, &rg, NULL, 0, "cuda") == FLAME_OK);
    ckpt_free(&ck);

    /* back to a fresh CPU backend for the last 3 updates */
    EXPECT(ckpt_read(p2, &ck, true) == FLAME_OK);
    Backend *c2 = gpu_create(CPU, &cc, S, D);
    CPU->set_state(c2, &ck.st);
    CPU->set_replay(c2, &ck.replay);
    AgentState back;
    agent_state_init(&back, &cc, S, D);
    CPU->get_state(c2, &back);
    EXPECT_MSG(agent_state_equal(&back, &chk, what, sizeof what), "CUDA -> CPU: %s", what);
    for (int i = 0; i < 3; i++) {
        update_step(CPU, c2);
    }
    CPU->get_state(c2, &back);
    EXPECT(back.updates == want.updates && back.critic_steps == want.critic_steps);
    double e = displacement_error(back.pol.params, want.pol.params, st.pol.params, want.pol.n);
    printf("       policy after CPU/CUDA/CPU: displacement error %.3g\n", e);
    EXPECT_MSG(e <= TOL_UPDATE_DISPLACEMENT_EPS * flame_tol_scale(),
               "policy after CPU/CUDA/CPU: displacement error %.3g", e);
    EXPECT_CLOSE("critic 1 after CPU/CUDA/CPU", back.q1.params, want.q1.params, want.q1.n,
                 TOL_UPDATE_PARAMS.atol, TOL_UPDATE_PARAMS.rtol);
    EXPECT_CLOSE("target critic 2 after CPU/CUDA/CPU", back.q2_targ, want.q2_targ, want.q2.n,
                 TOL_UPDATE_PARAMS.atol, TOL_UPDATE_PARAMS.rtol);
    ckpt_free(&ck);
    replay_free(&rp);
    replay_free(&rg);
    agent_state_free(&want);
    agent_state_free(&st);
    agent_state_free(&chk);
    agent_state_free(&back);
    CPU->destroy(ref);
    CPU->destroy(c);
    CPU->destroy(c2);
    GPU->destroy(g);
    unlink(p1);
    unlink(p2);
}

int main(void) {
    FLAME_REQUIRE_GPU();
    RUN_TEST(test_state_and_replay_round_trip);
    RUN_TEST(test_checkpoint_interchange);
    RUN_TEST(test_update_small);
    RUN_TEST(test_update_default_eps);
    RUN_TEST(test_update_real_sizes);
    return flame_test_report();
}
#endif
