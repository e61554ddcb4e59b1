/*
 * flame_api.h: the C API of libflame.so, for programs and language bindings (python/flame_rl).
 *
 * Self-contained: it includes only <stdint.h> and names no other project header. Two objects:
 *   flame_policy  a checkpoint's policy (the EMA policy that `flame eval` and `flame rollout` use),
 *                 acting on a batch of observations through the same backend `act` operation;
 *   flame_vec     a pool of N environments of one id (the trainer's env pool: W threads, results
 *                 independent of W) with Gymnasium's vector-env conventions: next-step or
 *                 same-step autoreset, time limits, actions in env units or agent units.
 * Every function that can fail returns FLAME_API_OK (0) or an error code and sets a thread-local
 * message (flame_api_last_error). Arrays are caller-owned, row-major, C-contiguous: the library
 * writes into them and keeps no pointer after the call. An object is used by one thread at a time.
 *
 * Units: observations are double (float for the policy's input, as the networks compute); actions
 * are float. A policy acts in agent units, [-1, 1]^D for deterministic FLAME and SAC actions (the
 * exploring actions of FLAME may leave it); flame_policy_to_env_units maps them to what the env
 * receives, ctrl = center + a * half_range of the actuators' ctrlrange.
 *
 * defines: FLAME_API_VERSION FLAME_API_EVAL_ENV_OFFSET FLAME_API_OK FLAME_API_ERUNTIME
 *          FLAME_API_EINPUT flame_api_version flame_api_last_error flame_env_count flame_env_id
 *          flame_env_spec flame_policy flame_policy_load flame_policy_free flame_policy_info
 *          flame_policy_config flame_policy_act flame_policy_to_env_units flame_vec
 *          flame_vec_create flame_vec_free flame_vec_info flame_vec_action_bounds flame_vec_reset
 *          flame_vec_step flame_vec_get_state flame_vec_set_state FLAME_VEC_AUTORESET_NEXT_STEP
 *          FLAME_VEC_AUTORESET_SAME_STEP FLAME_VEC_ACTIONS_ENV FLAME_VEC_ACTIONS_AGENT
 */
#ifndef FLAME_FLAME_API_H
#define FLAME_FLAME_API_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FLAME_API_VERSION 1

/* The env_index_offset of the env pools of `flame eval`, `flame rollout` and `flame render`: a
   flame_vec created with it, the policy's seed, same-step autoreset and agent units, with
   flame_policy_act called with call = 0, 1, 2, ... once per vectorised step, steps the envs those
   commands step (they count episodes as include/flame/rollout.h says). */
#define FLAME_API_EVAL_ENV_OFFSET 0x01000000u

enum { FLAME_API_OK = 0, FLAME_API_ERUNTIME = 1, FLAME_API_EINPUT = 2 };

/* FLAME_API_VERSION of the library, and "flame <version> (<commit>)". */
int flame_api_version(const char **build);

/* The message of the last failure on this thread ("" when none). */
const char *flame_api_last_error(void);

/* ------------------------------------------------------------------ env specs */

/* Number of registered env ids, and the i-th ("HalfCheetah-v5"; NULL when out of range). */
int flame_env_count(void);
const char *flame_env_id(int i);

/* Sizes and time limit of an env id; any output may be NULL. reward_threshold is NaN when
   Gymnasium registers none. */
int flame_env_spec(const char *env_id, int *obs_dim, int *act_dim, int *max_episode_steps,
                   double *reward_threshold);

/* ------------------------------------------------------------------ policies */

typedef struct flame_policy flame_policy;

/* Loads a checkpoint (runs/<name>/ckpt/step_<N>.h5) the way `flame eval` and `flame rollout` do.
   backend: "auto" (or NULL; CUDA when built with it and a device exists), "cpu" or "cuda". seed < 0
   keeps the checkpoint's run.seed: the policy's random draws are addressed by (seed, call, row),
   exactly as in `flame eval --seed`. */
int flame_policy_load(const char *ckpt_path, const char *backend, int64_t seed, flame_policy **out);
void flame_policy_free(flame_policy *p);

