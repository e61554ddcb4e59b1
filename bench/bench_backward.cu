/*
 * bench_backward.cu: kernel lab for the backward passes at the batch size (parameter gradients
 * and, where asked, the input gradient), which the layered path runs as four to six launches per
 * layer (dW GEMM, bias column sum, dx GEMM, activation derivative):
 *   critic    the critic step's backward (23 -> 3 x 256 -> 1), parameter gradients
 *   policy    the policy trunk's backward with the input gradient (the time features' gradient)
 *   twin      both critics in one call (the -Q term: input gradients only; the critic step:
 *             parameter gradients)
 * Rows B = 256 and 1024; Humanoid widths for the critic.
 *
 * versions (--version N):
 *   1  layered: cuBLAS GEMMs, serial bias column sums, activation-derivative kernels
 *   2  fused: one row-chain launch on the cluster engine (dz of every layer, input gradient) and
 *      one weight-gradient launch (every dW and db, each element summed over the rows in order
 *      by one thread) (backend.backward=fused; sm_90)
 * Validation: mlp_backward of the CPU MLP from the same forward, before and after timing.
 */
#include "bench_common.cuh"

#include "../tests/tolerances.h"
#include "cmlp.cuh"

typedef struct {
    const char *env, *what;
    int in, out, rows, nets;
    bool with_din, with_grads;
} BwdSize;

typedef struct {
    Mlp m;
    int rows, nets, version;
    bool with_din, with_grads;
    float *P[2], *G[2], *dout[2], *din[2];
    DMlpCache c[2];
} BwdArg;

static void run_bwd(BenchCtx *b, void *arg) {
    BwdArg *f = (BwdArg *)arg;
    b->ctx.bwd_fused = f->version == 2;
    b->ctx.fused = 1;
    if (f->version == 2) {
        DBwdNet n[2];
        for (int k = 0; k < f->nets; k++) {
            n[k] = DBwdNet{&f->m,
                           f->P[k],
                           f->with_grads ? f->G[k] : NULL,
                           &f->c[k],
                           f->dout[k],
                           f->m.dims[f->m.n_layers],
                           f->with_din ? f->din[k] : NULL};
        }
        dmlp_chain(&b->ctx, n, f->nets, f->rows);
        dmlp_wgrad(&b->ctx, n, f->nets, f->rows, true);
    } else {
        for (int k = 0; k < f->nets; k++) {
            dmlp_backward(&b->ctx, &f->m, f->P[k], f->with_grads ? f->G[k] : NULL, &f->c[k],
                          f->dout[k], f->rows, f->with_din ? f->din[k] : NULL);
        }
    }
    b->ctx.bwd_fused = 0;
}

