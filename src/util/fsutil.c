/* fsutil.c: files and paths (see include/flame/fsutil.h). */
#include "flame/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "flame/check.h"

#define ABBREV_KEEP 40 /* bytes kept at each end of an abbreviated path */

static _Thread_local int g_last_errno;

int fs_last_errno(void) {
    return g_last_errno;
}

void fs_set_errno(int err) {
    g_last_errno = err;
}

const char *fs_last_reason(char *buf, size_t n) {
    snprintf(buf, n, "%s", g_last_errno ? strerror(g_last_errno) : flame_last_error());
    return buf;
}

/* flame_errorf that also records the errno behind the failure (0: none) */
static int fail(int code, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(int code, int err, const char *fmt, ...) {
    char msg[FLAME_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    g_last_errno = err;
    return flame_errorf(code, "%s", msg);
}

const char *fs_abbrev(const char *s, char *buf, size_t n) {
    size_t len = strlen(s);
    if (len <= 2 * ABBREV_KEEP + 16) {
        snprintf(buf, n, "%s", s);
    } else {
        snprintf(buf, n, "%.*s...(%zu bytes)...%s", ABBREV_KEEP, s, len, s + len - ABBREV_KEEP);
    }
    return buf;
}

int fs_printf(char *dst, size_t n, const char *what, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(dst, n, fmt, ap);
    va_end(ap);
    if (k >= 0 && (size_t)k < n && (size_t)k < FS_PATH_MAX) {
        return FLAME_OK;
    }
    /* the whole path for the message */
    char *full = NULL;
    va_start(ap, fmt);
    int m = vasprintf(&full, fmt, ap);
    va_end(ap);
    char ab[160];
    int rc = fail(FLAME_EINPUT, 0,
                          "%s '%s' would be %d bytes, over the limit of %d bytes of a path "
                          "(PATH_MAX); use a shorter path",
                          what, m >= 0 ? fs_abbrev(full, ab, sizeof ab) : "?", k,
                          (n < FS_PATH_MAX ? (int)n : FS_PATH_MAX) - 1);
    free(full);
    return rc;
}

int fs_check_path(const char *path, size_t reserve, const char *what) {
    char ab[160], nb[160];
    size_t len = strlen(path);
    if (len == 0) {
        return fail(FLAME_EINPUT, 0, "%s is empty; give a path", what);
    }
    if (len + reserve >= FS_PATH_MAX) {
        return fail(FLAME_EINPUT, 0,
                            "%s '%s' is %zu bytes; with the %zu bytes flame appends to it, it "
                            "exceeds the limit of %d bytes of a path (PATH_MAX); use a shorter path",
                            what, fs_abbrev(path, ab, sizeof ab), len, reserve, FS_PATH_MAX - 1);
    }
    for (const char *p = path; *p;) {
        size_t k = strcspn(p, "/");
        if (k > FS_NAME_MAX) {
            char name[FS_PATH_MAX];
            snprintf(name, sizeof name, "%.*s", (int)k, p);
            return fail(FLAME_EINPUT, 0,
                                "%s '%s': the name '%s' is %zu bytes, over the limit of %d bytes "
                                "of one name in a path (NAME_MAX); use a shorter name",
                                what, fs_abbrev(path, ab, sizeof ab), fs_abbrev(name, nb, sizeof nb),
                                k, FS_NAME_MAX);
        }
        p += k;
        while (*p == '/') {
            p++;
        }
    }
    return FLAME_OK;
}

bool fs_name_component_ok(const char *name) {
    return name[0] && strcmp(name, ".") && strcmp(name, "..") && !strchr(name, '/');
}

int fs_errno_code(int err) {
    switch (err) {
        case ENOSPC:
        case EDQUOT:
        case EFBIG:
        case EIO:
            return FLAME_ERUNTIME;
        default:
            return FLAME_EINPUT;
    }
}

// ---------------------------------------------------------------------------- directories

int fs_mkdir_p(const char *path, char *created, size_t created_len) {
    char made[FS_PATH_MAX] = "";
    if (created && created_len) {
        created[0] = '\0';
    }
    int rc = fs_check_path(path, 0, "directory");
    if (rc != FLAME_OK) {
        return rc;
    }
    char buf[FS_PATH_MAX];
    snprintf(buf, sizeof buf, "%s", path);
    size_t len = strlen(buf);
    while (len > 1 && buf[len - 1] == '/') {
        buf[--len] = '\0';
    }
    /* each prefix ending before a '/', then the whole path */
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p != '\0') {
            continue;
        }
        char saved = *p;
        *p = '\0';
        if (mkdir(buf, 0755) == 0) {
            if (!made[0]) {
                snprintf(made, sizeof made, "%s", buf);
            }
        } else {
            int err = errno;
            struct stat st;
            if (err != EEXIST || stat(buf, &st) != 0 || !S_ISDIR(st.st_mode)) {
                char ab[160];
                rc = fail(fs_errno_code(err), err, "cannot create directory %s (%s)",
                                  fs_abbrev(buf, ab, sizeof ab),
                                  err == EEXIST ? "it exists and is not a directory" : strerror(err));
                *p = saved;
                fs_rmdir_created(buf, made);
                return rc;
            }
        }
        *p = saved;
        if (saved == '\0') {
            break;
        }
    }
    if (created && created_len) {
        snprintf(created, created_len, "%s", made);
    }
    return FLAME_OK;
}

