/*
 * test_stages_cuda.c: every stage op of the CUDA backend against the CPU reference on the same
 * state, the same minibatch and the same Philox draws (design.md §7 level 2): act, replay_sample,
 * critic_target, critic_step (both phases), qweight, policy_step, alpha_step, polyak, at the real
 * sizes of the configs (HalfCheetah, Humanoid) and at awkward ones (B, K, widths that are not
 * multiples of any block size; widths over 256 that take the cuBLAS fallback of the fused path),
 * for FLAME-M (both compat modes, every entropy estimator, Gaussian and Rademacher multi-probe
 * traces, the exact estimator at D = 3, 6 and 17, the B*K-row flow loss), FLAME-R and SAC, with the
 * fused and the cuBLAS kernels, fp32 and TF32 (cuBLAS). The chunked paths run too: best-of-N over
 * more particles than one work chunk (critic target and act), candidate scoring with B*K over
 * 32,768 rows, the B*K-row flow loss over several chunks, and act over more states than one chunk
 * after its buffers grew.
 *
 * Each op's inputs on the GPU are set to the CPU's before it runs (state via set_state,
 * intermediates via backend_cuda_debug_set), so each comparison measures one op. Parameters after
 * an Adam step are checked against Adam applied on the host to the GPU's own gradient (Adam's
 * first steps are sign(g) * lr, so comparing them to the CPU's would amplify the gradients'
 * rounding differences); the gradients themselves are compared to the CPU's.
 */
#include "gpu_common.h"

static const BackendOps *CPU = &backend_cpu_ops;
static const BackendOps *GPU = &backend_cuda_ops;

typedef struct {
    Backend *cpu, *gpu;
    FlameConfig cc, cg;
    int S, D;
    AgentState st, sg; /* scratch states */
    bool tf32;         /* backend.precision tf32: GEMM tolerances widened (tolerances.h) */
    char tag[160];
} Pair;

static void pair_sync(Pair *p) {
    CPU->get_state(p->cpu, &p->st);
    GPU->set_state(p->gpu, &p->st);
}

static void pair_open(Pair *p, int algo, int compat, const GpuShape *shape, int kernels,
                      GpuTweak tweak, const char *extra) {
    memset(p, 0, sizeof *p);
    gpu_config(&p->cc, algo, compat, shape->size, BACKEND_CPU, kernels, tweak);
    gpu_config(&p->cg, algo, compat, shape->size, BACKEND_CUDA, kernels, tweak);
    p->S = shape->S;
    p->D = shape->D;
    p->tf32 = p->cg.backend.precision == PRECISION_TF32;
    snprintf(p->tag, sizeof p->tag, "%s %s %s%s %s%s", config_algo_name(algo),
             compat ? "consistent" : "reference", kernels == KERNELS_FUSED ? "fused" : "cublas",
             p->tf32 ? " tf32" : "", shape->name, extra ? extra : "");
    printf("  -- %s\n", p->tag);
    p->cpu = gpu_create(CPU, &p->cc, p->S, p->D);
    p->gpu = gpu_create(GPU, &p->cg, p->S, p->D);
    int n = (int)(p->cc.update.replay_size < 900 ? p->cc.update.replay_size - 10 : 900);
    gpu_push_random(CPU, p->cpu, p->S, p->D, n);
    gpu_push_random(GPU, p->gpu, p->S, p->D, n);
    EXPECT(CPU->replay_size(p->cpu) == GPU->replay_size(p->gpu));
    /* two CPU updates: parameters and Adam moments away from their initial values */
    update_step(CPU, p->cpu);
    update_step(CPU, p->cpu);
    agent_state_init(&p->st, &p->cc, p->S, p->D);
    agent_state_init(&p->sg, &p->cc, p->S, p->D);
    pair_sync(p);
}

static void pair_close(Pair *p) {
    agent_state_free(&p->st);
    agent_state_free(&p->sg);
    CPU->destroy(p->cpu);
    GPU->destroy(p->gpu);
}

/* the tolerance of a quantity that passes through a GEMM: widened under TF32 */
static FlameTol gt(const Pair *p, FlameTol t) {
    if (p->tf32) {
        t.atol *= TOL_TF32_STAGE_FACTOR;
        t.rtol *= TOL_TF32_STAGE_FACTOR;
    }
    return t;
}

static void name_of(char *buf, size_t n, const Pair *p, const char *what) {
    snprintf(buf, n, "%s: %s", p->tag, what);
}

#define CLOSE(p, what, got, ref, n, tol)                                                           \
    do {                                                                                           \
        char nm_[256];                                                                             \
        name_of(nm_, sizeof nm_, p, what);                                                         \
        EXPECT_CLOSE_Q(nm_, got, ref, n, (tol).atol, (tol).rtol);                                  \
    } while (0)

#define NEAR(p, what, got, ref, tol)                                                               \
    do {                                                                                           \
        char nm_[256];                                                                             \
        name_of(nm_, sizeof nm_, p, what);                                                         \
        EXPECT_NEAR_Q(nm_, got, ref, (tol).atol, (tol).rtol);                                      \
    } while (0)

