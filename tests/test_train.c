/*
 * test_train.c: the training loop on the CPU backend: metrics.h5 schema read back through the HDF5
 * C API (every dataset with its type, `units` and `help`); /train rows hold the interval since the
 * previous row (a run with a row per update is the reference: means, extremes, actor-step columns
 * over the actor updates); resume is exact (N steps, checkpoint, resume to 2N == an uninterrupted
 * 2N run: every parameter, Adam moment, counter and the replay buffer bitwise, and every
 * deterministic metrics column, also from a checkpoint between two rows and at each pattern of
 * actor and temperature delays); SIGTERM inside a loop iteration's updates, its collection or an
 * evaluation: the checkpoint is taken there, and the resumed run ends bitwise as the uninterrupted
 * one; a run killed with SIGKILL leaves a metrics.h5 that opens and holds every row up to the last
 * flush; a checkpoint of another env, or one a newer checkpoint of its run follows, is refused; on
 * a model MuJoCo cannot integrate, unstable episodes are counted as instabilities, never as
 * episodes, and their last step stays out of the replay.
 */
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "flame/ckpt.h"
#include "flame/h5util.h"
#include "flame/metrics.h"
#include "flame/run_dir.h"
#include "flame/train.h"
#include "flame_test.h"

static char g_tmp[256];

static void tiny_config(FlameConfig *cfg, int algo) {
    config_defaults(cfg);
    cfg->algo = algo;
    snprintf(cfg->env.id, sizeof cfg->env.id, "Hopper-v5"); /* terminations and resets happen */
    cfg->env.num_envs = 3;
    cfg->env.threads = 2;
    cfg->net.hidden = 16;
    cfg->net.layers = 2;
    cfg->update.batch_size = 16;
    cfg->update.replay_size = 500; /* wraps around: the ring state must survive resume */
    cfg->flow.sample_k = 5;
    cfg->flow.num_particles = 4;
    cfg->run.start_steps = 60;
    cfg->run.total_steps = 240;
    cfg->run.eval_every = 120;
    cfg->run.eval_episodes = 2;
    cfg->run.metrics_every = 30;
    cfg->run.flush_every = 60;
    cfg->run.ckpt_every = 120;
    cfg->run.keep_ckpts = 0;
    cfg->run.seed = 3;
    cfg->backend.type = BACKEND_CPU;
    cfg->alpha.delay = 2;
    config_resolve(cfg);
}

static int run(const FlameConfig *cfg, const char *dir, const char *resume) {
    TrainOptions opt = {dir, true, resume, true, true, 0};
    TrainSummary sum;
    int rc = train_run(cfg, &opt, &sum);
    if (rc != FLAME_OK) {
        fprintf(stderr, "train_run: %s\n", flame_last_error());
    }
    return rc;
}

static int64_t read_column(const char *path, const char *name, double *out, int64_t cap) {
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        return -1;
    }
    hsize_t d[8];
    int rank = h5_dims(f, name, d);
    int64_t n = -1;
    if (rank == 1 && (int64_t)d[0] <= cap) {
        n = (int64_t)d[0];
        if (n > 0 && h5_read(f, name, H5T_NATIVE_DOUBLE, 1, d, out, path) != FLAME_OK) {
            n = -1;
        }
    }
    H5Fclose(f);
    return n;
}

