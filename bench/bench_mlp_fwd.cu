/*
 * bench_mlp_fwd.cu: kernel lab for the twin-critic forward over the Q-reweighting candidates, the
 * dominant cost of an update (flame-algorithm.md §13: 2 B K rows of [s, a-hat] through Q1 and Q2,
 * 3 x 256 mish, no activations kept). Rows are read through the input segments of kernels/dmlp.cuh
 * ([s] gathered per state with divisor K, [a-hat] per row), as the backend reads them.
 *
 * versions (--version N):
 *   1  naive: one thread per output, layer by layer through global memory (bias and mish fused
 *      into the dot product); block size swept
 *   2  cuBLAS: one sgemm per layer plus a bias/activation kernel (the production baseline,
 *      backend.kernels=cublas)
 *   3  fused whole network, 32 rows per block: the tile lives in shared memory from input to
 *      output, weights staged in 16-wide k-chunks, each thread 2 rows x 16 columns, the width-1
 *      output layer as per-row dot products; both critics in one launch (blockIdx.y)
 *   4  as 3 with 64 rows per block and 4 rows x 16 columns per thread (production default,
 *      backend.kernels=fused)
 *   5  cuBLAS in TF32 tensor-op mode (backend.precision=tf32)
 * Sizes: HalfCheetah (S 17, D 6), Ant (105, 8), Humanoid (348, 17); B = 256; K = 100 and 500.
 * Validation: the CPU MLP (src/nn/mlp.c, linked) on 16 states' K rows each (first, middle and last
 * states, so every tile boundary kind is covered), before and after timing.
 */
#include "bench_common.cuh"

#include "../tests/tolerances.h"

typedef struct {
    const char *env;
    int S, D, K;
} FwdSize;

typedef struct {
    Mlp m;
    int rows, B, K, S, D, version, block;
    float *P1, *P2;          /* device params */
    float *obs, *a;          /* device inputs */
    DIn in;
    DMlpCache c1, c2;        /* production paths */
    float *xa, *xb, *out1, *out2; /* naive path buffers */
} FwdArg;

__global__ void mlp_fwd_naive_kernel1(const float *X, const float *W, const float *bias, float *Z,
                                      int rows, int in, int out, int act, int last) {
    long long n = (long long)rows * out;
    long long idx = blockIdx.x * (long long)blockDim.x + threadIdx.x;
    if (idx >= n) {
        return;
    }
    int i = (int)(idx / out), j = (int)(idx % out);
    float s = 0.0f;
    for (int k = 0; k < in; k++) {
        s += X[(size_t)i * in + k] * W[(size_t)j * in + k];
    }
    s += bias[j];
    Z[idx] = last ? s : act_forward(act, s);
}

static void naive_net(BenchCtx *b, FwdArg *f, const float *P, float *out) {
    const Mlp *m = &f->m;
    dmlp_assemble(&b->ctx, &f->in, f->rows, f->xa, m->dims[0]);
    const float *x = f->xa;
    for (int l = 0; l < m->n_layers; l++) {
        bool last = l + 1 == m->n_layers;
        float *z = last ? out : (x == f->xa ? f->xb : f->xa);
        long long n = (long long)f->rows * m->dims[l + 1];
        mlp_fwd_naive_kernel1<<<cdiv(n, f->block), f->block, 0, b->ctx.stream>>>(
            x, P + m->w_off[l], P + m->b_off[l], z, f->rows, m->dims[l], m->dims[l + 1], m->act,
            last);
        CUDA_CHECK_LAUNCH();
        x = z;
    }
}

static void run_fwd(BenchCtx *b, void *arg) {
    FwdArg *f = (FwdArg *)arg;
    switch (f->version) {
        case 1:
            naive_net(b, f, f->P1, f->out1);
            naive_net(b, f, f->P2, f->out2);
            break;
        case 2:
        case 5:
            b->ctx.fused = 0;
            dmlp_forward2(&b->ctx, &f->m, f->P1, f->P2, &f->in, f->rows, &f->c1, &f->c2, false);
            break;
        default:
            b->ctx.fused = 1;
            dmlp_force_tile(f->block);
            dmlp_forward2(&b->ctx, &f->m, f->P1, f->P2, &f->in, f->rows, &f->c1, &f->c2, false);
            dmlp_force_tile(0);
            break;
    }
}

static const float *fwd_out(FwdArg *f, int net) {
    if (f->version == 1) {
        return net ? f->out2 : f->out1;
    }
    return (net ? &f->c2 : &f->c1)->z[f->m.n_layers - 1];
}

