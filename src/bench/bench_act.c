/*
 * bench_act.c: `flame bench act`: latency of the backend's act op (best-of-N one-step MeanFlow
 * sampling scored by the twin critics, design.md §4) at batch 1 (evaluation, the paper's latency
 * protocol, flame-algorithm.md §12.3) and at env.num_envs (one vectorised env step), in both modes
 * (deterministic: evaluation particles, no exploration noise; exploring: acting particles + noise).
 *
 * Per (backend variant, batch, mode): validate (two calls with the same call index give the same
 * finite actions, deterministic ones inside [-1, 1]), warm up, time single calls (sync after each)
 * for about `seconds` and at least 100 calls, validate again against the first actions (acting
 * must leave the state untouched); report p50, p99, mean, min, max in ms and actions per second.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "flame/bench.h"
#include "flame/check.h"
#include "flame/env.h"
#include "flame/host.h"
#ifdef FLAME_HAVE_CUDA
#include "flame/cuda_api.h"
#endif

typedef struct {
    bool ok;
    char why[200];
    bool repeatable; /* same call index, same actions (bitwise) */
    BenchStats ms;
    int calls;
} ActResult;

/* actions of one call: finite, and inside the box when deterministic */
static bool act_sane(const float *a, int n, ActMode mode) {
    for (int i = 0; i < n; i++) {
        if (!isfinite(a[i]) || (mode == ACT_DETERMINISTIC && fabsf(a[i]) > 1.0f)) {
            return false;
        }
    }
    return true;
}

static void act_case(const BenchVariant *v, Backend *b, const float *obs, int batch, int D,
                     ActMode mode, const BenchOptions *o, ActResult *r) {
    const BackendOps *ops = v->ops;
    memset(r, 0, sizeof *r);
    size_t na = (size_t)batch * D;
    float *a0 = flame_malloc(na * sizeof(float)), *a1 = flame_malloc(na * sizeof(float));
    const uint32_t ref_call = 0x7fff0000u;

    /* validate before: repeatable and sane */
    ops->act(b, obs, batch, mode, ref_call, a0);
    ops->act(b, obs, batch, mode, ref_call, a1);
    r->repeatable = !memcmp(a0, a1, na * sizeof(float));
    r->ok = act_sane(a0, (int)na, mode) && act_sane(a1, (int)na, mode);
    if (!r->ok) {
        snprintf(r->why, sizeof r->why, "non-finite or out-of-box actions before timing");
    } else if (!r->repeatable && !v->cuda) {
        r->ok = false;
        snprintf(r->why, sizeof r->why, "two calls with the same index gave different actions");
    }

    /* warm up, then time single calls */
    const double seconds = o->seconds > 0 ? o->seconds : (o->quick ? 0.02 : 1.0);
    const int warm = o->quick ? 3 : 20, min_calls = o->quick ? 10 : 100, max_calls = 1000000;
    uint32_t call = 1;
    for (int i = 0; i < warm && r->ok; i++) {
        ops->act(b, obs, batch, mode, call++, a1);
    }
    int cap = 4096, n = 0;
    double *ms = flame_malloc((size_t)cap * sizeof(double));
    double start = host_now();
    while (r->ok && n < max_calls && (n < min_calls || host_now() - start < seconds)) {
        double t0 = host_now();
        ops->act(b, obs, batch, mode, call++, a1);
        if (ops->sync) {
            ops->sync(b);
        }
        double dt = host_now() - t0;
        if (n == cap) {
            double *bigger = flame_malloc((size_t)cap * 2 * sizeof(double));
            memcpy(bigger, ms, (size_t)cap * sizeof(double));
            flame_free(ms);
            ms = bigger;
            cap *= 2;
        }
        ms[n++] = 1e3 * dt;
    }
    bench_stats(ms, n, &r->ms);
    r->calls = n;
    flame_free(ms);

    /* validate after: the last timed call is sane and the reference call is unchanged */
    if (r->ok) {
        bool sane = act_sane(a1, (int)na, mode);
        ops->act(b, obs, batch, mode, ref_call, a1);
        bool same = !memcmp(a0, a1, na * sizeof(float));
        if (!sane) {
            r->ok = false;
            snprintf(r->why, sizeof r->why, "non-finite or out-of-box actions during timing");
        } else if (!same && !v->cuda) {
            r->ok = false;
            snprintf(r->why, sizeof r->why, "actions of the reference call changed during timing");
        }
        r->repeatable = r->repeatable && same;
    }
    flame_free(a0);
    flame_free(a1);
}

static const char *const act_quick_defaults[] = {"net.hidden=32", "net.layers=2", NULL};

