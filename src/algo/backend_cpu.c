/*
 * backend_cpu.c: the CPU reference backend: every stage operation of include/flame/backend.h in
 * plain C over the MLP core. This file is the specification the CUDA backend is tested against.
 *
 * Random draws: at the start of each update every draw is materialised in an UpdateNoise, from
 * Philox (addressed by the update index) or from an HDF5 noise bundle; the stages read only from
 * it. Large row counts (B*Np particles, B*K candidates) are processed in chunks of whole states.
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "flame/backend.h"
#include "flame/backend_cpu.h"
#include "flame/check.h"
#include "flame/entropy.h"
#include "flame/flow.h"
#include "flame/flow_math.h"
#include "flame/noise.h"
#include "flame/rng.h"

#define SAC_LOG_STD_MIN (-20.0f)

struct Backend {
    BackendBase base;
    AgentState st;
    Replay replay;
    UpdateNoise nz;
    NoiseFile *noise_in, *noise_rec;
    int B, S, D, K, Np, NP, cap;
    /* minibatch */
    float *obs, *act, *rew, *next_obs, *done;
    /* stage outputs */
    float *y, *ent, *next_a, *a_star;
    float *x, *r, *t, *vbar, *w, *ess;
    float *logpi; /* SAC: log pi of the actor sample, B */
    /* scratch (cap rows) */
    FlowWork fw;
    QWork q1w, q2w;
    float *s_rep, *z_rep, *a_rep, *r_rep, *t_rep, *tan_rep, *g_rep, *q_rep, *da, *da2, *ent_scr;
    float *dout2; /* cap x 2D */
    float *act_z; /* acting particles, grown on demand */
    size_t act_z_cap;
    AgentState pub; /* the state act uses after a publish (the device's lag, made visible) */
    bool published;
    AnalyticQ analytic_q; /* verification mode: replaces both critics */
    void *analytic_ctx;
    float *mem;
};

static float clipf(float x, float lo, float hi) {
    return x < lo ? lo : (x > hi ? hi : x);
}

static float alpha_of(const Backend *b) {
    return expf(b->st.log_alpha);
}

/* ------------------------------------------------------------------ create / destroy */
static int cpu_create(const FlameConfig *cfg, int obs_dim, int act_dim, Backend **out) {
    Backend *b = flame_calloc(1, sizeof *b);
    blas_set_threads(cfg->run.cpu_threads);
    backend_base_init(&b->base, cfg, obs_dim, act_dim);
    agent_state_init(&b->st, cfg, obs_dim, act_dim);
    replay_init(&b->replay, cfg->update.replay_size, obs_dim, act_dim);
    b->B = cfg->update.batch_size;
    b->S = obs_dim;
    b->D = act_dim;
    b->K = cfg->flow.sample_k;
    b->Np = cfg->flow.num_particles;
    b->NP = cfg->entropy.probes;
    noise_alloc(&b->nz, b->B, b->S, b->D, b->K, b->Np, b->NP);
    if (cfg->backend.noise_file[0]) {
        int rc = noise_file_open(cfg->backend.noise_file, &b->nz, &b->noise_in);
        if (rc != FLAME_OK) {
            noise_free(&b->nz);
            replay_free(&b->replay);
            agent_state_free(&b->st);
            flame_free(b);
            return rc;
        }
    }
    int cap = 2048;
    cap = cap < b->Np ? b->Np : cap;
    cap = cap < b->K ? b->K : cap;
    cap = cap < b->B ? b->B : cap;
    b->cap = cap;
    flow_work_alloc(&b->fw, &b->st.L, cap);
    qwork_alloc(&b->q1w, &b->st.L, cap);
    qwork_alloc(&b->q2w, &b->st.L, cap);
    size_t B = (size_t)b->B, S = (size_t)b->S, D = (size_t)b->D, K = (size_t)b->K;
    size_t C = (size_t)cap;
    size_t n = B * (2 * S + D + 2)       /* batch */
               + B * (3 + 2 * D)         /* y, ent, logpi, next_a, a_star */
               + B * (D + 2 + D + 1)     /* x, r, t, vbar, ess */
               + B * K                   /* w */
               + C * (S + 2 * D + 2 + D + D + 1 + 2 * D + 2 * D) /* scratch rows */
               + entropy_scratch_floats(&b->st.L, b->B);
    b->mem = flame_calloc(n, sizeof(float));
    float *p = b->mem;
#define TAKE(ptr, count) (ptr) = p, p += (count)
    TAKE(b->obs, B * S);
    TAKE(b->next_obs, B * S);
    TAKE(b->act, B * D);
    TAKE(b->rew, B);
    TAKE(b->done, B);
    TAKE(b->y, B);
    TAKE(b->ent, B);
    TAKE(b->logpi, B);
    TAKE(b->next_a, B * D);
    TAKE(b->a_star, B * D);
    TAKE(b->x, B * D);
    TAKE(b->r, B);
    TAKE(b->t, B);
    TAKE(b->vbar, B * D);
    TAKE(b->ess, B);
    TAKE(b->w, B * K);
    TAKE(b->s_rep, C * S);
    TAKE(b->z_rep, C * D);
    TAKE(b->a_rep, C * D);
    TAKE(b->r_rep, C);
    TAKE(b->t_rep, C);
    TAKE(b->tan_rep, C * D);
    TAKE(b->g_rep, C * D);
    TAKE(b->q_rep, C);
    TAKE(b->da, C * D);
    TAKE(b->da2, C * D);
    TAKE(b->dout2, C * 2 * D);
    TAKE(b->ent_scr, entropy_scratch_floats(&b->st.L, b->B));
#undef TAKE
    *out = b;
    return FLAME_OK;
}