FLAME_TEST(test_metrics_schema) {
    FlameConfig cfg;
    tiny_config(&cfg, ALGO_FLAME_M);
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/schema", g_tmp);
    EXPECT(run(&cfg, dir, NULL) == FLAME_OK);
    snprintf(path, sizeof path, "%s/metrics.h5", dir);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    EXPECT(f >= 0);
    /* every declared dataset exists with the declared type; groups have equal lengths */
    struct {
        const char *group;
        const char *names[32];
        char kinds[32];
        const char *units[32];
    } groups[4] = {
#define NAME(n, k, u, h) #n,
#define KIND(n, k, u, h) #k[0],
#define UNITS(n, k, u, h) u,
        {"train", {FLAME_METRICS_TRAIN(NAME)}, {FLAME_METRICS_TRAIN(KIND)},
         {FLAME_METRICS_TRAIN(UNITS)}},
        {"episodes", {FLAME_METRICS_EPISODES(NAME)}, {FLAME_METRICS_EPISODES(KIND)},
         {FLAME_METRICS_EPISODES(UNITS)}},
        {"eval", {FLAME_METRICS_EVAL(NAME)}, {FLAME_METRICS_EVAL(KIND)},
         {FLAME_METRICS_EVAL(UNITS)}},
        {"timing", {FLAME_METRICS_TIMING(NAME)}, {FLAME_METRICS_TIMING(KIND)},
         {FLAME_METRICS_TIMING(UNITS)}},
#undef NAME
#undef KIND
#undef UNITS
    };
    hsize_t lens[4] = {0};
    for (int g = 0; g < 4; g++) {
        for (int c = 0; groups[g].names[c]; c++) {
            char name[128];
            snprintf(name, sizeof name, "%s/%s", groups[g].group, groups[g].names[c]);
            size_t l = strlen(name);
            if (name[l - 1] == '_') {
                name[l - 1] = '\0'; /* return_ -> return */
            }
            hsize_t d[8];
            int rank = h5_dims(f, name, d);
            EXPECT_MSG(rank == 1, "%s missing or not 1-D", name);
            if (rank != 1) {
                continue;
            }
            if (c == 0) {
                lens[g] = d[0];
            }
            EXPECT_MSG(d[0] == lens[g], "%s has %llu rows, group %llu", name,
                       (unsigned long long)d[0], (unsigned long long)lens[g]);
            hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
            hid_t t = H5Dget_type(ds);
            char k = groups[g].kinds[c];
            hid_t want = k == 'I' ? H5T_NATIVE_INT64 : k == 'F' ? H5T_NATIVE_DOUBLE : H5T_NATIVE_UINT8;
            EXPECT_MSG(H5Tequal(t, want) > 0, "%s has the wrong type", name);
            /* the units declared for it, and a help text */
            char *units = h5_attr_read_str(ds, "units"), *help = h5_attr_read_str(ds, "help");
            EXPECT_MSG(units && !strcmp(units, groups[g].units[c]), "%s: units '%s', declared '%s'",
                       name, units ? units : "(none)", groups[g].units[c]);
            EXPECT_MSG(help && strlen(help) > 5, "%s has no help attribute", name);
            free(units);
            free(help);
            H5Tclose(t);
            H5Dclose(ds);
        }
    }
    /* row counts: train rows at every multiple of 30 steps after the 60-step warm-up (3 envs:
       the first step >= each multiple), up to 60 + 240 = 300: 90, 120, ..., 300 -> 8 rows;
       evaluations at 180 and 300 -> 2 rows */
    EXPECT(lens[0] == 8);
    EXPECT(lens[3] == lens[0]);
    EXPECT(lens[2] == 2);
    EXPECT(lens[1] > 0);
    char *yaml = h5_attr_read_str(f, "config");
    EXPECT(yaml && strstr(yaml, "Hopper-v5"));
    FlameConfig back;
    config_defaults(&back);
    EXPECT(yaml && config_load_string(&back, yaml, strlen(yaml), "attr") == FLAME_OK);
    EXPECT(config_equal(&back, &cfg));
    free(yaml);
    const char *attrs[] = {"version", "commit", "backend", "device", "env_id", "algo"};
    for (int i = 0; i < 6; i++) {
        char *v = h5_attr_read_str(f, attrs[i]);
        EXPECT_MSG(v && v[0], "root attribute %s", attrs[i]);
        free(v);
    }
    H5Fclose(f);
}

static void load_final(const char *dir, Checkpoint *ck) {
    char latest[1200];
    EXPECT(ckpt_latest(dir, latest, sizeof latest) == FLAME_OK);
    EXPECT(ckpt_read(latest, ck, true) == FLAME_OK);
}

/* The final checkpoints of two runs hold the same agent (every parameter, Adam moment and
   counter), replay buffer, counters and env states, bitwise; so do the metrics columns named. */
