/*
 * update.h: one gradient update, orchestrated once against the backend table
 * (README: "The algorithm as implemented"; the same sequence serves FLAME-M, FLAME-R and SAC, their differences
 * being switches resolved from the config).
 *
 * defines: update_context update_step
 */
#ifndef FLAME_UPDATE_H
#define FLAME_UPDATE_H

#include "flame/backend.h"

/* The scalars of the next update from the config and the counters. */
UpdateCtx update_context(const FlameConfig *cfg, const AgentCounters *c);

/* Runs one update: sample, critic target, critic step, candidate weights, actor, alpha, targets. */
void update_step(const BackendOps *ops, Backend *b);

#endif
