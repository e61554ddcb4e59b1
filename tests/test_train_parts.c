/*
 * test_train_parts.c: the pieces of the training loop besides the loop itself: the run directory
 * (include/flame/run_dir.h: fresh runs, refusal without --force, what --force removes, checkpoint
 * listing and retention, the lock against a second process and its takeover after a kill, what a
 * failed start removes) and the progress display (include/flame/progress.h: line formats, rates
 * over the window since the previous line, ETA, notes between redrawn lines).
 */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "flame/progress.h"
#include "flame/run_dir.h"
#include "flame/train_start.h"
#include "flame/update.h"
#include "flame_test.h"

static char tmpdir[256];

static void touch(const char *path) {
    FILE *f = fopen(path, "w");
    if (f) {
        fputs("x", f);
        fclose(f);
    }
}

static bool exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* a fresh run's directory: claimed (nothing created), prepared, released */
static int fresh(RunDir *rd, const char *dir, bool force) {
    run_dir_init(rd);
    int rc = run_dir_claim(rd, dir, force);
    return rc ? rc : run_dir_prepare(rd, force);
}

static void lock_path(char *p, size_t n, const char *dir) {
    run_dir_file(p, n, dir, RUN_DIR_LOCK);
}

/* what a run's start writes: config.yaml (the defaults) and a metrics.h5 */
static void write_run_files(const char *dir) {
    FlameConfig cfg;
    config_defaults(&cfg);
    config_resolve(&cfg);
    EXPECT(run_dir_write_config(dir, &cfg) == FLAME_OK);
    char p[RUN_DIR_PATH_MAX];
    run_dir_file(p, sizeof p, dir, "metrics.h5");
    touch(p);
}

FLAME_TEST(run_directory) {
    char dir[512], p[RUN_DIR_PATH_MAX], lk[RUN_DIR_PATH_MAX];
    snprintf(dir, sizeof dir, "%s/runs/a", tmpdir);
    lock_path(lk, sizeof lk, dir);
    RunDir rd;
    run_dir_init(&rd);
    /* nothing is made before the run can start; then the directory, its parents too */
    EXPECT(run_dir_claim(&rd, dir, false) == FLAME_OK);
    EXPECT(!exists(dir));
    EXPECT(run_dir_prepare(&rd, false) == FLAME_OK);
    run_dir_file(p, sizeof p, dir, "ckpt");
    EXPECT(exists(p));
    /* the lock file names this process while the directory is held; it goes with the hold */
    FILE *f = fopen(lk, "r");
    long pid = 0;
    EXPECT(f && fscanf(f, "%ld", &pid) == 1 && pid == (long)getpid());
    if (f) {
        fclose(f);
    }
    rd.started = true;
    run_dir_release(&rd);
    EXPECT(!exists(lk) && exists(p));
    run_dir_release(&rd); /* again: nothing happens */
    EXPECT(exists(p));
    int64_t *steps = NULL;
    size_t n = 9;
    EXPECT(run_dir_checkpoints(dir, &steps, &n) == FLAME_OK && n == 0 && steps == NULL);
    /* no metrics.h5 and no checkpoint: not a run yet (an empty ckpt/ does not block a start) */
    EXPECT(fresh(&rd, dir, false) == FLAME_OK);
    rd.started = true;
    run_dir_release(&rd);
    /* checkpoints listed newest first; other files ignored */
    const int64_t made[] = {300, 60, 1200, 180};
    for (int i = 0; i < 4; i++) {
        run_dir_ckpt_path(p, sizeof p, dir, made[i]);
        touch(p);
    }
    run_dir_file(p, sizeof p, dir, "ckpt/step_77.h5.tmp");
    touch(p);
    run_dir_file(p, sizeof p, dir, "ckpt/notes.txt");
    touch(p);
    EXPECT(run_dir_checkpoints(dir, &steps, &n) == FLAME_OK && n == 4);
    EXPECT(n == 4 && steps[0] == 1200 && steps[1] == 300 && steps[2] == 180 && steps[3] == 60);
    free(steps);
    /* retention: the newest two stay */
    run_dir_prune_checkpoints(dir, 2);
    EXPECT(run_dir_checkpoints(dir, &steps, &n) == FLAME_OK && n == 2);
    EXPECT(n == 2 && steps[0] == 1200 && steps[1] == 300);
    free(steps);
    run_dir_prune_checkpoints(dir, 0); /* 0: keep all */
    EXPECT(run_dir_checkpoints(dir, &steps, &n) == FLAME_OK && n == 2);
    free(steps);
    /* a directory holding a run (checkpoints, then metrics.h5 alone): refused without force and
       left as it was; force removes only our files */
    EXPECT(fresh(&rd, dir, false) == FLAME_EINPUT);
    EXPECT(strstr(flame_last_error(), "--force") && strstr(flame_last_error(), "--resume"));
    EXPECT(!exists(lk));
    write_run_files(dir);
    run_dir_prune_checkpoints(dir, 1);
    run_dir_ckpt_path(p, sizeof p, dir, 1200);
    remove(p);
    EXPECT(fresh(&rd, dir, false) == FLAME_EINPUT);
    run_dir_file(p, sizeof p, dir, "metrics.h5");
    EXPECT(exists(p));
    run_dir_ckpt_path(p, sizeof p, dir, 300);
    touch(p);
    char keep[RUN_DIR_PATH_MAX];
    run_dir_file(keep, sizeof keep, dir, "notes.txt");
    touch(keep);
    EXPECT(fresh(&rd, dir, true) == FLAME_OK);
    rd.started = true;
    run_dir_release(&rd);
    run_dir_file(p, sizeof p, dir, "metrics.h5");
    EXPECT(!exists(p) && exists(keep));
    run_dir_file(p, sizeof p, dir, "config.yaml");
    EXPECT(!exists(p));
    EXPECT(run_dir_checkpoints(dir, &steps, &n) == FLAME_OK && n == 0);
    run_dir_file(p, sizeof p, dir, "ckpt/notes.txt");
    EXPECT(exists(p)); /* not a checkpoint: left alone */
    /* a location that cannot be created */
    run_dir_file(p, sizeof p, keep, "sub");
    EXPECT(fresh(&rd, p, false) == FLAME_EINPUT);
    EXPECT(strstr(flame_last_error(), "cannot create directory") != NULL);
    EXPECT(run_dir_checkpoints(p, &steps, &n) == FLAME_EINPUT);
}

