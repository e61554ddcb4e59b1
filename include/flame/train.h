/*
 * train.h: the training loop, as the authors' code runs it:
 *
 *   envpool step -> replay push -> update(s) -> metrics, with a uniform-random warm-up,
 *   evaluation of the deterministic EMA policy every run.eval_every env steps on separate envs,
 *   checkpoints every run.ckpt_every env steps and at the end, SIGINT/SIGTERM -> flush, checkpoint,
 *   exit 130/143.
 *
 * Step counting: `step` in outputs is environment transitions collected, warm-up included;
 * run.total_steps counts transitions after the warm-up (as the reference implementation does).
 *
 * defines: TrainOptions TrainSummary train_run eval_policy EvalResult
 */
#ifndef FLAME_TRAIN_H
#define FLAME_TRAIN_H

#include <stdbool.h>
#include <stdint.h>

#include "flame/backend.h"
#include "flame/config.h"

typedef struct {
    const char *run_dir;    /* output directory (created; must not exist unless resume/force) */
    bool force;             /* overwrite an existing run directory */
    const char *resume_ckpt; /* continue from this checkpoint (run_dir is its run) */
    bool quiet;             /* no progress output */
    bool write_outputs;     /* false: no run directory at all (benchmarks) */
    int64_t max_steps;      /* > 0: stop after this many transitions this session (benchmarks) */
} TrainOptions;

/* Seconds spent per phase of the loop, and what was done. */
typedef struct {
    double total_s, env_s, act_s, push_s, update_s, eval_s, io_s;
    int64_t env_steps, updates, episodes;
    double last_eval_return; /* NAN when no evaluation ran */
    double best_eval_return; /* NAN when no evaluation ran */
    const char *backend;
    int exit_code; /* 0, or 130/143 after SIGINT/SIGTERM */
} TrainSummary;

/* Runs (or resumes) training. Returns FLAME_OK, FLAME_EINPUT (bad run dir / checkpoint) or
   FLAME_ERUNTIME; summary->exit_code carries 130/143 when interrupted. */
int train_run(const FlameConfig *cfg, const TrainOptions *opt, TrainSummary *summary);

typedef struct {
    int episodes;
    double return_mean, return_std, return_min, return_max;
    double length_mean;
    double *returns; /* episodes values (caller frees with free()) */
    int *lengths;
} EvalResult;

/* Runs `episodes` episodes of the policy on fresh envs (env index offset 1 << 20, seeds from
   cfg->run.seed and `round`), deterministic (EMA policy, no exploration noise) unless stochastic. */
int eval_policy(const BackendOps *ops, Backend *b, const FlameConfig *cfg, int episodes,
                bool stochastic, uint32_t round, EvalResult *out);

#endif