void fs_rmdir_created(const char *path, const char *created) {
    if (!created || !created[0]) {
        return;
    }
    char buf[FS_PATH_MAX];
    snprintf(buf, sizeof buf, "%s", path);
    size_t stop = strlen(created);
    for (;;) {
        size_t len = strlen(buf);
        while (len > 1 && buf[len - 1] == '/') {
            buf[--len] = '\0';
        }
        if (len < stop || strncmp(buf, created, stop) != 0) {
            return;
        }
        /* gone already (an earlier call removed it): go on with its parent */
        if ((rmdir(buf) != 0 && errno != ENOENT) || len == stop) {
            return;
        }
        char *slash = strrchr(buf, '/');
        if (!slash || slash == buf) {
            return;
        }
        *slash = '\0';
    }
}

// ---------------------------------------------------------------------------- regular files

static const char *file_kind(mode_t m) {
    return S_ISDIR(m)    ? "directory"
           : S_ISFIFO(m) ? "FIFO (named pipe)"
           : S_ISCHR(m)  ? "character device"
           : S_ISBLK(m)  ? "block device"
           : S_ISSOCK(m) ? "socket"
                         : "special file";
}

static int not_regular(const char *path, mode_t m, const char *what) {
    char ab[160];
    return fail(FLAME_EINPUT, 0, "%s: is a %s, not a regular file; the %s must be a regular file",
                        fs_abbrev(path, ab, sizeof ab), file_kind(m), what);
}

int fs_open_regular(const char *path, const char *what, int *fd) {
    char ab[160];
    *fd = -1;
    /* O_NONBLOCK: opening a FIFO with no writer must not wait for one */
    int f = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (f < 0) {
        return fail(FLAME_EINPUT, errno, "%s: cannot open the %s (%s); check the path",
                            fs_abbrev(path, ab, sizeof ab), what, strerror(errno));
    }
    struct stat st;
    if (fstat(f, &st) != 0) {
        int err = errno;
        close(f);
        return fail(FLAME_EINPUT, err, "%s: cannot open the %s (%s)",
                            fs_abbrev(path, ab, sizeof ab), what, strerror(err));
    }
    if (!S_ISREG(st.st_mode)) {
        close(f);
        return not_regular(path, st.st_mode, what);
    }
    int flags = fcntl(f, F_GETFL);
    if (flags >= 0) {
        fcntl(f, F_SETFL, flags & ~O_NONBLOCK);
    }
    *fd = f;
    return FLAME_OK;
}

int fs_check_regular(const char *path, const char *what) {
    char ab[160];
    struct stat st;
    if (stat(path, &st) != 0) {
        return fail(FLAME_EINPUT, errno, "%s: cannot open the %s (%s); check the path",
                            fs_abbrev(path, ab, sizeof ab), what, strerror(errno));
    }
    return S_ISREG(st.st_mode) ? FLAME_OK : not_regular(path, st.st_mode, what);
}

