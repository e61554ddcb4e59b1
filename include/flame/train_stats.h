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
 * defines: TrainStats train_stats_reset train_stats_add train_stats_lowest train_stats_highest
 *          train_stats_merge train_stats_fill RecentReturns
 *          TRAIN_RECENT_EPISODES recent_returns_add recent_returns_mean
 */
#ifndef FLAME_TRAIN_STATS_H
#define FLAME_TRAIN_STATS_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#include "flame/backend.h"

typedef struct TrainStats {
    int64_t updates, actor_updates;
    double critic_loss, q_mean, target_mean, alpha, entropy; /* sums over the updates */
    double q_min, q_max;                                     /* extremes */
    double actor_loss, fm_loss, qterm_loss, ess_mean;        /* sums over the actor steps */
    double ess_min, jvp_max;                                 /* extremes over the actor steps */
} TrainStats;

/* An empty interval. */
void train_stats_reset(TrainStats *s);

#ifdef __CUDACC__
#define TRAIN_STATS_HD __host__ __device__
#else
#define TRAIN_STATS_HD
#endif

/* extremes propagate NaN (fmin/fmax would drop it, hiding a diverged update) */
static inline TRAIN_STATS_HD double train_stats_lowest(double a, double b) {
    return isnan(a) || isnan(b) ? NAN : (b < a ? b : a);
}

static inline TRAIN_STATS_HD double train_stats_highest(double a, double b) {
    return isnan(a) || isnan(b) ? NAN : (b > a ? b : a);
}

/* Adds one update's diagnostics; actor_step: the update stepped the policy. The same code runs
   on the host (train.c) and in a backend that keeps the statistics on its device
   (BackendOps.stats_track), so both sum in the same order. */
static inline TRAIN_STATS_HD void train_stats_add(TrainStats *s, const UpdateMetrics *m,
                                                  bool actor_step) {
    s->updates++;
    s->critic_loss += 0.5 * (m->critic_loss[0] + m->critic_loss[1]);
    s->q_mean += m->q_mean;
    s->target_mean += m->target_mean;
    s->alpha += m->alpha;
    s->entropy += m->entropy;
    s->q_min = train_stats_lowest(s->q_min, m->q_min);
    s->q_max = train_stats_highest(s->q_max, m->q_max);
    if (actor_step) {
        s->actor_updates++;
        s->actor_loss += m->actor_loss;
        s->fm_loss += m->fm_loss;
        s->qterm_loss += m->qterm_loss;
        s->ess_mean += m->ess_mean;
        s->ess_min = train_stats_lowest(s->ess_min, m->ess_min);
        s->jvp_max = train_stats_highest(s->jvp_max, m->jvp_max);
    }
}

/* Adds the interval t to s (into an empty s: t exactly). */
void train_stats_merge(TrainStats *s, const TrainStats *t);

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
