/*
 * metrics.c: the metrics.h5 writer (see include/flame/metrics.h).
 *
 * Every write (creation, truncation on resume, each flush) goes to a copy, "<path>.tmp", which is
 * synced and renamed over the file only when all of it was written: metrics.h5 is always the
 * complete file of the last successful write, whatever happens during the next one (full disk,
 * kill), and a reader never sees a half-written file. The copy costs the file's size per flush
 * (kilobytes to a few megabytes).
 */
#include "flame/metrics.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flame/build_info.h"
#include "flame/check.h"
#include "flame/fsutil.h"
#include "flame/h5util.h"

#define CHUNK 1024

typedef struct {
    const char *name;
    char kind; /* 'I' int64, 'F' double, 'U' uint8 */
    size_t offset;
    const char *units;
    const char *help;
} Column;

typedef struct {
    const char *group;
    const Column *cols;
    int ncols;
    size_t row_size;
    unsigned char *rows; /* buffered rows (structs) */
    size_t nrows, cap;
} Table;

#define FLAME_METRICS_KIND_I64 'I'
#define FLAME_METRICS_KIND_F64 'F'
#define FLAME_METRICS_KIND_U8 'U'
#define COL_TRAIN(name, kind, units, help) \
    {#name, FLAME_METRICS_KIND_##kind, offsetof(MetricsTrainRow, name), units, help},
#define COL_EPISODE(name, kind, units, help) \
    {#name, FLAME_METRICS_KIND_##kind, offsetof(MetricsEpisodeRow, name), units, help},
#define COL_EVAL(name, kind, units, help) \
    {#name, FLAME_METRICS_KIND_##kind, offsetof(MetricsEvalRow, name), units, help},
#define COL_TIMING(name, kind, units, help) \
    {#name, FLAME_METRICS_KIND_##kind, offsetof(MetricsTimingRow, name), units, help},

static const Column train_cols[] = {FLAME_METRICS_TRAIN(COL_TRAIN)};
static const Column episode_cols[] = {FLAME_METRICS_EPISODES(COL_EPISODE)};
static const Column eval_cols[] = {FLAME_METRICS_EVAL(COL_EVAL)};
static const Column timing_cols[] = {FLAME_METRICS_TIMING(COL_TIMING)};
#define NCOLS(a) ((int)(sizeof(a) / sizeof((a)[0])))

enum { T_TRAIN, T_EPISODES, T_EVAL, T_TIMING, T_COUNT };

struct MetricsFile {
    hid_t file; /* the copy being written, open only inside create/truncate/flush */
    char path[FS_PATH_MAX];
    char tmp[FS_PATH_MAX]; /* <path>.tmp */
    Table t[T_COUNT];
};

#define KEPT_ROWS "the file keeps every row up to its last flush"

/* the message of a failed write: the file, the reason, and what is left (`kept`) */
static int write_failed(const MetricsFile *m, const char *doing, const char *kept) {
    char reason[FLAME_ERROR_MAX];
    return flame_errorf(FLAME_ERUNTIME, "%s: cannot %s (%s); %s", m->path, doing,
                        fs_last_reason(reason, sizeof reason), kept);
}

/* starts a write: the current file copied to <path>.tmp and opened there */
static int write_begin(MetricsFile *m, const char *doing) {
    fs_set_errno(0);
    int rc = fs_copy_file(m->path, m->tmp);
    if (rc == FLAME_OK) {
        rc = h5_file_open_rw(m->tmp, &m->file);
    }
    if (rc != FLAME_OK) {
        remove(m->tmp);
        m->file = -1;
        return write_failed(m, doing, KEPT_ROWS);
    }
    return FLAME_OK;
}

/* ends a write: the copy closed, synced and renamed over the file; after any failure (rc, or
   one found now) the copy is removed and the file stays as it was */
static int write_end(MetricsFile *m, int rc, const char *doing, const char *kept) {
    int crc = h5_file_close(m->file);
    m->file = -1;
    if (crc != FLAME_OK) {
        rc = crc; /* the write error of the file says more than the call that noticed it */
    }
    if (rc == FLAME_OK && rename(m->tmp, m->path) != 0) {
        fs_set_errno(errno);
        rc = FLAME_ERUNTIME;
    }
    if (rc != FLAME_OK) {
        remove(m->tmp);
        return write_failed(m, doing, kept);
    }
    return fs_fsync_dir(m->path);
}

static void tables_init(MetricsFile *m) {
    m->t[T_TRAIN] = (Table){"train", train_cols, NCOLS(train_cols), sizeof(MetricsTrainRow), 0, 0, 0};
    m->t[T_EPISODES] =
        (Table){"episodes", episode_cols, NCOLS(episode_cols), sizeof(MetricsEpisodeRow), 0, 0, 0};
    m->t[T_EVAL] = (Table){"eval", eval_cols, NCOLS(eval_cols), sizeof(MetricsEvalRow), 0, 0, 0};
    m->t[T_TIMING] =
        (Table){"timing", timing_cols, NCOLS(timing_cols), sizeof(MetricsTimingRow), 0, 0, 0};
}

/* dataset name of a column: the field name without a trailing underscore (return_ -> return) */
static const char *col_name(const Column *c, char *buf, size_t n) {
    snprintf(buf, n, "%s", c->name);
    size_t len = strlen(buf);
    if (len && buf[len - 1] == '_') {
        buf[len - 1] = '\0';
    }
    return buf;
}

static hid_t col_type(char kind) {
    return kind == 'I' ? H5T_NATIVE_INT64 : (kind == 'F' ? H5T_NATIVE_DOUBLE : H5T_NATIVE_UINT8);
}

static size_t col_size(char kind) {
    return kind == 'U' ? 1 : 8;
}

int metrics_create(const char *path, const FlameConfig *cfg, const char *backend,
                   const char *device, MetricsFile **out) {
    h5_silence();
    *out = NULL;
    MetricsFile *m = flame_calloc(1, sizeof *m);
    m->file = -1;
    int rc = fs_printf(m->path, sizeof m->path, "metrics file", "%s", path);
    rc = rc ? rc : fs_printf(m->tmp, sizeof m->tmp, "metrics file", "%s.tmp", path);
    fs_set_errno(0);
    if (rc == FLAME_OK && h5_file_create(m->tmp, false, H5P_DEFAULT, &m->file) != FLAME_OK) {
        int err = fs_last_errno();
        char reason[FLAME_ERROR_MAX];
        rc = flame_errorf(err ? fs_errno_code(err) : FLAME_EINPUT,
                          "%s: cannot create the metrics file (%s)", path,
                          fs_last_reason(reason, sizeof reason));
    }
    if (rc != FLAME_OK) {
        flame_free(m);
        return rc;
    }
    tables_init(m);
    hid_t f = m->file;
    char *yaml = config_to_yaml(cfg);
    rc = h5_attr_str(f, "config", yaml);
    free(yaml);
    rc = rc ? rc : h5_attr_str(f, "version", FLAME_VERSION);
    rc = rc ? rc : h5_attr_str(f, "commit", FLAME_GIT_COMMIT);
    rc = rc ? rc : h5_attr_str(f, "backend", backend);
    rc = rc ? rc : h5_attr_str(f, "device", device);
    rc = rc ? rc : h5_attr_str(f, "env_id", cfg->env.id);
    rc = rc ? rc : h5_attr_str(f, "algo", config_algo_name(cfg->algo));
    for (int k = 0; k < T_COUNT && rc == FLAME_OK; k++) {
        Table *t = &m->t[k];
        hid_t g = h5_group(f, t->group);
        if (g < 0) {
            rc = flame_errorf(FLAME_ERUNTIME, "%s: cannot create the group %s", path, t->group);
            break;
        }
        for (int c = 0; c < t->ncols && rc == FLAME_OK; c++) {
            hsize_t dims = 0, maxd = H5S_UNLIMITED, chunk = CHUNK;
            hid_t sp = H5Screate_simple(1, &dims, &maxd);
            hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
            H5Pset_chunk(dcpl, 1, &chunk);
            char cn[64];
            hid_t ds = H5Dcreate2(g, col_name(&t->cols[c], cn, sizeof cn), col_type(t->cols[c].kind),
                                  sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
            if (ds >= 0) {
                rc = h5_attr_str(ds, "units", t->cols[c].units);
                rc = rc ? rc : h5_attr_str(ds, "help", t->cols[c].help);
                H5Dclose(ds);
            } else {
                rc = flame_errorf(FLAME_ERUNTIME, "%s: cannot create the dataset %s/%s", path,
                                  t->group, cn);
            }
            H5Pclose(dcpl);
            H5Sclose(sp);
        }
        H5Gclose(g);
    }
    rc = write_end(m, rc, "create the metrics file", "nothing was written");
    if (rc != FLAME_OK) {
        flame_free(m);
        return rc;
    }
    *out = m;
    return FLAME_OK;
}

int metrics_open_append(const char *path, MetricsFile **out) {
    h5_silence();
    *out = NULL;
    MetricsFile *m = flame_calloc(1, sizeof *m);
    m->file = -1;
    int rc = fs_printf(m->path, sizeof m->path, "metrics file", "%s", path);
    rc = rc ? rc : fs_printf(m->tmp, sizeof m->tmp, "metrics file", "%s.tmp", path);
    rc = rc ? rc : fs_check_regular(path, "metrics file");
    hid_t f = -1;
    if (rc == FLAME_OK && (f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT)) < 0) {
        rc = flame_errorf(FLAME_EINPUT, "%s: cannot open the metrics file to continue it", path);
    }
    if (rc != FLAME_OK) {
        flame_free(m);
        return rc;
    }
    tables_init(m);
    for (int k = 0; k < T_COUNT && rc == FLAME_OK; k++) {
        for (int c = 0; c < m->t[k].ncols; c++) {
            char name[128], cn[64];
            snprintf(name, sizeof name, "%s/%s", m->t[k].group,
                     col_name(&m->t[k].cols[c], cn, sizeof cn));
            if (!h5_exists(f, name)) {
                rc = flame_errorf(FLAME_EINPUT, "%s: dataset %s is missing (not a flame metrics "
                                                "file of this version)",
                                  path, name);
                break;
            }
        }
    }
    H5Fclose(f);
    if (rc != FLAME_OK) {
        flame_free(m);
        return rc;
    }
    *out = m;
    return FLAME_OK;
}

static hsize_t group_len(MetricsFile *m, const Table *t) {
    char name[128];
    snprintf(name, sizeof name, "%s/%s", t->group, t->cols[0].name);
    hsize_t d[8] = {0};
    return h5_dims(m->file, name, d) == 1 ? d[0] : 0;
}

int metrics_truncate(MetricsFile *m, int64_t max_step) {
    int rc = write_begin(m, "drop the rows after the checkpoint");
    if (rc != FLAME_OK) {
        return rc;
    }
    for (int k = 0; k < T_COUNT && rc == FLAME_OK; k++) {
        Table *t = &m->t[k];
        hsize_t n = group_len(m, t);
        if (n == 0) {
            continue;
        }
        char name[128];
        snprintf(name, sizeof name, "%s/step", t->group);
        int64_t *steps = flame_malloc(n * sizeof(int64_t));
        rc = h5_read(m->file, name, H5T_NATIVE_INT64, 1, &n, steps, m->path);
        hsize_t keep = 0;
        while (rc == FLAME_OK && keep < n && steps[keep] <= max_step) {
            keep++;
        }
        flame_free(steps);
        for (int c = 0; rc == FLAME_OK && c < t->ncols && keep < n; c++) {
            char cn[64];
            snprintf(name, sizeof name, "%s/%s", t->group, col_name(&t->cols[c], cn, sizeof cn));
            hid_t ds = H5Dopen2(m->file, name, H5P_DEFAULT);
            if (ds < 0 || H5Dset_extent(ds, &keep) < 0) {
                rc = flame_errorf(FLAME_ERUNTIME, "%s: cannot shorten %s", m->path, name);
            }
            if (ds >= 0) {
                H5Dclose(ds);
            }
        }
    }
    return write_end(m, rc, "drop the rows after the checkpoint", KEPT_ROWS);
}

static void add_row(Table *t, const void *row) {
    if (t->nrows == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 256;
        unsigned char *p = flame_malloc(t->cap * t->row_size);
        if (t->rows) {
            memcpy(p, t->rows, t->nrows * t->row_size);
            flame_free(t->rows);
        }
        t->rows = p;
    }
    memcpy(t->rows + t->nrows * t->row_size, row, t->row_size);
    t->nrows++;
}

void metrics_add_train(MetricsFile *m, const MetricsTrainRow *r) {
    add_row(&m->t[T_TRAIN], r);
}
void metrics_add_episode(MetricsFile *m, const MetricsEpisodeRow *r) {
    add_row(&m->t[T_EPISODES], r);
}
void metrics_add_eval(MetricsFile *m, const MetricsEvalRow *r) {
    add_row(&m->t[T_EVAL], r);
}
void metrics_add_timing(MetricsFile *m, const MetricsTimingRow *r) {
    add_row(&m->t[T_TIMING], r);
}

int metrics_flush(MetricsFile *m) {
    if (!m) {
        return FLAME_OK;
    }
    bool any = false;
    for (int k = 0; k < T_COUNT; k++) {
        any = any || m->t[k].nrows > 0;
    }
    if (!any) {
        return FLAME_OK;
    }
    int rc = write_begin(m, "append the new rows");
    if (rc != FLAME_OK) {
        return rc;
    }
    for (int k = 0; k < T_COUNT && rc == FLAME_OK; k++) {
        Table *t = &m->t[k];
        if (t->nrows == 0) {
            continue;
        }
        hsize_t old = group_len(m, t), add = t->nrows, total = old + add;
        unsigned char *col = flame_malloc(t->nrows * 8);
        for (int c = 0; c < t->ncols && rc == FLAME_OK; c++) {
            const Column *cc = &t->cols[c];
            size_t sz = col_size(cc->kind);
            for (size_t i = 0; i < t->nrows; i++) {
                memcpy(col + i * sz, t->rows + i * t->row_size + cc->offset, sz);
            }
            char name[128], cn[64];
            snprintf(name, sizeof name, "%s/%s", t->group, col_name(cc, cn, sizeof cn));
            hid_t ds = H5Dopen2(m->file, name, H5P_DEFAULT);
            herr_t e = ds < 0 ? -1 : H5Dset_extent(ds, &total);
            hid_t fs = ds < 0 ? -1 : H5Dget_space(ds);
            if (e >= 0 && fs >= 0) {
                H5Sselect_hyperslab(fs, H5S_SELECT_SET, &old, NULL, &add, NULL);
                hid_t ms = H5Screate_simple(1, &add, NULL);
                e = H5Dwrite(ds, col_type(cc->kind), ms, fs, H5P_DEFAULT, col);
                H5Sclose(ms);
            }
            if (fs >= 0) {
                H5Sclose(fs);
            }
            if (ds >= 0) {
                H5Dclose(ds);
            }
            if (e < 0 || fs < 0) {
                rc = flame_errorf(FLAME_ERUNTIME, "%s: cannot append to %s", m->path, name);
            } else {
                rc = h5_file_status(m->file);
            }
        }
        flame_free(col);
    }
    rc = write_end(m, rc, "append the new rows", KEPT_ROWS);
    if (rc == FLAME_OK) {
        /* the rows are in the file now (kept in memory for the next flush otherwise) */
        for (int k = 0; k < T_COUNT; k++) {
            m->t[k].nrows = 0;
        }
    }
    return rc;
}

int metrics_close(MetricsFile *m) {
    if (!m) {
        return FLAME_OK;
    }
    int rc = metrics_flush(m);
    for (int k = 0; k < T_COUNT; k++) {
        flame_free(m->t[k].rows);
    }
    flame_free(m);
    return rc;
}
