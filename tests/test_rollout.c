/*
 * test_rollout.c: the rollout engine (include/flame/rollout.h): evaluation and dataset rollouts of
 * the same policy, seed and envs give the same episodes (library and `flame eval` / `flame
 * rollout`), independent of the thread count; the unstable-episode policy (replaced, counted, never
 * stored in a dataset or the replay, a run fails past the limit); stop requests; envs that keep
 * each episode's final state for the sinks (the same episodes); the random policy's draws.
 */
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "flame/ckpt.h"
#include "flame/h5util.h"
#include "flame/rng.h"
#include "flame/rollout.h"
#include "flame_test.h"

static char tmpdir[256];

static void small_config(FlameConfig *cfg, const char *env) {
    config_defaults(cfg);
    char buf[256];
    snprintf(buf, sizeof buf, "env.id=%s", env);
    const char *sets[] = {buf,
                          "algo=flame-m",
                          "net.hidden=16",
                          "net.layers=2",
                          "flow.num_particles=4",
                          "update.replay_size=256",
                          "update.batch_size=32",
                          "backend.type=cpu",
                          "run.seed=7"};
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++) {
        FLAME_CHECK(config_set(cfg, sets[i]) == FLAME_OK, "%s", flame_last_error());
    }
    config_resolve(cfg);
    FLAME_CHECK(config_validate(cfg) == FLAME_OK, "%s", flame_last_error());
}

/* an untrained agent on the CPU backend */
typedef struct {
    FlameConfig cfg;
    const EnvSpec *spec;
    Backend *b;
} Agent;

static void agent_make(Agent *a, const char *env) {
    small_config(&a->cfg, env);
    a->spec = env_spec_find(env);
    FLAME_CHECK(backend_cpu_ops.create(&a->cfg, a->spec->obs_dim, a->spec->act_dim, &a->b) ==
                    FLAME_OK,
                "%s", flame_last_error());
}

static RolloutEnvs envs_of(const EnvSpec *spec, int n, int threads, uint64_t seed) {
    RolloutEnvs e = {.spec = spec,
                     .num_envs = n,
                     .num_threads = threads,
                     .seed = seed,
                     .env_offset = ROLLOUT_ENV_OFFSET};
    return e;
}

/* ------------------------------------------------------------------ evaluation == dataset */
FLAME_TEST(evaluation_and_dataset_runs_give_the_same_episodes) {
    Agent a;
    agent_make(&a, "Hopper-v5"); /* returns vary continuously (not 1 per step) */
    for (int mode = 0; mode < 2; mode++) {
        RolloutPolicy p =
            rollout_policy_agent(&backend_cpu_ops, a.b, mode ? ACT_EXPLORE : ACT_DETERMINISTIC);
        RolloutRun run = {.episodes = 7};
        RolloutEnvs e1 = envs_of(a.spec, 3, 1, 5), e3 = envs_of(a.spec, 3, 3, 5);
        RolloutResult ev, ds, ev3;
        EXPECT(rollout_evaluate(&e1, &p, &run, &ev) == FLAME_OK);
        EXPECT(rollout_dataset(&e1, &p, &run, NULL, &ds) == FLAME_OK);
        EXPECT(rollout_evaluate(&e3, &p, &run, &ev3) == FLAME_OK);
        EXPECT(ev.episodes == 7 && ds.episodes == 7 && ev3.episodes == 7);
        EXPECT(ev.steps == ds.steps && ev.steps == ev3.steps && ev.unstable == 0);
        EXPECT_MSG(!memcmp(ev.returns, ds.returns, 7 * sizeof(double)), "mode %d returns", mode);
        EXPECT(!memcmp(ev.lengths, ds.lengths, 7 * sizeof(int)));
        EXPECT_MSG(!memcmp(ev.returns, ev3.returns, 7 * sizeof(double)), "1 vs 3 threads");
        /* the episodes differ among themselves (reset noise), so the comparison means something */
        bool varied = false;
        for (int i = 1; i < 7; i++) {
            varied |= ev.returns[i] != ev.returns[0];
        }
        EXPECT(varied);
        /* statistics */
        double s = 0;
        for (int i = 0; i < 7; i++) {
            s += ev.returns[i];
        }
        EXPECT_NEAR("mean return", ev.return_mean, s / 7, 1e-12, 1e-12);
        rollout_result_free(&ev), rollout_result_free(&ds), rollout_result_free(&ev3);
    }
    /* another seed: other episodes */
    RolloutPolicy p = rollout_policy_agent(&backend_cpu_ops, a.b, ACT_DETERMINISTIC);
    RolloutRun run = {.episodes = 7};
    RolloutEnvs e5 = envs_of(a.spec, 3, 1, 5), e6 = envs_of(a.spec, 3, 1, 6);
    RolloutResult r5, r6;
    EXPECT(rollout_evaluate(&e5, &p, &run, &r5) == FLAME_OK);
    EXPECT(rollout_evaluate(&e6, &p, &run, &r6) == FLAME_OK);
    EXPECT(memcmp(r5.returns, r6.returns, 7 * sizeof(double)) != 0);
    rollout_result_free(&r5), rollout_result_free(&r6);
    backend_cpu_ops.destroy(a.b);
}

