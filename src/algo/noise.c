/* noise.c: materialised random draws of one update and their HDF5 bundle (see noise.h). */
#include "flame/noise.h"

#include <string.h>

#include "flame/check.h"
#include "flame/fsutil.h"
#include "flame/h5util.h"
#include "flame/rng.h"

/* per-row shape of each array (excluding the update and batch dimensions) */
static int row_shape(const UpdateNoise *n, const char *name, hsize_t *d) {
    if (!strcmp(name, "next_z")) {
        d[0] = (hsize_t)n->Np, d[1] = (hsize_t)n->D;
        return 2;
    }
    if (!strcmp(name, "ent_probe")) {
        d[0] = (hsize_t)n->P, d[1] = (hsize_t)n->D;
        return 2;
    }
    if (!strcmp(name, "eps_post")) {
        d[0] = (hsize_t)n->K, d[1] = (hsize_t)n->D;
        return 2;
    }
    if (!strcmp(name, "times")) {
        d[0] = 2;
        return 1;
    }
    if (!strcmp(name, "req")) {
        return 0;
    }
    d[0] = (hsize_t)n->D;
    return 1;
}

void noise_alloc(UpdateNoise *n, int B, int S, int D, int K, int Np, int P) {
    memset(n, 0, sizeof *n);
    n->B = B, n->S = S, n->D = D, n->K = K, n->Np = Np, n->P = P;
    size_t total = 0;
#define FLAME_NOISE_SIZE(name, stream, kind, width) total += (size_t)B * (size_t)(width);
    FLAME_NOISE_ARRAYS(FLAME_NOISE_SIZE)
#undef FLAME_NOISE_SIZE
    total += (size_t)B * (2 * (size_t)S + (size_t)D + 2);
    n->mem = flame_calloc(total, sizeof(float));
    float *p = n->mem;
#define FLAME_NOISE_PTR(name, stream, kind, width)                                                 \
    n->name = p;                                                                                   \
    p += (size_t)B * (size_t)(width);
    FLAME_NOISE_ARRAYS(FLAME_NOISE_PTR)
#undef FLAME_NOISE_PTR
    n->obs = p, p += (size_t)B * S;
    n->next_obs = p, p += (size_t)B * S;
    n->act = p, p += (size_t)B * D;
    n->rew = p, p += B;
    n->done = p;
}

void noise_free(UpdateNoise *n) {
    flame_free(n->mem);
    memset(n, 0, sizeof *n);
}

static void fill_normal(float *a, int B, int w, uint64_t seed, uint32_t stream, uint32_t step) {
    for (int b = 0; b < B; b++) {
        for (int j = 0; j < w; j++) {
            a[(size_t)b * w + j] = rng_normal(seed, stream, step, (uint32_t)b, (uint32_t)j);
        }
    }
}

static void fill_uniform(float *a, int B, int w, uint64_t seed, uint32_t stream, uint32_t step) {
    for (int b = 0; b < B; b++) {
        for (int j = 0; j < w; j++) {
            a[(size_t)b * w + j] = rng_uniform(seed, stream, step, (uint32_t)b, (uint32_t)j);
        }
    }
}

void noise_fill_philox(UpdateNoise *n, const FlameConfig *cfg, uint32_t step) {
    uint64_t seed = (uint64_t)cfg->run.seed;
    int B = n->B, D = n->D, Np = n->Np, P = n->P, K = n->K;
    (void)K;
#define FLAME_NOISE_FILL_N(name, stream, width) fill_normal(n->name, B, width, seed, stream, step);
#define FLAME_NOISE_FILL_U(name, stream, width) fill_uniform(n->name, B, width, seed, stream, step);
#define FLAME_NOISE_FILL_T(name, stream, width)
#define FLAME_NOISE_FILL_P(name, stream, width)                                                    \
    if (cfg->entropy.probe == PROBE_RADEMACHER) {                                                  \
        for (int b = 0; b < B; b++) {                                                              \
            for (int j = 0; j < (width); j++) {                                                    \
                uint32_t w = rng_u32(seed, RNG_STREAM_ENT_PROBE_SIGN, step, (uint32_t)b,           \
                                     (uint32_t)j);                                                 \
                n->name[(size_t)b * (width) + j] = (w & 1u) ? 1.0f : -1.0f;                       \
            }                                                                                      \
        }                                                                                          \
    } else {                                                                                       \
        fill_normal(n->name, B, width, seed, stream, step);                                        \
    }
#define FLAME_NOISE_FILL(name, stream, kind, width) FLAME_NOISE_FILL_##kind(name, stream, width)
    FLAME_NOISE_ARRAYS(FLAME_NOISE_FILL)
#undef FLAME_NOISE_FILL
    n->have_batch = false;
}