static void expect_same_run(const char *d1, const char *d2, const char **cols, int ncols) {
    Checkpoint a, b;
    load_final(d1, &a);
    load_final(d2, &b);
    char what[64] = "";
    EXPECT_MSG(agent_state_equal(&a.st, &b.st, what, sizeof what), "%s vs %s: %s differs", d1, d2,
               what);
    EXPECT(a.has_replay && b.has_replay && a.replay.size == b.replay.size &&
           a.replay.head == b.replay.head);
    size_t n = (size_t)a.replay.size;
    EXPECT(memcmp(a.replay.obs, b.replay.obs, n * 11 * sizeof(float)) == 0);
    EXPECT(memcmp(a.replay.act, b.replay.act, n * 3 * sizeof(float)) == 0);
    EXPECT(memcmp(a.replay.rew, b.replay.rew, n * sizeof(float)) == 0);
    EXPECT(a.tc.env_steps == b.tc.env_steps && a.tc.act_calls == b.tc.act_calls &&
           a.tc.episodes == b.tc.episodes && a.tc.eval_rounds == b.tc.eval_rounds);
    EXPECT(a.env_state_size == b.env_state_size &&
           memcmp(a.env_state, b.env_state, a.env_state_size) == 0);
    ckpt_free(&a);
    ckpt_free(&b);
    for (int c = 0; c < ncols; c++) {
        static double x[4096], y[4096];
        char p1[600], p2[600];
        snprintf(p1, sizeof p1, "%s/metrics.h5", d1);
        snprintf(p2, sizeof p2, "%s/metrics.h5", d2);
        int64_t nx = read_column(p1, cols[c], x, 4096), ny = read_column(p2, cols[c], y, 4096);
        EXPECT_MSG(nx > 0 && nx == ny, "%s: %lld vs %lld rows", cols[c], (long long)nx,
                   (long long)ny);
        EXPECT_MSG(nx == ny && memcmp(x, y, (size_t)nx * sizeof(double)) == 0, "%s differs",
                   cols[c]);
    }
}

/* A run of 240 steps after the warm-up against one stopped at 180 and resumed from its checkpoint
   at `from`, with checkpoints every `ckpt_every` steps in both (an earlier `from` goes back the way
   the README says: the newer checkpoints removed); everything deterministic must be equal: every
   parameter, Adam moment, counter, the replay and every metrics column that holds no time. */
static void check_resume_in(const char *tag, int algo, int policy_delay, int alpha_delay,
                            int64_t ckpt_every, int64_t from, bool overlap) {
    FlameConfig full, half;
    tiny_config(&full, algo);
    full.update.policy_delay = policy_delay;
    full.alpha.delay = alpha_delay;
    full.run.ckpt_every = ckpt_every;
    full.backend.overlap = overlap;
    config_resolve(&full);
    half = full;
    half.run.total_steps = 120; /* stop at 60 + 120 = 180 (an evaluation step), checkpoint there */
    char d1[512], d2[512];
    snprintf(d1, sizeof d1, "%s/%s_a", g_tmp, tag);
    snprintf(d2, sizeof d2, "%s/%s_b", g_tmp, tag);
    EXPECT(run(&full, d1, NULL) == FLAME_OK);
    EXPECT(run(&half, d2, NULL) == FLAME_OK);
    char ck_half[1200];
    EXPECT(ckpt_latest(d2, ck_half, sizeof ck_half) == FLAME_OK);
    EXPECT(strstr(ck_half, "step_180.h5") != NULL);
    if (from != 180) {
        EXPECT(unlink(ck_half) == 0);
        EXPECT(ckpt_latest(d2, ck_half, sizeof ck_half) == FLAME_OK);
        char want[64];
        snprintf(want, sizeof want, "step_%lld.h5", (long long)from);
        EXPECT_MSG(strstr(ck_half, want) != NULL, "%s is not at step %lld", ck_half,
                   (long long)from);
    }
    /* resume the second run to the full budget */
    EXPECT(run(&full, d2, ck_half) == FLAME_OK);
    const char *cols[] = {"train/step",       "train/updates",     "train/critic_loss",
                          "train/q_mean",     "train/q_min",       "train/q_max",
                          "train/target_mean", "train/actor_loss", "train/fm_loss",
                          "train/qterm_loss", "train/alpha",       "train/entropy",
                          "train/ess_mean",   "train/ess_min",     "train/jvp_max",
                          "train/instabilities", "timing/step",    "episodes/return",
                          "episodes/step",    "eval/return_mean"};
    expect_same_run(d1, d2, cols, (int)(sizeof cols / sizeof cols[0]));
}

static void check_resume(int algo, int policy_delay, int alpha_delay, int64_t ckpt_every,
                         int64_t from) {
    char tag[64];
    snprintf(tag, sizeof tag, "resume%d_%d_%d_%lld", algo, policy_delay, alpha_delay,
             (long long)ckpt_every);
    check_resume_in(tag, algo, policy_delay, alpha_delay, ckpt_every, from, false);
}

