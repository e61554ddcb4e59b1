/*
 * check.h: error handling shared by every module.
 *
 * Three tiers:
 *   - status codes + a thread-local message for errors a caller can act on (bad input, missing file):
 *     functions return FLAME_OK / FLAME_EINPUT / FLAME_ERUNTIME and set the message with flame_errorf();
 *     the CLI prints "flame: <message>" on one line and exits with the code (2 = bad input, 1 = runtime).
 *   - FLAME_CHECK(cond, fmt, ...): always-on invariant; on failure calls flame_fatal() with file:line.
 *   - FLAME_DCHECK: the same, compiled out unless FLAME_DEBUG is defined (expensive scans).
 * flame_fatal() calls a replaceable hook (tests install one that fails the test); the default prints
 * the message and exits with status 1.
 *
 * defines: FLAME_OK FLAME_ERUNTIME FLAME_EINPUT flame_errorf flame_last_error flame_clear_error
 *          flame_fatal flame_set_fatal_hook FLAME_CHECK FLAME_DCHECK flame_malloc flame_calloc
 */
#ifndef FLAME_CHECK_H
#define FLAME_CHECK_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* bytes of an error message, its NUL included (room for a path of PATH_MAX bytes and the text
   around it: a message is never cut before it names the fix) */
#define FLAME_ERROR_MAX 8192

enum {
    FLAME_OK = 0,
    FLAME_ERUNTIME = 1, /* runtime failure: I/O error, non-finite loss, out of memory */
    FLAME_EINPUT = 2,   /* bad usage, bad config, bad input file */
};

/* Sets the thread-local error message (printf-style) and returns `code`, so callers can write
   `return flame_errorf(FLAME_EINPUT, "...")`. */
int flame_errorf(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The last message set by flame_errorf() on this thread ("" when none). */
const char *flame_last_error(void);

/* Clears the thread-local message. */
void flame_clear_error(void);

typedef void (*FlameFatalHook)(const char *message);

/* Reports an unrecoverable error: formats the message, calls the hook (default: print to stderr and
   exit(1)). If the hook returns, the process aborts. */
void flame_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* Replaces the fatal hook; NULL restores the default. Returns the previous hook. */
FlameFatalHook flame_set_fatal_hook(FlameFatalHook hook);

#define FLAME_CHECK(cond, ...)                                                                     \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            flame_check_failed(#cond, __FILE__, __LINE__, __VA_ARGS__);                            \
        }                                                                                          \
    } while (0)

#ifdef FLAME_DEBUG
#define FLAME_DCHECK(cond, ...) FLAME_CHECK(cond, __VA_ARGS__)
#else
#define FLAME_DCHECK(cond, ...)                                                                    \
    do {                                                                                           \
    } while (0)
#endif

void flame_check_failed(const char *expr, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5), noreturn));

/* Allocation that never returns NULL: on failure it reports the requested size and exits. Memory is
   64-byte aligned (cache line, and the alignment our parameter blobs promise). */
void *flame_malloc(size_t bytes);
void *flame_calloc(size_t count, size_t size);
void flame_free(void *p);

#ifdef __cplusplus
}
#endif

#endif
