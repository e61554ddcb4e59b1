/*
 * test_write_errors.c: every writer on a device that refuses a write: checkpoints, metrics.h5
 * flushes, D4RL and Minari datasets. The failure is made real with a file size limit
 * (RLIMIT_FSIZE with SIGXFSZ ignored, as `flame` runs: the write fails with EFBIG), in a child
 * process per case, because the old failure mode is a crash in HDF5's exit handler. Each case
 * requires: the call fails with FLAME_ERUNTIME and a message naming the file and the errno text;
 * no HDF5 id is left open; nothing partial is left (no .tmp, no output); what existed before is
 * intact and readable (the previous checkpoint, the rows of the previous metrics flush); and the
 * child exits normally through exit() (HDF5's exit handler runs).
 *
 * Also a helper for tests/cli_reliability.sh and cli_disk_full.sh:
 *   test_write_errors --check-metrics PATH   opens a metrics.h5, prints its row counts
 *                                            (train episodes eval timing), exit 0 when readable
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "flame/ckpt.h"
#include "flame/dataset.h"
#include "flame/env.h"
#include "flame/h5util.h"
#include "flame/metrics.h"
#include "flame_test.h"

static char g_dir[] = "/tmp/flame_test_write_errors_XXXXXX";

static void path_in(char *out, size_t n, const char *name) {
    snprintf(out, n, "%s/%s", g_dir, name);
}

static bool exists(const char *p) {
    struct stat st;
    return lstat(p, &st) == 0;
}

static long file_size(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 ? (long)st.st_size : -1;
}

/* entries of g_dir whose name contains `part` */
static int count_entries(const char *part) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "ls -A %s | grep -c -- '%s'", g_dir, part);
    FILE *p = popen(cmd, "r");
    int n = -1;
    if (p) {
        if (fscanf(p, "%d", &n) != 1) {
            n = -1;
        }
        pclose(p);
    }
    return n;
}

/* HDF5 ids still open in this process (files, groups, datasets, types, attributes) */
static long open_ids(void) {
    return (long)H5Fget_obj_count((hid_t)H5F_OBJ_ALL, H5F_OBJ_ALL);
}

/* from here on, files larger than `bytes` cannot be written (EFBIG, as flame runs: SIGXFSZ
   ignored) */
static void limit_file_size(rlim_t bytes) {
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit r;
    getrlimit(RLIMIT_FSIZE, &r);
    r.rlim_cur = bytes;
    setrlimit(RLIMIT_FSIZE, &r);
}

static void unlimit_file_size(void) {
    struct rlimit r;
    getrlimit(RLIMIT_FSIZE, &r);
    r.rlim_cur = r.rlim_max;
    setrlimit(RLIMIT_FSIZE, &r);
}

/* runs fn in a child; the child's checks count here, and it must exit normally through exit() */
static void in_child(void (*fn)(void), const char *what) {
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        flame_test_failures = 0;
        fn();
        exit(flame_test_failures > 0 ? 1 : 0); /* HDF5's exit handler runs here */
    }
    int status = 0;
    waitpid(pid, &status, 0);
    EXPECT_MSG(WIFEXITED(status), "%s: the child died by signal %d (crash at exit?)", what,
               WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    EXPECT_MSG(!WIFEXITED(status) || WEXITSTATUS(status) == 0, "%s: %d failed checks in the child",
               what, WEXITSTATUS(status));
}

static void expect_write_error(int rc, const char *path, const char *what) {
    const char *m = flame_last_error();
    EXPECT_MSG(rc == FLAME_ERUNTIME, "%s: rc %d (%s)", what, rc, m);
    EXPECT_MSG(strstr(m, path) != NULL, "%s: the message does not name %s: %s", what, path, m);
    EXPECT_MSG(strstr(m, strerror(EFBIG)) != NULL, "%s: the message lacks the errno text: %s",
               what, m);
    EXPECT_MSG(open_ids() == 0, "%s: %ld HDF5 ids left open", what, open_ids());
    printf("    %s: %s\n", what, m);
}

// ---------------------------------------------------------------------------- checkpoints

static void ckpt_config(FlameConfig *cfg) {
    config_defaults(cfg);
    const char *sets[] = {"env.id=Hopper-v5", "net.hidden=64", "net.layers=2",
                          "update.replay_size=4000", "update.batch_size=32", "backend.type=cpu"};
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++) {
        FLAME_CHECK(config_set(cfg, sets[i]) == FLAME_OK, "%s", flame_last_error());
    }
    config_resolve(cfg);
}

/* a checkpoint with `n` replay transitions of noise (incompressible) */
static int write_ckpt(const char *path, int n) {
    FlameConfig cfg;
    ckpt_config(&cfg);
    AgentState st;
    agent_state_init(&st, &cfg, 11, 3);
    TrainCounters tc = {.env_steps = n};
    Replay r;
    replay_init(&r, cfg.update.replay_size, 11, 3);
    float o[11], a[3], rew = 0;
    uint8_t done = 0;
    uint32_t x = 12345;
    for (int k = 0; k < n; k++) {
        for (int j = 0; j < 11; j++) {
            x = x * 1664525u + 1013904223u;
            o[j] = (float)(x >> 8) / 16777216.0f;
        }
        a[0] = a[1] = a[2] = o[3];
        replay_push(&r, o, a, &rew, o, &done, 1);
    }
    int rc = ckpt_write(path, &cfg, &st, &tc, &r, NULL, 0, "cpu");
    replay_free(&r);
    agent_state_free(&st);
    return rc;
}

