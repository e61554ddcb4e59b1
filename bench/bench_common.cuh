/*
 * bench_common.cuh: the harness of the kernel labs (bench/bench_<op>.cu), style.md G16:
 *   1. inputs from fixed seeds, the CPU reference computed by the linked CPU code (src/nn/mlp.c);
 *   2. every variant validated at every block size of its sweep before timing;
 *   3. warm-up;
 *   4. R timed repeats with CUDA events, the L2 flushed before each by writing a scratch buffer
 *      (allocated once, twice the L2 size);
 *   5. validated again after timing;
 *   6. median and min time, GFLOP/s and GB/s from the lab's FLOP and byte formulas, and the
 *      fraction of three ceilings measured in the same run: a large cuBLAS sgemm, the same GEMM in
 *      TF32, and a large device-to-device copy (bytes read plus written).
 * Output: a table on stdout and, with --json FILE, one JSON object per line appended to FILE
 * (device, driver, commit, sizes and every number).
 *
 * Options (flame bench kernels ... or a lab's own executable): --json FILE, --quick (small sizes,
 * few repeats), --tiny (smallest sizes only, CTest smoke runs), --lab NAME (flame bench kernels:
 * NAME[,NAME...]), --version N, --repeats R, --help.
 *
 * defines: BenchCtx BenchTime bench_parse bench_setup bench_teardown bench_ceilings bench_time
 *          bench_compare bench_validate bench_record bench_fill BENCH_LAB
 */
#ifndef FLAME_BENCH_COMMON_CUH
#define FLAME_BENCH_COMMON_CUH

#include <algorithm>

#include "dmlp.cuh"

extern "C" {
#include "flame/build_info.h"
#include "flame/mlp.h"
}

typedef struct {
    /* options */
    const char *json_path;
    bool quick, tiny, help;
    const char *lab; /* NULL: every lab */
    int version;     /* <= 0: every version */
    int repeats;
    /* device */
    cudaDeviceProp prop;
    int driver;
    DCtx ctx;
    void *flush;
    size_t flush_bytes;
    cudaEvent_t e0, e1;
    /* ceilings measured in this run */
    double sgemm_gflops, tf32_gflops, copy_gbs;
    /* outcome */
    int failures, records;
    FILE *json;
} BenchCtx;

typedef struct {
    double median_ms, min_ms;
} BenchTime;

typedef void (*BenchFn)(BenchCtx *ctx, void *arg);

static inline int bench_parse(BenchCtx *b, int argc, char **argv) {
    memset(b, 0, sizeof *b);
    b->repeats = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--json") && i + 1 < argc) {
            b->json_path = argv[++i];
        } else if (!strncmp(a, "--json=", 7)) {
            b->json_path = a + 7;
        } else if (!strcmp(a, "--quick")) {
            b->quick = true;
        } else if (!strcmp(a, "--tiny")) {
            b->tiny = b->quick = true;
        } else if (!strcmp(a, "--lab") && i + 1 < argc) {
            b->lab = argv[++i];
        } else if (!strcmp(a, "--version") && i + 1 < argc) {
            b->version = atoi(argv[++i]);
        } else if (!strcmp(a, "--repeats") && i + 1 < argc) {
            b->repeats = atoi(argv[++i]);
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            b->help = true;
        } else {
            fprintf(stderr,
                    "flame bench kernels: unknown option '%s'\n"
                    "usage: flame bench kernels [--json FILE] [--quick] [--tiny] "
                    "[--lab NAME[,NAME...]] [--version N] [--repeats R]\n",
                    a);
            return 2;
        }
    }
    if (b->repeats <= 0) {
        b->repeats = b->tiny ? 3 : (b->quick ? 7 : 25);
    }
    return 0;
}

