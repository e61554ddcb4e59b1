/*
 * run_dir.h: the directory of a training run and what lives in it:
 *
 *   <run_dir>/metrics.h5         metrics (metrics.h)
 *   <run_dir>/config.yaml        the resolved config (flame train --config loads it back)
 *   <run_dir>/ckpt/step_<N>.h5   checkpoints (ckpt.h), N = env steps
 *
 * A fresh run refuses a directory that already holds a run (metrics.h5 or ckpt/) unless forced;
 * forcing removes only those files of ours. Checkpoint retention keeps the newest `keep`.
 *
 * defines: RUN_DIR_PATH_MAX run_dir_prepare run_dir_write_config run_dir_file run_dir_ckpt_path
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

/* Creates <dir> and <dir>/ckpt for a fresh run. FLAME_EINPUT with a message naming the fix when
   the directory holds a run and force is false, or when it cannot be created or written. With
   force, the previous run's metrics.h5, config.yaml and checkpoints are removed first. */
int run_dir_prepare(const char *dir, bool force);

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
