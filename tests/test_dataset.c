/*
 * test_dataset.c: rollout datasets and replay export, read back through the HDF5 C API:
 * names, shapes, dtypes, chunking + gzip, h5py's boolean enum, row semantics (next_observations,
 * terminals/timeouts, qpos/qvel before the step replayed through the env), returns, Minari episode
 * groups and metadata.json, determinism and thread-count independence, replace/abort behaviour,
 * `flame rollout` output and `flame export-replay` order.
 *
 * `test_dataset --make-ckpt PATH ENV ALGO [CAPACITY COUNT]` writes a small untrained checkpoint
 * (with a replay ring of CAPACITY slots holding COUNT pushed transitions) for the CLI tests;
 * `test_dataset --episodes-of DIR` prints the episodes of a Minari dataset directory as `flame
 * eval` prints its own ("returns: ..." with the float64 rewards summed in order, "lengths: ...").
 */
#include <dirent.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "flame/agent.h"
#include "flame/backend.h"
#include "flame/ckpt.h"
#include "flame/config.h"
#include "flame/dataset.h"
#include "flame/env.h"
#include "flame/h5util.h"
#include "flame/rollout.h"
#include "flame/update.h"
#include "flame_test.h"

static char tmpdir[256];

// ---------------------------------------------------------------------------- fixtures

/* a rollout through the engine's dataset sink (rollout.h) at the rollout command's env rows */
typedef struct {
    bool random;
    const BackendOps *ops;
    Backend *backend;
    bool deterministic;
    const EnvSpec *spec;
    int episodes, num_envs, num_threads;
    uint64_t seed;
} TestRollout;

static int test_rollout(const TestRollout *o, DatasetWriter *w, RolloutResult *st) {
    RolloutEnvs e = {.spec = o->spec,
                     .num_envs = o->num_envs,
                     .num_threads = o->num_threads,
                     .seed = o->seed,
                     .env_offset = ROLLOUT_ENV_OFFSET};
    RolloutPolicy p =
        o->random ? rollout_policy_random(o->seed)
                  : rollout_policy_agent(o->ops, o->backend,
                                         o->deterministic ? ACT_DETERMINISTIC : ACT_EXPLORE);
    RolloutRun run = {.episodes = o->episodes};
    return rollout_dataset(&e, &p, &run, w, st);
}

static void small_config(FlameConfig *cfg, const char *env, const char *algo) {
    config_defaults(cfg);
    char buf[256];
    snprintf(buf, sizeof buf, "env.id=%s", env);
    FLAME_CHECK(config_set(cfg, buf) == FLAME_OK, "%s", flame_last_error());
    snprintf(buf, sizeof buf, "algo=%s", algo);
    FLAME_CHECK(config_set(cfg, buf) == FLAME_OK, "%s", flame_last_error());
    const char *sets[] = {"net.hidden=16",
                          "net.layers=2",
                          "flow.num_particles=4",
                          "update.replay_size=64",
                          "update.batch_size=32",
                          "backend.type=cpu",
                          "run.seed=7"};
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++) {
        FLAME_CHECK(config_set(cfg, sets[i]) == FLAME_OK, "%s", flame_last_error());
    }
    config_resolve(cfg);
    FLAME_CHECK(config_validate(cfg) == FLAME_OK, "%s", flame_last_error());
}

/* transition k of the synthetic replay contents: obs[0] = k identifies the insertion order */
static void replay_row(int k, int S, int D, float *obs, float *act, float *rew, float *next,
                       uint8_t *done) {
    for (int j = 0; j < S; j++) {
        obs[j] = j == 0 ? (float)k : 0.01f * (float)(j + k);
        next[j] = obs[j] + 0.5f;
    }
    for (int d = 0; d < D; d++) {
        act[d] = (float)((k * 7 + d * 3) % 19) / 9.0f - 1.0f;
    }
    *rew = 0.25f * (float)k;
    *done = (uint8_t)(k % 5 == 4);
}

/* a checkpoint of an untrained agent (updates = 77, env_steps = 1234), optionally with a replay
   ring of `cap` slots into which `count` transitions were pushed */
static int make_ckpt(const char *path, const char *env, const char *algo, int cap, int count) {
    FlameConfig cfg;
    small_config(&cfg, env, algo);
    const EnvSpec *spec = env_spec_find(env);
    FLAME_CHECK(spec, "unknown env %s", env);
    AgentState st;
    agent_state_init(&st, &cfg, spec->obs_dim, spec->act_dim);
    /* the counters 77 updates leave (update.c; checkpoints are checked for them) */
    AgentCounters c;
    update_counters_after(&cfg, 77, &c);
    st.updates = c.updates;
    st.actor_steps = c.actor_steps;
    st.critic_steps = c.critic_steps;
    st.alpha_steps = c.alpha_steps;
    TrainCounters tc;
    memset(&tc, 0, sizeof tc);
    tc.env_steps = 1234;
    Replay r;
    bool with_replay = cap > 0;
    if (with_replay) {
        int S = spec->obs_dim, D = spec->act_dim;
        replay_init(&r, cap, S, D);
        float *o = calloc((size_t)S, 4), *n = calloc((size_t)S, 4), *a = calloc((size_t)D, 4);
        for (int k = 0; k < count; k++) {
            float rew;
            uint8_t done;
            replay_row(k, S, D, o, a, &rew, n, &done);
            replay_push(&r, o, a, &rew, n, &done, 1);
        }
        free(o), free(n), free(a);
    }
    int rc = ckpt_write(path, &cfg, &st, &tc, with_replay ? &r : NULL, NULL, 0, "cpu");
    if (with_replay) {
        replay_free(&r);
    }
    agent_state_free(&st);
    return rc;
}

static void tmp_path(char *out, size_t n, const char *name) {
    snprintf(out, n, "%s/%s", tmpdir, name);
}

/* number of directory entries (hidden ones included) */
static int dir_entries(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) {
        return -1;
    }
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    }
    closedir(d);
    return n;
}

/* an agent backend with the checkpoint's parameters */
typedef struct {
    Checkpoint ck;
    FlameConfig cfg;
    const BackendOps *ops;
    Backend *b;
} Agent;

