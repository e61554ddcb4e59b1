/*
 * bench.h: the `flame bench` suites (style.md G16, design.md §1.2).
 *
 * Every suite follows one protocol: build the inputs from fixed seeds, validate, warm up, time
 * repeats, validate again, and report median and min. Results go to stdout as a human table and,
 * with --json FILE, as JSON lines appended to FILE: one object per measurement with the suite, the
 * name of the measurement, its status ("ok", "failed" or "skipped"), whether validation passed,
 * the device (CPU model or GPU name), the CUDA driver ("none" on the CPU), the commit, a one-line
 * config summary, the sizes and every number. Timing only: nothing here asserts a speed.
 *
 *   update   whole updates per second (update_step on the backend table) per backend, kernel
 *            choice and precision; a per-stage breakdown (each stage op timed with a sync between
 *            them); on the CPU the ratio to CBLAS sgemm measured in the same run, to the GEMM
 *            floor (the update's analytic FLOPs, flame-algorithm.md §13, at sgemm speed) and to
 *            the FMA peak of the cores used (host.h: lanes x FMA units x 2 x clock), which also
 *            shows a BLAS running kernels narrower than the CPU (blas_core.h)
 *   act      action latency at batch 1 and at env.num_envs, deterministic and exploring, p50/p99
 *   env      env pool steps/s per env id and thread count next to a raw mj_step loop (env_bench)
 *   e2e      a short training run without outputs: env steps/s, updates/s, share of each phase
 *   kernels  the CUDA backend's kernel benchmarks (flame_cuda_bench_kernels); needs a GPU
 *
 * Return codes: FLAME_OK; FLAME_EINPUT (bad option or config, message set); FLAME_ERUNTIME when a
 * validation failed (the failing measurement is reported with status "failed").
 *
 * defines: BenchOptions BenchStats BenchJson BenchVariant UpdateFlops bench_update bench_act
 *          bench_env bench_e2e bench_kernels bench_load_config bench_setup bench_print_context
 *          bench_variants bench_stats bench_flush_cpu_cache bench_load_avg bench_cpu_peak
 *          bench_json_begin bench_json_end bench_json_key bench_json_str
 *          bench_json_num bench_json_int bench_json_bool bench_json_double bench_json_doubles
 *          bench_json_ints bench_json_header bench_json_variant
 *          bench_json_skipped
 *          bench_json_write bench_json_free bench_config_summary bench_rand_normal
 *          bench_rand_uniform bench_fill_replay bench_state_finite bench_metrics_finite
 */
#ifndef FLAME_BENCH_H
#define FLAME_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "flame/backend.h"
#include "flame/config.h"
#include "flame/env.h"

#define BENCH_MAX_IDS 32
#define BENCH_MAX_THREADS 32
#define BENCH_MAX_SETS 256

/* The parsed command line of `flame bench <suite>` (kernels takes its arguments unparsed). */
typedef struct {
    const char *suite;
    bool quick;                 /* tiny sizes and short times (smoke tests) */
    int backend;                /* FlameBackendKind of --backend (auto: every backend here) */
    bool backend_given;         /* --backend was given (else backend.type of the config) */
    const char *json_path;      /* --json FILE: JSON lines appended (NULL: none) */
    const char *config_path;    /* --config FILE (NULL: defaults) */
    char *sets[BENCH_MAX_SETS]; /* --set key=value, applied in order after the file */
    int nsets;
    const char *env_ids[BENCH_MAX_IDS]; /* --env ID (update/act/e2e: the first; env: all) */
    int n_env_ids;
    int threads[BENCH_MAX_THREADS]; /* env: --threads 1,2,4 (empty: 1, 2, 4, ... up to cores) */
    int n_threads;
    double seconds; /* act, env: seconds per measurement (0: suite default) */
    int repeats;    /* update: timed repeats (0: 7, quick 3) */
    int64_t steps;  /* e2e: transitions after the warm-up (0: suite default) */
    bool no_stages; /* update: skip the per-stage breakdown */
} BenchOptions;

int bench_update(const BenchOptions *o);
int bench_act(const BenchOptions *o);
int bench_env(const BenchOptions *o);
int bench_e2e(const BenchOptions *o);

/* `flame bench kernels ARGS...`: argv holds the arguments after "kernels" (argc of them), passed
   unchanged to flame_cuda_bench_kernels. Without CUDA compiled in or without a device it prints
   that the suite needs a GPU, appends a "skipped" record when ARGS hold --json FILE, and returns
   FLAME_OK. */
int bench_kernels(int argc, char **argv);

/* The suite's config: defaults, then `suite_defaults` ("key=value", NULL-terminated; may be NULL),
   the --config file, --env (env.id), each --set; resolved and validated. backend.type is then
   --backend when given, else the config's value: the suites pick their backends from it and report
   an unavailable GPU as "skipped" (validation runs as for the CPU). FLAME_EINPUT on errors. */
int bench_load_config(const BenchOptions *o, const char *const *suite_defaults, FlameConfig *cfg);

/* The preamble of the suites that run on one task (update, act, e2e): bench_load_config, then the
   env of env.id (FLAME_EINPUT with a message when unknown). */
int bench_setup(const BenchOptions *o, const char *const *suite_defaults, FlameConfig *cfg,
                const EnvSpec **spec);