FLAME_TEST(test_resume_exact_flame_m) {
    check_resume(ALGO_FLAME_M, 2, 2, 120, 180);
}

FLAME_TEST(test_resume_exact_sac) {
    check_resume(ALGO_SAC, 1, 2, 120, 180);
}

/* SAC with actor steps every 2nd update and alpha steps asked for every update: the temperature
   gradient needs the log pi of an actor step, so alpha steps come with actor steps only; the
   resume lands before an update without an actor step (41 updates done at step 180: one at the
   end of the warm-up, then one per vectorised step) */
FLAME_TEST(test_resume_exact_sac_delayed_actor) {
    check_resume(ALGO_SAC, 2, 1, 120, 180);
}

/* checkpoints every 50 steps (at 111, 162, 210, 261 with 3 envs), off the 30-step row cadence:
   each ends a /train interval, so a run resumed from the one at 162 writes the rows of the
   uninterrupted run */
FLAME_TEST(test_resume_exact_between_rows) {
    check_resume(ALGO_FLAME_M, 2, 2, 50, 162);
}

/* backend.overlap on the CPU backend (acting one iteration late, as on CUDA): resume is exact
   (a checkpoint publishes the state it saves, which a resumed run acts with), between rows too,
   and the late acting shows: the run ends elsewhere than the sequential one */
FLAME_TEST(test_resume_exact_overlap) {
    check_resume_in("overlap_120", ALGO_FLAME_M, 2, 2, 120, 180, true);
    check_resume_in("overlap_50", ALGO_FLAME_M, 2, 2, 50, 162, true);
    check_resume_in("sequential_120", ALGO_FLAME_M, 2, 2, 120, 180, false);
    Checkpoint a, b;
    char d1[512], d2[512], what[64] = "";
    snprintf(d1, sizeof d1, "%s/overlap_120_a", g_tmp);
    snprintf(d2, sizeof d2, "%s/sequential_120_a", g_tmp);
    load_final(d1, &a);
    load_final(d2, &b);
    EXPECT_MSG(!agent_state_equal(&a.st, &b.st, what, sizeof what),
               "backend.overlap changed nothing on the CPU backend");
    size_t n = (size_t)a.replay.size;
    EXPECT(n == (size_t)b.replay.size &&
           memcmp(a.replay.act, b.replay.act, n * 3 * sizeof(float)) != 0);
    ckpt_free(&a);
    ckpt_free(&b);
}

/* /train rows against a run with a row after every update (3 envs, one update per 3 steps): each
   row of the coarse run is the mean (q_min, ess_min: lowest; q_max, jvp_max: highest) of the fine
   run's rows in its interval, the actor columns over the actor updates only (update n with
   n % policy_delay == 0; the other rows repeat the last actor step's values). The two runs train
   identically: rows do not touch the draws. */
