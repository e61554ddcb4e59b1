/*
 * rollout.h: the one engine that runs a policy on an env pool and hands what happens to a sink:
 *   - training: transitions into the replay, one vectorised step at a time (rollout_step);
 *   - evaluation: the returns and lengths of whole episodes (rollout_evaluate);
 *   - datasets: whole episodes into a dataset writer (rollout_dataset, `flame rollout`);
 *   - videos: every state of one env drawn, each episode's last one included (render.h,
 *     RolloutEnvs.keep_final, RolloutSink.on_start; `flame render`).
 *
 * Policies (RolloutPolicy): the agent (a backend's act op, deterministic or exploring), the uniform
 * random policy on [-1, 1]^D, or a function of the caller. Every vectorised step has a draw index
 * `call`: the agent's act call index; the random policy's action for env i, dimension d is
 * 2 rng_uniform(seed, RNG_STREAM_WARMUP, call, i, d) - 1 (training's warm-up uses call = the
 * number of vectorised steps done). Actions are in agent units; the env maps them to its box.
 *
 * Episode runs (rollout_episodes): exactly `episodes` complete episodes from the N envs of the
 * pool, reset first. Env i owes episodes / N of them (the first episodes % N one more); once its
 * quota is met its further steps are ignored. Step k of a run uses draw index call_base + k.
 * Episodes are numbered in completion order (vectorised step, then env index), so a run depends on
 * the seed, the env offset, N, call_base and the policy, never on the number of threads.
 * `flame eval`, `flame rollout` and `flame render` (one env) address their envs the same way
 * (ROLLOUT_ENV_OFFSET, call_base 0) and open a checkpoint's policy the same way (policy.h): the
 * same checkpoint, seed and env count give the same episodes through each.
 *
 * Unstable episodes (MuJoCo's integrator failed; envpool.h ends the episode as truncated +
 * unstable, with reward 0 and a reset observation for that step). One policy everywhere:
 *   1. the unstable step is not a physical transition and is never stored: RolloutStep.unstable
 *      marks it, the training's replay push skips it, the dataset sink drops the whole episode;
 *   2. an unstable episode is not an episode of the policy: it does not count toward a quota (its
 *      env runs another episode in its place), nor in returns, lengths, the training's episode
 *      count or its /episodes rows; it is counted instead (RolloutResult.unstable, the training's
 *      `instabilities`);
 *   3. an episode run fails with FLAME_ERUNTIME once more episodes went unstable than were asked
 *      for: the policy or the model is broken, and replacing more would hide it.
 *
 * defines: Rollout RolloutPolicyKind RolloutPolicy RolloutEnvs RolloutStep RolloutEpisode
 *          RolloutSink RolloutTimes RolloutRun RolloutResult RolloutReplay rollout_replay_init
 *          rollout_replay_free rollout_replay_push rollout_policy_agent
 *          rollout_policy_random rollout_policy_act rollout_create rollout_free rollout_pool
 *          rollout_reset rollout_observe rollout_step rollout_episodes rollout_result_free
 *          rollout_evaluate rollout_dataset ROLLOUT_ENV_OFFSET ROLLOUT_DEFAULT_ENVS
 */
#ifndef FLAME_ROLLOUT_H
#define FLAME_ROLLOUT_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "flame/backend.h"
#include "flame/dataset.h"
#include "flame/env.h"
#include "flame/envpool.h"

/* Env rows (rng.h reset addresses) of `flame eval` and `flame rollout` pools: far from training
   envs (0..) and the training's evaluation pools (train.c). */
#define ROLLOUT_ENV_OFFSET 0x01000000u
/* Parallel envs of `flame eval` and `flame rollout` unless --envs says otherwise. */
#define ROLLOUT_DEFAULT_ENVS 16

/* ------------------------------------------------------------------ policies */
typedef enum { ROLLOUT_AGENT, ROLLOUT_RANDOM, ROLLOUT_FUNCTION } RolloutPolicyKind;

