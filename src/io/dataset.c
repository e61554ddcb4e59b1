/*
 * dataset.c: D4RL and Minari dataset writers (see include/flame/dataset.h).
 *
 * Output is built under a hidden temporary name beside the target (".<name>.tmp-<pid>-<k>") and
 * renamed into place at the end; a Minari dataset replaced with force is first moved aside, then
 * its two known files and two directories are removed. Missing directories above the target are
 * created (mkdir -p) and removed again when the dataset is not written. The HDF5 file is written
 * through h5_file_* (h5util.h), so a full disk or a file size limit ends the writer with the
 * file's errno text and no id left open.
 */
#include "flame/dataset.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <hdf5.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "flame/build_info.h"
#include "flame/check.h"
#include "flame/fsutil.h"
#include "flame/h5util.h"

#define DATASET_GZIP_LEVEL 4
#define DATASET_CHUNK_BYTES 65536
#define MINARI_VERSION "0.5.3"

struct DatasetWriter {
    DatasetFormat fmt;
    DatasetInfo info;
    bool force;
    char path[PATH_MAX];   /* final location */
    char tmp[PATH_MAX];    /* temporary file (D4RL) or directory (Minari) */
    char h5path[PATH_MAX]; /* the HDF5 file being written */
    char dir[PATH_MAX];    /* the directory of the target */
    char created[PATH_MAX]; /* the topmost directory dataset_open created ("" when none) */
    hid_t file, bool_t;
    int64_t rows;     /* D4RL rows, Minari steps */
    int64_t episodes; /* episodes added */
    /* D4RL datasets (-1: not created) */
    hid_t d_obs, d_act, d_rew, d_term, d_tout, d_next, d_qpos, d_qvel, d_logp;
    bool infos_decided; /* whether the optional infos datasets were chosen (first write) */
};

// ---------------------------------------------------------------------------- formats

int dataset_format_parse(const char *name, DatasetFormat *out) {
    if (name && !strcmp(name, "d4rl")) {
        *out = DATASET_D4RL;
        return FLAME_OK;
    }
    if (name && !strcmp(name, "minari")) {
        *out = DATASET_MINARI;
        return FLAME_OK;
    }
    return flame_errorf(FLAME_EINPUT, "unknown dataset format '%s'; use --format d4rl or minari",
                        name ? name : "");
}

const char *dataset_format_name(DatasetFormat f) {
    return f == DATASET_MINARI ? "minari" : "d4rl";
}

// ---------------------------------------------------------------------------- paths

/* snprintf into a path buffer; false when the result did not fit */
static bool path_printf(char *dst, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static bool path_printf(char *dst, size_t n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(dst, n, fmt, ap);
    va_end(ap);
    return k >= 0 && (size_t)k < n;
}

/* splits path into its directory ("." when none) and base name */
static void path_split(const char *path, char *dir, size_t dlen, char *base, size_t blen) {
    char buf[PATH_MAX];
    snprintf(buf, sizeof buf, "%s", path);
    size_t n = strlen(buf);
    while (n > 1 && buf[n - 1] == '/') {
        buf[--n] = '\0';
    }
    char *slash = strrchr(buf, '/');
    if (!slash) {
        snprintf(dir, dlen, ".");
        snprintf(base, blen, "%s", buf);
    } else if (slash == buf) {
        snprintf(dir, dlen, "/");
        snprintf(base, blen, "%s", slash + 1);
    } else {
        *slash = '\0';
        snprintf(dir, dlen, "%s", buf);
        snprintf(base, blen, "%s", slash + 1);
    }
}

static void remove_minari_tree(const char *dir) {
    char p[PATH_MAX + 32];
    snprintf(p, sizeof p, "%s/data/main_data.hdf5", dir);
    remove(p);
    snprintf(p, sizeof p, "%s/data/metadata.json", dir);
    remove(p);
    snprintf(p, sizeof p, "%s/data", dir);
    rmdir(p);
    rmdir(dir);
}

/* true when dir holds exactly a Minari dataset: data/ with metadata.json and optionally
   main_data.hdf5, nothing else */
static bool is_minari_tree(const char *dir) {
    char p[PATH_MAX + 32];
    snprintf(p, sizeof p, "%s/data/metadata.json", dir);
    struct stat st;
    if (stat(p, &st) != 0 || !S_ISREG(st.st_mode)) {
        return false;
    }
    const char *allowed[2][3] = {{"data", NULL, NULL}, {"metadata.json", "main_data.hdf5", NULL}};
    for (int level = 0; level < 2; level++) {
        snprintf(p, sizeof p, level == 0 ? "%s" : "%s/data", dir);
        DIR *d = opendir(p);
        if (!d) {
            return false;
        }
        struct dirent *e;
        bool ok = true;
        while (ok && (e = readdir(d)) != NULL) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) {
                continue;
            }
            bool known = false;
            for (int k = 0; allowed[level][k]; k++) {
                known = known || !strcmp(e->d_name, allowed[level][k]);
            }
            ok = known;
        }
        closedir(d);
        if (!ok) {
            return false;
        }
    }
    return true;
}