/* A start that fails after run_dir_prepare: what it made goes (the directories it created, its
   files, ckpt/, the lock file), what was there stays, and the message stays the failure's. */
FLAME_TEST(run_directory_failed_start) {
    char base[512], dir[600], p[RUN_DIR_PATH_MAX];
    snprintf(base, sizeof base, "%s/failed", tmpdir);
    EXPECT(mkdir(base, 0755) == 0);
    snprintf(dir, sizeof dir, "%s/x/y/run", base);
    RunDir rd;
    EXPECT(fresh(&rd, dir, false) == FLAME_OK);
    write_run_files(dir);
    flame_errorf(FLAME_ERUNTIME, "the failure");
    run_dir_release(&rd);
    EXPECT_MSG(!strcmp(flame_last_error(), "the failure"), "%s", flame_last_error());
    snprintf(p, sizeof p, "%s/x", base);
    EXPECT_MSG(!exists(p) && exists(base), "%s is left", p);
    /* an existing directory: only what the start made goes */
    snprintf(dir, sizeof dir, "%s/own", base);
    EXPECT(mkdir(dir, 0755) == 0);
    char keep[RUN_DIR_PATH_MAX];
    run_dir_file(keep, sizeof keep, dir, "notes.txt");
    touch(keep);
    EXPECT(fresh(&rd, dir, false) == FLAME_OK);
    write_run_files(dir);
    run_dir_release(&rd);
    EXPECT(exists(dir) && exists(keep));
    const char *gone[] = {"ckpt", "config.yaml", "metrics.h5", RUN_DIR_LOCK};
    for (int i = 0; i < 4; i++) {
        run_dir_file(p, sizeof p, dir, gone[i]);
        EXPECT_MSG(!exists(p), "%s is left", p);
    }
}

/* Another process holds the directory: every way in is refused naming it, nothing changes; once
   it is killed its lock is taken over and the dead holder named. */