static void cpu_destroy(Backend *b) {
    if (!b) {
        return;
    }
    noise_file_close(b->noise_in);
    noise_file_close(b->noise_rec);
    noise_free(&b->nz);
    flow_work_free(&b->fw);
    qwork_free(&b->q1w);
    qwork_free(&b->q2w);
    replay_free(&b->replay);
    agent_state_free(&b->st);
    if (b->published) {
        agent_state_free(&b->pub);
    }
    flame_free(b->act_z);
    flame_free(b->mem);
    flame_free(b);
}

int backend_cpu_record_noise(Backend *b, const char *path, bool with_batch) {
    noise_file_close(b->noise_rec);
    b->noise_rec = NULL;
    return noise_file_create(path, &b->nz, with_batch, b->base.counters.updates, &b->noise_rec);
}

/* ------------------------------------------------------------------ sampling helpers */

/* Policy samples for `rows` rows from base draws z (already scaled): FLAME-M N-step MeanFlow
   (z <- z - c u(z, tau-1/N, tau), c = 1 as in the reference code or 1/N), FLAME-R N Euler steps.
   The result (rows x D) is written to `a`, not clipped: best-of-N scores the unclipped samples and
   clips only the chosen one (both variants of the reference code). */
static void policy_sample(Backend *b, const float *P, const float *s, const float *z, int rows,
                          float *a) {
    const FlameConfig *cfg = b->base.cfg;
    const AgentLayout *L = &b->st.L;
    int D = b->D, N = cfg->flow.sample_steps;
    memcpy(a, z, (size_t)rows * D * sizeof(float));
    if (cfg->algo == ALGO_FLAME_M) {
        float c = cfg->quirks.multistep_scale == QUIRK_CONSISTENT ? 1.0f / (float)N : 1.0f;
        for (int k = 0; k < N; k++) {
            float tau = (float)(1.0 - (double)k / N), rk = (float)(1.0 - (double)(k + 1) / N);
            for (int i = 0; i < rows; i++) {
                b->r_rep[i] = rk;
                b->t_rep[i] = tau;
            }
            const float *u = flow_forward(L, P, s, a, b->r_rep, b->t_rep, rows, &b->fw);
            for (size_t i = 0; i < (size_t)rows * D; i++) {
                a[i] -= c * u[i];
            }
        }
    } else {
        for (int k = 0; k < N; k++) {
            for (int i = 0; i < rows; i++) {
                b->t_rep[i] = (float)((double)k / N);
            }
            const float *v = flow_forward(L, P, s, a, NULL, b->t_rep, rows, &b->fw);
            for (size_t i = 0; i < (size_t)rows * D; i++) {
                a[i] += v[i] / (float)N;
            }
        }
    }
}

/* min(Q1, Q2) for rows, with either the online or the target critics */
static void twin_q(Backend *b, const float *s, const float *a, int rows, bool target, float *q) {
    if (b->analytic_q) {
        b->analytic_q(s, a, rows, b->S, b->D, q, b->analytic_ctx);
        return;
    }
    const float *P1 = target ? b->st.q1_targ : b->st.q1.params;
    const float *P2 = target ? b->st.q2_targ : b->st.q2.params;
    const float *q1 = critic_forward(&b->st.L, P1, s, a, rows, &b->q1w);
    const float *q2 = critic_forward(&b->st.L, P2, s, a, rows, &b->q2w);
    for (int i = 0; i < rows; i++) {
        q[i] = q1[i] < q2[i] ? q1[i] : q2[i];
    }
}

/* Best-of-Np: for each of n states, Np particles z (standard normals, n x Np x D) through the
   policy P, scored by the online min twin-Q on the unclipped sample; the best one clipped to out. */
static void best_of_n(Backend *b, const float *P, const float *s, const float *zstd, int n,
                      float *out) {
    const FlameConfig *cfg = b->base.cfg;
    int S = b->S, D = b->D, Np = b->Np;
    int per = b->cap / Np; /* states per chunk */
    float sd = (float)cfg->flow.base_std;
    for (int s0 = 0; s0 < n; s0 += per) {
        int ns = n - s0 < per ? n - s0 : per, rows = ns * Np;
        for (int i = 0; i < ns; i++) {
            for (int p = 0; p < Np; p++) {
                size_t row = (size_t)i * Np + p;
                memcpy(b->s_rep + row * S, s + (size_t)(s0 + i) * S, (size_t)S * sizeof(float));
                const float *zz = zstd + ((size_t)(s0 + i) * Np + p) * D;
                for (int d = 0; d < D; d++) {
                    b->z_rep[row * D + d] = sd * zz[d];
                }
            }
        }
        policy_sample(b, P, b->s_rep, b->z_rep, rows, b->a_rep);
        twin_q(b, b->s_rep, b->a_rep, rows, false, b->q_rep);
        for (int i = 0; i < ns; i++) {
            int best = 0;
            for (int p = 1; p < Np; p++) {
                if (b->q_rep[i * Np + p] > b->q_rep[i * Np + best]) {
                    best = p;
                }
            }
            const float *a = b->a_rep + ((size_t)i * Np + best) * D;
            for (int d = 0; d < D; d++) {
                out[(size_t)(s0 + i) * D + d] = clipf(a[d], -1.0f, 1.0f);
            }
        }
    }
}

/* SAC: mean and raw log std of the Gaussian before the tanh, for rows */
static const float *sac_forward(Backend *b, const float *P, const float *s, int rows) {
    return gauss_forward(&b->st.L, P, s, rows, &b->fw);
}

/* the log std clipped to [-20, quirks.sac_log_std_max] */
static float sac_log_std(const Backend *b, float raw) {
    return clipf(raw, SAC_LOG_STD_MIN, (float)b->base.cfg->quirks.sac_log_std_max);
}

