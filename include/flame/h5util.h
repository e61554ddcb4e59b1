/*
 * h5util.h: small wrappers over the HDF5 C API used by every writer and reader in the project
 * (metrics, checkpoints, noise bundles, datasets). They never print HDF5's error stack; failures are
 * reported through flame_errorf() with the file and object named.
 *
 * defines: h5_silence h5_write h5_write_gz h5_read h5_read_alloc h5_dims h5_exists h5_attr_str h5_attr_i64
 *          h5_attr_f64 h5_attr_read_str h5_attr_read_i64 h5_group h5_bool_type H5_CHECK
 */
#ifndef FLAME_H5UTIL_H
#define FLAME_H5UTIL_H

#include <hdf5.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Turns off HDF5's automatic error printing (call once at start-up; idempotent). */
void h5_silence(void);

/* Writes a contiguous dataset `name` (intermediate groups are created) of the given type and shape. */
int h5_write(hid_t loc, const char *name, hid_t type, int rank, const hsize_t *dims,
             const void *data);

/* The same, chunked along the first dimension and gzip-compressed at `level` (1..9). */
int h5_write_gz(hid_t loc, const char *name, hid_t type, int rank, const hsize_t *dims,
                const void *data, int level);

/* Reads dataset `name` into `data`; its shape must equal dims[0..rank) exactly (FLAME_EINPUT with a
   message naming the dataset and both shapes otherwise). `what` names the file in messages. */
int h5_read(hid_t loc, const char *name, hid_t mem_type, int rank, const hsize_t *dims, void *data,
            const char *what);

/* Shape of dataset `name`: returns its rank (or -1 when absent), fills dims (up to 8). */
int h5_dims(hid_t loc, const char *name, hsize_t *dims);

bool h5_exists(hid_t loc, const char *path);

/* Opens or creates the group `path` (with intermediate groups). */
hid_t h5_group(hid_t loc, const char *path);

int h5_attr_str(hid_t loc, const char *name, const char *value);
int h5_attr_i64(hid_t loc, const char *name, int64_t value);
int h5_attr_f64(hid_t loc, const char *name, double value);
/* Reads a string attribute (fixed or variable length); caller frees with free(). NULL if absent. */
char *h5_attr_read_str(hid_t loc, const char *name);
int h5_attr_read_i64(hid_t loc, const char *name, int64_t *value);

/* The boolean type h5py reads as numpy bool: enum over int8 with FALSE = 0, TRUE = 1.
   Caller closes it with H5Tclose. */
hid_t h5_bool_type(void);

#endif
