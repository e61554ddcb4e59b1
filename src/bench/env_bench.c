/*
 * env_bench.c: env pool throughput against a raw frame_skip x mj_step loop (see env_bench.h).
 * Random actions come from rng.h (RNG_STREAM_WARMUP) with a fixed seed, so runs are repeatable in
 * what they simulate, not in how long they take.
 */
#include "flame/env_bench.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "flame/check.h"
#include "flame/env.h"
#include "flame/envpool.h"
#include "flame/host.h"
#include "flame/rng.h"

#define ENV_BENCH_SEED 20240531u

typedef struct {
    const mjModel *m;
    int frame_skip, max_steps;
    uint32_t row;
    double seconds;
    uint64_t steps;
    double elapsed;
} EnvBenchRaw;

/* one thread of the raw loop: its own mjData, random ctrl in ctrlrange */
static void *env_bench_raw(void *arg) {
    EnvBenchRaw *r = arg;
    const mjModel *m = r->m;
    mjData *d = mj_makeData(m);
    mj_forward(m, d);
    uint64_t steps = 0;
    const double t0 = host_now();
    double t = t0;
    while (t - t0 < r->seconds) {
        for (int rep = 0; rep < 16; rep++, steps++) {
            if (steps % (uint64_t)r->max_steps == 0) {
                mj_resetData(m, d);
                mj_forward(m, d);
            }
            for (int a = 0; a < m->nu; a++) {
                double u = rng_uniform_d(ENV_BENCH_SEED, RNG_STREAM_WARMUP, (uint32_t)steps, r->row,
                                         (uint32_t)a);
                double lo = m->actuator_ctrlrange[2 * a], hi = m->actuator_ctrlrange[2 * a + 1];
                d->ctrl[a] = lo + (hi - lo) * u;
            }
            for (int k = 0; k < r->frame_skip; k++) {
                mj_step(m, d);
            }
            mj_rnePostConstraint(m, d);
        }
        t = host_now();
    }
    r->steps = steps;
    r->elapsed = t - t0;
    mj_deleteData(d);
    return NULL;
}

/* raw loop on nthreads threads; returns env steps per second (all threads) */
static double env_bench_raw_threads(const mjModel *m, int frame_skip, int max_steps, int nthreads,
                                    double seconds, uint64_t *total) {
    EnvBenchRaw *jobs = flame_calloc((size_t)nthreads, sizeof(EnvBenchRaw));
    pthread_t *th = flame_calloc((size_t)nthreads, sizeof(pthread_t));
    for (int t = 0; t < nthreads; t++) {
        jobs[t] = (EnvBenchRaw){m, frame_skip, max_steps, (uint32_t)t, seconds, 0, 0};
    }
    for (int t = 1; t < nthreads; t++) {
        int e = pthread_create(&th[t], NULL, env_bench_raw, &jobs[t]);
        FLAME_CHECK(e == 0, "env bench: cannot start thread (error %d)", e);
    }
    env_bench_raw(&jobs[0]);
    double rate = 0;
    *total = 0;
    for (int t = 0; t < nthreads; t++) {
        if (t > 0) {
            pthread_join(th[t], NULL);
        }
        *total += jobs[t].steps;
        rate += (double)jobs[t].steps / (jobs[t].elapsed > 0 ? jobs[t].elapsed : 1e-9);
    }
    flame_free(th);
    flame_free(jobs);
    return rate;
}

