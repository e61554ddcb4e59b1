/*
 * test_cmlp_cuda.cu: the cluster engine (kernels/cmlp.cu, backend.small_rows=cluster) and the
 * fused backward (backend.backward=fused) against the CPU MLP (src/nn/mlp.c):
 *   - every shape of test_mlp_cuda.cu through its checks (forward, JVP, twin forward, parameter and
 *     input gradients after a forward and after a JVP) with both paths on; the shapes the engine
 *     takes are asserted to take it (hidden <= 256), the wider one takes the fallback;
 *   - the twin critics' backward in one chain and one gradient launch (two networks), with
 *     G accumulated and overwritten, at 1, 33, 256 and 4096 rows (tile boundaries, the largest
 *     pass), and a Humanoid-wide input gradient (365 columns: two passes of 256).
 * Needs thread-block clusters (compute capability 9.0): exit 77 below that or without a device.
 * FLAME_GPU_TEST_SIZES picks the cases (gpu_sizes.h).
 */
#define FLAME_MLP_CHECKS_ONLY
#include "test_mlp_cuda.cu"

#include "cmlp.cuh"

static Mlp shape_mlp(const Shape *s) {
    ParamTable t;
    param_table_init(&t);
    Mlp m;
    mlp_layout(&m, &t, "net", s->w[0] + s->w[1] + s->w[2] + s->zero_w, s->hidden, s->layers, s->out,
               ACT_MISH);
    return m;
}

/* whether every pass of the shape runs on the engine (forward, JVP, fused backward) */
static bool on_engine(const Mlp *m, int rows) {
    DMlpCache c;
    memset(&c, 0, sizeof c);
    c.flags = DMLP_CACHE_BWD;
    c.dzcap = rows < DMLP_SMALL_ROWS ? rows : DMLP_SMALL_ROWS;
    DBwdNet n = {m, NULL, NULL, &c, NULL, m->dims[m->n_layers], NULL};
    return cm_pass_ok(&g_ctx, m, false, rows) && cm_pass_ok(&g_ctx, m, true, rows) &&
           dmlp_bwd_fused_ok(&g_ctx, &n, 1, rows);
}

FLAME_TEST(test_engine_shapes) {
    g_ctx.cluster = 1;
    g_ctx.bwd_fused = 1;
    int n = (int)(sizeof SHAPES / sizeof SHAPES[0]), on = 0;
    for (int i = 0; i < n; i++) {
        const Shape *s = &SHAPES[i];
        bool small = shape_is_small(s);
        if ((small && !gpu_runs_small()) || (!small && !gpu_runs_real())) {
            continue;
        }
        Mlp m = shape_mlp(s);
        bool want = s->hidden <= CM_MAXW && s->out <= CM_MAXW;
        bool got = on_engine(&m, s->rows);
        EXPECT_MSG(got == want, "%s: on the cluster engine %d, expected %d", s->name, got, want);
        on += got;
        check_shape(s, &g_ctx, 1, 0);
    }
    printf("       %d shape(s) on the cluster engine\n", on);
    /* of the shapes the engine takes: 3 small ones, 5 or more real ones */
    EXPECT(on >= (gpu_runs_small() ? 3 : 0) + (gpu_runs_real() ? 5 : 0));
    g_ctx.cluster = 0;
    g_ctx.bwd_fused = 0;
}

