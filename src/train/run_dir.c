/* run_dir.c: a training run's directory (see include/flame/run_dir.h). */
#include "flame/run_dir.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "flame/check.h"
#include "flame/fsutil.h"

static bool path_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

/* mkdir -p (created: as fs_mkdir_p), then a writability check */
static int make_dir(const char *path, char *created, size_t created_len) {
    if (fs_mkdir_p(path, created, created_len) != FLAME_OK) {
        char why[FLAME_ERROR_MAX];
        snprintf(why, sizeof why, "%s", flame_last_error());
        return flame_errorf(FLAME_EINPUT, "%s; choose a writable run.out_dir", why);
    }
    if (access(path, W_OK) != 0) {
        return flame_errorf(FLAME_EINPUT,
                            "run directory %s is not writable; choose another "
                            "run.out_dir or run.name",
                            path);
    }
    return FLAME_OK;
}

/* the callers checked the run directory's length (fs_check_path with room for what is added) */
void run_dir_file(char *out, size_t len, const char *dir, const char *name) {
    int n = snprintf(out, len, "%s/%s", dir, name);
    FLAME_CHECK(n >= 0 && (size_t)n < len, "path %s/%s too long", dir, name);
}

void run_dir_ckpt_path(char *out, size_t len, const char *dir, int64_t step) {
    int n = snprintf(out, len, "%s/ckpt/step_%lld.h5", dir, (long long)step);
    FLAME_CHECK(n >= 0 && (size_t)n < len, "checkpoint path in %s too long", dir);
}

static int cmp_newest_first(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? 1 : (x > y ? -1 : 0);
}

int run_dir_checkpoints(const char *dir, int64_t **steps, size_t *n) {
    *steps = NULL;
    *n = 0;
    char path[RUN_DIR_PATH_MAX];
    run_dir_file(path, sizeof path, dir, "ckpt");
    DIR *d = opendir(path);
    if (!d) {
        return flame_errorf(FLAME_EINPUT, "%s: no checkpoint directory (%s)", path,
                            strerror(errno));
    }
    size_t cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        long long step;
        char tail[8];
        if (sscanf(e->d_name, "step_%lld.h%7s", &step, tail) != 2 || strcmp(tail, "5") != 0) {
            continue;
        }
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            int64_t *grown = realloc(*steps, cap * sizeof **steps);
            FLAME_CHECK(grown, "out of memory listing %s", path);
            *steps = grown;
        }
        (*steps)[(*n)++] = (int64_t)step;
    }
    closedir(d);
    if (*n > 1) {
        qsort(*steps, *n, sizeof **steps, cmp_newest_first);
    }
    return FLAME_OK;
}

void run_dir_prune_checkpoints(const char *dir, int keep) {
    int64_t *steps = NULL;
    size_t n = 0;
    if (keep <= 0 || run_dir_checkpoints(dir, &steps, &n) != FLAME_OK) {
        flame_clear_error();
        return;
    }
    for (size_t i = (size_t)keep; i < n; i++) {
        char p[RUN_DIR_PATH_MAX];
        run_dir_ckpt_path(p, sizeof p, dir, steps[i]);
        remove(p);
    }
    free(steps);
}

/* --force, or a start that failed: the run's files (only ours) */
static void remove_run_files(const char *dir) {
    char p[RUN_DIR_PATH_MAX];
    run_dir_file(p, sizeof p, dir, "metrics.h5");
    remove(p);
    run_dir_file(p, sizeof p, dir, "config.yaml");
    remove(p);
    int64_t *steps = NULL;
    size_t n = 0;
    if (run_dir_checkpoints(dir, &steps, &n) == FLAME_OK) {
        for (size_t i = 0; i < n; i++) {
            run_dir_ckpt_path(p, sizeof p, dir, steps[i]);
            remove(p);
        }
        free(steps);
    }
    flame_clear_error();
}

/* a run lives here: its metrics.h5 or a checkpoint */
static bool holds_run(const char *dir) {
    char p[RUN_DIR_PATH_MAX];
    run_dir_file(p, sizeof p, dir, "metrics.h5");
    int64_t *steps = NULL;
    size_t n = 0;
    bool ckpts = run_dir_checkpoints(dir, &steps, &n) == FLAME_OK && n > 0;
    free(steps);
    flame_clear_error();
    return path_exists(p) || ckpts;
}