/* checks the target and picks the temporary name */
static int check_target(DatasetWriter *w) {
    char dir[PATH_MAX], base[PATH_MAX];
    path_split(w->path, dir, sizeof dir, base, sizeof base);
    if (!base[0] || !strcmp(base, ".") || !strcmp(base, "..")) {
        return flame_errorf(FLAME_EINPUT,
                            "--out '%s' does not name a file or directory; give a "
                            "path such as runs/hopper_expert.hdf5",
                            w->path);
    }
    int rc = fs_check_path(w->path, 0, "--out");
    if (rc != FLAME_OK) {
        return rc;
    }
    /* the temporary name ".<base>.tmp-<pid>-<k>" must itself be a valid name */
    static int counter = 0;
    char suffix[64];
    snprintf(suffix, sizeof suffix, ".tmp-%ld-%d", (long)getpid(), counter++);
    if (strlen(base) + 1 + strlen(suffix) > FS_NAME_MAX) {
        char ab[160];
        return flame_errorf(FLAME_EINPUT,
                            "--out %s: the name '%s' is %zu bytes; the temporary name flame "
                            "writes first needs %zu more and one name is at most %d bytes "
                            "(NAME_MAX); use a shorter name",
                            w->path, fs_abbrev(base, ab, sizeof ab), strlen(base),
                            1 + strlen(suffix), FS_NAME_MAX);
    }
    if (!path_printf(w->tmp, sizeof w->tmp - 16, "%s/.%s%s", dir, base, suffix)) {
        return flame_errorf(FLAME_EINPUT, "--out %s: the path is too long (PATH_MAX); choose a "
                                          "shorter one",
                            w->path);
    }
    snprintf(w->dir, sizeof w->dir, "%s", dir);
    struct stat st;
    if (stat(dir, &st) == 0 && !S_ISDIR(st.st_mode)) {
        return flame_errorf(FLAME_EINPUT,
                            "--out %s: '%s' is not a directory; choose a path in a "
                            "directory",
                            w->path, dir);
    }
    if (stat(dir, &st) != 0) {
        return FLAME_OK; /* created by dataset_open once everything else is checked */
    }
    if (access(dir, W_OK | X_OK) != 0) {
        return flame_errorf(FLAME_EINPUT,
                            "--out %s: directory '%s' is not writable (%s); choose "
                            "a writable location",
                            w->path, dir, strerror(errno));
    }
    if (lstat(w->path, &st) == 0) {
        if (!w->force) {
            return flame_errorf(FLAME_EINPUT,
                                "--out %s already exists; pass --force to replace "
                                "it or choose another path",
                                w->path);
        }
        if (w->fmt == DATASET_D4RL && S_ISDIR(st.st_mode)) {
            return flame_errorf(FLAME_EINPUT,
                                "--out %s is a directory; the d4rl format writes "
                                "one file, give a file name",
                                w->path);
        }
        if (w->fmt == DATASET_MINARI && (!S_ISDIR(st.st_mode) || !is_minari_tree(w->path))) {
            return flame_errorf(FLAME_EINPUT,
                                "--out %s exists and is not a Minari dataset "
                                "directory (only data/metadata.json and "
                                "data/main_data.hdf5); --force replaces only "
                                "those, remove it yourself or choose another path",
                                w->path);
        }
    }
    return FLAME_OK;
}

// ---------------------------------------------------------------------------- HDF5 helpers

static hsize_t chunk_rows(int cols, size_t elem, int64_t cap) {
    size_t row = (size_t)(cols > 0 ? cols : 1) * elem;
    hsize_t r = (hsize_t)(DATASET_CHUNK_BYTES / row);
    r = r < 16 ? 16 : r;
    if (cap > 0 && (hsize_t)cap < r) {
        r = (hsize_t)cap;
    }
    return r;
}

/* an empty dataset with an unlimited first dimension, chunked and gzip compressed; cols = 0 makes
   it 1-D; cap (> 0) bounds the chunk length when the final length is known */
static hid_t ext_create(hid_t loc, const char *name, hid_t type, int cols, int64_t cap) {
    int rank = cols > 0 ? 2 : 1;
    hsize_t dims[2] = {0, (hsize_t)cols}, maxd[2] = {H5S_UNLIMITED, (hsize_t)cols};
    hsize_t chunk[2] = {chunk_rows(cols, H5Tget_size(type), cap), (hsize_t)cols};
    hid_t space = H5Screate_simple(rank, dims, maxd);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, rank, chunk);
    H5Pset_deflate(dcpl, DATASET_GZIP_LEVEL);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t ds = H5Dcreate2(loc, name, type, space, lcpl, dcpl, H5P_DEFAULT);
    H5Pclose(lcpl);
    H5Pclose(dcpl);
    H5Sclose(space);
    if (ds < 0) {
        flame_errorf(FLAME_ERUNTIME, "cannot create HDF5 dataset '%s'", name);
    }
    return ds;
}

/* appends n rows of data (mem_type elements, cols per row; 0 = 1-D) at row `at` */
static int ext_append(hid_t ds, hid_t mem_type, int cols, int64_t at, int64_t n, const void *data,
                      const char *name) {
    if (n <= 0) {
        return FLAME_OK;
    }
    int rank = cols > 0 ? 2 : 1;
    hsize_t size[2] = {(hsize_t)(at + n), (hsize_t)cols};
    hsize_t start[2] = {(hsize_t)at, 0}, count[2] = {(hsize_t)n, (hsize_t)cols};
    if (H5Dset_extent(ds, size) < 0) {
        return flame_errorf(FLAME_ERUNTIME, "cannot extend HDF5 dataset '%s'", name);
    }
    hid_t fs = H5Dget_space(ds);
    hid_t ms = H5Screate_simple(rank, count, NULL);
    herr_t e = H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
    if (e >= 0) {
        e = H5Dwrite(ds, mem_type, ms, fs, H5P_DEFAULT, data);
    }
    H5Sclose(ms);
    H5Sclose(fs);
    if (e < 0) {
        return flame_errorf(FLAME_ERUNTIME, "cannot write HDF5 dataset '%s'", name);
    }
    return h5_file_status(ds);
}