FLAME_TEST(run_directory_lock) {
    char dir[512], lk[RUN_DIR_PATH_MAX], p[RUN_DIR_PATH_MAX];
    snprintf(dir, sizeof dir, "%s/locked", tmpdir);
    lock_path(lk, sizeof lk, dir);
    int ready[2];
    EXPECT(pipe(ready) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        RunDir rd;
        if (fresh(&rd, dir, false) != FLAME_OK) {
            _exit(1);
        }
        run_dir_file(p, sizeof p, dir, "metrics.h5");
        touch(p);
        rd.started = true;
        ssize_t w = write(ready[1], "1", 1);
        (void)w;
        pause(); /* holds the directory until killed */
        _exit(0);
    }
    char c = 0;
    EXPECT(read(ready[0], &c, 1) == 1);
    char want[600];
    snprintf(want, sizeof want, "run directory %s is in use by process %ld on host ", dir,
             (long)pid);
    RunDir rd;
    run_dir_init(&rd);
    EXPECT(run_dir_lock(&rd, dir) == FLAME_EINPUT); /* a resume */
    EXPECT_MSG(strstr(flame_last_error(), want) != NULL, "%s", flame_last_error());
    EXPECT(fresh(&rd, dir, false) == FLAME_EINPUT); /* a fresh run */
    EXPECT_MSG(strstr(flame_last_error(), want) != NULL, "%s", flame_last_error());
    EXPECT(fresh(&rd, dir, true) == FLAME_EINPUT); /* a forced one */
    EXPECT_MSG(strstr(flame_last_error(), want) != NULL, "%s", flame_last_error());
    run_dir_file(p, sizeof p, dir, "metrics.h5");
    EXPECT(exists(p) && exists(lk));
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    run_dir_init(&rd);
    EXPECT_MSG(run_dir_lock(&rd, dir) == FLAME_OK, "%s", flame_last_error());
    EXPECT(rd.lock.stale_pid == (long)pid && rd.lock.stale_host[0]);
    rd.started = true;
    run_dir_release(&rd);
    EXPECT(!exists(lk) && exists(p));
    /* released cleanly: the next holder finds no one to name */
    run_dir_init(&rd);
    EXPECT(run_dir_lock(&rd, dir) == FLAME_OK && rd.lock.stale_pid == 0);
    rd.started = true;
    run_dir_release(&rd);
    close(ready[0]);
    close(ready[1]);
}

/* the text a progress display wrote */
static char *drain(FILE *f) {
    static char buf[4096];
    fflush(f);
    long n = ftell(f);
    rewind(f);
    size_t k = fread(buf, 1, n > 0 && n < (long)sizeof buf ? (size_t)n : sizeof buf - 1, f);
    buf[k] = '\0';
    rewind(f);
    if (ftruncate(fileno(f), 0) != 0) {
        buf[0] = '\0';
    }
    return buf;
}

FLAME_TEST(durations_as_hms) {
    char b[32];
    EXPECT(!strcmp(progress_hms(0, b, sizeof b), "0:00:00"));
    EXPECT(!strcmp(progress_hms(7.4, b, sizeof b), "0:00:07"));
    EXPECT(!strcmp(progress_hms(3599.6, b, sizeof b), "1:00:00"));
    EXPECT(!strcmp(progress_hms(3 * 86400 + 190, b, sizeof b), "72:03:10"));
    EXPECT(!strcmp(progress_hms(NAN, b, sizeof b), "-"));
    EXPECT(!strcmp(progress_hms(-1, b, sizeof b), "-"));
}

/* a sample: the clock, steps and updates; everything else unknown unless set */
static ProgressSample sample(double now, int64_t steps, int64_t updates) {
    ProgressSample s = {.now = now,
                        .steps = steps,
                        .end_steps = 1000,
                        .warmup_end = 200,
                        .updates = updates,
                        .elapsed = now - 100.0,
                        .eval_return = NAN,
                        .train_return = NAN,
                        .critic_loss = NAN,
                        .alpha = NAN,
                        .entropy = NAN};
    return s;
}

