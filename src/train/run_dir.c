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

/* mkdir -p, then a writability check */
static int make_dir(const char *path) {
    if (fs_mkdir_p(path, NULL, 0) != FLAME_OK) {
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

void run_dir_file(char *out, size_t len, const char *dir, const char *name) {
    snprintf(out, len, "%s/%s", dir, name);
}

void run_dir_ckpt_path(char *out, size_t len, const char *dir, int64_t step) {
    snprintf(out, len, "%s/ckpt/step_%lld.h5", dir, (long long)step);
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

/* --force: the previous run's files (only ours) */
static void remove_previous_run(const char *dir) {
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

int run_dir_prepare(const char *dir, bool force) {
    char p[RUN_DIR_PATH_MAX];
    run_dir_file(p, sizeof p, dir, "metrics.h5");
    bool has_metrics = path_exists(p);
    run_dir_file(p, sizeof p, dir, "ckpt");
    bool has_ckpt = path_exists(p);
    if ((has_metrics || has_ckpt) && !force) {
        return flame_errorf(FLAME_EINPUT,
                            "run directory %s already holds a run; use --resume %s to continue it, "
                            "--force to overwrite it, or another run.name",
                            dir, dir);
    }
    int rc = make_dir(dir);
    if (rc != FLAME_OK) {
        return rc;
    }
    if (has_metrics || has_ckpt) {
        remove_previous_run(dir);
    }
    return make_dir(p);
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