/* a whole array written as an extendible, chunked, compressed dataset */
static int ext_write(hid_t loc, const char *name, hid_t type, int cols, int64_t n,
                     const void *data) {
    hid_t ds = ext_create(loc, name, type, cols, n);
    if (ds < 0) {
        return FLAME_ERUNTIME;
    }
    int rc = ext_append(ds, type, cols, 0, n, data, name);
    H5Dclose(ds);
    return rc;
}

/* scalar datasets as D4RL writes them: fixed-length byte strings, int32, int64, bool */
static int meta_str(hid_t f, const char *name, const char *value) {
    const char *v = value ? value : "";
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, strlen(v) > 0 ? strlen(v) : 1);
    H5Tset_strpad(t, H5T_STR_NULLPAD);
    H5Tset_cset(t, H5T_CSET_ASCII);
    char one[1] = {0};
    int rc = h5_write(f, name, t, 0, NULL, strlen(v) > 0 ? v : one);
    H5Tclose(t);
    return rc;
}

static int meta_i64(hid_t f, const char *name, int64_t v) {
    return h5_write(f, name, H5T_STD_I64LE, 0, NULL, &v);
}

static int meta_i32(hid_t f, const char *name, int64_t v) {
    int32_t x = v > INT32_MAX ? INT32_MAX : (v < INT32_MIN ? INT32_MIN : (int32_t)v);
    return h5_write(f, name, H5T_STD_I32LE, 0, NULL, &x);
}

static int meta_bool(hid_t f, hid_t bool_t, const char *name, bool v) {
    int8_t x = v ? 1 : 0;
    return h5_write(f, name, bool_t, 0, NULL, &x);
}

// ---------------------------------------------------------------------------- open / abort

static void writer_close_handles(DatasetWriter *w) {
    hid_t *ds[] = {&w->d_obs,  &w->d_act,  &w->d_rew,  &w->d_term, &w->d_tout,
                   &w->d_next, &w->d_qpos, &w->d_qvel, &w->d_logp};
    for (size_t i = 0; i < sizeof ds / sizeof ds[0]; i++) {
        if (*ds[i] >= 0) {
            H5Dclose(*ds[i]);
            *ds[i] = -1;
        }
    }
    if (w->bool_t >= 0) {
        H5Tclose(w->bool_t);
        w->bool_t = -1;
    }
    if (w->file >= 0) {
        /* its write error, if any, was reported already: keep that message */
        char keep[FLAME_ERROR_MAX];
        snprintf(keep, sizeof keep, "%s", flame_last_error());
        int err = fs_last_errno();
        h5_file_close(w->file);
        w->file = -1;
        flame_errorf(FLAME_OK, "%s", keep);
        fs_set_errno(err);
    }
}

/* removes the temporary output and the directories dataset_open created */
static void writer_remove_tmp(DatasetWriter *w) {
    if (w->fmt == DATASET_MINARI) {
        remove_minari_tree(w->tmp);
    } else {
        remove(w->tmp);
    }
    fs_rmdir_created(w->dir, w->created);
}

/* the message of a failed write: the output, the reason, and that nothing was written */
static int writer_failed(const DatasetWriter *w, int rc) {
    int err = fs_last_errno();
    if (rc != FLAME_ERUNTIME || err == 0) {
        return rc;
    }
    return flame_errorf(FLAME_ERUNTIME, "--out %s: cannot write the dataset (%s); nothing was "
                                        "written",
                        w->path, strerror(err));
}

void dataset_abort(DatasetWriter *w) {
    if (!w) {
        return;
    }
    writer_close_handles(w);
    writer_remove_tmp(w);
    flame_free(w);
}

static int d4rl_create_core(DatasetWriter *w) {
    const int S = w->info.spec->obs_dim, D = w->info.spec->act_dim;
    w->d_obs = ext_create(w->file, "observations", H5T_IEEE_F32LE, S, 0);
    w->d_act = ext_create(w->file, "actions", H5T_IEEE_F32LE, D, 0);
    w->d_rew = ext_create(w->file, "rewards", H5T_IEEE_F32LE, 0, 0);
    w->d_term = ext_create(w->file, "terminals", w->bool_t, 0, 0);
    w->d_tout = ext_create(w->file, "timeouts", w->bool_t, 0, 0);
    w->d_next = ext_create(w->file, "next_observations", H5T_IEEE_F32LE, S, 0);
    bool ok = w->d_obs >= 0 && w->d_act >= 0 && w->d_rew >= 0 && w->d_term >= 0 && w->d_tout >= 0 &&
              w->d_next >= 0;
    return ok ? FLAME_OK : FLAME_ERUNTIME;
}

