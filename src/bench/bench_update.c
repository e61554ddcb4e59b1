/*
 * bench_update.c: `flame bench update`: updates per second of the whole update (update_step on a
 * backend table) for every backend variant, a per-stage breakdown, and on the CPU the comparison
 * with CBLAS sgemm measured in the same run.
 *
 * Per variant (cpu; cuda x backend.kernels fused|cublas x backend.precision fp32|tf32):
 *   1. create the backend, fill its replay with synthetic transitions of the right shape;
 *   2. validate: one update; its metrics and the whole state must be finite (CUDA: the same update
 *      on the CPU reference from the same state must agree within a loose tolerance);
 *   3. warm up (at least two policy/target cycles and 0.5 s);
 *   4. time R repeats of M updates (M a whole number of cycles, about 0.3 s per repeat), the CPU
 *      caches evicted before each repeat on the CPU backend;
 *   5. validate again (metrics and state finite);
 *   6. the stage breakdown: M (at least two cycles) more updates through update_step on a table
 *      whose stage ops call the real ones between two syncs and accumulate their time (the CUDA
 *      variant with backend.graphs=false, since a captured graph has no stage boundaries).
 * The GEMM floor of an update is its analytic FLOPs (update_flops, update.h) at the sgemm speed of the
 * update's GEMM shape (B*K x hidden x hidden); floor ratio = floor time / measured time.
 * CUDA variants also report the nodes of the captured graph of an actor update and the device
 * memory the backend allocated; the header states the planned device memory of the config.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <cblas.h>

#include "flame/agent.h"
#include "flame/bench.h"
#include "flame/check.h"
#include "flame/env.h"
#include "flame/host.h"
#include "flame/mlp.h"
#include "flame/update.h"
#ifdef FLAME_HAVE_CUDA
#include "flame/backend_cuda.h"
#include "flame/cuda_api.h"
#endif

/* ------------------------------------------------------------------ sgemm */
typedef struct {
    int m, n, k;
    bool trans_b; /* C = A B^T with B n x k (the layout of linear_forward) */
    BenchStats ms;
    int repeats, calls_per_repeat;
    double gflops_median, gflops_best;
    double err_before, err_after; /* worst sampled error / allowance (<= 1 passes) */
    bool valid;
} SgemmResult;

/* worst |C - ref| / allowance over sampled entries, the reference in double */
static double sgemm_check(const float *A, const float *Bm, const float *C, int m, int n, int k,
                          bool trans_b) {
    double worst = 0;
    for (int s = 0; s < 64; s++) {
        int i = (int)(bench_rand_uniform(77, (uint64_t)s) * m);
        int j = (int)(bench_rand_uniform(78, (uint64_t)s) * n);
        double ref = 0, mag = 0;
        for (int p = 0; p < k; p++) {
            double a = A[(size_t)i * k + p];
            double b = trans_b ? Bm[(size_t)j * k + p] : Bm[(size_t)p * n + j];
            ref += a * b;
            mag += fabs(a * b);
        }
        double got = C[(size_t)i * n + j];
        double allow = 4.0 * k * 1.1920929e-7 * mag + 1e-30;
        double r = isfinite(got) ? fabs(got - ref) / allow : INFINITY;
        worst = r > worst ? r : worst;
    }
    return worst;
}

static void sgemm_call(const float *A, const float *Bm, float *C, int m, int n, int k,
                       bool trans_b) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, m, n, k, 1.0f, A,
                k, Bm, trans_b ? k : n, 0.0f, C, n);
}

