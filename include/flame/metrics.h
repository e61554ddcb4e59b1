/*
 * metrics.h: runs/<name>/metrics.h5, the machine-readable record of a run.
 *
 * Groups hold extendible, chunked 1-D datasets of equal length, declared once below:
 *   /train     one row every run.metrics_every env steps after the warm-up (update diagnostics)
 *   /episodes  one row per finished training episode
 *   /eval      one row per evaluation
 *   /timing    cumulative seconds per phase of the loop, one row with every /train row
 * A trailing underscore of a field name (return_) is not part of its dataset name.
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

/* X(name, kind I64|F64|U8, unit/help) */
#define FLAME_METRICS_TRAIN(X)                                                                     \
    X(step, I64, "env transitions collected (warm-up included)")                                  \
    X(wall_time, F64, "seconds since the run started (all sessions)")                              \
    X(updates, I64, "gradient updates done")                                                       \
    X(critic_loss, F64, "mean of the two critics' TD losses")                                      \
    X(q_mean, F64, "mean Q1 on the batch")                                                         \
    X(q_min, F64, "min Q1 on the batch")                                                           \
    X(q_max, F64, "max Q1 on the batch")                                                           \
    X(target_mean, F64, "mean TD target")                                                          \
    X(actor_loss, F64, "actor loss of the last actor step")                                        \
    X(fm_loss, F64, "flow-matching part (collapsed form, without its constant)")                   \
    X(qterm_loss, F64, "-Q part of the FLAME-M actor loss")                                        \
    X(alpha, F64, "temperature")                                                                   \
    X(entropy, F64, "mean entropy estimate at s' (SAC: -mean log pi)")                             \
    X(ess_mean, F64, "mean effective sample size of the K candidate weights")                      \
    X(ess_min, F64, "min effective sample size")                                                   \
    X(jvp_max, F64, "max |du| of the MeanFlow JVP")                                                \
    X(updates_per_s, F64, "updates per second since the previous row")                             \
    X(steps_per_s, F64, "env transitions per second since the previous row")                       \
    X(instabilities, I64, "episodes ended by MuJoCo instability (cumulative)")

#define FLAME_METRICS_EPISODES(X)                                                                  \
    X(step, I64, "env transitions collected when the episode ended")                               \
    X(return_, F64, "undiscounted return (dataset \"return\")")                                                          \
    X(length, I64, "steps")                                                                        \
    X(truncated, U8, "ended by the time limit or instability (1) or terminated (0)")

#define FLAME_METRICS_EVAL(X)                                                                      \
    X(step, I64, "env transitions collected")                                                      \
    X(return_mean, F64, "mean return of the evaluation episodes")                                  \
    X(return_std, F64, "standard deviation of the returns")                                        \
    X(return_min, F64, "lowest return")                                                            \
    X(return_max, F64, "highest return")                                                           \
    X(length_mean, F64, "mean episode length")

#define FLAME_METRICS_TIMING(X)                                                                    \
    X(step, I64, "env transitions collected")                                                      \
    X(env_s, F64, "seconds stepping the training envs")                                            \
    X(act_s, F64, "seconds choosing actions")                                                      \
    X(update_s, F64, "seconds in gradient updates (replay push included)")                         \
    X(eval_s, F64, "seconds evaluating")                                                           \
    X(io_s, F64, "seconds writing metrics and checkpoints")

#define FLAME_METRICS_CTYPE_I64 int64_t
#define FLAME_METRICS_CTYPE_F64 double
#define FLAME_METRICS_CTYPE_U8 uint8_t
#define FLAME_METRICS_FIELD(name, kind, help) FLAME_METRICS_CTYPE_##kind name;

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