/* log(1 - tanh(p)^2) without cancellation: 2 (log 2 - p - softplus(-2p)) */
static float log1m_tanh2(float p) {
    float m2p = -2.0f * p;
    float sp = m2p > 20.0f ? m2p : log1pf(expf(m2p));
    return 2.0f * (0.69314718f - p - sp);
}

/* log N(pre; mu, sigma) of one coordinate with pre = mu + sigma e, minus the tanh log-det
   log(1 - tanh(pre)^2) unless quirks.sac_log_det = no (the reference code leaves it out) */
static double sac_log_prob(const Backend *b, float e, float ls, float pre) {
    double lp = -0.5 * e * e - 0.91893853320467274 - ls;
    return b->base.cfg->quirks.sac_log_det == TRI_YES ? lp - log1m_tanh2(pre) : lp;
}

/* ------------------------------------------------------------------ act */
/* actions with the state b->st holds (cpu_act: the live or the published one) */
static void act_with(Backend *b, const float *obs, int n, ActMode mode, uint32_t call,
                     float *actions) {
    const FlameConfig *cfg = b->base.cfg;
    uint64_t seed = (uint64_t)cfg->run.seed;
    int D = b->D, Np = b->Np;
    if (cfg->algo == ALGO_SAC) {
        for (int s0 = 0; s0 < n; s0 += b->cap) {
            int rows = n - s0 < b->cap ? n - s0 : b->cap;
            const float *o = sac_forward(b, b->st.pol.params, obs + (size_t)s0 * b->S, rows);
            for (int i = 0; i < rows; i++) {
                for (int d = 0; d < D; d++) {
                    float mu = o[(size_t)i * 2 * D + d];
                    float pre = mu;
                    if (mode == ACT_EXPLORE) {
                        float ls = sac_log_std(b, o[(size_t)i * 2 * D + D + d]);
                        pre += expf(ls) * rng_normal(seed, RNG_STREAM_ACT_NOISE, call,
                                                     (uint32_t)(s0 + i), (uint32_t)d);
                    }
                    actions[(size_t)(s0 + i) * D + d] = tanhf(pre);
                }
            }
        }
        return;
    }
    /* FLAME: best-of-Np from the EMA policy, scored by the online critics */
    size_t need = (size_t)n * Np * D;
    if (need > b->act_z_cap) {
        flame_free(b->act_z);
        b->act_z = flame_malloc(need * sizeof(float));
        b->act_z_cap = need;
    }
    float *zstd = b->act_z;
    uint32_t stream = mode == ACT_EXPLORE ? RNG_STREAM_ACT_Z : RNG_STREAM_EVAL_Z;
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < Np * D; j++) {
            zstd[(size_t)i * Np * D + j] = rng_normal(seed, stream, call, (uint32_t)i, (uint32_t)j);
        }
    }
    best_of_n(b, b->st.pol_ema, obs, zstd, n, actions);
    if (mode == ACT_EXPLORE) {
        float scale = alpha_of(b) * (float)cfg->flow.noise_scale;
        for (int i = 0; i < n; i++) {
            for (int d = 0; d < D; d++) {
                actions[(size_t)i * D + d] +=
                    scale * rng_normal(seed, RNG_STREAM_ACT_NOISE, call, (uint32_t)i, (uint32_t)d);
            }
        }
    }
}

/* publish: a copy of the state as it is now, which act uses until the next publish. The CPU
   runs no update beside act, but with it a run with backend.overlap acts as the CUDA backend's
   does: one iteration late. */
static void cpu_publish(Backend *b) {
    if (!b->published) {
        agent_state_init(&b->pub, b->base.cfg, b->S, b->D);
        b->published = true;
    }
    agent_state_copy(&b->pub, &b->st);
}

static void cpu_act(Backend *b, const float *obs, int n, ActMode mode, uint32_t call,
                    float *actions) {
    if (!b->published) {
        act_with(b, obs, n, mode, call, actions);
        return;
    }
    AgentState live = b->st; /* act reads the state through b->st only */
    b->st = b->pub;
    act_with(b, obs, n, mode, call, actions);
    b->st = live;
}

/* ------------------------------------------------------------------ replay */
static void cpu_replay_push(Backend *b, const float *obs, const float *act, const float *rew,
                            const float *next_obs, const uint8_t *done, int n) {
    replay_push(&b->replay, obs, act, rew, next_obs, done, n);
}

static int64_t cpu_replay_size(Backend *b) {
    return b->replay.size;
}

static void cpu_replay_sample(Backend *b, const UpdateCtx *u) {
    const FlameConfig *cfg = b->base.cfg;
    size_t B = (size_t)b->B, S = (size_t)b->S, D = (size_t)b->D;
    /* all random draws of this update */
    if (b->noise_in) {
        int rc = noise_file_read(b->noise_in, u->n, &b->nz);
        if (rc != FLAME_OK) {
            flame_fatal("%s", flame_last_error());
        }
    } else {
        noise_fill_philox(&b->nz, cfg, (uint32_t)u->n);
    }
    if (b->nz.have_batch) {
        memcpy(b->obs, b->nz.obs, B * S * sizeof(float));
        memcpy(b->act, b->nz.act, B * D * sizeof(float));
        memcpy(b->rew, b->nz.rew, B * sizeof(float));
        memcpy(b->next_obs, b->nz.next_obs, B * S * sizeof(float));
        memcpy(b->done, b->nz.done, B * sizeof(float));
    } else {
        replay_gather(&b->replay, (uint64_t)cfg->run.seed, (uint32_t)u->n, b->B, b->obs, b->act,
                      b->rew, b->next_obs, b->done);
    }
}