FLAME_TEST(progress_lines) {
    FILE *f = tmpfile();
    EXPECT(f != NULL);
    if (!f) {
        return;
    }
    Progress p;
    /* warm-up to step 200 of 1000; the update phase is modelled at 20 steps/s */
    ProgressSample s = sample(100.0, 0, 0);
    progress_init(&p, f, false, "Hopper-v5", 2.0, 20.0, &s);
    s = sample(101.0, 50, 0);
    EXPECT(!progress_update(&p, &s, false)); /* 1 s < 2 s: nothing */
    EXPECT(drain(f)[0] == '\0');
    /* 2 s, 100 warm-up steps at 50/s: 100 left -> 2 s, then 800 modelled at 20/s -> 40 s */
    s = sample(102.0, 100, 0);
    EXPECT(progress_update(&p, &s, false));
    char *line = drain(f);
    EXPECT_MSG(!strcmp(line, "step 100/1000 warm-up elapsed 0:00:02 steps_per_s 50 updates_per_s "
                             "0.0 train_return - last_eval - critic_loss - alpha - entropy - eta "
                             "0:00:42\n"),
               "got '%s'", line);
    /* past the warm-up: the update phase starts at the first sample after it (step 300, t 104) */
    s = sample(104.0, 300, 100);
    s.train_return = -12.25, s.critic_loss = 0.5, s.alpha = 0.0125, s.entropy = -1.5;
    EXPECT(progress_update(&p, &s, false));
    line = drain(f);
    /* its first second: the modelled rate (20 steps/s), 700 left -> 35 s */
    EXPECT_MSG(!strcmp(line, "step 300/1000 elapsed 0:00:04 steps_per_s 100 updates_per_s 50.0 "
                             "train_return -12.2 last_eval - critic_loss 0.5 alpha 0.0125 entropy "
                             "-1.5 eta 0:00:35\n"),
               "got '%s'", line);
    s = sample(106.0, 400, 150);
    EXPECT(progress_update(&p, &s, false));
    line = drain(f);
    EXPECT_MSG(strstr(line, "steps_per_s 50 updates_per_s 25.0") && strstr(line, "eta 0:00:12\n"),
               "got '%s'", line);
    /* later: the rate since the update phase began, not the window's (an evaluation slowed it):
       window 20 steps in 6 s; since step 300 at t 104, 120 steps in 8 s -> 15 steps/s, 580 left
       -> 38.7 s */
    s = sample(112.0, 420, 200);
    s.eval_return = 12.345;
    EXPECT(progress_update(&p, &s, false));
    line = drain(f);
    EXPECT_MSG(strstr(line, "steps_per_s 3 updates_per_s 8.3") && strstr(line, "last_eval 12.3") &&
                   strstr(line, "eta 0:00:39\n"),
               "got '%s'", line);
    /* a forced line right after: the session's averages (420 steps, 200 updates in 12.2 s) */
    s.now = 112.2;
    EXPECT(progress_update(&p, &s, true));
    line = drain(f);
    EXPECT_MSG(strstr(line, "steps_per_s 34 updates_per_s 16.4") != NULL, "got '%s'", line);
    /* the end: ETA 0 */
    s = sample(120.0, 1000, 800);
    EXPECT(progress_update(&p, &s, true));
    line = drain(f);
    EXPECT_MSG(strstr(line, "eta 0:00:00\n") != NULL, "got '%s'", line);
    /* no model: the warm-up's ETA is unknown */
    s = sample(0.0, 0, 0);
    progress_init(&p, f, false, "Hopper-v5", 1.0, NAN, &s);
    s = sample(1.0, 10, 0);
    EXPECT(progress_update(&p, &s, false));
    line = drain(f);
    EXPECT_MSG(strstr(line, " warm-up ") && strstr(line, "eta -\n"), "got '%s'", line);
    fclose(f);

    /* terminal: one redrawn line; a note ends it first; progress_end adds the newline */
    f = tmpfile();
    s = sample(100.0, 0, 0);
    progress_init(&p, f, true, "Ant-v5", 1.0, 20.0, &s);
    EXPECT(p.width == 0); /* not a terminal: lines are not cut */
    s = sample(101.0, 20, 0);
    progress_update(&p, &s, false);
    progress_note(&p, "eval step %d: return %.1f", 20, 3.5);
    progress_updates_begin(&p, 101.5, 100);
    progress_updates_begin(&p, 101.9, 250); /* the first mark counts */
    s = sample(102.0, 300, 5);
    s.train_return = 3.25, s.critic_loss = 1.25e-3, s.alpha = 0.2, s.entropy = 2;
    progress_update(&p, &s, false);
    progress_end(&p);
    progress_end(&p); /* nothing more */
    line = drain(f);
    /* warm-up: 180 steps at 20/s = 9 s + 800 modelled at 20/s = 40 s -> "~0:00:49"; after it,
       marked at t 101.5 and step 100: 200 steps in 0.5 s is under a second: the model, 700 left
       -> "~0:00:35" */
    EXPECT_MSG(!strcmp(line,
                       "\r[Ant-v5] step 20/1000 warm-up | 0:00:01 | ETA ~0:00:49 | 20 steps/s "
                       "| 0.0 upd/s | return - | eval - | critic - | alpha - | entropy -"
                       "\033[K\neval step 20: return 3.5\n\r[Ant-v5] step 300/1000 | 0:00:02 "
                       "| ETA ~0:00:35 | 280 steps/s | 5.0 upd/s | return 3.2 | eval - | "
                       "critic 0.00125 | alpha 0.2 | entropy 2\033[K\n"),
               "got '%s'", line);
    /* a narrow terminal: the line is cut to its width less one column; 2.5 s since the mark:
       300 steps -> 120 steps/s, 600 left -> 5 s */
    p.width = 48;
    s = sample(104.0, 400, 9);
    progress_update(&p, &s, false);
    progress_end(&p);
    line = drain(f);
    EXPECT_MSG(!strcmp(line, "\r[Ant-v5] step 400/1000 | 0:00:04 | ETA 0:00:05 \033[K\n"),
               "got '%s'", line);
    fclose(f);
}