/* Prints "config: <summary>" (when cfg is not NULL) and "host: <cpu>; blas <library> (core
   <core>); load average <x>". */
void bench_print_context(const FlameConfig *cfg);

/* One backend configuration a suite measures. */
typedef struct {
    const BackendOps *ops;
    bool cuda;
    int kernels, precision; /* backend.kernels, backend.precision (CUDA) */
    char name[64];          /* "cpu", "cuda-fused-fp32", ... */
} BenchVariant;

/* The variants for --backend `kind` (auto: every backend here): cpu; cuda x {fused, cublas} x
   {fp32, tf32} when a device exists. *skip (NULL when none) says why CUDA variants are missing
   although asked for. Returns the count (at most 8). */
int bench_variants(int kind, BenchVariant v[8], const char **skip);

/* ------------------------------------------------------------------ timing and statistics */

typedef struct {
    int n;
    double min, max, mean, median, p50, p90, p99;
} BenchStats;

/* Order statistics of x[0..n) (x is not modified); percentiles interpolate linearly between
   order statistics. n = 0 gives NaNs. */
void bench_stats(const double *x, int n, BenchStats *s);

/* Evicts the CPU caches by writing and reading a buffer of twice the last-level cache (allocated
   once, at least 8 MiB). */
void bench_flush_cpu_cache(void);

/* FMA peak GFLOP/s of `threads` cores of this CPU at `clock_ghz` (NaN: the nominal clock; host.h),
   NaN when unknown. */
double bench_cpu_peak(int threads, double clock_ghz);

/* The 1-minute load average (/proc/loadavg; NaN when unknown): other work on the machine. */
double bench_load_avg(void);

/* ------------------------------------------------------------------ JSON lines */

typedef struct {
    char *buf;
    size_t len, cap;
    int depth;
    bool first[16]; /* per nesting level: no member written yet */
} BenchJson;

void bench_json_begin(BenchJson *j);                /* "{" */
void bench_json_key(BenchJson *j, const char *key); /* "key": { (nested object) */
void bench_json_end(BenchJson *j);                  /* "}" */
void bench_json_str(BenchJson *j, const char *key, const char *v);
void bench_json_num(BenchJson *j, const char *key, double v); /* non-finite: null */
void bench_json_int(BenchJson *j, const char *key, int64_t v);
void bench_json_bool(BenchJson *j, const char *key, bool v);
/* every digit a double needs to read back exactly (%.17g); non-finite: null */
void bench_json_double(BenchJson *j, const char *key, double v);
void bench_json_doubles(BenchJson *j, const char *key, const double *v, size_t n); /* [..] */
void bench_json_ints(BenchJson *j, const char *key, const int *v, size_t n);       /* [..] */
void bench_json_free(BenchJson *j);

/* The fields every record starts with: suite, name, status, validated, timestamp, commit, device,
   driver (the GPU and its driver when `cuda`, else the CPU and "none"), host, blas, blas_core,
   cpu_simd, cpu_peak_gflops_core (null when unknown), load_avg_1m (/proc/loadavg when the record is
   written), quick, config (summary line), sizes {S, D, B, K, Np, hidden, layers}. cfg may be NULL
   (no config/sizes). */
void bench_json_header(BenchJson *j, const char *suite, const char *name, const char *status,
                       bool validated, bool cuda, const FlameConfig *cfg, int obs_dim, int act_dim,
                       bool quick);

/* backend ("cpu" or "cuda"), kernels ("reference" on the CPU) and precision of a variant. */
void bench_json_variant(BenchJson *j, const BenchVariant *v);

/* Appends a "skipped" record {backend: "cuda", reason} (CUDA variants this machine cannot run). */
int bench_json_skipped(const BenchOptions *o, const char *suite, const char *name,
                       const FlameConfig *cfg, int obs_dim, int act_dim, const char *reason);

/* Closes the record and appends it as one line to `path` (no-op when path is NULL). */
int bench_json_write(BenchJson *j, const char *path);

/* One-line summary of the config the measurement ran with. */
void bench_config_summary(const FlameConfig *cfg, char *out, size_t len);

/* ------------------------------------------------------------------ inputs and validation */

/* Counter-based draws for benchmark inputs (splitmix64 of (seed, i)). */
float bench_rand_uniform(uint64_t seed, uint64_t i); /* [0, 1) */
float bench_rand_normal(uint64_t seed, uint64_t i);

/* Pushes n synthetic transitions of the backend's sizes: N(0,1) observations, next = obs + 0.1
   N(0,1), actions uniform in [-1.1, 1.1] (exploration leaves the box), N(0,1) rewards, one
   terminal in 50. */
void bench_fill_replay(const BackendOps *ops, Backend *b, int obs_dim, int act_dim, int64_t n);

/* Every parameter, target, EMA and moment array of the backend's state is finite. `what` (may be
   NULL) receives the first non-finite array's name. */
bool bench_state_finite(const BackendOps *ops, Backend *b, const FlameConfig *cfg, int obs_dim,
                        int act_dim, char *what, size_t what_len);

/* The update's metrics that every algorithm fills are finite. */
bool bench_metrics_finite(const UpdateMetrics *m);

#endif