/* ------------------------------------------------------------------ critic target */
static void cpu_critic_target(Backend *b, const UpdateCtx *u) {
    const FlameConfig *cfg = b->base.cfg;
    const AgentLayout *L = &b->st.L;
    int B = b->B, D = b->D;
    float alpha = alpha_of(b);
    double ent_sum = 0;
    if (cfg->algo == ALGO_SAC) {
        /* a' = tanh(mu + sigma eps) from the online policy; y uses -alpha log pi(a'|s') */
        const float *o = sac_forward(b, b->st.pol.params, b->next_obs, B);
        for (int i = 0; i < B; i++) {
            double lp = 0;
            for (int d = 0; d < D; d++) {
                float mu = o[(size_t)i * 2 * D + d];
                float ls = sac_log_std(b, o[(size_t)i * 2 * D + D + d]);
                float e = b->nz.next_z[(size_t)i * b->Np * D + d];
                float pre = mu + expf(ls) * e;
                b->next_a[(size_t)i * D + d] = tanhf(pre);
                lp += sac_log_prob(b, e, ls, pre);
            }
            b->ent[i] = (float)-lp;
            ent_sum += -lp;
        }
    } else {
        const float *P = cfg->quirks.next_action_policy == NEXTPOL_EMA ? b->st.pol_ema
                                                                        : b->st.pol.params;
        best_of_n(b, P, b->next_obs, b->nz.next_z, B, b->a_star);
        float scale = alpha * (float)cfg->flow.noise_scale;
        for (size_t i = 0; i < (size_t)B * D; i++) {
            b->next_a[i] = b->a_star[i] + scale * b->nz.next_xi[i];
        }
        /* entropy of the online policy at s', decoupled from a' (fresh base draws) */
        entropy_estimate(L, b->st.pol.params, cfg, b->next_obs, b->nz.ent_z, b->nz.ent_probe,
                         b->a_star, B, &b->fw, b->ent_scr, b->ent);
        for (int i = 0; i < B; i++) {
            ent_sum += b->ent[i];
        }
    }
    /* y = s r + gamma (1 - d) (min Q'(s', a') + c alpha H) */
    float c = 0.0f;
    if (cfg->algo == ALGO_SAC || cfg->quirks.td_entropy == TDENT_PLUS) {
        c = 1.0f;
    } else if (cfg->quirks.td_entropy == TDENT_MINUS) {
        c = -1.0f;
    }
    twin_q(b, b->next_obs, b->next_a, B, true, b->q_rep);
    double ysum = 0;
    float rs = (float)cfg->update.reward_scale, g = (float)cfg->update.gamma;
    for (int i = 0; i < B; i++) {
        b->y[i] = rs * b->rew[i] + g * (1.0f - b->done[i]) * (b->q_rep[i] + c * alpha * b->ent[i]);
        ysum += b->y[i];
    }
    b->base.metrics.target_mean = ysum / B;
    b->base.metrics.entropy = ent_sum / B;
    b->base.metrics.alpha = alpha;
    (void)u;
}

/* ------------------------------------------------------------------ critic step */
static void cpu_critic_step(Backend *b, const UpdateCtx *u, CriticPhase phase) {
    const FlameConfig *cfg = b->base.cfg;
    const AgentLayout *L = &b->st.L;
    int B = b->B;
    ParamBlob *q[2] = {&b->st.q1, &b->st.q2};
    if (phase == CRITIC_GRAD_AND_STEP) {
        for (int k = 0; k < 2; k++) {
            QWork *w = k ? &b->q2w : &b->q1w;
            const float *qv = critic_forward(L, q[k]->params, b->obs, b->act, B, w);
            double loss = 0, qs = 0, qmin = INFINITY, qmax = -INFINITY;
            for (int i = 0; i < B; i++) {
                float e = qv[i] - b->y[i];
                loss += (double)e * e;
                b->q_rep[i] = 2.0f * e / (float)B;
                qs += qv[i];
                qmin = fmin(qmin, qv[i]);
                qmax = fmax(qmax, qv[i]);
            }
            b->base.metrics.critic_loss[k] = loss / B;
            if (k == 0) {
                b->base.metrics.q_mean = qs / B;
                b->base.metrics.q_min = qmin;
                b->base.metrics.q_max = qmax;
            }
            memset(q[k]->grads, 0, q[k]->n * sizeof(float));
            critic_backward(L, q[k]->params, q[k]->grads, w, b->q_rep, B, NULL);
        }
    }
    /* one Adam step with the stored gradient (REAPPLY: the same gradient again) */
    int64_t t = b->base.counters.critic_steps + 1;
    for (int k = 0; k < 2; k++) {
        adam_step(q[k]->params, q[k]->grads, q[k]->m, q[k]->v, q[k]->n, cfg->optim.critic_lr,
                  cfg->optim.beta1, cfg->optim.beta2, cfg->optim.eps, t);
    }
    (void)u;
}

