/*
 * test_envpool.c: the threaded env pool: bitwise independence of the thread count, auto-reset with
 * the true final observation, next-step autoreset with pending resets = same-step autoreset,
 * termination vs truncation, instability, save/restore, index offset.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "flame/env.h"
#include "flame/envpool.h"
#include "flame/rng.h"
#include "flame_test.h"

/* all outputs of T batched steps, kept for comparison */
typedef struct {
    int N, S, D, nq, nv, T;
    double *obs, *final_obs, *reward, *ret, *qpos, *qvel;
    uint8_t *term, *trunc, *unst;
    int *len;
} Trace;

static Trace trace_new(const EnvPool *p, int T) {
    Trace t;
    memset(&t, 0, sizeof t);
    t.N = envpool_num_envs(p);
    t.S = envpool_obs_dim(p);
    t.D = envpool_act_dim(p);
    t.nq = envpool_nq(p);
    t.nv = envpool_nv(p);
    t.T = T;
    size_t NT = (size_t)t.N * (size_t)(T + 1);
    t.obs = calloc(NT * t.S, sizeof(double));
    t.final_obs = calloc(NT * t.S, sizeof(double));
    t.reward = calloc(NT, sizeof(double));
    t.ret = calloc(NT, sizeof(double));
    t.qpos = calloc(NT * t.nq, sizeof(double));
    t.qvel = calloc(NT * t.nv, sizeof(double));
    t.term = calloc(NT, 1);
    t.trunc = calloc(NT, 1);
    t.unst = calloc(NT, 1);
    t.len = calloc(NT, sizeof(int));
    return t;
}

static void trace_free(Trace *t) {
    free(t->obs);
    free(t->final_obs);
    free(t->reward);
    free(t->ret);
    free(t->qpos);
    free(t->qvel);
    free(t->term);
    free(t->trunc);
    free(t->unst);
    free(t->len);
}

static EnvPoolStep trace_row(Trace *t, int k) {
    size_t o = (size_t)k * t->N;
    EnvPoolStep s = {t->obs + o * t->S,   t->final_obs + o * t->S,
                     t->reward + o,       t->term + o,
                     t->trunc + o,        t->unst + o,
                     t->ret + o,          t->len + o,
                     t->qpos + o * t->nq, t->qvel + o * t->nv};
    return s;
}

static int trace_equal(const Trace *a, const Trace *b) {
    size_t NT = (size_t)a->N * (size_t)(a->T + 1);
    return !memcmp(a->obs, b->obs, NT * a->S * sizeof(double)) &&
           !memcmp(a->final_obs, b->final_obs, NT * a->S * sizeof(double)) &&
           !memcmp(a->reward, b->reward, NT * sizeof(double)) &&
           !memcmp(a->ret, b->ret, NT * sizeof(double)) &&
           !memcmp(a->qpos, b->qpos, NT * a->nq * sizeof(double)) &&
           !memcmp(a->qvel, b->qvel, NT * a->nv * sizeof(double)) &&
           !memcmp(a->term, b->term, NT) && !memcmp(a->trunc, b->trunc, NT) &&
           !memcmp(a->unst, b->unst, NT) && !memcmp(a->len, b->len, NT * sizeof(int));
}

/* agent actions for batch step k: uniform in [-1, 1] */
static void actions_at(float *act, int N, int D, int k, uint64_t seed) {
    for (int i = 0; i < N; i++) {
        for (int j = 0; j < D; j++) {
            act[i * D + j] =
                2.0f * rng_uniform(seed, RNG_STREAM_TEST, (uint32_t)k, (uint32_t)i, (uint32_t)j) -
                1.0f;
        }
    }
}

/* runs T steps after a reset (row 0 of the trace holds the reset obs only) */
static void run_pool(EnvPool *p, Trace *t, int k0, uint64_t act_seed) {
    float *act = calloc((size_t)t->N * t->D, sizeof(float));
    for (int k = 1; k <= t->T; k++) {
        actions_at(act, t->N, t->D, k0 + k, act_seed);
        EnvPoolStep s = trace_row(t, k);
        envpool_step(p, act, &s);
    }
    free(act);
}

static EnvPool *make_pool(const char *id, int N, int W, uint64_t seed, uint32_t offset) {
    EnvPool *p = NULL;
    int rc = envpool_create(env_spec_find(id), NULL, N, W, seed, offset, &p);
    FLAME_CHECK(rc == FLAME_OK, "%s", flame_last_error());
    return p;
}