int dataset_open(DatasetWriter **out, const char *path, DatasetFormat fmt, const DatasetInfo *info,
                 bool force) {
    h5_silence();
    *out = NULL;
    FLAME_CHECK(info && info->spec, "dataset_open needs the env spec");
    if (!path || !path[0]) {
        return flame_errorf(FLAME_EINPUT, "no output path; pass --out PATH");
    }
    DatasetWriter *w = flame_calloc(1, sizeof *w);
    w->fmt = fmt;
    w->info = *info;
    w->force = force;
    w->file = w->bool_t = -1;
    w->d_obs = w->d_act = w->d_rew = w->d_term = w->d_tout = w->d_next = -1;
    w->d_qpos = w->d_qvel = w->d_logp = -1;
    snprintf(w->path, sizeof w->path, "%s", path);
    int rc = fmt == DATASET_MINARI ? dataset_minari_links_check(info) : FLAME_OK;
    if (rc == FLAME_OK) {
        rc = check_target(w);
    }
    if (rc == FLAME_OK) {
        rc = fs_mkdir_p(w->dir, w->created, sizeof w->created);
    }
    if (rc != FLAME_OK) {
        flame_free(w);
        return rc;
    }
    if (fmt == DATASET_MINARI) {
        char data[PATH_MAX + 8];
        snprintf(data, sizeof data, "%s/data", w->tmp);
        if (mkdir(w->tmp, 0777) != 0 || mkdir(data, 0777) != 0) {
            rc = flame_errorf(FLAME_EINPUT,
                              "--out %s: cannot create the directory %s (%s); "
                              "choose a writable location",
                              path, w->tmp, strerror(errno));
            rmdir(w->tmp);
            fs_rmdir_created(w->dir, w->created);
            flame_free(w);
            return rc;
        }
        path_printf(w->h5path, sizeof w->h5path, "%s/main_data.hdf5", data);
    } else {
        snprintf(w->h5path, sizeof w->h5path, "%s", w->tmp);
    }
    /* track link creation order so episode groups list in the order they were written */
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
    H5Pset_link_creation_order(fcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED);
    fs_set_errno(0);
    rc = h5_file_create(w->h5path, true, fcpl, &w->file);
    H5Pclose(fcpl);
    if (rc != FLAME_OK) {
        int err = fs_last_errno();
        rc = flame_errorf(rc, "--out %s: cannot create %s (%s); choose a writable location", path,
                          w->h5path, err ? strerror(err) : "HDF5 error");
        w->file = -1;
        dataset_abort(w);
        return rc;
    }
    w->bool_t = h5_bool_type();
    if (fmt == DATASET_D4RL && d4rl_create_core(w) != FLAME_OK) {
        rc = flame_errorf(FLAME_ERUNTIME, "%s: cannot create the D4RL datasets", w->h5path);
        dataset_abort(w);
        return rc;
    }
    *out = w;
    return FLAME_OK;
}

// ---------------------------------------------------------------------------- D4RL rows

static int d4rl_add_episode(DatasetWriter *w, const DatasetEpisode *ep) {
    const int S = w->info.spec->obs_dim, D = w->info.spec->act_dim, T = ep->T;
    /* the optional infos are chosen by the first episode and must stay the same */
    if (!w->infos_decided) {
        w->infos_decided = true;
        if (ep->qpos && ep->qvel) {
            w->d_qpos = ext_create(w->file, "infos/qpos", H5T_IEEE_F64LE, w->info.nq, 0);
            w->d_qvel = ext_create(w->file, "infos/qvel", H5T_IEEE_F64LE, w->info.nv, 0);
        }
        if (ep->log_prob) {
            w->d_logp = ext_create(w->file, "infos/action_log_probs", H5T_IEEE_F32LE, 0, 0);
        }
    }
    FLAME_CHECK((w->d_qpos >= 0) == (ep->qpos != NULL) &&
                    (w->d_logp >= 0) == (ep->log_prob != NULL),
                "every episode of a dataset must carry the same infos");
    size_t n = (size_t)T;
    float *o = flame_malloc((n + 1) * (size_t)S * sizeof(float));
    float *r = flame_malloc(n * sizeof(float));
    uint8_t *term = flame_malloc(n), *tout = flame_malloc(n);
    for (size_t i = 0; i < (n + 1) * (size_t)S; i++) {
        o[i] = (float)ep->obs[i];
    }
    for (size_t t = 0; t < n; t++) {
        r[t] = (float)ep->rew[t];
        /* D4RL: timeouts mark the time-limit step; terminals is false there even if done */
        tout[t] = ep->truncated[t] ? 1 : 0;
        term[t] = (ep->terminated[t] && !ep->truncated[t]) ? 1 : 0;
    }
    int64_t at = w->rows;
    int rc = ext_append(w->d_obs, H5T_NATIVE_FLOAT, S, at, T, o, "observations");
    rc = rc ? rc : ext_append(w->d_next, H5T_NATIVE_FLOAT, S, at, T, o + S, "next_observations");
    rc = rc ? rc : ext_append(w->d_act, H5T_NATIVE_FLOAT, D, at, T, ep->act, "actions");
    rc = rc ? rc : ext_append(w->d_rew, H5T_NATIVE_FLOAT, 0, at, T, r, "rewards");
    rc = rc ? rc : ext_append(w->d_term, w->bool_t, 0, at, T, term, "terminals");
    rc = rc ? rc : ext_append(w->d_tout, w->bool_t, 0, at, T, tout, "timeouts");
    if (w->d_qpos >= 0) {
        rc = rc ? rc
                : ext_append(w->d_qpos, H5T_NATIVE_DOUBLE, w->info.nq, at, T, ep->qpos,
                             "infos/qpos");
        rc = rc ? rc
                : ext_append(w->d_qvel, H5T_NATIVE_DOUBLE, w->info.nv, at, T, ep->qvel,
                             "infos/qvel");
    }
    if (w->d_logp >= 0) {
        rc = rc ? rc
                : ext_append(w->d_logp, H5T_NATIVE_FLOAT, 0, at, T, ep->log_prob,
                             "infos/action_log_probs");
    }
    flame_free(o), flame_free(r), flame_free(term), flame_free(tout);
    if (rc == FLAME_OK) {
        w->rows += T;
    }
    return rc;
}

