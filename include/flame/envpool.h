/*
 * envpool.h: N environments of one id stepped by W persistent worker threads, batched
 * struct-of-arrays API, auto-reset, time limits.
 *
 * Invariants:
 *   - every env owns its mjData; all share one const mjModel owned by the pool;
 *   - results are bitwise independent of W for a fixed seed: env i always uses the reset address
 *     (seed, RNG_STREAM_ENV_RESET, step = its episode counter, row = env_index_offset + i), and
 *     envs never share data (which thread steps which env does not matter);
 *   - an episode ends when the env terminates, when its step count reaches max_episode_steps
 *     (truncated; both flags may be set on the same step, as in Gymnasium), or when MuJoCo goes
 *     unstable (truncated + unstable, counted by envpool_instability_count); the env then resets
 *     itself with the next episode counter, `obs` holds the reset observation and `final_obs` the
 *     observation the step really reached;
 *   - the calling thread works too: W = 1 runs everything on the caller, without threads.
 * Modes (envpool_set_modes; the defaults are what training and evaluation use):
 *   - autoreset SAME_STEP (default, above) or NEXT_STEP (Gymnasium 1.x vector envs): the step
 *     that ends an episode returns its final observation in `obs` and keeps the env as it is; the
 *     env's next step resets it instead of stepping (its action is ignored) and returns the reset
 *     observation with reward 0 and both flags clear;
 *   - actions in agent units (default: [-1, 1] scaled to ctrlrange by env_step) or CTRL: the env
 *     units Gymnasium's step() receives (env_step_ctrl with the float action as double).
 *
 * defines: EnvPool envpool_create envpool_free envpool_num_envs envpool_obs_dim envpool_act_dim
 *          envpool_nq envpool_nv envpool_spec envpool_env envpool_reset EnvPoolStep envpool_step
 *          envpool_step_checked envpool_instability_count envpool_state_size envpool_state_save
 *          envpool_state_load EnvPoolAutoreset EnvPoolActions envpool_set_modes envpool_reseed
 *          envpool_reset_next envpool_reset_pending
 */
#ifndef FLAME_ENVPOOL_H
#define FLAME_ENVPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "flame/env.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct EnvPool EnvPool;

/* Loads the model (embedded when model_xml is NULL or ""), creates num_envs envs and num_threads -
   1 worker threads (num_threads >= 1; the caller resolves "auto"). env_index_offset separates e.g.
   eval pools from train pools (it shifts the RNG row of every env). Returns FLAME_OK, or
   FLAME_EINPUT with a message (bad spec, model, or sizes); *out is NULL on failure. */
int envpool_create(const EnvSpec *spec, const char *model_xml, int num_envs, int num_threads,
                   uint64_t seed, uint32_t env_index_offset, EnvPool **out);
void envpool_free(EnvPool *p);

int envpool_num_envs(const EnvPool *p);
int envpool_obs_dim(const EnvPool *p);
int envpool_act_dim(const EnvPool *p);
int envpool_nq(const EnvPool *p);
int envpool_nv(const EnvPool *p);
const EnvSpec *envpool_spec(const EnvPool *p);
/* env i (for tests and tools; do not step it while the pool steps) */
Env *envpool_env(EnvPool *p, int i);

/* Resets every env with episode counter 0 and writes the observations (N x obs_dim). */
void envpool_reset(EnvPool *p, double *obs);

/* The same with a new seed of the reset noise (the env rows stay). */
void envpool_reseed(EnvPool *p, uint64_t seed, double *obs);

/* Resets every env with its next episode counter (an env waiting for a next-step reset uses the
   counter it already has), so consecutive resets start new episodes. */
void envpool_reset_next(EnvPool *p, double *obs);

/* Resets now every env that waits for a next-step reset (with the episode counter it already has,
   as its next step would) and writes its reset observation into its row of obs; the other envs
   and rows are untouched. With next-step autoreset and this call after every step, a pool runs
   exactly the episodes of same-step autoreset, and the caller sees each episode's final state in
   between. */
void envpool_reset_pending(EnvPool *p, double *obs);

typedef enum { ENVPOOL_AUTORESET_SAME_STEP = 0, ENVPOOL_AUTORESET_NEXT_STEP = 1 } EnvPoolAutoreset;
typedef enum { ENVPOOL_ACTIONS_AGENT = 0, ENVPOOL_ACTIONS_CTRL = 1 } EnvPoolActions;

/* Sets the autoreset mode and the units of envpool_step's actions (see the top of this file). */
void envpool_set_modes(EnvPool *p, EnvPoolAutoreset autoreset, EnvPoolActions actions);

/* Output of one batched step; the caller owns the arrays. Required: obs, reward, terminated,
   truncated. Optional (may be NULL): final_obs, unstable, episode_return, episode_length,
   qpos_before, qvel_before. episode_return/episode_length hold the finished episode's values
   where terminated|truncated, and the running values elsewhere. */
typedef struct {
    double *obs;            /* (N, S) next observation (after auto-reset where done) */
    double *final_obs;      /* (N, S) observation reached by this step (== obs unless done) */
    double *reward;         /* (N) */
    uint8_t *terminated;    /* (N) */
    uint8_t *truncated;     /* (N) time limit or instability */
    uint8_t *unstable;      /* (N) MuJoCo instability; implies truncated */
    double *episode_return; /* (N) */
    int *episode_length;    /* (N) */
    double *qpos_before;    /* (N, nq) state before the step */
    double *qvel_before;    /* (N, nv) */
} EnvPoolStep;

/* Steps every env with its action (N x act_dim floats: agent actions in [-1, 1], or env units in
   the CTRL mode; never clipped). */
void envpool_step(EnvPool *p, const float *actions, EnvPoolStep *out);

/* The same, after checking that the caller passes N x act_dim action floats; FLAME_EINPUT with a
   message otherwise (nothing is stepped). */
int envpool_step_checked(EnvPool *p, const float *actions, size_t n_actions_floats,
                         EnvPoolStep *out);

/* Episodes ended by MuJoCo instability since creation (all envs). */
uint64_t envpool_instability_count(const EnvPool *p);

/* Exact save/restore of every env's dynamic state (the mjData buffer and its scalar fields, episode
   and step counters, running returns, instability counters), tagged with mj_version(), the env id
   and the model sizes. envpool_state_load fails with FLAME_EINPUT and a message on any mismatch.
   Continuing after a load is bitwise identical to continuing the saved pool. */
size_t envpool_state_size(const EnvPool *p);
void envpool_state_save(const EnvPool *p, void *buf);
int envpool_state_load(EnvPool *p, const void *buf, size_t size);

#ifdef __cplusplus
}
#endif

#endif