/* the duration model from given timings, worked by hand */
FLAME_TEST(estimate_model) {
    FlameConfig cfg;
    config_defaults(&cfg);
    snprintf(cfg.env.id, sizeof cfg.env.id, "InvertedPendulum-v5"); /* time limit 1000 */
    cfg.run.start_steps = 1000;
    cfg.run.total_steps = 10000;
    cfg.run.eval_every = 2500;
    cfg.run.eval_episodes = 4;
    cfg.env.eval_envs = 2;
    cfg.update.updates_per_iter = 1;
    config_resolve(&cfg);
    TrainEstimate e;
    memset(&e, 0, sizeof e);
    e.update_s = 0.01, e.act_s = 0.001, e.env_step_s = 0.002;
    train_estimate_model(&cfg, 2, 4, 1, 0, true, &e);
    /* warm-up: 500 vectorised steps x 2 ms; update phase: 5000 x (2 + 1 + 10 ms); evaluations at
       2500, 5000, 7500, 10000 after the warm-up: 4 rounds of 4 episodes x 1000 steps at 1 ms per
       transition (2 ms per step of 2 envs) + 2 x 1000 act calls of 1 ms = 6 s each */
    EXPECT(e.warmup_steps == 1000 && e.train_steps == 10000 && e.updates == 5000);
    EXPECT(e.eval_rounds == 4);
    EXPECT_NEAR_Q("warmup_s", e.warmup_s, 1.0, 1e-9, 0);
    EXPECT_NEAR_Q("train_s", e.train_s, 65.0, 1e-9, 0);
    EXPECT_NEAR_Q("eval_s", e.eval_s, 24.0, 1e-9, 0);
    EXPECT_NEAR_Q("total_s", e.total_s, 90.0, 1e-9, 0);
    EXPECT_NEAR_Q("update_phase_sps", e.update_phase_sps, 10000.0 / 89.0, 1e-9, 0);
    UpdateFlops f;
    update_flops(&cfg, 4, 1, &f);
    EXPECT(f.per_update > 0 && e.flops_per_update == f.per_update);
    double cu = f.per_update / (0.7 * 60e12) + 0.3e-3;
    EXPECT_NEAR_Q("cuda_update_s", e.cuda_update_s, cu, 1e-15, 0);
    EXPECT_NEAR_Q("cuda_total_s", e.cuda_total_s, 1.0 + 5000 * 0.003 + 5000 * cu + 24.0, 1e-9, 0);
    /* resumed at step 6000: 5000 steps left, no warm-up, evaluations at 7500 and 10000 after it */
    train_estimate_model(&cfg, 2, 4, 1, 6000, false, &e);
    EXPECT(e.warmup_steps == 0 && e.train_steps == 5000 && e.updates == 2500);
    EXPECT(e.eval_rounds == 2);
    EXPECT_NEAR_Q("total_s", e.total_s, 2500 * 0.013 + 12.0, 1e-9, 0);
    EXPECT(isnan(e.cuda_total_s)); /* not asked for */
    /* a budget off the cadence: one more round at the end; no evaluations at all */
    cfg.run.total_steps = 9000;
    train_estimate_model(&cfg, 2, 4, 1, 0, false, &e);
    EXPECT(e.eval_rounds == 4);
    cfg.run.eval_episodes = 0;
    train_estimate_model(&cfg, 2, 4, 1, 0, false, &e);
    EXPECT(e.eval_rounds == 0 && e.eval_s == 0);
}