int dataset_add_transitions(DatasetWriter *w, const float *obs, const float *act, const float *rew,
                            const float *next_obs, const uint8_t *terminal, int64_t n) {
    FLAME_CHECK(w->fmt == DATASET_D4RL, "raw transitions can only be written in the D4RL layout");
    FLAME_CHECK(!w->infos_decided || (w->d_qpos < 0 && w->d_logp < 0),
                "raw transitions carry no infos");
    w->infos_decided = true;
    const int S = w->info.spec->obs_dim, D = w->info.spec->act_dim;
    uint8_t *term = flame_malloc(n > 0 ? (size_t)n : 1),
            *tout = flame_calloc(n > 0 ? (size_t)n : 1, 1);
    for (int64_t i = 0; i < n; i++) {
        term[i] = terminal[i] ? 1 : 0;
    }
    int64_t at = w->rows;
    fs_set_errno(0);
    int rc = ext_append(w->d_obs, H5T_NATIVE_FLOAT, S, at, n, obs, "observations");
    rc = rc ? rc : ext_append(w->d_next, H5T_NATIVE_FLOAT, S, at, n, next_obs, "next_observations");
    rc = rc ? rc : ext_append(w->d_act, H5T_NATIVE_FLOAT, D, at, n, act, "actions");
    rc = rc ? rc : ext_append(w->d_rew, H5T_NATIVE_FLOAT, 0, at, n, rew, "rewards");
    rc = rc ? rc : ext_append(w->d_term, w->bool_t, 0, at, n, term, "terminals");
    rc = rc ? rc : ext_append(w->d_tout, w->bool_t, 0, at, n, tout, "timeouts");
    flame_free(term), flame_free(tout);
    if (rc == FLAME_OK) {
        w->rows += n;
    }
    return writer_failed(w, rc);
}

static int d4rl_write_metadata(DatasetWriter *w) {
    const DatasetInfo *in = &w->info;
    hid_t f = w->file;
    int rc = meta_str(f, "metadata/algorithm", in->algorithm);
    rc = rc ? rc : meta_i32(f, "metadata/iteration", in->iteration);
    rc = rc ? rc : meta_i64(f, "metadata/env_steps", in->env_steps);
    rc = rc ? rc : meta_str(f, "metadata/env_id", in->spec->id);
    rc = rc ? rc : meta_i32(f, "metadata/max_episode_steps", in->spec->max_episode_steps);
    rc = rc ? rc : meta_str(f, "metadata/source", in->source);
    rc = rc ? rc : meta_str(f, "metadata/policy", in->policy);
    rc = rc ? rc : meta_str(f, "metadata/backend", in->backend);
    rc = rc ? rc : meta_bool(f, w->bool_t, "metadata/deterministic", in->deterministic);
    rc = rc ? rc : meta_i64(f, "metadata/seed", (int64_t)in->seed);
    rc = rc ? rc : meta_i32(f, "metadata/num_envs", in->num_envs);
    rc = rc ? rc : meta_i64(f, "metadata/episodes", w->episodes);
    rc = rc ? rc : meta_str(f, "metadata/action_units", "env");
    rc = rc ? rc : meta_str(f, "metadata/flame_version", FLAME_VERSION);
    rc = rc ? rc : meta_str(f, "metadata/flame_commit", FLAME_GIT_COMMIT);
    if (in->config_yaml) {
        rc = rc ? rc : meta_str(f, "metadata/config", in->config_yaml);
    }
    return rc;
}

// ---------------------------------------------------------------------------- Minari episodes

