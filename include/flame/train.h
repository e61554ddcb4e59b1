/*
 * train.h: the training loop, as the authors' code runs it:
 *
 *   envpool step -> replay push -> update(s) -> metrics, with a uniform-random warm-up,
 *   evaluation of the deterministic EMA policy every run.eval_every env steps on separate envs,
 *   checkpoints every run.ckpt_every env steps and at the end, SIGINT/SIGTERM -> flush, checkpoint,
 *   exit 130/143.
 *
 * Signals are polled in every phase: between two updates (the first of a loop iteration always
 * runs), at every env step of an evaluation, at every loop iteration; a checkpoint write under way
 * completes (it is the checkpoint) and is not repeated; a signal during the start ends it once the
 * step under way is done, writing nothing.
 * The checkpoint then taken may lie inside a loop iteration: a resumed run first does what the
 * iteration had left (its remaining updates: every whole iteration leaves a multiple of
 * update.updates_per_iter; an evaluation still due at the checkpoint's step), so it continues as
 * the uninterrupted run would, bitwise.
 *
 * The run directory (run_dir.h) is locked for the life of train_run when it writes outputs; a
 * fresh run creates it only once its envs and agent exist, and a start that fails leaves nothing.
 * A resume must start from the newest checkpoint of its run.
 *
 * Step counting: `step` in outputs is environment transitions collected, warm-up included;
 * run.total_steps counts transitions after the warm-up (as the reference implementation does).
 *
 * The loop (src/train/train.c) is the picture of the README: the rollout engine (rollout.h) acts
 * and steps the training envs into the replay, updates run, metrics, evaluations (rollout.h on
 * their own envs) and checkpoints (run_dir.h) follow at their cadences, and the progress display
 * (progress.h) reports. Unstable episodes follow rollout.h's policy: their last step is not pushed,
 * they are counted as `instabilities`, not as episodes.
 *
 * Checkpoints of a run (src/train/checkpoint.c): written every run.ckpt_every steps after the
 * warm-up, at the end and after SIGINT/SIGTERM, the newest run.keep_ckpts kept (run_dir.h).
 *
 * defines: TrainOptions TrainSummary train_run train_checkpoint_save train_checkpoint_check
 *          train_checkpoint_restore
 */
#ifndef FLAME_TRAIN_H
#define FLAME_TRAIN_H

#include <stdbool.h>
#include <stdint.h>

#include "flame/backend.h"
#include "flame/ckpt.h"
#include "flame/config.h"
#include "flame/envpool.h"

typedef struct {
    const char *run_dir;    /* output directory (created; must not exist unless resume/force) */
    bool force;             /* overwrite an existing run directory */
    const char *resume_ckpt; /* continue from this checkpoint (run_dir is its run) */
    bool quiet;             /* no progress output */
    bool write_outputs;     /* false: no run directory at all (benchmarks) */
    int64_t max_steps;      /* > 0: stop after this many transitions this session (benchmarks) */
} TrainOptions;

/* Seconds spent per phase of the loop, and what was done. */
typedef struct {
    double total_s, env_s, act_s, push_s, update_s, eval_s, io_s;
    int64_t env_steps, updates, episodes;
    double last_eval_return; /* NAN when no evaluation ran */
    double best_eval_return; /* NAN when no evaluation ran */
    const char *backend;
    int exit_code; /* 0, or 130/143 after SIGINT/SIGTERM */
} TrainSummary;

/* Runs (or resumes) training. Returns FLAME_OK, FLAME_EINPUT (bad run dir / checkpoint, a run
   directory another process holds) or FLAME_ERUNTIME (a write failed, a non-finite loss, too little
   memory for the replay buffer); summary->exit_code carries 130/143 when interrupted. */
int train_run(const FlameConfig *cfg, const TrainOptions *opt, TrainSummary *summary);

/* Writes <run_dir>/ckpt/step_<tc->env_steps>.h5: the backend's state (and replay buffer when
   run.save_replay), every env's state and the counters; then keeps the newest run.keep_ckpts. */
int train_checkpoint_save(const char *run_dir, const FlameConfig *cfg, const BackendOps *ops,
                          Backend *b, EnvPool *pool, const TrainCounters *tc);

/* FLAME_EINPUT with a message unless the checkpoint at `path` belongs to cfg's env, algorithm and
   network, and holds a replay buffer when run.save_replay asks for one. */
int train_checkpoint_check(const Checkpoint *ck, const FlameConfig *cfg, const char *path);

/* Restores the agent, its replay buffer (capacity must be update.replay_size) and every env's
   state; the caller takes the counters (ck->tc). */
int train_checkpoint_restore(const Checkpoint *ck, const FlameConfig *cfg, const BackendOps *ops,
                             Backend *b, EnvPool *pool, const char *path);

#endif
