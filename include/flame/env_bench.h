/*
 * env_bench.h: throughput of the env pool against a raw MuJoCo loop on the same model.
 *
 * env_bench_run measures, in one run and for about `seconds` each:
 *   1. the pool: envpool_step on num_envs envs with num_threads threads and uniform random agent
 *      actions (auto-reset and time limits included);
 *   2. the raw loop on one thread: one mjData, frame_skip x mj_step + one mj_rnePostConstraint per
 *      env step, uniform random ctrl, mj_resetData every raw_reset_every env steps (the pool's
 *      mean episode length, so both spend their time in similar states);
 *   3. the same raw loop on num_threads threads, each with its own mjData.
 * overhead = raw_threads_steps_per_s / pool_steps_per_s (1.0 means the pool costs nothing over
 * plain MuJoCo at the same thread count). Timing only; no assertion on speed anywhere.
 *
 * defines: EnvBenchResult env_bench_run env_bench_print
 */
#ifndef FLAME_ENV_BENCH_H
#define FLAME_ENV_BENCH_H

#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    char env_id[48];
    int num_envs, num_threads, frame_skip;
    int raw_reset_every;            /* env steps between resets of the raw loop */
    double pool_steps_per_s;        /* env steps per second through the pool */
    double raw_steps_per_s_1t;      /* raw loop, one thread */
    double raw_steps_per_s_threads; /* raw loop, num_threads threads */
    double overhead;                /* raw_steps_per_s_threads / pool_steps_per_s */
    uint64_t pool_steps, raw_steps_1t, raw_steps_threads;
    uint64_t pool_episodes, pool_instabilities;
} EnvBenchResult;

/* Runs the three measurements; FLAME_EINPUT with a message for an unknown id or bad sizes. */
int env_bench_run(const char *env_id, int num_envs, int num_threads, double seconds,
                  EnvBenchResult *out);

/* One human-readable line per result. */
void env_bench_print(FILE *f, const EnvBenchResult *r);

#ifdef __cplusplus
}
#endif

#endif