static void bench_sgemm(int m, int n, int k, bool trans_b, int repeats, double repeat_s,
                        SgemmResult *r) {
    memset(r, 0, sizeof *r);
    r->m = m, r->n = n, r->k = k, r->trans_b = trans_b;
    size_t na = (size_t)m * k, nb = (size_t)k * n, nc = (size_t)m * n;
    float *A = flame_malloc(na * sizeof(float)), *Bm = flame_malloc(nb * sizeof(float));
    float *C = flame_malloc(nc * sizeof(float));
    for (size_t i = 0; i < na; i++) {
        A[i] = 2.0f * bench_rand_uniform(11, i) - 1.0f;
    }
    for (size_t i = 0; i < nb; i++) {
        Bm[i] = 2.0f * bench_rand_uniform(12, i) - 1.0f;
    }
    /* validate the first call, which is also the warm-up */
    double t0 = host_now();
    sgemm_call(A, Bm, C, m, n, k, trans_b);
    double t1 = host_now() - t0;
    r->err_before = sgemm_check(A, Bm, C, m, n, k, trans_b);
    int calls = (int)ceil(repeat_s / (t1 > 1e-6 ? t1 : 1e-6));
    calls = calls < 1 ? 1 : (calls > 10000 ? 10000 : calls);
    double *ms = flame_malloc((size_t)repeats * sizeof(double));
    for (int rep = 0; rep < repeats; rep++) {
        bench_flush_cpu_cache();
        double s = host_now();
        for (int c = 0; c < calls; c++) {
            sgemm_call(A, Bm, C, m, n, k, trans_b);
        }
        ms[rep] = 1e3 * (host_now() - s) / calls;
    }
    r->err_after = sgemm_check(A, Bm, C, m, n, k, trans_b);
    r->valid = r->err_before <= 1.0 && r->err_after <= 1.0;
    bench_stats(ms, repeats, &r->ms);
    r->repeats = repeats;
    r->calls_per_repeat = calls;
    double flops = 2.0 * m * n * k;
    r->gflops_median = flops / (r->ms.median * 1e-3) * 1e-9;
    r->gflops_best = flops / (r->ms.min * 1e-3) * 1e-9;
    flame_free(ms);
    flame_free(A);
    flame_free(Bm);
    flame_free(C);
}

/* ------------------------------------------------------------------ stage timing table */
enum {
    ST_REPLAY_SAMPLE,
    ST_CRITIC_TARGET,
    ST_CRITIC_STEP,
    ST_QWEIGHT,
    ST_POLICY_STEP,
    ST_ALPHA_STEP,
    ST_POLYAK,
    ST_END_UPDATE,
    ST_COUNT
};
static const char *const stage_names[ST_COUNT] = {"replay_sample", "critic_target", "critic_step",
                                                  "qweight",       "policy_step",   "alpha_step",
                                                  "polyak",        "end_update"};

/* The timing table forwards to `inner` (one benchmark at a time: single-threaded use). */
static struct {
    const BackendOps *inner;
    double s[ST_COUNT];
    int64_t calls[ST_COUNT];
} timed;

static double timed_begin(Backend *b) {
    if (timed.inner->sync) {
        timed.inner->sync(b);
    }
    return host_now();
}

static void timed_end(Backend *b, int stage, double t0) {
    if (timed.inner->sync) {
        timed.inner->sync(b);
    }
    timed.s[stage] += host_now() - t0;
    timed.calls[stage]++;
}

#define BENCH_TIMED_OP(op, stage)                                                                  \
    static void timed_##op(Backend *b, const UpdateCtx *u) {                                       \
        double t0 = timed_begin(b);                                                                \
        timed.inner->op(b, u);                                                                     \
        timed_end(b, stage, t0);                                                                   \
    }
BENCH_TIMED_OP(replay_sample, ST_REPLAY_SAMPLE)
BENCH_TIMED_OP(critic_target, ST_CRITIC_TARGET)
BENCH_TIMED_OP(qweight, ST_QWEIGHT)
BENCH_TIMED_OP(policy_step, ST_POLICY_STEP)
BENCH_TIMED_OP(alpha_step, ST_ALPHA_STEP)
BENCH_TIMED_OP(polyak, ST_POLYAK)
BENCH_TIMED_OP(end_update, ST_END_UPDATE)
#undef BENCH_TIMED_OP

static void timed_critic_step(Backend *b, const UpdateCtx *u, CriticPhase phase) {
    double t0 = timed_begin(b);
    timed.inner->critic_step(b, u, phase);
    timed_end(b, ST_CRITIC_STEP, t0);
}

static BackendOps timed_table(const BackendOps *inner) {
    memset(&timed, 0, sizeof timed);
    timed.inner = inner;
    BackendOps t = *inner;
    t.replay_sample = timed_replay_sample;
    t.critic_target = timed_critic_target;
    t.critic_step = timed_critic_step;
    t.qweight = timed_qweight;
    t.policy_step = timed_policy_step;
    t.alpha_step = timed_alpha_step;
    t.polyak = timed_polyak;
    t.end_update = inner->end_update ? timed_end_update : NULL;
    return t;
}