/* ------------------------------------------------------------------ unstable episodes */

/* zero actions, NaN ones (MuJoCo goes unstable) for env 0 at call 2 and env 2 at call 5, or for
   every env at every call */
typedef struct {
    bool always;
} NanPolicy;

static void nan_policy(void *ctx, const float *obs, int n, int act_dim, uint32_t call,
                       float *actions) {
    (void)obs;
    const NanPolicy *np = ctx;
    for (int i = 0; i < n * act_dim; i++) {
        actions[i] = 0.0f;
    }
    for (int i = 0; i < n; i++) {
        if (np->always || (i == 0 && call == 2) || (i == 2 && call == 5)) {
            actions[(size_t)i * act_dim] = NAN;
        }
    }
}

static RolloutPolicy policy_fn(NanPolicy *np) {
    RolloutPolicy p;
    memset(&p, 0, sizeof p);
    p.kind = ROLLOUT_FUNCTION;
    p.fn = nan_policy;
    p.ctx = np;
    return p;
}

/* what a sink saw */
typedef struct {
    RolloutEpisode ep[64];
    int n;
    int unstable_rows, bad_unstable_rows;
} Seen;

static int seen_step(void *ctx, const RolloutStep *s) {
    Seen *k = ctx;
    for (int i = 0; i < s->n; i++) {
        if (s->unstable[i]) {
            k->unstable_rows++;
            /* envpool.h: an unstable step is truncated, not terminated, with reward 0 */
            k->bad_unstable_rows += !(s->truncated[i] && !s->terminated[i] && s->reward[i] == 0);
        }
    }
    return FLAME_OK;
}

static int seen_episode(void *ctx, const RolloutStep *s, const RolloutEpisode *e) {
    (void)s;
    Seen *k = ctx;
    if (k->n < 64) {
        k->ep[k->n++] = *e;
    }
    return FLAME_OK;
}

static const RolloutEpisode *find(const Seen *k, int env, uint32_t env_episode) {
    for (int i = 0; i < k->n; i++) {
        if (k->ep[i].env == env && k->ep[i].env_episode == env_episode) {
            return &k->ep[i];
        }
    }
    return NULL;
}