static void agent_load(Agent *a, const char *ckpt) {
    FLAME_CHECK(ckpt_read(ckpt, &a->ck, false) == FLAME_OK, "%s", flame_last_error());
    a->cfg = a->ck.cfg;
    a->cfg.backend.type = BACKEND_CPU;
    a->ops = backend_select(&a->cfg);
    FLAME_CHECK(a->ops->create(&a->cfg, a->ck.obs_dim, a->ck.act_dim, &a->b) == FLAME_OK, "%s",
                flame_last_error());
    a->ops->set_state(a->b, &a->ck.st);
}

static void agent_free(Agent *a) {
    a->ops->destroy(a->b);
    ckpt_free(&a->ck);
}

static DatasetInfo info_for(const EnvSpec *spec, double *low, double *high, int *nq, int *nv) {
    mjModel *m = NULL;
    FLAME_CHECK(env_model_load(spec, NULL, &m) == FLAME_OK, "%s", flame_last_error());
    Env *e = env_create(spec, m);
    env_action_bounds(e, low, high);
    *nq = env_nq(e);
    *nv = env_nv(e);
    env_free(e);
    mj_deleteModel(m);
    DatasetInfo in = {.spec = spec,
                      .nq = *nq,
                      .nv = *nv,
                      .act_low = low,
                      .act_high = high,
                      .source = "rollout",
                      .algorithm = "random",
                      .policy = "random",
                      .backend = "",
                      .iteration = 5,
                      .env_steps = 6,
                      .seed = 11,
                      .num_envs = 3,
                      .dataset_id = "test/ds-v0"};
    return in;
}

// ---------------------------------------------------------------------------- HDF5 reading

/* dataset `name`: checks its type class/size, chunked layout, gzip and an unlimited first
   dimension; returns rank and fills dims */
static int check_dataset(hid_t f, const char *name, hid_t want_type, hsize_t *dims) {
    hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
    EXPECT_MSG(ds >= 0, "dataset %s missing", name);
    if (ds < 0) {
        return -1;
    }
    hid_t t = H5Dget_type(ds);
    EXPECT_MSG(H5Tequal(t, want_type) > 0, "dataset %s has the wrong type", name);
    H5Tclose(t);
    hid_t sp = H5Dget_space(ds);
    hsize_t maxd[8];
    int rank = H5Sget_simple_extent_dims(sp, dims, maxd);
    H5Sclose(sp);
    hid_t dcpl = H5Dget_create_plist(ds);
    EXPECT_MSG(H5Pget_layout(dcpl) == H5D_CHUNKED, "%s is not chunked", name);
    unsigned flags = 0, cd[4];
    size_t ncd = 4;
    EXPECT_MSG(H5Pget_filter_by_id2(dcpl, H5Z_FILTER_DEFLATE, &flags, &ncd, cd, 0, NULL, NULL) >= 0,
               "%s is not gzip compressed", name);
    EXPECT_MSG(rank >= 1 && maxd[0] == H5S_UNLIMITED, "%s first dimension is not unlimited", name);
    H5Pclose(dcpl);
    H5Dclose(ds);
    return rank;
}

/* h5py's bool: enum over int8 with exactly FALSE = 0 and TRUE = 1 */
static bool is_h5py_bool(hid_t f, const char *name) {
    hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
    if (ds < 0) {
        return false;
    }
    hid_t t = H5Dget_type(ds);
    bool ok = H5Tget_class(t) == H5T_ENUM;
    if (ok) {
        hid_t super = H5Tget_super(t);
        ok = H5Tequal(super, H5T_STD_I8LE) > 0 && H5Tget_nmembers(t) == 2;
        H5Tclose(super);
        for (int i = 0; ok && i < 2; i++) {
            char *mname = H5Tget_member_name(t, (unsigned)i);
            int8_t v = -1;
            H5Tget_member_value(t, (unsigned)i, &v);
            ok = mname &&
                 ((!strcmp(mname, "FALSE") && v == 0) || (!strcmp(mname, "TRUE") && v == 1));
            H5free_memory(mname);
        }
    }
    H5Tclose(t);
    H5Dclose(ds);
    return ok;
}

