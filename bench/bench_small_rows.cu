/*
 * bench_small_rows.cu: kernel lab for the passes over few rows that leave most of the GPU idle on
 * the one-block-per-row-tile kernel: the twin target critics on the batch (forward of both
 * critics, B rows) and the MeanFlow velocity network's JVP on the batch (each entropy step, the
 * collapsed flow-matching loss). 3 x 256 mish networks; rows B = 256, 1024, 4096.
 *
 * versions (--version N):
 *   1  cuBLAS layers (backend.kernels=cublas)
 *   2  fused tile kernel, one block per row tile and network (backend.small_rows=tile)
 *   3  cluster engine: 8 blocks per 16-row tile, each 1/8 of every layer's columns, slices
 *      gathered through distributed shared memory (backend.small_rows=cluster; sm_90)
 * Validation: the CPU MLP (mlp_forward / mlp_jvp), all rows, before and after timing.
 */
#include "bench_common.cuh"

#include "../tests/tolerances.h"
#include "cmlp.cuh"

typedef struct {
    const char *env;
    int S, D, rows;
    bool jvp; /* policy JVP (else twin critic forward) */
} SmallSize;

typedef struct {
    Mlp m;
    int rows, version;
    bool jvp;
    float *P1, *P2;
    DIn in, tin;
    DMlpCache c1, c2;
} SmallArg;

static void small_set_ctx(BenchCtx *b, int version) {
    b->ctx.fused = version >= 2;
    b->ctx.cluster = version == 3;
}

static void run_small(BenchCtx *b, void *arg) {
    SmallArg *f = (SmallArg *)arg;
    small_set_ctx(b, f->version);
    if (f->jvp) {
        const float *tout;
        dmlp_jvp(&b->ctx, &f->m, f->P1, &f->in, &f->tin, f->rows, &f->c1, false, &tout);
    } else {
        dmlp_forward2(&b->ctx, &f->m, f->P1, f->P2, &f->in, f->rows, &f->c1, &f->c2, false);
    }
    small_set_ctx(b, 0);
}