FLAME_TEST(test_train_rows_are_interval_means) {
    FlameConfig coarse, fine;
    tiny_config(&coarse, ALGO_FLAME_M);
    tiny_config(&fine, ALGO_FLAME_M);
    coarse.run.eval_episodes = fine.run.eval_episodes = 0;
    fine.run.metrics_every = 3;
    char dc[512], df[512], pc[600], pf[600];
    snprintf(dc, sizeof dc, "%s/rows_coarse", g_tmp);
    snprintf(df, sizeof df, "%s/rows_fine", g_tmp);
    EXPECT(run(&coarse, dc, NULL) == FLAME_OK);
    EXPECT(run(&fine, df, NULL) == FLAME_OK);
    snprintf(pc, sizeof pc, "%s/metrics.h5", dc);
    snprintf(pf, sizeof pf, "%s/metrics.h5", df);
    enum { MEAN, MIN, MAX };
    const struct {
        const char *name;
        int how;
        bool actor;
    } cols[] = {{"critic_loss", MEAN, false}, {"q_mean", MEAN, false},  {"q_min", MIN, false},
                {"q_max", MAX, false},        {"target_mean", MEAN, false}, {"alpha", MEAN, false},
                {"entropy", MEAN, false},     {"actor_loss", MEAN, true}, {"fm_loss", MEAN, true},
                {"qterm_loss", MEAN, true},   {"ess_mean", MEAN, true},  {"ess_min", MIN, true},
                {"jvp_max", MAX, true}};
    static double cu[64], fu[1024], cv[64], fv[1024];
    int64_t nc = read_column(pc, "train/updates", cu, 64);
    int64_t nf = read_column(pf, "train/updates", fu, 1024);
    EXPECT_MSG(nc == 8 && nf == 80, "%lld coarse rows, %lld fine rows", (long long)nc,
               (long long)nf);
    if (nc != 8 || nf != 80) {
        return;
    }
    /* the first fine row holds the two updates of steps 60 and 63, every later one a single
       update: coarse intervals from the second on are compared */
    EXPECT(fu[0] == 2 && fu[nf - 1] == cu[nc - 1]);
    for (int64_t i = 1; i < nf; i++) {
        EXPECT(fu[i] == fu[i - 1] + 1);
    }
    int policy_delay = coarse.update.policy_delay;
    EXPECT(policy_delay == 2); /* actor and non-actor updates both occur */
    for (size_t c = 0; c < sizeof cols / sizeof cols[0]; c++) {
        char name[64];
        snprintf(name, sizeof name, "train/%s", cols[c].name);
        EXPECT(read_column(pc, name, cv, 64) == nc && read_column(pf, name, fv, 1024) == nf);
        for (int64_t r = 1; r < nc; r++) {
            double acc = cols[c].how == MIN ? INFINITY : cols[c].how == MAX ? -INFINITY : 0;
            int n = 0;
            for (int64_t i = 1; i < nf; i++) {
                int64_t u = (int64_t)fu[i] - 1; /* index of the row's update */
                bool in = fu[i] > cu[r - 1] && fu[i] <= cu[r];
                if (!in || (cols[c].actor && u % policy_delay != 0)) {
                    continue;
                }
                acc = cols[c].how == MIN ? fmin(acc, fv[i])
                      : cols[c].how == MAX ? fmax(acc, fv[i])
                                           : acc + fv[i];
                n++;
            }
            EXPECT_MSG(n > 0, "%s: no update in row %lld", name, (long long)r);
            double want = cols[c].how == MEAN && n > 0 ? acc / n : acc;
            EXPECT_MSG(fabs(cv[r] - want) <= 1e-12 * fmax(1.0, fabs(want)),
                       "%s row %lld: %.17g, the fine rows give %.17g (%d updates)", name,
                       (long long)r, cv[r], want, n);
        }
    }
}