FLAME_TEST(unstable_episodes_are_replaced_and_counted) {
    const EnvSpec *spec = env_spec_find("InvertedPendulum-v5");
    RolloutEnvs e = envs_of(spec, 3, 2, 11);
    Rollout *r = NULL;
    EXPECT(rollout_create(&e, &r) == FLAME_OK);
    NanPolicy np = {false};
    RolloutPolicy p = policy_fn(&np);
    /* a clean run: calls from 1000 on inject nothing; 3 episodes per env (env episodes 0, 1, 2) */
    Seen clean = {0}, broken = {0};
    RolloutSink clean_sink = {.ctx = &clean, .on_step = seen_step, .on_episode = seen_episode};
    RolloutSink broken_sink = {.ctx = &broken, .on_step = seen_step, .on_episode = seen_episode};
    RolloutRun run9 = {.episodes = 9, .call_base = 1000};
    RolloutResult res9;
    EXPECT(rollout_episodes(r, &p, &run9, &clean_sink, &res9) == FLAME_OK);
    EXPECT(res9.unstable == 0 && clean.unstable_rows == 0 && clean.n == 9);

    /* the same envs with NaN actions for env 0 at call 2 and env 2 at call 5 */
    RolloutRun run6 = {.episodes = 6, .call_base = 0};
    RolloutResult res;
    EXPECT(rollout_episodes(r, &p, &run6, &broken_sink, &res) == FLAME_OK);
    EXPECT_MSG(res.unstable == 2, "%lld unstable", (long long)res.unstable);
    EXPECT(res.episodes == 6 && broken.unstable_rows == 2 && broken.bad_unstable_rows == 0);
    EXPECT(broken.n == 8); /* 6 counted + 2 unstable */
    /* the unstable ones: env 0's and env 2's first episodes, not counted */
    const RolloutEpisode *u0 = find(&broken, 0, 0), *u2 = find(&broken, 2, 0);
    EXPECT(u0 && u0->unstable && u0->index == -1 && u0->length == 3);
    EXPECT(u2 && u2->unstable && u2->index == -1 && u2->length == 6);
    /* the replacements are the envs' next episodes, identical to the clean run's */
    const int envs[6] = {0, 0, 1, 1, 2, 2};
    const uint32_t eps[6] = {1, 2, 0, 1, 1, 2};
    int64_t steps = 0;
    for (int k = 0; k < 6; k++) {
        const RolloutEpisode *b = find(&broken, envs[k], eps[k]);
        const RolloutEpisode *c = find(&clean, envs[k], eps[k]);
        EXPECT_MSG(b && c && !b->unstable && b->index >= 0, "env %d episode %u", envs[k], eps[k]);
        if (b && c && b->index >= 0) {
            EXPECT_MSG(b->length == c->length && b->ret == c->ret,
                       "env %d episode %u: %d/%g vs %d/%g", envs[k], eps[k], b->length, b->ret,
                       c->length, c->ret);
            EXPECT(res.returns[b->index] == b->ret && res.lengths[b->index] == b->length);
            steps += b->length;
        }
    }
    EXPECT(res.steps == steps);
    rollout_result_free(&res9), rollout_result_free(&res);

    /* NaN actions everywhere: the run fails once more episodes went unstable than requested */
    NanPolicy always = {true};
    RolloutPolicy pa = policy_fn(&always);
    RolloutRun run4 = {.episodes = 4};
    EXPECT(rollout_episodes(r, &pa, &run4, NULL, &res) == FLAME_ERUNTIME);
    /* 3 envs: 3 unstable episodes after the first step, 6 > 4 after the second */
    EXPECT_MSG(strstr(flame_last_error(), "unstable in 6 episodes, more than the 4 requested"),
               "%s", flame_last_error());
    EXPECT(res.unstable == 6 && res.episodes == 0);
    rollout_result_free(&res);

    /* a stop request ends a run */
    volatile sig_atomic_t stop = 1;
    RolloutRun stopped = {.episodes = 4, .stop = &stop};
    EXPECT(rollout_episodes(r, &p, &stopped, NULL, &res) == FLAME_ERUNTIME);
    EXPECT(strstr(flame_last_error(), "interrupted after 0 of 4 episodes") != NULL);
    rollout_result_free(&res);
    rollout_free(r);
}

/* ------------------------------------------------------------------ keep_final */

#define WATCH_ENVS 4
#define WATCH_OBS 16

/* what the envs themselves show to a run's sinks: the state of an env whose episode just ended
   (its final observation, or not), and the state each episode starts from */
typedef struct {
    Rollout *r;
    int final_same, final_differs; /* ended envs whose own observation is / is not final_obs */
    int starts, start_mismatch;    /* on_start calls; next steps that did not start from it */
    bool started[WATCH_ENVS];
    double start_obs[WATCH_ENVS][WATCH_OBS];
    uint64_t trace; /* FNV-1a of every step's observations, actions and rewards */
} Watch;