/* the start block: counts and sizes from the config, the CUDA note only for long CPU runs */
FLAME_TEST(start_block) {
    FlameConfig cfg;
    config_defaults(&cfg);
    cfg.algo = ALGO_SAC;
    snprintf(cfg.env.id, sizeof cfg.env.id, "InvertedPendulum-v5");
    cfg.net.hidden = 64;
    cfg.net.layers = 2;
    cfg.update.replay_size = 1000000;
    config_resolve(&cfg);
    TrainEstimate e;
    memset(&e, 0, sizeof e);
    e.update_s = 0.25, e.act_s = 0.001, e.env_step_s = 0.002;
    train_estimate_model(&cfg, cfg.env.num_envs, 4, 1, 0, true, &e);
    EXPECT(e.total_s > 4 * 3600.0);
    TrainStartInfo in = {&cfg,
                         "cpu",
                         "Test CPU",
                         "OpenBLAS 0.3.21",
                         "SkylakeX (AVX-512)",
                         "This machine has no CUDA device",
                         4,
                         1,
                         &e};
    FILE *f = tmpfile();
    train_start_block(f, &in);
    char *text = drain(f);
    /* SAC, 2 x 64, S 4, D 1: policy 4x64+64 + 64x64+64 + 64x2+2 = 4,610; critic (4+1)x64+64 +
       64x64+64 + 64+1 = 4,609; replay rows (2x4 + 1 + 1) floats + 1 byte = 41 bytes */
    EXPECT_MSG(strstr(text, "  backend:   cpu on Test CPU\n") &&
                   strstr(text, "  blas:      OpenBLAS 0.3.21, 1 thread(s); core SkylakeX") &&
                   strstr(text, "policy 4,610 parameters, critics 2 x 4,609") &&
                   strstr(text, "1,000,000 transitions x 41 bytes = 39.1 MiB of host memory"),
               "got '%s'", text);
    char total[32];
    progress_hms(e.total_s, total, sizeof total);
    EXPECT_MSG(strstr(text, "  estimate:  ") && strstr(text, total), "got '%s'", text);
    EXPECT_MSG(strstr(text, "  note:      this is a long run for the CPU backend") &&
                   strstr(text, "modelled, not measured") &&
                   strstr(text, "This machine has no CUDA device"),
               "got '%s'", text);
    /* a short CPU run, and any CUDA run: no note */
    e.update_s = 0.001;
    train_estimate_model(&cfg, cfg.env.num_envs, 4, 1, 0, true, &e);
    train_start_block(f, &in);
    text = drain(f);
    EXPECT_MSG(strstr(text, "  estimate:  ") && !strstr(text, "note:"), "got '%s'", text);
    e.update_s = 0.25;
    train_estimate_model(&cfg, cfg.env.num_envs, 4, 1, 0, false, &e);
    in.backend = "cuda";
    train_start_block(f, &in);
    text = drain(f);
    EXPECT_MSG(strstr(text, "of device memory") && !strstr(text, "note:"), "got '%s'", text);
    /* no estimate: the reason */
    in.est = NULL;
    flame_errorf(FLAME_ERUNTIME, "test reason");
    train_start_block(f, &in);
    text = drain(f);
    EXPECT_MSG(strstr(text, "  estimate:  none (test reason)"), "got '%s'", text);
    fclose(f);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/flame_test_train_parts_XXXXXX");
    FLAME_CHECK(mkdtemp(tmpdir), "cannot create a temporary directory");
    RUN_TEST(run_directory);
    RUN_TEST(run_directory_failed_start);
    RUN_TEST(run_directory_lock);
    RUN_TEST(durations_as_hms);
    RUN_TEST(progress_lines);
    RUN_TEST(estimate_model);
    RUN_TEST(start_block);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) {
        fprintf(stderr, "could not remove %s\n", tmpdir);
    }
    return flame_test_report();
}