/* ------------------------------------------------------------------ Q-reweighting */
static void cpu_qweight(Backend *b, const UpdateCtx *u) {
    const FlameConfig *cfg = b->base.cfg;
    if (cfg->algo == ALGO_SAC) {
        return;
    }
    uint64_t seed = (uint64_t)cfg->run.seed;
    int B = b->B, D = b->D, K = b->K, S = b->S;
    bool flame_r = cfg->algo == ALGO_FLAME_R;
    bool consistent = !flame_r && cfg->quirks.time_convention == QUIRK_CONSISTENT;
    bool clip_x = cfg->quirks.clip_noisy_action == TRI_YES;
    /* consistent convention: noise of std sd0 = flow.base_std at t = 1, as the sampler draws it */
    float sd0 = consistent ? (float)cfg->flow.base_std : 1.0f;
    float tmin = (float)cfg->flow.t_min, tspan = (float)(cfg->flow.t_max - cfg->flow.t_min);

    /* times, noisy actions */
    for (int i = 0; i < B; i++) {
        float u0 = tmin + tspan * b->nz.times[2 * i], u1 = tmin + tspan * b->nz.times[2 * i + 1];
        if (flame_r) {
            b->t[i] = u0;
            b->r[i] = 0.0f;
        } else {
            b->t[i] = u0 > u1 ? u0 : u1;
            b->r[i] = u0 > u1 ? u1 : u0;
            if (b->nz.req[i] < (float)cfg->flow.r_eq_t_frac) {
                b->r[i] = b->t[i];
            }
        }
        float t = b->t[i];
        for (int d = 0; d < D; d++) {
            float a = b->act[(size_t)i * D + d], e0 = b->nz.eps0[(size_t)i * D + d];
            float x = flow_noisy_action(a, e0, t, sd0, consistent);
            b->x[(size_t)i * D + d] = clip_x ? clipf(x, -1.0f, 1.0f) : x;
        }
    }

    /* posterior candidates: eps_bk truncated so that a-hat lies in [-1, 1]^D */
    if (!b->noise_in) {
        for (int i = 0; i < B; i++) {
            double t = b->t[i];
            for (int k = 0; k < K; k++) {
                for (int d = 0; d < D; d++) {
                    double lo, hi;
                    flow_posterior_bounds(b->x[(size_t)i * D + d], t, sd0, consistent, &lo, &hi);
                    b->nz.eps_post[((size_t)i * K + k) * D + d] =
                        (float)rng_trunc_normal(seed, RNG_STREAM_TRUNC, (uint32_t)u->n, (uint32_t)i,
                                                (uint32_t)(k * D + d), lo, hi);
                }
            }
        }
    }

    /* twin-critic scores of the B*K candidates, in chunks of whole states */
    float alpha = alpha_of(b);
    float T;
    if (cfg->quirks.softmax_temp == TEMP_EXP_ALPHA) {
        T = expf(fmaxf(alpha, 1e-5f));
    } else {
        T = fmaxf(alpha, flame_r ? 1e-3f : 1e-5f);
    }
    int per = b->cap / K;
    double ess_sum = 0, ess_min = INFINITY;
    for (int s0 = 0; s0 < B; s0 += per) {
        int ns = B - s0 < per ? B - s0 : per, rows = ns * K;
        for (int i = 0; i < ns; i++) {
            int bi = s0 + i;
            float t = b->t[bi];
            for (int k = 0; k < K; k++) {
                size_t row = (size_t)i * K + k;
                memcpy(b->s_rep + row * S, b->obs + (size_t)bi * S, (size_t)S * sizeof(float));
                for (int d = 0; d < D; d++) {
                    b->a_rep[row * D + d] =
                        flow_candidate(b->x[(size_t)bi * D + d], t,
                                       b->nz.eps_post[((size_t)bi * K + k) * D + d], sd0, consistent);
                }
            }
        }
        twin_q(b, b->s_rep, b->a_rep, rows, false, b->q_rep);
        /* softmax over k, ESS, v-bar = sum_k w_k (eps_k - a-hat_k) */
        for (int i = 0; i < ns; i++) {
            int bi = s0 + i;
            const float *q = b->q_rep + (size_t)i * K;
            float qmax = -FLT_MAX;
            for (int k = 0; k < K; k++) {
                qmax = fmaxf(qmax, q[k]);
            }
            double z = 0;
            float *w = b->w + (size_t)bi * K;
            for (int k = 0; k < K; k++) {
                w[k] = expf((q[k] - qmax) / T);
                z += w[k];
            }
            double sw2 = 0;
            for (int k = 0; k < K; k++) {
                w[k] = (float)(w[k] / z);
                sw2 += (double)w[k] * w[k];
            }
            b->ess[bi] = (float)(1.0 / sw2);
            ess_sum += b->ess[bi];
            ess_min = fmin(ess_min, b->ess[bi]);
            for (int d = 0; d < D; d++) {
                double v = 0;
                for (int k = 0; k < K; k++) {
                    float e = sd0 * b->nz.eps_post[((size_t)bi * K + k) * D + d];
                    v += (double)w[k] * (e - b->a_rep[((size_t)i * K + k) * D + d]);
                }
                b->vbar[(size_t)bi * D + d] = (float)v;
            }
        }
    }
    b->base.metrics.ess_mean = ess_sum / B;
    b->base.metrics.ess_min = ess_min;
}

/* noise of candidate k of batch row i: sd0 * eps_post (sd0 = flow.base_std in the consistent
   convention, 1 in the reference one) */
static float cand_noise(const Backend *b, bool consistent, int i, int k, int d) {
    float sd0 = consistent ? (float)b->base.cfg->flow.base_std : 1.0f;
    return sd0 * b->nz.eps_post[((size_t)i * b->K + k) * b->D + d];
}

/* a-hat of candidate k of batch row i (from x, t and eps_post) */
static float cand(const Backend *b, bool consistent, int i, int k, int d) {
    float sd0 = consistent ? (float)b->base.cfg->flow.base_std : 1.0f;
    return flow_candidate(b->x[(size_t)i * b->D + d], b->t[i],
                          b->nz.eps_post[((size_t)i * b->K + k) * b->D + d], sd0, consistent);
}

/* ------------------------------------------------------------------ policy step */

