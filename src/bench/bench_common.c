/*
 * bench_common.c: what every `flame bench` suite shares (see include/flame/bench.h): the config of
 * a suite, timing and order statistics, CPU cache eviction, the machine description, JSON lines,
 * synthetic replay contents and the finiteness checks behind validation.
 */
#include "flame/bench.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "flame/agent.h"
#include "flame/blas_core.h"
#include "flame/build_info.h"
#include "flame/check.h"
#include "flame/host.h"
#include "flame/mlp.h"
#ifdef FLAME_HAVE_CUDA
#include "flame/cuda_api.h"
#endif

/* ------------------------------------------------------------------ config */
int bench_load_config(const BenchOptions *o, const char *const *suite_defaults, FlameConfig *cfg) {
    config_defaults(cfg);
    for (int i = 0; suite_defaults && suite_defaults[i]; i++) {
        int rc = config_set(cfg, suite_defaults[i]);
        FLAME_CHECK(rc == FLAME_OK, "bad suite default '%s': %s", suite_defaults[i],
                    flame_last_error());
    }
    if (o->config_path) {
        int rc = config_load_file(cfg, o->config_path);
        if (rc != FLAME_OK) {
            return rc;
        }
    }
    if (o->n_env_ids > 0) {
        char set[FLAME_CFG_STR + 16];
        snprintf(set, sizeof set, "env.id=%s", o->env_ids[0]);
        int rc = config_set(cfg, set);
        if (rc != FLAME_OK) {
            return rc;
        }
    }
    for (int i = 0; i < o->nsets; i++) {
        int rc = config_set(cfg, o->sets[i]);
        if (rc != FLAME_OK) {
            return rc;
        }
    }
    /* the suites pick backends themselves and report a missing GPU as "skipped": validate as
       cpu, then restore the choice (--backend over the config's backend.type) */
    int kind = o->backend_given ? o->backend : cfg->backend.type;
    cfg->backend.type = BACKEND_CPU;
    config_resolve(cfg);
    int rc = config_validate(cfg);
    cfg->backend.type = kind;
    return rc;
}

int bench_setup(const BenchOptions *o, const char *const *suite_defaults, FlameConfig *cfg,
                const EnvSpec **spec) {
    int rc = bench_load_config(o, suite_defaults, cfg);
    if (rc != FLAME_OK) {
        return rc;
    }
    *spec = env_spec_find(cfg->env.id);
    if (!*spec) {
        return flame_errorf(FLAME_EINPUT, "unknown env id '%s' (see `flame envs`)", cfg->env.id);
    }
    return FLAME_OK;
}

void bench_print_context(const FlameConfig *cfg) {
    char summary[512], host[256], core[256];
    if (cfg) {
        bench_config_summary(cfg, summary, sizeof summary);
        printf("config: %s\n", summary);
    }
    host_cpu_summary(host, sizeof host);
    blas_core_describe(core, sizeof core);
    printf("host:   %s; load average %.2f\nblas:   %s, core %s\n", host, bench_load_avg(),
           blas_info(), core);
}

int bench_variants(int kind, BenchVariant v[8], const char **skip) {
    int n = 0;
    *skip = NULL;
    if (kind == BACKEND_AUTO || kind == BACKEND_CPU) {
        v[n++] = (BenchVariant){&backend_cpu_ops, false, KERNELS_FUSED, PRECISION_FP32, "cpu"};
    }
    if (kind == BACKEND_AUTO || kind == BACKEND_CUDA) {
#ifdef FLAME_HAVE_CUDA
        if (flame_cuda_device_count() > 0) {
            const int kk[2] = {KERNELS_FUSED, KERNELS_CUBLAS};
            const int pp[2] = {PRECISION_FP32, PRECISION_TF32};
            for (int a = 0; a < 2; a++) {
                for (int p = 0; p < 2; p++) {
                    BenchVariant *x = &v[n++];
                    *x = (BenchVariant){&backend_cuda_ops, true, kk[a], pp[p], ""};
                    snprintf(x->name, sizeof x->name, "cuda-%s-%s",
                             config_enum_name("backend.kernels", kk[a]),
                             config_enum_name("backend.precision", pp[p]));
                }
            }
        } else {
            *skip = "no CUDA device found";
        }
#else
        *skip = "this flame was built without CUDA";
#endif
    }
    return n;
}