/* ------------------------------------------------------------------ one variant */
typedef struct {
    bool ok;
    char why[256];
    BenchStats ms; /* per update, over repeats */
    int repeats, per_repeat, warmup;
    double stage_s[ST_COUNT];
    int64_t stage_calls[ST_COUNT];
    int stage_updates;
    bool parity_checked;
    double parity_err; /* worst relative difference of the first update's metrics vs the CPU */
    UpdateMetrics metrics;
    int graph_nodes;   /* CUDA: nodes of the actor update's graph (-1: none captured) */
    double dev_mib;    /* CUDA: device memory the backend allocated */
} UpdateResult;

static void sync_if(const BackendOps *ops, Backend *b) {
    if (ops->sync) {
        ops->sync(b);
    }
}

/* the CUDA variant's first update against the CPU reference from the same state and replay */
static double parity_vs_cpu(const FlameConfig *cfg, const UpdateMetrics *got, const AgentState *s0,
                            int S, int D, int64_t fill) {
    FlameConfig c = *cfg;
    c.backend.type = BACKEND_CPU;
    Backend *cb = NULL;
    if (backend_cpu_ops.create(&c, S, D, &cb) != FLAME_OK) {
        return INFINITY;
    }
    bench_fill_replay(&backend_cpu_ops, cb, S, D, fill);
    backend_cpu_ops.set_state(cb, s0);
    update_step(&backend_cpu_ops, cb);
    UpdateMetrics ref;
    backend_cpu_ops.get_metrics(cb, &ref);
    backend_cpu_ops.destroy(cb);
    double a[] = {got->q_mean, got->target_mean, got->critic_loss[0], got->critic_loss[1]};
    double r[] = {ref.q_mean, ref.target_mean, ref.critic_loss[0], ref.critic_loss[1]};
    double worst = 0;
    for (int i = 0; i < 4; i++) {
        double e = fabs(a[i] - r[i]) / (fabs(r[i]) + 1e-2);
        worst = isfinite(e) && e > worst ? e : (isfinite(e) ? worst : INFINITY);
    }
    return worst;
}

static bool validate_step(const BackendOps *ops, Backend *b, const FlameConfig *cfg, int S, int D,
                          UpdateResult *r, const char *when) {
    ops->get_metrics(b, &r->metrics);
    if (!bench_metrics_finite(&r->metrics)) {
        snprintf(r->why, sizeof r->why, "non-finite update metrics %s timing", when);
        return false;
    }
    char what[64] = "";
    if (!bench_state_finite(ops, b, cfg, S, D, what, sizeof what)) {
        snprintf(r->why, sizeof r->why, "non-finite %s %s timing", what, when);
        return false;
    }
    return true;
}

/* 1. the first update: finite metrics and state; CUDA: against the CPU reference from the same
   state */
static bool validate_first(const BenchVariant *v, Backend *b, const FlameConfig *cfg, int S, int D,
                           int64_t fill, UpdateResult *r) {
    const BackendOps *ops = v->ops;
    AgentState s0;
    if (v->cuda) {
        agent_state_init(&s0, cfg, S, D);
        ops->get_state(b, &s0);
    }
    update_step(ops, b);
    sync_if(ops, b);
    r->ok = validate_step(ops, b, cfg, S, D, r, "before");
    if (v->cuda) {
        r->parity_checked = true;
        r->parity_err = parity_vs_cpu(cfg, &r->metrics, &s0, S, D, fill);
        agent_state_free(&s0);
        double tol = v->precision == PRECISION_TF32 ? 5e-2 : 1e-2;
        if (r->ok && !(r->parity_err <= tol)) {
            r->ok = false;
            snprintf(r->why, sizeof r->why,
                     "first update differs from the CPU reference: worst relative difference %.3g "
                     "(allowed %.3g)",
                     r->parity_err, tol);
        }
    }
    return r->ok;
}

/* 5. stages: n updates through the timing table, a sync between stage ops (CUDA: on a backend
   without graph capture, since a captured graph has no stage boundaries) */
