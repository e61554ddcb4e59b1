/* h5util.c: HDF5 helpers (see include/flame/h5util.h). */
#include "flame/h5util.h"

#include <stdlib.h>
#include <string.h>

#include "flame/check.h"

void h5_silence(void) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

bool h5_exists(hid_t loc, const char *path) {
    /* check each component so a missing intermediate group is not an error */
    char buf[512];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf; *p; p++) {
        if (*p == '/' && p != buf) {
            *p = '\0';
            if (H5Lexists(loc, buf, H5P_DEFAULT) <= 0) {
                return false;
            }
            *p = '/';
        }
    }
    return H5Lexists(loc, buf, H5P_DEFAULT) > 0;
}

hid_t h5_group(hid_t loc, const char *path) {
    if (h5_exists(loc, path)) {
        return H5Gopen2(loc, path, H5P_DEFAULT);
    }
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t g = H5Gcreate2(loc, path, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    H5Pclose(lcpl);
    return g;
}

/* creates dataset `name` (intermediate groups too) with creation properties dcpl and writes it */
static int write_dataset(hid_t loc, const char *name, hid_t type, int rank, const hsize_t *dims,
                         const void *data, hid_t dcpl) {
    hid_t space = rank == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(rank, dims, NULL);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t ds = H5Dcreate2(loc, name, type, space, lcpl, dcpl, H5P_DEFAULT);
    H5Pclose(lcpl);
    int rc = FLAME_OK;
    if (ds < 0 || H5Dwrite(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0) {
        rc = flame_errorf(FLAME_ERUNTIME, "cannot write HDF5 dataset '%s'", name);
    }
    if (ds >= 0) {
        H5Dclose(ds);
    }
    H5Sclose(space);
    /* a failed write to the disk is reported by the file (h5file.c), naming it and the errno */
    return h5_file_status(loc) != FLAME_OK ? FLAME_ERUNTIME : rc;
}

int h5_write(hid_t loc, const char *name, hid_t type, int rank, const hsize_t *dims,
             const void *data) {
    return write_dataset(loc, name, type, rank, dims, data, H5P_DEFAULT);
}

int h5_write_gz(hid_t loc, const char *name, hid_t type, int rank, const hsize_t *dims,
                const void *data, int level) {
    if (rank == 0 || dims[0] == 0) {
        return h5_write(loc, name, type, rank, dims, data);
    }
    /* chunks of about 1 MiB along the first dimension */
    size_t row = H5Tget_size(type);
    for (int i = 1; i < rank; i++) {
        row *= (size_t)dims[i];
    }
    hsize_t chunk[8];
    for (int i = 0; i < rank && i < 8; i++) {
        chunk[i] = dims[i];
    }
    hsize_t rows = (hsize_t)((1u << 20) / (row ? row : 1));
    chunk[0] = rows < 1 ? 1 : (rows < dims[0] ? rows : dims[0]);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, rank, chunk);
    H5Pset_deflate(dcpl, (unsigned)level);
    int rc = write_dataset(loc, name, type, rank, dims, data, dcpl);
    H5Pclose(dcpl);
    return rc;
}

int h5_dims(hid_t loc, const char *name, hsize_t *dims) {
    if (!h5_exists(loc, name)) {
        return -1;
    }
    hid_t ds = H5Dopen2(loc, name, H5P_DEFAULT);
    if (ds < 0) {
        return -1;
    }
    hid_t sp = H5Dget_space(ds);
    int rank = H5Sget_simple_extent_ndims(sp);
    if (rank > 8) {
        rank = -1;
    } else if (rank >= 0) {
        H5Sget_simple_extent_dims(sp, dims, NULL);
    }
    H5Sclose(sp);
    H5Dclose(ds);
    return rank;
}

static void dims_text(char *buf, size_t n, int rank, const hsize_t *dims) {
    size_t len = (size_t)snprintf(buf, n, "(");
    for (int i = 0; i < rank && len < n; i++) {
        len += (size_t)snprintf(buf + len, n - len, "%s%llu", i ? ", " : "",
                                (unsigned long long)dims[i]);
    }
    if (len < n) {
        snprintf(buf + len, n - len, ")");
    }
}

int h5_read(hid_t loc, const char *name, hid_t mem_type, int rank, const hsize_t *dims, void *data,
            const char *what) {
    hsize_t have[8];
    int r = h5_dims(loc, name, have);
    if (r < 0) {
        return flame_errorf(FLAME_EINPUT, "%s: dataset '%s' is missing", what, name);
    }
    bool ok = r == rank;
    for (int i = 0; ok && i < rank; i++) {
        ok = have[i] == dims[i];
    }
    if (!ok) {
        char a[128], b[128];
        dims_text(a, sizeof a, r, have);
        dims_text(b, sizeof b, rank, dims);
        return flame_errorf(FLAME_EINPUT, "%s: dataset '%s' has shape %s, expected %s", what, name,
                            a, b);
    }
    hid_t ds = H5Dopen2(loc, name, H5P_DEFAULT);
    herr_t e = H5Dread(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    H5Dclose(ds);
    if (e < 0) {
        return flame_errorf(FLAME_EINPUT, "%s: cannot read dataset '%s' (wrong type or corrupt)",
                            what, name);
    }
    return FLAME_OK;
}

static int attr_write(hid_t loc, const char *name, hid_t type, const void *v) {
    if (H5Aexists(loc, name) > 0) {
        H5Adelete(loc, name);
    }
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(loc, name, type, sp, H5P_DEFAULT, H5P_DEFAULT);
    int rc = (a >= 0 && H5Awrite(a, type, v) >= 0)
                 ? FLAME_OK
                 : flame_errorf(FLAME_ERUNTIME, "cannot write HDF5 attribute '%s'", name);
    if (a >= 0) {
        H5Aclose(a);
    }
    H5Sclose(sp);
    return h5_file_status(loc) != FLAME_OK ? FLAME_ERUNTIME : rc;
}

int h5_attr_str(hid_t loc, const char *name, const char *value) {
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, strlen(value) + 1 > 1 ? strlen(value) + 1 : 1);
    H5Tset_strpad(t, H5T_STR_NULLTERM);
    H5Tset_cset(t, H5T_CSET_UTF8);
    int rc = attr_write(loc, name, t, value);
    H5Tclose(t);
    return rc;
}

int h5_attr_i64(hid_t loc, const char *name, int64_t value) {
    return attr_write(loc, name, H5T_NATIVE_INT64, &value);
}

int h5_attr_f64(hid_t loc, const char *name, double value) {
    return attr_write(loc, name, H5T_NATIVE_DOUBLE, &value);
}

char *h5_attr_read_str(hid_t loc, const char *name) {
    if (H5Aexists(loc, name) <= 0) {
        return NULL;
    }
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    hid_t ft = H5Aget_type(a);
    char *out = NULL;
    if (H5Tget_class(ft) == H5T_STRING) {
        if (H5Tis_variable_str(ft) > 0) {
            char *v = NULL;
            hid_t mt = H5Tcopy(H5T_C_S1);
            H5Tset_size(mt, H5T_VARIABLE);
            H5Tset_cset(mt, H5Tget_cset(ft));
            if (H5Aread(a, mt, &v) >= 0 && v) {
                out = strdup(v);
                H5free_memory(v);
            }
            H5Tclose(mt);
        } else {
            size_t n = H5Tget_size(ft);
            out = calloc(n + 1, 1);
            hid_t mt = H5Tcopy(H5T_C_S1);
            H5Tset_size(mt, n + 1);
            H5Tset_cset(mt, H5Tget_cset(ft)); /* HDF5 does not convert between character sets */
            if (H5Aread(a, mt, out) < 0) {
                free(out);
                out = NULL;
            }
            H5Tclose(mt);
        }
    }
    H5Tclose(ft);
    H5Aclose(a);
    return out;
}

int h5_attr_read_i64(hid_t loc, const char *name, int64_t *value) {
    if (H5Aexists(loc, name) <= 0) {
        return flame_errorf(FLAME_EINPUT, "attribute '%s' is missing", name);
    }
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    herr_t e = H5Aread(a, H5T_NATIVE_INT64, value);
    H5Aclose(a);
    return e < 0 ? flame_errorf(FLAME_EINPUT, "attribute '%s' is not an integer", name) : FLAME_OK;
}

hid_t h5_bool_type(void) {
    hid_t t = H5Tenum_create(H5T_STD_I8LE);
    int8_t f = 0, tr = 1;
    H5Tenum_insert(t, "FALSE", &f);
    H5Tenum_insert(t, "TRUE", &tr);
    return t;
}
