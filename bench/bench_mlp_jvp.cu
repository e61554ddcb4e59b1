/*
 * bench_mlp_jvp.cu: kernel lab for the MeanFlow velocity network's forward + JVP (primal and
 * tangent in one pass), the core of the collapsed flow-matching loss (B rows, tangent (v-bar, 0,
 * 1)) and of each entropy-estimator step (B rows, tangent = probe), and, for comparison, of the
 * reference code's B*K-row form. The trunk input is [s, x, g_r, g_t] with the time features as
 * per-row segments; the tangent is nonzero on x and g_t.
 *
 * versions (--version N):
 *   2  cuBLAS: per layer one sgemm for the primal, one for the tangent, a bias/activation kernel
 *      and a tangent * act'(z) kernel (production baseline, backend.kernels=cublas)
 *   3  fused whole network, 16 rows per block, primal and tangent tiles both in shared memory
 *   4  as 3 with 32 rows per block (production default, backend.kernels=fused)
 *   5  cuBLAS in TF32 tensor-op mode
 * Sizes: HalfCheetah, Ant, Humanoid policies (S + D + 32 inputs, 3 x 256 mish, D outputs); rows
 * B = 256 and B*K = 25,600 (K = 100). Validation: the CPU JVP (mlp_jvp), all rows, before and after
 * timing.
 */
#include "bench_common.cuh"

#include "../tests/tolerances.h"

typedef struct {
    const char *env;
    int S, D, rows;
} JvpSize;

typedef struct {
    Mlp m;
    int rows, in, out, version, block;
    float *P, *X, *T;
    DIn in_seg, tin;
    DMlpCache c;
} JvpArg;

static void run_jvp(BenchCtx *b, void *arg) {
    JvpArg *f = (JvpArg *)arg;
    b->ctx.fused = f->version == 3 || f->version == 4;
    dmlp_force_tile(b->ctx.fused ? f->block : 0);
    const float *tout;
    dmlp_jvp(&b->ctx, &f->m, f->P, &f->in_seg, &f->tin, f->rows, &f->c, false, &tout);
    dmlp_force_tile(0);
}