static void measure_stages(const BenchVariant *v, Backend *b, const FlameConfig *cfg, int S, int D,
                           int64_t fill, int cycle, int n, UpdateResult *r) {
    const BackendOps *ops = v->ops;
    Backend *sb = b;
    FlameConfig scfg = *cfg;
    if (v->cuda && cfg->backend.graphs) {
        scfg.backend.graphs = false;
        sb = NULL;
        if (ops->create(&scfg, S, D, &sb) != FLAME_OK) {
            snprintf(r->why, sizeof r->why, "backend create (graphs off) failed: %s",
                     flame_last_error());
            r->ok = false;
            return;
        }
        bench_fill_replay(ops, sb, S, D, fill);
        for (int i = 0; i < 2 * cycle; i++) {
            update_step(ops, sb);
        }
        sync_if(ops, sb);
    }
    BackendOps t = timed_table(ops);
    for (int i = 0; i < n; i++) {
        update_step(&t, sb);
    }
    memcpy(r->stage_s, timed.s, sizeof r->stage_s);
    memcpy(r->stage_calls, timed.calls, sizeof r->stage_calls);
    r->stage_updates = n;
    r->ok = validate_step(ops, sb, &scfg, S, D, r, "after the stage breakdown of");
    if (sb != b) {
        ops->destroy(sb);
    }
}

static int run_variant(const BenchVariant *v, const FlameConfig *base, const BenchOptions *o,
                       int S, int D, UpdateResult *r) {
    memset(r, 0, sizeof *r);
    FlameConfig cfg = *base;
    cfg.backend.type = v->cuda ? BACKEND_CUDA : BACKEND_CPU;
    cfg.backend.kernels = v->kernels;
    cfg.backend.precision = v->precision;
    const BackendOps *ops = v->ops;
    const double repeat_s = o->quick ? 0.01 : 0.3, warm_s = o->quick ? 0.0 : 0.5;
    int repeats = o->repeats > 0 ? o->repeats : (o->quick ? 3 : 7);
    int cycle = update_schedule_period(&cfg);
    int64_t fill = cfg.update.replay_size < 20000 ? cfg.update.replay_size : 20000;
    fill = fill < 4 * cfg.update.batch_size ? 4 * (int64_t)cfg.update.batch_size : fill;
    fill = fill > cfg.update.replay_size ? cfg.update.replay_size : fill;

    Backend *b = NULL;
    int rc = ops->create(&cfg, S, D, &b);
    if (rc != FLAME_OK) {
        snprintf(r->why, sizeof r->why, "backend create failed: %s", flame_last_error());
        return rc;
    }
    bench_fill_replay(ops, b, S, D, fill);
    if (!validate_first(v, b, &cfg, S, D, fill, r)) {
        ops->destroy(b);
        return FLAME_ERUNTIME;
    }

    /* 2. warm up: whole cycles, at least two and warm_s seconds; the last cycle is timed */
    int warm = 1;
    double cycle_s = 0, tw = host_now();
    for (int c = 0; c < 1000; c++) {
        double t0 = host_now();
        for (int i = 0; i < cycle; i++) {
            update_step(ops, b);
        }
        sync_if(ops, b);
        cycle_s = host_now() - t0;
        warm += cycle;
        if (c >= (o->quick ? 0 : 1) && host_now() - tw >= warm_s) {
            break;
        }
    }
    r->warmup = warm;

    /* 3. timed repeats */
    int per = cycle * (int)ceil(repeat_s / (cycle_s > 1e-7 ? cycle_s : 1e-7));
    per = per < cycle ? cycle : (per > 1000 * cycle ? 1000 * cycle : per);
    double *ms = flame_malloc((size_t)repeats * sizeof(double));
    for (int rep = 0; rep < repeats; rep++) {
        if (!v->cuda) {
            bench_flush_cpu_cache();
        }
        sync_if(ops, b);
        double t0 = host_now();
        for (int i = 0; i < per; i++) {
            update_step(ops, b);
        }
        sync_if(ops, b);
        ms[rep] = 1e3 * (host_now() - t0) / per;
    }
    bench_stats(ms, repeats, &r->ms);
    flame_free(ms);
    r->repeats = repeats;
    r->per_repeat = per;
    r->graph_nodes = -1;
#ifdef FLAME_HAVE_CUDA
    if (v->cuda) {
        r->graph_nodes = backend_cuda_graph_nodes(b, true);
        r->dev_mib = backend_cuda_device_bytes(b) / 1048576.0;
    }
#endif

    /* 4. validate after timing, 5. the stage breakdown */
    r->ok = validate_step(ops, b, &cfg, S, D, r, "after");
    if (r->ok && !o->no_stages) {
        measure_stages(v, b, &cfg, S, D, fill, cycle, per > 2 * cycle ? per : 2 * cycle, r);
    }
    ops->destroy(b);
    return r->ok ? FLAME_OK : FLAME_ERUNTIME;
}

