/*
 * test_quirks.c: each quirk switch of the reference-vs-consistent compat layer changes exactly the
 * quantity it names. Two backends with the same seed (same networks, replay and draws) run one
 * update that differs only in the switch; the test checks the named quantity against its formula
 * and that the quantities it must not touch are bitwise equal. FLAME-M's switches and the SAC
 * baseline's (quirks.sac_*), and what `compat` resolves them to.
 */
#include <math.h>
#include <stdlib.h>

#include "algo_common.h"

typedef struct {
    Backend *b;
    FlameConfig cfg;
    CpuDebugView v;
} Run;

/* one FLAME-M update after `setup` modified the config */
static void run_one(Run *r, void (*setup)(FlameConfig *), int S, int D) {
    small_config(&r->cfg, ALGO_FLAME_M, COMPAT_REFERENCE);
    r->cfg.alpha.init = 0.3; /* exp(alpha) and alpha differ clearly */
    setup(&r->cfg);
    r->b = make_backend(&r->cfg, S, D, 200);
    update_step(&backend_cpu_ops, r->b);
    backend_cpu_debug(r->b, &r->v);
}

static void done(Run *r) {
    backend_cpu_ops.destroy(r->b);
}

static bool same(const float *a, const float *b, size_t n) {
    return memcmp(a, b, n * sizeof(float)) == 0;
}

static void set_time_ref(FlameConfig *c) {
    c->quirks.time_convention = QUIRK_REFERENCE;
}
static void set_time_cons(FlameConfig *c) {
    c->quirks.time_convention = QUIRK_CONSISTENT;
}

FLAME_TEST(test_time_convention) {
    Run a, b;
    run_one(&a, set_time_ref, 4, 2);
    run_one(&b, set_time_cons, 4, 2);
    int B = a.v.B, D = a.v.D;
    for (int i = 0; i < B; i++) {
        float t = a.v.t[i];
        for (int d = 0; d < D; d++) {
            float act = a.v.act[i * D + d], e0 = a.v.noise->eps0[i * D + d];
            EXPECT(a.v.x[i * D + d] == t * act + (1.0f - t) * e0);        /* data at t = 1 */
            /* noise of std flow.base_std at t = 1 */
            EXPECT(b.v.x[i * D + d] == (1.0f - t) * act + t * (0.5f * e0));
        }
    }
    EXPECT(!same(a.v.x, b.v.x, (size_t)B * D));
    EXPECT(same(a.v.y, b.v.y, (size_t)B)); /* the TD target is untouched */
    EXPECT(same(a.v.t, b.v.t, (size_t)B) && same(a.v.r, b.v.r, (size_t)B));
    done(&a), done(&b);
}

static void set_temp_exp(FlameConfig *c) {
    c->quirks.softmax_temp = TEMP_EXP_ALPHA;
}
static void set_temp_alpha(FlameConfig *c) {
    c->quirks.softmax_temp = TEMP_ALPHA;
}

FLAME_TEST(test_softmax_temperature) {
    Run a, b;
    run_one(&a, set_temp_exp, 4, 2);
    run_one(&b, set_temp_alpha, 4, 2);
    int B = a.v.B, K = a.v.K;
    float Ta = expf(0.3f), Tb = 0.3f;
    /* log w_k - log w_0 = (q_k - q_0) / T: the two runs' log-weight gaps scale by Ta / Tb */
    int checked = 0;
    for (int i = 0; i < B; i++) {
        for (int k = 1; k < K; k++) {
            double ga = log(a.v.w[i * K + k]) - log(a.v.w[i * K]);
            double gb = log(b.v.w[i * K + k]) - log(b.v.w[i * K]);
            if (isfinite(gb) && fabs(gb) > 1e-3 && fabs(gb) < 50) {
                EXPECT_MSG(fabs(ga * Ta - gb * Tb) <= 1e-3 * fabs(gb * Tb) + 1e-5,
                           "row %d k %d: %g vs %g", i, k, ga * Ta, gb * Tb);
                checked++;
            }
        }
    }
    EXPECT(checked > B);
    EXPECT(same(a.v.x, b.v.x, (size_t)B * a.v.D) && same(a.v.y, b.v.y, (size_t)B));
    done(&a), done(&b);
}

