/*
 * test_mlp_cuda.cu: the device MLP (kernels/dmlp.cu) against the CPU MLP (src/nn/mlp.c):
 * forward, JVP and backward (parameter and input gradients), the fused whole-network kernel and
 * the cuBLAS layers, fp32 and TF32, on inputs assembled from segments (rows gathered with a
 * divisor, a broadcast row, a zero segment), at the real network shapes (critic and policy of
 * HalfCheetah and Humanoid, the time MLP) and at awkward ones (widths 45 and 300, 1 and 37 rows).
 */
#include "dmlp.cuh"

extern "C" {
#include "flame/mlp.h"
#include "flame/params.h"
#include "flame/rng.h"
}
#include "flame_test.h"
#include "gpu_sizes.h"
#include "tolerances.h"

typedef struct {
    const char *name;
    int w[3];      /* input segments: gathered (div rep), per row, broadcast */
    int zero_w;    /* a fourth, zero segment */
    int hidden, layers, out;
    int rows, rep; /* rows and the gather divisor of segment 0 */
} Shape;

static const Shape SHAPES[] = {
    {"critic halfcheetah", {17, 6, 0}, 0, 256, 3, 1, 2048, 32},
    {"critic halfcheetah, 37 rows", {17, 6, 0}, 0, 256, 3, 1, 37, 1},
    {"policy halfcheetah", {17, 6, 16}, 16, 256, 3, 6, 1000, 100},
    {"critic humanoid", {348, 17, 0}, 0, 256, 3, 1, 300, 3},
    {"policy humanoid", {348, 17, 16}, 16, 256, 3, 17, 129, 1},
    {"sac policy", {17, 0, 0}, 0, 256, 3, 12, 257, 1},
    {"time mlp", {16, 0, 0}, 0, 32, 1, 16, 513, 1},
    {"odd", {11, 3, 0}, 0, 45, 2, 3, 37, 5},
    {"one row", {11, 3, 5}, 0, 45, 2, 3, 1, 1},
    {"wide (cuBLAS fallback)", {9, 2, 0}, 0, 300, 2, 40, 77, 7},
};

static float *dup_to_device(const float *h, size_t n) {
    float *d = NULL;
    CUDA_CHECK(cudaMalloc(&d, (n ? n : 1) * sizeof(float)));
    if (n) {
        CUDA_CHECK(cudaMemcpy(d, h, n * sizeof(float), cudaMemcpyHostToDevice));
    }
    return d;
}

static void to_host(float *h, const float *d, size_t n) {
    CUDA_CHECK(cudaDeviceSynchronize());
    CUDA_CHECK(cudaMemcpy(h, d, n * sizeof(float), cudaMemcpyDeviceToHost));
}

static void fill(float *x, size_t n, uint32_t tag, float scale) {
    for (size_t i = 0; i < n; i++) {
        x[i] = scale * rng_normal(3, RNG_STREAM_TEST, tag, (uint32_t)(i >> 16), (uint32_t)(i & 0xffff));
    }
}