/* ------------------------------------------------------------------ reporting */
/* the FMA peak of the cores the update uses (host.h) */
typedef struct {
    double gflops;         /* at clock_ghz (NaN when unknown) */
    double clock_ghz;      /* measured when the suite starts */
    double nominal_gflops; /* at the nominal clock */
} Peak;

static void json_peak(BenchJson *j, const Peak *pk, double gflops) {
    bench_json_num(j, "peak_gflops", pk->gflops);
    bench_json_num(j, "peak_fraction", gflops / pk->gflops);
    bench_json_num(j, "clock_ghz_measured", pk->clock_ghz);
    bench_json_num(j, "peak_gflops_nominal_clock", pk->nominal_gflops);
}

static void print_sgemm(const SgemmResult *s, double peak) {
    char shape[64];
    snprintf(shape, sizeof shape, "%s %dx%dx%d", s->trans_b ? "NT" : "NN", s->m, s->n, s->k);
    printf("  %-24s %10.3f %10.3f %12.1f %10.1f %6.1f%%   %s\n", shape, s->ms.median, s->ms.min,
           s->gflops_median, s->gflops_best, 100.0 * s->gflops_median / peak,
           s->valid ? "ok" : "FAILED");
}

static int write_sgemm_json(const SgemmResult *s, const FlameConfig *cfg, int S, int D,
                            const BenchOptions *o, const Peak *pk) {
    char name[96];
    snprintf(name, sizeof name, "sgemm/%s/%dx%dx%d", s->trans_b ? "NT" : "NN", s->m, s->n, s->k);
    BenchJson j;
    bench_json_header(&j, "update", name, s->valid ? "ok" : "failed", s->valid, false, cfg, S, D,
                      o->quick);
    bench_json_str(&j, "backend", "cpu");
    bench_json_int(&j, "threads", cfg->run.cpu_threads);
    bench_json_int(&j, "m", s->m);
    bench_json_int(&j, "n", s->n);
    bench_json_int(&j, "k", s->k);
    bench_json_bool(&j, "trans_b", s->trans_b);
    bench_json_num(&j, "ms_median", s->ms.median);
    bench_json_num(&j, "ms_min", s->ms.min);
    bench_json_num(&j, "ms_max", s->ms.max);
    bench_json_int(&j, "repeats", s->repeats);
    bench_json_int(&j, "calls_per_repeat", s->calls_per_repeat);
    bench_json_num(&j, "gflops_median", s->gflops_median);
    bench_json_num(&j, "gflops_best", s->gflops_best);
    json_peak(&j, pk, s->gflops_median);
    bench_json_num(&j, "check_before", s->err_before);
    bench_json_num(&j, "check_after", s->err_after);
    int rc = bench_json_write(&j, o->json_path);
    bench_json_free(&j);
    return rc;
}

