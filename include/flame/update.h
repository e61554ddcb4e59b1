/*
 * update.h: one gradient update, orchestrated once against the backend table
 * (README: "The algorithm as implemented"; the same sequence serves FLAME-M, FLAME-R and SAC, their differences
 * being switches resolved from the config).
 *
 * defines: update_context update_step update_counters_after update_schedule_period UpdateFlops
 *          update_flops
 */
#ifndef FLAME_UPDATE_H
#define FLAME_UPDATE_H

#include "flame/backend.h"

/* The scalars of the next update from the config and the counters. */
UpdateCtx update_context(const FlameConfig *cfg, const AgentCounters *c);

/* The optimiser step counters after `updates` updates from zero under the config's schedule
   (policy_delay, alpha.delay, alpha.learn, quirks.critic_double_step); counters->updates = updates. */
void update_counters_after(const FlameConfig *cfg, int64_t updates, AgentCounters *counters);

/* Updates after which the costly flags of update_context (actor and target steps) repeat: the
   least common multiple of update.policy_delay and update.target_delay, at most 16. Timings
   average over whole periods; alpha steps (one scalar Adam step) are left out. */
int update_schedule_period(const FlameConfig *cfg);

/* Runs one update: sample, critic target, critic step, candidate weights, actor, alpha, targets. */
void update_step(const BackendOps *ops, Backend *b);

/* GEMM FLOPs (2 per multiply-add; bias, activations, Adam not counted) of one update, per
   flame-algorithm.md §13, from the network layout of the config: a JVP costs 2 forwards, a
   parameter backward 2, an input-only backward 1. */
typedef struct {
    double f_policy, f_critic; /* forward FLOPs per row (all policy MLPs; one critic) */
    double critic_target;      /* next-action particles, scoring, entropy estimate, target Q */
    double critic_step;        /* twin-critic forward and backward on the batch */
    double qweight;            /* 2 B K candidate rows through both critics */
    double policy_step;        /* flow loss (collapsed or B*K rows), -Q term */
    double all_stages;         /* every stage once (§13 "total") */
    double per_update;         /* averaged over update_step's schedule: qweight and policy_step
                                  on actor updates only (every policy_delay), §13's last row */
} UpdateFlops;

void update_flops(const FlameConfig *cfg, int obs_dim, int act_dim, UpdateFlops *f);

#endif