FLAME_TEST(results_independent_of_thread_count) {
    const char *ids[] = {"Hopper-v5", "Ant-v5"};
    const int Ts[] = {300, 60};
    for (int k = 0; k < 2; k++) {
        Trace tr[3];
        for (int W = 1; W <= 3; W++) {
            EnvPool *p = make_pool(ids[k], 7, W, 99, 0);
            tr[W - 1] = trace_new(p, Ts[k]);
            envpool_reset(p, tr[W - 1].obs);
            run_pool(p, &tr[W - 1], 0, 5);
            envpool_free(p);
        }
        int ends = 0;
        for (size_t i = 0; i < (size_t)7 * (Ts[k] + 1); i++) {
            ends += tr[0].term[i] | tr[0].trunc[i];
        }
        printf("    %s: 7 envs x %d steps, %d episode ends\n", ids[k], Ts[k], ends);
        EXPECT_MSG(trace_equal(&tr[0], &tr[1]), "%s: W=1 vs W=2 differ", ids[k]);
        EXPECT_MSG(trace_equal(&tr[0], &tr[2]), "%s: W=1 vs W=3 differ", ids[k]);
        if (k == 0) {
            EXPECT(ends > 0); /* Hopper falls under random actions: auto-reset is exercised */
        }
        for (int W = 0; W < 3; W++) {
            trace_free(&tr[W]);
        }
    }
}

FLAME_TEST(auto_reset_keeps_the_true_final_observation) {
    const int N = 4, T = 300;
    const uint64_t seed = 17;
    const uint32_t offset = 10;
    EnvPool *p = make_pool("Hopper-v4", N, 2, seed, offset);
    Trace t = trace_new(p, T);
    envpool_reset(p, t.obs);
    run_pool(p, &t, 0, 3);
    const int S = t.S;
    /* replay env 0..N-1 alone with the same actions, comparing every step bitwise */
    mjModel *m = NULL;
    EXPECT(env_model_load(env_spec_find("Hopper-v4"), NULL, &m) == FLAME_OK);
    Env *e = env_create(env_spec_find("Hopper-v4"), m);
    double *o = calloc((size_t)S, sizeof(double));
    float act[3];
    int checked_ends = 0, mismatches = 0;
    for (int i = 0; i < N; i++) {
        uint32_t episode = 0;
        double ret = 0;
        int len = 0;
        env_reset(e, seed, offset + (uint32_t)i, 0, o);
        mismatches += memcmp(o, t.obs + (size_t)i * S, S * sizeof(double)) != 0;
        for (int k = 1; k <= T; k++) {
            for (int j = 0; j < 3; j++) {
                act[j] =
                    2.0f * rng_uniform(3, RNG_STREAM_TEST, (uint32_t)k, (uint32_t)i, (uint32_t)j) -
                    1.0f;
            }
            EnvStepInfo info;
            env_step(e, act, o, &info);
            ret += info.reward;
            len++;
            size_t r = (size_t)k * N + i;
            mismatches += memcmp(o, t.final_obs + r * S, S * sizeof(double)) != 0;
            mismatches += t.reward[r] != info.reward || t.term[r] != info.terminated;
            int done = info.terminated || len >= 1000;
            mismatches += t.trunc[r] != (len >= 1000);
            if (done) {
                checked_ends++;
                mismatches += t.ret[r] != ret || t.len[r] != len;
                /* the pool's obs is the next episode's reset observation, not the final one */
                EXPECT(memcmp(t.obs + r * S, t.final_obs + r * S, S * sizeof(double)) != 0);
                episode++;
                ret = 0;
                len = 0;
                env_reset(e, seed, offset + (uint32_t)i, episode, o);
            }
            mismatches += memcmp(o, t.obs + r * S, S * sizeof(double)) != 0;
        }
    }
    printf("    %d episode ends replayed\n", checked_ends);
    EXPECT(checked_ends >= N);
    EXPECT_MSG(mismatches == 0, "%d mismatches between the pool and lone envs", mismatches);
    free(o);
    env_free(e);
    mj_deleteModel(m);
    trace_free(&t);
    envpool_free(p);
}

/* next-step autoreset with envpool_reset_pending after every step: the same-step pool's trace,
   and between the step and the reset every ended env still holds its final observation */
