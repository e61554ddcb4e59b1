/*
 * test_update_cuda.c: whole updates on the CUDA backend against the CPU reference (design.md §7
 * level 3): 10 updates from the same state and replay contents, losses compared at every update
 * and every parameter array at the end, for FLAME-M (both compat modes), FLAME-R and SAC, with
 * fused and cuBLAS kernels, with update graphs and eagerly, fp32 and TF32; plus the state and
 * replay round trips (bitwise) and checkpoint interchange CPU -> CUDA -> CPU through ckpt files
 * for all three algorithms.
 *
 * Every GPU update is also audited on its own: the state before and after it is read back and
 * the optimiser steps it took are replayed on the host from the GPU's own gradients and moments
 * (Adam for both critics, the policy and log alpha, Polyak for the targets), to TOL_ADAM. Adam's
 * step counts and the actor learning rate are device values inside captured graphs: an
 * off-by-one count moves a parameter by ~3e-7, far below the trajectory tolerances but 10-1000x
 * TOL_ADAM, and each run asserts that the replays with t - 1, t + 1 and the neighbouring learning
 * rates would have failed. The short-delay cases put alpha steps inside the compared updates,
 * decay the actor learning rate over them and use Adam betas that make the bias correction
 * depend strongly on t.
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

/* ------------------------------------------------------------------ the audit of one update */
typedef struct {
    double power; /* the smallest allowance use of a replay with a wrong step count or learning
                     rate (> 1: such an error is caught) */
    int steps;    /* optimiser steps audited */
} Audit;

/* largest |got - ref| / (atol + rtol |ref|), the tolerance scale applied; infinite on a
   non-finite value */
static double allowance_used(const float *got, const float *ref, size_t n, FlameTol tol) {
    double s = flame_tol_scale(), worst = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(got[i]) || !isfinite(ref[i])) {
            return INFINITY;
        }
        double allow = s * (tol.atol + tol.rtol * fabs((double)ref[i]));
        worst = fmax(worst, fabs((double)got[i] - ref[i]) / allow);
    }
    return worst;
}

/* `steps` Adam steps from (p0, m0, v0) with the gradient g, the first with step count t, into
   (p, m, v): the CPU's adam_step */
static void adam_replay(const ParamBlob *b0, const float *g, double lr, const FlameConfig *cfg,
                        int64_t t, int steps, float *p, float *m, float *v) {
    size_t n = b0->n;
    memcpy(p, b0->params, n * sizeof(float));
    memcpy(m, b0->m, n * sizeof(float));
    memcpy(v, b0->v, n * sizeof(float));
    for (int k = 0; k < steps; k++) {
        adam_step(p, g, m, v, n, lr, cfg->optim.beta1, cfg->optim.beta2, cfg->optim.eps, t + k);
    }
}

/* One network's Adam step(s): params, m, v after the update against the host replay from the
   state before it, with the GPU's gradient; the replays with step count t - 1 and t + 1 and with
   each learning rate of lr_alt are measured against the right one (a->power). */
static void audit_adam(Audit *a, const char *tag, const char *net, const ParamBlob *b0,
                       const ParamBlob *b1, double lr, const double *lr_alt, int n_lr_alt,
                       const FlameConfig *cfg, int64_t t, int steps) {
    size_t n = b0->n;
    float *p = (float *)malloc(3 * n * sizeof(float)), *m = p + n, *v = m + n;
    float *q = (float *)malloc(3 * n * sizeof(float));
    adam_replay(b0, b1->grads, lr, cfg, t, steps, p, m, v);
    char nm[400];
    snprintf(nm, sizeof nm, "%s: %s Adam step %lld (replayed on the host)", tag, net, (long long)t);
    EXPECT_CLOSE_Q(nm, b1->params, p, n, TOL_ADAM.atol, TOL_ADAM.rtol);
    EXPECT_CLOSE_Q(nm, b1->m, m, n, TOL_ADAM.atol, TOL_ADAM.rtol);
    EXPECT_CLOSE_Q(nm, b1->v, v, n, TOL_ADAM.atol, TOL_ADAM.rtol);
    a->steps += steps;
    for (int k = -1; k <= 1 + n_lr_alt; k++) {
        if (k == 0 || (k == -1 && t <= 1)) {
            continue;
        }
        if (k <= 1) {
            adam_replay(b0, b1->grads, lr, cfg, t + k, steps, q, q + n, q + 2 * n);
        } else {
            adam_replay(b0, b1->grads, lr_alt[k - 2], cfg, t, steps, q, q + n, q + 2 * n);
        }
        a->power = fmin(a->power, allowance_used(q, p, n, TOL_ADAM));
    }
    free(p);
    free(q);
}

