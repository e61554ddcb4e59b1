/*
 * proc.h: process-wide settings every command needs so that its work is never lost to the way its
 * output is consumed:
 *   - SIGPIPE is ignored: writing to a closed pipe (`flame train ... | head -1`) fails with EPIPE
 *     instead of killing the process;
 *   - SIGXFSZ is ignored: a file size limit (ulimit -f) makes the write fail with EFBIG, reported
 *     like a full disk, instead of killing the process;
 *   - once stdout turns out to be a closed pipe, it is redirected to /dev/null: printing stops
 *     and the work goes on.
 *
 * defines: proc_init proc_flush_stdout proc_stdout_closed
 */
#ifndef FLAME_PROC_H
#define FLAME_PROC_H

#include <stdbool.h>

/* Installs the signal dispositions above (call once at start-up). */
void proc_init(void);

/* fflush(stdout); when that fails with EPIPE, stdout is redirected to /dev/null from then on. */
void proc_flush_stdout(void);

/* Whether proc_flush_stdout() found stdout to be a closed pipe. */
bool proc_stdout_closed(void);

#endif