/* ------------------------------------------------------------------ statistics */

static int bench_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* percentile q in [0, 1] of sorted v[0..n) */
static double bench_quantile(const double *v, int n, double q) {
    double pos = q * (n - 1);
    int lo = (int)floor(pos), hi = lo + 1 < n ? lo + 1 : n - 1;
    double f = pos - lo;
    return v[lo] + f * (v[hi] - v[lo]);
}

void bench_stats(const double *x, int n, BenchStats *s) {
    memset(s, 0, sizeof *s);
    s->n = n;
    if (n <= 0) {
        s->min = s->max = s->mean = s->median = s->p50 = s->p90 = s->p99 = NAN;
        return;
    }
    double *v = flame_malloc((size_t)n * sizeof(double));
    memcpy(v, x, (size_t)n * sizeof(double));
    qsort(v, (size_t)n, sizeof(double), bench_cmp_double);
    double sum = 0;
    for (int i = 0; i < n; i++) {
        sum += v[i];
    }
    s->min = v[0];
    s->max = v[n - 1];
    s->mean = sum / n;
    s->median = s->p50 = bench_quantile(v, n, 0.5);
    s->p90 = bench_quantile(v, n, 0.9);
    s->p99 = bench_quantile(v, n, 0.99);
    flame_free(v);
}

/* ------------------------------------------------------------------ CPU cache eviction */
static size_t bench_llc_bytes(void) {
    size_t best = 0;
    for (int idx = 0; idx < 8; idx++) {
        char path[128], text[64];
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/size", idx);
        FILE *f = fopen(path, "r");
        if (!f) {
            continue;
        }
        if (fgets(text, sizeof text, f)) {
            char *end = NULL;
            double v = strtod(text, &end);
            size_t mult = (end && (*end == 'K' || *end == 'k'))   ? 1024
                          : (end && (*end == 'M' || *end == 'm')) ? 1024 * 1024
                                                                  : 1;
            size_t bytes = (size_t)(v * (double)mult);
            best = bytes > best ? bytes : best;
        }
        fclose(f);
    }
    return best;
}

static volatile float bench_cache_sink; /* keeps the eviction reads */

void bench_flush_cpu_cache(void) {
    static float *buf = NULL;
    static size_t n = 0;
    if (!buf) {
        size_t bytes = 2 * bench_llc_bytes();
        bytes = bytes < ((size_t)8 << 20) ? ((size_t)8 << 20) : bytes;
        bytes = bytes > ((size_t)512 << 20) ? ((size_t)512 << 20) : bytes;
        n = bytes / sizeof(float);
        buf = flame_malloc(n * sizeof(float));
    }
    float acc = 0;
    for (size_t i = 0; i < n; i++) {
        buf[i] = (float)(i & 1023);
    }
    for (size_t i = 0; i < n; i += 16) {
        acc += buf[i];
    }
    bench_cache_sink = acc;
}

/* ------------------------------------------------------------------ machine */
double bench_cpu_peak(int threads, double clock_ghz) {
    const HostCpu *c = host_cpu();
    int used = threads < c->cores ? threads : c->cores;
    double ghz = isnan(clock_ghz) ? c->clock_ghz : clock_ghz;
    if (c->fp32_lanes <= 0 || c->fma_units <= 0 || !(ghz > 0)) {
        return NAN;
    }
    return (double)c->fp32_lanes * c->fma_units * 2.0 * ghz * (used > 0 ? used : 1);
}

double bench_load_avg(void) {
    double load = NAN;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &load) != 1) {
            load = NAN;
        }
        fclose(f);
    }
    return load;
}

/* ------------------------------------------------------------------ JSON lines */
static void bench_json_put(BenchJson *j, const char *s, size_t n) {
    if (j->len + n + 1 > j->cap) {
        size_t cap = j->cap ? j->cap : 1024;
        while (j->len + n + 1 > cap) {
            cap *= 2;
        }
        char *nb = flame_malloc(cap);
        if (j->buf) {
            memcpy(nb, j->buf, j->len);
            flame_free(j->buf);
        }
        j->buf = nb;
        j->cap = cap;
    }
    memcpy(j->buf + j->len, s, n);
    j->len += n;
    j->buf[j->len] = 0;
}

static void bench_json_puts(BenchJson *j, const char *s) {
    bench_json_put(j, s, strlen(s));
}