static FlameTol ent_tol(const FlameConfig *cfg) {
    return cfg->entropy.estimator == ENT_ODE ? TOL_ENTROPY_ODE : TOL_ENTROPY;
}

/* Whether a row of the policy step's twin-critic minimum (FLAME-M -Q term: target critics at
   clip(z - u(z, 0, 1)); SAC actor: online critics at the reparameterised sample) has
   |Q1 - Q2| <= 1e-4 (1 + |Q1|) (times TOL_TF32_STAGE_FACTOR under TF32), computed on the CPU from
   the state before the step. */
static bool policy_min_near_tie(const Pair *p, const CpuDebugView *c) {
    const FlameConfig *cfg = &p->cc;
    const AgentLayout *L = &p->st.L;
    int B = c->B, D = c->D;
    if (cfg->algo == ALGO_FLAME_R || (cfg->algo == ALGO_FLAME_M && cfg->flow.actor_q_weight <= 0)) {
        return false;
    }
    FlowWork fw;
    QWork w1, w2;
    flow_work_alloc(&fw, L, B);
    qwork_alloc(&w1, L, B);
    qwork_alloc(&w2, L, B);
    float *a = (float *)malloc(sizeof(float) * (size_t)B * D);
    const float *P1 = p->st.q1.params, *P2 = p->st.q2.params;
    if (cfg->algo == ALGO_FLAME_M) {
        float *z = (float *)malloc(sizeof(float) * (size_t)B * D);
        float *rr = (float *)malloc(sizeof(float) * B), *tt = (float *)malloc(sizeof(float) * B);
        for (int i = 0; i < B; i++) {
            rr[i] = 0.0f;
            tt[i] = 1.0f;
        }
        for (int i = 0; i < B * D; i++) {
            z[i] = (float)cfg->flow.base_std * c->noise->qterm_z[i];
        }
        const float *u = flow_forward(L, p->st.pol.params, c->obs, z, rr, tt, B, &fw);
        for (int i = 0; i < B * D; i++) {
            float v = z[i] - u[i];
            a[i] = v < -1.0f ? -1.0f : (v > 1.0f ? 1.0f : v);
        }
        P1 = p->st.q1_targ;
        P2 = p->st.q2_targ;
        free(z), free(rr), free(tt);
    } else {
        const float *o = gauss_forward(L, p->st.pol.params, c->obs, B, &fw);
        for (int i = 0; i < B; i++) {
            for (int d = 0; d < D; d++) {
                float ls = o[(size_t)i * 2 * D + D + d];
                ls = ls < -20.0f ? -20.0f : (ls > 2.0f ? 2.0f : ls);
                a[(size_t)i * D + d] =
                    tanhf(o[(size_t)i * 2 * D + d] + expf(ls) * c->noise->sac_eps[(size_t)i * D + d]);
            }
        }
    }
    const float *q1 = critic_forward(L, P1, c->obs, a, B, &w1);
    const float *q2 = critic_forward(L, P2, c->obs, a, B, &w2);
    bool tie = false;
    float rel = 1e-4f * (p->tf32 ? (float)TOL_TF32_STAGE_FACTOR : 1.0f);
    for (int i = 0; i < B; i++) {
        tie = tie || fabsf(q1[i] - q2[i]) <= rel * (1.0f + fabsf(q1[i]));
    }
    free(a);
    flow_work_free(&fw);
    qwork_free(&w1);
    qwork_free(&w2);
    return tie;
}