static int write_variant_json(const BenchVariant *v, const UpdateResult *r, const FlameConfig *cfg,
                              int S, int D, const UpdateFlops *fl, const SgemmResult *big,
                              const SgemmResult *shaped, const BenchOptions *o, const Peak *pk) {
    BenchJson j;
    char name[96];
    snprintf(name, sizeof name, "update/%s", v->name);
    bench_json_header(&j, "update", name, r->ok ? "ok" : "failed", r->ok, v->cuda, cfg, S, D,
                      o->quick);
    bench_json_variant(&j, v);
    bench_json_bool(&j, "graphs", v->cuda && cfg->backend.graphs);
    bench_json_int(&j, "threads", cfg->run.cpu_threads);
    if (!r->ok) {
        bench_json_str(&j, "error", r->why);
    }
    double ups = r->ms.median > 0 ? 1e3 / r->ms.median : NAN;
    bench_json_num(&j, "updates_per_s", ups);
    bench_json_num(&j, "updates_per_s_best", r->ms.min > 0 ? 1e3 / r->ms.min : NAN);
    bench_json_num(&j, "ms_median", r->ms.median);
    bench_json_num(&j, "ms_min", r->ms.min);
    bench_json_num(&j, "ms_max", r->ms.max);
    bench_json_int(&j, "repeats", r->repeats);
    bench_json_int(&j, "updates_per_repeat", r->per_repeat);
    bench_json_int(&j, "warmup_updates", r->warmup);
    bench_json_num(&j, "flops_per_update", fl->per_update);
    bench_json_num(&j, "flops_all_stages", fl->all_stages);
    double gfs = fl->per_update / (r->ms.median * 1e-3) * 1e-9;
    bench_json_num(&j, "gflops_per_s", gfs);
    if (!v->cuda && big && shaped) {
        double floor_ms = fl->per_update / (shaped->gflops_median * 1e9) * 1e3;
        bench_json_num(&j, "sgemm_gflops_large", big->gflops_median);
        bench_json_num(&j, "sgemm_gflops_update_shape", shaped->gflops_median);
        bench_json_num(&j, "ratio_to_sgemm_large", gfs / big->gflops_median);
        bench_json_num(&j, "floor_ms", floor_ms);
        bench_json_num(&j, "floor_ratio", floor_ms / r->ms.median);
        bench_json_num(&j, "x_floor", r->ms.median / floor_ms);
        json_peak(&j, pk, gfs);
    }
    if (r->parity_checked) {
        bench_json_num(&j, "parity_rel_err", r->parity_err);
    }
    if (v->cuda) {
        bench_json_int(&j, "graph_nodes_actor_update", r->graph_nodes);
        bench_json_num(&j, "device_mib", r->dev_mib);
    }
    if (r->stage_updates > 0) {
        double sum = 0;
        for (int s = 0; s < ST_COUNT; s++) {
            sum += r->stage_s[s];
        }
        bench_json_int(&j, "stage_updates", r->stage_updates);
        bench_json_num(&j, "stage_sum_ms", 1e3 * sum / r->stage_updates);
        bench_json_key(&j, "stages");
        for (int s = 0; s < ST_COUNT; s++) {
            if (r->stage_calls[s] == 0 && s == ST_END_UPDATE) {
                continue;
            }
            bench_json_key(&j, stage_names[s]);
            bench_json_num(&j, "ms_per_update", 1e3 * r->stage_s[s] / r->stage_updates);
            bench_json_num(&j, "share", sum > 0 ? r->stage_s[s] / sum : NAN);
            bench_json_int(&j, "calls", r->stage_calls[s]);
            bench_json_end(&j);
        }
        bench_json_end(&j);
    }
    bench_json_key(&j, "metrics");
    bench_json_num(&j, "critic_loss", r->metrics.critic_loss[0]);
    bench_json_num(&j, "q_mean", r->metrics.q_mean);
    bench_json_num(&j, "alpha", r->metrics.alpha);
    bench_json_end(&j);
    int rc = bench_json_write(&j, o->json_path);
    bench_json_free(&j);
    return rc;
}

static void print_stages(const BenchVariant *v, const UpdateResult *r, const UpdateFlops *fl) {
    double sum = 0;
    for (int s = 0; s < ST_COUNT; s++) {
        sum += r->stage_s[s];
    }
    double stage_flops[ST_COUNT] = {0};
    stage_flops[ST_CRITIC_TARGET] = fl->critic_target;
    stage_flops[ST_CRITIC_STEP] = fl->critic_step;
    stage_flops[ST_QWEIGHT] = fl->qweight;
    stage_flops[ST_POLICY_STEP] = fl->policy_step;
    printf("\nstages of %s (%d updates, a sync between stage ops)\n", v->name, r->stage_updates);
    printf("  %-16s %12s %8s %8s %12s\n", "stage", "ms/update", "share", "calls", "GFLOP/s");
    for (int s = 0; s < ST_COUNT; s++) {
        if (r->stage_calls[s] == 0 && s == ST_END_UPDATE) {
            continue;
        }
        double per_call = r->stage_calls[s] ? r->stage_s[s] / r->stage_calls[s] : 0;
        double gf = stage_flops[s] > 0 && per_call > 0 ? stage_flops[s] / per_call * 1e-9 : NAN;
        printf("  %-16s %12.3f %7.1f%% %8lld", stage_names[s],
               1e3 * r->stage_s[s] / r->stage_updates, sum > 0 ? 100.0 * r->stage_s[s] / sum : 0.0,
               (long long)r->stage_calls[s]);
        if (isfinite(gf)) {
            printf(" %12.1f\n", gf);
        } else {
            printf(" %12s\n", "-");
        }
    }
    printf("  %-16s %12.3f  (whole update, timed without syncs: %.3f ms median)\n", "sum",
           1e3 * sum / r->stage_updates, r->ms.median);
}