static void fnv(uint64_t *h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        *h = (*h ^ b[i]) * 0x100000001b3ull;
    }
}

static int watch_step(void *ctx, const RolloutStep *s) {
    Watch *w = ctx;
    const size_t S = (size_t)s->obs_dim;
    fnv(&w->trace, s->obs, (size_t)s->n * S * sizeof(double));
    fnv(&w->trace, s->act, (size_t)s->n * (size_t)s->act_dim * sizeof(float));
    fnv(&w->trace, s->reward, (size_t)s->n * sizeof(double));
    for (int i = 0; i < s->n; i++) {
        if (w->started[i]) { /* the step after on_start starts from the state it saw */
            w->start_mismatch += memcmp(s->obs + i * S, w->start_obs[i], S * sizeof(double)) != 0;
            w->started[i] = false;
        }
        if ((s->owed && !s->owed[i]) || !(s->terminated[i] || s->truncated[i])) {
            continue;
        }
        double now[WATCH_OBS];
        env_observe(envpool_env(rollout_pool(w->r), i), now);
        bool same = !memcmp(now, s->final_obs + i * S, S * sizeof(double));
        w->final_same += same;
        w->final_differs += !same;
    }
    return FLAME_OK;
}

static int watch_start(void *ctx, int env) {
    Watch *w = ctx;
    env_observe(envpool_env(rollout_pool(w->r), env), w->start_obs[env]);
    w->started[env] = true;
    w->starts++;
    return FLAME_OK;
}

/* an episode run of `episodes` on 3 envs (2 threads) with or without keep_final, watched */
static void watched_run(const EnvSpec *spec, const RolloutPolicy *p, bool keep, int episodes,
                        Watch *w, RolloutResult *res) {
    RolloutEnvs e = envs_of(spec, 3, 2, 21);
    e.keep_final = keep;
    memset(w, 0, sizeof *w);
    w->trace = 0xcbf29ce484222325ull;
    EXPECT(rollout_create(&e, &w->r) == FLAME_OK && spec->obs_dim <= WATCH_OBS);
    RolloutSink sink = {.ctx = w, .on_step = watch_step, .on_start = watch_start};
    RolloutRun run = {.episodes = episodes};
    EXPECT_MSG(rollout_episodes(w->r, p, &run, &sink, res) == FLAME_OK, "%s", flame_last_error());
    rollout_free(w->r);
}

/* keep_final: an ended env shows its final state to the sinks and starts its next episode after
   them; the episodes, draws and results are bitwise those of the default (same-step) reset */