/* ------------------------------------------------------------------ bundle files */
struct NoiseFile {
    hid_t file;
    bool writing, with_batch;
    int64_t count, first_update;
    UpdateNoise shape;
    char path[512];
};

typedef struct {
    const char *name;
    float *ptr;
    int rank; /* per-update rank (batch dim included) */
    hsize_t dims[4];
} NoiseArrayView;

/* every dataset of one update: the noise arrays, then (optionally) the batch */
static int views(const UpdateNoise *n, NoiseArrayView *v, bool with_batch) {
    int c = 0;
#define FLAME_NOISE_VIEW(nm, stream, kind, width)                                                  \
    v[c].name = #nm;                                                                               \
    v[c].ptr = n->nm;                                                                              \
    v[c].dims[0] = (hsize_t)n->B;                                                                  \
    v[c].rank = 1 + row_shape(n, #nm, v[c].dims + 1);                                              \
    c++;
    FLAME_NOISE_ARRAYS(FLAME_NOISE_VIEW)
#undef FLAME_NOISE_VIEW
    if (with_batch) {
        struct {
            const char *name;
            float *ptr;
            int w;
        } b[5] = {{"batch/obs", n->obs, n->S},
                  {"batch/act", n->act, n->D},
                  {"batch/rew", n->rew, 0},
                  {"batch/next_obs", n->next_obs, n->S},
                  {"batch/done", n->done, 0}};
        for (int i = 0; i < 5; i++) {
            v[c].name = b[i].name;
            v[c].ptr = b[i].ptr;
            v[c].dims[0] = (hsize_t)n->B;
            v[c].dims[1] = (hsize_t)b[i].w;
            v[c].rank = b[i].w ? 2 : 1;
            c++;
        }
    }
    return c;
}

int noise_file_create(const char *path, const UpdateNoise *shape, bool with_batch,
                      int64_t first_update, NoiseFile **out) {
    h5_silence();
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) {
        return flame_errorf(FLAME_EINPUT, "%s: cannot create the noise bundle", path);
    }
    NoiseFile *nf = flame_calloc(1, sizeof *nf);
    nf->file = f;
    nf->writing = true;
    nf->with_batch = with_batch;
    nf->first_update = first_update;
    nf->shape = *shape;
    snprintf(nf->path, sizeof nf->path, "%s", path);
    h5_attr_i64(f, "first_update", first_update);
    h5_attr_i64(f, "B", shape->B);
    h5_attr_i64(f, "S", shape->S);
    h5_attr_i64(f, "D", shape->D);
    h5_attr_i64(f, "K", shape->K);
    h5_attr_i64(f, "Np", shape->Np);
    h5_attr_i64(f, "P", shape->P);
    NoiseArrayView v[24];
    int nv = views(shape, v, with_batch);
    for (int i = 0; i < nv; i++) {
        hsize_t dims[5] = {0}, maxd[5] = {H5S_UNLIMITED}, chunk[5] = {1};
        for (int k = 0; k < v[i].rank; k++) {
            dims[k + 1] = maxd[k + 1] = chunk[k + 1] = v[i].dims[k];
        }
        hid_t sp = H5Screate_simple(v[i].rank + 1, dims, maxd);
        hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
        H5Pset_chunk(dcpl, v[i].rank + 1, chunk);
        hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
        H5Pset_create_intermediate_group(lcpl, 1);
        hid_t ds = H5Dcreate2(f, v[i].name, H5T_NATIVE_FLOAT, sp, lcpl, dcpl, H5P_DEFAULT);
        H5Pclose(lcpl);
        H5Pclose(dcpl);
        H5Sclose(sp);
        if (ds < 0) {
            noise_file_close(nf);
            return flame_errorf(FLAME_ERUNTIME, "%s: cannot create dataset %s", path, v[i].name);
        }
        H5Dclose(ds);
    }
    *out = nf;
    return FLAME_OK;
}

int noise_file_append(NoiseFile *nf, const UpdateNoise *n) {
    NoiseArrayView v[24];
    int nv = views(n, v, nf->with_batch);
    for (int i = 0; i < nv; i++) {
        hid_t ds = H5Dopen2(nf->file, v[i].name, H5P_DEFAULT);
        hsize_t dims[5] = {(hsize_t)nf->count + 1}, start[5] = {(hsize_t)nf->count}, cnt[5] = {1};
        for (int k = 0; k < v[i].rank; k++) {
            dims[k + 1] = cnt[k + 1] = v[i].dims[k];
            start[k + 1] = 0;
        }
        H5Dset_extent(ds, dims);
        hid_t fs = H5Dget_space(ds);
        H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, cnt, NULL);
        hid_t ms = H5Screate_simple(v[i].rank + 1, cnt, NULL);
        herr_t e = H5Dwrite(ds, H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, v[i].ptr);
        H5Sclose(ms);
        H5Sclose(fs);
        H5Dclose(ds);
        if (e < 0) {
            return flame_errorf(FLAME_ERUNTIME, "%s: cannot append to %s", nf->path, v[i].name);
        }
    }
    nf->count++;
    return FLAME_OK;
}