static void small_lab_size(BenchCtx *b, const SmallSize *sz) {
    int S = sz->S, D = sz->D, rows = sz->rows;
    int in = sz->jvp ? S + D + 32 : S + D, out = sz->jvp ? D : 1;
    ParamTable t;
    param_table_init(&t);
    SmallArg f;
    memset(&f, 0, sizeof f);
    mlp_layout(&f.m, &t, "net", in, 256, 3, out, ACT_MISH);
    f.rows = rows;
    f.jvp = sz->jvp;
    float *hP1 = (float *)calloc(t.total, sizeof(float)), *hP2 = (float *)calloc(t.total, 4);
    mlp_init_params(&f.m, &t, hP1, 5, 1);
    mlp_init_params(&f.m, &t, hP2, 5, 2);
    for (int l = 0; l < f.m.n_layers; l++) {
        bench_fill(hP1 + f.m.b_off[l], (size_t)f.m.dims[l + 1], 10 + l, 0.1f);
        bench_fill(hP2 + f.m.b_off[l], (size_t)f.m.dims[l + 1], 20 + l, 0.1f);
    }
    size_t nx = (size_t)rows * in, no = (size_t)rows * out;
    float *hX = (float *)malloc(nx * sizeof(float)), *hT = (float *)calloc(nx, sizeof(float));
    bench_fill(hX, nx, 3, 0.8f);
    for (int i = 0; i < rows; i++) { /* the tangent on x (the probe or v-bar) */
        for (int c = S; c < S + D; c++) {
            hT[(size_t)i * in + c] = rng_normal(9, RNG_STREAM_TEST, 4, (uint32_t)i, (uint32_t)c);
        }
    }
    float *dX = NULL, *dT = NULL;
    CUDA_CHECK(cudaMalloc(&f.P1, t.total * sizeof(float)));
    CUDA_CHECK(cudaMalloc(&f.P2, t.total * sizeof(float)));
    CUDA_CHECK(cudaMalloc(&dX, nx * sizeof(float)));
    CUDA_CHECK(cudaMalloc(&dT, nx * sizeof(float)));
    CUDA_CHECK(cudaMemcpy(f.P1, hP1, t.total * sizeof(float), cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(f.P2, hP2, t.total * sizeof(float), cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(dX, hX, nx * sizeof(float), cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(dT, hT, nx * sizeof(float), cudaMemcpyHostToDevice));
    f.in = din_empty();
    f.tin = din_empty();
    din_add(&f.in, dX, in, in, 1);
    din_add(&f.tin, dT, in, in, 1);
    dmlp_cache_alloc(&f.c1, &f.m, rows, DMLP_CACHE_JVP);
    dmlp_cache_alloc(&f.c2, &f.m, rows, 0);

    /* CPU references: both outputs (forward) or primal and tangent (JVP) */
    MlpCache mc;
    mlp_cache_alloc(&mc, &f.m, rows);
    float *ref = (float *)malloc(2 * no * sizeof(float));
    if (sz->jvp) {
        const float *rt;
        memcpy(ref, mlp_jvp(&f.m, hP1, hX, hT, rows, &mc, &rt), no * sizeof(float));
        memcpy(ref + no, rt, no * sizeof(float));
    } else {
        memcpy(ref, mlp_forward(&f.m, hP1, hX, rows, &mc), no * sizeof(float));
        memcpy(ref + no, mlp_forward(&f.m, hP2, hX, rows, &mc), no * sizeof(float));
    }
    mlp_cache_free(&mc);
    float *got2 = NULL;
    CUDA_CHECK(cudaMalloc(&got2, 2 * no * sizeof(float)));

    double flops = 2.0 * rows * mlp_flops(&f.m); /* two networks, or primal and tangent */
    double bytes = 4.0 * (nx * (sz->jvp ? 2 : 1) + 2.0 * t.total + 2.0 * no);
    char sizes_json[256], sizes_txt[96];
    snprintf(sizes_json, sizeof sizes_json,
             "\"env\": \"%s\", \"pass\": \"%s\", \"S\": %d, \"D\": %d, \"rows\": %d, \"in\": %d, "
             "\"hidden\": 256, \"layers\": 3, \"out\": %d",
             sz->env, sz->jvp ? "policy jvp" : "twin critic forward", S, D, rows, in, out);
    snprintf(sizes_txt, sizeof sizes_txt, "%s %s rows=%d", sz->env, sz->jvp ? "jvp" : "fwd2", rows);
    const char *names[4] = {"", "cuBLAS layers", "fused tile", "cluster engine"};
    FlameTol ty = TOL_MLP_FWD, tt = TOL_MLP_JVP;
    for (int v = 1; v <= 3; v++) {
        if (b->version > 0 && b->version != v) {
            continue;
        }
        f.version = v;
        small_set_ctx(b, v);
        bool skipped = v == 3 && !cm_pass_ok(&b->ctx, &f.m, sz->jvp, rows);
        small_set_ctx(b, 0);
        if (skipped) { /* no clusters on this device (sm_90 needed) */
            BenchTime z = {0, 0};
            bench_record(b, "small_rows", v, names[v], 0, sizes_json, sizes_txt, z, flops, bytes,
                         true, true, 0, true);
            continue;
        }
        bool ok[2];
        double rel = 0;
        BenchTime bt = {0, 0};
        for (int pass = 0; pass < 2; pass++) {
            CUDA_CHECK(cudaMemset(f.c1.z[f.m.n_layers - 1], 0xff, no * sizeof(float)));
            CUDA_CHECK(cudaMemset(sz->jvp ? f.c1.tout : f.c2.z[f.m.n_layers - 1], 0xff,
                                  no * sizeof(float)));
            run_small(b, &f);
            CUDA_CHECK(cudaMemcpy(got2, f.c1.z[f.m.n_layers - 1], no * sizeof(float),
                                  cudaMemcpyDeviceToDevice));
            CUDA_CHECK(cudaMemcpy(got2 + no, sz->jvp ? f.c1.tout : f.c2.z[f.m.n_layers - 1],
                                  no * sizeof(float), cudaMemcpyDeviceToDevice));
            double r1 = 0, r2 = 0;
            ok[pass] = bench_validate(got2, ref, no, ty.atol, ty.rtol, &r1);
            FlameTol t2 = sz->jvp ? tt : ty;
            ok[pass] = bench_validate(got2 + no, ref + no, no, t2.atol, t2.rtol, &r2) && ok[pass];
            rel = r1 > r2 ? r1 : r2;
            if (pass == 0) {
                bt = bench_time(b, run_small, &f, b->repeats);
            }
        }
        bench_record(b, "small_rows", v, names[v], 0, sizes_json, sizes_txt, bt, flops, bytes,
                     ok[0], ok[1], rel, false);
    }
    dmlp_cache_free(&f.c1);
    dmlp_cache_free(&f.c2);
    void *d[] = {f.P1, f.P2, dX, dT, got2};
    for (size_t i = 0; i < sizeof d / sizeof d[0]; i++) {
        CUDA_CHECK(cudaFree(d[i]));
    }
    free(hP1), free(hP2), free(hX), free(hT), free(ref);
}

static void bench_small_rows_lab(BenchCtx *b) {
    static const SmallSize tiny[] = {{"HalfCheetah", 17, 6, 37, false},
                                     {"HalfCheetah", 17, 6, 37, true}};
    static const SmallSize quick[] = {{"HalfCheetah", 17, 6, 256, false},
                                      {"HalfCheetah", 17, 6, 256, true}};
    static const SmallSize full[] = {
        {"HalfCheetah", 17, 6, 256, false},  {"HalfCheetah", 17, 6, 256, true},
        {"HalfCheetah", 17, 6, 1024, false}, {"HalfCheetah", 17, 6, 1024, true},
        {"HalfCheetah", 17, 6, 4096, false}, {"HalfCheetah", 17, 6, 4096, true},
        {"Humanoid", 348, 17, 256, false},   {"Humanoid", 348, 17, 256, true},
    };
    const SmallSize *s = b->tiny ? tiny : (b->quick ? quick : full);
    int n = b->tiny ? 2 : (b->quick ? 2 : 8);
    for (int i = 0; i < n; i++) {
        small_lab_size(b, &s[i]);
    }
}

#ifdef FLAME_BENCH_MAIN
int main(int argc, char **argv) {
    return bench_lab_main(argc, argv, "bench_small_rows", bench_small_rows_lab);
}
#endif