FLAME_TEST(keep_final_shows_each_final_state_and_runs_the_same_episodes) {
    Agent a;
    agent_make(&a, "Hopper-v5");
    NanPolicy np = {false}; /* unstable episodes: env 0 at call 2, env 2 at call 5 */
    const char *envs[2] = {"Hopper-v5", "InvertedPendulum-v5"};
    RolloutPolicy pols[2] = {rollout_policy_agent(&backend_cpu_ops, a.b, ACT_EXPLORE),
                             policy_fn(&np)};
    for (int k = 0; k < 2; k++) {
        const EnvSpec *spec = env_spec_find(envs[k]);
        Watch same, keep;
        RolloutResult rs, rk;
        watched_run(spec, &pols[k], false, 7, &same, &rs);
        watched_run(spec, &pols[k], true, 7, &keep, &rk);
        EXPECT(rs.episodes == 7 && rk.episodes == 7 && rs.unstable == rk.unstable);
        EXPECT(k == 0 || rk.unstable == 2);
        EXPECT_MSG(!memcmp(rs.returns, rk.returns, 7 * sizeof(double)) &&
                       !memcmp(rs.lengths, rk.lengths, 7 * sizeof(int)) && rs.steps == rk.steps,
                   "%s: keep_final changed the episodes", envs[k]);
        EXPECT_MSG(same.trace == keep.trace, "%s: keep_final changed a step", envs[k]);
        /* every ended episode (counted or unstable) seen in its final state, only with keep */
        const int ended = 7 + (int)rk.unstable;
        EXPECT_MSG(keep.final_same == ended && keep.final_differs == 0, "%s: %d same, %d differ",
                   envs[k], keep.final_same, keep.final_differs);
        EXPECT_MSG(same.final_differs > 0, "%s: the default reset was not seen (%d, %d)", envs[k],
                   same.final_same, same.final_differs);
        /* on_start: each env's first episode, then one after every ended episode but each of
           the 3 envs' last: as many as episodes ended */
        EXPECT_MSG(keep.starts == same.starts && keep.starts == ended, "%s: %d / %d starts",
                   envs[k], keep.starts, same.starts);
        EXPECT(keep.start_mismatch == 0 && same.start_mismatch == 0);
        rollout_result_free(&rs), rollout_result_free(&rk);
    }
    backend_cpu_ops.destroy(a.b);

    /* rollout_step (the training's step) with keep_final: the same steps */
    const EnvSpec *spec = env_spec_find("InvertedPendulum-v5");
    RolloutPolicy rnd = rollout_policy_random(3);
    uint64_t trace[2];
    int starts[2];
    for (int keep = 0; keep < 2; keep++) {
        RolloutEnvs e = envs_of(spec, 3, 2, 21);
        e.keep_final = keep;
        Watch w;
        memset(&w, 0, sizeof w);
        w.trace = 0xcbf29ce484222325ull;
        EXPECT(rollout_create(&e, &w.r) == FLAME_OK);
        rollout_reset(w.r);
        RolloutSink sink = {.ctx = &w, .on_step = watch_step, .on_start = watch_start};
        for (uint32_t call = 0; call < 60; call++) {
            EXPECT(rollout_step(w.r, &rnd, call, &sink, NULL) == FLAME_OK);
        }
        EXPECT(keep ? w.final_differs == 0 && w.final_same > 0 : w.final_differs > 0);
        EXPECT(w.start_mismatch == 0);
        trace[keep] = w.trace;
        starts[keep] = w.starts;
        rollout_free(w.r);
    }
    EXPECT(trace[0] == trace[1] && starts[0] == starts[1] && starts[0] > 0);
}

/* a sink that pushes into the replay as training does */
typedef struct {
    RolloutReplay *rr;
    int rows;
} Pusher;

static int push_step(void *ctx, const RolloutStep *s) {
    Pusher *p = ctx;
    p->rows += rollout_replay_push(p->rr, s);
    return FLAME_OK;
}