/* ------------------------------------------------------------------ act */
static void check_act(Pair *p, ActMode mode, int n) {
    const FlameConfig *cfg = &p->cc;
    int S = p->S, D = p->D, Np = cfg->flow.num_particles;
    uint64_t seed = (uint64_t)cfg->run.seed;
    uint32_t call = 5;
    float *obs = (float *)malloc(sizeof(float) * (size_t)n * S);
    float *ac = (float *)malloc(sizeof(float) * (size_t)n * D);
    float *ag = (float *)malloc(sizeof(float) * (size_t)n * D);
    for (int i = 0; i < n * S; i++) {
        obs[i] = rng_normal(5, RNG_STREAM_TEST, 9, (uint32_t)i, 0);
    }
    CPU->act(p->cpu, obs, n, mode, call, ac);
    GPU->act(p->gpu, obs, n, mode, call, ag);
    const char *mname = mode == ACT_EXPLORE ? "act explore" : "act deterministic";
    if (cfg->algo == ALGO_SAC) {
        CLOSE(p, mname, ag, ac, (size_t)n * D, gt(p, TOL_ACTION));
    } else {
        CudaDebugView v;
        backend_cuda_debug(p->gpu, &v);
        EXPECT(v.act_n == n);
        /* calloc: GCC cannot see that the loop below fills it (-Wmaybe-uninitialized) */
        float *z = (float *)calloc((size_t)n * Np * D, sizeof(float));
        float *a = (float *)malloc(sizeof(float) * (size_t)n * Np * D);
        float *sc = (float *)malloc(sizeof(float) * (size_t)n * Np);
        uint32_t stream = mode == ACT_EXPLORE ? RNG_STREAM_ACT_Z : RNG_STREAM_EVAL_Z;
        for (int i = 0; i < n; i++) {
            for (int j = 0; j < Np * D; j++) {
                z[(size_t)i * Np * D + j] = rng_normal(seed, stream, call, (uint32_t)i, (uint32_t)j);
            }
        }
        gpu_cpu_particles(cfg, &p->st.L, p->st.pol_ema, p->st.q1.params, p->st.q2.params, obs, z,
                          n, a, sc);
        /* the noise-free part of the GPU's action */
        float scale = mode == ACT_EXPLORE ? expf(p->st.log_alpha) * (float)cfg->flow.noise_scale
                                          : 0.0f;
        for (int i = 0; i < n; i++) {
            for (int d = 0; d < D; d++) {
                ag[(size_t)i * D + d] -= scale * rng_normal(seed, RNG_STREAM_ACT_NOISE, call,
                                                            (uint32_t)i, (uint32_t)d);
            }
        }
        char nm[256];
        name_of(nm, sizeof nm, p, mname);
        FlameTol tol = gt(p, cfg->algo == ALGO_FLAME_R ? TOL_ACTION_R : TOL_ACTION);
        int ties = gpu_check_best_of_n_tol(nm, n, Np, D, a, sc, v.act_score, v.act_best, ag, tol,
                                           gt(p, TOL_SCORE));
        if (!ties) {
            /* the CPU's own actions agree too */
            for (int i = 0; i < n; i++) {
                for (int d = 0; d < D; d++) {
                    ac[(size_t)i * D + d] -= scale * rng_normal(seed, RNG_STREAM_ACT_NOISE, call,
                                                                (uint32_t)i, (uint32_t)d);
                }
            }
            CLOSE(p, mname, ag, ac, (size_t)n * D, tol);
        }
        free(z), free(a), free(sc);
    }
    free(obs), free(ac), free(ag);
}

/* ------------------------------------------------------------------ one update, op by op */
static void check_critic_step(Pair *p, const UpdateCtx *u, CriticPhase phase) {
    const FlameConfig *cfg = &p->cc;
    size_t nq = p->st.q1.n;
    CPU->get_state(p->cpu, &p->st); /* before */
    int64_t t = backend_base(p->cpu)->counters.critic_steps + 1;
    CPU->critic_step(p->cpu, u, phase);
    GPU->critic_step(p->gpu, u, phase);
    backend_base(p->cpu)->counters.critic_steps++;
    backend_base(p->gpu)->counters.critic_steps++;
    AgentState after;
    agent_state_init(&after, cfg, p->S, p->D);
    CPU->get_state(p->cpu, &after);
    GPU->get_state(p->gpu, &p->sg);
    const char *ph = phase == CRITIC_GRAD_AND_STEP ? "critic step" : "critic re-applied step";
    char nm[256];
    if (phase == CRITIC_GRAD_AND_STEP) {
        name_of(nm, sizeof nm, p, "critic 1 gradient");
        EXPECT_GRAD_CLOSE(nm, p->sg.q1.grads, after.q1.grads, nq, gt(p, TOL_STAGE_GRAD));
        name_of(nm, sizeof nm, p, "critic 2 gradient");
        EXPECT_GRAD_CLOSE(nm, p->sg.q2.grads, after.q2.grads, nq, gt(p, TOL_STAGE_GRAD));
        UpdateMetrics mc, mg;
        CPU->get_metrics(p->cpu, &mc);
        GPU->get_metrics(p->gpu, &mg);
        NEAR(p, "critic loss 1", mg.critic_loss[0], mc.critic_loss[0], gt(p, TOL_STAGE_LOSS));
        NEAR(p, "critic loss 2", mg.critic_loss[1], mc.critic_loss[1], gt(p, TOL_STAGE_LOSS));
        NEAR(p, "q mean", mg.q_mean, mc.q_mean, gt(p, TOL_STAGE_LOSS));
        NEAR(p, "q min", mg.q_min, mc.q_min, gt(p, TOL_SCORE));
        NEAR(p, "q max", mg.q_max, mc.q_max, gt(p, TOL_SCORE));
    }
    name_of(nm, sizeof nm, p, ph);
    char n1[400], n2[400];
    snprintf(n1, sizeof n1, "%s critic 1", nm);
    snprintf(n2, sizeof n2, "%s critic 2", nm);
    gpu_expect_adam(n1, p->st.q1.params, p->st.q1.m, p->st.q1.v, p->sg.q1.grads, nq,
                    cfg->optim.critic_lr, cfg, t, p->sg.q1.params, p->sg.q1.m, p->sg.q1.v);
    gpu_expect_adam(n2, p->st.q2.params, p->st.q2.m, p->st.q2.v, p->sg.q2.grads, nq,
                    cfg->optim.critic_lr, cfg, t, p->sg.q2.params, p->sg.q2.m, p->sg.q2.v);
    agent_state_free(&after);
    pair_sync(p);
}