static void check_shape(const Shape *s, DCtx *ctx, int fused, int tf32) {
    char tag[200];
    snprintf(tag, sizeof tag, "%s [%s%s]", s->name, fused ? "fused" : "cublas",
             tf32 ? " tf32" : "");
    CUBLAS_CHECK(cublasSetMathMode(ctx->blas, tf32 ? CUBLAS_TF32_TENSOR_OP_MATH
                                                   : CUBLAS_DEFAULT_MATH));
    ctx->fused = fused;
    int in = s->w[0] + s->w[1] + s->w[2] + s->zero_w, rows = s->rows;
    ParamTable t;
    param_table_init(&t);
    Mlp m;
    mlp_layout(&m, &t, "net", in, s->hidden, s->layers, s->out, ACT_MISH);
    Mlp m2;
    ParamTable t2 = t; /* the twin: same layout, other values */
    m2 = m;
    float *P = (float *)calloc(t.total, sizeof(float)), *P2 = (float *)calloc(t.total, sizeof(float));
    mlp_init_params(&m, &t, P, 21, 1);
    mlp_init_params(&m2, &t2, P2, 21, 2);
    for (int l = 0; l < m.n_layers; l++) { /* nonzero biases */
        fill(P + m.b_off[l], (size_t)m.dims[l + 1], 40 + l, 0.1f);
        fill(P2 + m.b_off[l], (size_t)m.dims[l + 1], 60 + l, 0.1f);
    }
    bool expect_fused = s->hidden <= 256 && s->out <= 256;
    int tr = 0;
    EXPECT_MSG(dmlp_fused_ok(ctx, &m, false, &tr) == expect_fused, "%s: fused forward support",
               tag);
    EXPECT_MSG(dmlp_fused_ok(ctx, &m, true, &tr) == expect_fused, "%s: fused JVP support", tag);

    /* segments and the explicit CPU input */
    int ns = (rows + s->rep - 1) / s->rep;
    float *seg0 = (float *)malloc(sizeof(float) * ((size_t)ns * s->w[0] + 1));
    float *seg1 = (float *)malloc(sizeof(float) * ((size_t)rows * s->w[1] + 1));
    float *seg2 = (float *)malloc(sizeof(float) * ((size_t)s->w[2] + 1));
    fill(seg0, (size_t)ns * s->w[0], 1, 1.0f);
    fill(seg1, (size_t)rows * s->w[1], 2, 1.0f);
    fill(seg2, (size_t)s->w[2], 3, 0.3f);
    float *X = (float *)calloc((size_t)rows * in, sizeof(float));
    float *TX = (float *)calloc((size_t)rows * in, sizeof(float));
    float *tseg = (float *)malloc(sizeof(float) * ((size_t)rows * s->w[1] + 1));
    fill(tseg, (size_t)rows * s->w[1], 4, 1.0f);
    for (int i = 0; i < rows; i++) {
        float *x = X + (size_t)i * in;
        memcpy(x, seg0 + (size_t)(i / s->rep) * s->w[0], s->w[0] * sizeof(float));
        memcpy(x + s->w[0], seg1 + (size_t)i * s->w[1], s->w[1] * sizeof(float));
        memcpy(x + s->w[0] + s->w[1], seg2, s->w[2] * sizeof(float));
        memcpy(TX + (size_t)i * in + s->w[0], tseg + (size_t)i * s->w[1], s->w[1] * sizeof(float));
    }
    float *d_seg0 = dup_to_device(seg0, (size_t)ns * s->w[0]);
    float *d_seg1 = dup_to_device(seg1, (size_t)rows * s->w[1]);
    float *d_seg2 = dup_to_device(seg2, (size_t)s->w[2]);
    float *d_tseg = dup_to_device(tseg, (size_t)rows * s->w[1]);
    float *dP = dup_to_device(P, t.total), *dP2 = dup_to_device(P2, t.total);
    DIn din_ = din_empty(), tin = din_empty();
    din_add(&din_, d_seg0, s->w[0], s->w[0], s->rep);
    din_add(&tin, NULL, s->w[0], 0, 1);
    if (s->w[1]) {
        din_add(&din_, d_seg1, s->w[1], s->w[1], 1);
        din_add(&tin, d_tseg, s->w[1], s->w[1], 1);
    }
    if (s->w[2]) {
        din_add(&din_, d_seg2, s->w[2], s->w[2], 0);
        din_add(&tin, NULL, s->w[2], 0, 1);
    }
    if (s->zero_w) {
        din_add(&din_, NULL, s->zero_w, 0, 1);
        din_add(&tin, NULL, s->zero_w, 0, 1);
    }

    FlameTol ft = tf32 ? TOL_MLP_FWD_TF32 : TOL_MLP_FWD;
    FlameTol jt = tf32 ? TOL_MLP_FWD_TF32 : TOL_MLP_JVP;
    FlameTol gt = tf32 ? TOL_MLP_GRAD_TF32 : TOL_MLP_GRAD;
    size_t no = (size_t)rows * s->out;
    float *got = (float *)malloc(sizeof(float) * no), *got2 = (float *)malloc(sizeof(float) * no);
    char nm[300];

    /* CPU reference: forward, JVP, backward */
    MlpCache c;
    mlp_cache_alloc(&c, &m, rows);
    float *ref_t = (float *)malloc(sizeof(float) * no);
    const float *rt;
    mlp_jvp(&m, P, X, TX, rows, &c, &rt);
    memcpy(ref_t, rt, no * sizeof(float));
    const float *ref = mlp_forward(&m, P, X, rows, &c);
    float *ref_y = (float *)malloc(sizeof(float) * no);
    memcpy(ref_y, ref, no * sizeof(float));
    float *dout = (float *)malloc(sizeof(float) * no);
    fill(dout, no, 7, 1.0f / (float)rows);
    float *G = (float *)calloc(t.total, sizeof(float));
    float *dx = (float *)calloc((size_t)rows * in, sizeof(float));
    mlp_backward(&m, P, G, &c, dout, rows, dx);
    MlpCache c2;
    mlp_cache_alloc(&c2, &m2, rows);
    float *ref2 = (float *)malloc(sizeof(float) * no);
    memcpy(ref2, mlp_forward(&m2, P2, X, rows, &c2), no * sizeof(float));

    /* device: forward (saving the cache), backward */
    DMlpCache dc, dc2;
    dmlp_cache_alloc(&dc, &m, rows, DMLP_CACHE_JVP | DMLP_CACHE_BWD);
    dmlp_cache_alloc(&dc2, &m, rows, DMLP_CACHE_BWD);
    const float *y = dmlp_forward(ctx, &m, dP, &din_, rows, &dc, true);
    to_host(got, y, no);
    snprintf(nm, sizeof nm, "%s forward", tag);
    EXPECT_CLOSE(nm, got, ref_y, no, ft.atol, ft.rtol);
    float *dG = NULL, *ddx = NULL, *ddout = dup_to_device(dout, no);
    CUDA_CHECK(cudaMalloc(&dG, t.total * sizeof(float)));
    CUDA_CHECK(cudaMemset(dG, 0, t.total * sizeof(float)));
    CUDA_CHECK(cudaMalloc(&ddx, (size_t)rows * in * sizeof(float)));
    dmlp_backward(ctx, &m, dP, dG, &dc, ddout, rows, ddx);
    float *hG = (float *)malloc(t.total * sizeof(float));
    float *hdx = (float *)malloc((size_t)rows * in * sizeof(float));
    to_host(hG, dG, t.total);
    to_host(hdx, ddx, (size_t)rows * in);
    for (int l = 0; l < m.n_layers; l++) {
        size_t nw = (size_t)m.dims[l] * m.dims[l + 1], nb = (size_t)m.dims[l + 1];
        double mw = 0, mb = 0;
        for (size_t i = 0; i < nw; i++) {
            mw = fmax(mw, fabs(G[m.w_off[l] + i]));
        }
        for (size_t i = 0; i < nb; i++) {
            mb = fmax(mb, fabs(G[m.b_off[l] + i]));
        }
        snprintf(nm, sizeof nm, "%s dW%d", tag, l);
        EXPECT_CLOSE(nm, hG + m.w_off[l], G + m.w_off[l], nw, gt.atol * mw, gt.rtol);
        snprintf(nm, sizeof nm, "%s db%d", tag, l);
        EXPECT_CLOSE(nm, hG + m.b_off[l], G + m.b_off[l], nb, gt.atol * mb, gt.rtol);
    }
    double mx = 0;
    for (size_t i = 0; i < (size_t)rows * in; i++) {
        mx = fmax(mx, fabs(dx[i]));
    }
    snprintf(nm, sizeof nm, "%s dx", tag);
    EXPECT_CLOSE(nm, hdx, dx, (size_t)rows * in, gt.atol * mx, gt.rtol);

    /* JVP (primal and tangent), saving the cache; the backward from it matches too */
    const float *tout;
    y = dmlp_jvp(ctx, &m, dP, &din_, &tin, rows, &dc, true, &tout);
    to_host(got, y, no);
    to_host(got2, tout, no);
    snprintf(nm, sizeof nm, "%s JVP primal", tag);
    EXPECT_CLOSE(nm, got, ref_y, no, ft.atol, ft.rtol);
    snprintf(nm, sizeof nm, "%s JVP tangent", tag);
    EXPECT_CLOSE(nm, got2, ref_t, no, jt.atol, jt.rtol);
    CUDA_CHECK(cudaMemset(dG, 0, t.total * sizeof(float)));
    dmlp_backward(ctx, &m, dP, dG, &dc, ddout, rows, NULL);
    to_host(hG, dG, t.total);
    double mall = 0;
    for (size_t i = 0; i < t.total; i++) {
        mall = fmax(mall, fabs(G[i]));
    }
    snprintf(nm, sizeof nm, "%s gradient after JVP", tag);
    EXPECT_CLOSE(nm, hG, G, t.total, gt.atol * mall, gt.rtol);

    /* twin forward: both networks in one call */
    dmlp_forward2(ctx, &m, dP, dP2, &din_, rows, &dc, &dc2, false);
    to_host(got, dc.z[m.n_layers - 1], no);
    to_host(got2, dc2.z[m.n_layers - 1], no);
    snprintf(nm, sizeof nm, "%s twin forward 1", tag);
    EXPECT_CLOSE(nm, got, ref_y, no, ft.atol, ft.rtol);
    snprintf(nm, sizeof nm, "%s twin forward 2", tag);
    EXPECT_CLOSE(nm, got2, ref2, no, ft.atol, ft.rtol);

    dmlp_cache_free(&dc);
    dmlp_cache_free(&dc2);
    mlp_cache_free(&c);
    mlp_cache_free(&c2);
    void *dptrs[] = {d_seg0, d_seg1, d_seg2, d_tseg, dP, dP2, dG, ddx, ddout};
    for (size_t i = 0; i < sizeof dptrs / sizeof dptrs[0]; i++) {
        CUDA_CHECK(cudaFree(dptrs[i]));
    }
    free(P), free(P2), free(seg0), free(seg1), free(seg2), free(X), free(TX), free(tseg);
    free(got), free(got2), free(ref_t), free(ref_y), free(dout), free(G), free(dx), free(ref2);
    free(hG), free(hdx);
}