/* FLAME-M flow-matching loss; accumulates its gradient into G, returns the loss */
static double fm_loss_meanflow(Backend *b, float *G, bool consistent, float weight) {
    const FlameConfig *cfg = b->base.cfg;
    const AgentLayout *L = &b->st.L;
    const float *P = b->st.pol.params;
    int B = b->B, D = b->D, K = b->K, S = b->S;
    double scale = 1.0 / ((double)B * D), loss = 0, jmax = 0;
    double gscale = 2.0 * scale * weight; /* d(weight * loss)/du = 2 weight (u - y) / (B D) */
    if (cfg->flow.collapse_k) {
        /* one JVP per row with tangent (v-bar, 0, 1): y-bar = v-bar - (t - r) du */
        for (int i = 0; i < B; i++) {
            b->t_rep[i] = 1.0f;
        }
        const float *du;
        const float *uu = flow_jvp(L, P, b->obs, b->x, b->r, b->t, b->vbar, b->t_rep, B, &b->fw,
                                   &du);
        for (int i = 0; i < B; i++) {
            float h = b->t[i] - b->r[i];
            for (int d = 0; d < D; d++) {
                size_t j = (size_t)i * D + d;
                float ybar = b->vbar[j] - h * du[j];
                float e = uu[j] - ybar;
                loss += (double)e * e;
                b->g_rep[j] = (float)gscale * e;
                jmax = fmax(jmax, fabsf(du[j]));
            }
        }
        flow_backward(L, P, G, &b->fw, b->g_rep, B, NULL);
    } else {
        /* the B*K-row form of the reference code: JVP per candidate, weighted squared error */
        int per = b->cap / K;
        for (int s0 = 0; s0 < B; s0 += per) {
            int ns = B - s0 < per ? B - s0 : per, rows = ns * K;
            float *xr = b->da, *rr = b->r_rep, *tr = b->t_rep, *ones = b->q_rep;
            for (int i = 0; i < ns; i++) {
                int bi = s0 + i;
                for (int k = 0; k < K; k++) {
                    size_t row = (size_t)i * K + k;
                    memcpy(b->s_rep + row * S, b->obs + (size_t)bi * S, (size_t)S * sizeof(float));
                    memcpy(xr + row * D, b->x + (size_t)bi * D, (size_t)D * sizeof(float));
                    rr[row] = b->r[bi];
                    tr[row] = b->t[bi];
                    ones[row] = 1.0f;
                    for (int d = 0; d < D; d++) {
                        b->tan_rep[row * D + d] =
                            cand_noise(b, consistent, bi, k, d) - cand(b, consistent, bi, k, d);
                    }
                }
            }
            const float *du;
            const float *uu = flow_jvp(L, P, b->s_rep, xr, rr, tr, b->tan_rep, ones, rows, &b->fw,
                                       &du);
            for (int i = 0; i < ns; i++) {
                int bi = s0 + i;
                float h = b->t[bi] - b->r[bi];
                for (int k = 0; k < K; k++) {
                    size_t row = (size_t)i * K + k;
                    float wk = b->w[(size_t)bi * K + k];
                    for (int d = 0; d < D; d++) {
                        size_t j = row * D + d;
                        float yk = b->tan_rep[j] - h * du[j];
                        float e = uu[j] - yk;
                        loss += (double)wk * e * e;
                        b->g_rep[j] = (float)gscale * wk * e;
                        jmax = fmax(jmax, fabsf(du[j]));
                    }
                }
            }
            flow_backward(L, P, G, &b->fw, b->g_rep, rows, NULL);
        }
    }
    b->base.metrics.jvp_max = jmax;
    return weight * loss * scale;
}

/* FLAME-R: weighted regression of v(x, t) on u_k = a-hat_k - eps_k, mean over B*K*D */
static double fm_loss_rectified(Backend *b, float *G) {
    const FlameConfig *cfg = b->base.cfg;
    const AgentLayout *L = &b->st.L;
    int B = b->B, D = b->D, K = b->K;
    double scale = 1.0 / ((double)B * K * D), loss = 0;
    const float *v = flow_forward(L, b->st.pol.params, b->obs, b->x, NULL, b->t, B, &b->fw);
    for (int i = 0; i < B; i++) {
        for (int d = 0; d < D; d++) {
            size_t j = (size_t)i * D + d;
            double g = 0;
            if (cfg->flow.collapse_k) {
                float ubar = -b->vbar[j];
                float e = v[j] - ubar;
                loss += (double)e * e;
                g = 2.0 * e;
            } else {
                for (int k = 0; k < K; k++) {
                    float wk = b->w[(size_t)i * K + k];
                    float uk = cand(b, false, i, k, d) - b->nz.eps_post[((size_t)i * K + k) * D + d];
                    float e = v[j] - uk;
                    loss += (double)wk * e * e;
                    g += 2.0 * wk * e;
                }
            }
            b->g_rep[j] = (float)(g * scale);
        }
    }
    flow_backward(L, b->st.pol.params, G, &b->fw, b->g_rep, B, NULL);
    return loss * scale;
}