/* the candidate weights (B x K) are a distribution over k */
static void expect_weights_sum_to_one(const Pair *p, const float *w, size_t B, size_t K) {
    double worst = 0;
    for (size_t i = 0; i < B; i++) {
        double s = 0;
        for (size_t k = 0; k < K; k++) {
            s += w[i * K + k];
        }
        worst = fmax(worst, fabs(s - 1.0));
    }
    EXPECT_MSG(worst < 1e-5, "%s: weights sum to 1 within %.3g", p->tag, worst);
}

static void check_qweight(Pair *p, const UpdateCtx *u) {
    const FlameConfig *cfg = &p->cc;
    CPU->qweight(p->cpu, u);
    GPU->qweight(p->gpu, u);
    if (cfg->algo == ALGO_SAC) {
        return;
    }
    CpuDebugView c;
    CudaDebugView g;
    backend_cpu_debug(p->cpu, &c);
    backend_cuda_debug(p->gpu, &g);
    size_t B = (size_t)c.B, D = (size_t)c.D, K = (size_t)c.K;
    CLOSE(p, "times t", g.t, c.t, B, TOL_DRAWS);
    CLOSE(p, "times r", g.r, c.r, B, TOL_DRAWS);
    CLOSE(p, "noisy action x", g.x, c.x, B * D, TOL_DRAWS);
    CLOSE(p, "candidate draws eps_bk", g.eps_post, c.noise->eps_post, B * K * D, TOL_TRUNC);
    CLOSE(p, "candidate weights", g.w, c.w, B * K, gt(p, TOL_WEIGHTS));
    {
        char nm[256];
        name_of(nm, sizeof nm, p, "weighted tangent v-bar");
        EXPECT_GRAD_CLOSE(nm, g.vbar, c.vbar, B * D, gt(p, TOL_VBAR));
    }
    expect_weights_sum_to_one(p, g.w, B, K);
    UpdateMetrics mc, mg;
    CPU->get_metrics(p->cpu, &mc);
    GPU->get_metrics(p->gpu, &mg);
    NEAR(p, "ess mean", mg.ess_mean, mc.ess_mean, gt(p, TOL_ESS));
    NEAR(p, "ess min", mg.ess_min, mc.ess_min, gt(p, TOL_ESS));
    /* the policy step sees exactly the CPU's inputs */
    backend_cuda_debug_set(p->gpu, CUDA_DBG_X, c.x);
    backend_cuda_debug_set(p->gpu, CUDA_DBG_R, c.r);
    backend_cuda_debug_set(p->gpu, CUDA_DBG_T, c.t);
    backend_cuda_debug_set(p->gpu, CUDA_DBG_EPS_POST, c.noise->eps_post);
    backend_cuda_debug_set(p->gpu, CUDA_DBG_W, c.w);
    backend_cuda_debug_set(p->gpu, CUDA_DBG_VBAR, c.vbar);
}