static void bench_json_escaped(BenchJson *j, const char *s) {
    bench_json_puts(j, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char e[8];
        if (*p == '"' || *p == '\\') {
            e[0] = '\\', e[1] = (char)*p, e[2] = 0;
        } else if (*p == '\n') {
            snprintf(e, sizeof e, "\\n");
        } else if (*p == '\t') {
            snprintf(e, sizeof e, "\\t");
        } else if (*p < 0x20) {
            snprintf(e, sizeof e, "\\u%04x", *p);
        } else {
            e[0] = (char)*p, e[1] = 0;
        }
        bench_json_puts(j, e);
    }
    bench_json_puts(j, "\"");
}

/* separator and "key": */
static void bench_json_member(BenchJson *j, const char *key) {
    if (!j->first[j->depth]) {
        bench_json_puts(j, ", ");
    }
    j->first[j->depth] = false;
    bench_json_escaped(j, key);
    bench_json_puts(j, ": ");
}

void bench_json_begin(BenchJson *j) {
    memset(j, 0, sizeof *j);
    bench_json_puts(j, "{");
    j->first[0] = true;
}

void bench_json_key(BenchJson *j, const char *key) {
    FLAME_CHECK(j->depth + 1 < (int)(sizeof j->first / sizeof j->first[0]), "JSON nested too deep");
    bench_json_member(j, key);
    bench_json_puts(j, "{");
    j->depth++;
    j->first[j->depth] = true;
}

void bench_json_end(BenchJson *j) {
    bench_json_puts(j, "}");
    if (j->depth > 0) {
        j->depth--;
    }
}

void bench_json_str(BenchJson *j, const char *key, const char *v) {
    bench_json_member(j, key);
    bench_json_escaped(j, v ? v : "");
}

void bench_json_num(BenchJson *j, const char *key, double v) {
    bench_json_member(j, key);
    if (!isfinite(v)) {
        bench_json_puts(j, "null");
        return;
    }
    char s[64];
    snprintf(s, sizeof s, "%.7g", v);
    bench_json_puts(j, s);
}

void bench_json_int(BenchJson *j, const char *key, int64_t v) {
    bench_json_member(j, key);
    char s[32];
    snprintf(s, sizeof s, "%lld", (long long)v);
    bench_json_puts(j, s);
}

/* a double with all its digits, or null */
static void bench_json_exact(BenchJson *j, double v) {
    char s[40];
    snprintf(s, sizeof s, "%.17g", v);
    bench_json_puts(j, isfinite(v) ? s : "null");
}

void bench_json_double(BenchJson *j, const char *key, double v) {
    bench_json_member(j, key);
    bench_json_exact(j, v);
}

void bench_json_doubles(BenchJson *j, const char *key, const double *v, size_t n) {
    bench_json_member(j, key);
    bench_json_puts(j, "[");
    for (size_t i = 0; i < n; i++) {
        bench_json_puts(j, i ? ", " : "");
        bench_json_exact(j, v[i]);
    }
    bench_json_puts(j, "]");
}

void bench_json_ints(BenchJson *j, const char *key, const int *v, size_t n) {
    bench_json_member(j, key);
    bench_json_puts(j, "[");
    for (size_t i = 0; i < n; i++) {
        char s[16];
        snprintf(s, sizeof s, "%s%d", i ? ", " : "", v[i]);
        bench_json_puts(j, s);
    }
    bench_json_puts(j, "]");
}

void bench_json_bool(BenchJson *j, const char *key, bool v) {
    bench_json_member(j, key);
    bench_json_puts(j, v ? "true" : "false");
}

void bench_json_free(BenchJson *j) {
    flame_free(j->buf);
    memset(j, 0, sizeof *j);
}

void bench_config_summary(const FlameConfig *cfg, char *out, size_t len) {
    const char *act = config_enum_name("net.activation", cfg->net.activation);
    snprintf(out, len,
             "algo=%s env=%s net=%dx%d %s B=%d K=%d Np=%d collapse_k=%d entropy=%s "
             "policy_delay=%d cpu_threads=%d seed=%lld",
             config_algo_name(cfg->algo), cfg->env.id, cfg->net.layers, cfg->net.hidden,
             act ? act : "?", cfg->update.batch_size, cfg->flow.sample_k, cfg->flow.num_particles,
             cfg->flow.collapse_k ? 1 : 0,
             config_enum_name("entropy.estimator", cfg->entropy.estimator),
             cfg->update.policy_delay, cfg->run.cpu_threads, (long long)cfg->run.seed);
}