static void jvp_lab_size(BenchCtx *b, const JvpSize *sz) {
    int S = sz->S, D = sz->D, rows = sz->rows, in = S + D + 32;
    ParamTable t;
    param_table_init(&t);
    JvpArg f;
    memset(&f, 0, sizeof f);
    mlp_layout(&f.m, &t, "pol", in, 256, 3, D, ACT_MISH);
    f.rows = rows, f.in = in, f.out = D;
    float *hP = (float *)calloc(t.total, sizeof(float));
    mlp_init_params(&f.m, &t, hP, 5, NET_POLICY);
    for (int l = 0; l < f.m.n_layers; l++) {
        bench_fill(hP + f.m.b_off[l], (size_t)f.m.dims[l + 1], 30 + l, 0.1f);
    }
    float *hX = (float *)malloc(sizeof(float) * (size_t)rows * in);
    float *hT = (float *)calloc((size_t)rows * in, sizeof(float));
    bench_fill(hX, (size_t)rows * in, 3, 0.8f);
    for (int i = 0; i < rows; i++) { /* tangent on x and on the t features */
        for (int c = S; c < S + D; c++) {
            hT[(size_t)i * in + c] = rng_normal(9, RNG_STREAM_TEST, 4, (uint32_t)i, (uint32_t)c);
        }
        for (int c = S + D + 16; c < in; c++) {
            hT[(size_t)i * in + c] = 0.1f * rng_normal(9, RNG_STREAM_TEST, 5, (uint32_t)i, (uint32_t)c);
        }
    }
    CUDA_CHECK(cudaMalloc(&f.P, t.total * sizeof(float)));
    CUDA_CHECK(cudaMalloc(&f.X, (size_t)rows * in * sizeof(float)));
    CUDA_CHECK(cudaMalloc(&f.T, (size_t)rows * in * sizeof(float)));
    CUDA_CHECK(cudaMemcpy(f.P, hP, t.total * sizeof(float), cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(f.X, hX, (size_t)rows * in * sizeof(float), cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(f.T, hT, (size_t)rows * in * sizeof(float), cudaMemcpyHostToDevice));
    /* [s | x | g_r | g_t] as four segments of the row-major input; tangent [0 | tx | 0 | tg] */
    f.in_seg = din_empty();
    f.tin = din_empty();
    din_add(&f.in_seg, f.X, S, in, 1);
    din_add(&f.in_seg, f.X + S, D, in, 1);
    din_add(&f.in_seg, f.X + S + D, 16, in, 1);
    din_add(&f.in_seg, f.X + S + D + 16, 16, in, 1);
    din_add(&f.tin, NULL, S, 0, 1);
    din_add(&f.tin, f.T + S, D, in, 1);
    din_add(&f.tin, NULL, 16, 0, 1);
    din_add(&f.tin, f.T + S + D + 16, 16, in, 1);
    dmlp_cache_alloc(&f.c, &f.m, rows, DMLP_CACHE_JVP);

    MlpCache mc;
    mlp_cache_alloc(&mc, &f.m, rows);
    const float *rt;
    const float *ry = mlp_jvp(&f.m, hP, hX, hT, rows, &mc, &rt);
    size_t no = (size_t)rows * D;
    float *ref_y = (float *)malloc(no * sizeof(float)), *ref_t = (float *)malloc(no * sizeof(float));
    memcpy(ref_y, ry, no * sizeof(float));
    memcpy(ref_t, rt, no * sizeof(float));
    mlp_cache_free(&mc);

    double flops = 2.0 * 2.0 * rows * mlp_flops(&f.m); /* primal + tangent */
    double bytes = 4.0 * (2.0 * rows * in + t.total + 2.0 * no);
    char sizes_json[256], sizes_txt[96];
    snprintf(sizes_json, sizeof sizes_json,
             "\"env\": \"%s\", \"S\": %d, \"D\": %d, \"rows\": %d, \"in\": %d, \"hidden\": 256, "
             "\"layers\": 3, \"out\": %d",
             sz->env, S, D, rows, in, D);
    snprintf(sizes_txt, sizeof sizes_txt, "%s rows=%d", sz->env, rows);
    struct {
        int version, block;
        const char *name;
    } vs[] = {{2, 0, "cuBLAS layers"}, {3, 16, "fused tile 16"}, {4, 32, "fused tile 32"},
              {5, 0, "cuBLAS tf32"}};
    for (size_t v = 0; v < sizeof vs / sizeof vs[0]; v++) {
        if (b->version > 0 && b->version != vs[v].version) {
            continue;
        }
        f.version = vs[v].version;
        f.block = vs[v].block;
        bool tf32 = f.version == 5;
        CUBLAS_CHECK(cublasSetMathMode(b->ctx.blas, tf32 ? CUBLAS_TF32_TENSOR_OP_MATH
                                                         : CUBLAS_DEFAULT_MATH));
        FlameTol ty = tf32 ? TOL_MLP_FWD_TF32 : TOL_MLP_FWD;
        FlameTol tt = tf32 ? TOL_MLP_FWD_TF32 : TOL_MLP_JVP;
        if (f.block) {
            int tile = 0;
            dmlp_force_tile(f.block);
            bool ok = dmlp_fused_ok(&b->ctx, &f.m, true, &tile) && tile == f.block;
            dmlp_force_tile(0);
            if (!ok) {
                BenchTime z = {0, 0};
                bench_record(b, "mlp_jvp", f.version, vs[v].name, f.block, sizes_json, sizes_txt,
                             z, flops, bytes, true, true, 0, true);
                continue;
            }
        }
        bool ok[2];
        double rel = 0, rel_t = 0;
        BenchTime bt = {0, 0};
        for (int pass = 0; pass < 2; pass++) {
            CUDA_CHECK(cudaMemset(f.c.z[f.m.n_layers - 1], 0xff, no * sizeof(float)));
            CUDA_CHECK(cudaMemset(f.c.tout, 0xff, no * sizeof(float)));
            run_jvp(b, &f);
            ok[pass] = bench_validate(f.c.z[f.m.n_layers - 1], ref_y, no, ty.atol, ty.rtol, &rel);
            ok[pass] = bench_validate(f.c.tout, ref_t, no, tt.atol, tt.rtol, &rel_t) && ok[pass];
            if (pass == 0) {
                bt = bench_time(b, run_jvp, &f, b->repeats);
            }
        }
        bench_record(b, "mlp_jvp", f.version, vs[v].name, f.block, sizes_json, sizes_txt, bt,
                     flops, bytes, ok[0], ok[1], rel > rel_t ? rel : rel_t, false);
    }
    CUBLAS_CHECK(cublasSetMathMode(b->ctx.blas, CUBLAS_DEFAULT_MATH));
    dmlp_cache_free(&f.c);
    CUDA_CHECK(cudaFree(f.P));
    CUDA_CHECK(cudaFree(f.X));
    CUDA_CHECK(cudaFree(f.T));
    free(hP), free(hX), free(hT), free(ref_y), free(ref_t);
}

static void bench_mlp_jvp_lab(BenchCtx *b) {
    static const JvpSize tiny[] = {{"HalfCheetah", 17, 6, 37}};
    static const JvpSize quick[] = {{"HalfCheetah", 17, 6, 256}, {"Humanoid", 348, 17, 256}};
    static const JvpSize full[] = {{"HalfCheetah", 17, 6, 256}, {"HalfCheetah", 17, 6, 25600},
                                   {"Ant", 105, 8, 256},        {"Humanoid", 348, 17, 256},
                                   {"Humanoid", 348, 17, 25600}};
    const JvpSize *s = b->tiny ? tiny : (b->quick ? quick : full);
    int n = b->tiny ? 1 : (b->quick ? 2 : 5);
    for (int i = 0; i < n; i++) {
        jvp_lab_size(b, &s[i]);
    }
}

#ifdef FLAME_BENCH_MAIN
int main(int argc, char **argv) {
    return bench_lab_main(argc, argv, "bench_mlp_jvp", bench_mlp_jvp_lab);
}
#endif