static void check_update(Pair *p) {
    const FlameConfig *cfg = &p->cc;
    int S = p->S, D = p->D;
    BackendBase *bc = backend_base(p->cpu), *bg = backend_base(p->gpu);
    UpdateCtx u = update_context(cfg, &bc->counters);
    EXPECT(bg->counters.updates == bc->counters.updates);

    /* replay_sample: the same rows, bit for bit */
    CPU->replay_sample(p->cpu, &u);
    GPU->replay_sample(p->gpu, &u);
    CpuDebugView c;
    CudaDebugView g;
    backend_cpu_debug(p->cpu, &c);
    backend_cuda_debug(p->gpu, &g);
    size_t B = (size_t)c.B;
    EXPECT_MSG(!memcmp(g.obs, c.obs, B * S * sizeof(float)), "%s: batch obs", p->tag);
    EXPECT_MSG(!memcmp(g.next_obs, c.next_obs, B * S * sizeof(float)), "%s: batch next_obs",
               p->tag);
    EXPECT_MSG(!memcmp(g.act, c.act, B * D * sizeof(float)), "%s: batch act", p->tag);
    EXPECT_MSG(!memcmp(g.rew, c.rew, B * sizeof(float)), "%s: batch rew", p->tag);
    EXPECT_MSG(!memcmp(g.done, c.done, B * sizeof(float)), "%s: batch done", p->tag);

    /* critic_target */
    CPU->critic_target(p->cpu, &u);
    GPU->critic_target(p->gpu, &u);
    backend_cpu_debug(p->cpu, &c);
    backend_cuda_debug(p->gpu, &g);
    bool *tie = (bool *)calloc(B, sizeof(bool));
    if (cfg->algo != ALGO_SAC) {
        int Np = cfg->flow.num_particles;
        float *a = (float *)malloc(sizeof(float) * B * Np * D);
        float *sc = (float *)malloc(sizeof(float) * B * Np);
        const float *P = cfg->quirks.next_action_policy == NEXTPOL_EMA ? p->st.pol_ema
                                                                        : p->st.pol.params;
        gpu_cpu_particles(cfg, &p->st.L, P, p->st.q1.params, p->st.q2.params, c.next_obs,
                          c.noise->next_z, (int)B, a, sc);
        char nm[256];
        name_of(nm, sizeof nm, p, "next-action best-of-N");
        gpu_check_best_of_n_tol(nm, (int)B, Np, D, a, sc, g.pscore, g.pbest, g.a_star,
                                gt(p, cfg->algo == ALGO_FLAME_R ? TOL_ACTION_R : TOL_ACTION),
                                gt(p, TOL_SCORE));
        for (size_t i = 0; i < B; i++) {
            int cb = 0;
            for (int q = 1; q < Np; q++) {
                if (sc[i * Np + q] > sc[i * Np + cb]) {
                    cb = q;
                }
            }
            tie[i] = g.pbest[i] != cb;
        }
        free(a), free(sc);
        /* the ode estimator integrates from a*: near-tie rows start elsewhere */
        float *eg = (float *)malloc(sizeof(float) * B), *ec = (float *)malloc(sizeof(float) * B);
        size_t ne = 0;
        for (size_t i = 0; i < B; i++) {
            if (!(tie[i] && cfg->entropy.estimator == ENT_ODE)) {
                eg[ne] = g.ent[i];
                ec[ne] = c.ent[i];
                ne++;
            }
        }
        CLOSE(p, "entropy H(s')", eg, ec, ne, gt(p, ent_tol(cfg)));
        free(eg), free(ec);
    } else {
        CLOSE(p, "SAC next action", g.next_a, c.next_a, B * D, gt(p, TOL_ACTION));
        CLOSE(p, "SAC -log pi(a'|s')", g.ent, c.ent, B, gt(p, TOL_ENTROPY));
    }
    /* rows whose best particle is another maximum (near-tie) take another a' and y */
    float *ym = (float *)malloc(sizeof(float) * B), *yc = (float *)malloc(sizeof(float) * B);
    float *am = (float *)malloc(sizeof(float) * B * D), *acp = (float *)malloc(sizeof(float) * B * D);
    size_t m = 0;
    for (size_t i = 0; i < B; i++) {
        if (!tie[i]) {
            ym[m] = g.y[i];
            yc[m] = c.y[i];
            memcpy(am + m * D, g.next_a + i * D, D * sizeof(float));
            memcpy(acp + m * D, c.next_a + i * D, D * sizeof(float));
            m++;
        }
    }
    FlameTol at = gt(p, cfg->algo == ALGO_FLAME_R ? TOL_ACTION_R : TOL_ACTION);
    CLOSE(p, "next action a'", am, acp, m * D, at);
    FlameTol yt = gt(p, TOL_TARGET);
    yt.atol += cfg->update.gamma * exp(p->st.log_alpha) * gt(p, ent_tol(cfg)).atol;
    CLOSE(p, "TD target y", ym, yc, m, yt);
    free(ym), free(yc), free(am), free(acp), free(tie);
    UpdateMetrics mc, mg;
    CPU->get_metrics(p->cpu, &mc);
    GPU->get_metrics(p->gpu, &mg);
    NEAR(p, "metric entropy", mg.entropy, mc.entropy, gt(p, ent_tol(cfg)));
    NEAR(p, "metric target mean", mg.target_mean, mc.target_mean, yt);
    NEAR(p, "metric alpha", mg.alpha, mc.alpha, TOL_ADAM);
    backend_cuda_debug_set(p->gpu, CUDA_DBG_Y, c.y);
    backend_cuda_debug_set(p->gpu, CUDA_DBG_ENT, c.ent);
    backend_cuda_debug_set(p->gpu, CUDA_DBG_NEXT_A, c.next_a);

    /* critic step and candidate weights, in the configured order */
    if (cfg->quirks.weights_after_critic_step == TRI_YES) {
        check_critic_step(p, &u, CRITIC_GRAD_AND_STEP);
        check_qweight(p, &u);
    } else {
        check_qweight(p, &u);
        check_critic_step(p, &u, CRITIC_GRAD_AND_STEP);
    }

    /* policy step (run every time here, whatever do_actor says) */
    {
        size_t np = p->st.pol.n;
        CPU->get_state(p->cpu, &p->st);
        backend_cpu_debug(p->cpu, &c);
        bool near_tie = policy_min_near_tie(p, &c);
        int64_t t = bc->counters.actor_steps + 1;
        CPU->policy_step(p->cpu, &u);
        GPU->policy_step(p->gpu, &u);
        bc->counters.actor_steps++;
        bg->counters.actor_steps++;
        AgentState after;
        agent_state_init(&after, cfg, S, D);
        CPU->get_state(p->cpu, &after);
        GPU->get_state(p->gpu, &p->sg);
        char nm[256];
        name_of(nm, sizeof nm, p, "policy gradient");
        if (!near_tie && !p->tf32) {
            EXPECT_GRAD_CLOSE(nm, p->sg.pol.grads, after.pol.grads, np, TOL_STAGE_GRAD);
        } else {
            double num = 0, den = 0;
            for (size_t i = 0; i < np; i++) {
                double d = (double)p->sg.pol.grads[i] - after.pol.grads[i];
                num += d * d;
                den += (double)after.pol.grads[i] * after.pol.grads[i];
            }
            double e = den > 0 ? sqrt(num / den) : 0;
            double lim = p->tf32 ? TOL_STAGE_GRAD_NORM_TF32 : TOL_STAGE_GRAD_NORM_TIE;
            printf("       %s: %s, relative error %.3g (limit %.3g)\n", nm,
                   p->tf32 ? "TF32" : "twin-critic near-tie in the policy loss", e, lim);
            EXPECT_MSG(e <= lim * flame_tol_scale(), "%s: relative error %.3g", nm, e);
        }
        EXPECT_MSG(gpu_absmax(after.pol.grads, np) > 0, "%s: zero policy gradient", p->tag);
        name_of(nm, sizeof nm, p, "policy Adam step");
        gpu_expect_adam(nm, p->st.pol.params, p->st.pol.m, p->st.pol.v, p->sg.pol.grads, np,
                        u.actor_lr, cfg, t, p->sg.pol.params, p->sg.pol.m, p->sg.pol.v);
        CPU->get_metrics(p->cpu, &mc);
        GPU->get_metrics(p->gpu, &mg);
        FlameTol lt = gt(p, TOL_STAGE_LOSS);
        if (near_tie) { /* the min takes the other critic's value on that row */
            lt.atol += 2e-3 * (p->tf32 ? TOL_TF32_STAGE_FACTOR : 1.0) / c.B;
        }
        NEAR(p, "actor loss", mg.actor_loss, mc.actor_loss, lt);
        NEAR(p, "flow-matching loss", mg.fm_loss, mc.fm_loss, gt(p, TOL_STAGE_LOSS));
        NEAR(p, "-Q term", mg.qterm_loss, mc.qterm_loss, lt);
        if (cfg->algo == ALGO_FLAME_M && cfg->flow.fm_weight > 0) {
            NEAR(p, "max |du|", mg.jvp_max, mc.jvp_max, gt(p, TOL_MLP_JVP));
        }
        if (cfg->algo == ALGO_SAC) {
            NEAR(p, "SAC entropy", mg.entropy, mc.entropy, gt(p, TOL_ENTROPY));
        }
        agent_state_free(&after);
        pair_sync(p);
    }

    if (cfg->quirks.critic_double_step == TRI_YES) {
        check_critic_step(p, &u, CRITIC_REAPPLY);
    }

    /* alpha step (every time here) */
    {
        float la0 = p->st.log_alpha;
        CPU->alpha_step(p->cpu, &u);
        GPU->alpha_step(p->gpu, &u);
        bc->counters.alpha_steps++;
        bg->counters.alpha_steps++;
        CPU->get_state(p->cpu, &p->st);
        GPU->get_state(p->gpu, &p->sg);
        NEAR(p, "log alpha", p->sg.log_alpha, p->st.log_alpha, TOL_ADAM);
        NEAR(p, "alpha Adam m", p->sg.alpha_m, p->st.alpha_m, TOL_ADAM);
        NEAR(p, "alpha Adam v", p->sg.alpha_v, p->st.alpha_v, TOL_ADAM);
        EXPECT_MSG(p->st.log_alpha != la0, "%s: the alpha step did not move log alpha", p->tag);
        pair_sync(p);
    }

    /* Polyak */
    {
        CPU->polyak(p->cpu, &u);
        GPU->polyak(p->gpu, &u);
        CPU->get_state(p->cpu, &p->st);
        GPU->get_state(p->gpu, &p->sg);
        CLOSE(p, "target critic 1", p->sg.q1_targ, p->st.q1_targ, p->st.q1.n, TOL_ADAM);
        CLOSE(p, "target critic 2", p->sg.q2_targ, p->st.q2_targ, p->st.q2.n, TOL_ADAM);
        CLOSE(p, "EMA policy", p->sg.pol_ema, p->st.pol_ema, p->st.pol.n, TOL_ADAM);
    }
    CPU->end_update(p->cpu, &u);
    GPU->end_update(p->gpu, &u);
    bc->counters.updates++;
    bg->counters.updates++;
}