/* both critics' backward in one chain and one gradient launch */
static void check_twin_backward(int S, int D, int rows, bool accumulate) {
    char tag[160];
    snprintf(tag, sizeof tag, "twin backward S%d D%d rows %d %s", S, D, rows,
             accumulate ? "G +=" : "G =");
    ParamTable t;
    param_table_init(&t);
    Mlp m;
    mlp_layout(&m, &t, "q", S + D, 256, 3, 1, ACT_MISH);
    int in = S + D;
    size_t np = t.total, nx = (size_t)rows * in;
    float *P[2], *G0[2], *Gref[2], *dout[2], *dx[2];
    for (int k = 0; k < 2; k++) {
        P[k] = (float *)calloc(np, sizeof(float));
        mlp_init_params(&m, &t, P[k], 31, 1 + k);
        for (int l = 0; l < m.n_layers; l++) {
            fill(P[k] + m.b_off[l], (size_t)m.dims[l + 1], 70 + 10 * k + l, 0.1f);
        }
        G0[k] = (float *)malloc(np * sizeof(float));
        fill(G0[k], np, 90 + k, 0.01f);
        Gref[k] = (float *)malloc(np * sizeof(float));
        dout[k] = (float *)malloc((size_t)rows * sizeof(float));
        fill(dout[k], (size_t)rows, 95 + k, 1.0f / (float)rows);
        dx[k] = (float *)calloc(nx, sizeof(float));
    }
    float *X = (float *)malloc(nx * sizeof(float));
    fill(X, nx, 99, 1.0f);
    /* CPU: forward, then backward into G (G0 when accumulating, else 0) */
    MlpCache c;
    mlp_cache_alloc(&c, &m, rows);
    for (int k = 0; k < 2; k++) {
        /* overwriting touches the tensors only: the alignment gaps keep G0 */
        memcpy(Gref[k], G0[k], np * sizeof(float));
        for (int l = 0; !accumulate && l < m.n_layers; l++) {
            memset(Gref[k] + m.w_off[l], 0, (size_t)m.dims[l] * m.dims[l + 1] * sizeof(float));
            memset(Gref[k] + m.b_off[l], 0, (size_t)m.dims[l + 1] * sizeof(float));
        }
        mlp_forward(&m, P[k], X, rows, &c);
        mlp_backward(&m, P[k], Gref[k], &c, dout[k], rows, dx[k]);
    }
    /* device: twin forward saving the caches, one chain, one gradient launch */
    float *dP[2], *dG[2], *ddout[2], *ddx[2];
    DMlpCache dc[2];
    for (int k = 0; k < 2; k++) {
        dP[k] = dup_to_device(P[k], np);
        dG[k] = dup_to_device(G0[k], np);
        ddout[k] = dup_to_device(dout[k], (size_t)rows);
        ddx[k] = dup_to_device(dx[k], nx); /* overwritten */
        dmlp_cache_alloc(&dc[k], &m, rows, DMLP_CACHE_BWD);
    }
    float *dX = dup_to_device(X, nx);
    DIn din_ = din_empty();
    din_add(&din_, dX, in, in, 1);
    dmlp_forward2(&g_ctx, &m, dP[0], dP[1], &din_, rows, &dc[0], &dc[1], true);
    DBwdNet nets[2] = {{&m, dP[0], dG[0], &dc[0], ddout[0], 1, ddx[0]},
                       {&m, dP[1], dG[1], &dc[1], ddout[1], 1, ddx[1]}};
    EXPECT_MSG(dmlp_bwd_fused_ok(&g_ctx, nets, 2, rows), "%s: the fused backward applies", tag);
    dmlp_chain(&g_ctx, nets, 2, rows);
    dmlp_wgrad(&g_ctx, nets, 2, rows, accumulate);
    float *hG = (float *)malloc(np * sizeof(float)), *hdx = (float *)malloc(nx * sizeof(float));
    char nm[300];
    for (int k = 0; k < 2; k++) {
        to_host(hG, dG[k], np);
        to_host(hdx, ddx[k], nx);
        double mg = 0, mx = 0; /* scales: the largest gradient elements */
        for (int l = 0; l < m.n_layers; l++) {
            size_t nw = (size_t)m.dims[l] * m.dims[l + 1], nb = (size_t)m.dims[l + 1];
            for (size_t i = 0; i < nw + nb; i++) {
                size_t at = i < nw ? m.w_off[l] + i : m.b_off[l] + (i - nw);
                mg = fmax(mg, fabs(Gref[k][at] - (accumulate ? G0[k][at] : 0.0f)));
            }
        }
        for (size_t i = 0; i < nx; i++) {
            mx = fmax(mx, fabs(dx[k][i]));
        }
        snprintf(nm, sizeof nm, "%s: critic %d parameter gradient", tag, k + 1);
        EXPECT_CLOSE(nm, hG, Gref[k], np, TOL_MLP_GRAD.atol * mg, TOL_MLP_GRAD.rtol);
        snprintf(nm, sizeof nm, "%s: critic %d input gradient", tag, k + 1);
        EXPECT_CLOSE(nm, hdx, dx[k], nx, TOL_MLP_GRAD.atol * mx, TOL_MLP_GRAD.rtol);
    }
    for (int k = 0; k < 2; k++) {
        dmlp_cache_free(&dc[k]);
        void *d[] = {dP[k], dG[k], ddout[k], ddx[k]};
        for (size_t i = 0; i < 4; i++) {
            CUDA_CHECK(cudaFree(d[i]));
        }
        free(P[k]), free(G0[k]), free(Gref[k]), free(dout[k]), free(dx[k]);
    }
    CUDA_CHECK(cudaFree(dX));
    mlp_cache_free(&c);
    free(X), free(hG), free(hdx);
}

FLAME_TEST(test_twin_backward) {
    g_ctx.cluster = 1;
    g_ctx.bwd_fused = 1;
    int rows[4] = {1, 33, 256, 4096};
    for (int i = 0; i < 4; i++) {
        if ((rows[i] <= 256 && !gpu_runs_small()) || (rows[i] > 256 && !gpu_runs_real())) {
            continue;
        }
        check_twin_backward(17, 6, rows[i], i % 2 == 0);
    }
    if (gpu_runs_small()) {
        check_twin_backward(348, 17, 19, true);
    }
    if (gpu_runs_real()) {
        check_twin_backward(348, 17, 300, true);
    }
    g_ctx.cluster = 0;
    g_ctx.bwd_fused = 0;
}

int main(void) {
    (void)gpu_scope(); /* a bad FLAME_GPU_TEST_SIZES stops here, device or not */
    if (flame_cuda_device_count() == 0) {
        printf("skipped: no CUDA device\n");
        return 77;
    }
    cudaDeviceProp p;
    CUDA_CHECK(cudaGetDeviceProperties(&p, 0));
    if (p.major < 9) {
        printf("SKIPPED: the cluster engine needs compute capability 9.0 (device %s is %d.%d)\n",
               p.name, p.major, p.minor);
        return 77;
    }
    CUDA_CHECK(cudaStreamCreate(&g_ctx.stream));
    CUBLAS_CHECK(cublasCreate(&g_ctx.blas));
    CUBLAS_CHECK(cublasSetStream(g_ctx.blas, g_ctx.stream));
    dmlp_init(&g_ctx);
    RUN_TEST(test_engine_shapes);
    RUN_TEST(test_twin_backward);
    CUBLAS_CHECK(cublasDestroy(g_ctx.blas));
    CUDA_CHECK(cudaStreamDestroy(g_ctx.stream));
    return flame_test_report();
}
