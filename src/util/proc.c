/* proc.c: process-wide signal dispositions and a stdout that may be a closed pipe (see
   include/flame/proc.h). */
#include "flame/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static volatile sig_atomic_t g_stdout_closed = 0;

void proc_init(void) {
    signal(SIGPIPE, SIG_IGN);
    signal(SIGXFSZ, SIG_IGN);
}

/* whether stdout is a pipe whose reader has gone (the write end then polls POLLERR) */
static bool reader_gone(int err) {
    if (err == EPIPE) {
        return true;
    }
    struct pollfd p = {.fd = STDOUT_FILENO, .events = POLLOUT, .revents = 0};
    return poll(&p, 1, 0) == 1 && (p.revents & POLLERR);
}

void proc_flush_stdout(void) {
    if (g_stdout_closed) {
        return;
    }
    errno = 0;
    int rc = fflush(stdout);
    int err = errno;
    if (rc == 0 && !ferror(stdout)) {
        return;
    }
    if (!reader_gone(err)) {
        clearerr(stdout);
        return;
    }
    /* the reader is gone: from now on stdout goes nowhere (what is still buffered too) */
    g_stdout_closed = 1;
    int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (null >= 0) {
        dup2(null, STDOUT_FILENO);
        close(null);
    }
    clearerr(stdout);
    fflush(stdout);
}

bool proc_stdout_closed(void) {
    return g_stdout_closed != 0;
}

// ---------------------------------------------------------------------------- memory

/* the first unsigned number in a file (after `key` when given); false when absent or "max" */
static bool read_number(const char *path, const char *key, uint64_t *out) {
    FILE *f = fopen(path, "r");
    if (!f) {
        return false;
    }
    char line[256];
    bool ok = false;
    while (!ok && fgets(line, sizeof line, f)) {
        const char *p = line;
        if (key) {
            if (strncmp(line, key, strlen(key)) != 0) {
                continue;
            }
            p += strlen(key);
        }
        unsigned long long v;
        ok = sscanf(p, " %llu", &v) == 1;
        *out = v;
    }
    fclose(f);
    return ok;
}

static uint64_t least(uint64_t a, uint64_t b) {
    return a < b ? a : b;
}

uint64_t proc_memory_available(void) {
    uint64_t best = UINT64_MAX, v = 0, used = 0;
    if (read_number("/proc/meminfo", "MemAvailable:", &v)) {
        best = least(best, v * 1024);
    }
    /* cgroup v2 (the unified hierarchy as the process sees it), else v1's memory controller;
       "no limit" reads as "max" (v2) or a value near 2^63 (v1) */
    const char *limits[2][2] = {{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"},
                                {"/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                 "/sys/fs/cgroup/memory/memory.usage_in_bytes"}};
    for (int k = 0; k < 2; k++) {
        if (read_number(limits[k][0], NULL, &v) && v < ((uint64_t)1 << 62) &&
            read_number(limits[k][1], NULL, &used)) {
            best = least(best, v > used ? v - used : 0);
            break;
        }
    }
    struct rlimit r;
    if (getrlimit(RLIMIT_AS, &r) == 0 && r.rlim_cur != RLIM_INFINITY) {
        uint64_t pages = 0;
        read_number("/proc/self/statm", NULL, &pages);
        uint64_t mapped = pages * (uint64_t)sysconf(_SC_PAGESIZE);
        best = least(best, (uint64_t)r.rlim_cur > mapped ? (uint64_t)r.rlim_cur - mapped : 0);
    }
    return best;
}