typedef struct {
    RolloutPolicyKind kind;
    const BackendOps *ops; /* agent: a created backend holding the policy */
    Backend *backend;
    ActMode mode;          /* agent: ACT_DETERMINISTIC or ACT_EXPLORE */
    uint64_t seed;         /* random */
    /* function: actions (n x act_dim, agent units) for observations (n x obs_dim) */
    void (*fn)(void *ctx, const float *obs, int n, int act_dim, uint32_t call, float *actions);
    void *ctx;
} RolloutPolicy;

RolloutPolicy rollout_policy_agent(const BackendOps *ops, Backend *b, ActMode mode);
RolloutPolicy rollout_policy_random(uint64_t seed);

/* The policy's actions (n x act_dim) for observations (n x obs_dim) at draw index `call`. */
void rollout_policy_act(const RolloutPolicy *p, const float *obs, int n, int act_dim, uint32_t call,
                        float *actions);

/* ------------------------------------------------------------------ the engine */
typedef struct Rollout Rollout;

typedef struct {
    const EnvSpec *spec;
    const char *model_xml; /* NULL or "": the embedded model */
    int num_envs;          /* >= 1 */
    int num_threads;       /* >= 1 (host_resolve_threads turns "0 = auto" into a count) */
    uint64_t seed;
    uint32_t env_offset; /* env i resets from rng row env_offset + i (envpool.h) */
    bool record_state;   /* fill RolloutStep.qpos / qvel (MuJoCo state before each step) */
    /* An env whose episode ended keeps its final state until the sinks have seen the step
       (on_step, on_episode), and resets after (then on_start), instead of inside the pool's step:
       what a sink reads from the env itself (envpool_env: drawing it) is the episode's last state.
       The episodes, draws and reset addresses are the same either way; while the sinks run,
       RolloutStep.next_obs of an ended env holds its final observation. */
    bool keep_final;
} RolloutEnvs;

/* One vectorised step as the sinks see it (N rows each). */
typedef struct {
    int n, obs_dim, act_dim, nq, nv;
    uint32_t call;            /* draw index of the actions */
    const double *obs;        /* (N, S) observations before the step */
    const float *obs_f;       /* (N, S) the same in float32 (what the policy saw) */
    const float *act;         /* (N, D) actions, agent units */
    const double *reward;     /* (N) */
    const double *final_obs;  /* (N, S) observation the step reached (its episode's last) */
    const double *next_obs;   /* (N, S) next observation: the reset one where an episode ended
                                 (RolloutEnvs.keep_final: see there) */
    const uint8_t *terminated, *truncated, *unstable; /* (N) envpool.h flags */
    const double *episode_return;                     /* (N) running or finished return */
    const int *episode_length;                        /* (N) */
    const double *qpos, *qvel; /* (N, nq), (N, nv) state before the step; NULL unless recorded */
    const uint8_t *owed;       /* episode runs: (N) env still owes episodes; NULL: every env */
} RolloutStep;

/* An episode that ended in this step. */
typedef struct {
    int env;              /* pool index */
    uint32_t env_episode; /* episodes this env ended since the pool's reset (its reset address) */
    int length;
    double ret;
    bool terminated; /* false: truncated (time limit or instability) */
    bool unstable;
    int index; /* episode runs: its number in completion order; -1 when not counted (unstable,
                  or outside episode runs) */
} RolloutEpisode;

/* Receivers of a rollout; any callback may be NULL. A non-zero return stops the rollout and is
   returned (set the message with flame_errorf). on_step comes first, then on_episode for each
   episode that ended in the step, in env order, then on_start for each env that starts a new
   episode, in env order, once its reset state is in place. on_start: in episode runs, after the
   pool's reset for every env that owes episodes and after each episode's end for an env that
   still owes some; in rollout_step, after each episode's end. */
typedef struct {
    void *ctx;
    int (*on_step)(void *ctx, const RolloutStep *s);
    int (*on_episode)(void *ctx, const RolloutStep *s, const RolloutEpisode *e);
    int (*on_start)(void *ctx, int env);
} RolloutSink;

