/*
 * h5util.h: small wrappers over the HDF5 C API used by every writer and reader in the project
 * (metrics, checkpoints, noise bundles, datasets). They never print HDF5's error stack; failures are
 * reported through flame_errorf() with the file and object named.
 *
 * Files the project writes are created and closed with h5_file_create / h5_file_open_rw /
 * h5_file_close (src/io/h5file.c): a failed write (full disk, file size limit, I/O error) never
 * leaves an HDF5 id behind, so the process never crashes at exit, and the failure is reported
 * with the file's name and the errno text by h5_write*, h5_attr_*, h5_file_status and
 * h5_file_close. A writer removes what it wrote after any failure.
 *
 * defines: h5_silence h5_file_create h5_file_open_rw h5_file_status h5_file_close h5_write
 *          h5_write_gz h5_read h5_dims h5_exists h5_attr_str h5_attr_i64 h5_attr_f64
 *          h5_attr_read_str h5_attr_read_i64 h5_group h5_bool_type
 */
#ifndef FLAME_H5UTIL_H
#define FLAME_H5UTIL_H

#include <hdf5.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Turns off HDF5's automatic error printing (call once at start-up; idempotent). */
void h5_silence(void);

/* Creates `path` for writing (exclusive: fail when it exists; otherwise truncate it), with the
   file creation property list fcpl (H5P_DEFAULT or H5I_INVALID_HID: the default). On failure *out
   is negative and the message names the file and the errno text (FLAME_EINPUT for a location
   that cannot be used, FLAME_ERUNTIME for a full or failing device). */
int h5_file_create(const char *path, bool exclusive, hid_t fcpl, hid_t *out);

/* Opens an existing file to modify it (same error reporting). */
int h5_file_open_rw(const char *path, hid_t *out);

/* FLAME_ERUNTIME, naming the file and the errno text, once a write to the file that holds `loc`
   (opened by h5_file_create or h5_file_open_rw) has failed; FLAME_OK otherwise. */
int h5_file_status(hid_t loc);

/* Closes a file from h5_file_create / h5_file_open_rw (with every object still open in it),
   syncs it to disk and reports the first write error of its whole life (FLAME_ERUNTIME naming the
   file and the errno text). The id is released in every case. */
int h5_file_close(hid_t f);

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
