/* proc.c: process-wide signal dispositions and a stdout that may be a closed pipe (see
   include/flame/proc.h). */
#include "flame/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
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