FLAME_TEST(unstable_steps_never_reach_a_dataset_or_the_replay) {
    const EnvSpec *spec = env_spec_find("InvertedPendulum-v5");
    const int D = spec->act_dim, S = spec->obs_dim;
    NanPolicy np = {false};
    RolloutPolicy p = policy_fn(&np);
    RolloutEnvs e = envs_of(spec, 3, 1, 11);

    /* dataset: rows = the counted episodes' steps; no NaN action (the unstable steps') stored */
    char path[512];
    snprintf(path, sizeof path, "%s/unstable.hdf5", tmpdir);
    double low[1], high[1];
    mjModel *m = NULL;
    EXPECT(env_model_load(spec, NULL, &m) == FLAME_OK);
    Env *probe = env_create(spec, m);
    env_action_bounds(probe, low, high);
    DatasetInfo in = {.spec = spec,
                      .nq = env_nq(probe),
                      .nv = env_nv(probe),
                      .act_low = low,
                      .act_high = high,
                      .source = "rollout",
                      .algorithm = "random",
                      .policy = "random"};
    env_free(probe);
    mj_deleteModel(m);
    DatasetWriter *w = NULL;
    EXPECT(dataset_open(&w, path, DATASET_D4RL, &in, false) == FLAME_OK);
    RolloutRun run = {.episodes = 6};
    RolloutResult res;
    EXPECT(rollout_dataset(&e, &p, &run, w, &res) == FLAME_OK);
    EXPECT(dataset_close(w) == FLAME_OK);
    EXPECT(res.unstable == 2 && res.episodes == 6);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    EXPECT(f >= 0);
    hsize_t d[8] = {0};
    EXPECT(h5_dims(f, "actions", d) == 2 && (int64_t)d[0] == res.steps && d[1] == (hsize_t)D);
    float *act = calloc((size_t)res.steps * D, sizeof(float));
    EXPECT(h5_read(f, "actions", H5T_NATIVE_FLOAT, 2, d, act, path) == FLAME_OK);
    int nonfinite = 0;
    for (int64_t i = 0; i < res.steps * D; i++) {
        nonfinite += !isfinite(act[i]);
    }
    EXPECT_MSG(nonfinite == 0, "%d NaN actions stored", nonfinite);
    free(act);
    H5Fclose(f);
    remove(path);
    rollout_result_free(&res);

    /* replay: 6 steps of 3 envs with NaN actions at calls 2 (env 0) and 5 (env 2): 16 rows */
    Agent a;
    agent_make(&a, "InvertedPendulum-v5");
    Rollout *r = NULL;
    EXPECT(rollout_create(&e, &r) == FLAME_OK);
    rollout_reset(r);
    RolloutReplay rr;
    rollout_replay_init(&rr, &backend_cpu_ops, a.b, 3, S, D);
    Pusher pusher = {&rr, 0};
    RolloutSink sink = {.ctx = &pusher, .on_step = push_step};
    RolloutTimes t = {0, 0, 0};
    for (uint32_t call = 0; call < 6; call++) {
        EXPECT(rollout_step(r, &p, call, &sink, &t) == FLAME_OK);
    }
    EXPECT(pusher.rows == 16 && backend_cpu_ops.replay_size(a.b) == 16);
    EXPECT(t.act_s >= 0 && t.env_s > 0 && t.sink_s >= 0);
    Replay got;
    replay_init(&got, a.cfg.update.replay_size, S, D);
    backend_cpu_ops.get_replay(a.b, &got);
    nonfinite = 0;
    for (int64_t i = 0; i < got.size * D; i++) {
        nonfinite += !isfinite(got.act[i]);
    }
    EXPECT_MSG(got.size == 16 && nonfinite == 0, "%lld rows, %d NaN actions in the replay",
               (long long)got.size, nonfinite);
    replay_free(&got);
    rollout_replay_free(&rr);
    rollout_free(r);
    backend_cpu_ops.destroy(a.b);
}

/* the random policy: 2 u - 1 of rng(seed, RNG_STREAM_WARMUP, call, env, dim), as the warm-up */
FLAME_TEST(random_policy_draws) {
    RolloutPolicy p = rollout_policy_random(42);
    float act[3 * 2];
    rollout_policy_act(&p, NULL, 3, 2, 17, act);
    for (int i = 0; i < 3; i++) {
        for (int d = 0; d < 2; d++) {
            float want =
                2.0f * rng_uniform(42, RNG_STREAM_WARMUP, 17, (uint32_t)i, (uint32_t)d) - 1.0f;
            EXPECT(act[i * 2 + d] == want && fabsf(want) <= 1.0f);
        }
    }
}

/* ------------------------------------------------------------------ the commands */

/* the numbers after `key` on its line of `text` (at most cap) */
static int parse_list(const char *text, const char *key, double *v, int cap) {
    const char *p = strstr(text, key);
    if (!p) {
        return -1;
    }
    p += strlen(key);
    int n = 0;
    char *end = NULL;
    while (n < cap && *p != '\n') {
        double x = strtod(p, &end);
        if (end == p) {
            break;
        }
        v[n++] = x;
        p = end;
    }
    return n;
}

/* `flame eval` and `flame rollout` of one checkpoint with the same seed and envs: the same episode
   lengths and returns, in the same order (eval prints returns with 2 decimals; the Minari file
   holds the float64 rewards) */