static inline void bench_setup(BenchCtx *b) {
    int dev = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaGetDeviceProperties(&b->prop, dev));
    CUDA_CHECK(cudaDriverGetVersion(&b->driver));
    CUDA_CHECK(cudaStreamCreate(&b->ctx.stream));
    CUBLAS_CHECK(cublasCreate(&b->ctx.blas));
    CUBLAS_CHECK(cublasSetStream(b->ctx.blas, b->ctx.stream));
    dmlp_init(&b->ctx);
    b->flush_bytes = (size_t)(b->prop.l2CacheSize > 0 ? b->prop.l2CacheSize : (8 << 20)) * 2;
    CUDA_CHECK(cudaMalloc(&b->flush, b->flush_bytes));
    CUDA_CHECK(cudaEventCreate(&b->e0));
    CUDA_CHECK(cudaEventCreate(&b->e1));
    /* no persisting-L2 carve-out during the measurements */
    CUDA_CHECK(cudaCtxResetPersistingL2Cache());
    if (b->json_path) {
        b->json = fopen(b->json_path, "a");
        if (!b->json) {
            fprintf(stderr, "flame bench kernels: cannot open %s for appending\n", b->json_path);
        }
    }
    blas_set_threads(8);
    printf("device: %s (sm_%d%d, %d SMs, L2 %d MiB), driver %d, commit %s\n", b->prop.name,
           b->prop.major, b->prop.minor, b->prop.multiProcessorCount,
           b->prop.l2CacheSize >> 20, b->driver, FLAME_GIT_COMMIT);
}

static inline void bench_teardown(BenchCtx *b) {
    if (b->json) {
        fclose(b->json);
    }
    CUDA_CHECK(cudaEventDestroy(b->e0));
    CUDA_CHECK(cudaEventDestroy(b->e1));
    CUDA_CHECK(cudaFree(b->flush));
    CUBLAS_CHECK(cublasDestroy(b->ctx.blas));
    CUDA_CHECK(cudaStreamDestroy(b->ctx.stream));
}

/* Times fn: warm-up, then `repeats` runs each after an L2 flush; median and min in ms. */
static inline BenchTime bench_time(BenchCtx *b, BenchFn fn, void *arg, int repeats) {
    for (int i = 0; i < 3; i++) {
        fn(b, arg);
    }
    CUDA_CHECK(cudaStreamSynchronize(b->ctx.stream));
    double *t = (double *)malloc(sizeof(double) * (size_t)repeats);
    for (int r = 0; r < repeats; r++) {
        CUDA_CHECK(cudaMemsetAsync(b->flush, r & 0xff, b->flush_bytes, b->ctx.stream));
        CUDA_CHECK(cudaEventRecord(b->e0, b->ctx.stream));
        fn(b, arg);
        CUDA_CHECK(cudaEventRecord(b->e1, b->ctx.stream));
        CUDA_CHECK(cudaEventSynchronize(b->e1));
        float ms = 0;
        CUDA_CHECK(cudaEventElapsedTime(&ms, b->e0, b->e1));
        t[r] = ms;
    }
    std::sort(t, t + repeats);
    BenchTime bt;
    bt.median_ms = repeats % 2 ? t[repeats / 2] : 0.5 * (t[repeats / 2 - 1] + t[repeats / 2]);
    bt.min_ms = t[0];
    free(t);
    return bt;
}

/* got (host, n floats) against ref: every element within atol + rtol |ref|, all finite. Returns
   true on pass; *rel receives ||got - ref|| / ||ref||. */
static inline bool bench_compare(const float *got, const float *ref, size_t n, double atol,
                                 double rtol, double *rel) {
    bool ok = true;
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double g = got[i], r = ref[i];
        if (!isfinite(g) || !isfinite(r) || fabs(g - r) > atol + rtol * fabs(r)) {
            ok = false;
        }
        num += (g - r) * (g - r);
        den += r * r;
    }
    *rel = den > 0 ? sqrt(num / den) : sqrt(num);
    return ok;
}

/* bench_compare of device data */
static inline bool bench_validate(const float *d_got, const float *ref, size_t n, double atol,
                                  double rtol, double *rel) {
    float *h = (float *)malloc(n * sizeof(float));
    CUDA_CHECK(cudaDeviceSynchronize());
    CUDA_CHECK(cudaMemcpy(h, d_got, n * sizeof(float), cudaMemcpyDeviceToHost));
    bool ok = bench_compare(h, ref, n, atol, rtol, rel);
    free(h);
    return ok;
}

static inline void bench_fill(float *x, size_t n, uint32_t tag, float scale) {
    for (size_t i = 0; i < n; i++) {
        x[i] = scale * rng_normal(1234, RNG_STREAM_TEST, tag, (uint32_t)(i >> 20),
                                  (uint32_t)(i & 0xfffff));
    }
}

