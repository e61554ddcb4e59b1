/*
 * h5file.c: the files flame writes as HDF5 (see include/flame/h5util.h: h5_file_*).
 *
 * Why a file driver of our own: when HDF5 1.10 fails to close a file (its final flush hits a full
 * disk or a file size limit), it frees the file's state but leaves the file's id registered, and
 * the library's exit handler later closes that id again: the process crashes at exit after any
 * failed write (HDFFV-11052, fixed only in HDF5 1.14). With sec2, every writer could end that way.
 *
 * This driver does the POSIX I/O of sec2 (pread/pwrite, EOA/EOF bookkeeping, ftruncate at close,
 * flock like sec2), except that it never reports a failed write, truncate or close to the library:
 * it keeps the first error (its errno), discards every later write to that file, and lets HDF5
 * finish normally. Every id is therefore released, and the writer learns about the failure from
 * h5_file_status() and h5_file_close(), which name the file and the errno text. Closing fsyncs the
 * file first, so a file renamed into place after h5_file_close() returned FLAME_OK is on disk.
 * Reads keep sec2's semantics (zeros past the end of the file; errors reported).
 * Files written this way are ordinary HDF5 files (no driver information is stored).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "flame/check.h"
#include "flame/fsutil.h"
#include "flame/h5util.h"

#if H5_VERSION_GE(1, 13, 2)
#include <H5FDdevelop.h>
#endif

#define H5OUT_MAXADDR ((haddr_t)INT64_MAX)

typedef struct {
    H5FD_t pub; /* HDF5's part: must come first */
    int fd;
    haddr_t eoa, eof;
    dev_t dev;
    ino_t ino;
    int err; /* errno of the first failed write, truncate or sync (0: none) */
} H5Out;

/* errno of the last failed open, and the error the last close found (this thread) */
static _Thread_local int g_open_errno;
static _Thread_local int g_close_errno;

static hid_t g_driver = H5I_INVALID_HID;

static herr_t out_terminate(void) {
    g_driver = H5I_INVALID_HID;
    return 0;
}

static void out_fail(H5Out *f, int err) {
    if (f->err == 0) {
        f->err = err ? err : EIO;
    }
}

static H5FD_t *out_open(const char *name, unsigned flags, hid_t fapl, haddr_t maxaddr) {
    (void)fapl;
    if (!name || !*name || maxaddr == 0 || maxaddr == HADDR_UNDEF || maxaddr > H5OUT_MAXADDR) {
        g_open_errno = EINVAL;
        return NULL;
    }
    int o = (flags & H5F_ACC_RDWR) ? O_RDWR : O_RDONLY;
    o |= (flags & H5F_ACC_TRUNC) ? O_TRUNC : 0;
    o |= (flags & H5F_ACC_CREAT) ? O_CREAT : 0;
    o |= (flags & H5F_ACC_EXCL) ? O_EXCL : 0;
    int fd = open(name, o | O_CLOEXEC | O_NOCTTY, 0666);
    if (fd < 0) {
        g_open_errno = errno;
        return NULL;
    }
    struct stat st;
    int ferr = fstat(fd, &st) != 0 ? errno : (S_ISREG(st.st_mode) ? 0 : EINVAL);
    if (ferr) {
        g_open_errno = ferr;
        close(fd);
        return NULL;
    }
    H5Out *f = calloc(1, sizeof *f);
    if (!f) {
        g_open_errno = ENOMEM;
        close(fd);
        return NULL;
    }
    f->fd = fd;
    f->eof = (haddr_t)st.st_size;
    f->dev = st.st_dev;
    f->ino = st.st_ino;
    g_open_errno = 0;
    return &f->pub;
}

static herr_t out_close(H5FD_t *file) {
    H5Out *f = (H5Out *)file;
    /* durable before the caller renames it into place; a failed sync is a failed write */
    if (f->err == 0 && fsync(f->fd) != 0 && errno != EINVAL && errno != EROFS) {
        out_fail(f, errno);
    }
    if (close(f->fd) != 0) {
        out_fail(f, errno);
    }
    g_close_errno = f->err;
    free(f);
    return 0; /* never fail: HDF5 must release the file */
}

static int out_cmp(const H5FD_t *a, const H5FD_t *b) {
    const H5Out *x = (const H5Out *)a, *y = (const H5Out *)b;
    if (x->dev != y->dev) {
        return x->dev < y->dev ? -1 : 1;
    }
    if (x->ino != y->ino) {
        return x->ino < y->ino ? -1 : 1;
    }
    return 0;
}