static void run_case(int algo, int compat, GpuSize size, int kernels, GpuTweak tweak,
                     const char *extra) {
    const GpuShape *shape = &GPU_SHAPES[size];
    Pair p;
    pair_open(&p, algo, compat, shape, kernels, tweak, extra);
    check_act(&p, ACT_DETERMINISTIC, 7);
    check_act(&p, ACT_EXPLORE, 7);
    check_update(&p);
    pair_close(&p);
}

/* Acting on more states than one work chunk holds (best-of-N chunks of whole states, SAC chunks
   of rows, both at most 32,768 rows): 7 states, then n_big (the act buffers grow), then 3 (the
   grown buffers, a partial first chunk). */
static void run_act_chunks(int algo, GpuSize size, int kernels, GpuTweak tweak,
                           const char *extra) {
    const GpuShape *shape = &GPU_SHAPES[size];
    char ex[96];
    snprintf(ex, sizeof ex, "%s act chunks", extra ? extra : "");
    Pair p;
    pair_open(&p, algo, COMPAT_REFERENCE, shape, kernels, tweak, ex);
    int per_state = algo == ALGO_SAC ? 1 : p.cc.flow.num_particles;
    int n_big = 32768 / per_state + 38; /* rows beyond any one chunk, a partial last chunk */
    check_act(&p, ACT_EXPLORE, 7);
    check_act(&p, ACT_DETERMINISTIC, n_big);
    check_act(&p, ACT_EXPLORE, n_big);
    check_act(&p, ACT_DETERMINISTIC, 3);
    pair_close(&p);
}