/* ------------------------------------------------------------------ the suite */
static const char *const update_quick_defaults[] = {
    "net.hidden=32",        "net.layers=2",
    "update.batch_size=32", "flow.sample_k=8",
    "flow.num_particles=4", "update.replay_size=4096",
    "run.start_steps=1000", NULL};

/* sgemm on the CPU at the update's thread count: a large square one and the update's GEMM shape */
static int measure_sgemm(const BenchOptions *o, const FlameConfig *cfg, int S, int D,
                         const Peak *pk, SgemmResult *big, SgemmResult *shaped, int *status) {
    blas_set_threads(cfg->run.cpu_threads);
    int reps = o->quick ? 3 : 5;
    double rs = o->quick ? 0.01 : 0.25;
    int nbig = o->quick ? 256 : 2048;
    bench_sgemm(nbig, nbig, nbig, false, reps, rs, big);
    bench_sgemm(cfg->update.batch_size * cfg->flow.sample_k, cfg->net.hidden, cfg->net.hidden, true,
                reps, rs, shaped);
    printf("\nsgemm (CBLAS, %d thread%s)      %10s %10s %12s %10s %7s   valid\n",
           cfg->run.cpu_threads, cfg->run.cpu_threads == 1 ? "" : "s", "ms median", "ms min",
           "GFLOP/s med", "best", "% peak");
    print_sgemm(big, pk->gflops);
    print_sgemm(shaped, pk->gflops);
    int rc = write_sgemm_json(big, cfg, S, D, o, pk);
    rc = rc ? rc : write_sgemm_json(shaped, cfg, S, D, o, pk);
    if (rc == FLAME_OK && (!big->valid || !shaped->valid)) {
        *status = flame_errorf(FLAME_ERUNTIME, "sgemm validation failed");
    }
    return rc;
}

/* The FMA peak of the cores the update uses at the clock measured now (what 100 % in the "% peak"
   columns means), next to the peak at the nominal clock. */
static Peak measure_peak(const FlameConfig *cfg) {
    const HostCpu *c = host_cpu();
    Peak pk;
    pk.clock_ghz = host_measure_clock_ghz(25); /* best of 25 x 4 ms of CPU time */
    pk.gflops = bench_cpu_peak(cfg->run.cpu_threads, pk.clock_ghz);
    pk.nominal_gflops = bench_cpu_peak(cfg->run.cpu_threads, NAN);
    if (isnan(pk.gflops)) {
        printf("peak:   unknown for this CPU (no x86 SIMD level or clock); %% peak columns are "
               "nan\n");
        return pk;
    }
    int cores = cfg->run.cpu_threads < c->cores ? cfg->run.cpu_threads : c->cores;
    printf("peak:   %.1f GFLOP/s = %d core%s x %d fp32 lanes (%s) x %d FMA units x 2 x %.2f GHz "
           "(measured now; at the nominal %.2f GHz from %s: %.1f GFLOP/s)\n",
           pk.gflops, cores, cores == 1 ? "" : "s", c->fp32_lanes, host_simd_name(c->simd),
           c->fma_units, pk.clock_ghz, c->clock_ghz, c->clock_source, pk.nominal_gflops);
    return pk;
}

/* one line of the update table */
static void print_variant(const BenchVariant *v, const UpdateResult *r, const UpdateFlops *fl,
                          const SgemmResult *big, const SgemmResult *shaped, double peak) {
    double gfs = fl->per_update / (r->ms.median * 1e-3) * 1e-9;
    printf("  %-22s %10.3f %10.3f %10.3f %9.1f", v->name,
           r->ms.median > 0 ? 1e3 / r->ms.median : 0.0, r->ms.median, r->ms.min, gfs);
    if (!v->cuda && big && shaped) {
        double floor_ms = fl->per_update / (shaped->gflops_median * 1e9) * 1e3;
        printf(" %9.3f %9.3f %9.2f %6.1f%%", gfs / big->gflops_median, floor_ms / r->ms.median,
               r->ms.median / floor_ms, 100.0 * gfs / peak);
    } else {
        printf(" %9s %9s %9s %7s", "-", "-", "-", "-");
    }
    printf("   %s%s\n", r->ok ? "ok" : "FAILED: ", r->ok ? "" : r->why);
    if (r->parity_checked) {
        printf("  %-22s first update vs CPU reference: worst relative difference %.3g\n", "",
               r->parity_err);
    }
    if (v->cuda) {
        printf("  %-22s graph nodes per actor update: %d; device memory: %.1f MiB\n", "",
               r->graph_nodes, r->dev_mib);
    }
}

