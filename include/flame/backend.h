/*
 * backend.h: the boundary between the orchestration of an update (written once, src/algo/update.c)
 * and its two implementations: the CPU reference (src/algo/backend_cpu.c) and CUDA (kernels/).
 *
 * Stage operations, in the order of one update:
 *   act            best-of-N one-step MeanFlow sampling (EMA policy), scored by min twin-Q
 *   replay_push    append transitions to the backend's replay ring
 *   replay_sample  draw the minibatch of update n
 *   critic_target  next-action particles, entropy estimate H(s'), target twin-Q -> TD target y
 *   critic_step    twin-critic loss and gradient, one Adam step (or re-apply the same gradient)
 *   qweight        K posterior candidates, twin-critic scoring of B*K rows, softmax weights,
 *                  weighted tangent v-bar
 *   policy_step    MeanFlow loss by one JVP with tangent (v-bar, 0, 1), -Q term, backward, Adam
 *   alpha_step     temperature Adam step
 *   polyak         EMA of the critics (targets) and of the policy
 * Each op reads the scalars of the update from UpdateCtx and the step counters from BackendBase,
 * the first member of every backend object. Both backends use the same AgentLayout, so their states
 * convert to and from AgentState (host) losslessly: checkpoints are interchangeable.
 *
 * defines: Backend BackendBase BackendOps UpdateCtx UpdateMetrics CriticPhase ActMode
 *          BACKEND_STATS_SLOTS
 *          backend_cpu_ops backend_cuda_ops backend_select backend_base_init
 *          backend_counters_to_state backend_counters_from_state
 */
#ifndef FLAME_BACKEND_H
#define FLAME_BACKEND_H

#include <stdbool.h>
#include <stdint.h>

#include "flame/agent.h"
#include "flame/config.h"
#include "flame/replay.h"

typedef struct Backend Backend;

typedef struct {
    int64_t n;       /* index of this update (updates done before it) */
    bool do_actor;   /* policy Adam step this update */
    bool do_alpha;   /* temperature step this update */
    bool do_target;  /* Polyak averaging this update */
    double actor_lr; /* scheduled actor learning rate */
} UpdateCtx;

typedef struct {
    int64_t updates, actor_steps, critic_steps, alpha_steps;
} AgentCounters;

/* Diagnostics of the last update (metrics.h5 /train). */
typedef struct {
    double critic_loss[2];
    double q_mean, q_min, q_max; /* Q1 on the batch */
    double target_mean;          /* TD target y */
    double actor_loss;           /* total actor loss of the last actor step */
    double fm_loss;              /* flow-matching part (collapsed form: without its constant) */
    double qterm_loss;           /* -Q part (flame-m) */
    double entropy;              /* mean entropy estimate H(s') (SAC: -mean log pi) */
    double alpha;
    double ess_mean, ess_min;    /* effective sample size 1/sum w^2 of the K weights */
    double jvp_max;              /* max |du| of the MeanFlow JVP (dudt in the reference) */
} UpdateMetrics;

typedef struct {
    const FlameConfig *cfg;
    int obs_dim, act_dim;
    AgentCounters counters;
    UpdateMetrics metrics;
} BackendBase;

struct TrainStats; /* train_stats.h */

typedef enum { CRITIC_GRAD_AND_STEP, CRITIC_REAPPLY } CriticPhase;
typedef enum { ACT_EXPLORE, ACT_DETERMINISTIC } ActMode;

typedef struct BackendOps {
    const char *name;
    /* cfg must outlive the backend; it must be resolved and validated */
    int (*create)(const FlameConfig *cfg, int obs_dim, int act_dim, Backend **out);
    void (*destroy)(Backend *b);
    /* actions (n x D, agent units) for observations (n x S); `call` addresses the draws */
    void (*act)(Backend *b, const float *obs, int n, ActMode mode, uint32_t call, float *actions);
    void (*replay_push)(Backend *b, const float *obs, const float *act, const float *rew,
                        const float *next_obs, const uint8_t *done, int n);
    int64_t (*replay_size)(Backend *b);
    void (*replay_sample)(Backend *b, const UpdateCtx *u);
    void (*critic_target)(Backend *b, const UpdateCtx *u);
    void (*critic_step)(Backend *b, const UpdateCtx *u, CriticPhase phase);
    void (*qweight)(Backend *b, const UpdateCtx *u);
    void (*policy_step)(Backend *b, const UpdateCtx *u);
    void (*alpha_step)(Backend *b, const UpdateCtx *u);
    void (*polyak)(Backend *b, const UpdateCtx *u);
    /* whole-state transfer (checkpoints, parity tests); counters travel with the state */
    void (*get_state)(Backend *b, AgentState *dst);
    void (*set_state)(Backend *b, const AgentState *src);
    /* replay contents (host copy) */
    void (*get_replay)(Backend *b, Replay *dst);
    void (*set_replay)(Backend *b, const Replay *src);
    /* the update's diagnostics (may synchronise a device) */
    void (*get_metrics)(Backend *b, UpdateMetrics *m);
    /* end of one update (may be NULL): recording, graph boundaries */
    void (*end_update)(Backend *b, const UpdateCtx *u);
    /* wait until all queued work is done (timing; NULL for synchronous backends) */
    void (*sync)(Backend *b);
    /* (may be NULL) from the next act on, act with the state that the work queued so far
       reaches, without waiting for it now: act then runs beside the updates queued later, whose
       effect it sees only after the next publish. Without a publish act uses the current state
       (the strictly sequential order). */
    void (*publish)(Backend *b);
    /* (may be NULL: the caller adds get_metrics after every update to its own TrainStats) the
       interval statistics of train_stats.h kept by the backend, for a backend whose metrics cost
       a wait for the device: from stats_track(b, n) on (n <= BACKEND_STATS_SLOTS, 0 stops),
       every update adds its diagnostics to each of n intervals without a host round trip;
       stats_take copies interval k out (waiting for the queued work) and starts it again. */
    void (*stats_track)(Backend *b, int n);
    void (*stats_take)(Backend *b, int k, struct TrainStats *out);
} BackendOps;

#define BACKEND_STATS_SLOTS 2

/* CPU backend only: record every following update's random draws (and minibatch when with_batch)
   into an HDF5 noise bundle; the file is complete when the backend is destroyed. */
int backend_cpu_record_noise(Backend *b, const char *path, bool with_batch);

extern const BackendOps backend_cpu_ops;
#ifdef FLAME_HAVE_CUDA
extern const BackendOps backend_cuda_ops;
#endif

/* Picks the backend for backend.type (auto: CUDA when built with it and a device exists).
   Returns NULL with FLAME_EINPUT set when cuda is asked for and unavailable. */
const BackendOps *backend_select(const FlameConfig *cfg);

/* The fields every backend starts from: config, sizes, zero counters and metrics. */
void backend_base_init(BackendBase *base, const FlameConfig *cfg, int obs_dim, int act_dim);

/* The step counters travel with the state (get_state / set_state). */
void backend_counters_to_state(const BackendBase *base, AgentState *dst);
void backend_counters_from_state(BackendBase *base, const AgentState *src);

static inline BackendBase *backend_base(Backend *b) {
    return (BackendBase *)b;
}

#endif