/* Facts about the policy; any output may be NULL. Strings live as long as the policy. */
int flame_policy_info(const flame_policy *p, const char **env_id, const char **algo,
                      const char **backend, int *obs_dim, int *act_dim, int64_t *updates,
                      int64_t *env_steps);

/* The checkpoint's resolved config as YAML (what `flame train --print-config` prints); lives as
   long as the policy. NULL for a NULL policy. */
const char *flame_policy_config(const flame_policy *p);

/* Actions (n x act_dim, agent units) for observations (n x obs_dim). deterministic: the
   evaluation action (best-of-N without exploration noise for FLAME, tanh(mean) for SAC); else the
   exploring action of training. `call` addresses the random draws: the same (seed, call, rows)
   give the same actions, and `flame eval` numbers its calls 0, 1, 2, ... */
int flame_policy_act(flame_policy *p, const float *obs, int n, int deterministic, uint32_t call,
                     float *actions);

/* Agent units -> env units in place (n x act_dim), with the env's actuator ranges. */
int flame_policy_to_env_units(const flame_policy *p, float *actions, int n);

/* ------------------------------------------------------------------ vector envs */

typedef struct flame_vec flame_vec;

enum { FLAME_VEC_AUTORESET_NEXT_STEP = 0, FLAME_VEC_AUTORESET_SAME_STEP = 1 };
enum { FLAME_VEC_ACTIONS_ENV = 0, FLAME_VEC_ACTIONS_AGENT = 1 };

/* num_envs envs of env_id stepped by num_threads threads (0: all cores but one, at most
   num_envs). autoreset: FLAME_VEC_AUTORESET_*; actions: FLAME_VEC_ACTIONS_* (env units, as
   Gymnasium's step() takes them, or agent units in [-1, 1]). seed: the reset noise of the first
   reset when it passes none. env_index_offset shifts every env's row of the reset-noise address
   (0 for most uses; FLAME_API_EVAL_ENV_OFFSET: the rows of `flame eval`). model_xml: NULL or ""
   for the embedded model. */
int flame_vec_create(const char *env_id, int num_envs, int num_threads, int autoreset, int actions,
                     uint64_t seed, uint32_t env_index_offset, const char *model_xml,
                     flame_vec **out);
void flame_vec_free(flame_vec *v);

/* Facts about the pool; any output may be NULL. */
int flame_vec_info(const flame_vec *v, const char **env_id, int *num_envs, int *obs_dim,
                   int *act_dim, int *nq, int *nv, int *max_episode_steps);

/* The actuators' ctrlrange (act_dim values each): the env-unit action box. */
int flame_vec_action_bounds(const flame_vec *v, double *low, double *high);

/* Resets every env (obs: num_envs x obs_dim). With a seed (has_seed != 0) every env starts
   episode 0 of that seed; without, the first reset uses the creation seed and later ones start
   each env's next episode. */
int flame_vec_reset(flame_vec *v, int has_seed, uint64_t seed, double *obs);

/* One step of every env. obs (N x obs_dim), reward (N), terminated (N), truncated (N) are
   required; final_obs (N x obs_dim) may be NULL: in same-step mode it receives the observation the
   step reached (obs then holds the reset observation where an episode ended); in next-step mode it
   equals obs. Truncation is the time limit, or MuJoCo instability (then the transition is not
   physical: reward 0, non-finite observation entries 0). */
int flame_vec_step(flame_vec *v, const float *actions, double *obs, double *reward,
                   uint8_t *terminated, uint8_t *truncated, double *final_obs);

/* MuJoCo state (qpos: nq, qvel: nv) of env i; set_state is Gymnasium's set_state (mj_resetData,
   qpos, qvel, mj_forward) and writes that state's observation (obs may be NULL). Episode counters
   and the time limit are unchanged. */
int flame_vec_get_state(const flame_vec *v, int i, double *qpos, double *qvel);
int flame_vec_set_state(flame_vec *v, int i, const double *qpos, const double *qvel, double *obs);

#ifdef __cplusplus
}
#endif

#endif