int fs_read_file(const char *path, const char *what, size_t max_bytes, char **data, size_t *len) {
    char ab[160];
    *data = NULL;
    *len = 0;
    int fd;
    int rc = fs_open_regular(path, what, &fd);
    if (rc != FLAME_OK) {
        return rc;
    }
    struct stat st;
    if (fstat(fd, &st) == 0 && (size_t)st.st_size > max_bytes) {
        close(fd);
        return fail(FLAME_EINPUT, 0, "%s: is %lld bytes, more than the %zu bytes a %s may have",
                            fs_abbrev(path, ab, sizeof ab), (long long)st.st_size, max_bytes,
                            what);
    }
    size_t cap = (size_t)st.st_size + 1, n = 0;
    char *buf = malloc(cap + 1);
    FLAME_CHECK(buf != NULL, "out of memory reading %s", path);
    for (;;) {
        if (n == cap) {
            if (cap > max_bytes) {
                break; /* grew while we read it: the size check below reports it */
            }
            cap *= 2;
            buf = realloc(buf, cap + 1);
            FLAME_CHECK(buf != NULL, "out of memory reading %s", path);
        }
        ssize_t k = read(fd, buf + n, cap - n);
        if (k < 0 && errno == EINTR) {
            continue;
        }
        if (k < 0) {
            int err = errno;
            close(fd);
            free(buf);
            return fail(FLAME_EINPUT, err, "%s: cannot read the %s (%s)",
                                fs_abbrev(path, ab, sizeof ab), what, strerror(err));
        }
        if (k == 0) {
            break;
        }
        n += (size_t)k;
    }
    close(fd);
    if (n > max_bytes) {
        free(buf);
        return fail(FLAME_EINPUT, 0, "%s: is more than the %zu bytes a %s may have",
                            fs_abbrev(path, ab, sizeof ab), max_bytes, what);
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return FLAME_OK;
}

// ---------------------------------------------------------------------------- writing

/* writes all of data to fd (retrying short writes and interruptions); errno on failure */
static int write_all(int fd, const void *data, size_t len) {
    const char *p = data;
    while (len > 0) {
        ssize_t k = write(fd, p, len);
        if (k < 0 && errno == EINTR) {
            continue;
        }
        if (k <= 0) {
            return k < 0 ? errno : EIO;
        }
        p += k;
        len -= (size_t)k;
    }
    return 0;
}

int fs_fsync_dir(const char *path) {
    char dir[FS_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash) {
        snprintf(dir, sizeof dir, ".");
    } else if (slash == dir) {
        dir[1] = '\0';
    } else {
        *slash = '\0';
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return FLAME_OK; /* nothing to make durable we could reach */
    }
    int rc = FLAME_OK;
    /* some file systems cannot sync a directory (EINVAL): the rename is then as durable as it gets */
    if (fsync(fd) != 0 && errno != EINVAL && errno != EROFS) {
        char ab[160];
        rc = fail(FLAME_ERUNTIME, errno, "%s: cannot sync the directory (%s)",
                          fs_abbrev(dir, ab, sizeof ab), strerror(errno));
    }
    close(fd);
    return rc;
}

/* creates dst, fills it by calling fill(fd, ctx) and fsyncs it; on failure dst is removed */
static int write_new_file(const char *dst, int (*fill)(int fd, void *ctx), void *ctx) {
    char ab[160];
    int fd = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        int err = errno;
        return fail(fs_errno_code(err), err, "%s: cannot create the file (%s)",
                            fs_abbrev(dst, ab, sizeof ab), strerror(err));
    }
    int err = fill(fd, ctx);
    if (close(fd) != 0 && err == 0) {
        err = errno;
    }
    if (err != 0) {
        unlink(dst);
        if (err < 0) {
            return FLAME_ERUNTIME; /* fill() set the message */
        }
        return fail(FLAME_ERUNTIME, err, "%s: cannot write the file (%s)",
                            fs_abbrev(dst, ab, sizeof ab), strerror(err));
    }
    return FLAME_OK;
}

typedef struct {
    const void *data;
    size_t len;
} Bytes;

static int fill_bytes(int fd, void *ctx) {
    const Bytes *b = ctx;
    return write_all(fd, b->data, b->len);
}

int fs_write_atomic(const char *path, const void *data, size_t len) {
    char tmp[FS_PATH_MAX], ab[160];
    int rc = fs_printf(tmp, sizeof tmp, "temporary file", "%s.tmp", path);
    if (rc != FLAME_OK) {
        return rc;
    }
    Bytes b = {data, len};
    rc = write_new_file(tmp, fill_bytes, &b);
    if (rc != FLAME_OK) {
        return rc;
    }
    if (rename(tmp, path) != 0) {
        int err = errno;
        unlink(tmp);
        return fail(FLAME_ERUNTIME, err, "%s: cannot rename the new file into place (%s)",
                            fs_abbrev(path, ab, sizeof ab), strerror(err));
    }
    return fs_fsync_dir(path);
}

typedef struct {
    int src;
    const char *src_path;
} CopyFrom;

