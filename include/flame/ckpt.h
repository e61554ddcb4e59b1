/*
 * ckpt.h: checkpoints, runs/<name>/ckpt/step_<N>.h5: everything a run needs to continue exactly.
 *
 * Layout (HDF5; float32 arrays are the flat role arrays of the parameter blobs, whose tensor table is
 * written as the `layout` attribute of each group: "name rows cols offset" lines):
 *   /                 attrs: format = "flame-checkpoint", format_version, version, commit, algo,
 *                            env_id, obs_dim, act_dim, backend, config (resolved YAML)
 *   /policy           params, adam_m, adam_v, grads, ema
 *   /q1, /q2          params, adam_m, adam_v, grads, target
 *   /alpha            log_alpha, adam_m, adam_v (scalars)
 *   /counters         attrs: updates, actor_steps, critic_steps, alpha_steps, env_steps,
 *                            act_calls, episodes, eval_rounds, next_eval, next_ckpt, instabilities,
 *                            wall_seconds
 *   /envpool/state    uint8: the training env pool's exact state (MuJoCo version-tagged)
 *   /replay           optional: obs, act, rew, next_obs, done; attrs capacity, size, head
 * Files are written to "<path>.tmp" and renamed, so a crash never leaves a partial checkpoint.
 * Every random draw is addressed by counters (rng.h), so the counters are the RNG state.
 *
 * defines: TrainCounters Checkpoint ckpt_write ckpt_read ckpt_free ckpt_latest
 */
#ifndef FLAME_CKPT_H
#define FLAME_CKPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "flame/agent.h"
#include "flame/config.h"
#include "flame/replay.h"

typedef struct {
    int64_t env_steps;   /* transitions collected, warm-up included */
    int64_t act_calls;   /* acting draws' address (one per vectorised step with the policy) */
    int64_t episodes;    /* finished training episodes */
    int64_t eval_rounds; /* evaluations done */
    int64_t next_eval;   /* env step (after warm-up) of the next evaluation */
    int64_t next_ckpt;   /* env step (after warm-up) of the next checkpoint */
    int64_t instabilities;
    double wall_seconds; /* training time before this session */
} TrainCounters;

typedef struct {
    FlameConfig cfg;
    char env_id[128];
    char backend[32];
    int obs_dim, act_dim;
    AgentState st;
    TrainCounters tc;
    bool has_replay;
    Replay replay;
    uint8_t *env_state;
    size_t env_state_size;
} Checkpoint;

/* Writes a checkpoint atomically; replay and env_state may be NULL. */
int ckpt_write(const char *path, const FlameConfig *cfg, const AgentState *st,
               const TrainCounters *tc, const Replay *replay, const void *env_state,
               size_t env_state_size, const char *backend);

/* Reads and validates a checkpoint (FLAME_EINPUT with a message for a missing, corrupt or
   inconsistent file). The replay buffer is read only when with_replay and present. */
int ckpt_read(const char *path, Checkpoint *ck, bool with_replay);
void ckpt_free(Checkpoint *ck);

/* The checkpoint with the largest step in <run_dir>/ckpt (path written to out); FLAME_EINPUT when
   none. */
int ckpt_latest(const char *run_dir, char *out, size_t out_len);

#endif