static void set_td_minus(FlameConfig *c) {
    c->quirks.td_entropy = TDENT_MINUS;
}
static void set_td_plus(FlameConfig *c) {
    c->quirks.td_entropy = TDENT_PLUS;
}
static void set_td_omit(FlameConfig *c) {
    c->quirks.td_entropy = TDENT_OMIT;
}

FLAME_TEST(test_td_entropy_sign) {
    Run m, p, o;
    run_one(&m, set_td_minus, 4, 2);
    run_one(&p, set_td_plus, 4, 2);
    run_one(&o, set_td_omit, 4, 2);
    int B = m.v.B;
    float g = 0.99f, alpha = 0.3f;
    for (int i = 0; i < B; i++) {
        float term = g * (1.0f - m.v.done[i]) * alpha * m.v.ent[i];
        EXPECT_NEAR_Q("y minus - omit", m.v.y[i] - o.v.y[i], -term, 1e-5, 1e-4);
        EXPECT_NEAR_Q("y plus - omit", p.v.y[i] - o.v.y[i], term, 1e-5, 1e-4);
    }
    EXPECT(same(m.v.ent, o.v.ent, (size_t)B) && same(m.v.next_a, p.v.next_a, (size_t)B * m.v.D));
    EXPECT(!same(m.v.y, o.v.y, (size_t)B));
    done(&m), done(&p), done(&o);
}

static void set_double_yes(FlameConfig *c) {
    c->quirks.critic_double_step = TRI_YES;
}
static void set_double_no(FlameConfig *c) {
    c->quirks.critic_double_step = TRI_NO;
}

FLAME_TEST(test_critic_double_step) {
    Run a, b;
    run_one(&a, set_double_yes, 4, 2);
    run_one(&b, set_double_no, 4, 2);
    const AgentState *sa = a.v.state, *sb = b.v.state;
    /* a second Adam step with the same gradient, applied by hand to the single-step run */
    size_t n = sb->q1.n;
    float *p = malloc(n * sizeof(float)), *m = malloc(n * sizeof(float)),
          *v = malloc(n * sizeof(float));
    memcpy(p, sb->q1.params, n * sizeof(float));
    memcpy(m, sb->q1.m, n * sizeof(float));
    memcpy(v, sb->q1.v, n * sizeof(float));
    adam_step(p, sb->q1.grads, m, v, n, 3e-4, 0.9, 0.999, 1e-8, 2);
    EXPECT(same(p, sa->q1.params, n));
    EXPECT(!same(sa->q1.params, sb->q1.params, n));
    /* the policy (its weights were scored by the once-updated critics in both) is untouched */
    EXPECT(same(sa->pol.params, sb->pol.params, sa->pol.n));
    free(p), free(m), free(v);
    done(&a), done(&b);
}

static void set_clip_yes(FlameConfig *c) {
    c->quirks.clip_noisy_action = TRI_YES;
}
static void set_clip_no(FlameConfig *c) {
    c->quirks.clip_noisy_action = TRI_NO;
}

FLAME_TEST(test_clip_noisy_action) {
    Run a, b;
    run_one(&a, set_clip_yes, 4, 2);
    run_one(&b, set_clip_no, 4, 2);
    int n = a.v.B * a.v.D, outside = 0;
    for (int i = 0; i < n; i++) {
        float x = b.v.x[i];
        float want = x < -1 ? -1 : (x > 1 ? 1 : x);
        EXPECT(a.v.x[i] == want);
        outside += fabsf(x) > 1;
    }
    EXPECT(outside > 0); /* replay actions up to 1.3 put some x outside the box */
    EXPECT(same(a.v.y, b.v.y, (size_t)a.v.B));
    done(&a), done(&b);
}

static void set_wafter_yes(FlameConfig *c) {
    c->quirks.weights_after_critic_step = TRI_YES;
}
static void set_wafter_no(FlameConfig *c) {
    c->quirks.weights_after_critic_step = TRI_NO;
}

