/*
 * metrics.h: runs/<name>/metrics.h5, the machine-readable record of a run.
 *
 * Groups hold extendible, chunked 1-D datasets of equal length, declared once below:
 *   /train     one row every run.metrics_every env steps after the warm-up, one at every
 *              checkpoint and one at the end (update diagnostics over the interval since the
 *              previous row: train_stats.h)
 *   /episodes  one row per finished training episode
 *   /eval      one row per evaluation
 *   /timing    cumulative seconds per phase of the loop, one row with every /train row
 * A trailing underscore of a field name (return_) is not part of its dataset name. Every dataset
 * carries two string attributes: `units` and `help`.
 * Root attributes: config (resolved YAML), version, commit, backend, device, env_id, algo.
 * Rows are buffered in memory and appended at metrics_flush(), which opens the file, appends and
 * closes it: between flushes the file is closed, so other programs can read it during training and
 * a killed run leaves a readable file holding every row up to the last flush. On resume, rows newer than the checkpoint are dropped (metrics_truncate).
 *
 * defines: FLAME_METRICS_TRAIN FLAME_METRICS_EPISODES FLAME_METRICS_EVAL FLAME_METRICS_TIMING
 *          MetricsTrainRow MetricsEpisodeRow MetricsEvalRow MetricsTimingRow MetricsFile
 *          metrics_create metrics_open_append metrics_truncate metrics_add_* metrics_flush
 *          metrics_close
 */
#ifndef FLAME_METRICS_H
#define FLAME_METRICS_H

#include <stdint.h>

#include "flame/config.h"

/* X(name, kind I64|F64|U8, units, help). Units: "s", "transitions", "return" (the env's reward
   summed over steps; Q and TD targets are in return units times update.reward_scale), "nats",
   "1" for counts of their own kind and dimensionless ratios, as the help text says.
   /train update columns hold the interval since the previous row (train_stats.h): means over its
   updates, the extremes where the name says min or max, and the actor-step columns over its actor
   updates only. */
#define FLAME_METRICS_TRAIN(X)                                                                     \
    X(step, I64, "transitions", "env transitions collected (warm-up included)")                    \
    X(wall_time, F64, "s", "seconds since the run started (all sessions)")                         \
    X(updates, I64, "updates", "gradient updates done (cumulative)")                               \
    X(critic_loss, F64, "return^2",                                                                \
      "mean over the interval's updates of the two critics' mean TD loss")                         \
    X(q_mean, F64, "return", "mean over the interval's updates of the batch mean of Q1")           \
    X(q_min, F64, "return", "lowest Q1 of any batch in the interval")                              \
    X(q_max, F64, "return", "highest Q1 of any batch in the interval")                             \
    X(target_mean, F64, "return", "mean over the interval's updates of the mean TD target")        \
    X(actor_loss, F64, "1", "mean actor loss of the interval's actor steps (fm_loss + qterm_loss)")\
    X(fm_loss, F64, "action^2",                                                                    \
      "mean flow-matching loss of the interval's actor steps (collapsed form, without its "        \
      "constant)")                                                                                 \
    X(qterm_loss, F64, "return", "mean -Q part of the FLAME-M actor loss over the actor steps")    \
    X(alpha, F64, "return/nat", "mean temperature after the interval's updates")                   \
    X(entropy, F64, "nats",                                                                        \
      "mean over the interval's updates of the entropy estimate at s' (SAC: -mean log pi)")        \
    X(ess_mean, F64, "1",                                                                          \
      "mean effective sample size of the K candidate weights over the interval's actor steps")     \
    X(ess_min, F64, "1", "lowest effective sample size of any state in the interval's actor steps")\
    X(jvp_max, F64, "action", "largest |du| of the MeanFlow JVP in the interval's actor steps")    \
    X(updates_per_s, F64, "updates/s", "updates per second over the interval")                     \
    X(steps_per_s, F64, "transitions/s", "env transitions per second over the interval")           \
    X(instabilities, I64, "episodes", "episodes ended by MuJoCo instability (cumulative)")

#define FLAME_METRICS_EPISODES(X)                                                                  \
    X(step, I64, "transitions", "env transitions collected when the episode ended")                \
    X(return_, F64, "return", "undiscounted return (dataset \"return\")")                          \
    X(length, I64, "steps", "env steps of the episode")                                            \
    X(truncated, U8, "bool", "ended by the time limit (1) or terminated (0)")

#define FLAME_METRICS_EVAL(X)                                                                      \
    X(step, I64, "transitions", "env transitions collected")                                       \
    X(return_mean, F64, "return", "mean return of the evaluation episodes")                        \
    X(return_std, F64, "return", "standard deviation of the returns")                              \
    X(return_min, F64, "return", "lowest return")                                                  \
    X(return_max, F64, "return", "highest return")                                                 \
    X(length_mean, F64, "steps", "mean episode length")

#define FLAME_METRICS_TIMING(X)                                                                    \
    X(step, I64, "transitions", "env transitions collected")                                       \
    X(env_s, F64, "s", "seconds stepping the training envs (cumulative)")                          \
    X(act_s, F64, "s", "seconds choosing actions (cumulative)")                                    \
    X(update_s, F64, "s", "seconds in gradient updates, replay push included (cumulative)")        \
    X(eval_s, F64, "s", "seconds evaluating (cumulative)")                                         \
    X(io_s, F64, "s", "seconds writing metrics and checkpoints (cumulative)")

#define FLAME_METRICS_CTYPE_I64 int64_t
#define FLAME_METRICS_CTYPE_F64 double
#define FLAME_METRICS_CTYPE_U8 uint8_t
#define FLAME_METRICS_FIELD(name, kind, units, help) FLAME_METRICS_CTYPE_##kind name;

typedef struct {
    FLAME_METRICS_TRAIN(FLAME_METRICS_FIELD)
} MetricsTrainRow;
typedef struct {
    FLAME_METRICS_EPISODES(FLAME_METRICS_FIELD)
} MetricsEpisodeRow;
typedef struct {
    FLAME_METRICS_EVAL(FLAME_METRICS_FIELD)
} MetricsEvalRow;
typedef struct {
    FLAME_METRICS_TIMING(FLAME_METRICS_FIELD)
} MetricsTimingRow;

typedef struct MetricsFile MetricsFile;

/* Creates the file (truncating) with every dataset and the root attributes. */
int metrics_create(const char *path, const FlameConfig *cfg, const char *backend,
                   const char *device, MetricsFile **out);

/* Opens an existing file to append (resume). */
int metrics_open_append(const char *path, MetricsFile **out);

/* Drops every row with step > max_step (the part of a run after the checkpoint resumed from). */
int metrics_truncate(MetricsFile *m, int64_t max_step);

void metrics_add_train(MetricsFile *m, const MetricsTrainRow *r);
void metrics_add_episode(MetricsFile *m, const MetricsEpisodeRow *r);
void metrics_add_eval(MetricsFile *m, const MetricsEvalRow *r);
void metrics_add_timing(MetricsFile *m, const MetricsTimingRow *r);

/* Appends the buffered rows and flushes the file to disk. */
int metrics_flush(MetricsFile *m);

/* Flushes and closes (NULL is fine). */
int metrics_close(MetricsFile *m);

#endif