static int minari_add_episode(DatasetWriter *w, const DatasetEpisode *ep) {
    const int S = w->info.spec->obs_dim, D = w->info.spec->act_dim, T = ep->T;
    char name[64];
    snprintf(name, sizeof name, "episode_%lld", (long long)w->episodes);
    hid_t gcpl = H5Pcreate(H5P_GROUP_CREATE);
    H5Pset_link_creation_order(gcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED);
    hid_t g = H5Gcreate2(w->file, name, H5P_DEFAULT, gcpl, H5P_DEFAULT);
    H5Pclose(gcpl);
    if (g < 0) {
        return flame_errorf(FLAME_ERUNTIME, "%s: cannot create group %s", w->h5path, name);
    }
    int rc = ext_write(g, "observations", H5T_IEEE_F64LE, S, T + 1, ep->obs);
    rc = rc ? rc : ext_write(g, "actions", H5T_IEEE_F32LE, D, T, ep->act);
    rc = rc ? rc : ext_write(g, "rewards", H5T_IEEE_F64LE, 0, T, ep->rew);
    rc = rc ? rc : ext_write(g, "terminations", w->bool_t, 0, T, ep->terminated);
    rc = rc ? rc : ext_write(g, "truncations", w->bool_t, 0, T, ep->truncated);
    /* Minari's collector always writes an infos group (EpisodeData.infos is a dict, never None);
       this one is empty */
    hid_t infos = H5Gcreate2(g, "infos", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (infos < 0) {
        rc = rc ? rc : flame_errorf(FLAME_ERUNTIME, "%s: cannot create %s/infos", w->h5path, name);
    } else {
        H5Gclose(infos);
    }

    /* Minari's default episode metadata; std is the population std (numpy's default) */
    double sum = 0, mx = -INFINITY, mn = INFINITY;
    for (int t = 0; t < T; t++) {
        sum += ep->rew[t];
        mx = ep->rew[t] > mx ? ep->rew[t] : mx;
        mn = ep->rew[t] < mn ? ep->rew[t] : mn;
    }
    double mean = T > 0 ? sum / T : 0, var = 0;
    for (int t = 0; t < T; t++) {
        var += (ep->rew[t] - mean) * (ep->rew[t] - mean);
    }
    double sd = T > 0 ? sqrt(var / T) : 0;
    rc = rc ? rc : h5_attr_i64(g, "id", w->episodes);
    rc = rc ? rc : h5_attr_i64(g, "seed", (int64_t)w->info.seed);
    rc = rc ? rc : h5_attr_i64(g, "total_steps", T);
    rc = rc ? rc : h5_attr_f64(g, "rewards_sum", sum);
    rc = rc ? rc : h5_attr_f64(g, "rewards_mean", mean);
    rc = rc ? rc : h5_attr_f64(g, "rewards_std", sd);
    rc = rc ? rc : h5_attr_f64(g, "rewards_max", T > 0 ? mx : 0);
    rc = rc ? rc : h5_attr_f64(g, "rewards_min", T > 0 ? mn : 0);
    rc = rc ? rc : h5_attr_i64(g, "env_index", ep->env_index);
    rc = rc ? rc : h5_attr_i64(g, "env_episode", ep->env_episode);
    H5Gclose(g);
    if (rc == FLAME_OK) {
        w->rows += T;
    }
    return rc;
}

int dataset_add_episode(DatasetWriter *w, const DatasetEpisode *ep) {
    FLAME_CHECK(ep->T >= 1, "an episode has at least one step");
    fs_set_errno(0);
    int rc = w->fmt == DATASET_MINARI ? minari_add_episode(w, ep) : d4rl_add_episode(w, ep);
    if (rc == FLAME_OK) {
        w->episodes++;
    }
    return writer_failed(w, rc);
}

// ---------------------------------------------------------------------------- JSON

typedef struct {
    char *s;
    size_t len, cap;
} StrBuf;

static void sb_printf(StrBuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(StrBuf *b, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = b->cap - b->len;
        int n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? room : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            return;
        }
        if (b->s && (size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + (size_t)n + 1) {
            cap *= 2;
        }
        char *s = flame_malloc(cap);
        if (b->s) {
            memcpy(s, b->s, b->len + 1);
            flame_free(b->s);
        }
        b->s = s;
        b->cap = cap;
    }
}

/* a JSON string literal (quotes, backslashes and control characters escaped) */
static void sb_json_str(StrBuf *b, const char *s) {
    sb_printf(b, "\"");
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        if (*p == '"' || *p == '\\') {
            sb_printf(b, "\\%c", *p);
        } else if (*p == '\n') {
            sb_printf(b, "\\n");
        } else if (*p == '\t') {
            sb_printf(b, "\\t");
        } else if (*p < 0x20) {
            sb_printf(b, "\\u%04x", *p);
        } else {
            sb_printf(b, "%c", *p);
        }
    }
    sb_printf(b, "\"");
}

/* a number as Python's json writes a float: shortest round-trip digits, ".0" on integers,
   Infinity / -Infinity / NaN tokens */
static void sb_json_float(StrBuf *b, double v) {
    if (isnan(v)) {
        sb_printf(b, "NaN");
        return;
    }
    if (isinf(v)) {
        sb_printf(b, v > 0 ? "Infinity" : "-Infinity");
        return;
    }
    char buf[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) {
            break;
        }
    }
    if (!strpbrk(buf, ".eEn")) {
        strcat(buf, ".0");
    }
    sb_printf(b, "%s", buf);
}

/* serialised gymnasium Box as minari.serialization writes it */
static char *box_json(const char *dtype, int n, const double *low, const double *high,
                      bool float32) {
    StrBuf b = {0};
    sb_printf(&b, "{\"type\": \"Box\", \"dtype\": \"%s\", \"shape\": [%d], \"low\": [", dtype, n);
    for (int i = 0; i < n; i++) {
        double v = low ? (float32 ? (double)(float)low[i] : low[i]) : -INFINITY;
        sb_printf(&b, i ? ", " : "");
        sb_json_float(&b, v);
    }
    sb_printf(&b, "], \"high\": [");
    for (int i = 0; i < n; i++) {
        double v = high ? (float32 ? (double)(float)high[i] : high[i]) : INFINITY;
        sb_printf(&b, i ? ", " : "");
        sb_json_float(&b, v);
    }
    sb_printf(&b, "]}");
    return b.s;
}

/* gymnasium's entry point module: "HalfCheetah" -> "half_cheetah" */
static void snake_case(const char *family, char *out, size_t n) {
    size_t k = 0;
    for (size_t i = 0; family[i] && k + 2 < n; i++) {
        char c = family[i];
        if (c >= 'A' && c <= 'Z') {
            if (i > 0) {
                out[k++] = '_';
            }
            c = (char)(c - 'A' + 'a');
        }
        out[k++] = c;
    }
    out[k] = '\0';
}