/* the CPU's float arithmetic of one Adam step of log alpha, from its moments after the step */
static float alpha_replay(float la0, float m1, float v1, const FlameConfig *cfg, int64_t t) {
    float bc1 = (float)(1.0 - pow(cfg->optim.beta1, (double)t));
    float bc2 = (float)(1.0 - pow(cfg->optim.beta2, (double)t));
    float flr = (float)cfg->alpha.lr, feps = (float)cfg->optim.eps;
    float mhat = m1 / bc1, vhat = v1 / bc2;
    return la0 - flr * mhat / (sqrtf(vhat) + feps);
}

static void expect_unchanged(const char *tag, const char *what, const float *x0, const float *x1,
                             size_t n) {
    EXPECT_MSG(!memcmp(x0, x1, n * sizeof(float)), "%s: %s changed on an update without its step",
               tag, what);
}

/* Everything update u did to the optimiser state, from the GPU's states s0 (before) and s1
   (after): which steps ran (and no other), with which step counts and learning rates. */
static void audit_update(Audit *a, const FlameConfig *cfg, const char *tag, const AgentState *s0,
                         const AgentState *s1, const UpdateCtx *u) {
    int csteps = cfg->quirks.critic_double_step == TRI_YES ? 2 : 1;
    EXPECT(s1->critic_steps == s0->critic_steps + csteps);
    EXPECT(s1->actor_steps == s0->actor_steps + (u->do_actor ? 1 : 0));
    EXPECT(s1->alpha_steps == s0->alpha_steps + (u->do_alpha ? 1 : 0));
    audit_adam(a, tag, "critic 1", &s0->q1, &s1->q1, cfg->optim.critic_lr, NULL, 0, cfg,
               s0->critic_steps + 1, csteps);
    audit_adam(a, tag, "critic 2", &s0->q2, &s1->q2, cfg->optim.critic_lr, NULL, 0, cfg,
               s0->critic_steps + 1, csteps);
    size_t np = s0->pol.n, nq = s0->q1.n;
    if (u->do_actor) {
        /* the learning rates of the neighbouring actor steps (a rate frozen into a graph) */
        double alt[2];
        int na = 0;
        for (int k = -1; k <= 1; k += 2) {
            double r = adam_lr_linear(cfg->optim.actor_lr, cfg->optim.actor_lr_end,
                                      cfg->optim.actor_lr_decay_begin,
                                      cfg->optim.actor_lr_decay_end, s0->actor_steps + k);
            if (s0->actor_steps + k >= 0 && r != u->actor_lr) {
                alt[na++] = r;
            }
        }
        audit_adam(a, tag, "policy", &s0->pol, &s1->pol, u->actor_lr, alt, na, cfg,
                   s0->actor_steps + 1, 1);
    } else {
        expect_unchanged(tag, "policy", s0->pol.params, s1->pol.params, np);
        expect_unchanged(tag, "policy Adam m", s0->pol.m, s1->pol.m, np);
        expect_unchanged(tag, "policy Adam v", s0->pol.v, s1->pol.v, np);
    }
    if (u->do_alpha) {
        int64_t t = s0->alpha_steps + 1;
        float want = alpha_replay(s0->log_alpha, s1->alpha_m, s1->alpha_v, cfg, t);
        char nm[400];
        snprintf(nm, sizeof nm, "%s: log alpha Adam step %lld (replayed on the host)", tag,
                 (long long)t);
        EXPECT_NEAR_Q(nm, s1->log_alpha, want, TOL_ADAM.atol, TOL_ADAM.rtol);
        a->steps++;
        for (int k = -1; k <= 1; k += 2) {
            if (t + k >= 1) {
                float alt = alpha_replay(s0->log_alpha, s1->alpha_m, s1->alpha_v, cfg, t + k);
                a->power = fmin(a->power, allowance_used(&alt, &want, 1, TOL_ADAM));
            }
        }
    } else {
        float x0[3] = {s0->log_alpha, s0->alpha_m, s0->alpha_v};
        float x1[3] = {s1->log_alpha, s1->alpha_m, s1->alpha_v};
        expect_unchanged(tag, "log alpha and its Adam moments", x0, x1, 3);
    }
    struct {
        const char *name;
        const float *t0, *t1, *src;
        size_t n;
    } tg[3] = {{"target critic 1", s0->q1_targ, s1->q1_targ, s1->q1.params, nq},
               {"target critic 2", s0->q2_targ, s1->q2_targ, s1->q2.params, nq},
               {"EMA policy", s0->pol_ema, s1->pol_ema, s1->pol.params, np}};
    for (int k = 0; k < 3; k++) {
        if (u->do_target) {
            float *want = (float *)malloc(tg[k].n * sizeof(float));
            memcpy(want, tg[k].t0, tg[k].n * sizeof(float));
            polyak_update(want, tg[k].src, tg[k].n, cfg->update.tau);
            char nm[400];
            snprintf(nm, sizeof nm, "%s: %s Polyak step (replayed on the host)", tag, tg[k].name);
            EXPECT_CLOSE_Q(nm, tg[k].t1, want, tg[k].n, TOL_ADAM.atol, TOL_ADAM.rtol);
            free(want);
        } else {
            expect_unchanged(tag, tg[k].name, tg[k].t0, tg[k].t1, tg[k].n);
        }
    }
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
    AgentState s0, s1;
    agent_state_init(&s0, cg, S, D);
    agent_state_init(&s1, cg, S, D);
    GPU->get_state(b, &s0);
    Audit au = {INFINITY, 0};
    char nm[256];
    for (int i = 0; i < N_UPDATES; i++) {
        UpdateCtx u = update_context(cg, &backend_base(b)->counters);
        EXPECT(u.do_actor == tr->actor[i]);
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
        GPU->get_state(b, &s1);
        audit_update(&au, cg, nm, &s0, &s1, &u);
        AgentState tmp = s0;
        s0 = s1;
        s1 = tmp;
    }
    printf("       %s: %d optimiser steps replayed on the host; a step count off by one or a "
           "neighbouring learning rate would use %.3g x the allowance\n",
           tag, au.steps, au.power);
    EXPECT_MSG(au.power > 1.0,
               "%s: these updates cannot tell a wrong Adam step count (%.3g x the allowance)", tag,
               au.power);
    const AgentState *got = &s0; /* the state after the last update */
    EXPECT(got->updates == tr->end.updates && got->actor_steps == tr->end.actor_steps &&
           got->critic_steps == tr->end.critic_steps && got->alpha_steps == tr->end.alpha_steps);
    struct {
        const char *name;
        const float *g, *r, *p0;
        size_t n;
        bool policy;
    } arr[] = {
        {"policy", got->pol.params, tr->end.pol.params, tr->start.pol.params, got->pol.n, true},
        {"critic 1", got->q1.params, tr->end.q1.params, tr->start.q1.params, got->q1.n, false},
        {"critic 2", got->q2.params, tr->end.q2.params, tr->start.q2.params, got->q2.n, false},
        {"EMA policy", got->pol_ema, tr->end.pol_ema, tr->start.pol_ema, got->pol.n, true},
        {"target critic 1", got->q1_targ, tr->end.q1_targ, tr->start.q1_targ, got->q1.n, false},
        {"target critic 2", got->q2_targ, tr->end.q2_targ, tr->start.q2_targ, got->q2.n, false},
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
    EXPECT_NEAR(nm, got->log_alpha, tr->end.log_alpha, 1e-5, 1e-4);
    if (cg->backend.graphs) {
        int g = backend_cuda_graph_count(b);
        printf("       %s: %d update graph(s) captured\n", tag, g);
        EXPECT_MSG(g >= 1, "%s: no update graph was captured", tag);
    } else {
        EXPECT(backend_cuda_graph_count(b) == 0);
    }
    agent_state_free(&s0);
    agent_state_free(&s1);
    GPU->destroy(b);
}

/* Short delays: alpha steps inside the compared updates (FLAME's default delay of 100 puts none
   there), every 3rd update (graph keys with and without the alpha step, captured and replayed) or
   every update; the actor learning rate decays over the compared actor steps, so a rate frozen
   into a graph differs; Adam betas (0.5, 0.99999) make the bias correction ~ sqrt(t), so a step
   count off by one moves every step by 1/(2t) (2-25 % here; the default betas' corrections
   cancel to ~0.1 % near t = 11) and shows in the trajectories too, not only in the audit. */
static void tw_short_delays(FlameConfig *c, int alpha_delay) {
    tw_eps(c);
    c->alpha.delay = alpha_delay;
    c->optim.beta1 = 0.5;
    c->optim.beta2 = 0.99999;
    c->optim.actor_lr_decay_begin = 0;
    c->optim.actor_lr_decay_end = 8;
}
static void tw_alpha_every_3(FlameConfig *c) {
    tw_short_delays(c, 3);
}
static void tw_alpha_every_update(FlameConfig *c) {
    tw_short_delays(c, 1);
}

/* the checks above serve other tests too (test_update_fast_cuda.c) */
#ifndef FLAME_UPDATE_CHECKS_ONLY
/* the GPU variants compared with one CPU trajectory */
enum {
    V_FUSED_GRAPHS = 1,
    V_CUBLAS_GRAPHS = 2,
    V_FUSED_EAGER = 4,
    V_CUBLAS_EAGER = 8,
    V_CUBLAS_TF32 = 16,
    V_ALL = 31,
    V_FIRST3 = 7,
};

static void run_algo_with(int algo, int compat, GpuSize size, GpuTweak tweak, int variants,
                          const char *extra) {
    const GpuShape *sh = &GPU_SHAPES[size];
    FlameConfig cc;
    gpu_config(&cc, algo, compat, size, BACKEND_CPU, KERNELS_FUSED, tweak);
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
    for (int i = 0; i < 5; i++) {
        if (!(variants & (1 << i))) {
            continue;
        }
        FlameConfig cg;
        gpu_config(&cg, algo, compat, size, BACKEND_CUDA, v[i].kernels, tweak);
        cg.backend.graphs = v[i].graphs;
        cg.backend.precision = v[i].tf32 ? PRECISION_TF32 : PRECISION_FP32;
        char tag[256];
        snprintf(tag, sizeof tag, "%s %s %s%s, %s", config_algo_name(algo),
                 compat ? "consistent" : "reference", sh->name, extra ? extra : "", v[i].what);
        gpu_against(&cg, sh->S, sh->D, &tr, v[i].tf32 ? CMP_DISPLACEMENT : CMP_ELEMENTWISE, tag);
    }
    traj_free(&tr);
}

static void run_algo(int algo, int compat, GpuSize size, int variants) {
    run_algo_with(algo, compat, size, tw_eps, variants, NULL);
}

FLAME_TEST(test_update_small) {
    if (gpu_runs_min_only()) { /* compute-sanitizer: graph capture and replay */
        run_algo(ALGO_FLAME_M, COMPAT_REFERENCE, SIZE_ODD, V_FUSED_GRAPHS);
        return;
    }
    if (!gpu_runs_small()) {
        return;
    }
    int algos[3] = {ALGO_FLAME_M, ALGO_FLAME_R, ALGO_SAC};
    for (int a = 0; a < 3; a++) {
        for (int c = 0; c < 2; c++) {
            run_algo(algos[a], c, SIZE_ODD, V_ALL);
        }
    }
    run_algo(ALGO_FLAME_M, COMPAT_REFERENCE, SIZE_WIDE, V_FIRST3);
}

/* the alpha step and Adam's step counts inside captured graphs */
FLAME_TEST(test_update_short_delays) {
    if (gpu_runs_min_only()) {
        run_algo_with(ALGO_FLAME_R, COMPAT_REFERENCE, SIZE_ODD, tw_alpha_every_update,
                      V_FUSED_GRAPHS, " alpha every update");
        return;
    }
    if (!gpu_runs_small()) {
        return;
    }
    run_algo_with(ALGO_FLAME_M, COMPAT_REFERENCE, SIZE_ODD, tw_alpha_every_3, V_FIRST3,
                  " alpha every 3rd");
    run_algo_with(ALGO_FLAME_M, COMPAT_CONSISTENT, SIZE_ODD, tw_alpha_every_update,
                  V_FUSED_GRAPHS, " alpha every update");
    run_algo_with(ALGO_FLAME_R, COMPAT_REFERENCE, SIZE_ODD, tw_alpha_every_update, V_FIRST3,
                  " alpha every update");
    run_algo_with(ALGO_SAC, COMPAT_REFERENCE, SIZE_ODD, tw_alpha_every_3, V_FUSED_GRAPHS,
                  " alpha every 3rd");
}

FLAME_TEST(test_update_real_sizes) {
    if (!gpu_runs_real()) {
        return;
    }
    run_algo(ALGO_FLAME_M, COMPAT_REFERENCE, SIZE_HALFCHEETAH, V_ALL);
    run_algo(ALGO_FLAME_M, COMPAT_CONSISTENT, SIZE_HALFCHEETAH, V_FIRST3);
    run_algo(ALGO_FLAME_R, COMPAT_REFERENCE, SIZE_HALFCHEETAH, V_FIRST3);
    run_algo(ALGO_SAC, COMPAT_REFERENCE, SIZE_HALFCHEETAH, V_FIRST3);
    run_algo(ALGO_FLAME_M, COMPAT_REFERENCE, SIZE_HUMANOID, V_FIRST3);
    run_algo_with(ALGO_FLAME_M, COMPAT_REFERENCE, SIZE_HALFCHEETAH, tw_alpha_every_3,
                  V_FUSED_GRAPHS, " alpha every 3rd");
}

/* the default Adam eps: parameters by displacement, losses every update */
FLAME_TEST(test_update_default_eps) {
    if (gpu_runs_min_only()) {
        return;
    }
    int sizes[2] = {SIZE_ODD, SIZE_HALFCHEETAH};
    for (int k = 0; k < 2; k++) {
        if ((k == 0 && !gpu_runs_small()) || (k == 1 && !gpu_runs_real())) {
            continue;
        }
        GpuSize size = (GpuSize)sizes[k];
        const GpuShape *sh = &GPU_SHAPES[size];
        FlameConfig cc, cg;
        gpu_config(&cc, ALGO_FLAME_M, COMPAT_REFERENCE, size, BACKEND_CPU, KERNELS_FUSED, NULL);
        gpu_config(&cg, ALGO_FLAME_M, COMPAT_REFERENCE, size, BACKEND_CUDA, KERNELS_FUSED, NULL);
        cg.backend.graphs = true;
        Trajectory tr;
        cpu_trajectory(&cc, sh->S, sh->D, &tr);
        char tag[256];
        snprintf(tag, sizeof tag, "flame-m default eps %s, fused, graphs", sh->name);
        gpu_against(&cg, sh->S, sh->D, &tr, CMP_DISPLACEMENT, tag);
        traj_free(&tr);
    }
}

/* set_state/get_state and set_replay/get_replay are lossless; the device ring holds what the CPU
   ring holds after the same pushes */
FLAME_TEST(test_state_and_replay_round_trip) {
    if (!gpu_runs_small()) {
        return;
    }
    int algos[3] = {ALGO_FLAME_M, ALGO_FLAME_R, ALGO_SAC};
    const GpuShape *sh = &GPU_SHAPES[SIZE_ODD];
    int n_algos = gpu_runs_min_only() ? 1 : 3; /* the ring does not depend on the algorithm */
    for (int a = 0; a < n_algos; a++) {
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

/* CPU (2 updates) -> checkpoint -> CUDA (4 updates, graphs captured from the third) -> checkpoint
   -> CPU (2 updates) equals 8 CPU updates. Both hand-overs come before an actor update
   (policy_delay 2): SAC's alpha step on an update without an actor step uses the
   log-probabilities of the last actor step, which a checkpoint does not hold, so a hand-over
   before such an update would differ on the CPU alone. */
static void checkpoint_interchange(int algo) {
    const GpuShape *sh = &GPU_SHAPES[SIZE_ODD];
    const char *an = config_algo_name(algo);
    printf("  -- %s %s\n", an, sh->name);
    FlameConfig cc, cg;
    gpu_config(&cc, algo, COMPAT_REFERENCE, SIZE_ODD, BACKEND_CPU, KERNELS_FUSED, tw_eps);
    gpu_config(&cg, algo, COMPAT_REFERENCE, SIZE_ODD, BACKEND_CUDA, KERNELS_FUSED, tw_eps);
    cg.backend.graphs = true;
    int S = sh->S, D = sh->D;
    char p1[] = "/tmp/flame_ckpt_a_XXXXXX", p2[] = "/tmp/flame_ckpt_b_XXXXXX";
    close(mkstemp(p1));
    close(mkstemp(p2));
    TrainCounters tc;
    memset(&tc, 0, sizeof tc);

    /* reference: 8 updates on the CPU */
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
    EXPECT_MSG(agent_state_equal(&chk, &st, what, sizeof what), "%s CPU -> CUDA: %s", an, what);
    for (int i = 0; i < 4; i++) {
        update_step(GPU, g);
    }
    EXPECT_MSG(backend_cuda_graph_count(g) >= 1, "%s: no update graph was captured", an);
    GPU->get_state(g, &chk);
    Replay rg;
    replay_init(&rg, cc.update.replay_size, S, D);
    GPU->get_replay(g, &rg);
    EXPECT(ckpt_write(p2, &cg, &chk, &tc, &rg, NULL, 0, "cuda") == FLAME_OK);
    ckpt_free(&ck);

    /* back to a fresh CPU backend for the last 2 updates */
    EXPECT(ckpt_read(p2, &ck, true) == FLAME_OK);
    Backend *c2 = gpu_create(CPU, &cc, S, D);
    CPU->set_state(c2, &ck.st);
    CPU->set_replay(c2, &ck.replay);
    AgentState back;
    agent_state_init(&back, &cc, S, D);
    CPU->get_state(c2, &back);
    EXPECT_MSG(agent_state_equal(&back, &chk, what, sizeof what), "%s CUDA -> CPU: %s", an, what);
    for (int i = 0; i < 2; i++) {
        update_step(CPU, c2);
    }
    CPU->get_state(c2, &back);
    EXPECT(back.updates == want.updates && back.critic_steps == want.critic_steps &&
           back.actor_steps == want.actor_steps && back.alpha_steps == want.alpha_steps);
    double e = displacement_error(back.pol.params, want.pol.params, st.pol.params, want.pol.n);
    printf("       %s policy after CPU/CUDA/CPU: displacement error %.3g\n", an, e);
    EXPECT_MSG(e <= TOL_UPDATE_DISPLACEMENT_EPS * flame_tol_scale(),
               "%s policy after CPU/CUDA/CPU: displacement error %.3g", an, e);
    char nm[128];
    snprintf(nm, sizeof nm, "%s critic 1 after CPU/CUDA/CPU", an);
    EXPECT_CLOSE(nm, back.q1.params, want.q1.params, want.q1.n, TOL_UPDATE_PARAMS.atol,
                 TOL_UPDATE_PARAMS.rtol);
    snprintf(nm, sizeof nm, "%s target critic 2 after CPU/CUDA/CPU", an);
    EXPECT_CLOSE(nm, back.q2_targ, want.q2_targ, want.q2.n, TOL_UPDATE_PARAMS.atol,
                 TOL_UPDATE_PARAMS.rtol);
    snprintf(nm, sizeof nm, "%s log alpha after CPU/CUDA/CPU", an);
    EXPECT_NEAR(nm, back.log_alpha, want.log_alpha, 1e-5, 1e-4);
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

FLAME_TEST(test_checkpoint_interchange) {
    if (!gpu_runs_small() || gpu_runs_min_only()) {
        return;
    }
    checkpoint_interchange(ALGO_FLAME_M);
    checkpoint_interchange(ALGO_FLAME_R);
    checkpoint_interchange(ALGO_SAC);
}

int main(void) {
    FLAME_REQUIRE_GPU();
    RUN_TEST(test_state_and_replay_round_trip);
    RUN_TEST(test_checkpoint_interchange);
    RUN_TEST(test_update_small);
    RUN_TEST(test_update_short_delays);
    RUN_TEST(test_update_default_eps);
    RUN_TEST(test_update_real_sizes);
    return flame_test_report();
}
#endif