static void *read_all(hid_t f, const char *name, hid_t mem_type, size_t elem, size_t *count) {
    hsize_t dims[8];
    int rank = h5_dims(f, name, dims);
    size_t n = 1;
    for (int i = 0; i < rank; i++) {
        n *= (size_t)dims[i];
    }
    void *buf = calloc(n ? n : 1, elem);
    if (rank >= 0) {
        hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
        EXPECT(H5Dread(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0);
        H5Dclose(ds);
    }
    *count = rank >= 0 ? n : 0;
    return buf;
}

static char *read_meta_str(hid_t f, const char *name) {
    hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
    if (ds < 0) {
        return NULL;
    }
    hid_t t = H5Dget_type(ds);
    size_t n = H5Tget_size(t);
    char *s = calloc(n + 1, 1);
    H5Dread(ds, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, s);
    H5Tclose(t);
    H5Dclose(ds);
    return s;
}

static int64_t read_meta_i64(hid_t f, const char *name) {
    int64_t v = -999;
    h5_read(f, name, H5T_NATIVE_INT64, 0, NULL, &v, "test");
    return v;
}

// ---------------------------------------------------------------------------- D4RL checks

/* every structural and row-level property of a D4RL rollout file; returns per-episode returns
   recomputed from the float32 rewards (episodes split at terminals | timeouts) */
static void check_d4rl(const char *path, const EnvSpec *spec, int nq, int nv,
                       const RolloutResult *st, bool expect_logp, const double *low,
                       const double *high) {
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    EXPECT_MSG(f >= 0, "cannot open %s", path);
    if (f < 0) {
        return;
    }
    const int S = spec->obs_dim, D = spec->act_dim;
    const size_t N = (size_t)st->steps;
    hsize_t d[8];
    EXPECT(check_dataset(f, "observations", H5T_IEEE_F32LE, d) == 2 && d[0] == N &&
           d[1] == (hsize_t)S);
    EXPECT(check_dataset(f, "next_observations", H5T_IEEE_F32LE, d) == 2 && d[0] == N &&
           d[1] == (hsize_t)S);
    EXPECT(check_dataset(f, "actions", H5T_IEEE_F32LE, d) == 2 && d[0] == N && d[1] == (hsize_t)D);
    EXPECT(check_dataset(f, "rewards", H5T_IEEE_F32LE, d) == 1 && d[0] == N);
    EXPECT(check_dataset(f, "infos/qpos", H5T_IEEE_F64LE, d) == 2 && d[0] == N &&
           d[1] == (hsize_t)nq);
    EXPECT(check_dataset(f, "infos/qvel", H5T_IEEE_F64LE, d) == 2 && d[0] == N &&
           d[1] == (hsize_t)nv);
    hid_t bt = h5_bool_type();
    EXPECT(check_dataset(f, "terminals", bt, d) == 1 && d[0] == N);
    EXPECT(check_dataset(f, "timeouts", bt, d) == 1 && d[0] == N);
    H5Tclose(bt);
    EXPECT(is_h5py_bool(f, "terminals"));
    EXPECT(is_h5py_bool(f, "timeouts"));
    EXPECT(is_h5py_bool(f, "metadata/deterministic"));
    EXPECT(h5_exists(f, "infos/action_log_probs") == expect_logp);

    size_t n;
    float *obs = read_all(f, "observations", H5T_NATIVE_FLOAT, 4, &n);
    float *next = read_all(f, "next_observations", H5T_NATIVE_FLOAT, 4, &n);
    float *act = read_all(f, "actions", H5T_NATIVE_FLOAT, 4, &n);
    float *rew = read_all(f, "rewards", H5T_NATIVE_FLOAT, 4, &n);
    uint8_t *term = read_all(f, "terminals", H5T_NATIVE_UINT8, 1, &n);
    uint8_t *tout = read_all(f, "timeouts", H5T_NATIVE_UINT8, 1, &n);
    double *qpos = read_all(f, "infos/qpos", H5T_NATIVE_DOUBLE, 8, &n);
    double *qvel = read_all(f, "infos/qvel", H5T_NATIVE_DOUBLE, 8, &n);

    /* episode ends: exactly one of terminal / timeout at each end, neither elsewhere */
    int ep = 0, len = 0, bad_flags = 0, bad_next = 0, bad_box = 0;
    double ret = 0;
    for (size_t i = 0; i < N; i++) {
        ret += rew[i];
        len++;
        bool end = term[i] || tout[i];
        bad_flags += term[i] && tout[i];
        if (!end && i + 1 < N) {
            bad_next += memcmp(next + i * S, obs + (i + 1) * S, (size_t)S * 4) != 0;
        }
        for (int k = 0; k < D; k++) {
            float a = act[i * D + k];
            bad_box += expect_logp && !(a >= (float)low[k] && a <= (float)high[k]);
        }
        if (end) {
            if (ep < st->episodes) {
                EXPECT_NEAR_Q("episode return", ret, st->returns[ep], 1e-3, 1e-5);
                EXPECT_MSG(len == st->lengths[ep], "episode %d: %d rows, rollout said %d", ep, len,
                           st->lengths[ep]);
                /* a timeout happens exactly at the time limit */
                EXPECT_MSG(!tout[i] || len == spec->max_episode_steps,
                           "timeout at step %d of episode %d", len, ep);
            }
            ep++;
            len = 0;
            ret = 0;
        }
    }
    EXPECT_MSG(bad_flags == 0, "%d rows have both terminal and timeout", bad_flags);
    EXPECT_MSG(bad_next == 0, "%d rows inside episodes have next_obs != obs of the next row",
               bad_next);
    EXPECT_MSG(bad_box == 0, "%d random actions outside the action box", bad_box);
    EXPECT_MSG(ep == st->episodes && len == 0, "%d episode ends (+%d open rows), expected %d", ep,
               len, st->episodes);

    /* qpos/qvel are the state before the step: set it, check the observation, replay the action
       and check next observation and reward (fresh mjData: contact warm start differs slightly).
       Observations that read kinematics (xpos) lag qpos by one substep after a step
      , so only a reset row (row 0) or a qpos/qvel-only observation (Hopper)
       is recomputed exactly from the stored state. */
    mjModel *m = NULL;
    FLAME_CHECK(env_model_load(spec, NULL, &m) == FLAME_OK, "%s", flame_last_error());
    Env *e = env_create(spec, m);
    double *o = calloc((size_t)S, 8), *ctrl = calloc((size_t)D, 8);
    float *of = calloc((size_t)S, 4);
    size_t rows[4] = {0, N / 3, N / 2, N - 1};
    for (int r = 0; r < 4; r++) {
        size_t i = rows[r];
        env_set_state(e, qpos + i * nq, qvel + i * nv, o);
        for (int k = 0; k < S; k++) {
            of[k] = (float)o[k];
        }
        if (i == 0 || !strcmp(spec->family, "Hopper")) {
            EXPECT_CLOSE_Q("obs from qpos/qvel", of, obs + i * S, S, 1e-6, 1e-6);
        }
        for (int k = 0; k < D; k++) {
            ctrl[k] = act[i * D + k];
        }
        EnvStepInfo info;
        env_step_ctrl(e, ctrl, o, &info);
        for (int k = 0; k < S; k++) {
            of[k] = (float)o[k];
        }
        EXPECT_CLOSE_Q("next obs replayed", of, next + i * S, S, 1e-5, 1e-5);
        EXPECT_NEAR_Q("reward replayed", info.reward, rew[i], 1e-5, 1e-5);
        EXPECT(info.terminated == (int)(term[i] || (tout[i] && info.terminated)));
    }
    free(o), free(ctrl), free(of);
    env_free(e);
    mj_deleteModel(m);

    if (expect_logp) {
        float *lp = read_all(f, "infos/action_log_probs", H5T_NATIVE_FLOAT, 4, &n);
        double vol = 0;
        for (int k = 0; k < D; k++) {
            vol += log(high[k] - low[k]);
        }
        EXPECT(n == N);
        for (size_t i = 0; i < n; i++) {
            EXPECT_NEAR_Q("log 1/volume", lp[i], -vol, 1e-5, 1e-6);
        }
        free(lp);
    }
    free(obs), free(next), free(act), free(rew), free(term), free(tout), free(qpos), free(qvel);
    H5Fclose(f);
}

// ---------------------------------------------------------------------------- tests

/* random policy on Hopper (short episodes that end by termination): D4RL layout */
FLAME_TEST(test_d4rl_random_policy) {
    const EnvSpec *spec = env_spec_find("Hopper-v5");
    double low[8], high[8];
    int nq, nv;
    DatasetInfo in = info_for(spec, low, high, &nq, &nv);
    char path[512];
    tmp_path(path, sizeof path, "hopper_random.hdf5");
    DatasetWriter *w = NULL;
    EXPECT(dataset_open(&w, path, DATASET_D4RL, &in, false) == FLAME_OK);
    TestRollout o = {.random = true,
                        .spec = spec,
                        .episodes = 6,
                        .num_envs = 4,
                        .num_threads = 2,
                        .seed = 11};
    RolloutResult st;
    EXPECT(test_rollout(&o, w, &st) == FLAME_OK);
    EXPECT(st.episodes == 6 && st.steps > 6);
    EXPECT(dataset_close(w) == FLAME_OK);
    EXPECT(dir_entries(tmpdir) == 1); /* the file, no temporary left */
    check_d4rl(path, spec, nq, nv, &st, true, low, high);

    /* hopper's random episodes end by termination, never at the 1000-step limit */
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    size_t n;
    uint8_t *term = read_all(f, "terminals", H5T_NATIVE_UINT8, 1, &n);
    int ends = 0;
    for (size_t i = 0; i < n; i++) {
        ends += term[i];
    }
    EXPECT(ends == 6);
    char *alg = read_meta_str(f, "metadata/algorithm");
    char *env = read_meta_str(f, "metadata/env_id");
    EXPECT(alg && !strcmp(alg, "random"));
    EXPECT(env && !strcmp(env, "Hopper-v5"));
    EXPECT(read_meta_i64(f, "metadata/seed") == 11);
    EXPECT(read_meta_i64(f, "metadata/episodes") == 6);
    EXPECT(read_meta_i64(f, "metadata/iteration") == 5);
    free(alg), free(env), free(term);
    H5Fclose(f);
    rollout_result_free(&st);
    remove(path);
}

/* an untrained FLAME-M agent on Reacher (every episode hits the 50-step limit): timeouts */
FLAME_TEST(test_d4rl_agent_timeouts) {
    char ck[512], path[512];
    tmp_path(ck, sizeof ck, "reacher.h5");
    EXPECT(make_ckpt(ck, "Reacher-v5", "flame-m", 0, 0) == FLAME_OK);
    Agent a;
    agent_load(&a, ck);
    const EnvSpec *spec = env_spec_find("Reacher-v5");
    double low[8], high[8];
    int nq, nv;
    DatasetInfo in = info_for(spec, low, high, &nq, &nv);
    in.algorithm = "flame-m";
    tmp_path(path, sizeof path, "reacher.hdf5");
    DatasetWriter *w = NULL;
    EXPECT(dataset_open(&w, path, DATASET_D4RL, &in, false) == FLAME_OK);
    TestRollout o = {.random = false,
                        .ops = a.ops,
                        .backend = a.b,
                        .deterministic = true,
                        .spec = spec,
                        .episodes = 3,
                        .num_envs = 2,
                        .num_threads = 2,
                        .seed = 3};
    RolloutResult st;
    EXPECT(test_rollout(&o, w, &st) == FLAME_OK);
    EXPECT(dataset_close(w) == FLAME_OK);
    EXPECT(st.steps == 150);
    check_d4rl(path, spec, nq, nv, &st, false, low, high);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    size_t n;
    uint8_t *term = read_all(f, "terminals", H5T_NATIVE_UINT8, 1, &n);
    uint8_t *tout = read_all(f, "timeouts", H5T_NATIVE_UINT8, 1, &n);
    int nt = 0, nto = 0;
    for (size_t i = 0; i < n; i++) {
        nt += term[i];
        nto += tout[i];
        EXPECT_MSG(tout[i] == ((i + 1) % 50 == 0), "timeout flag at row %zu", i);
    }
    EXPECT(nt == 0 && nto == 3);
    free(term), free(tout);
    H5Fclose(f);
    rollout_result_free(&st);
    agent_free(&a);
    remove(path);
    remove(ck);
}

/* same seed and envs => identical episodes whatever the thread count; other seeds or stochastic
   actions => different episodes */
FLAME_TEST(test_rollout_deterministic_and_thread_independent) {
    char ck[512];
    tmp_path(ck, sizeof ck, "pendulum.h5");
    EXPECT(make_ckpt(ck, "InvertedPendulum-v5", "flame-m", 0, 0) == FLAME_OK);
    Agent a;
    agent_load(&a, ck);
    const EnvSpec *spec = env_spec_find("InvertedPendulum-v5");
    TestRollout o = {.random = false,
                        .ops = a.ops,
                        .backend = a.b,
                        .deterministic = true,
                        .spec = spec,
                        .episodes = 7,
                        .num_envs = 4,
                        .num_threads = 1,
                        .seed = 5};
    RolloutResult s1, s3, s_seed, s_stoch;
    EXPECT(test_rollout(&o, NULL, &s1) == FLAME_OK);
    o.num_threads = 3;
    EXPECT(test_rollout(&o, NULL, &s3) == FLAME_OK);
    EXPECT(s1.episodes == 7 && s3.episodes == 7);
    EXPECT(s1.steps == s3.steps);
    EXPECT(!memcmp(s1.returns, s3.returns, 7 * sizeof(double)));
    EXPECT(!memcmp(s1.lengths, s3.lengths, 7 * sizeof(int)));
    o.seed = 6;
    EXPECT(test_rollout(&o, NULL, &s_seed) == FLAME_OK);
    EXPECT(memcmp(s1.returns, s_seed.returns, 7 * sizeof(double)) != 0);
    o.seed = 5;
    o.deterministic = false;
    EXPECT(test_rollout(&o, NULL, &s_stoch) == FLAME_OK);
    EXPECT(memcmp(s1.returns, s_stoch.returns, 7 * sizeof(double)) != 0);
    rollout_result_free(&s1), rollout_result_free(&s3);
    rollout_result_free(&s_seed), rollout_result_free(&s_stoch);
    o.episodes = 0;
    EXPECT(test_rollout(&o, NULL, &s1) == FLAME_EINPUT);
    agent_free(&a);
    remove(ck);
}

static bool file_contains(const char *path, const char *needle) {
    FILE *f = fopen(path, "r");
    if (!f) {
        return false;
    }
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strstr(buf, needle) != NULL;
}

/* Minari layout: episode groups with T+1 observations, attributes, metadata.json; the D4RL file
   of the same rollout holds the same data */
FLAME_TEST(test_minari_layout) {
    char ck[512], dir[512], d4[512];
    tmp_path(ck, sizeof ck, "pendulum2.h5");
    EXPECT(make_ckpt(ck, "InvertedPendulum-v5", "flame-m", 0, 0) == FLAME_OK);
    Agent a;
    agent_load(&a, ck);
    const EnvSpec *spec = env_spec_find("InvertedPendulum-v5");
    double low[8], high[8];
    int nq, nv;
    DatasetInfo in = info_for(spec, low, high, &nq, &nv);
    in.algorithm = "flame-m";
    tmp_path(dir, sizeof dir, "pendulum-v0");
    tmp_path(d4, sizeof d4, "pendulum.hdf5");
    TestRollout o = {.random = false,
                        .ops = a.ops,
                        .backend = a.b,
                        .deterministic = true,
                        .spec = spec,
                        .episodes = 5,
                        .num_envs = 3,
                        .num_threads = 2,
                        .seed = 9};
    DatasetWriter *w = NULL;
    RolloutResult st, st4;
    EXPECT(dataset_open(&w, dir, DATASET_MINARI, &in, false) == FLAME_OK);
    EXPECT(test_rollout(&o, w, &st) == FLAME_OK);
    EXPECT(dataset_close(w) == FLAME_OK);
    EXPECT(dataset_open(&w, d4, DATASET_D4RL, &in, false) == FLAME_OK);
    EXPECT(test_rollout(&o, w, &st4) == FLAME_OK);
    EXPECT(dataset_close(w) == FLAME_OK);

    char p[640];
    snprintf(p, sizeof p, "%s/data/main_data.hdf5", dir);
    hid_t f = H5Fopen(p, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t f4 = H5Fopen(d4, H5F_ACC_RDONLY, H5P_DEFAULT);
    EXPECT(f >= 0 && f4 >= 0);
    hsize_t nobj = 0;
    H5Gget_num_objs(f, &nobj);
    EXPECT(nobj == 5);
    const int S = spec->obs_dim, D = spec->act_dim;
    size_t n;
    float *obs4 = read_all(f4, "observations", H5T_NATIVE_FLOAT, 4, &n);
    float *next4 = read_all(f4, "next_observations", H5T_NATIVE_FLOAT, 4, &n);
    float *act4 = read_all(f4, "actions", H5T_NATIVE_FLOAT, 4, &n);
    hid_t bt = h5_bool_type();
    size_t row = 0;
    int64_t total = 0;
    for (int k = 0; k < 5; k++) {
        char g[64], name[96];
        snprintf(g, sizeof g, "episode_%d", k);
        hid_t grp = H5Gopen2(f, g, H5P_DEFAULT);
        EXPECT_MSG(grp >= 0, "%s missing", g);
        if (grp < 0) {
            continue;
        }
        int64_t id = -1, steps = -1;
        EXPECT(h5_attr_read_i64(grp, "id", &id) == FLAME_OK && id == k);
        EXPECT(h5_attr_read_i64(grp, "total_steps", &steps) == FLAME_OK && steps == st.lengths[k]);
        int64_t seed = -1;
        EXPECT(h5_attr_read_i64(grp, "seed", &seed) == FLAME_OK && seed == 11);
        EXPECT(h5_exists(grp, "infos")); /* minari's EpisodeData.infos must be a dict */
        const int T = st.lengths[k];
        total += T;
        hsize_t d[8];
        snprintf(name, sizeof name, "%s/observations", g);
        EXPECT(check_dataset(f, name, H5T_IEEE_F64LE, d) == 2 && d[0] == (hsize_t)T + 1 &&
               d[1] == (hsize_t)S);
        double *ob = read_all(f, name, H5T_NATIVE_DOUBLE, 8, &n);
        snprintf(name, sizeof name, "%s/actions", g);
        EXPECT(check_dataset(f, name, H5T_IEEE_F32LE, d) == 2 && d[0] == (hsize_t)T &&
               d[1] == (hsize_t)D);
        float *ac = read_all(f, name, H5T_NATIVE_FLOAT, 4, &n);
        snprintf(name, sizeof name, "%s/rewards", g);
        EXPECT(check_dataset(f, name, H5T_IEEE_F64LE, d) == 1 && d[0] == (hsize_t)T);
        double *rw = read_all(f, name, H5T_NATIVE_DOUBLE, 8, &n);
        snprintf(name, sizeof name, "%s/terminations", g);
        EXPECT(check_dataset(f, name, bt, d) == 1 && d[0] == (hsize_t)T);
        EXPECT(is_h5py_bool(f, name));
        uint8_t *te = read_all(f, name, H5T_NATIVE_UINT8, 1, &n);
        snprintf(name, sizeof name, "%s/truncations", g);
        EXPECT(check_dataset(f, name, bt, d) == 1 && d[0] == (hsize_t)T);
        EXPECT(is_h5py_bool(f, name));
        uint8_t *tr = read_all(f, name, H5T_NATIVE_UINT8, 1, &n);

        /* rewards: the attributes are numpy's sum/mean/std/max/min of the rewards dataset */
        double sum = 0, mx = -INFINITY, mn = INFINITY;
        for (int t = 0; t < T; t++) {
            sum += rw[t];
            mx = fmax(mx, rw[t]);
            mn = fmin(mn, rw[t]);
        }
        double var = 0;
        for (int t = 0; t < T; t++) {
            var += (rw[t] - sum / T) * (rw[t] - sum / T);
        }
        double a_sum, a_mean, a_std, a_max, a_min;
        hid_t at;
        const char *an[5] = {"rewards_sum", "rewards_mean", "rewards_std", "rewards_max",
                             "rewards_min"};
        double *av[5] = {&a_sum, &a_mean, &a_std, &a_max, &a_min};
        for (int q = 0; q < 5; q++) {
            at = H5Aopen(grp, an[q], H5P_DEFAULT);
            EXPECT_MSG(at >= 0, "attribute %s missing", an[q]);
            H5Aread(at, H5T_NATIVE_DOUBLE, av[q]);
            H5Aclose(at);
        }
        EXPECT(a_sum == sum && a_sum == st.returns[k]);
        EXPECT_NEAR_Q("rewards_mean", a_mean, sum / T, 1e-12, 1e-12);
        EXPECT_NEAR_Q("rewards_std", a_std, sqrt(var / T), 1e-12, 1e-12);
        EXPECT(a_max == mx && a_min == mn);

        /* exactly the last step ends the episode (pendulum: falls, or the time limit) */
        for (int t = 0; t < T; t++) {
            EXPECT_MSG((te[t] || tr[t]) == (t == T - 1), "episode %d step %d flags", k, t);
        }
        /* the D4RL rows of the same rollout: s_t = obs[t], s_{t+1} = obs[t+1] */
        for (int t = 0; t < T; t++, row++) {
            for (int j = 0; j < S; j++) {
                EXPECT_MSG(obs4[row * S + j] == (float)ob[t * S + j] &&
                               next4[row * S + j] == (float)ob[(t + 1) * S + j],
                           "episode %d step %d obs %d", k, t, j);
            }
            EXPECT(!memcmp(act4 + row * D, ac + (size_t)t * D, (size_t)D * 4));
        }
        free(ob), free(ac), free(rw), free(te), free(tr);
        H5Gclose(grp);
    }
    EXPECT(total == st.steps && (size_t)total * (size_t)S == (size_t)st4.steps * (size_t)S);
    H5Tclose(bt);
    free(obs4), free(next4), free(act4);
    H5Fclose(f);
    H5Fclose(f4);

    snprintf(p, sizeof p, "%s/data/metadata.json", dir);
    char want[128];
    snprintf(want, sizeof want, "\"total_steps\": %lld,", (long long)st.steps);
    EXPECT(file_contains(p, want));
    EXPECT(file_contains(p, "\"total_episodes\": 5,"));
    EXPECT(file_contains(p, "\"dataset_id\": \"test/ds-v0\""));
    EXPECT(file_contains(p, "\"data_format\": \"hdf5\""));
    EXPECT(file_contains(p, "\"minari_version\": \"0.5.3\""));
    EXPECT(file_contains(p, "\"algorithm_name\": \"flame-m\""));
    EXPECT(file_contains(p, "\\\"dtype\\\": \\\"float64\\\", \\\"shape\\\": [4], \\\"low\\\": "
                            "[-Infinity, -Infinity, -Infinity, -Infinity]"));
    EXPECT(file_contains(p, "\\\"dtype\\\": \\\"float32\\\", \\\"shape\\\": [1], \\\"low\\\": "
                            "[-3.0], \\\"high\\\": [3.0]}"));
    EXPECT(file_contains(p, "gymnasium.envs.mujoco.inverted_pendulum_v5:InvertedPendulumEnv"));
    EXPECT(file_contains(p, "\"author\": ["));
    /* no permalink was given: no link field that points nowhere */
    EXPECT(!file_contains(p, "code_permalink"));

    /* replacing: refused without force, done with force (the old directory is gone) */
    EXPECT(dataset_open(&w, dir, DATASET_MINARI, &in, false) == FLAME_EINPUT);
    EXPECT(strstr(flame_last_error(), "already exists") != NULL);
    o.episodes = 2;
    rollout_result_free(&st4);
    EXPECT(dataset_open(&w, dir, DATASET_MINARI, &in, true) == FLAME_OK);
    EXPECT(test_rollout(&o, w, &st4) == FLAME_OK);
    EXPECT(dataset_close(w) == FLAME_OK);
    EXPECT(file_contains(p, "\"total_episodes\": 2,"));
    EXPECT(dir_entries(tmpdir) == 3); /* ckpt, dataset directory, D4RL file */
    rollout_result_free(&st), rollout_result_free(&st4);
    agent_free(&a);
    remove(d4);
    remove(ck);
    snprintf(p, sizeof p, "%s/data/main_data.hdf5", dir);
    remove(p);
    snprintf(p, sizeof p, "%s/data/metadata.json", dir);
    remove(p);
    snprintf(p, sizeof p, "%s/data", dir);
    rmdir(p);
    rmdir(dir);
}

/* open refuses existing outputs and directories that are not datasets, creates missing
   directories; abort leaves nothing (not even those directories); force on a D4RL file replaces
   it */
FLAME_TEST(test_writer_refusals_and_abort) {
    const EnvSpec *spec = env_spec_find("Swimmer-v5");
    double low[8], high[8];
    int nq, nv;
    DatasetInfo in = info_for(spec, low, high, &nq, &nv);
    char path[512], other[512], missing[512];
    tmp_path(path, sizeof path, "x.hdf5");
    tmp_path(other, sizeof other, "notes");
    tmp_path(missing, sizeof missing, "no/such/dir/x.hdf5");
    DatasetWriter *w = NULL;
    /* missing directories are created, and removed again when nothing is written */
    EXPECT(dataset_open(&w, missing, DATASET_D4RL, &in, false) == FLAME_OK);
    EXPECT(dir_entries(tmpdir) == 1); /* no/ */
    dataset_abort(w);
    EXPECT(dir_entries(tmpdir) == 0);
    EXPECT(dataset_open(&w, path, DATASET_D4RL, &in, false) == FLAME_OK);
    EXPECT(dir_entries(tmpdir) == 1); /* the temporary file */
    dataset_abort(w);
    EXPECT(dir_entries(tmpdir) == 0);

    FILE *f = fopen(path, "w");
    fputs("keep", f);
    fclose(f);
    EXPECT(dataset_open(&w, path, DATASET_D4RL, &in, false) == FLAME_EINPUT);
    EXPECT(dataset_open(&w, path, DATASET_MINARI, &in, true) == FLAME_EINPUT);
    EXPECT(strstr(flame_last_error(), "not a Minari dataset") != NULL);
    mkdir(other, 0777);
    EXPECT(dataset_open(&w, other, DATASET_MINARI, &in, true) == FLAME_EINPUT);
    EXPECT(dataset_open(&w, other, DATASET_D4RL, &in, true) == FLAME_EINPUT);
    EXPECT(dataset_open(&w, path, DATASET_D4RL, &in, true) == FLAME_OK);
    TestRollout o = {.random = true,
                        .spec = spec,
                        .episodes = 1,
                        .num_envs = 1,
                        .num_threads = 1,
                        .seed = 1};
    RolloutResult st;
    EXPECT(test_rollout(&o, w, &st) == FLAME_OK);
    EXPECT(st.steps == 1000); /* swimmer never terminates */
    EXPECT(dataset_close(w) == FLAME_OK);
    hid_t h = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    EXPECT(h >= 0);
    H5Fclose(h);
    EXPECT(dir_entries(tmpdir) == 2);
    rollout_result_free(&st);
    remove(path);
    rmdir(other);
}

FLAME_TEST(test_minari_ids) {
    char id[256];
    /* default: from the env and the policy, lower case */
    EXPECT(dataset_minari_id(NULL, "Hopper-v5", "flame-m", true, id, sizeof id) == FLAME_OK);
    EXPECT_MSG(!strcmp(id, "flame/hopper-v5/flame-m-v0"), "%s", id);
    EXPECT(dataset_minari_id("", "HalfCheetah-v4", "sac", false, id, sizeof id) == FLAME_OK);
    EXPECT_MSG(!strcmp(id, "flame/halfcheetah-v4/sac-stochastic-v0"), "%s", id);
    EXPECT(dataset_minari_id(NULL, "Ant-v5", "random", true, id, sizeof id) == FLAME_OK);
    EXPECT_MSG(!strcmp(id, "flame/ant-v5/random-v0"), "%s", id);
    /* explicit ids are taken as given */
    EXPECT(dataset_minari_id("flame/hopper/expert-v2", "Hopper-v5", "sac", true, id, sizeof id) ==
           FLAME_OK);
    EXPECT(!strcmp(id, "flame/hopper/expert-v2"));
    EXPECT(dataset_minari_id("expert-v3", "Hopper-v5", "sac", true, id, sizeof id) == FLAME_OK);
    EXPECT(!strcmp(id, "expert-v3"));
    EXPECT(dataset_minari_id("bad id-v0", "Hopper-v5", "sac", true, id, sizeof id) == FLAME_EINPUT);
    EXPECT(dataset_minari_id("name-vx", "Hopper-v5", "sac", true, id, sizeof id) == FLAME_EINPUT);
    EXPECT(dataset_minari_id("ns//name-v1", "Hopper-v5", "sac", true, id, sizeof id) ==
           FLAME_EINPUT);
    EXPECT(dataset_minari_id("flame/hopper", "Hopper-v5", "sac", true, id, sizeof id) ==
           FLAME_EINPUT);
    /* the environment at write time changes nothing */
    setenv("MINARI_DATASETS_PATH", "/tmp", 1);
    EXPECT(dataset_minari_id(NULL, "Hopper-v5", "flame-m", true, id, sizeof id) == FLAME_OK);
    EXPECT(!strcmp(id, "flame/hopper-v5/flame-m-v0"));
    unsetenv("MINARI_DATASETS_PATH");
}

/* the link fields of Minari's metadata: a URL and an address, or nothing */
FLAME_TEST(test_minari_link_fields) {
    DatasetInfo in = {0};
    EXPECT(dataset_minari_links_check(&in) == FLAME_OK);
    in.code_permalink = "https://example.org/flame/tree/abc123";
    in.author_email = "jane@example.org";
    EXPECT(dataset_minari_links_check(&in) == FLAME_OK);
    in.code_permalink = "http://example.org/x";
    EXPECT(dataset_minari_links_check(&in) == FLAME_OK);
    const char *bad_urls[] = {"flame 0.1.0 (commit abc)", "example.org/x", "https://",
                              "https:///path", "https://host/a b", "ftp://host/x"};
    for (size_t i = 0; i < sizeof bad_urls / sizeof *bad_urls; i++) {
        in.code_permalink = bad_urls[i];
        EXPECT_MSG(dataset_minari_links_check(&in) == FLAME_EINPUT, "%s", bad_urls[i]);
        EXPECT(strstr(flame_last_error(), "--code-permalink") != NULL);
    }
    in.code_permalink = NULL;
    const char *bad_mails[] = {"jane", "@example.org", "jane@example", "a@b@c.org",
                               "Jane <jane@example.org>", "jane@example.org, bob@example.org"};
    for (size_t i = 0; i < sizeof bad_mails / sizeof *bad_mails; i++) {
        in.author_email = bad_mails[i];
        EXPECT_MSG(dataset_minari_links_check(&in) == FLAME_EINPUT, "%s", bad_mails[i]);
        EXPECT(strstr(flame_last_error(), "--author-email") != NULL);
    }
}

/* runs a shell command, returns its exit status and captures stdout */

/* `flame rollout` prints mean +- std of the returns that the dataset's rewards sum to */
FLAME_TEST(test_cli_rollout_returns) {
    const char *bin = getenv("FLAME_BIN");
    if (!bin) {
        printf("  (FLAME_BIN not set: CLI part skipped)\n");
        return;
    }
    char dir[512], cmd[2048], out[8192];
    tmp_path(dir, sizeof dir, "cli-v0");
    snprintf(cmd, sizeof cmd,
             "'%s' rollout --policy random --env Hopper-v5 --episodes 5 "
             "--envs 2 --threads 2 --seed 4 --format minari --out '%s' 2>&1",
             bin, dir);
    EXPECT(flame_test_run(cmd, out, sizeof out) == 0);
    const char *r = strstr(out, "\nreturn ");
    double mean = NAN, sd = NAN;
    EXPECT_MSG(r && sscanf(r, "\nreturn %lf +- %lf", &mean, &sd) == 2, "output: %s", out);
    char p[640];
    snprintf(p, sizeof p, "%s/data/main_data.hdf5", dir);
    hid_t f = H5Fopen(p, H5F_ACC_RDONLY, H5P_DEFAULT);
    EXPECT(f >= 0);
    double rets[5], sum = 0;
    for (int k = 0; k < 5 && f >= 0; k++) {
        char name[64];
        snprintf(name, sizeof name, "episode_%d/rewards", k);
        size_t n;
        double *rw = read_all(f, name, H5T_NATIVE_DOUBLE, 8, &n);
        rets[k] = 0;
        for (size_t t = 0; t < n; t++) {
            rets[k] += rw[t];
        }
        sum += rets[k];
        free(rw);
    }
    double var = 0;
    for (int k = 0; k < 5; k++) {
        var += (rets[k] - sum / 5) * (rets[k] - sum / 5);
    }
    EXPECT_NEAR("printed mean return", mean, sum / 5, 1e-6, 0);
    EXPECT_NEAR("printed std of returns", sd, sqrt(var / 5), 1e-6, 0);
    if (f >= 0) {
        H5Fclose(f);
    }
    snprintf(cmd, sizeof cmd, "rm -r '%s'", dir);
    EXPECT(system(cmd) == 0);
}

/* `flame export-replay`: insertion order, oldest first, for a wrapped and an unwrapped ring */
static void check_export(int cap, int count) {
    const char *bin = getenv("FLAME_BIN");
    char ck[512], path[512], cmd[2048], out[8192];
    tmp_path(ck, sizeof ck, "replay.h5");
    tmp_path(path, sizeof path, "replay.hdf5");
    EXPECT(make_ckpt(ck, "Hopper-v5", "sac", cap, count) == FLAME_OK);
    snprintf(cmd, sizeof cmd, "'%s' export-replay --ckpt '%s' --out '%s' 2>&1", bin, ck, path);
    EXPECT_MSG(flame_test_run(cmd, out, sizeof out) == 0, "%s", out);
    const EnvSpec *spec = env_spec_find("Hopper-v5");
    const int S = spec->obs_dim, D = spec->act_dim;
    double low[8], high[8];
    int nq, nv;
    info_for(spec, low, high, &nq, &nv);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    EXPECT(f >= 0);
    if (f < 0) {
        return;
    }
    const int rows = count < cap ? count : cap, first = count - rows;
    hsize_t d[8];
    EXPECT(check_dataset(f, "observations", H5T_IEEE_F32LE, d) == 2 && d[0] == (hsize_t)rows);
    EXPECT(is_h5py_bool(f, "terminals") && is_h5py_bool(f, "timeouts"));
    size_t n;
    float *obs = read_all(f, "observations", H5T_NATIVE_FLOAT, 4, &n);
    float *next = read_all(f, "next_observations", H5T_NATIVE_FLOAT, 4, &n);
    float *act = read_all(f, "actions", H5T_NATIVE_FLOAT, 4, &n);
    float *rew = read_all(f, "rewards", H5T_NATIVE_FLOAT, 4, &n);
    uint8_t *term = read_all(f, "terminals", H5T_NATIVE_UINT8, 1, &n);
    uint8_t *tout = read_all(f, "timeouts", H5T_NATIVE_UINT8, 1, &n);
    float *o = calloc((size_t)S, 4), *nx = calloc((size_t)S, 4), *a = calloc((size_t)D, 4);
    for (int i = 0; i < rows; i++) {
        int k = first + i;
        float r;
        uint8_t done;
        replay_row(k, S, D, o, a, &r, nx, &done);
        EXPECT_MSG(obs[(size_t)i * S] == (float)k, "row %d holds transition %g, expected %d", i,
                   obs[(size_t)i * S], k);
        EXPECT(!memcmp(obs + (size_t)i * S, o, (size_t)S * 4));
        EXPECT(!memcmp(next + (size_t)i * S, nx, (size_t)S * 4));
        EXPECT(rew[i] == r && term[i] == done && tout[i] == 0);
        for (int j = 0; j < D; j++) {
            float env_units =
                (float)(0.5 * (low[j] + high[j]) + (double)a[j] * 0.5 * (high[j] - low[j]));
            EXPECT(act[(size_t)i * D + j] == env_units);
        }
    }
    char *src = read_meta_str(f, "metadata/source");
    EXPECT(src && !strcmp(src, "replay"));
    EXPECT(read_meta_i64(f, "metadata/env_steps") == 1234);
    free(src), free(obs), free(next), free(act), free(rew), free(term), free(tout);
    free(o), free(nx), free(a);
    H5Fclose(f);
    remove(path);
    remove(ck);
}

FLAME_TEST(test_cli_export_replay_order) {
    if (!getenv("FLAME_BIN")) {
        printf("  (FLAME_BIN not set: CLI part skipped)\n");
        return;
    }
    check_export(10, 13); /* wrapped: head = 3 is the oldest slot */
    check_export(20, 13); /* not full: slot 0 is the oldest */
    check_export(8, 8);   /* exactly full: head = 0 */
}

/* --episodes-of DIR: the returns and lengths of a Minari dataset's episodes, in order */
static int print_episodes(const char *dir) {
    char path[1024];
    snprintf(path, sizeof path, "%s/data/main_data.hdf5", dir);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        fprintf(stderr, "cannot open %s\n", path);
        return 1;
    }
    char returns[16384] = "returns:", lengths[16384] = "lengths:";
    char name[64];
    for (int k = 0; snprintf(name, sizeof name, "episode_%d/rewards", k), h5_exists(f, name); k++) {
        size_t n = 0;
        double *r = read_all(f, name, H5T_NATIVE_DOUBLE, sizeof(double), &n), sum = 0;
        for (size_t t = 0; t < n; t++) {
            sum += r[t];
        }
        free(r);
        size_t lr = strlen(returns), ll = strlen(lengths);
        snprintf(returns + lr, sizeof returns - lr, " %.2f", sum);
        snprintf(lengths + ll, sizeof lengths - ll, " %zu", n);
    }
    H5Fclose(f);
    printf("%s\n%s\n", returns, lengths);
    return 0;
}

int main(int argc, char **argv) {
    h5_silence();
    if (argc == 3 && !strcmp(argv[1], "--episodes-of")) {
        return print_episodes(argv[2]);
    }
    if (argc >= 5 && !strcmp(argv[1], "--make-ckpt")) {
        int cap = argc >= 7 ? atoi(argv[5]) : 0, count = argc >= 7 ? atoi(argv[6]) : 0;
        int rc = make_ckpt(argv[2], argv[3], argv[4], cap, count);
        if (rc != FLAME_OK) {
            fprintf(stderr, "%s\n", flame_last_error());
        }
        return rc;
    }
    snprintf(tmpdir, sizeof tmpdir, "/tmp/flame_test_dataset_XXXXXX");
    FLAME_CHECK(mkdtemp(tmpdir), "cannot create a temporary directory");
    RUN_TEST(test_d4rl_random_policy);
    RUN_TEST(test_d4rl_agent_timeouts);
    RUN_TEST(test_rollout_deterministic_and_thread_independent);
    RUN_TEST(test_minari_layout);
    RUN_TEST(test_writer_refusals_and_abort);
    RUN_TEST(test_minari_ids);
    RUN_TEST(test_minari_link_fields);
    RUN_TEST(test_cli_rollout_returns);
    RUN_TEST(test_cli_export_replay_order);
    int rc = flame_test_report();
    if (rc == 0) {
        rmdir(tmpdir);
    } else {
        fprintf(stderr, "files kept in %s\n", tmpdir);
    }
    return rc;
}