static DCtx g_ctx;

/* a shape is "small" when its input holds at most 4096 floats (what the sanitizer runs afford) */
static bool shape_is_small(const Shape *s) {
    return s->rows * (s->w[0] + s->w[1]) <= 4096;
}

/* the shapes and check_shape above serve other tests too (test_cmlp_cuda.cu) */
#ifndef FLAME_MLP_CHECKS_ONLY

FLAME_TEST(test_mlp_forward_jvp_backward) {
    int n = (int)(sizeof SHAPES / sizeof SHAPES[0]);
    for (int i = 0; i < n; i++) {
        bool small = shape_is_small(&SHAPES[i]);
        if ((small && !gpu_runs_small()) || (!small && !gpu_runs_real())) {
            continue;
        }
        check_shape(&SHAPES[i], &g_ctx, 1, 0);
        check_shape(&SHAPES[i], &g_ctx, 0, 0);
    }
}

FLAME_TEST(test_mlp_tf32) {
    if (gpu_runs_small()) {
        check_shape(&SHAPES[7], &g_ctx, 0, 1); /* odd widths: partial TF32 tiles */
    }
    if (gpu_runs_real()) {
        check_shape(&SHAPES[0], &g_ctx, 0, 1);
        check_shape(&SHAPES[2], &g_ctx, 0, 1);
    }
}