static herr_t out_query(const H5FD_t *file, unsigned long *flags) {
    (void)file;
    /* the I/O optimisations sec2 allows (no POSIX handle promise: get_handle returns the driver) */
    *flags = H5FD_FEAT_AGGREGATE_METADATA | H5FD_FEAT_ACCUMULATE_METADATA | H5FD_FEAT_DATA_SIEVE |
             H5FD_FEAT_AGGREGATE_SMALLDATA;
    return 0;
}

static haddr_t out_get_eoa(const H5FD_t *file, H5FD_mem_t type) {
    (void)type;
    return ((const H5Out *)file)->eoa;
}

static herr_t out_set_eoa(H5FD_t *file, H5FD_mem_t type, haddr_t addr) {
    (void)type;
    ((H5Out *)file)->eoa = addr;
    return 0;
}

static haddr_t out_get_eof(const H5FD_t *file, H5FD_mem_t type) {
    (void)type;
    return ((const H5Out *)file)->eof;
}

static herr_t out_get_handle(H5FD_t *file, hid_t fapl, void **handle) {
    (void)fapl;
    *handle = file;
    return 0;
}

static herr_t out_read(H5FD_t *file, H5FD_mem_t type, hid_t dxpl, haddr_t addr, size_t size,
                       void *buf) {
    (void)type, (void)dxpl;
    H5Out *f = (H5Out *)file;
    if (addr == HADDR_UNDEF || addr > H5OUT_MAXADDR || size > H5OUT_MAXADDR - addr) {
        return -1;
    }
    unsigned char *p = buf;
    while (size > 0) {
        ssize_t k = pread(f->fd, p, size, (off_t)addr);
        if (k < 0 && errno == EINTR) {
            continue;
        }
        if (k < 0) {
            return -1;
        }
        if (k == 0) {
            memset(p, 0, size); /* past the end of the file: zeros, as sec2 */
            break;
        }
        p += k;
        addr += (haddr_t)k;
        size -= (size_t)k;
    }
    return 0;
}

static herr_t out_write(H5FD_t *file, H5FD_mem_t type, hid_t dxpl, haddr_t addr, size_t size,
                        const void *buf) {
    (void)type, (void)dxpl;
    H5Out *f = (H5Out *)file;
    if (f->err) {
        return 0; /* the file failed already: nothing more reaches the disk */
    }
    if (addr == HADDR_UNDEF || addr > H5OUT_MAXADDR || size > H5OUT_MAXADDR - addr) {
        out_fail(f, EINVAL);
        return 0;
    }
    const unsigned char *p = buf;
    while (size > 0) {
        ssize_t k = pwrite(f->fd, p, size, (off_t)addr);
        if (k < 0 && errno == EINTR) {
            continue;
        }
        if (k <= 0) {
            out_fail(f, k < 0 ? errno : EIO);
            return 0;
        }
        p += k;
        addr += (haddr_t)k;
        size -= (size_t)k;
    }
    if (addr > f->eof) {
        f->eof = addr;
    }
    return 0;
}

static herr_t out_truncate(H5FD_t *file, hid_t dxpl, hbool_t closing) {
    (void)dxpl, (void)closing;
    H5Out *f = (H5Out *)file;
    if (f->err == 0 && f->eoa != f->eof) {
        if (ftruncate(f->fd, (off_t)f->eoa) != 0) {
            out_fail(f, errno);
        } else {
            f->eof = f->eoa;
        }
    }
    return 0;
}

static herr_t out_lock(H5FD_t *file, hbool_t rw) {
    H5Out *f = (H5Out *)file;
    if (flock(f->fd, (rw ? LOCK_EX : LOCK_SH) | LOCK_NB) != 0 && errno != ENOSYS) {
        g_open_errno = errno; /* another process holds the file (sec2 refuses it too) */
        return -1;
    }
    return 0;
}

static herr_t out_unlock(H5FD_t *file) {
    flock(((H5Out *)file)->fd, LOCK_UN);
    return 0;
}

static const H5FD_class_t out_class = {
#if H5_VERSION_GE(1, 13, 2)
    .version = H5FD_CLASS_VERSION,
    .value = (H5FD_class_value_t)0x2f1a,
#endif
    .name = "flame-posix",
    .maxaddr = H5OUT_MAXADDR,
    .fc_degree = H5F_CLOSE_STRONG,
    .terminate = out_terminate,
    .open = out_open,
    .close = out_close,
    .cmp = out_cmp,
    .query = out_query,
    .get_eoa = out_get_eoa,
    .set_eoa = out_set_eoa,
    .get_eof = out_get_eof,
    .get_handle = out_get_handle,
    .read = out_read,
    .write = out_write,
    .truncate = out_truncate,
    .lock = out_lock,
    .unlock = out_unlock,
    .fl_map = H5FD_FLMAP_DICHOTOMY,
};

