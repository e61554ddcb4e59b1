/*
 * proc.h: process-wide settings every command needs so that its work is never lost to the way its
 * output is consumed:
 *   - SIGPIPE is ignored: writing to a closed pipe (`flame train ... | head -1`) fails with EPIPE
 *     instead of killing the process;
 *   - SIGXFSZ is ignored: a file size limit (ulimit -f) makes the write fail with EFBIG, reported
 *     like a full disk, instead of killing the process;
 *   - once stdout turns out to be a closed pipe, it is redirected to /dev/null: printing stops
 *     and the work goes on.
 * Also: how much memory the process may still take (to refuse a too large buffer up front).
 *
 * defines: proc_init proc_flush_stdout proc_stdout_closed proc_memory_available
 */
#ifndef FLAME_PROC_H
#define FLAME_PROC_H

#include <stdbool.h>
#include <stdint.h>

/* Installs the signal dispositions above (call once at start-up). */
void proc_init(void);

/* fflush(stdout); when that fails with EPIPE, stdout is redirected to /dev/null from then on. */
void proc_flush_stdout(void);

/* Whether proc_flush_stdout() found stdout to be a closed pipe. */
bool proc_stdout_closed(void);

/* Bytes this process can still allocate, as far as the system tells: the least of MemAvailable
   (/proc/meminfo), the cgroup's memory limit minus its usage (cgroup v2 or v1) and the
   address-space limit (RLIMIT_AS) minus what is mapped now. UINT64_MAX when none is known. */
uint64_t proc_memory_available(void);

#endif
