/*
 * train_stats.h: what the training loop reports about its updates and episodes over an interval,
 * rather than the last update's snapshot: the /train rows of metrics.h5 (the interval since the
 * previous row) and the progress line (the interval since the previous line).
 *
 * Per update the loop adds the backend's diagnostics (UpdateMetrics). An interval's statistics are
 *   means over its updates:      critic_loss, q_mean, target_mean, alpha, entropy
 *   extremes over its updates:   q_min (lowest), q_max (highest)
 *   over its actor steps only:   actor_loss, fm_loss, qterm_loss, ess_mean (means), ess_min
 *                                (lowest), jvp_max (highest): the other updates leave these
 *                                diagnostics at the last actor step's values (update.c), and
 *                                counting those again would weight them by the policy delay.
 * A field whose interval has no update (or no actor step) keeps the value the caller passes in:
 * the last update's (the loop reads it from the backend). Sums are in double, added in update
 * order, so the statistics of a resumed run equal those of an uninterrupted one whenever the
 * interval starts at the same update (train.c writes a row at every checkpoint for that).
 *
 * The recent training returns are the last TRAIN_RECENT_EPISODES finished episodes' returns.
 *
 * defines: TrainStats train_stats_reset train_stats_add train_stats_fill RecentReturns
 *          TRAIN_RECENT_EPISODES recent_returns_add recent_returns_mean
 */
#ifndef FLAME_TRAIN_STATS_H
#define FLAME_TRAIN_STATS_H

#include <stdbool.h>
#include <stdint.h>

#include "flame/backend.h"

typedef struct {
    int64_t updates, actor_updates;
    double critic_loss, q_mean, target_mean, alpha, entropy; /* sums over the updates */
    double q_min, q_max;                                     /* extremes */
    double actor_loss, fm_loss, qterm_loss, ess_mean;        /* sums over the actor steps */
    double ess_min, jvp_max;                                 /* extremes over the actor steps */
} TrainStats;

/* An empty interval. */
void train_stats_reset(TrainStats *s);

/* Adds one update's diagnostics; actor_step: the update stepped the policy. */
void train_stats_add(TrainStats *s, const UpdateMetrics *m, bool actor_step);

/* Replaces the fields of `m` (the last update's values) by the interval's statistics where the
   interval has updates (actor steps for the actor fields); critic_loss[0] and [1] both get the
   mean of their average. Returns the number of updates in the interval. */
int64_t train_stats_fill(const TrainStats *s, UpdateMetrics *m);

#define TRAIN_RECENT_EPISODES 10

typedef struct {
    double ret[TRAIN_RECENT_EPISODES];
    int n, next;
} RecentReturns;

void recent_returns_add(RecentReturns *r, double ret);

/* Mean of the returns held (NaN when none). */
double recent_returns_mean(const RecentReturns *r);

#endif