/* One measurement: a table line and a JSON object. sizes_json is the inner text of "sizes". */
static inline void bench_record(BenchCtx *b, const char *lab, int version, const char *variant,
                                int block, const char *sizes_json, const char *sizes_txt,
                                BenchTime t, double flops, double bytes, bool valid,
                                bool valid_after, double rel_err, bool skipped) {
    double gflops = skipped ? 0 : flops / (t.median_ms * 1e6);
    double gbs = skipped ? 0 : bytes / (t.median_ms * 1e6);
    if (!skipped && (!valid || !valid_after)) {
        b->failures++;
    }
    b->records++;
    printf("%-10s v%d %-24s blk %4d %-34s %s %9.4f ms (min %9.4f) %9.1f GFLOP/s %8.1f GB/s "
           "%5.1f%% sgemm %5.1f%% tf32  rel %.2e\n",
           lab, version, variant, block, sizes_txt,
           skipped ? "skip" : (valid && valid_after ? " ok " : "FAIL"), t.median_ms, t.min_ms,
           gflops, gbs, b->sgemm_gflops > 0 ? 100 * gflops / b->sgemm_gflops : 0,
           b->tf32_gflops > 0 ? 100 * gflops / b->tf32_gflops : 0, rel_err);
    if (!b->json) {
        return;
    }
    fprintf(b->json,
            "{\"suite\": \"kernels\", \"lab\": \"%s\", \"version\": %d, \"variant\": \"%s\", "
            "\"block\": %d, \"status\": \"%s\", \"valid\": %s, \"valid_after\": %s, "
            "\"device\": \"%s\", \"sm\": %d, \"driver\": %d, \"commit\": \"%s\", "
            "\"sizes\": {%s}, \"median_ms\": %.6f, \"min_ms\": %.6f, \"flops\": %.6g, "
            "\"bytes\": %.6g, \"gflops\": %.3f, \"gbs\": %.3f, \"rel_err\": %.3e, "
            "\"ceil_sgemm_gflops\": %.1f, \"ceil_tf32_gflops\": %.1f, \"ceil_copy_gbs\": %.1f, "
            "\"frac_sgemm\": %.4f, \"frac_tf32\": %.4f, \"frac_copy\": %.4f, \"quick\": %s}\n",
            lab, version, variant, block,
            skipped ? "skipped" : (valid && valid_after ? "ok" : "failed"),
            valid ? "true" : "false", valid_after ? "true" : "false", b->prop.name,
            b->prop.major * 10 + b->prop.minor, b->driver, FLAME_GIT_COMMIT, sizes_json,
            t.median_ms, t.min_ms, flops, bytes, gflops, gbs, rel_err, b->sgemm_gflops,
            b->tf32_gflops, b->copy_gbs, b->sgemm_gflops > 0 ? gflops / b->sgemm_gflops : 0,
            b->tf32_gflops > 0 ? gflops / b->tf32_gflops : 0,
            b->copy_gbs > 0 ? gbs / b->copy_gbs : 0, b->quick ? "true" : "false");
    fflush(b->json);
}

/* ------------------------------------------------------------------ ceilings */
typedef struct {
    int n;
    float *A, *B, *C;
} GemmArg;

static inline void ceil_gemm(BenchCtx *b, void *arg) {
    GemmArg *g = (GemmArg *)arg;
    const float one = 1.0f, zero = 0.0f;
    CUBLAS_CHECK(cublasSgemm(b->ctx.blas, CUBLAS_OP_N, CUBLAS_OP_N, g->n, g->n, g->n, &one, g->A,
                             g->n, g->B, g->n, &zero, g->C, g->n));
}

typedef struct {
    void *src, *dst;
    size_t bytes;
} CopyArg;

static inline void ceil_copy(BenchCtx *b, void *arg) {
    CopyArg *c = (CopyArg *)arg;
    CUDA_CHECK(cudaMemcpyAsync(c->dst, c->src, c->bytes, cudaMemcpyDeviceToDevice, b->ctx.stream));
}