int env_bench_run(const char *env_id, int num_envs, int num_threads, double seconds,
                  EnvBenchResult *out) {
    memset(out, 0, sizeof *out);
    const EnvSpec *spec = env_spec_find(env_id);
    if (!spec) {
        return flame_errorf(FLAME_EINPUT, "env bench: unknown env id '%s' (see `flame envs`)",
                            env_id ? env_id : "(null)");
    }
    if (!(seconds > 0)) {
        return flame_errorf(FLAME_EINPUT, "env bench: seconds must be > 0 (got %g)", seconds);
    }
    EnvPool *p = NULL;
    int rc = envpool_create(spec, NULL, num_envs, num_threads, ENV_BENCH_SEED, 0, &p);
    if (rc != FLAME_OK) {
        return rc;
    }
    const int N = num_envs, S = spec->obs_dim, D = spec->act_dim;
    double *obs = flame_calloc((size_t)N * S, sizeof(double));
    double *final_obs = flame_calloc((size_t)N * S, sizeof(double));
    double *reward = flame_calloc((size_t)N, sizeof(double));
    uint8_t *flags = flame_calloc((size_t)N * 3, 1);
    float *act = flame_calloc((size_t)N * D, sizeof(float));
    EnvPoolStep st = {obs,           final_obs, reward, flags, flags + N,
                      flags + 2 * N, NULL,      NULL,   NULL,  NULL};

    /* 1. the pool */
    envpool_reset(p, obs);
    uint64_t batches = 0, episodes = 0;
    const double t0 = host_now();
    double t = t0;
    while (t - t0 < seconds) {
        for (int i = 0; i < N * D; i++) {
            act[i] = 2.0f * rng_uniform(ENV_BENCH_SEED, RNG_STREAM_WARMUP, (uint32_t)batches,
                                        (uint32_t)(i / D), (uint32_t)(i % D)) -
                     1.0f;
        }
        envpool_step(p, act, &st);
        for (int i = 0; i < N; i++) {
            episodes += flags[i] | flags[N + i];
        }
        batches++;
        t = host_now();
    }
    snprintf(out->env_id, sizeof out->env_id, "%s", spec->id);
    out->num_envs = N;
    out->num_threads = num_threads;
    out->frame_skip = env_frame_skip(envpool_env(p, 0));
    out->pool_steps = batches * (uint64_t)N;
    out->pool_steps_per_s = (double)out->pool_steps / (t - t0);
    out->pool_episodes = episodes;
    out->pool_instabilities = envpool_instability_count(p);

    /* 2 and 3. the raw loop on the same model, resetting as often as the pool's episodes ended
       (falling envs spend their time in other states than standing ones) */
    const mjModel *m = env_model(envpool_env(p, 0));
    double mean_len = episodes ? (double)out->pool_steps / (double)episodes : 1e300;
    int every = mean_len < (double)spec->max_episode_steps ? (int)(mean_len + 0.5)
                                                           : spec->max_episode_steps;
    out->raw_reset_every = every < 1 ? 1 : every;
    out->raw_steps_per_s_1t = env_bench_raw_threads(m, out->frame_skip, out->raw_reset_every, 1,
                                                    seconds, &out->raw_steps_1t);
    out->raw_steps_per_s_threads = env_bench_raw_threads(
        m, out->frame_skip, out->raw_reset_every, num_threads, seconds, &out->raw_steps_threads);
    out->overhead = out->raw_steps_per_s_threads / out->pool_steps_per_s;

    flame_free(act);
    flame_free(flags);
    flame_free(reward);
    flame_free(final_obs);
    flame_free(obs);
    envpool_free(p);
    return FLAME_OK;
}

void env_bench_print(FILE *f, const EnvBenchResult *r) {
    fprintf(f,
            "%-26s envs %4d threads %2d | pool %10.0f steps/s | raw 1 thread %10.0f steps/s | "
            "raw %d threads %10.0f steps/s | overhead x%.3f | episodes %llu, unstable %llu, raw "
            "reset every %d\n",
            r->env_id, r->num_envs, r->num_threads, r->pool_steps_per_s, r->raw_steps_per_s_1t,
            r->num_threads, r->raw_steps_per_s_threads, r->overhead,
            (unsigned long long)r->pool_episodes, (unsigned long long)r->pool_instabilities,
            r->raw_reset_every);
}