/* one line of the table and one JSON record */
static int act_report(const BenchOptions *o, const BenchVariant *v, const FlameConfig *vc, int S,
                      int D, int batch, const char *mode, const ActResult *r) {
    double aps = r->ms.mean > 0 ? batch / (r->ms.mean * 1e-3) : NAN;
    printf("  %-22s %6d %-14s %9.3f %9.3f %9.3f %9.3f %9.3f %8d %12.0f   %s%s\n", v->name, batch,
           mode, r->ms.p50, r->ms.p99, r->ms.mean, r->ms.min, r->ms.max, r->calls, aps,
           r->ok ? "ok" : "FAILED: ", r->ok ? "" : r->why);
    char name[128];
    snprintf(name, sizeof name, "act/%s/b%d/%s", v->name, batch, mode);
    BenchJson j;
    bench_json_header(&j, "act", name, r->ok ? "ok" : "failed", r->ok, v->cuda, vc, S, D,
                      o->quick);
    bench_json_variant(&j, v);
    bench_json_int(&j, "batch", batch);
    bench_json_str(&j, "mode", mode);
    bench_json_int(&j, "particles", vc->flow.num_particles);
    if (!r->ok) {
        bench_json_str(&j, "error", r->why);
    }
    bench_json_bool(&j, "repeatable", r->repeatable);
    bench_json_num(&j, "p50_ms", r->ms.p50);
    bench_json_num(&j, "p99_ms", r->ms.p99);
    bench_json_num(&j, "mean_ms", r->ms.mean);
    bench_json_num(&j, "min_ms", r->ms.min);
    bench_json_num(&j, "max_ms", r->ms.max);
    bench_json_int(&j, "calls", r->calls);
    bench_json_num(&j, "actions_per_s", aps);
    int rc = bench_json_write(&j, o->json_path);
    bench_json_free(&j);
    return rc;
}

/* every batch and mode of one variant; *failed becomes FLAME_ERUNTIME (message set) at the first
   validation that fails, and the measurements go on */
static int act_variant(const BenchOptions *o, const BenchVariant *v, const FlameConfig *cfg,
                       const float *obs, int S, int D, int *failed) {
    FlameConfig vc = *cfg;
    vc.backend.type = v->cuda ? BACKEND_CUDA : BACKEND_CPU;
    vc.backend.kernels = v->kernels;
    vc.backend.precision = v->precision;
    Backend *b = NULL;
    int crc = v->ops->create(&vc, S, D, &b);
    const int N = cfg->env.num_envs, batches[2] = {1, N}, nb = N > 1 ? 2 : 1;
    int rc = FLAME_OK;
    for (int bi = 0; bi < nb && rc == FLAME_OK; bi++) {
        for (int m = 0; m < 2 && rc == FLAME_OK; m++) {
            ActMode mode = m == 0 ? ACT_DETERMINISTIC : ACT_EXPLORE;
            ActResult r;
            memset(&r, 0, sizeof r);
            if (crc == FLAME_OK) {
                act_case(v, b, obs, batches[bi], D, mode, o, &r);
            } else {
                snprintf(r.why, sizeof r.why, "backend create failed: %s", flame_last_error());
                bench_stats(NULL, 0, &r.ms);
            }
            const char *mname = m == 0 ? "deterministic" : "explore";
            rc = act_report(o, v, &vc, S, D, batches[bi], mname, &r);
            if (rc == FLAME_OK && !r.ok && *failed == FLAME_OK) {
                *failed = flame_errorf(FLAME_ERUNTIME, "act act/%s/b%d/%s: %s", v->name,
                                       batches[bi], mname, r.why);
            }
        }
    }
    if (crc == FLAME_OK) {
        v->ops->destroy(b);
    }
    return rc;
}

int bench_act(const BenchOptions *o) {
    FlameConfig cfg;
    const EnvSpec *spec;
    int rc = bench_setup(o, o->quick ? act_quick_defaults : NULL, &cfg, &spec);
    if (rc != FLAME_OK) {
        return rc;
    }
    int S = spec->obs_dim, D = spec->act_dim, N = cfg.env.num_envs;
    BenchVariant variants[8];
    const char *skip = NULL;
    int nv = bench_variants(cfg.backend.type, variants, &skip);
    printf("flame bench act: %s (S=%d, D=%d), best-of-%d, batches 1 and %d (env.num_envs)\n",
           spec->id, S, D, cfg.flow.num_particles, N);
    bench_print_context(&cfg);
    if (skip) {
        printf("cuda:   skipped (%s); the CUDA variants need a GPU\n", skip);
        if ((rc = bench_json_skipped(o, "act", "act/cuda", &cfg, S, D, skip)) != FLAME_OK) {
            return rc;
        }
    }
    if (nv > 0) {
        printf("\n  %-22s %6s %-14s %9s %9s %9s %9s %9s %8s %12s   %s\n", "variant", "batch",
               "mode", "p50 ms", "p99 ms", "mean ms", "min ms", "max ms", "calls", "actions/s",
               "valid");
    }
    float *obs = flame_malloc((size_t)N * S * sizeof(float));
    for (size_t i = 0; i < (size_t)N * S; i++) {
        obs[i] = bench_rand_normal(0xAC7, i);
    }
    int failed = FLAME_OK;
    for (int vi = 0; vi < nv && rc == FLAME_OK; vi++) {
        rc = act_variant(o, &variants[vi], &cfg, obs, S, D, &failed);
    }
    flame_free(obs);
    return rc != FLAME_OK ? rc : failed;
}
