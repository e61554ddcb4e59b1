/*
 * train_start.h: what `flame train` says before it starts: one block with the backend and its
 * device, the BLAS library and its kernel set (blas_core.h), the networks' parameter counts, the
 * replay memory, and an estimate of how long the rest of the run takes.
 *
 * The estimate times the parts of one loop iteration on scratch copies, never on the run itself
 * (whose draws and counters must not move):
 *   updates   a scratch agent of the run's config (same backend and networks; a replay ring of
 *             max(batch, 1024) made-up transitions) runs whole periods of the update schedule
 *             (update_schedule_period: policy and target delays), after one untimed update
 *             (CPU) or two periods (CUDA: the first updates of each flag combination are eager
 *             or captured), until TRAIN_ESTIMATE_BUDGET_S seconds or 64 updates are timed;
 *   acting    the scratch agent's exploring act on the N training observations;
 *   envs      a scratch pool of the N training envs (own reset rows) stepping random actions.
 * From these the model adds up, from the session's first step to the last:
 *   warm-up       its vectorised steps x the env step;
 *   update phase  its vectorised steps x (env step + act + updates_per_iter x update);
 *   evaluations   the rounds left x run.eval_episodes episodes at the env's time limit (an upper
 *                 bound), env steps at the training pool's cost per transition, one act call per
 *                 vectorised evaluation step at the training act's cost.
 * Metrics and checkpoint writes are not counted. The update phase's modelled env steps per second
 * (evaluations included) also drive the progress line's ETA during the warm-up (progress.h).
 *
 * A run on the CPU backend that the model puts over TRAIN_LONG_RUN_S gets a note with the CUDA
 * backend's modelled time: each update at its GEMM FLOPs (update_flops) at 70 % of an H100's
 * ~60 TFLOP/s fp32 FMA peak plus 0.3 ms of graph-launch latency (kernels/NOTES.md: ~190 graph
 * nodes at 1-2 us), envs and acting as measured here. It is a model: no GPU number has been
 * measured yet.
 *
 * defines: TrainEstimate TrainStartInfo train_estimate train_estimate_model train_start_block
 *          TRAIN_ESTIMATE_BUDGET_S TRAIN_LONG_RUN_S CUDA_MODEL_*
 */
#ifndef FLAME_TRAIN_START_H
#define FLAME_TRAIN_START_H

#include <stdint.h>
#include <stdio.h>

#include "flame/backend.h"
#include "flame/config.h"

#define TRAIN_ESTIMATE_BUDGET_S 0.5   /* seconds of timed updates at most (whole periods) */
#define TRAIN_LONG_RUN_S (3.0 * 3600) /* a CPU run longer than this gets the CUDA note */
/* the CUDA model (kernels/NOTES.md, H100 SXM) */
#define CUDA_MODEL_FP32_PEAK 60e12 /* FLOP/s */
#define CUDA_MODEL_EFFICIENCY 0.7  /* fraction of the peak on the whole update */
#define CUDA_MODEL_LAUNCH_S 0.3e-3 /* graph-launch latency per update */

typedef struct {
    /* measured on the scratch copies */
    double update_s; /* seconds per update (averaged over whole schedule periods) */
    int timed_updates;
    double act_s;      /* seconds per exploring act call on N observations */
    double env_step_s; /* seconds per vectorised step of the N training envs */
    /* the model, from the session's first step to the end of the run */
    int64_t warmup_steps, train_steps; /* env steps left in each phase */
    int64_t updates, eval_rounds;
    double warmup_s, train_s, eval_s, total_s;
    double update_phase_sps; /* env steps per second after the warm-up, evaluations included */
    /* the CUDA model for a CPU run (NaN when not modelled) */
    double flops_per_update, cuda_update_s, cuda_total_s;
} TrainEstimate;

/* Times updates, acting and env steps on scratch copies (header comment) and fills the model.
   Returns FLAME_OK or the error of a scratch copy that could not be made. */
int train_estimate(const FlameConfig *cfg, const BackendOps *ops, int obs_dim, int act_dim,
                   int num_envs, int env_threads, int64_t from_step, TrainEstimate *e);

/* The model from the measured fields (update_s, act_s, env_step_s) of `e`; cuda: also the CUDA
   model (for runs on the CPU backend). */
void train_estimate_model(const FlameConfig *cfg, int num_envs, int obs_dim, int act_dim,
                          int64_t from_step, bool cuda, TrainEstimate *e);

/* What the start block shows besides the estimate. */
typedef struct {
    const FlameConfig *cfg;
    const char *backend;   /* "cpu" or "cuda" */
    const char *device;    /* CPU model or GPU name */
    const char *blas;      /* blas_info() */
    const char *blas_core; /* blas_core_describe() */
    const char *cuda_here; /* for the note: "a CUDA device is here: ...", or why there is none */
    int obs_dim, act_dim;
    const TrainEstimate *est; /* NULL: no estimate (it failed) */
} TrainStartInfo;

/* Prints the block (lines of "  key: text"). */
void train_start_block(FILE *out, const TrainStartInfo *in);

#endif
