/*
 * bench_env.c: `flame bench env`: env pool steps per second per env id and thread count, next to
 * a raw frame_skip x mj_step loop on the same model in the same run (env_bench_run), and the
 * overhead ratio raw / pool at the same thread count (1.0: the pool costs nothing over MuJoCo).
 *
 * Ids: --env (repeatable), default the paper's five tasks. Threads: --threads LIST, default 1, 2,
 * 4, ... up to the core count (which is always included). The pool has max(env.num_envs, largest
 * thread count) envs, the same for every thread count. Validation: every count and rate positive
 * and finite, whole batches stepped.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "flame/bench.h"
#include "flame/check.h"
#include "flame/env.h"
#include "flame/env_bench.h"
#include "flame/host.h"

static const char *const env_default_ids[] = {"HalfCheetah-v5", "Hopper-v5", "Walker2d-v5",
                                              "Ant-v5", "Humanoid-v5"};

static bool env_result_valid(const EnvBenchResult *r) {
    return r->pool_steps > 0 && r->raw_steps_1t > 0 && r->raw_steps_threads > 0 &&
           r->pool_steps % (uint64_t)r->num_envs == 0 && isfinite(r->pool_steps_per_s) &&
           r->pool_steps_per_s > 0 && isfinite(r->raw_steps_per_s_1t) &&
           r->raw_steps_per_s_1t > 0 && isfinite(r->raw_steps_per_s_threads) &&
           r->raw_steps_per_s_threads > 0 && isfinite(r->overhead) && r->overhead > 0;
}

int bench_env(const BenchOptions *o) {
    FlameConfig cfg;
    int rc = bench_load_config(o, NULL, &cfg);
    if (rc != FLAME_OK) {
        return rc;
    }
    const char *ids[BENCH_MAX_IDS];
    int nid = 0;
    if (o->n_env_ids > 0) {
        for (int i = 0; i < o->n_env_ids; i++) {
            ids[nid++] = o->env_ids[i];
        }
    } else if (o->quick) {
        ids[nid++] = "Hopper-v5";
    } else {
        for (size_t i = 0; i < sizeof env_default_ids / sizeof env_default_ids[0]; i++) {
            ids[nid++] = env_default_ids[i];
        }
    }
    for (int i = 0; i < nid; i++) {
        if (!env_spec_find(ids[i])) {
            return flame_errorf(FLAME_EINPUT, "unknown env id '%s' (see `flame envs`)", ids[i]);
        }
    }
    int threads[BENCH_MAX_THREADS], nt = 0;
    int W = host_cores();
    if (o->n_threads > 0) {
        for (int i = 0; i < o->n_threads; i++) {
            threads[nt++] = o->threads[i];
        }
    } else if (o->quick) {
        threads[nt++] = 1;
        if (W > 1) {
            threads[nt++] = 2;
        }
    } else {
        for (int t = 1; t < W && nt < BENCH_MAX_THREADS - 1; t *= 2) {
            threads[nt++] = t;
        }
        threads[nt++] = W;
    }
    int max_t = 1;
    for (int i = 0; i < nt; i++) {
        max_t = threads[i] > max_t ? threads[i] : max_t;
    }
    int N = cfg.env.num_envs > max_t ? cfg.env.num_envs : max_t;
    double seconds = o->seconds > 0 ? o->seconds : (o->quick ? 0.05 : 1.0);

    printf("flame bench env: %d env(s) per pool, %.2f s per measurement (pool, raw 1 thread, raw T "
           "threads)\n",
           N, seconds);
    bench_print_context(NULL);
    printf("\n");
    printf("  %-22s %7s %14s %14s %14s %9s %9s   %s\n", "env", "threads", "pool steps/s",
           "raw 1t steps/s", "raw Tt steps/s", "overhead", "episodes", "valid");
    int status = FLAME_OK;
    for (int i = 0; i < nid; i++) {
        for (int t = 0; t < nt; t++) {
            EnvBenchResult r;
            rc = env_bench_run(ids[i], N, threads[t], seconds, &r);
            if (rc != FLAME_OK) {
                return rc;
            }
            bool ok = env_result_valid(&r);
            printf("  %-22s %7d %14.0f %14.0f %14.0f %9.3f %9llu   %s\n", r.env_id, r.num_threads,
                   r.pool_steps_per_s, r.raw_steps_per_s_1t, r.raw_steps_per_s_threads, r.overhead,
                   (unsigned long long)r.pool_episodes, ok ? "ok" : "FAILED");
            const EnvSpec *spec = env_spec_find(ids[i]);
            char name[128];
            snprintf(name, sizeof name, "env/%s/t%d", r.env_id, r.num_threads);
            BenchJson j;
            bench_json_header(&j, "env", name, ok ? "ok" : "failed", ok, false, NULL, 0, 0,
                              o->quick);
            bench_json_str(&j, "env_id", r.env_id);
            bench_json_key(&j, "sizes");
            bench_json_int(&j, "S", spec->obs_dim);
            bench_json_int(&j, "D", spec->act_dim);
            bench_json_int(&j, "num_envs", r.num_envs);
            bench_json_int(&j, "threads", r.num_threads);
            bench_json_int(&j, "frame_skip", r.frame_skip);
            bench_json_end(&j);
            char summary[160];
            snprintf(summary, sizeof summary, "env=%s num_envs=%d threads=%d seconds=%g", r.env_id,
                     r.num_envs, r.num_threads, seconds);
            bench_json_str(&j, "config", summary);
            bench_json_num(&j, "pool_steps_per_s", r.pool_steps_per_s);
            bench_json_num(&j, "raw_steps_per_s_1t", r.raw_steps_per_s_1t);
            bench_json_num(&j, "raw_steps_per_s", r.raw_steps_per_s_threads);
            bench_json_num(&j, "overhead", r.overhead);
            bench_json_int(&j, "pool_steps", (int64_t)r.pool_steps);
            bench_json_int(&j, "raw_steps_1t", (int64_t)r.raw_steps_1t);
            bench_json_int(&j, "raw_steps", (int64_t)r.raw_steps_threads);
            bench_json_int(&j, "pool_episodes", (int64_t)r.pool_episodes);
            bench_json_int(&j, "pool_instabilities", (int64_t)r.pool_instabilities);
            bench_json_int(&j, "raw_reset_every", r.raw_reset_every);
            bench_json_num(&j, "seconds", seconds);
            rc = bench_json_write(&j, o->json_path);
            bench_json_free(&j);
            if (rc != FLAME_OK) {
                return rc;
            }
            if (!ok && status == FLAME_OK) {
                status = flame_errorf(FLAME_ERUNTIME, "env %s: invalid measurement", name);
            }
        }
    }
    printf("  (overhead = raw steps/s at T threads / pool steps/s at T threads; 1.0 = no cost)\n");
    return status;
}