/* every row tile of the fused kernel gives the same answer */
FLAME_TEST(test_mlp_fused_tiles) {
    if (!gpu_runs_small()) {
        return;
    }
    int tiles[3] = {64, 32, 16};
    for (int i = 0; i < 3; i++) {
        dmlp_force_tile(tiles[i]);
        check_shape(&SHAPES[7], &g_ctx, 1, 0);
    }
    dmlp_force_tile(0);
}

int main(void) {
    (void)gpu_scope(); /* a bad FLAME_GPU_TEST_SIZES stops here, device or not */
    if (flame_cuda_device_count() == 0) {
        printf("skipped: no CUDA device\n");
        return 77;
    }
    CUDA_CHECK(cudaStreamCreate(&g_ctx.stream));
    CUBLAS_CHECK(cublasCreate(&g_ctx.blas));
    CUBLAS_CHECK(cublasSetStream(g_ctx.blas, g_ctx.stream));
    dmlp_init(&g_ctx);
    RUN_TEST(test_mlp_forward_jvp_backward);
    RUN_TEST(test_mlp_tf32);
    RUN_TEST(test_mlp_fused_tiles);
    CUBLAS_CHECK(cublasDestroy(g_ctx.blas));
    CUDA_CHECK(cudaStreamDestroy(g_ctx.stream));
    return flame_test_report();
}
#endif