/* gymnasium EnvSpec.to_json() of the registered env with default kwargs */
static char *env_spec_json(const EnvSpec *spec) {
    char snake[64];
    snake_case(spec->family, snake, sizeof snake);
    StrBuf b = {0};
    sb_printf(&b,
              "{\"id\": \"%s\", \"entry_point\": \"gymnasium.envs.mujoco.%s_v%d:%sEnv\", "
              "\"reward_threshold\": ",
              spec->id, snake, spec->version, spec->family);
    if (isnan(spec->reward_threshold)) {
        sb_printf(&b, "null");
    } else {
        sb_json_float(&b, spec->reward_threshold);
    }
    sb_printf(&b,
              ", \"nondeterministic\": false, \"max_episode_steps\": %d, \"order_enforce\": "
              "true, \"disable_env_checker\": false, \"kwargs\": {}, \"additional_wrappers\": "
              "[], \"vector_entry_point\": null}",
              spec->max_episode_steps);
    return b.s;
}

static int minari_write_metadata(DatasetWriter *w) {
    const DatasetInfo *in = &w->info;
    const EnvSpec *spec = in->spec;
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/data/main_data.hdf5", w->tmp);
    struct stat st;
    double mb = stat(path, &st) == 0 ? (double)st.st_size / 1e6 : 0;
    mb = round(mb * 10) / 10;

    char *obs_space = box_json("float64", spec->obs_dim, NULL, NULL, false);
    char *act_space = box_json("float32", spec->act_dim, in->act_low, in->act_high, true);
    char *env_spec = env_spec_json(spec);
    char description[1024];
    snprintf(description, sizeof description,
             "%lld episodes of %s by the %s policy %s (%s actions, seed %llu), generated with "
             "the FLAME trainer's own MuJoCo C implementation of %s. Actions are in env units.",
             (long long)w->episodes, spec->id, in->algorithm ? in->algorithm : "?",
             in->policy ? in->policy : "?", in->deterministic ? "deterministic" : "stochastic",
             (unsigned long long)in->seed, spec->id);

    StrBuf b = {0};
    sb_printf(&b, "{\"dataset_id\": ");
    sb_json_str(&b, in->dataset_id);
    sb_printf(&b, ", \"total_episodes\": %lld, \"total_steps\": %lld, \"data_format\": \"hdf5\"",
              (long long)w->episodes, (long long)w->rows);
    sb_printf(&b, ", \"observation_space\": ");
    sb_json_str(&b, obs_space);
    sb_printf(&b, ", \"action_space\": ");
    sb_json_str(&b, act_space);
    sb_printf(&b, ", \"env_spec\": ");
    sb_json_str(&b, env_spec);
    sb_printf(&b, ", \"algorithm_name\": ");
    sb_json_str(&b, in->algorithm);
    sb_printf(&b, ", \"author\": [");
    sb_json_str(&b, in->author ? in->author : "unknown");
    sb_printf(&b, "]");
    if (in->author_email) {
        sb_printf(&b, ", \"author_email\": [");
        sb_json_str(&b, in->author_email);
        sb_printf(&b, "]");
    }
    if (in->code_permalink && in->code_permalink[0]) { /* a link, or no key at all */
        sb_printf(&b, ", \"code_permalink\": ");
        sb_json_str(&b, in->code_permalink);
    }
    sb_printf(&b, ", \"description\": ");
    sb_json_str(&b, in->description ? in->description : description);
    sb_printf(&b, ", \"requirements\": [\"gymnasium[mujoco]>=1.0\"]");
    sb_printf(&b, ", \"minari_version\": \"%s\", \"dataset_size\": ", MINARI_VERSION);
    sb_json_float(&b, mb);
    /* provenance beyond Minari's keys */
    sb_printf(&b,
              ", \"flame_version\": \"%s\", \"flame_commit\": \"%s\", \"policy\": ", FLAME_VERSION,
              FLAME_GIT_COMMIT);
    sb_json_str(&b, in->policy);
    sb_printf(&b,
              ", \"iteration\": %lld, \"env_steps\": %lld, \"seed\": %llu, \"deterministic\": "
              "%s, \"num_envs\": %d, \"backend\": ",
              (long long)in->iteration, (long long)in->env_steps, (unsigned long long)in->seed,
              in->deterministic ? "true" : "false", in->num_envs);
    sb_json_str(&b, in->backend);
    sb_printf(&b, "}\n");
    free(obs_space), free(act_space), free(env_spec);

    snprintf(path, sizeof path, "%s/data/metadata.json", w->tmp);
    int rc = fs_write_atomic(path, b.s, b.len);
    flame_free(b.s);
    return rc;
}

// ---------------------------------------------------------------------------- close