void bench_json_header(BenchJson *j, const char *suite, const char *name, const char *status,
                       bool validated, bool cuda, const FlameConfig *cfg, int obs_dim, int act_dim,
                       bool quick) {
    char host[256], device[256], driver[32] = "none", stamp[32], summary[512], core[32];
    host_cpu_summary(host, sizeof host);
    BlasCore bc;
    blas_core_query(&bc);
    snprintf(core, sizeof core, "%s", bc.origin == BLAS_CORE_NOT_OPENBLAS ? "n/a" : bc.name);
    snprintf(device, sizeof device, "%s", host);
#ifdef FLAME_HAVE_CUDA
    if (cuda) {
        FlameCudaDevice d;
        if (flame_cuda_device_info(cfg ? cfg->backend.device : 0, &d) == 0) {
            snprintf(device, sizeof device, "%s", d.name);
        }
        int v = flame_cuda_driver_version();
        if (v > 0) {
            snprintf(driver, sizeof driver, "%d.%d", v / 1000, (v % 1000) / 10);
        }
    }
#else
    (void)cuda;
#endif
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);

    bench_json_begin(j);
    bench_json_str(j, "suite", suite);
    bench_json_str(j, "name", name);
    bench_json_str(j, "status", status);
    bench_json_bool(j, "validated", validated);
    bench_json_str(j, "timestamp", stamp);
    bench_json_str(j, "commit", FLAME_GIT_COMMIT);
    bench_json_str(j, "version", FLAME_VERSION);
    bench_json_str(j, "device", device);
    bench_json_str(j, "driver", driver);
    bench_json_str(j, "host", host);
    bench_json_str(j, "blas", blas_info());
    bench_json_str(j, "blas_core", core);
    bench_json_str(j, "cpu_simd", host_simd_name(host_cpu()->simd));
    bench_json_num(j, "cpu_peak_gflops_core", host_cpu()->peak_gflops);
    bench_json_num(j, "load_avg_1m", bench_load_avg());
    bench_json_bool(j, "quick", quick);
    if (cfg) {
        bench_config_summary(cfg, summary, sizeof summary);
        bench_json_str(j, "config", summary);
        bench_json_key(j, "sizes");
        bench_json_int(j, "S", obs_dim);
        bench_json_int(j, "D", act_dim);
        bench_json_int(j, "B", cfg->update.batch_size);
        bench_json_int(j, "K", cfg->flow.sample_k);
        bench_json_int(j, "Np", cfg->flow.num_particles);
        bench_json_int(j, "hidden", cfg->net.hidden);
        bench_json_int(j, "layers", cfg->net.layers);
        bench_json_end(j);
    }
}

void bench_json_variant(BenchJson *j, const BenchVariant *v) {
    bench_json_str(j, "backend", v->cuda ? "cuda" : "cpu");
    bench_json_str(j, "kernels",
                   v->cuda ? config_enum_name("backend.kernels", v->kernels) : "reference");
    bench_json_str(j, "precision",
                   v->cuda ? config_enum_name("backend.precision", v->precision) : "fp32");
}

int bench_json_skipped(const BenchOptions *o, const char *suite, const char *name,
                       const FlameConfig *cfg, int obs_dim, int act_dim, const char *reason) {
    BenchJson j;
    bench_json_header(&j, suite, name, "skipped", false, false, cfg, obs_dim, act_dim, o->quick);
    bench_json_str(&j, "backend", "cuda");
    bench_json_str(&j, "reason", reason);
    int rc = bench_json_write(&j, o->json_path);
    bench_json_free(&j);
    return rc;
}

int bench_json_write(BenchJson *j, const char *path) {
    while (j->depth > 0) {
        bench_json_end(j);
    }
    bench_json_end(j);
    if (!path) {
        return FLAME_OK;
    }
    FILE *f = fopen(path, "a");
    if (!f) {
        return flame_errorf(FLAME_ERUNTIME, "cannot append to '%s'", path);
    }
    int ok = fprintf(f, "%s\n", j->buf) > 0;
    ok = (fclose(f) == 0) && ok;
    return ok ? FLAME_OK : flame_errorf(FLAME_ERUNTIME, "cannot write to '%s'", path);
}