static int fill_copy(int fd, void *ctx) {
    const CopyFrom *c = ctx;
    char buf[1 << 16];
    for (;;) {
        ssize_t k = read(c->src, buf, sizeof buf);
        if (k < 0 && errno == EINTR) {
            continue;
        }
        if (k < 0) {
            char ab[160];
            fail(FLAME_ERUNTIME, errno, "%s: cannot read the file (%s)",
                         fs_abbrev(c->src_path, ab, sizeof ab), strerror(errno));
            return -1;
        }
        if (k == 0) {
            return 0;
        }
        int err = write_all(fd, buf, (size_t)k);
        if (err) {
            return err;
        }
    }
}

int fs_copy_file(const char *src, const char *dst) {
    int fd;
    int rc = fs_open_regular(src, "file", &fd);
    if (rc != FLAME_OK) {
        return rc;
    }
    CopyFrom c = {fd, src};
    rc = write_new_file(dst, fill_copy, &c);
    close(fd);
    return rc;
}

// ---------------------------------------------------------------------------- locks

/* the holder a lock file names ("pid host"); false when it names none */
static bool read_holder(int fd, long *pid, char *host, size_t host_len) {
    char line[300] = "";
    ssize_t k = pread(fd, line, sizeof line - 1, 0);
    line[k > 0 ? k : 0] = '\0';
    line[strcspn(line, "\n")] = '\0';
    char h[256] = "?";
    *pid = 0;
    bool named = sscanf(line, "%ld %255s", pid, h) >= 1 && *pid > 0;
    snprintf(host, host_len, "%s", h);
    return named;
}

/* whether `path` still names the file open as fd (a holder may remove the lock file before it
   releases the lock: a lock taken on the removed file is no lock at all) */
static bool still_named(int fd, const char *path) {
    struct stat a, b;
    return fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev &&
           a.st_ino == b.st_ino;
}

int fs_lock(const char *path, const char *what, FsLock *lock) {
    char ab[160];
    lock->fd = -1;
    lock->stale_pid = 0;
    lock->stale_host[0] = '\0';
    int fd = -1;
    for (int attempt = 0; fd < 0; attempt++) {
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOCTTY, 0644);
        if (fd < 0) {
            int err = errno;
            return fail(fs_errno_code(err), err, "%s: cannot create the lock file (%s)",
                        fs_abbrev(path, ab, sizeof ab), strerror(err));
        }
        struct stat st;
        if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
            close(fd);
            return fail(FLAME_EINPUT, 0, "%s: the lock file is not a regular file",
                        fs_abbrev(path, ab, sizeof ab));
        }
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            int err = errno;
            if (err != EWOULDBLOCK) {
                close(fd);
                return fail(FLAME_EINPUT, err, "%s: cannot lock the file (%s)",
                            fs_abbrev(path, ab, sizeof ab), strerror(err));
            }
            long pid;
            char host[256], holder[300] = "another process";
            if (read_holder(fd, &pid, host, sizeof host)) {
                snprintf(holder, sizeof holder, "process %ld on host %s", pid, host);
            }
            close(fd);
            return fail(FLAME_EINPUT, EWOULDBLOCK,
                        "%s is in use by %s (lock file %s); wait for it to end or stop it", what,
                        holder, fs_abbrev(path, ab, sizeof ab));
        }
        if (!still_named(fd, path)) { /* its holder removed it meanwhile: lock the new one */
            close(fd);
            fd = -1;
            if (attempt == 100) {
                return fail(FLAME_ERUNTIME, 0, "%s: the lock file keeps being replaced",
                            fs_abbrev(path, ab, sizeof ab));
            }
        }
    }
    /* a file that still names a holder was left by a process that died holding the lock */
    read_holder(fd, &lock->stale_pid, lock->stale_host, sizeof lock->stale_host);
    char host[256] = "?";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    char line[300];
    int n = snprintf(line, sizeof line, "%ld %s\n", (long)getpid(), host);
    int err = 0;
    if (ftruncate(fd, 0) != 0) {
        err = errno;
    } else if (n > 0) {
        ssize_t w = pwrite(fd, line, (size_t)n, 0);
        err = w == n ? 0 : (w < 0 ? errno : EIO);
    }
    if (err) {
        close(fd);
        return fail(FLAME_ERUNTIME, err, "%s: cannot write the lock file (%s)",
                    fs_abbrev(path, ab, sizeof ab), strerror(err));
    }
    lock->fd = fd;
    return FLAME_OK;
}

void fs_unlock(FsLock *lock) {
    if (lock->fd >= 0) {
        flock(lock->fd, LOCK_UN);
        close(lock->fd);
        lock->fd = -1;
    }
}