/* a file access property list with this driver (caller closes it) */
static hid_t out_fapl(void) {
    if (g_driver < 0 || H5Iis_valid(g_driver) <= 0) {
        g_driver = H5FDregister(&out_class);
        FLAME_CHECK(g_driver >= 0, "cannot register the HDF5 file driver");
    }
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    FLAME_CHECK(fapl >= 0 && H5Pset_driver(fapl, g_driver, NULL) >= 0 &&
                    H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) >= 0,
                "cannot set up the HDF5 file driver");
    return fapl;
}

/* the driver's state of the file that holds `loc`, NULL when that file is not ours */
static H5Out *out_of(hid_t loc) {
    hid_t fid = H5Iget_file_id(loc);
    if (fid < 0) {
        return NULL;
    }
    H5Out *f = NULL;
    hid_t fapl = H5Fget_access_plist(fid);
    if (fapl >= 0 && g_driver >= 0 && H5Pget_driver(fapl) == g_driver) {
        void *h = NULL;
        if (H5Fget_vfd_handle(fid, H5P_DEFAULT, &h) >= 0) {
            f = h;
        }
    }
    if (fapl >= 0) {
        H5Pclose(fapl);
    }
    H5Fclose(fid);
    return f;
}

static int open_common(const char *path, unsigned flags, hid_t fcpl, hid_t *out) {
    h5_silence();
    hid_t fapl = out_fapl();
    g_open_errno = 0;
    hid_t f = (flags & H5F_ACC_CREAT) ? H5Fcreate(path, flags & ~H5F_ACC_CREAT, fcpl, fapl)
                                      : H5Fopen(path, flags, fapl);
    H5Pclose(fapl);
    *out = f;
    if (f >= 0) {
        return FLAME_OK;
    }
    char ab[160];
    int err = g_open_errno;
    fs_set_errno(err);
    if (err == EWOULDBLOCK) {
        return flame_errorf(FLAME_EINPUT,
                            "%s: the file is locked by another process that has it open; close "
                            "that program or wait until it is done",
                            fs_abbrev(path, ab, sizeof ab));
    }
    if (err) {
        return flame_errorf(fs_errno_code(err), "%s: cannot %s the file (%s)",
                            fs_abbrev(path, ab, sizeof ab),
                            (flags & H5F_ACC_CREAT) ? "create" : "open", strerror(err));
    }
    return flame_errorf(FLAME_EINPUT, "%s: cannot %s the file (not a readable HDF5 file)",
                        fs_abbrev(path, ab, sizeof ab),
                        (flags & H5F_ACC_CREAT) ? "create" : "open");
}

int h5_file_create(const char *path, bool exclusive, hid_t fcpl, hid_t *out) {
    unsigned flags = H5F_ACC_CREAT | (exclusive ? H5F_ACC_EXCL : H5F_ACC_TRUNC);
    return open_common(path, flags, fcpl == H5I_INVALID_HID ? H5P_DEFAULT : fcpl, out);
}

int h5_file_open_rw(const char *path, hid_t *out) {
    return open_common(path, H5F_ACC_RDWR, H5P_DEFAULT, out);
}

int h5_file_status(hid_t loc) {
    H5Out *f = out_of(loc);
    if (!f || f->err == 0) {
        return FLAME_OK;
    }
    char name[FS_PATH_MAX] = "?", ab[160];
    H5Fget_name(loc, name, sizeof name);
    fs_set_errno(f->err);
    return flame_errorf(FLAME_ERUNTIME, "%s: cannot write the file (%s)",
                        fs_abbrev(name, ab, sizeof ab), strerror(f->err));
}

int h5_file_close(hid_t f) {
    if (f < 0) {
        return FLAME_OK;
    }
    char name[FS_PATH_MAX] = "?", ab[160];
    H5Fget_name(f, name, sizeof name);
    H5Out *o = out_of(f);
    g_close_errno = 0;
    herr_t e = H5Fclose(f);
    int err = g_close_errno;
    fs_set_errno(err);
    if (!o) {
        return e < 0 ? flame_errorf(FLAME_ERUNTIME, "%s: cannot close the file",
                                    fs_abbrev(name, ab, sizeof ab))
                     : FLAME_OK;
    }
    if (err) {
        return flame_errorf(FLAME_ERUNTIME, "%s: cannot write the file (%s)",
                            fs_abbrev(name, ab, sizeof ab), strerror(err));
    }
    if (e < 0) {
        return flame_errorf(FLAME_ERUNTIME, "%s: cannot finish writing the file (HDF5 error)",
                            fs_abbrev(name, ab, sizeof ab));
    }
    return FLAME_OK;
}