/* ------------------------------------------------------------------ inputs */
static uint64_t bench_splitmix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

float bench_rand_uniform(uint64_t seed, uint64_t i) {
    uint64_t h = bench_splitmix64(bench_splitmix64(seed) ^ i);
    return (float)(h >> 40) * 0x1.0p-24f;
}

float bench_rand_normal(uint64_t seed, uint64_t i) {
    uint64_t h1 = bench_splitmix64(bench_splitmix64(seed) ^ (2 * i));
    uint64_t h2 = bench_splitmix64(bench_splitmix64(seed) ^ (2 * i + 1));
    double u1 = ((double)(h1 >> 11) + 1.0) * 0x1.0p-53; /* (0, 1] */
    double u2 = (double)(h2 >> 11) * 0x1.0p-53;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

void bench_fill_replay(const BackendOps *ops, Backend *b, int obs_dim, int act_dim, int64_t n) {
    const int chunk = 1024;
    const uint64_t seed = 0xBE4C7ull;
    size_t S = (size_t)obs_dim, D = (size_t)act_dim;
    float *obs = flame_malloc(chunk * S * sizeof(float));
    float *next = flame_malloc(chunk * S * sizeof(float));
    float *act = flame_malloc(chunk * D * sizeof(float));
    float *rew = flame_malloc(chunk * sizeof(float));
    uint8_t *done = flame_malloc(chunk);
    for (int64_t r0 = 0; r0 < n; r0 += chunk) {
        int rows = n - r0 < chunk ? (int)(n - r0) : chunk;
        for (int i = 0; i < rows; i++) {
            uint64_t row = (uint64_t)(r0 + i);
            for (size_t k = 0; k < S; k++) {
                uint64_t id = (row * S + k) * 4;
                obs[i * S + k] = bench_rand_normal(seed, id);
                next[i * S + k] = obs[i * S + k] + 0.1f * bench_rand_normal(seed, id + 1);
            }
            for (size_t k = 0; k < D; k++) {
                act[i * D + k] = 2.2f * bench_rand_uniform(seed + 1, row * D + k) - 1.1f;
            }
            rew[i] = bench_rand_normal(seed + 2, row);
            done[i] = (row % 50) == 49;
        }
        ops->replay_push(b, obs, act, rew, next, done, rows);
    }
    flame_free(obs);
    flame_free(next);
    flame_free(act);
    flame_free(rew);
    flame_free(done);
}

/* ------------------------------------------------------------------ validation */
static bool bench_all_finite(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(x[i])) {
            return false;
        }
    }
    return true;
}

bool bench_state_finite(const BackendOps *ops, Backend *b, const FlameConfig *cfg, int obs_dim,
                        int act_dim, char *what, size_t what_len) {
    AgentState st;
    agent_state_init(&st, cfg, obs_dim, act_dim);
    ops->get_state(b, &st);
    struct {
        const char *name;
        const float *x;
        size_t n;
    } arrays[] = {
        {"policy", st.pol.params, st.pol.n},   {"policy adam m", st.pol.m, st.pol.n},
        {"policy adam v", st.pol.v, st.pol.n}, {"q1", st.q1.params, st.q1.n},
        {"q1 adam m", st.q1.m, st.q1.n},       {"q1 adam v", st.q1.v, st.q1.n},
        {"q2", st.q2.params, st.q2.n},         {"q2 adam m", st.q2.m, st.q2.n},
        {"q2 adam v", st.q2.v, st.q2.n},       {"policy ema", st.pol_ema, st.pol.n},
        {"q1 target", st.q1_targ, st.q1.n},    {"q2 target", st.q2_targ, st.q2.n},
        {"log alpha", &st.log_alpha, 1},
    };
    bool ok = true;
    for (size_t i = 0; i < sizeof arrays / sizeof arrays[0] && ok; i++) {
        if (!bench_all_finite(arrays[i].x, arrays[i].n)) {
            ok = false;
            if (what) {
                snprintf(what, what_len, "%s", arrays[i].name);
            }
        }
    }
    agent_state_free(&st);
    return ok;
}

bool bench_metrics_finite(const UpdateMetrics *m) {
    double v[] = {m->critic_loss[0], m->critic_loss[1], m->q_mean, m->q_min,
                  m->q_max,          m->target_mean,    m->alpha};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        if (!isfinite(v[i])) {
            return false;
        }
    }
    return true;
}