static void fwd_lab_size(BenchCtx *b, const FwdSize *sz) {
    int B = b->tiny ? 16 : 256, K = sz->K, S = sz->S, D = sz->D, rows = B * K;
    ParamTable t;
    param_table_init(&t);
    FwdArg f;
    memset(&f, 0, sizeof f);
    mlp_layout(&f.m, &t, "q", S + D, 256, 3, 1, ACT_MISH);
    f.rows = rows, f.B = B, f.K = K, f.S = S, f.D = D;
    float *hP1 = (float *)calloc(t.total, sizeof(float)), *hP2 = (float *)calloc(t.total, 4);
    mlp_init_params(&f.m, &t, hP1, 5, NET_Q1);
    mlp_init_params(&f.m, &t, hP2, 5, NET_Q2);
    for (int l = 0; l < f.m.n_layers; l++) {
        bench_fill(hP1 + f.m.b_off[l], (size_t)f.m.dims[l + 1], 10 + l, 0.1f);
        bench_fill(hP2 + f.m.b_off[l], (size_t)f.m.dims[l + 1], 20 + l, 0.1f);
    }
    float *hobs = (float *)malloc(sizeof(float) * (size_t)B * S);
    float *ha = (float *)malloc(sizeof(float) * (size_t)rows * D);
    bench_fill(hobs, (size_t)B * S, 1, 1.0f);
    bench_fill(ha, (size_t)rows * D, 2, 0.6f);
    CUDA_CHECK(cudaMalloc(&f.P1, t.total * sizeof(float)));
    CUDA_CHECK(cudaMalloc(&f.P2, t.total * sizeof(float)));
    CUDA_CHECK(cudaMalloc(&f.obs, (size_t)B * S * sizeof(float)));
    CUDA_CHECK(cudaMalloc(&f.a, (size_t)rows * D * sizeof(float)));
    CUDA_CHECK(cudaMemcpy(f.P1, hP1, t.total * sizeof(float), cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(f.P2, hP2, t.total * sizeof(float), cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(f.obs, hobs, (size_t)B * S * sizeof(float), cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(f.a, ha, (size_t)rows * D * sizeof(float), cudaMemcpyHostToDevice));
    f.in = din_empty();
    din_add(&f.in, f.obs, S, S, K);
    din_add(&f.in, f.a, D, D, 1);
    dmlp_cache_alloc(&f.c1, &f.m, rows, 0);
    dmlp_cache_alloc(&f.c2, &f.m, rows, 0);
    size_t wmax = (size_t)rows * (S + D > 256 ? S + D : 256);
    CUDA_CHECK(cudaMalloc(&f.xa, wmax * sizeof(float)));
    CUDA_CHECK(cudaMalloc(&f.xb, wmax * sizeof(float)));
    CUDA_CHECK(cudaMalloc(&f.out1, (size_t)rows * sizeof(float)));
    CUDA_CHECK(cudaMalloc(&f.out2, (size_t)rows * sizeof(float)));

    /* CPU reference on 16 states (first 8, 4 in the middle, last 4): their K rows each */
    int nsel = B < 16 ? B : 16, sel[16];
    for (int i = 0; i < nsel; i++) {
        sel[i] = B < 16 ? i : (i < 8 ? i : (i < 12 ? B / 2 + i - 8 : B - 16 + i));
    }
    size_t vrows = (size_t)nsel * K;
    float *X = (float *)malloc(sizeof(float) * vrows * (S + D));
    for (int s = 0; s < nsel; s++) {
        for (int k = 0; k < K; k++) {
            float *x = X + ((size_t)s * K + k) * (S + D);
            memcpy(x, hobs + (size_t)sel[s] * S, S * sizeof(float));
            memcpy(x + S, ha + ((size_t)sel[s] * K + k) * D, D * sizeof(float));
        }
    }
    MlpCache mc;
    mlp_cache_alloc(&mc, &f.m, (int)vrows);
    float *ref = (float *)malloc(sizeof(float) * vrows * 2);
    memcpy(ref, mlp_forward(&f.m, hP1, X, (int)vrows, &mc), vrows * sizeof(float));
    memcpy(ref + vrows, mlp_forward(&f.m, hP2, X, (int)vrows, &mc), vrows * sizeof(float));
    mlp_cache_free(&mc);
    float *gsel = NULL;
    CUDA_CHECK(cudaMalloc(&gsel, vrows * 2 * sizeof(float)));

    double flops = 2.0 * rows * mlp_flops(&f.m);
    double bytes = 4.0 * ((double)B * S + (double)rows * D + 2.0 * t.total + 2.0 * rows);
    char sizes_json[256], sizes_txt[96];
    snprintf(sizes_json, sizeof sizes_json,
             "\"env\": \"%s\", \"S\": %d, \"D\": %d, \"B\": %d, \"K\": %d, \"rows\": %d, "
             "\"in\": %d, \"hidden\": 256, \"layers\": 3, \"nets\": 2",
             sz->env, S, D, B, K, rows, S + D);
    snprintf(sizes_txt, sizeof sizes_txt, "%s K=%d rows=%d", sz->env, K, rows);

    struct {
        int version;
        const char *name;
        int blocks[4], nb;
    } vs[] = {
        {1, "naive per-output", {64, 128, 256, 512}, 4},
        {2, "cuBLAS layers", {0}, 1},
        {3, "fused tile 32", {32}, 1},
        {4, "fused tile 64", {64}, 1},
        {5, "cuBLAS tf32", {0}, 1},
    };
    for (size_t v = 0; v < sizeof vs / sizeof vs[0]; v++) {
        if (b->version > 0 && b->version != vs[v].version) {
            continue;
        }
        f.version = vs[v].version;
        bool tf32 = f.version == 5;
        CUBLAS_CHECK(cublasSetMathMode(b->ctx.blas, tf32 ? CUBLAS_TF32_TENSOR_OP_MATH
                                                         : CUBLAS_DEFAULT_MATH));
        FlameTol tol = tf32 ? TOL_MLP_FWD_TF32 : TOL_MLP_FWD;
        BenchTime bt = {0, 0};
        for (int bi = 0; bi < vs[v].nb; bi++) {
            f.block = vs[v].blocks[bi];
            bool skipped = false;
            if (f.version == 3 || f.version == 4) {
                /* the tile must exist and fit in shared memory for this network */
                int tile = 0;
                dmlp_force_tile(f.block);
                skipped = !dmlp_fused_ok(&b->ctx, &f.m, false, &tile) || tile != f.block;
                dmlp_force_tile(0);
            }
            if (skipped) {
                BenchTime z = {0, 0};
                bench_record(b, "mlp_fwd", f.version, vs[v].name, f.block, sizes_json, sizes_txt,
                             z, flops, bytes, true, true, 0, true);
                continue;
            }
            /* validate (poisoned outputs first), time, validate again */
            bool ok[2];
            double rel = 0;
            for (int pass = 0; pass < 2; pass++) {
                CUDA_CHECK(cudaMemset((void *)fwd_out(&f, 0), 0xff, (size_t)rows * sizeof(float)));
                CUDA_CHECK(cudaMemset((void *)fwd_out(&f, 1), 0xff, (size_t)rows * sizeof(float)));
                run_fwd(b, &f);
                for (int net = 0; net < 2; net++) {
                    for (int s = 0; s < nsel; s++) {
                        CUDA_CHECK(cudaMemcpyAsync(gsel + (size_t)net * vrows + (size_t)s * K,
                                                   fwd_out(&f, net) + (size_t)sel[s] * K,
                                                   (size_t)K * sizeof(float),
                                                   cudaMemcpyDeviceToDevice, b->ctx.stream));
                    }
                }
                ok[pass] = bench_validate(gsel, ref, vrows * 2, tol.atol, tol.rtol, &rel);
                if (pass == 0) {
                    bt = bench_time(b, run_fwd, &f, b->repeats);
                }
            }
            bench_record(b, "mlp_fwd", f.version, vs[v].name, f.block, sizes_json, sizes_txt, bt,
                         flops, bytes, ok[0], ok[1], rel, false);
        }
    }
    CUBLAS_CHECK(cublasSetMathMode(b->ctx.blas, CUBLAS_DEFAULT_MATH));
    dmlp_cache_free(&f.c1);
    dmlp_cache_free(&f.c2);
    void *d[] = {f.P1, f.P2, f.obs, f.a, f.xa, f.xb, f.out1, f.out2, gsel};
    for (size_t i = 0; i < sizeof d / sizeof d[0]; i++) {
        CUDA_CHECK(cudaFree(d[i]));
    }
    free(hP1), free(hP2), free(hobs), free(ha), free(X), free(ref);
}

static void bench_mlp_fwd_lab(BenchCtx *b) {
    static const FwdSize tiny[] = {{"HalfCheetah", 17, 6, 4}};
    static const FwdSize quick[] = {{"HalfCheetah", 17, 6, 100}, {"Humanoid", 348, 17, 100}};
    static const FwdSize full[] = {{"HalfCheetah", 17, 6, 100}, {"HalfCheetah", 17, 6, 500},
                                   {"Ant", 105, 8, 100},        {"Ant", 105, 8, 500},
                                   {"Humanoid", 348, 17, 100},  {"Humanoid", 348, 17, 500}};
    const FwdSize *s = b->tiny ? tiny : (b->quick ? quick : full);
    int n = b->tiny ? 1 : (b->quick ? 2 : 6);
    for (int i = 0; i < n; i++) {
        fwd_lab_size(b, &s[i]);
    }
}

#ifdef FLAME_BENCH_MAIN
int main(int argc, char **argv) {
    return bench_lab_main(argc, argv, "bench_mlp_fwd", bench_mlp_fwd_lab);
}
#endif
