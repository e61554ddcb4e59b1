/*
 * fsutil.h: files and paths as a run needs them: checked path building with messages that name
 * the limit that was hit, regular-file inputs (a FIFO or a device never blocks a read), files
 * written completely or not at all (temporary name, fsync, rename), directories created as
 * `mkdir -p` and removed again when what needed them failed.
 *
 * Limits: a path we build or accept is at most FS_PATH_MAX - 1 bytes (PATH_MAX) and each of its
 * names at most FS_NAME_MAX bytes (NAME_MAX); errors say which one was hit, with the path
 * abbreviated in the middle so the message stays one readable line.
 * Every function returns FLAME_OK or an error code with the message set (check.h): FLAME_EINPUT for
 * a path or file the user gave that cannot be used, FLAME_ERUNTIME for a failure while writing.
 *
 * defines: FS_PATH_MAX FS_NAME_MAX fs_abbrev fs_printf fs_check_path fs_name_component_ok
 *          fs_mkdir_p fs_rmdir_created fs_open_regular fs_check_regular fs_read_file
 *          fs_write_atomic fs_copy_file fs_fsync_dir fs_errno_code fs_set_errno fs_last_errno
 *          fs_last_reason
 *          FsLock fs_lock fs_unlock
 */
#ifndef FLAME_FSUTIL_H
#define FLAME_FSUTIL_H

#include <stdbool.h>
#include <stddef.h>

#define FS_PATH_MAX 4096 /* bytes of a path, its terminating NUL included (Linux PATH_MAX) */
#define FS_NAME_MAX 255  /* bytes of one name in a path (Linux NAME_MAX) */

/* `s` for a message: unchanged when short, else its first and last bytes around "...(N bytes)...".
   Returns buf. */
const char *fs_abbrev(const char *s, char *buf, size_t n);

/* snprintf of a path into dst (n bytes, at most FS_PATH_MAX); FLAME_EINPUT naming `what` and the
   PATH_MAX limit when the result does not fit. */
int fs_printf(char *dst, size_t n, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* FLAME_EINPUT naming `what` when `path` is empty, longer than FS_PATH_MAX - 1 - reserve bytes
   (reserve: what will be appended to it) or holds a name longer than FS_NAME_MAX bytes. */
int fs_check_path(const char *path, size_t reserve, const char *what);

/* Whether `name` is exactly one path component: not empty, not "." or "..", no '/'. */
bool fs_name_component_ok(const char *name);

/* Creates `path` and its missing parents (mode 0755, like mkdir -p). `created` (may be NULL)
   receives the topmost directory this call created ("" when it created none), for
   fs_rmdir_created. FLAME_EINPUT with the directory and errno text on failure (what it created
   before the failure is removed again). */
int fs_mkdir_p(const char *path, char *created, size_t created_len);

/* Removes the empty directories from `path` up to and including `created` (a fs_mkdir_p result;
   nothing when it is ""). Never removes a directory that is not empty. */
void fs_rmdir_created(const char *path, const char *created);

/* Opens an input file for reading without blocking on a FIFO or a device: FLAME_EINPUT naming
   `what` when the path does not exist, cannot be opened, or is not a regular file. */
int fs_open_regular(const char *path, const char *what, int *fd);

/* The same check by path only (stat; nothing is opened), for files another library opens. */
int fs_check_regular(const char *path, const char *what);

/* Reads a whole regular file of at most max_bytes into a NUL-terminated buffer (free with
   free()). */
int fs_read_file(const char *path, const char *what, size_t max_bytes, char **data, size_t *len);

/* Writes `path` completely or not at all: "<path>.tmp", fsync, rename, fsync of the directory.
   FLAME_ERUNTIME naming the file and the errno text on failure (the temporary file is removed). */
int fs_write_atomic(const char *path, const void *data, size_t len);

/* Copies the regular file src to dst (created or truncated) and fsyncs it. */
int fs_copy_file(const char *src, const char *dst);

/* fsync of the directory that holds `path` (a rename into it is then durable). */
int fs_fsync_dir(const char *path);

/* For a file that cannot be created or opened: FLAME_ERUNTIME for errors of a device that failed
   or filled up (ENOSPC, EDQUOT, EFBIG, EIO), FLAME_EINPUT for the others (a path that cannot be
   used: EACCES, ENOENT, EROFS, ...). A failure while writing is always FLAME_ERUNTIME. */
int fs_errno_code(int err);

/* The errno of the last failure an fs_* or h5_file_* function reported on this thread (0 when that
   failure had no errno), so a caller can word its own message; fs_set_errno records one. */
int fs_last_errno(void);
void fs_set_errno(int err);

/* Why the last failure happened, for a caller's own message: the errno text of fs_last_errno(),
   or the last message (check.h) when that failure had no errno. Returns buf. */
const char *fs_last_reason(char *buf, size_t n);

/* An exclusive lock on the file `path` (created when missing), held until fs_unlock() or the end
   of the process. It is a flock(2) lock, which the kernel drops when its holder dies, so a lock
   left by a killed process is free again; the file records the current holder as "pid host".
   FLAME_EINPUT naming `what`, the holder's pid and host when another process holds it.
   A holder may remove the file before fs_unlock() (so that nothing stays behind): a lock taken
   on a file that was removed meanwhile is detected and taken again on the new file.
   stale_pid / stale_host: the holder the file still named when the lock was taken (a process
   that ended without removing it, as a killed one does; 0 / "" when the file named none). */
typedef struct {
    int fd;         /* -1: not held */
    long stale_pid; /* > 0: the file named this process, which no longer held the lock */
    char stale_host[256];
} FsLock;
int fs_lock(const char *path, const char *what, FsLock *lock);
void fs_unlock(FsLock *lock);

#endif