static void check_commands_agree(const char *bin, const char *ck, const char *extra, int episodes) {
    char dir[512], cmd[2048], out[16384];
    snprintf(dir, sizeof dir, "%s/agree-v0", tmpdir);
    snprintf(cmd, sizeof cmd, "'%s' eval --ckpt '%s' --episodes %d --seed 9 %s 2>&1", bin, ck,
             episodes, extra);
    EXPECT_MSG(flame_test_run(cmd, out, sizeof out) == 0, "%s", out);
    double ret[64], len[64];
    int nr = parse_list(out, "\nreturns:", ret, 64), nl = parse_list(out, "\nlengths:", len, 64);
    EXPECT_MSG(nr == episodes && nl == episodes, "eval output: %s", out);
    snprintf(cmd, sizeof cmd,
             "'%s' rollout --ckpt '%s' --episodes %d --seed 9 %s --format minari --force --out "
             "'%s' 2>&1",
             bin, ck, episodes, extra, dir);
    EXPECT_MSG(flame_test_run(cmd, out, sizeof out) == 0, "%s", out);
    char p[640];
    snprintf(p, sizeof p, "%s/data/main_data.hdf5", dir);
    hid_t f = H5Fopen(p, H5F_ACC_RDONLY, H5P_DEFAULT);
    EXPECT(f >= 0);
    bool varied = false;
    for (int k = 0; f >= 0 && k < episodes && nr == episodes && nl == episodes; k++) {
        char name[64];
        snprintf(name, sizeof name, "episode_%d/rewards", k);
        hsize_t d[8] = {0};
        EXPECT(h5_dims(f, name, d) == 1);
        double *rw = calloc(d[0] + 1, sizeof(double)), sum = 0;
        EXPECT(h5_read(f, name, H5T_NATIVE_DOUBLE, 1, d, rw, p) == FLAME_OK);
        for (hsize_t t = 0; t < d[0]; t++) {
            sum += rw[t];
        }
        free(rw);
        EXPECT_MSG((double)d[0] == len[k], "episode %d: rollout %llu steps, eval %g", k,
                   (unsigned long long)d[0], len[k]);
        EXPECT_MSG(fabs(sum - ret[k]) <= 0.005 + 1e-9 * fabs(sum),
                   "episode %d: rollout %.6f, eval %.2f", k, sum, ret[k]);
        varied |= ret[k] != ret[0];
    }
    EXPECT_MSG(varied, "all %d episodes have the same return: the comparison is too weak",
               episodes);
    if (f >= 0) {
        H5Fclose(f);
    }
    snprintf(cmd, sizeof cmd, "rm -r '%s'", dir);
    EXPECT(system(cmd) == 0);
}

FLAME_TEST(flame_eval_and_flame_rollout_run_the_same_episodes) {
    const char *bin = getenv("FLAME_BIN");
    if (!bin) {
        printf("  (FLAME_BIN not set: the command part needs the flame binary)\n");
        return;
    }
    /* a checkpoint of an untrained agent */
    char ck[512];
    snprintf(ck, sizeof ck, "%s/hopper.h5", tmpdir);
    FlameConfig cfg;
    small_config(&cfg, "Hopper-v5");
    const EnvSpec *spec = env_spec_find("Hopper-v5");
    AgentState st;
    agent_state_init(&st, &cfg, spec->obs_dim, spec->act_dim);
    TrainCounters tc;
    memset(&tc, 0, sizeof tc);
    EXPECT(ckpt_write(ck, &cfg, &st, &tc, NULL, NULL, 0, "cpu") == FLAME_OK);
    agent_state_free(&st);
    check_commands_agree(bin, ck, "", 9);                      /* default envs */
    check_commands_agree(bin, ck, "--envs 4 --threads 2", 9);  /* 4 envs */
    check_commands_agree(bin, ck, "--stochastic --envs 3", 7); /* exploring actions */
    remove(ck);
}

int main(void) {
    h5_silence();
    snprintf(tmpdir, sizeof tmpdir, "/tmp/flame_test_rollout_XXXXXX");
    FLAME_CHECK(mkdtemp(tmpdir), "cannot create a temporary directory");
    RUN_TEST(evaluation_and_dataset_runs_give_the_same_episodes);
    RUN_TEST(unstable_episodes_are_replaced_and_counted);
    RUN_TEST(unstable_steps_never_reach_a_dataset_or_the_replay);
    RUN_TEST(keep_final_shows_each_final_state_and_runs_the_same_episodes);
    RUN_TEST(random_policy_draws);
    RUN_TEST(flame_eval_and_flame_rollout_run_the_same_episodes);
    int rc = flame_test_report();
    rmdir(tmpdir);
    return rc;
}