/* More rows than one work chunk (32,768) in every chunked stage of an update: B*Np = 35,200
   best-of-N particles of the critic target, B*K = 34,100 candidates to score; small widths keep
   the CPU reference cheap. */
static void tw_chunked(FlameConfig *c) {
    c->update.batch_size = 1100;
    c->update.replay_size = 2000;
    c->flow.num_particles = 32;
    c->flow.sample_k = 31;
}
/* ... and the B*K-row flow loss over two chunks of whole states */
static void tw_chunked_bk(FlameConfig *c) {
    tw_chunked(c);
    c->flow.collapse_k = false;
}

static void tw_decoupled(FlameConfig *c) {
    c->entropy.estimator = ENT_DECOUPLED;
    c->entropy.probe = PROBE_RADEMACHER;
    c->entropy.probes = 2;
}
static void tw_no_collapse(FlameConfig *c) {
    c->flow.collapse_k = false;
}
static void tw_ema_next(FlameConfig *c) {
    c->quirks.next_action_policy = NEXTPOL_EMA;
    c->flow.sample_steps = 2;
    c->flow.r_eq_t_frac = 0.3;
}
/* the checks and tweaks above serve other tests too (test_stages_fast_cuda.c) */
#ifndef FLAME_STAGE_CHECKS_ONLY
static void tw_gauss_probes(FlameConfig *c) {
    c->entropy.probe = PROBE_GAUSSIAN;
    c->entropy.probes = 3;
}
static void tw_decoupled_gauss(FlameConfig *c) {
    c->entropy.estimator = ENT_DECOUPLED;
    tw_gauss_probes(c);
}
static void tw_biased1(FlameConfig *c) {
    c->entropy.estimator = ENT_BIASED1;
}
static void tw_exact(FlameConfig *c) {
    c->entropy.estimator = ENT_EXACT;
}
static void tw_fm_weight(FlameConfig *c) {
    c->flow.fm_weight = 0.5;
    c->flow.actor_q_weight = 2.0;
}
static void tw_q_only(FlameConfig *c) {
    c->flow.fm_weight = 0.0;
}
static void tw_tf32(FlameConfig *c) {
    c->backend.precision = PRECISION_TF32;
}
FLAME_TEST(test_stages_small) {
    int algos[3] = {ALGO_FLAME_M, ALGO_FLAME_R, ALGO_SAC};
    if (gpu_runs_min_only()) {
        /* compute-sanitizer runs: one case per code path */
        for (int a = 0; a < 3; a++) {
            run_case(algos[a], COMPAT_REFERENCE, SIZE_ODD, KERNELS_FUSED, NULL, NULL);
        }
        run_case(ALGO_FLAME_M, COMPAT_CONSISTENT, SIZE_ODD, KERNELS_CUBLAS, tw_no_collapse,
                 " B*K rows");
        run_case(ALGO_FLAME_M, COMPAT_REFERENCE, SIZE_ODD, KERNELS_FUSED, tw_exact, " exact");
        run_case(ALGO_FLAME_M, COMPAT_REFERENCE, SIZE_WIDE, KERNELS_FUSED, tw_decoupled,
                 " decoupled");
        return;
    }
    if (!gpu_runs_small()) {
        return;
    }
    for (int k = 0; k < 2; k++) {
        int kern = k ? KERNELS_CUBLAS : KERNELS_FUSED;
        for (int a = 0; a < 3; a++) {
            for (int c = 0; c < 2; c++) {
                run_case(algos[a], c, SIZE_ODD, kern, NULL, NULL);
            }
        }
        run_case(ALGO_FLAME_M, COMPAT_REFERENCE, SIZE_ODD, kern, tw_decoupled, " decoupled");
        run_case(ALGO_FLAME_M, COMPAT_REFERENCE, SIZE_ODD, kern, tw_biased1, " biased1");
        run_case(ALGO_FLAME_M, COMPAT_REFERENCE, SIZE_ODD, kern, tw_exact, " exact");
        run_case(ALGO_FLAME_M, COMPAT_CONSISTENT, SIZE_ODD, kern, tw_no_collapse, " B*K rows");
        run_case(ALGO_FLAME_R, COMPAT_REFERENCE, SIZE_ODD, kern, tw_no_collapse, " B*K rows");
        run_case(ALGO_FLAME_M, COMPAT_REFERENCE, SIZE_ODD, kern, tw_ema_next, " ema/2 steps");
        run_case(ALGO_FLAME_M, COMPAT_REFERENCE, SIZE_ODD, kern, tw_fm_weight, " weights 0.5/2");
        run_case(ALGO_FLAME_M, COMPAT_REFERENCE, SIZE_ODD, kern, tw_q_only, " -Q term only");
    }
    run_case(ALGO_FLAME_M, COMPAT_REFERENCE, SIZE_WIDE, KERNELS_FUSED, NULL, NULL);
    run_case(ALGO_FLAME_R, COMPAT_REFERENCE, SIZE_WIDE, KERNELS_FUSED, NULL, NULL);
    run_case(ALGO_SAC, COMPAT_REFERENCE, SIZE_WIDE, KERNELS_FUSED, NULL, NULL);
    /* Gaussian multi-probe traces: reference3 (FLAME-M), decoupled, ode (FLAME-R) */
    run_case(ALGO_FLAME_M, COMPAT_REFERENCE, SIZE_ODD, KERNELS_FUSED, tw_gauss_probes,
             " 3 gaussian probes");
    run_case(ALGO_FLAME_M, COMPAT_CONSISTENT, SIZE_ODD, KERNELS_CUBLAS, tw_decoupled_gauss,
             " decoupled, 3 gaussian probes");
    run_case(ALGO_FLAME_R, COMPAT_REFERENCE, SIZE_ODD, KERNELS_FUSED, tw_gauss_probes,
             " ode, 3 gaussian probes");
    /* TF32 GEMMs, stage by stage */
    run_case(ALGO_FLAME_M, COMPAT_REFERENCE, SIZE_ODD, KERNELS_CUBLAS, tw_tf32, NULL);
    /* chunked stages */
    run_case(ALGO_FLAME_M, COMPAT_REFERENCE, SIZE_ODD, KERNELS_FUSED, tw_chunked, " chunked");
    run_case(ALGO_FLAME_M, COMPAT_CONSISTENT, SIZE_ODD, KERNELS_CUBLAS, tw_chunked_bk,
             " chunked, B*K rows");
    run_case(ALGO_FLAME_R, COMPAT_REFERENCE, SIZE_ODD, KERNELS_FUSED, tw_chunked, " chunked");
    for (int a = 0; a < 3; a++) {
        run_act_chunks(algos[a], SIZE_ODD, KERNELS_FUSED, NULL, NULL);
    }
}