static int refuse_run(const char *dir) {
    return flame_errorf(FLAME_EINPUT,
                        "run directory %s already holds a run; use --resume %s to continue it, "
                        "--force to overwrite it, or another run.name",
                        dir, dir);
}

/* the process's lock, for its exit (a fatal error ends the process without run_dir_release) */
static RunDir *g_held = NULL;

static void release_at_exit(void) {
    if (g_held) {
        run_dir_release(g_held);
    }
}

void run_dir_init(RunDir *rd) {
    memset(rd, 0, sizeof *rd);
    rd->lock.fd = -1;
}

int run_dir_lock(RunDir *rd, const char *dir) {
    static bool registered = false;
    if (rd->lock.fd >= 0) {
        return FLAME_OK;
    }
    if (dir != rd->dir) {
        snprintf(rd->dir, sizeof rd->dir, "%s", dir);
    }
    char p[RUN_DIR_PATH_MAX], what[RUN_DIR_PATH_MAX + 32];
    run_dir_file(p, sizeof p, dir, RUN_DIR_LOCK);
    snprintf(what, sizeof what, "run directory %s", dir);
    int rc = fs_lock(p, what, &rd->lock);
    if (rc != FLAME_OK) {
        return rc;
    }
    if (!registered) {
        atexit(release_at_exit);
        registered = true;
    }
    g_held = rd;
    return FLAME_OK;
}

int run_dir_claim(RunDir *rd, const char *dir, bool force) {
    snprintf(rd->dir, sizeof rd->dir, "%s", dir);
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        return FLAME_OK; /* created by run_dir_prepare (or refused there) */
    }
    int rc = run_dir_lock(rd, dir);
    if (rc == FLAME_OK && !force && holds_run(dir)) {
        rc = refuse_run(dir);
        run_dir_release(rd);
    }
    return rc;
}

int run_dir_prepare(RunDir *rd, bool force) {
    const char *dir = rd->dir;
    bool locked = rd->lock.fd >= 0;
    int rc = make_dir(dir, rd->created, sizeof rd->created);
    rc = rc ? rc : run_dir_lock(rd, dir);
    /* a run that appeared since run_dir_claim looked (another process started it) */
    if (rc == FLAME_OK && !locked && !force && holds_run(dir)) {
        rc = refuse_run(dir);
    }
    if (rc == FLAME_OK && force) {
        remove_run_files(dir);
    }
    rd->fresh = rc == FLAME_OK;
    char p[RUN_DIR_PATH_MAX];
    run_dir_file(p, sizeof p, dir, "ckpt");
    rc = rc ? rc : make_dir(p, NULL, 0);
    if (rc != FLAME_OK) {
        run_dir_release(rd);
    }
    return rc;
}

void run_dir_release(RunDir *rd) {
    char message[FLAME_ERROR_MAX]; /* the failure being reported stays the message */
    snprintf(message, sizeof message, "%s", flame_last_error());
    if (g_held == rd) {
        g_held = NULL;
    }
    if (rd->lock.fd >= 0) {
        char p[RUN_DIR_PATH_MAX];
        run_dir_file(p, sizeof p, rd->dir, RUN_DIR_LOCK);
        remove(p); /* before the lock is released: fs_lock then sees the file was replaced */
        fs_unlock(&rd->lock);
    }
    if (!rd->started) { /* a start that failed: what it made goes again */
        if (rd->fresh) {
            remove_run_files(rd->dir);
            char p[RUN_DIR_PATH_MAX];
            run_dir_file(p, sizeof p, rd->dir, "ckpt");
            rmdir(p);
        }
        fs_rmdir_created(rd->dir, rd->created);
    }
    rd->fresh = false;
    rd->created[0] = '\0';
    flame_errorf(FLAME_OK, "%s", message);
}

int run_dir_write_config(const char *dir, const FlameConfig *cfg) {
    char p[RUN_DIR_PATH_MAX];
    run_dir_file(p, sizeof p, dir, "config.yaml");
    char *y = config_to_yaml(cfg);
    char *text = NULL;
    int n = asprintf(&text, "# resolved configuration of this run (flame train --config loads it "
                            "back)\n%s",
                     y);
    free(y);
    FLAME_CHECK(n >= 0, "out of memory");
    int rc = fs_write_atomic(p, text, (size_t)n);
    free(text);
    return rc;
}
