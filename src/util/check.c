/* check.c: error messages, the fatal hook and checked allocation (see include/flame/check.h). */
#include "flame/check.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char g_error[FLAME_ERROR_MAX];
static FlameFatalHook g_fatal_hook = NULL;

int flame_errorf(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_error, sizeof g_error, fmt, ap);
    va_end(ap);
    /* one line: fold any newline a caller passed in */
    for (char *p = g_error; *p; p++) {
        if (*p == '\n') {
            *p = ' ';
        }
    }
    return code;
}

const char *flame_last_error(void) {
    return g_error;
}

void flame_clear_error(void) {
    g_error[0] = '\0';
}

FlameFatalHook flame_set_fatal_hook(FlameFatalHook hook) {
    FlameFatalHook old = g_fatal_hook;
    g_fatal_hook = hook;
    return old;
}

static void fatal_message(const char *msg) {
    if (g_fatal_hook) {
        g_fatal_hook(msg);
        abort(); /* a hook must not return */
    }
    fprintf(stderr, "flame: fatal: %s\n", msg);
    fflush(stderr);
    exit(FLAME_ERUNTIME);
}

void flame_fatal(const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fatal_message(msg);
    abort();
}

void flame_check_failed(const char *expr, const char *file, int line, const char *fmt, ...) {
    char hint[768];
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(hint, sizeof hint, fmt, ap);
    va_end(ap);
    snprintf(msg, sizeof msg, "check failed: %s at %s:%d: %s", expr, file, line, hint);
    fatal_message(msg);
    abort();
}

void *flame_malloc(size_t bytes) {
    void *p = NULL;
    size_t rounded = (bytes + 63) & ~(size_t)63;
    if (rounded == 0) {
        rounded = 64;
    }
    if (posix_memalign(&p, 64, rounded) != 0 || p == NULL) {
        flame_fatal("out of memory: could not allocate %zu bytes; lower update.replay_size, "
                    "update.batch_size, flow.sample_k, flow.num_particles, env.num_envs or "
                    "env.eval_envs",
                    bytes);
    }
    return p;
}

void *flame_calloc(size_t count, size_t size) {
    if (size != 0 && count > ((size_t)-1) / size) {
        flame_fatal("allocation size overflow: %zu x %zu bytes", count, size);
    }
    void *p = flame_malloc(count * size);
    memset(p, 0, count * size);
    return p;
}

void flame_free(void *p) {
    free(p);
}