FLAME_TEST(pending_resets_after_each_step_run_the_same_episodes) {
    const int N = 5, T = 300;
    EnvPool *a = make_pool("Hopper-v5", N, 2, 23, 4), *b = make_pool("Hopper-v5", N, 2, 23, 4);
    envpool_set_modes(b, ENVPOOL_AUTORESET_NEXT_STEP, ENVPOOL_ACTIONS_AGENT);
    Trace ta = trace_new(a, T), tb = trace_new(b, T);
    envpool_reset(a, ta.obs);
    envpool_reset(b, tb.obs);
    run_pool(a, &ta, 0, 8);
    float *act = calloc((size_t)N * tb.D, sizeof(float));
    int ends = 0, kept = 0;
    for (int k = 1; k <= T; k++) {
        actions_at(act, N, tb.D, k, 8);
        EnvPoolStep s = trace_row(&tb, k);
        envpool_step(b, act, &s);
        for (int i = 0; i < N; i++) {
            if (s.terminated[i] || s.truncated[i]) {
                ends++;
                kept += !memcmp(s.obs + i * tb.S, s.final_obs + i * tb.S, tb.S * sizeof(double));
            }
        }
        envpool_reset_pending(b, s.obs);
    }
    printf("    %d episode ends\n", ends);
    EXPECT(ends > N && kept == ends);
    EXPECT_MSG(trace_equal(&ta, &tb), "pending resets differ from same-step autoreset");
    free(act);
    trace_free(&ta), trace_free(&tb);
    envpool_free(a), envpool_free(b);
}

FLAME_TEST(truncation_and_termination_are_distinguished) {
    /* HalfCheetah never terminates: truncated exactly at step 1000, then reset */
    EnvPool *p = make_pool("HalfCheetah-v5", 3, 2, 1, 0);
    const int N = 3, S = 17;
    double obs[3 * 17], fo[3 * 17], rew[3], ret[3];
    uint8_t term[3], trunc[3], uns[3];
    int len[3];
    float act[3 * 6];
    EnvPoolStep st = {obs, fo, rew, term, trunc, uns, ret, len, NULL, NULL};
    envpool_reset(p, obs);
    int early = 0;
    for (int k = 1; k <= 1001; k++) {
        actions_at(act, N, 6, k, 2);
        envpool_step(p, act, &st);
        for (int i = 0; i < N; i++) {
            EXPECT(!term[i] && !uns[i]);
            if (k < 1000) {
                early += trunc[i];
            } else if (k == 1000) {
                EXPECT(trunc[i] == 1 && len[i] == 1000);
                EXPECT(memcmp(obs + i * S, fo + i * S, S * sizeof(double)) != 0);
            } else {
                EXPECT(trunc[i] == 0 && len[i] == 1); /* a new episode started */
            }
        }
    }
    EXPECT(early == 0);
    envpool_free(p);

    /* Reacher-v5 truncates at 50 */
    p = make_pool("Reacher-v5", 2, 1, 1, 0);
    double robs[2 * 10], rrew[2];
    uint8_t rterm[2], rtrunc[2];
    int rlen[2];
    float ract[4] = {0};
    EnvPoolStep rs = {robs, NULL, rrew, rterm, rtrunc, NULL, NULL, rlen, NULL, NULL};
    envpool_reset(p, robs);
    for (int k = 1; k <= 50; k++) {
        envpool_step(p, ract, &rs);
        EXPECT(rtrunc[0] == (k == 50) && rtrunc[1] == (k == 50) && !rterm[0]);
    }
    EXPECT(rlen[0] == 50);
    envpool_free(p);

    /* Hopper terminates (falls) without truncation */
    p = make_pool("Hopper-v5", 2, 2, 4, 0);
    double hobs[2 * 11], hrew[2];
    uint8_t hterm[2], htrunc[2];
    int hlen[2];
    float hact[6];
    EnvPoolStep hs = {hobs, NULL, hrew, hterm, htrunc, NULL, NULL, hlen, NULL, NULL};
    envpool_reset(p, hobs);
    int terms = 0, truncs = 0;
    for (int k = 1; k <= 400; k++) {
        actions_at(hact, 2, 3, k, 8);
        envpool_step(p, hact, &hs);
        for (int i = 0; i < 2; i++) {
            terms += hterm[i];
            truncs += htrunc[i];
            if (hterm[i]) {
                EXPECT(hlen[i] < 1000 && hrew[i] != 0);
            }
        }
    }
    EXPECT(terms > 0 && truncs == 0);
    envpool_free(p);
}