/* FLAME-M -Q term: -w mean min Q'(s, clip(z - u(z, 0, 1))) through the target critics */
static double q_term(Backend *b, float *G, float weight) {
    const FlameConfig *cfg = b->base.cfg;
    const AgentLayout *L = &b->st.L;
    const float *P = b->st.pol.params;
    int B = b->B, D = b->D;
    float sd = (float)cfg->flow.base_std;
    for (int i = 0; i < B; i++) {
        b->r_rep[i] = 0.0f;
        b->t_rep[i] = 1.0f;
    }
    for (size_t i = 0; i < (size_t)B * D; i++) {
        b->z_rep[i] = sd * b->nz.qterm_z[i];
    }
    const float *u = flow_forward(L, P, b->obs, b->z_rep, b->r_rep, b->t_rep, B, &b->fw);
    for (size_t i = 0; i < (size_t)B * D; i++) {
        float araw = b->z_rep[i] - u[i];
        b->a_rep[i] = clipf(araw, -1.0f, 1.0f);
        b->tan_rep[i] = (araw >= -1.0f && araw <= 1.0f) ? 1.0f : 0.0f; /* clip mask */
    }
    const float *q1 = critic_forward(L, b->st.q1_targ, b->obs, b->a_rep, B, &b->q1w);
    const float *q2 = critic_forward(L, b->st.q2_targ, b->obs, b->a_rep, B, &b->q2w);
    double loss = 0;
    float *dq1 = b->q_rep, *dq2 = b->r_rep; /* r_rep is free again after the forward */
    for (int i = 0; i < B; i++) {
        bool first = q1[i] <= q2[i];
        loss += first ? q1[i] : q2[i];
        dq1[i] = first ? -weight / (float)B : 0.0f;
        dq2[i] = first ? 0.0f : -weight / (float)B;
    }
    critic_backward(L, b->st.q1_targ, NULL, &b->q1w, dq1, B, b->da);
    critic_backward(L, b->st.q2_targ, NULL, &b->q2w, dq2, B, b->da2);
    /* a_raw = z - u: dL/du = -dL/da (inside the box) */
    for (size_t i = 0; i < (size_t)B * D; i++) {
        b->g_rep[i] = -(b->da[i] + b->da2[i]) * b->tan_rep[i];
    }
    flow_backward(L, P, G, &b->fw, b->g_rep, B, NULL);
    return -weight * loss / B;
}

/* SAC actor: mean(alpha log pi(a|s) - min Q(s, a)), a = tanh(mu + sigma eps) */
static double sac_actor(Backend *b, float *G) {
    const FlameConfig *cfg = b->base.cfg;
    const AgentLayout *L = &b->st.L;
    int B = b->B, D = b->D;
    float alpha = alpha_of(b);
    const float *o = sac_forward(b, b->st.pol.params, b->obs, B);
    float *pre = b->g_rep, *sig_e = b->tan_rep;
    double lp_sum = 0;
    for (int i = 0; i < B; i++) {
        double lp = 0;
        for (int d = 0; d < D; d++) {
            size_t j = (size_t)i * D + d;
            float mu = o[(size_t)i * 2 * D + d];
            float ls = sac_log_std(b, o[(size_t)i * 2 * D + D + d]);
            float e = b->nz.sac_eps[j];
            sig_e[j] = expf(ls) * e;
            pre[j] = mu + sig_e[j];
            b->a_rep[j] = tanhf(pre[j]);
            lp += sac_log_prob(b, e, ls, pre[j]);
        }
        b->logpi[i] = (float)lp;
        lp_sum += lp;
    }
    const float *q1 = critic_forward(L, b->st.q1.params, b->obs, b->a_rep, B, &b->q1w);
    const float *q2 = critic_forward(L, b->st.q2.params, b->obs, b->a_rep, B, &b->q2w);
    double qsum = 0;
    float *dq1 = b->q_rep, *dq2 = b->r_rep;
    for (int i = 0; i < B; i++) {
        bool first = q1[i] <= q2[i];
        qsum += first ? q1[i] : q2[i];
        dq1[i] = first ? 1.0f : 0.0f;
        dq2[i] = first ? 0.0f : 1.0f;
    }
    critic_backward(L, b->st.q1.params, NULL, &b->q1w, dq1, B, b->da);
    critic_backward(L, b->st.q2.params, NULL, &b->q2w, dq2, B, b->da2);
    /* dL/dmu = (2 alpha a - dQ/da (1 - a^2)) / B; dL/dls = (alpha (2 a sigma eps - 1)
       - dQ/da (1 - a^2) sigma eps) / B, zero where the log std is clipped; without the log-det
       term (quirks.sac_log_det = no) the 2 alpha a parts vanish */
    float *dout = b->dout2;
    float c_ld = cfg->quirks.sac_log_det == TRI_YES ? 2.0f : 0.0f;
    float ls_max = (float)cfg->quirks.sac_log_std_max;
    for (int i = 0; i < B; i++) {
        for (int d = 0; d < D; d++) {
            size_t j = (size_t)i * D + d;
            float a = b->a_rep[j], dqa = b->da[j] + b->da2[j];
            float dpre = (c_ld * alpha * a - dqa * (1.0f - a * a)) / (float)B;
            float raw = o[(size_t)i * 2 * D + D + d];
            bool inside = raw >= SAC_LOG_STD_MIN && raw <= ls_max;
            dout[(size_t)i * 2 * D + d] = dpre;
            dout[(size_t)i * 2 * D + D + d] =
                inside ? (-alpha / (float)B + dpre * sig_e[j]) : 0.0f;
        }
    }
    gauss_backward(L, b->st.pol.params, G, &b->fw, dout, B);
    b->base.metrics.entropy = -lp_sum / B;
    return (alpha * lp_sum - qsum) / B;
}

/* The actor loss of the current batch and draws; its gradient is written to G (zeroed first). */
static double actor_loss(Backend *b, float *G) {
    const FlameConfig *cfg = b->base.cfg;
    memset(G, 0, b->st.pol.n * sizeof(float));
    double fm = 0, qt = 0;
    if (cfg->algo == ALGO_SAC) {
        fm = sac_actor(b, G);
    } else if (cfg->algo == ALGO_FLAME_R) {
        fm = fm_loss_rectified(b, G);
    } else {
        if (cfg->flow.fm_weight > 0) {
            fm = fm_loss_meanflow(b, G, cfg->quirks.time_convention == QUIRK_CONSISTENT,
                                  (float)cfg->flow.fm_weight);
        }
        if (cfg->flow.actor_q_weight > 0) {
            qt = q_term(b, G, (float)cfg->flow.actor_q_weight);
        }
    }
    b->base.metrics.fm_loss = fm;
    b->base.metrics.qterm_loss = qt;
    b->base.metrics.actor_loss = fm + qt;
    return fm + qt;
}