FLAME_TEST(test_weights_after_critic_step) {
    Run a, b;
    run_one(&a, set_wafter_yes, 4, 2);
    run_one(&b, set_wafter_no, 4, 2);
    size_t BK = (size_t)a.v.B * a.v.K;
    EXPECT(!same(a.v.w, b.v.w, BK));
    EXPECT(same(a.v.x, b.v.x, (size_t)a.v.B * a.v.D) && same(a.v.y, b.v.y, (size_t)a.v.B));
    EXPECT(same(a.v.state->q1.params, b.v.state->q1.params, a.v.state->q1.n));
    done(&a), done(&b);
}

static void set_next_online(FlameConfig *c) {
    c->quirks.next_action_policy = NEXTPOL_ONLINE;
}
static void set_next_ema(FlameConfig *c) {
    c->quirks.next_action_policy = NEXTPOL_EMA;
}

FLAME_TEST(test_next_action_policy) {
    /* identical at the first update (EMA = online); after an actor step they differ */
    Run a, b;
    run_one(&a, set_next_online, 4, 2);
    run_one(&b, set_next_ema, 4, 2);
    size_t BD = (size_t)a.v.B * a.v.D;
    EXPECT(same(a.v.next_a, b.v.next_a, BD));
    update_step(&backend_cpu_ops, a.b);
    update_step(&backend_cpu_ops, b.b);
    EXPECT(!same(a.v.next_a, b.v.next_a, BD));
    done(&a), done(&b);
}

static void set_ms_ref(FlameConfig *c) {
    c->flow.sample_steps = 2;
    c->quirks.multistep_scale = QUIRK_REFERENCE;
}
static void set_ms_cons(FlameConfig *c) {
    c->flow.sample_steps = 2;
    c->quirks.multistep_scale = QUIRK_CONSISTENT;
}
static void set_ms1_ref(FlameConfig *c) {
    c->quirks.multistep_scale = QUIRK_REFERENCE;
}
static void set_ms1_cons(FlameConfig *c) {
    c->quirks.multistep_scale = QUIRK_CONSISTENT;
}

FLAME_TEST(test_multistep_scale) {
    /* the 1/N factor of the few-step sampler matters only for N > 1 */
    float obs[8] = {0.1f, -0.2f, 0.3f, 0.4f, -1.0f, 0.5f, 0.0f, 0.2f}, a1[4], a2[4];
    Run r1, c1, r2, c2;
    run_one(&r1, set_ms1_ref, 4, 2);
    run_one(&c1, set_ms1_cons, 4, 2);
    backend_cpu_ops.act(r1.b, obs, 2, ACT_DETERMINISTIC, 0, a1);
    backend_cpu_ops.act(c1.b, obs, 2, ACT_DETERMINISTIC, 0, a2);
    EXPECT(same(a1, a2, 4));
    run_one(&r2, set_ms_ref, 4, 2);
    run_one(&c2, set_ms_cons, 4, 2);
    backend_cpu_ops.act(r2.b, obs, 2, ACT_DETERMINISTIC, 0, a1);
    backend_cpu_ops.act(c2.b, obs, 2, ACT_DETERMINISTIC, 0, a2);
    EXPECT(!same(a1, a2, 4));
    done(&r1), done(&c1), done(&r2), done(&c2);
}

/* ---- the reference code's SAC baseline (quirks.sac_*) */
static void run_sac(Run *r, void (*setup)(FlameConfig *), void (*state)(AgentState *)) {
    small_config(&r->cfg, ALGO_SAC, COMPAT_REFERENCE);
    setup(&r->cfg);
    r->b = make_backend(&r->cfg, 4, 2, 200);
    if (state) {
        AgentState st;
        agent_state_init(&st, &r->cfg, 4, 2);
        backend_cpu_ops.get_state(r->b, &st);
        state(&st);
        backend_cpu_ops.set_state(r->b, &st);
        agent_state_free(&st);
    }
    update_step(&backend_cpu_ops, r->b);
    backend_cpu_debug(r->b, &r->v);
}

static void set_logdet_yes(FlameConfig *c) {
    c->quirks.sac_log_det = TRI_YES;
}
static void set_logdet_no(FlameConfig *c) {
    c->quirks.sac_log_det = TRI_NO;
}