FLAME_TEST(instability_ends_the_episode_as_truncated) {
    unlink("MUJOCO_LOG.TXT");
    EnvPool *p = make_pool("HalfCheetah-v5", 3, 3, 1, 0);
    const int S = 17;
    double obs[3 * 17], fo[3 * 17], rew[3], ret[3];
    uint8_t term[3], trunc[3], uns[3];
    int len[3];
    float act[3 * 6] = {0};
    EnvPoolStep st = {obs, fo, rew, term, trunc, uns, ret, len, NULL, NULL};
    envpool_reset(p, obs);
    for (int k = 0; k < 5; k++) {
        envpool_step(p, act, &st);
    }
    EXPECT(envpool_instability_count(p) == 0);
    /* env 1: a huge velocity */
    mjData *d = env_data(envpool_env(p, 1));
    d->qvel[4] = 1e13;
    envpool_step(p, act, &st);
    EXPECT(uns[1] == 1 && trunc[1] == 1 && term[1] == 0 && rew[1] == 0 && len[1] == 6);
    EXPECT(uns[0] == 0 && trunc[0] == 0 && uns[2] == 0 && trunc[2] == 0);
    EXPECT(envpool_instability_count(p) == 1);
    for (int i = 0; i < 3 * S; i++) {
        EXPECT(isfinite(obs[i]) && isfinite(fo[i]));
    }
    /* env 2: a NaN action */
    act[2 * 6 + 1] = NAN;
    envpool_step(p, act, &st);
    EXPECT(uns[2] == 1 && trunc[2] == 1 && term[2] == 0);
    EXPECT(uns[1] == 0 && len[1] == 1); /* env 1 continues its new episode */
    EXPECT(envpool_instability_count(p) == 2);
    act[2 * 6 + 1] = 0;
    envpool_step(p, act, &st);
    EXPECT(uns[0] == 0 && uns[1] == 0 && uns[2] == 0 && envpool_instability_count(p) == 2);
    EXPECT(access("MUJOCO_LOG.TXT", F_OK) != 0);
    envpool_free(p);
}

FLAME_TEST(state_save_load_continues_bitwise) {
    const int N = 5, T1 = 30, T2 = 40;
    EnvPool *a = make_pool("Ant-v5", N, 2, 77, 3);
    Trace warm = trace_new(a, T1);
    envpool_reset(a, warm.obs);
    run_pool(a, &warm, 0, 4);
    size_t sz = envpool_state_size(a);
    void *blob = malloc(sz);
    envpool_state_save(a, blob);
    Trace ta = trace_new(a, T2);
    run_pool(a, &ta, T1, 4);

    /* a fresh pool with another thread count, loaded from the blob */
    EnvPool *b = make_pool("Ant-v5", N, 3, 77, 3);
    double *tmp = calloc((size_t)N * 105, sizeof(double));
    envpool_reset(b, tmp);
    EXPECT(envpool_state_load(b, blob, sz) == FLAME_OK);
    Trace tb = trace_new(b, T2);
    run_pool(b, &tb, T1, 4);
    EXPECT(trace_equal(&ta, &tb));

    /* mismatches are refused with a message */
    EXPECT(envpool_state_load(b, blob, sz - 1) == FLAME_EINPUT);
    EXPECT(strstr(flame_last_error(), "bytes") != NULL);
    EnvPool *c = make_pool("Ant-v5", N + 1, 1, 77, 3);
    EXPECT(envpool_state_load(c, blob, sz) == FLAME_EINPUT);
    EXPECT(strstr(flame_last_error(), "envs") != NULL);
    envpool_free(c);
    c = make_pool("Hopper-v5", N, 1, 77, 3);
    EXPECT(envpool_state_load(c, blob, sz) == FLAME_EINPUT);
    EXPECT(strstr(flame_last_error(), "Ant-v5") && strstr(flame_last_error(), "Hopper-v5"));
    envpool_free(c);
    ((char *)blob)[0] ^= 1;
    EXPECT(envpool_state_load(b, blob, sz) == FLAME_EINPUT);
    free(tmp);
    free(blob);
    trace_free(&warm);
    trace_free(&ta);
    trace_free(&tb);
    envpool_free(a);
    envpool_free(b);
}

FLAME_TEST(index_offset_shifts_the_reset_address) {
    EnvPool *a = make_pool("Walker2d-v5", 6, 2, 5, 0);
    EnvPool *b = make_pool("Walker2d-v5", 2, 1, 5, 4);
    double oa[6 * 17], ob[2 * 17];
    envpool_reset(a, oa);
    envpool_reset(b, ob);
    EXPECT(memcmp(oa + 4 * 17, ob, 2 * 17 * sizeof(double)) == 0);
    EXPECT(memcmp(oa, ob, 17 * sizeof(double)) != 0);
    envpool_free(a);
    envpool_free(b);
}

int main(void) {
    RUN_TEST(results_independent_of_thread_count);
    RUN_TEST(auto_reset_keeps_the_true_final_observation);
    RUN_TEST(pending_resets_after_each_step_run_the_same_episodes);
    RUN_TEST(truncation_and_termination_are_distinguished);
    RUN_TEST(instability_ends_the_episode_as_truncated);
    RUN_TEST(state_save_load_continues_bitwise);
    RUN_TEST(index_offset_shifts_the_reset_address);
    return flame_test_report();
}