static int install_minari(DatasetWriter *w) {
    char old[PATH_MAX + 64];
    old[0] = '\0';
    struct stat st;
    if (lstat(w->path, &st) == 0) {
        /* checked at open; checked again: the directory may have changed meanwhile */
        if (!w->force || !S_ISDIR(st.st_mode) || !is_minari_tree(w->path)) {
            return flame_errorf(FLAME_EINPUT,
                                "--out %s appeared or changed during the rollout; "
                                "nothing was replaced, run again",
                                w->path);
        }
        snprintf(old, sizeof old, "%s.old", w->tmp);
        if (rename(w->path, old) != 0) {
            return flame_errorf(FLAME_ERUNTIME, "cannot move the old dataset %s aside (%s)",
                                w->path, strerror(errno));
        }
    }
    if (rename(w->tmp, w->path) != 0) {
        int e = errno;
        if (old[0]) {
            rename(old, w->path);
        }
        return flame_errorf(FLAME_ERUNTIME, "cannot rename %s to %s (%s)", w->tmp, w->path,
                            strerror(e));
    }
    if (old[0]) {
        remove_minari_tree(old);
    }
    return FLAME_OK;
}

int dataset_close(DatasetWriter *w) {
    int rc = FLAME_OK;
    fs_set_errno(0);
    if (w->fmt == DATASET_D4RL) {
        rc = d4rl_write_metadata(w);
    }
    bool had_file = w->file >= 0;
    hid_t f = w->file;
    w->file = -1;
    writer_close_handles(w);
    if (had_file) {
        int crc = h5_file_close(f); /* the device's error says more than the call that saw it */
        rc = crc ? crc : rc;
    }
    if (rc == FLAME_OK && w->fmt == DATASET_MINARI) {
        rc = minari_write_metadata(w);
    }
    if (rc == FLAME_OK) {
        if (w->fmt == DATASET_MINARI) {
            rc = install_minari(w);
        } else {
            struct stat st;
            if (lstat(w->path, &st) == 0 && (!w->force || S_ISDIR(st.st_mode))) {
                rc = flame_errorf(FLAME_EINPUT,
                                  "--out %s appeared during the rollout; nothing "
                                  "was replaced, run again",
                                  w->path);
            } else if (rename(w->tmp, w->path) != 0) {
                rc = flame_errorf(FLAME_ERUNTIME, "cannot rename %s to %s (%s)", w->tmp, w->path,
                                  strerror(errno));
            }
        }
    }
    if (rc != FLAME_OK) {
        rc = writer_failed(w, rc);
        writer_remove_tmp(w);
    }
    flame_free(w);
    return rc;
}

// ---------------------------------------------------------------------------- Minari ids

static bool id_name_ok(const char *s, size_t n) {
    if (n == 0) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_';
        if (!ok) {
            return false;
        }
    }
    return true;
}

/* (namespace/)*name-vN with every component [-_A-Za-z0-9]+ */
static bool minari_id_ok(const char *id) {
    const char *v = strrchr(id, '-');
    if (!v || v[1] != 'v' || !v[2]) {
        return false;
    }
    for (const char *p = v + 2; *p; p++) {
        if (*p < '0' || *p > '9') {
            return false;
        }
    }
    const char *start = id;
    for (;;) {
        const char *slash = strchr(start, '/');
        const char *end = slash ? slash : v;
        if (!slash && end < start) {
            return false;
        }
        if (!id_name_ok(start, (size_t)(end - start))) {
            return false;
        }
        if (!slash) {
            return true;
        }
        start = slash + 1;
        if (start > v) {
            return false;
        }
    }
}

int dataset_minari_id(const char *id, const char *env_id, const char *policy, bool deterministic,
                      char *out, size_t out_len) {
    char buf[1024];
    if (id && id[0]) {
        snprintf(buf, sizeof buf, "%s", id);
    } else {
        /* flame/<env id in lower case>/<policy>[-stochastic]-v0, e.g. flame/hopper-v5/sac-v0 */
        int n = snprintf(buf, sizeof buf, "flame/%s/%s%s-v0", env_id ? env_id : "env",
                         policy && policy[0] ? policy : "policy",
                         deterministic ? "" : "-stochastic");
        for (int i = 0; i < n && i < (int)sizeof buf; i++) {
            buf[i] = (char)tolower((unsigned char)buf[i]);
        }
    }
    if (!minari_id_ok(buf)) {
        return flame_errorf(FLAME_EINPUT,
                            "Minari dataset id '%s' is malformed; use "
                            "--dataset-id NAMESPACE/NAME-vN with letters, digits, "
                            "'-' and '_' (e.g. flame/hopper-v5/expert-v0)",
                            buf);
    }
    snprintf(out, out_len, "%s", buf);
    return FLAME_OK;
}

int dataset_minari_links_check(const DatasetInfo *info) {
    const char *url = info->code_permalink;
    if (url && url[0]) {
        bool scheme = !strncmp(url, "https://", 8) || !strncmp(url, "http://", 7);
        const char *host = scheme ? strstr(url, "://") + 3 : NULL;
        if (!scheme || !host[0] || host[0] == '/' || strpbrk(url, " \t\n\"<>")) {
            return flame_errorf(FLAME_EINPUT,
                                "--code-permalink '%s' is not a link; pass an http(s) URL "
                                "(e.g. https://host/repo/tree/<commit>) or leave it out",
                                url);
        }
    }
    const char *mail = info->author_email;
    if (mail && mail[0]) {
        const char *at = strchr(mail, '@');
        if (!at || at == mail || strchr(at + 1, '@') || !strchr(at + 1, '.') ||
            strpbrk(mail, " \t\n\"<>,;")) {
            return flame_errorf(FLAME_EINPUT,
                                "--author-email '%s' is not an e-mail address; pass "
                                "NAME@DOMAIN or leave it out",
                                mail);
        }
    }
    return FLAME_OK;
}
