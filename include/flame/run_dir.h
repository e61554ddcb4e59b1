/*
 * run_dir.h: the directory of a training run and what lives in it:
 *
 *   <run_dir>/metrics.h5         metrics (metrics.h)
 *   <run_dir>/config.yaml        the resolved config (flame train --config loads it back)
 *   <run_dir>/ckpt/step_<N>.h5   checkpoints (ckpt.h), N = env steps
 *   <run_dir>/train.lock         while a training process writes the run: "pid host" of it
 *
 * One writer at a time: a training process holds the lock on train.lock (fs_lock) from before it
 * changes anything in the directory until it ends, and removes the file as it ends. Another
 * writer (a resume, a forced or a fresh run of the same directory) is refused with the holder's
 * pid and host. A lock left by a process that died is free (the kernel released it) and is taken
 * over; the file then still names the dead holder (FsLock.stale_pid). Readers never lock.
 *
 * A fresh run refuses a directory that already holds a run (metrics.h5 or a checkpoint) unless
 * forced; forcing removes only those files of ours. A fresh start creates nothing before the run
 * can start (run_dir_claim only looks, and locks a directory that exists), and a start that fails
 * after run_dir_prepare removes again what it made: its files, ckpt/ and the directories
 * fs_mkdir_p created, so the same command can simply be run again.
 * Checkpoint retention keeps the newest `keep`.
 *
 * defines: RUN_DIR_PATH_MAX RUN_DIR_LOCK RunDir run_dir_init run_dir_lock run_dir_claim
 *          run_dir_prepare run_dir_release run_dir_write_config run_dir_file run_dir_ckpt_path
 *          run_dir_checkpoints run_dir_prune_checkpoints
 */
#ifndef FLAME_RUN_DIR_H
#define FLAME_RUN_DIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "flame/config.h"
#include "flame/fsutil.h"

#define RUN_DIR_PATH_MAX FS_PATH_MAX
#define RUN_DIR_LOCK "train.lock"

/* A training process's hold on its run directory. */
typedef struct {
    char dir[RUN_DIR_PATH_MAX];
    FsLock lock;                    /* lock.fd >= 0 while held */
    char created[RUN_DIR_PATH_MAX]; /* topmost directory run_dir_prepare created ("": none) */
    bool fresh;                     /* run_dir_prepare made it a new run's directory */
    bool started;                   /* set by the caller once the run started: kept at release */
} RunDir;

void run_dir_init(RunDir *rd);

/* Locks the existing run directory `dir` (a resume). FLAME_EINPUT naming the holder's pid and
   host when another process holds it; a lock left by a dead process is taken over. Until
   run_dir_release (or the process's exit), the lock is held. */
int run_dir_lock(RunDir *rd, const char *dir);

/* A fresh run, before anything is created: when `dir` exists, locks it (as run_dir_lock) and
   refuses it (FLAME_EINPUT naming the fix) when it holds a run and force is false. When it does
   not exist, nothing happens: run_dir_prepare makes it. */
int run_dir_claim(RunDir *rd, const char *dir, bool force);

/* Once the run can start: creates the claimed directory (mkdir -p) and its ckpt/, locks it when
   run_dir_claim did not (refusing a run that appeared meanwhile), and with force removes the
   previous run's metrics.h5, config.yaml and checkpoints. FLAME_EINPUT when the directory cannot
   be created or written. On failure the hold is released (nothing made stays). */
int run_dir_prepare(RunDir *rd, bool force);

/* Ends the hold: removes train.lock, then releases the lock. Unless rd->started, what
   run_dir_prepare made is removed as well (the run's files, ckpt/ and the directories it created,
   each only when empty). Keeps the current error message. Safe to call more than once. */
void run_dir_release(RunDir *rd);

/* Writes <dir>/config.yaml (the resolved config as YAML). */
int run_dir_write_config(const char *dir, const FlameConfig *cfg);

/* <dir>/<name> into out. */
void run_dir_file(char *out, size_t len, const char *dir, const char *name);

/* <dir>/ckpt/step_<step>.h5 into out. */
void run_dir_ckpt_path(char *out, size_t len, const char *dir, int64_t step);

/* The steps of the step_<N>.h5 files in <dir>/ckpt, newest first, in a malloc'd array (*steps; NULL
   when none). FLAME_EINPUT when <dir>/ckpt cannot be opened. */
int run_dir_checkpoints(const char *dir, int64_t **steps, size_t *n);

/* Deletes all but the `keep` newest checkpoints (keep <= 0: none is deleted). */
void run_dir_prune_checkpoints(const char *dir, int keep);

#endif