FLAME_TEST(test_stages_real_sizes) {
    if (!gpu_runs_real()) {
        return;
    }
    run_case(ALGO_FLAME_M, COMPAT_REFERENCE, SIZE_HALFCHEETAH, KERNELS_FUSED, NULL, NULL);
    run_case(ALGO_FLAME_M, COMPAT_REFERENCE, SIZE_HALFCHEETAH, KERNELS_CUBLAS, NULL, NULL);
    run_case(ALGO_FLAME_M, COMPAT_CONSISTENT, SIZE_HALFCHEETAH, KERNELS_FUSED, NULL, NULL);
    run_case(ALGO_FLAME_M, COMPAT_REFERENCE, SIZE_HALFCHEETAH, KERNELS_FUSED, tw_exact, " exact");
    run_case(ALGO_FLAME_R, COMPAT_REFERENCE, SIZE_HALFCHEETAH, KERNELS_FUSED, NULL, NULL);
    run_case(ALGO_SAC, COMPAT_REFERENCE, SIZE_HALFCHEETAH, KERNELS_FUSED, NULL, NULL);
    run_case(ALGO_FLAME_M, COMPAT_REFERENCE, SIZE_HUMANOID, KERNELS_FUSED, NULL, NULL);
    run_case(ALGO_FLAME_M, COMPAT_REFERENCE, SIZE_HUMANOID, KERNELS_CUBLAS, NULL, NULL);
    /* the exact estimator's 17 x 17 log-determinants */
    run_case(ALGO_FLAME_M, COMPAT_REFERENCE, SIZE_HUMANOID, KERNELS_FUSED, tw_exact, " exact");
    /* TF32 at 256-wide layers */
    run_case(ALGO_FLAME_M, COMPAT_REFERENCE, SIZE_HALFCHEETAH, KERNELS_CUBLAS, tw_tf32, NULL);
    run_case(ALGO_FLAME_R, COMPAT_REFERENCE, SIZE_HALFCHEETAH, KERNELS_CUBLAS, tw_tf32, NULL);
    /* best-of-32 over more states than one chunk */
    run_act_chunks(ALGO_FLAME_M, SIZE_HALFCHEETAH, KERNELS_FUSED, NULL, NULL);
}

int main(void) {
    FLAME_REQUIRE_GPU();
    RUN_TEST(test_stages_small);
    RUN_TEST(test_stages_real_sizes);
    return flame_test_report();
}
#endif