FLAME_TEST(test_sigkill_leaves_readable_metrics) {
    FlameConfig cfg;
    tiny_config(&cfg, ALGO_FLAME_M);
    cfg.run.total_steps = 1000000; /* runs until killed */
    cfg.run.eval_episodes = 0;
    cfg.run.ckpt_every = 1000000;
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/killed", g_tmp);
    snprintf(path, sizeof path, "%s/metrics.h5", dir);
    pid_t pid = fork();
    if (pid == 0) {
        run(&cfg, dir, NULL);
        _exit(0);
    }
    /* wait until several flushes happened (the file holds >= 4 train rows), then kill */
    int64_t rows = 0;
    for (int i = 0; i < 600 && rows < 4; i++) {
        usleep(100000);
        double tmp[1];
        hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
        if (f >= 0) {
            hsize_t d[8] = {0};
            if (h5_dims(f, "train/step", d) == 1) {
                rows = (int64_t)d[0];
            }
            H5Fclose(f);
        }
        (void)tmp;
    }
    usleep(50000 * (rand() % 4));
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    EXPECT(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    /* the file opens; each group's datasets have equal lengths; /train rows are the complete
       prefix 90, 120, 150, ... (one per 30 steps after the warm-up) */
    double steps[100000];
    int64_t n = read_column(path, "train/step", steps, 100000);
    EXPECT_MSG(n >= 4, "%lld rows after the kill", (long long)n);
    for (int64_t i = 0; i < n; i++) {
        EXPECT(steps[i] == 90 + 30 * i);
    }
    double loss[100000];
    EXPECT(read_column(path, "train/critic_loss", loss, 100000) == n);
    double ep[100000];
    int64_t ne = read_column(path, "episodes/step", ep, 100000);
    EXPECT(ne >= 0 && read_column(path, "episodes/return", ep, 100000) == ne);
}

/* A child process trains cfg in dir until SIGTERM, sent delay_ms after its metrics.h5 appeared
   (the start is over); its exit status (143 expected), or -1. */
static int train_until_sigterm(const FlameConfig *cfg, const char *dir, int delay_ms) {
    char path[600];
    snprintf(path, sizeof path, "%s/metrics.h5", dir);
    pid_t pid = fork();
    if (pid == 0) {
        TrainOptions opt = {dir, true, NULL, true, true, 0};
        TrainSummary sum;
        int rc = train_run(cfg, &opt, &sum);
        _exit(rc != FLAME_OK ? 1 : sum.exit_code);
    }
    struct stat st;
    for (int i = 0; i < 600 && stat(path, &st) != 0; i++) {
        usleep(100000);
    }
    usleep(1000 * delay_ms);
    kill(pid, SIGTERM);
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

typedef bool (*StoppedIn)(const Checkpoint *ck, const FlameConfig *cfg);

/* the checkpoint was taken inside a loop iteration's updates: not a whole iteration's worth */
static bool stopped_in_updates(const Checkpoint *ck, const FlameConfig *cfg) {
    return ck->st.updates % cfg->update.updates_per_iter != 0;
}

/* the checkpoint was taken inside an evaluation: it is still due */
static bool stopped_in_evaluation(const Checkpoint *ck, const FlameConfig *cfg) {
    (void)cfg;
    return ck->tc.next_eval <= ck->tc.env_steps;
}

/* SIGTERM while the phase `in` runs (the config makes it most of the time; up to three tries at
   other moments when it lands elsewhere): the checkpoint is taken inside that phase, and the run
   resumed from it ends as the uninterrupted run does, bitwise (and in the metrics columns). */
static void check_signal_resume(const char *name, const FlameConfig *cfg, StoppedIn in,
                                const char **cols, int ncols) {
    char dir[512], ck_path[1200];
    bool landed = false;
    int64_t step = 0;
    for (int attempt = 0; attempt < 3 && !landed; attempt++) {
        snprintf(dir, sizeof dir, "%s/%s_%d", g_tmp, name, attempt);
        int status = train_until_sigterm(cfg, dir, 300 + 170 * attempt);
        EXPECT_MSG(status == 143, "%s: exit status %d after SIGTERM", name, status);
        Checkpoint ck;
        if (status != 143 || ckpt_latest(dir, ck_path, sizeof ck_path) != FLAME_OK ||
            ckpt_read(ck_path, &ck, false) != FLAME_OK) {
            EXPECT_MSG(false, "%s: no readable checkpoint after SIGTERM", name);
            return;
        }
        landed = in(&ck, cfg);
        step = ck.tc.env_steps;
        printf("  %s: SIGTERM -> checkpoint at step %lld, %lld updates%s\n", name, (long long)step,
               (long long)ck.st.updates, landed ? "" : " (between the phases: tried again)");
        ckpt_free(&ck);
    }
    EXPECT_MSG(landed, "%s: no checkpoint was taken inside the phase in three tries", name);
    FlameConfig fin = *cfg;
    fin.run.total_steps = step - cfg->run.start_steps + 2 * cfg->env.num_envs;
    char ref[512];
    snprintf(ref, sizeof ref, "%s/%s_ref", g_tmp, name);
    EXPECT(run(&fin, dir, ck_path) == FLAME_OK);
    EXPECT(run(&fin, ref, NULL) == FLAME_OK);
    expect_same_run(ref, dir, cols, ncols);
}

/* SIGTERM inside a loop iteration's 128 updates: the resumed run does the rest of them first */
FLAME_TEST(test_signal_in_updates_resumes_exactly) {
    FlameConfig cfg;
    tiny_config(&cfg, ALGO_FLAME_M);
    cfg.update.updates_per_iter = 128;
    cfg.net.hidden = 64;
    cfg.update.batch_size = 48;
    cfg.run.eval_episodes = 0;
    cfg.run.total_steps = 1000000;
    cfg.run.ckpt_every = 1000000;
    config_resolve(&cfg);
    const char *cols[] = {"episodes/step", "episodes/return"};
    check_signal_resume("sig_updates", &cfg, stopped_in_updates, cols, 2);
}

/* SIGTERM while 256 envs step (most of an iteration with 2 small updates): the iteration's first
   update still runs, so the checkpoint shows the iteration was cut, and the resumed run does the
   other one before it steps the envs again */
FLAME_TEST(test_signal_in_collection_resumes_exactly) {
    FlameConfig cfg;
    tiny_config(&cfg, ALGO_FLAME_M);
    cfg.env.num_envs = 256;
    cfg.update.updates_per_iter = 2;
    cfg.run.eval_episodes = 0;
    cfg.run.total_steps = 100000000;
    cfg.run.ckpt_every = 100000000;
    cfg.run.metrics_every = 100000;
    cfg.run.flush_every = 100000;
    config_resolve(&cfg);
    const char *cols[] = {"episodes/step", "episodes/return"};
    check_signal_resume("sig_collect", &cfg, stopped_in_updates, cols, 2);
}

/* SIGTERM inside an evaluation (1000 episodes at every iteration): the resumed run evaluates
   again at the same step, with the same round's draws */
FLAME_TEST(test_signal_in_evaluation_resumes_exactly) {
    FlameConfig cfg;
    tiny_config(&cfg, ALGO_FLAME_M);
    cfg.run.eval_every = 3;
    cfg.run.eval_episodes = 1000;
    cfg.env.eval_envs = 2;
    cfg.run.total_steps = 1000000;
    cfg.run.ckpt_every = 1000000;
    config_resolve(&cfg);
    const char *cols[] = {"eval/step", "eval/return_mean", "eval/length_mean", "episodes/return"};
    check_signal_resume("sig_eval", &cfg, stopped_in_evaluation, cols, 4);
}

FLAME_TEST(test_resume_rejects_other_env) {
    FlameConfig cfg;
    tiny_config(&cfg, ALGO_FLAME_M);
    char dir[512], ck[1200];
    snprintf(dir, sizeof dir, "%s/schema", g_tmp);
    EXPECT(ckpt_latest(dir, ck, sizeof ck) == FLAME_OK);
    snprintf(cfg.env.id, sizeof cfg.env.id, "Walker2d-v5");
    char other[512];
    snprintf(other, sizeof other, "%s/other", g_tmp);
    EXPECT(mkdir(other, 0755) == 0); /* a resume continues an existing run directory */
    TrainOptions opt = {other, true, ck, true, true, 0};
    TrainSummary sum;
    EXPECT(train_run(&cfg, &opt, &sum) == FLAME_EINPUT);
    EXPECT(strstr(flame_last_error(), "Hopper-v5") != NULL);
    /* a fresh run into an existing run directory without force is refused */
    tiny_config(&cfg, ALGO_FLAME_M);
    TrainOptions opt2 = {dir, false, NULL, true, true, 0};
    EXPECT(train_run(&cfg, &opt2, &sum) == FLAME_EINPUT);
    EXPECT(strstr(flame_last_error(), "--force") != NULL);
}

/* A resume from a checkpoint that a newer one of its run follows is refused (it would rewrite the
   run's later history); nothing changes. */
FLAME_TEST(test_resume_only_from_the_newest) {
    FlameConfig cfg;
    tiny_config(&cfg, ALGO_FLAME_M);
    char dir[512], ck[1200], path[600];
    snprintf(dir, sizeof dir, "%s/schema", g_tmp);
    run_dir_ckpt_path(ck, sizeof ck, dir, 180);
    snprintf(path, sizeof path, "%s/metrics.h5", dir);
    double rows[64];
    int64_t before = read_column(path, "train/step", rows, 64);
    TrainOptions opt = {dir, false, ck, true, true, 0};
    TrainSummary sum;
    EXPECT(train_run(&cfg, &opt, &sum) == FLAME_EINPUT);
    EXPECT_MSG(strstr(flame_last_error(), "is not the newest checkpoint") &&
                   strstr(flame_last_error(), "step_300.h5 is"),
               "%s", flame_last_error());
    EXPECT(before == 8 && read_column(path, "train/step", rows, 64) == before);
    char lock[600];
    run_dir_file(lock, sizeof lock, dir, RUN_DIR_LOCK);
    struct stat st;
    EXPECT(stat(lock, &st) != 0);
}

/* Training on a model that MuJoCo cannot integrate (Hopper with a 0.5 s time step): unstable
   episodes follow rollout.h's policy: counted as instabilities, not as episodes or /episodes rows,
   and their last step never reaches the replay (every other step does). */
FLAME_TEST(test_unstable_episodes_in_training) {
    const char *src = getenv("FLAME_SOURCE_DIR");
    if (!src) {
        printf("  (FLAME_SOURCE_DIR not set: needs the model files of the source tree)\n");
        return;
    }
    char in[600], model[400];
    snprintf(in, sizeof in, "%s/src/env/models/hopper.xml", src);
    snprintf(model, sizeof model, "%s/unstable_hopper.xml", g_tmp);
    FILE *f = fopen(in, "r"), *g = fopen(model, "w");
    EXPECT(f && g);
    if (!f || !g) {
        return;
    }
    char line[1024];
    int replaced = 0;
    while (fgets(line, sizeof line, f)) {
        char *t = strstr(line, "timestep=\"0.002\"");
        if (t) {
            memcpy(t, "timestep=\"0.500\"", 16);
            replaced++;
        }
        fputs(line, g);
    }
    fclose(f);
    fclose(g);
    EXPECT(replaced == 1);
    FlameConfig cfg;
    tiny_config(&cfg, ALGO_FLAME_M);
    snprintf(cfg.env.model_xml, sizeof cfg.env.model_xml, "%s", model);
    cfg.run.total_steps = 60;
    cfg.run.eval_episodes = 0;
    char dir[512], path[600];
    snprintf(dir, sizeof dir, "%s/unstable", g_tmp);
    EXPECT(run(&cfg, dir, NULL) == FLAME_OK);
    Checkpoint ck;
    load_final(dir, &ck);
    EXPECT_MSG(ck.tc.instabilities > 0, "no unstable episode: the test model is too stable");
    /* every env step is in the replay but the unstable ones (the ring holds them all: 120 < 500) */
    EXPECT_MSG(ck.has_replay && ck.replay.size == ck.tc.env_steps - ck.tc.instabilities,
               "replay %lld rows, %lld env steps, %lld unstable", (long long)ck.replay.size,
               (long long)ck.tc.env_steps, (long long)ck.tc.instabilities);
    bool finite = true;
    for (int64_t i = 0; i < ck.replay.size * 3; i++) {
        finite &= isfinite(ck.replay.act[i]);
    }
    EXPECT(finite);
    /* /episodes holds the other episodes only */
    snprintf(path, sizeof path, "%s/metrics.h5", dir);
    double rows[4096];
    int64_t n = read_column(path, "episodes/step", rows, 4096);
    EXPECT_MSG(n == ck.tc.episodes, "%lld /episodes rows, %lld episodes", (long long)n,
               (long long)ck.tc.episodes);
    /* a truncated row is a time limit (1000 steps), never an unstable episode cut short */
    double trunc[4096], len[4096];
    EXPECT(read_column(path, "episodes/truncated", trunc, 4096) == n);
    EXPECT(read_column(path, "episodes/length", len, 4096) == n);
    int cut = 0;
    for (int64_t i = 0; i < n; i++) {
        cut += trunc[i] != 0 && len[i] != 1000;
    }
    EXPECT_MSG(cut == 0, "%d truncated /episodes rows shorter than the time limit", cut);
    double inst[64];
    int64_t nt = read_column(path, "train/instabilities", inst, 64);
    EXPECT(nt > 0 && inst[nt - 1] == (double)ck.tc.instabilities);
    ckpt_free(&ck);
}

int main(void) {
    h5_silence();
    snprintf(g_tmp, sizeof g_tmp, "/tmp/flame_test_train_XXXXXX");
    if (!mkdtemp(g_tmp)) {
        return 1;
    }
    RUN_TEST(test_metrics_schema);
    RUN_TEST(test_resume_exact_flame_m);
    RUN_TEST(test_resume_exact_sac);
    RUN_TEST(test_resume_exact_sac_delayed_actor);
    RUN_TEST(test_resume_exact_between_rows);
    RUN_TEST(test_resume_exact_overlap);
    RUN_TEST(test_train_rows_are_interval_means);
    RUN_TEST(test_sigkill_leaves_readable_metrics);
    RUN_TEST(test_signal_in_updates_resumes_exactly);
    RUN_TEST(test_signal_in_collection_resumes_exactly);
    RUN_TEST(test_signal_in_evaluation_resumes_exactly);
    RUN_TEST(test_resume_rejects_other_env);
    RUN_TEST(test_resume_only_from_the_newest);
    RUN_TEST(test_unstable_episodes_in_training);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_tmp);
    if (system(cmd) != 0) {
        fprintf(stderr, "could not remove %s\n", g_tmp);
    }
    return flame_test_report();
}