FLAME_TEST(test_sac_log_det) {
    /* log pi(a'|s') with and without -sum log(1 - tanh(pre)^2): the same a', entropies apart by
       exactly that sum, the TD target apart by gamma alpha times it */
    Run y, n;
    run_sac(&y, set_logdet_yes, NULL);
    run_sac(&n, set_logdet_no, NULL);
    int B = y.v.B, D = y.v.D;
    EXPECT(same(y.v.next_a, n.v.next_a, (size_t)B * D));
    for (int i = 0; i < B; i++) {
        double ld = 0;
        for (int d = 0; d < D; d++) {
            double a = y.v.next_a[i * D + d];
            ld += log(1.0 - a * a);
        }
        /* log pi(a') = log N(pre) - sum log(1 - a'^2) with the log-det, so H = -log pi is
           lower by -sum log(1 - a'^2) > 0 */
        EXPECT_NEAR_Q("entropy difference", y.v.ent[i] - n.v.ent[i], ld, 1e-5, 1e-4);
    }
    EXPECT(!same(y.v.y, n.v.y, (size_t)B));
    done(&y), done(&n);
}

/* the policy's raw log std = 1.2 in every coordinate: zero weights into the log-std half of the
   output layer, bias 1.2 */
static void raw_log_std_12(AgentState *st) {
    const Mlp *m = &st->L.pol_trunk;
    int l = m->n_layers - 1, in = m->dims[l], D = st->L.act_dim;
    float *w = st->pol.params + m->w_off[l], *bias = st->pol.params + m->b_off[l];
    for (int o = D; o < 2 * D; o++) {
        memset(w + (size_t)o * in, 0, (size_t)in * sizeof(float));
        bias[o] = 1.2f;
    }
}
static void set_lsmax_05(FlameConfig *c) {
    c->quirks.sac_log_std_max = 0.5;
}
static void set_lsmax_2(FlameConfig *c) {
    c->quirks.sac_log_std_max = 2.0;
}
static void set_lsmax_10(FlameConfig *c) {
    c->quirks.sac_log_std_max = 10.0;
}

FLAME_TEST(test_sac_log_std_max) {
    Run a, b, c;
    run_sac(&a, set_lsmax_05, raw_log_std_12);
    run_sac(&b, set_lsmax_2, raw_log_std_12);
    run_sac(&c, set_lsmax_10, raw_log_std_12);
    int B = a.v.B, D = a.v.D, Np = a.v.Np;
    /* above the raw 1.2 the bound does nothing */
    EXPECT(same(b.v.next_a, c.v.next_a, (size_t)B * D) && same(b.v.ent, c.v.ent, (size_t)B));
    EXPECT(!same(a.v.next_a, b.v.next_a, (size_t)B * D));
    /* at 0.5 every log std is clipped: -log pi = sum (e^2 / 2 + log sqrt(2 pi) + 0.5) without the
       log-det (reference) */
    for (int i = 0; i < B; i++) {
        double h = 0;
        for (int d = 0; d < D; d++) {
            double e = a.v.noise->next_z[(size_t)i * Np * D + d];
            h += 0.5 * e * e + 0.91893853320467274 + 0.5;
        }
        EXPECT_NEAR_Q("clipped entropy", a.v.ent[i], h, 1e-5, 1e-5);
    }
    done(&a), done(&b), done(&c);
}

FLAME_TEST(test_sac_alpha_init) {
    /* reference: log alpha starts at 1 (alpha = e) whatever alpha.init; consistent: log 0.3; a
       SAC-only switch (FLAME starts from alpha.init) */
    struct {
        int algo, quirk;
        float want;
    } c[3] = {{ALGO_SAC, QUIRK_REFERENCE, 1.0f},
              {ALGO_SAC, QUIRK_CONSISTENT, (float)log(0.3)},
              {ALGO_FLAME_M, QUIRK_REFERENCE, (float)log(0.3)}};
    for (int k = 0; k < 3; k++) {
        FlameConfig cfg;
        small_config(&cfg, c[k].algo, COMPAT_REFERENCE);
        cfg.alpha.init = 0.3;
        cfg.quirks.sac_alpha_init = c[k].quirk;
        config_resolve(&cfg);
        AgentState st;
        agent_state_init(&st, &cfg, 4, 2);
        EXPECT_MSG(st.log_alpha == c[k].want, "case %d: log alpha %g", k, st.log_alpha);
        agent_state_free(&st);
    }
}