static void bwd_lab_size(BenchCtx *b, const BwdSize *sz) {
    ParamTable t;
    param_table_init(&t);
    BwdArg f;
    memset(&f, 0, sizeof f);
    mlp_layout(&f.m, &t, "net", sz->in, 256, 3, sz->out, ACT_MISH);
    f.rows = sz->rows;
    f.nets = sz->nets;
    f.with_din = sz->with_din;
    f.with_grads = sz->with_grads;
    int rows = sz->rows;
    size_t np = t.total, nx = (size_t)rows * sz->in, no = (size_t)rows * sz->out;
    float *hX = (float *)malloc(nx * sizeof(float));
    bench_fill(hX, nx, 3, 0.8f);
    float *dX = NULL;
    CUDA_CHECK(cudaMalloc(&dX, nx * sizeof(float)));
    CUDA_CHECK(cudaMemcpy(dX, hX, nx * sizeof(float), cudaMemcpyHostToDevice));
    DIn in = din_empty();
    din_add(&in, dX, sz->in, sz->in, 1);
    /* CPU references per network: parameter gradient (from zero) and input gradient */
    size_t nref = np + nx;
    float *ref = (float *)calloc((size_t)sz->nets * nref, sizeof(float));
    float *hP = (float *)calloc(np, sizeof(float)), *hd = (float *)malloc(no * sizeof(float));
    MlpCache mc;
    mlp_cache_alloc(&mc, &f.m, rows);
    b->ctx.fused = 1;
    for (int k = 0; k < sz->nets; k++) {
        mlp_init_params(&f.m, &t, hP, 7, 1 + k);
        for (int l = 0; l < f.m.n_layers; l++) {
            bench_fill(hP + f.m.b_off[l], (size_t)f.m.dims[l + 1], 10 + 10 * k + l, 0.1f);
        }
        bench_fill(hd, no, 30 + k, 1.0f / rows);
        mlp_forward(&f.m, hP, hX, rows, &mc);
        mlp_backward(&f.m, hP, ref + k * nref, &mc, hd, rows, ref + k * nref + np);
        CUDA_CHECK(cudaMalloc(&f.P[k], np * sizeof(float)));
        CUDA_CHECK(cudaMalloc(&f.G[k], np * sizeof(float)));
        CUDA_CHECK(cudaMalloc(&f.dout[k], no * sizeof(float)));
        CUDA_CHECK(cudaMalloc(&f.din[k], nx * sizeof(float)));
        CUDA_CHECK(cudaMemcpy(f.P[k], hP, np * sizeof(float), cudaMemcpyHostToDevice));
        CUDA_CHECK(cudaMemcpy(f.dout[k], hd, no * sizeof(float), cudaMemcpyHostToDevice));
        dmlp_cache_alloc(&f.c[k], &f.m, rows, DMLP_CACHE_BWD);
        dmlp_forward(&b->ctx, &f.m, f.P[k], &in, rows, &f.c[k], true); /* the saved forward */
    }
    mlp_cache_free(&mc);
    /* dW GEMMs: one forward's FLOPs; dx chain: the same without layer 0 unless din is asked */
    double first = 2.0 * f.m.dims[0] * f.m.dims[1];
    double flops =
        (double)sz->nets * rows *
        ((sz->with_grads ? mlp_flops(&f.m) : 0.0) + mlp_flops(&f.m) - (sz->with_din ? 0.0 : first));
    double bytes = 4.0 * sz->nets * (np * (sz->with_grads ? 3.0 : 1.0) + nx + no);
    char sizes_json[256], sizes_txt[96];
    snprintf(sizes_json, sizeof sizes_json,
             "\"env\": \"%s\", \"pass\": \"%s\", \"rows\": %d, \"in\": %d, \"hidden\": 256, "
             "\"layers\": 3, \"out\": %d, \"nets\": %d, \"din\": %s, \"grads\": %s",
             sz->env, sz->what, rows, sz->in, sz->out, sz->nets, sz->with_din ? "true" : "false",
             sz->with_grads ? "true" : "false");
    snprintf(sizes_txt, sizeof sizes_txt, "%s %s rows=%d", sz->env, sz->what, rows);
    const char *names[3] = {"", "layered cuBLAS", "fused chain+wgrad"};
    for (int v = 1; v <= 2; v++) {
        if (b->version > 0 && b->version != v) {
            continue;
        }
        f.version = v;
        if (v == 2) {
            b->ctx.bwd_fused = 1;
            DBwdNet n[2];
            for (int k = 0; k < f.nets; k++) {
                n[k] = DBwdNet{&f.m,
                               f.P[k],
                               f.G[k],
                               &f.c[k],
                               f.dout[k],
                               sz->out,
                               sz->with_din ? f.din[k] : NULL};
            }
            bool ok = dmlp_bwd_fused_ok(&b->ctx, n, f.nets, rows);
            b->ctx.bwd_fused = 0;
            if (!ok) { /* no clusters on this device (sm_90 needed) */
                BenchTime z = {0, 0};
                bench_record(b, "backward", v, names[v], 0, sizes_json, sizes_txt, z, flops, bytes,
                             true, true, 0, true);
                continue;
            }
        }
        bool ok[2] = {true, true};
        double rel = 0;
        BenchTime bt = {0, 0};
        for (int pass = 0; pass < 2; pass++) {
            for (int k = 0; k < f.nets; k++) {
                CUDA_CHECK(cudaMemset(f.G[k], 0, np * sizeof(float)));
                CUDA_CHECK(cudaMemset(f.din[k], 0xff, nx * sizeof(float)));
            }
            run_bwd(b, &f);
            for (int k = 0; k < f.nets; k++) {
                const float *rk = ref + k * nref;
                double mg = 0, mx = 0, r1 = 0, r2 = 0;
                for (size_t i = 0; i < np; i++) {
                    mg = fmax(mg, fabs(rk[i]));
                }
                for (size_t i = 0; i < nx; i++) {
                    mx = fmax(mx, fabs(rk[np + i]));
                }
                if (sz->with_grads) {
                    ok[pass] = bench_validate(f.G[k], rk, np, TOL_MLP_GRAD.atol * mg,
                                              TOL_MLP_GRAD.rtol, &r1) &&
                               ok[pass];
                }
                if (sz->with_din) {
                    ok[pass] = bench_validate(f.din[k], rk + np, nx, TOL_MLP_GRAD.atol * mx,
                                              TOL_MLP_GRAD.rtol, &r2) &&
                               ok[pass];
                }
                rel = fmax(rel, fmax(r1, r2));
            }
            if (pass == 0) {
                bt = bench_time(b, run_bwd, &f, b->repeats);
            }
        }
        bench_record(b, "backward", v, names[v], 0, sizes_json, sizes_txt, bt, flops, bytes, ok[0],
                     ok[1], rel, false);
    }
    for (int k = 0; k < sz->nets; k++) {
        dmlp_cache_free(&f.c[k]);
        void *d[] = {f.P[k], f.G[k], f.dout[k], f.din[k]};
        for (size_t i = 0; i < 4; i++) {
            CUDA_CHECK(cudaFree(d[i]));
        }
    }
    CUDA_CHECK(cudaFree(dX));
    free(hX), free(ref), free(hP), free(hd);
}

static void bench_backward_lab(BenchCtx *b) {
    static const BwdSize tiny[] = {{"HalfCheetah", "critic", 23, 1, 37, 1, false, true}};
    static const BwdSize quick[] = {{"HalfCheetah", "critic", 23, 1, 256, 1, false, true},
                                    {"HalfCheetah", "policy", 55, 6, 256, 1, true, true}};
    static const BwdSize full[] = {
        {"HalfCheetah", "critic", 23, 1, 256, 1, false, true},
        {"HalfCheetah", "policy", 55, 6, 256, 1, true, true},
        {"HalfCheetah", "twin (-Q term)", 23, 1, 256, 2, true, false},
        {"HalfCheetah", "twin (critic step)", 23, 1, 256, 2, false, true},
        {"HalfCheetah", "critic", 23, 1, 1024, 1, false, true},
        {"Humanoid", "critic", 365, 1, 256, 1, false, true},
        {"Humanoid", "policy", 397, 17, 256, 1, true, true},
    };
    const BwdSize *s = b->tiny ? tiny : (b->quick ? quick : full);
    int n = b->tiny ? 1 : (b->quick ? 2 : 7);
    for (int i = 0; i < n; i++) {
        bwd_lab_size(b, &s[i]);
    }
}

#ifdef FLAME_BENCH_MAIN
int main(int argc, char **argv) {
    return bench_lab_main(argc, argv, "bench_backward", bench_backward_lab);
}
#endif