int bench_update(const BenchOptions *o) {
    FlameConfig cfg;
    const EnvSpec *spec;
    int rc = bench_setup(o, o->quick ? update_quick_defaults : NULL, &cfg, &spec);
    if (rc != FLAME_OK) {
        return rc;
    }
    int S = spec->obs_dim, D = spec->act_dim;
    BenchVariant variants[8];
    const char *skip = NULL;
    int nv = bench_variants(cfg.backend.type, variants, &skip);
    UpdateFlops fl;
    update_flops(&cfg, S, D, &fl);
    printf("flame bench update: %s (S=%d, D=%d)\n", spec->id, S, D);
    bench_print_context(&cfg);
    printf("flops:  %.3f GF per update, flame-algorithm.md §13 (critic_target %.3f, critic_step "
           "%.3f; qweight %.3f and policy_step %.3f every %d)\n",
           fl.per_update * 1e-9, fl.critic_target * 1e-9, fl.critic_step * 1e-9, fl.qweight * 1e-9,
           fl.policy_step * 1e-9, cfg.update.policy_delay);
#ifdef FLAME_HAVE_CUDA
    printf("memory: CUDA backend buffers %.1f MiB at creation (planned; replay %.1f MiB)\n",
           backend_cuda_plan_bytes(&cfg, S, D) / 1048576.0,
           (double)cfg.update.replay_size * (4.0 * (2 * S + D + 1) + 1) / 1048576.0);
#endif
    if (skip) {
        printf("cuda:   skipped (%s); the CUDA variants need a GPU\n", skip);
        if ((rc = bench_json_skipped(o, "update", "update/cuda", &cfg, S, D, skip)) != FLAME_OK) {
            return rc;
        }
    }
    bool have_cpu = nv > 0 && !variants[0].cuda;
    SgemmResult big, shaped;
    Peak pk = {NAN, NAN, NAN};
    int status = FLAME_OK;
    if (have_cpu) {
        pk = measure_peak(&cfg);
        if ((rc = measure_sgemm(o, &cfg, S, D, &pk, &big, &shaped, &status)) != FLAME_OK) {
            return rc;
        }
    }
    if (nv > 0) {
        printf("\n  %-22s %10s %10s %10s %9s %9s %9s %9s %7s   %s\n", "update", "updates/s",
               "ms median", "ms min", "GFLOP/s", "x sgemm", "floor", "x floor", "% peak", "valid");
    }
    UpdateResult *res = flame_calloc((size_t)(nv > 0 ? nv : 1), sizeof(UpdateResult));
    for (int i = 0; i < nv && rc == FLAME_OK; i++) {
        int vrc = run_variant(&variants[i], &cfg, o, S, D, &res[i]);
        print_variant(&variants[i], &res[i], &fl, have_cpu ? &big : NULL,
                      have_cpu ? &shaped : NULL, pk.gflops);
        rc = write_variant_json(&variants[i], &res[i], &cfg, S, D, &fl, have_cpu ? &big : NULL,
                                have_cpu ? &shaped : NULL, o, &pk);
        if (vrc != FLAME_OK && status == FLAME_OK) {
            status = flame_errorf(FLAME_ERUNTIME, "update %s: %s", variants[i].name, res[i].why);
        }
    }
    if (have_cpu) {
        printf("  (x sgemm: achieved GFLOP/s / large sgemm GFLOP/s; floor: time of the update's "
               "FLOPs at the sgemm speed of its GEMM shape / measured time; x floor: measured "
               "time / that floor, 2 or less is the CPU target; %% peak: achieved GFLOP/s / the "
               "FMA peak above)\n");
    }
    for (int i = 0; i < nv && rc == FLAME_OK; i++) {
        if (res[i].stage_updates > 0) {
            print_stages(&variants[i], &res[i], &fl);
        }
    }
    flame_free(res);
    return rc != FLAME_OK ? rc : status;
}