int noise_file_open(const char *path, const UpdateNoise *shape, NoiseFile **out) {
    h5_silence();
    if (fs_check_regular(path, "noise bundle (backend.noise_file)") != FLAME_OK) {
        return FLAME_EINPUT; /* a FIFO or a device would block HDF5 */
    }
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        return flame_errorf(FLAME_EINPUT,
                            "%s: cannot open the noise bundle (missing or not HDF5); check "
                            "backend.noise_file",
                            path);
    }
    struct {
        const char *name;
        int want;
    } d[6] = {{"B", shape->B}, {"S", shape->S},   {"D", shape->D},
              {"K", shape->K}, {"Np", shape->Np}, {"P", shape->P}};
    for (int i = 0; i < 6; i++) {
        int64_t v;
        if (h5_attr_read_i64(f, d[i].name, &v) != FLAME_OK || v != d[i].want) {
            H5Fclose(f);
            return flame_errorf(FLAME_EINPUT,
                                "%s: noise bundle dimension %s is not %d (the run's config); "
                                "record the bundle with the same batch size, K, particles, "
                                "probes and env",
                                path, d[i].name, d[i].want);
        }
    }
    NoiseFile *nf = flame_calloc(1, sizeof *nf);
    nf->file = f;
    nf->shape = *shape;
    nf->with_batch = h5_exists(f, "batch/obs");
    snprintf(nf->path, sizeof nf->path, "%s", path);
    if (H5Aexists(f, "first_update") > 0 &&
        (h5_attr_read_i64(f, "first_update", &nf->first_update) != FLAME_OK ||
         nf->first_update < 0)) {
        noise_file_close(nf);
        return flame_errorf(FLAME_EINPUT, "%s: the noise bundle's first_update attribute is invalid",
                            path);
    }
    hsize_t dims[8];
    if (h5_dims(f, "next_z", dims) < 1) {
        noise_file_close(nf);
        return flame_errorf(FLAME_EINPUT, "%s: not a noise bundle (no next_z dataset)", path);
    }
    nf->count = (int64_t)dims[0];
    *out = nf;
    return FLAME_OK;
}

int noise_file_read(NoiseFile *nf, int64_t update, UpdateNoise *n) {
    int64_t index = update - nf->first_update;
    if (index < 0 || index >= nf->count) {
        return flame_errorf(FLAME_EINPUT,
                            "%s: the noise bundle holds updates %lld to %lld, update %lld was "
                            "requested",
                            nf->path, (long long)nf->first_update,
                            (long long)(nf->first_update + nf->count - 1), (long long)update);
    }
    NoiseArrayView v[24];
    int nv = views(n, v, nf->with_batch);
    for (int i = 0; i < nv; i++) {
        hid_t ds = H5Dopen2(nf->file, v[i].name, H5P_DEFAULT);
        if (ds < 0) {
            return flame_errorf(FLAME_EINPUT, "%s: dataset %s is missing", nf->path, v[i].name);
        }
        hid_t fs = H5Dget_space(ds);
        int rank = H5Sget_simple_extent_ndims(fs);
        hsize_t have[5];
        H5Sget_simple_extent_dims(fs, have, NULL);
        bool ok = rank == v[i].rank + 1;
        for (int k = 0; ok && k < v[i].rank; k++) {
            ok = have[k + 1] == v[i].dims[k];
        }
        herr_t e = -1;
        if (ok) {
            hsize_t start[5] = {(hsize_t)index}, cnt[5] = {1};
            for (int k = 0; k < v[i].rank; k++) {
                cnt[k + 1] = v[i].dims[k];
                start[k + 1] = 0;
            }
            H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, cnt, NULL);
            hid_t ms = H5Screate_simple(v[i].rank + 1, cnt, NULL);
            e = H5Dread(ds, H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, v[i].ptr);
            H5Sclose(ms);
        }
        H5Sclose(fs);
        H5Dclose(ds);
        if (!ok || e < 0) {
            return flame_errorf(FLAME_EINPUT, "%s: dataset %s has the wrong shape or type",
                                nf->path, v[i].name);
        }
    }
    n->have_batch = nf->with_batch;
    return FLAME_OK;
}

int64_t noise_file_count(const NoiseFile *f) {
    return f->count;
}

void noise_file_close(NoiseFile *f) {
    if (!f) {
        return;
    }
    if (f->file >= 0) {
        H5Fclose(f->file);
    }
    flame_free(f);
}