double backend_cpu_actor_loss(Backend *b, float *grads) {
    float *G = grads ? grads : b->st.pol.grads;
    return actor_loss(b, G);
}

static void cpu_policy_step(Backend *b, const UpdateCtx *u) {
    const FlameConfig *cfg = b->base.cfg;
    ParamBlob *pb = &b->st.pol;
    actor_loss(b, pb->grads);
    adam_step(pb->params, pb->grads, pb->m, pb->v, pb->n, u->actor_lr, cfg->optim.beta1,
              cfg->optim.beta2, cfg->optim.eps, b->base.counters.actor_steps + 1);
}

/* ------------------------------------------------------------------ alpha, targets */
static void cpu_alpha_step(Backend *b, const UpdateCtx *u) {
    const FlameConfig *cfg = b->base.cfg;
    double target = -cfg->alpha.target_entropy_scale * b->D;
    double g;
    if (cfg->algo == ALGO_SAC) {
        /* L = -log alpha (log pi + target) */
        double lp = 0;
        for (int i = 0; i < b->B; i++) {
            lp += b->logpi[i];
        }
        g = -(lp / b->B + target);
    } else {
        /* L = log alpha (mean H - target) */
        double h = 0;
        for (int i = 0; i < b->B; i++) {
            h += b->ent[i];
        }
        g = h / b->B - target;
    }
    float gf = (float)g;
    adam_step(&b->st.log_alpha, &gf, &b->st.alpha_m, &b->st.alpha_v, 1, cfg->alpha.lr,
              cfg->optim.beta1, cfg->optim.beta2, cfg->optim.eps, b->base.counters.alpha_steps + 1);
    (void)u;
}

static void cpu_polyak(Backend *b, const UpdateCtx *u) {
    double tau = b->base.cfg->update.tau;
    polyak_update(b->st.q1_targ, b->st.q1.params, b->st.q1.n, tau);
    polyak_update(b->st.q2_targ, b->st.q2.params, b->st.q2.n, tau);
    polyak_update(b->st.pol_ema, b->st.pol.params, b->st.pol.n, tau);
    (void)u;
}

static void cpu_end_update(Backend *b, const UpdateCtx *u) {
    if (b->noise_rec) {
        size_t B = (size_t)b->B, S = (size_t)b->S, D = (size_t)b->D;
        memcpy(b->nz.obs, b->obs, B * S * sizeof(float));
        memcpy(b->nz.act, b->act, B * D * sizeof(float));
        memcpy(b->nz.rew, b->rew, B * sizeof(float));
        memcpy(b->nz.next_obs, b->next_obs, B * S * sizeof(float));
        memcpy(b->nz.done, b->done, B * sizeof(float));
        if (noise_file_append(b->noise_rec, &b->nz) != FLAME_OK) {
            flame_fatal("%s", flame_last_error());
        }
    }
    (void)u;
}

/* ------------------------------------------------------------------ state transfer */
static void cpu_get_state(Backend *b, AgentState *dst) {
    agent_state_copy(dst, &b->st);
    backend_counters_to_state(&b->base, dst);
}

static void cpu_set_state(Backend *b, const AgentState *src) {
    agent_state_copy(&b->st, src);
    backend_counters_from_state(&b->base, src);
}

static void cpu_get_replay(Backend *b, Replay *dst) {
    replay_copy(dst, &b->replay);
}

static void cpu_set_replay(Backend *b, const Replay *src) {
    replay_copy(&b->replay, src);
}

static void cpu_get_metrics(Backend *b, UpdateMetrics *m) {
    *m = b->base.metrics;
    m->alpha = alpha_of(b);
}

void backend_cpu_debug(Backend *b, CpuDebugView *v) {
    v->B = b->B, v->S = b->S, v->D = b->D, v->K = b->K, v->Np = b->Np;
    v->obs = b->obs, v->act = b->act, v->rew = b->rew, v->next_obs = b->next_obs;
    v->done = b->done, v->y = b->y, v->ent = b->ent, v->next_a = b->next_a;
    v->a_star = b->a_star;
    v->x = b->x, v->r = b->r, v->t = b->t, v->w = b->w, v->vbar = b->vbar;
    v->ess = b->ess, v->logpi = b->logpi;
    v->noise = &b->nz;
    v->state = &b->st;
}

float *backend_cpu_policy_params(Backend *b) {
    return b->st.pol.params;
}

void backend_cpu_set_analytic_critic(Backend *b, AnalyticQ q, void *ctx) {
    b->analytic_q = q;
    b->analytic_ctx = ctx;
}

const BackendOps backend_cpu_ops = {
    .name = "cpu",
    .create = cpu_create,
    .destroy = cpu_destroy,
    .act = cpu_act,
    .replay_push = cpu_replay_push,
    .replay_size = cpu_replay_size,
    .replay_sample = cpu_replay_sample,
    .critic_target = cpu_critic_target,
    .critic_step = cpu_critic_step,
    .qweight = cpu_qweight,
    .policy_step = cpu_policy_step,
    .alpha_step = cpu_alpha_step,
    .polyak = cpu_polyak,
    .get_state = cpu_get_state,
    .set_state = cpu_set_state,
    .get_replay = cpu_get_replay,
    .set_replay = cpu_set_replay,
    .get_metrics = cpu_get_metrics,
    .end_update = cpu_end_update,
    .publish = cpu_publish,
};