static void ckpt_case(void) {
    char first[256], second[256], tmp[300];
    path_in(first, sizeof first, "step_100.h5");
    path_in(second, sizeof second, "step_4000.h5");
    snprintf(tmp, sizeof tmp, "%s.tmp", second);
    EXPECT(write_ckpt(first, 100) == FLAME_OK);
    long small = file_size(first);
    /* the second checkpoint needs ~4000 * 100 bytes more than the first */
    limit_file_size((rlim_t)small + 100000);
    int rc = write_ckpt(second, 4000);
    unlimit_file_size();
    expect_write_error(rc, second, "checkpoint");
    EXPECT(!exists(second) && !exists(tmp));
    /* the previous checkpoint is the newest valid one */
    char latest[512];
    EXPECT(ckpt_latest(g_dir, latest, sizeof latest) != FLAME_OK); /* g_dir has no ckpt/ */
    Checkpoint ck;
    EXPECT_MSG(ckpt_read(first, &ck, true) == FLAME_OK, "%s", flame_last_error());
    EXPECT(ck.has_replay && ck.replay.size == 100);
    ckpt_free(&ck);
    remove(first);
}

FLAME_TEST(test_checkpoint_write_failure) {
    in_child(ckpt_case, "checkpoint");
    EXPECT(count_entries("step_") == 0);
}

// ---------------------------------------------------------------------------- metrics

static void metrics_rows(MetricsFile *m, int from, int n) {
    for (int i = from; i < from + n; i++) {
        MetricsTrainRow r;
        memset(&r, 0, sizeof r);
        r.step = i;
        r.critic_loss = 1.0 / (i + 1);
        metrics_add_train(m, &r);
        MetricsTimingRow t = {.step = i};
        metrics_add_timing(m, &t);
        MetricsEpisodeRow e = {.step = i, .return_ = i, .length = 1};
        metrics_add_episode(m, &e);
    }
}

static int64_t train_rows(const char *path) {
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        return -1;
    }
    hsize_t d[8] = {0};
    int rank = h5_dims(f, "train/step", d);
    H5Fclose(f);
    return rank == 1 ? (int64_t)d[0] : -1;
}

static void metrics_case(void) {
    char path[256], tmp[300];
    path_in(path, sizeof path, "metrics.h5");
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FlameConfig cfg;
    config_defaults(&cfg);
    config_resolve(&cfg);
    MetricsFile *m = NULL;
    EXPECT(metrics_create(path, &cfg, "cpu", "test", &m) == FLAME_OK);
    metrics_rows(m, 0, 100);
    EXPECT(metrics_flush(m) == FLAME_OK);
    long before = file_size(path);
    EXPECT(train_rows(path) == 100);
    /* 20000 more rows of 26 columns need far more than 64 KiB more */
    metrics_rows(m, 100, 20000);
    limit_file_size((rlim_t)before + 65536);
    int rc = metrics_flush(m);
    expect_write_error(rc, path, "metrics flush");
    EXPECT(!exists(tmp));
    /* the file holds the rows of the previous flush and is readable */
    EXPECT_MSG(train_rows(path) == 100, "rows after the failed flush: %lld",
               (long long)train_rows(path));
    /* with room again, the next flush writes every buffered row */
    unlimit_file_size();
    EXPECT_MSG(metrics_close(m) == FLAME_OK, "%s", flame_last_error());
    EXPECT(train_rows(path) == 20100);
    EXPECT(!exists(tmp));
    remove(path);
}

FLAME_TEST(test_metrics_flush_failure) {
    in_child(metrics_case, "metrics");
}

// ---------------------------------------------------------------------------- datasets

static DatasetInfo hopper_info(double *low, double *high) {
    const EnvSpec *spec = env_spec_find("Hopper-v5");
    for (int d = 0; d < 3; d++) {
        low[d] = -1, high[d] = 1;
    }
    DatasetInfo in = {.spec = spec,
                      .nq = 6,
                      .nv = 6,
                      .act_low = low,
                      .act_high = high,
                      .source = "replay",
                      .algorithm = "random",
                      .policy = "random",
                      .backend = "",
                      .seed = 1,
                      .num_envs = 1,
                      .dataset_id = "test/full-v0"};
    return in;
}

/* a writer at g_dir/name opened under a file size limit (NULL, counted as a failure, when it
   cannot be opened) */
