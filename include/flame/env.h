/*
 * env.h: Gymnasium's MuJoCo environments (v4 and v5) re-implemented on the MuJoCo C library.
 *
 * One Env is one simulation: a shared, read-only mjModel plus the env's own mjData. Observations
 * are double, rewards double, actions come either in env units (env_step_ctrl, exactly what
 * Gymnasium's step() receives) or as agent actions in [-1, 1]^D (env_step: ctrl = center +
 * a * half_range of ctrlrange, never clipped; MuJoCo clamps ctrl internally and control costs use
 * the unclipped value, as in Gymnasium). Gymnasium's behaviour, reproduced:
 *   - one step = frame_skip x mj_step, then one mj_rnePostConstraint; kinematic quantities (xpos,
 *     xipos, site_xpos, cinert, cvel, cfrc_ext, qfrc_constraint) are read as they are after that,
 *     one substep behind qpos, exactly like Gymnasium;
 *   - reset = mj_resetData, qpos0 + noise, qvel + noise, mj_forward (quaternions not normalised).
 * Time limits are not handled here (the env pool counts steps); env_step never truncates.
 *
 * Reset noise is addressed in rng.h as (seed, RNG_STREAM_ENV_RESET, step = episode, row =
 * env_index, col): qpos noise uses cols [0, nq), qvel noise cols [Q, Q + nv) with Q = nq rounded up
 * to a multiple of 4 (uniform and normal draws never share a Philox block); rejection sampling
 * (Reacher's goal, Pusher's object) uses pairs of cols from Q + nv rounded up to a multiple of 4.
 * Uniform noise on [lo, hi] is lo + (hi - lo) * u, normal noise with std s is s * z.
 *
 * MuJoCo instability (MuJoCo 2.2.2 resets mjData itself on bad qpos/qvel/qacc): a step whose
 * warning counters for BADQPOS/BADQVEL/BADQACC grew, or that leaves a non-finite qpos/qvel, reports
 * unstable = 1 and terminated = 0; its reward is 0 and non-finite observation entries become 0 (the
 * transition is not physical; the caller ends the episode as truncated).
 *
 * MuJoCo's error and warning hooks are installed on first use (only where none is installed): no
 * MUJOCO_LOG.TXT is written, warnings are counted (the first three printed to stderr), an error
 * inside the simulator is a flame_fatal. Model loading is serialised by a mutex (MuJoCo's XML
 * loader is not reentrant); everything else is per Env and needs no lock.
 *
 * defines: EnvSpec env_spec_count env_spec_at env_spec_find env_model_load Env env_create env_free
 *          env_nq env_nv env_action_bounds env_reset env_set_state env_get_state env_observe
 *          EnvStepInfo
 *          env_step_ctrl env_step env_data env_spec env_model env_frame_skip env_list_print
 *          env_install_mujoco_handlers env_mujoco_warning_count
 */
#ifndef FLAME_ENV_H
#define FLAME_ENV_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <mujoco/mujoco.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One registered environment id (the defaults of Gymnasium's registration). */
typedef struct EnvSpec {
    const char *id;          /* "HalfCheetah-v5" */
    const char *family;      /* "HalfCheetah" */
    int version;             /* 4 or 5 */
    const char *model_name;  /* embedded model file name */
    int obs_dim, act_dim;    /* defaults of Gymnasium */
    int max_episode_steps;   /* TimeLimit */
    double reward_threshold; /* NAN when Gymnasium registers none */
} EnvSpec;

/* Number of registered ids, the i-th one (NULL when out of range), and lookup by id (NULL when
   unknown). */
int env_spec_count(void);
const EnvSpec *env_spec_at(int i);
const EnvSpec *env_spec_find(const char *id);

/* Loads the model (the embedded one when model_xml is NULL or ""). The model must have the sizes
   and the named bodies/sites the env reads (a Gymnasium asset file qualifies). On failure returns
   FLAME_EINPUT, sets *out = NULL and sets the message with flame_errorf() naming the env id / file
   and what went wrong. Free the model with mj_deleteModel. */
int env_model_load(const EnvSpec *spec, const char *model_xml, mjModel **out);

typedef struct Env Env;

/* Creates an env on a model loaded by env_model_load (m is shared and never written; it must
   outlive the env). The data start at qpos0 after mj_forward; call env_reset before stepping. */
Env *env_create(const EnvSpec *spec, const mjModel *m);
void env_free(Env *e);

int env_nq(const Env *e);
int env_nv(const Env *e);
const EnvSpec *env_spec(const Env *e);
const mjModel *env_model(const Env *e);
int env_frame_skip(const Env *e);

/* ctrlrange of each actuator, in actuator order (act_dim values each). */
void env_action_bounds(const Env *e, double *low, double *high);

/* mj_resetData, noise from rng.h (seed, RNG_STREAM_ENV_RESET, episode, env_index), mj_forward,
   then writes the observation (obs_dim doubles; obs may be NULL). */
void env_reset(Env *e, uint64_t seed, uint32_t env_index, uint32_t episode, double *obs);

/* Gymnasium's set_state: mj_resetData, write qpos/qvel, mj_forward; obs (may be NULL) receives the
   observation of that state. */
void env_set_state(Env *e, const double *qpos, const double *qvel, double *obs);
void env_get_state(const Env *e, double *qpos, double *qvel);

/* The observation of the env's current data (as the last reset or step returned it; used after
   restoring an env pool's saved state). */
void env_observe(const Env *e, double *obs);

typedef struct {
    double reward;
    int terminated;
    int unstable;
} EnvStepInfo;

/* One env step with the raw control (env units, act_dim values, not clipped): frame_skip mj_step
   and one mj_rnePostConstraint; writes obs (obs_dim doubles) and info. */
void env_step_ctrl(Env *e, const double *ctrl, double *obs, EnvStepInfo *info);

/* The same from an agent action in [-1, 1]^D (ctrl = center + a * half_range, no clipping). */
void env_step(Env *e, const float *action, double *obs, EnvStepInfo *info);

/* The env's mjData (for tests and tools). */
mjData *env_data(Env *e);

/* Prints a table of every id: obs/act dims, action box, episode length, reward threshold. */
void env_list_print(FILE *f);

/* Installs FLAME's MuJoCo warning/error hooks where none is installed (idempotent, thread safe). */
void env_install_mujoco_handlers(void);

/* Number of MuJoCo warnings received through FLAME's hook since start (all threads). */
uint64_t env_mujoco_warning_count(void);

#ifdef __cplusplus
}
#endif

#endif