/* Seconds spent per phase, accumulated by rollout_step and rollout_episodes. */
typedef struct {
    double act_s;  /* float conversion of the observations and the policy */
    double env_s;  /* the env pool step */
    double sink_s; /* sinks and bookkeeping */
} RolloutTimes;

/* Creates the pool and its step buffers. FLAME_EINPUT with a message on bad sizes or model. */
int rollout_create(const RolloutEnvs *e, Rollout **out);
void rollout_free(Rollout *r);

/* The env pool (checkpoints save and restore its state). */
EnvPool *rollout_pool(Rollout *r);

/* Resets every env to episode 0. */
void rollout_reset(Rollout *r);

/* Reads the current observation of every env (after envpool_state_load). */
void rollout_observe(Rollout *r);

/* One vectorised step with draw index `call`; the sink sees every env (owed = NULL) and every
   episode that ended (index -1). `times` may be NULL. Returns the first non-zero sink status. */
int rollout_step(Rollout *r, const RolloutPolicy *p, uint32_t call, const RolloutSink *sink,
                 RolloutTimes *times);

/* ------------------------------------------------------------------ the replay sink */

/* Staging for pushing steps into a backend's replay: rows (s, a, r, s' = the true final
   observation, terminated); time-limit truncation bootstraps. */
typedef struct {
    const BackendOps *ops;
    Backend *b;
    int S, D;
    float *next_f, *rew_f, *obs_keep, *act_keep; /* (N, S), (N), (N, S), (N, D) */
    uint8_t *done8;                              /* (N) */
} RolloutReplay;

void rollout_replay_init(RolloutReplay *rr, const BackendOps *ops, Backend *b, int num_envs,
                         int obs_dim, int act_dim);
void rollout_replay_free(RolloutReplay *rr);

/* Pushes the step's rows, leaving out the unstable ones (the header comment); returns the number
   of rows pushed. */
int rollout_replay_push(RolloutReplay *rr, const RolloutStep *s);

/* ------------------------------------------------------------------ episode runs */
typedef struct {
    int episodes;       /* complete episodes to collect (>= 1) */
    uint32_t call_base; /* step k acts with draw index call_base + k */
    volatile sig_atomic_t *stop; /* non-NULL: a non-zero value stops the run (FLAME_ERUNTIME) */
    /* called about every 2 s while episodes are missing (may be NULL) */
    void (*progress)(void *ctx, int done, int total, int64_t steps, double seconds);
    void *progress_ctx;
} RolloutRun;

typedef struct {
    int episodes;     /* collected (== requested on success) */
    int64_t steps;    /* env steps of the collected episodes */
    int64_t unstable; /* episodes dropped because MuJoCo went unstable */
    double seconds;
    double *returns; /* (episodes) in completion order; rollout_result_free */
    int *lengths;    /* (episodes) */
    double return_mean, return_std, return_min, return_max, length_mean;
} RolloutResult;

/* Resets the pool and runs exactly run->episodes episodes (see the header comment). Returns
   FLAME_OK, FLAME_EINPUT (bad options), FLAME_ERUNTIME (stop request, too many unstable episodes)
   or a sink's status. `out` is filled in every case (free it with rollout_result_free). */
int rollout_episodes(Rollout *r, const RolloutPolicy *p, const RolloutRun *run,
                     const RolloutSink *sink, RolloutResult *out);
void rollout_result_free(RolloutResult *res);

/* An episode run on a pool of min(e->num_envs, run->episodes) envs created for it: statistics
   only (evaluation). */
int rollout_evaluate(const RolloutEnvs *e, const RolloutPolicy *p, const RolloutRun *run,
                     RolloutResult *out);

/* The same run with every counted episode passed to the dataset writer `w` (w may be NULL):
   observations (T + 1), actions in env units (center + a * half_range, in double as env_step
   computes them), rewards, flags, the MuJoCo state before each step, and for the random policy the
   log-density of its actions in env units. The writer is neither closed nor aborted here. */
int rollout_dataset(const RolloutEnvs *e, const RolloutPolicy *p, const RolloutRun *run,
                    DatasetWriter *w, RolloutResult *out);

#endif
