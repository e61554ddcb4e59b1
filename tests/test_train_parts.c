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

FLAME_TEST(progress_lines) {
    FILE *f = tmpfile();
    EXPECT(f != NULL);
    if (!f) {
        return;
    }
    Progress p;
    ProgressSample s = {100.0, 0, 1000, true, 0, NAN};
    progress_init(&p, f, false, "Hopper-v5", 2.0, &s);
    s.now = 101.0, s.steps = 50;
    progress_update(&p, &s, false); /* 1 s < 2 s: nothing */
    EXPECT(drain(f)[0] == '\0');
    /* 2 s: 100 steps -> 50 steps/s, 900 left -> ETA 18 s */
    s.now = 102.0, s.steps = 100;
    progress_update(&p, &s, false);
    char *line = drain(f);
    EXPECT_MSG(!strcmp(line, "step 100/1000 warm-up steps_per_s 50 updates_per_s 0.0 last_eval - "
                             "eta_s 18\n"),
               "got '%s'", line);
    /* the next window only: 4 s, 400 steps, 200 updates; an evaluation is known */
    s.now = 106.0, s.steps = 500, s.warmup = false, s.updates = 200, s.eval_return = 12.345;
    progress_update(&p, &s, false);
    line = drain(f);
    EXPECT_MSG(!strcmp(line, "step 500/1000 steps_per_s 100 updates_per_s 50.0 last_eval 12.3 "
                             "eta_s 5\n"),
               "got '%s'", line);
    /* a forced line right after: the session's averages (500 steps, 200 updates in 6.2 s) */
    s.now = 106.2;
    progress_update(&p, &s, true);
    line = drain(f);
    EXPECT_MSG(strstr(line, "steps_per_s 81 updates_per_s 32.3") != NULL, "got '%s'", line);
    fclose(f);

    /* terminal: one redrawn line; a note ends it first; progress_end adds the newline */
    f = tmpfile();
    s = (ProgressSample){0.0, 0, 200, false, 0, NAN};
    progress_init(&p, f, true, "Ant-v5", 1.0, &s);
    s.now = 1.0, s.steps = 20, s.updates = 5;
    progress_update(&p, &s, false);
    progress_note(&p, "eval step %d: return %.1f", 20, 3.5);
    s.now = 2.0, s.steps = 40;
    progress_update(&p, &s, false);
    progress_end(&p);
    progress_end(&p); /* nothing more */
    line = drain(f);
    EXPECT_MSG(!strcmp(line, "\r[Ant-v5] step 20/200 | 20 steps/s | 5.0 updates/s | eval - | ETA "
                             "9s   \neval step 20: return 3.5\n\r[Ant-v5] step 40/200 | 20 steps/s "
                             "| 0.0 updates/s | eval - | ETA 8s   \n"),
               "got '%s'", line);
    fclose(f);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/flame_test_train_parts_XXXXXX");
    FLAME_CHECK(mkdtemp(tmpdir), "cannot create a temporary directory");
    RUN_TEST(run_directory);
    RUN_TEST(run_directory_failed_start);
    RUN_TEST(run_directory_lock);
    RUN_TEST(progress_lines);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) {
        fprintf(stderr, "could not remove %s\n", tmpdir);
    }
    return flame_test_report();
}