FLAME_TEST(test_compat_presets) {
    /* compat resolves every quirk; explicit quirk keys override the preset */
    FlameConfig c;
    config_defaults(&c);
    config_resolve(&c);
    EXPECT(c.quirks.time_convention == QUIRK_REFERENCE && c.quirks.softmax_temp == TEMP_EXP_ALPHA &&
           c.quirks.td_entropy == TDENT_MINUS && c.quirks.critic_double_step == TRI_YES &&
           c.quirks.weights_after_critic_step == TRI_YES &&
           c.entropy.estimator == ENT_REFERENCE3 && c.entropy.base_std == 1.0);
    config_defaults(&c);
    c.compat = COMPAT_CONSISTENT;
    config_resolve(&c);
    EXPECT(c.quirks.time_convention == QUIRK_CONSISTENT && c.quirks.softmax_temp == TEMP_ALPHA &&
           c.quirks.td_entropy == TDENT_PLUS && c.quirks.critic_double_step == TRI_NO &&
           c.quirks.weights_after_critic_step == TRI_NO && c.entropy.estimator == ENT_DECOUPLED &&
           c.entropy.base_std == 0.5);
    config_defaults(&c);
    c.compat = COMPAT_CONSISTENT;
    c.quirks.td_entropy = TDENT_OMIT;
    config_resolve(&c);
    EXPECT(c.quirks.td_entropy == TDENT_OMIT && c.quirks.softmax_temp == TEMP_ALPHA);
    config_defaults(&c);
    c.algo = ALGO_FLAME_R;
    config_resolve(&c);
    EXPECT(c.quirks.clip_noisy_action == TRI_YES && c.quirks.critic_double_step == TRI_NO &&
           c.quirks.softmax_temp == TEMP_ALPHA && c.entropy.estimator == ENT_ODE &&
           c.flow.sample_steps == 20 && c.entropy.steps == 20);
    /* FLAME: delayed actor and targets, decaying actor learning rate */
    EXPECT(c.update.policy_delay == 2 && c.update.target_delay == 2 &&
           c.optim.actor_lr_end == 3e-5);
    /* SAC, reference: the authors' baseline; consistent: textbook SAC. Both step actor, targets
       and alpha every update with a constant actor learning rate */
    for (int compat = 0; compat < 2; compat++) {
        config_defaults(&c);
        c.algo = ALGO_SAC;
        c.compat = compat;
        config_resolve(&c);
        bool ref = compat == COMPAT_REFERENCE;
        EXPECT(c.quirks.sac_log_det == (ref ? TRI_NO : TRI_YES));
        EXPECT(c.quirks.sac_log_std_max == (ref ? 0.5 : 2.0));
        EXPECT(c.quirks.sac_alpha_init == (ref ? QUIRK_REFERENCE : QUIRK_CONSISTENT));
        EXPECT(c.update.policy_delay == 1 && c.update.target_delay == 1 && c.alpha.delay == 1);
        EXPECT(c.optim.actor_lr_end == c.optim.actor_lr && c.alpha.lr == 3e-4);
        EXPECT(c.alpha.target_entropy_scale == 1.0 && c.net.activation == ACT_GELU);
        EXPECT(c.update.reward_scale == 0.2 && c.update.gamma == 0.99 && c.update.tau == 0.005);
    }
    /* explicit delays win over the presets */
    config_defaults(&c);
    c.algo = ALGO_SAC;
    c.update.policy_delay = 3;
    config_resolve(&c);
    EXPECT(c.update.policy_delay == 3 && c.update.target_delay == 1);
}

int main(void) {
    RUN_TEST(test_time_convention);
    RUN_TEST(test_softmax_temperature);
    RUN_TEST(test_td_entropy_sign);
    RUN_TEST(test_critic_double_step);
    RUN_TEST(test_clip_noisy_action);
    RUN_TEST(test_weights_after_critic_step);
    RUN_TEST(test_next_action_policy);
    RUN_TEST(test_multistep_scale);
    RUN_TEST(test_sac_log_det);
    RUN_TEST(test_sac_log_std_max);
    RUN_TEST(test_sac_alpha_init);
    RUN_TEST(test_compat_presets);
    return flame_test_report();
}