/* Measures the three ceilings of this run (GEMM: n^3 with n = 8192, quick 2048, tiny 512). */
static inline void bench_ceilings(BenchCtx *b) {
    GemmArg g;
    g.n = b->tiny ? 512 : (b->quick ? 2048 : 8192);
    size_t nn = (size_t)g.n * g.n;
    CUDA_CHECK(cudaMalloc(&g.A, nn * sizeof(float)));
    CUDA_CHECK(cudaMalloc(&g.B, nn * sizeof(float)));
    CUDA_CHECK(cudaMalloc(&g.C, nn * sizeof(float)));
    float *h = (float *)malloc(nn * sizeof(float));
    bench_fill(h, nn, 77, 1.0f);
    CUDA_CHECK(cudaMemcpy(g.A, h, nn * sizeof(float), cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(g.B, h, nn * sizeof(float), cudaMemcpyHostToDevice));
    free(h);
    double fl = 2.0 * g.n * (double)g.n * g.n;
    int reps = b->tiny ? 3 : 7;
    CUBLAS_CHECK(cublasSetMathMode(b->ctx.blas, CUBLAS_DEFAULT_MATH));
    BenchTime t = bench_time(b, ceil_gemm, &g, reps);
    b->sgemm_gflops = fl / (t.median_ms * 1e6);
    CUBLAS_CHECK(cublasSetMathMode(b->ctx.blas, CUBLAS_TF32_TENSOR_OP_MATH));
    BenchTime t2 = bench_time(b, ceil_gemm, &g, reps);
    b->tf32_gflops = fl / (t2.median_ms * 1e6);
    CUBLAS_CHECK(cublasSetMathMode(b->ctx.blas, CUBLAS_DEFAULT_MATH));
    CUDA_CHECK(cudaFree(g.A));
    CUDA_CHECK(cudaFree(g.B));
    CUDA_CHECK(cudaFree(g.C));
    CopyArg c;
    c.bytes = (size_t)(b->tiny ? 16 : (b->quick ? 128 : 1024)) << 20;
    CUDA_CHECK(cudaMalloc(&c.src, c.bytes));
    CUDA_CHECK(cudaMalloc(&c.dst, c.bytes));
    CUDA_CHECK(cudaMemset(c.src, 1, c.bytes));
    BenchTime t3 = bench_time(b, ceil_copy, &c, reps);
    b->copy_gbs = 2.0 * c.bytes / (t3.median_ms * 1e6);
    CUDA_CHECK(cudaFree(c.src));
    CUDA_CHECK(cudaFree(c.dst));
    printf("ceilings: sgemm %d^3 %.0f GFLOP/s, tf32 %.0f GFLOP/s, d2d copy %.0f GB/s\n", g.n,
           b->sgemm_gflops, b->tf32_gflops, b->copy_gbs);
    if (b->json) {
        fprintf(b->json,
                "{\"suite\": \"kernels\", \"lab\": \"ceilings\", \"status\": \"ok\", "
                "\"device\": \"%s\", \"sm\": %d, \"driver\": %d, \"commit\": \"%s\", "
                "\"sizes\": {\"gemm_n\": %d, \"copy_bytes\": %zu}, \"sgemm_gflops\": %.1f, "
                "\"tf32_gflops\": %.1f, \"copy_gbs\": %.1f, \"sgemm_ms\": %.4f, "
                "\"tf32_ms\": %.4f, \"copy_ms\": %.4f, \"quick\": %s}\n",
                b->prop.name, b->prop.major * 10 + b->prop.minor, b->driver, FLAME_GIT_COMMIT, g.n,
                c.bytes, b->sgemm_gflops, b->tf32_gflops, b->copy_gbs, t.median_ms, t2.median_ms,
                t3.median_ms, b->quick ? "true" : "false");
        fflush(b->json);
    }
}

/* A lab: runs its variants (b->version selects one) and records every measurement. */
typedef void (*BenchLabFn)(BenchCtx *b);

/* main() of a lab's own executable: 77 without a device, 2 on bad usage, 1 when a validation
   failed. */
static inline int bench_lab_main(int argc, char **argv, const char *name, BenchLabFn lab) {
    BenchCtx b;
    int rc = bench_parse(&b, argc - 1, argv + 1);
    if (rc) {
        return rc;
    }
    if (b.help) {
        printf("usage: %s [--json FILE] [--quick] [--tiny] [--version N] [--repeats R]\n", name);
        return 0;
    }
    if (flame_cuda_device_count() == 0) {
        printf("%s: skipped: no CUDA device\n", name);
        return 77;
    }
    bench_setup(&b);
    bench_ceilings(&b);
    lab(&b);
    printf("%s: %d measurement(s), %d failed validation\n", name, b.records, b.failures);
    bench_teardown(&b);
    return b.failures ? 1 : 0;
}

#endif
