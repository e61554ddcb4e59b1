/*
 * update.h: one gradient update, orchestrated once against the backend table
 * (README: "The algorithm as implemented"; the same sequence serves FLAME-M, FLAME-R and SAC, their differences
 * being switches resolved from the config).
 *
 * defines: update_context update_step update_counters_after
 */
#ifndef FLAME_UPDATE_H
#define FLAME_UPDATE_H

#include "flame/backend.h"

/* The scalars of the next update from the config and the counters. */
UpdateCtx update_context(const FlameConfig *cfg, const AgentCounters *c);

/* The optimiser step counters after `updates` updates from zero under the config's schedule
   (policy_delay, alpha.delay, alpha.learn, quirks.critic_double_step); counters->updates = updates. */
void update_counters_after(const FlameConfig *cfg, int64_t updates, AgentCounters *counters);

/* Runs one update: sample, critic target, critic step, candidate weights, actor, alpha, targets. */
void update_step(const BackendOps *ops, Backend *b);

#endif