static DatasetWriter *open_limited(const char *name, DatasetFormat fmt, rlim_t limit, char *path,
                                   size_t n, DatasetInfo *in) {
    path_in(path, n, name);
    DatasetWriter *w = NULL;
    limit_file_size(limit);
    if (dataset_open(&w, path, fmt, in, false) != FLAME_OK) {
        EXPECT_MSG(0, "dataset_open: %s", flame_last_error());
        return NULL;
    }
    return w;
}

/* closes (or, after a failure, aborts) the writer; the failure must be a write error of `path`
   and leave nothing in g_dir */
static void finish_failed(DatasetWriter *w, int rc, const char *path, const char *what) {
    if (rc == FLAME_OK) {
        rc = dataset_close(w);
    } else {
        dataset_abort(w);
    }
    unlimit_file_size();
    expect_write_error(rc, path, what);
    EXPECT(count_entries("") == 0); /* no output, no temporary file, no created directory */
}

static void d4rl_case(void) {
    char path[256];
    double low[3], high[3];
    DatasetInfo in = hopper_info(low, high);
    DatasetWriter *w = open_limited("out/sub/replay.hdf5", DATASET_D4RL, 200000, path,
                                    sizeof path, &in);
    if (!w) {
        return;
    }
    const int n = 4096;
    float *obs = malloc(sizeof(float) * 11 * n), *act = malloc(sizeof(float) * 3 * n);
    float *rew = malloc(sizeof(float) * n);
    uint8_t *term = calloc((size_t)n, 1);
    uint32_t x = 99;
    for (int i = 0; i < 11 * n; i++) {
        x = x * 1664525u + 1013904223u;
        obs[i] = (float)(x >> 8) / 16777216.0f;
    }
    memcpy(act, obs, sizeof(float) * 3 * n);
    memcpy(rew, obs, sizeof(float) * n);
    int rc = FLAME_OK;
    for (int k = 0; k < 20 && rc == FLAME_OK; k++) {
        rc = dataset_add_transitions(w, obs, act, rew, obs, term, n);
    }
    finish_failed(w, rc, path, "d4rl dataset");
    free(obs), free(act), free(rew), free(term);
}

FLAME_TEST(test_dataset_write_failure) {
    in_child(d4rl_case, "d4rl");
}

/* the Minari layout: the failure surfaces at an episode or at close */
static void minari_case(void) {
    char path[256];
    double low[3], high[3];
    DatasetInfo in = hopper_info(low, high);
    DatasetWriter *w = open_limited("minari-v0", DATASET_MINARI, 100000, path, sizeof path, &in);
    if (!w) {
        return;
    }
    const int T = 1000;
    double *obs = malloc(sizeof(double) * 11 * (T + 1)), *rew = malloc(sizeof(double) * T);
    double *qpos = calloc((size_t)6 * T, sizeof(double)), *qvel = calloc((size_t)6 * T, sizeof(double));
    float *act = malloc(sizeof(float) * 3 * T);
    uint8_t *term = calloc((size_t)T, 1), *trunc = calloc((size_t)T, 1);
    trunc[T - 1] = 1;
    uint32_t x = 7;
    for (int i = 0; i < 11 * (T + 1); i++) {
        x = x * 1664525u + 1013904223u;
        obs[i] = (double)(x >> 8) / 16777216.0;
    }
    for (int i = 0; i < 3 * T; i++) {
        act[i] = (float)obs[i];
    }
    memcpy(rew, obs, sizeof(double) * T);
    DatasetEpisode ep = {.T = T, .obs = obs, .act = act, .rew = rew, .terminated = term,
                         .truncated = trunc, .qpos = qpos, .qvel = qvel};
    int rc = FLAME_OK;
    for (int k = 0; k < 20 && rc == FLAME_OK; k++) {
        rc = dataset_add_episode(w, &ep);
    }
    finish_failed(w, rc, path, "minari dataset");
    free(obs), free(rew), free(qpos), free(qvel), free(act), free(term), free(trunc);
}

FLAME_TEST(test_minari_write_failure) {
    in_child(minari_case, "minari");
}

// ---------------------------------------------------------------------------- helper

static int check_metrics(const char *path) {
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        fprintf(stderr, "%s: not readable\n", path);
        return 1;
    }
    const char *groups[4] = {"train", "episodes", "eval", "timing"};
    for (int g = 0; g < 4; g++) {
        char name[64];
        snprintf(name, sizeof name, "%s/step", groups[g]);
        hsize_t d[8] = {0};
        if (h5_dims(f, name, d) != 1) {
            fprintf(stderr, "%s: %s is missing\n", path, name);
            H5Fclose(f);
            return 1;
        }
        printf("%s%llu", g ? " " : "", (unsigned long long)d[0]);
    }
    printf("\n");
    H5Fclose(f);
    return 0;
}

int main(int argc, char **argv) {
    h5_silence();
    if (argc == 3 && !strcmp(argv[1], "--check-metrics")) {
        return check_metrics(argv[2]);
    }
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN_TEST(test_checkpoint_write_failure);
    RUN_TEST(test_metrics_flush_failure);
    RUN_TEST(test_dataset_write_failure);
    RUN_TEST(test_minari_write_failure);
    rmdir(g_dir);
    return flame_test_report();
}
