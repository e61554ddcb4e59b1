/* dflow.cu: device policy and critic evaluation (see dflow.cuh); mirrors src/algo/flow.c. */
#include "dflow.cuh"

void dflow_work_alloc(DFlowWork *w, const AgentLayout *L, int rows) {
    memset(w, 0, sizeof *w);
    w->cap = rows;
    int flags = DMLP_CACHE_JVP | DMLP_CACHE_BWD;
    dmlp_cache_alloc(&w->trunk, &L->pol_trunk, rows, flags);
    if (L->has_tr) {
        dmlp_cache_alloc(&w->tr, &L->pol_tr, rows, flags);
    }
    if (L->has_tt) {
        dmlp_cache_alloc(&w->tt, &L->pol_tt, rows, flags);
    }
    size_t R = (size_t)rows, T = (size_t)(L->time_dim > 0 ? L->time_dim : 1);
    size_t n = 4 * R * T + R * (size_t)L->trunk_in;
    CUDA_CHECK(cudaMalloc(&w->mem, n * sizeof(float)));
    CUDA_CHECK(cudaMemset(w->mem, 0, n * sizeof(float)));
    float *p = w->mem;
    w->er = p, p += R * T;
    w->et = p, p += R * T;
    w->det = p, p += R * T;
    w->dg = p, p += R * T;
    w->din = p;
}

void dflow_work_free(DFlowWork *w) {
    dmlp_cache_free(&w->trunk);
    if (w->tr.mem) {
        dmlp_cache_free(&w->tr);
    }
    if (w->tt.mem) {
        dmlp_cache_free(&w->tt);
    }
    if (w->mem) {
        CUDA_CHECK(cudaFree(w->mem));
    }
    memset(w, 0, sizeof *w);
}

/* agent_time_embedding per row, in the CPU's float arithmetic */
__global__ void time_embed_kernel(DTime tau, DTime tt, int has_tt, int rows, int T, float *e,
                                  float *de) {
    int half = T / 2;
    long long n = (long long)rows * half;
    for (long long idx = blockIdx.x * (long long)blockDim.x + threadIdx.x; idx < n;
         idx += (long long)gridDim.x * blockDim.x) {
        int i = (int)(idx / half), j = (int)(idx % half);
        float tv = tau.p ? tau.p[i] : tau.c;
        float w = (float)pow(10000.0, -(double)j / half);
        float s = sinf(tv * w), c = cosf(tv * w);
        e[(size_t)i * T + j] = 0.25f * s;
        e[(size_t)i * T + half + j] = 0.25f * c;
        if (de) {
            float d0 = 0.25f * w * c, d1 = -0.25f * w * s;
            if (has_tt) {
                float m = tt.p ? tt.p[i] : tt.c;
                d0 *= m;
                d1 *= m;
            }
            de[(size_t)i * T + j] = d0;
            de[(size_t)i * T + half + j] = d1;
        }
    }
}

void dtime_embed(const DCtx *ctx, DTime tau, const DTime *tt, int rows, int T, float *e,
                 float *de) {
    if (rows <= 0) {
        return;
    }
    long long n = (long long)rows * (T / 2);
    int grid = cdiv(n, 256);
    grid = grid > 4096 ? 4096 : (grid < 1 ? 1 : grid);
    DTime none = dtime_const(1.0f);
    time_embed_kernel<<<grid, 256, 0, ctx->stream>>>(tau, tt ? *tt : none, tt != NULL, rows, T, e,
                                                     de);
    CUDA_CHECK_LAUNCH();
}

/* input (and tangent) of the trunk; returns the t-feature tangent (NULL: zero) */
static void flow_inputs(const DCtx *ctx, const AgentLayout *L, const float *P, DSeg s, DSeg x,
                        DTime r, DTime t, const DSeg *tx, const DTime *tt, int rows, DFlowWork *w,
                        bool save, DIn *in, DIn *tin) {
    int S = L->obs_dim, D = L->act_dim, T = L->time_dim;
    FLAME_CHECK(rows <= w->cap, "flow work holds %d rows, asked for %d", w->cap, rows);
    *in = din_empty();
    din_add(in, s.p, S, s.ld, s.div);
    din_add(in, x.p, D, x.ld, x.div);
    if (tin) {
        *tin = din_empty();
        din_add(tin, NULL, S, 0, 1);
        din_add(tin, tx->p, D, tx->ld, tx->div);
    }
    if (L->has_tr) {
        dtime_embed(ctx, r, NULL, rows, T, w->er, NULL);
        DIn ein = din_empty();
        din_add(&ein, w->er, T, T, 1);
        const float *g = dmlp_forward(ctx, &L->pol_tr, P, &ein, rows, &w->tr, save);
        din_add(in, g, T, T, 1);
        if (tin) {
            din_add(tin, NULL, T, 0, 1); /* the r tangent is zero */
        }
    }
    DIn ein = din_empty();
    din_add(&ein, w->et, T, T, 1);
    if (tin && tt) {
        dtime_embed(ctx, t, tt, rows, T, w->et, w->det);
        DIn etin = din_empty();
        din_add(&etin, w->det, T, T, 1);
        const float *dg;
        const float *g = dmlp_jvp(ctx, &L->pol_tt, P, &ein, &etin, rows, &w->tt, save, &dg);
        din_add(in, g, T, T, 1);
        din_add(tin, dg, T, T, 1);
    } else {
        dtime_embed(ctx, t, NULL, rows, T, w->et, NULL);
        const float *g = dmlp_forward(ctx, &L->pol_tt, P, &ein, rows, &w->tt, save);
        din_add(in, g, T, T, 1);
        if (tin) {
            din_add(tin, NULL, T, 0, 1);
        }
    }
}

const float *dflow_forward(const DCtx *ctx, const AgentLayout *L, const float *P, DSeg s, DSeg x,
                           DTime r, DTime t, int rows, DFlowWork *w, bool save) {
    DIn in;
    flow_inputs(ctx, L, P, s, x, r, t, NULL, NULL, rows, w, save, &in, NULL);
    return dmlp_forward(ctx, &L->pol_trunk, P, &in, rows, &w->trunk, save);
}

const float *dflow_jvp(const DCtx *ctx, const AgentLayout *L, const float *P, DSeg s, DSeg x,
                       DTime r, DTime t, DSeg tx, const DTime *tt, int rows, DFlowWork *w,
                       bool save, const float **du) {
    DIn in, tin;
    flow_inputs(ctx, L, P, s, x, r, t, &tx, tt, rows, w, save, &in, &tin);
    return dmlp_jvp(ctx, &L->pol_trunk, P, &in, &tin, rows, &w->trunk, save, du);
}

void dflow_backward(const DCtx *ctx, const AgentLayout *L, const float *P, float *G, DFlowWork *w,
                    const float *du, int rows, float *dx) {
    int S = L->obs_dim, D = L->act_dim, T = L->time_dim, ld = L->trunk_in;
    dmlp_backward(ctx, &L->pol_trunk, P, G, &w->trunk, du, rows, w->din);
    if (dx) {
        dcopy_cols(ctx, dx, w->din, ld, S, D, rows);
    }
    if (!G) {
        return;
    }
    int col = S + D;
    if (L->has_tr) {
        dcopy_cols(ctx, w->dg, w->din, ld, col, T, rows);
        dmlp_backward(ctx, &L->pol_tr, P, G, &w->tr, w->dg, rows, NULL);
        col += T;
    }
    dcopy_cols(ctx, w->dg, w->din, ld, col, T, rows);
    dmlp_backward(ctx, &L->pol_tt, P, G, &w->tt, w->dg, rows, NULL);
}

const float *dgauss_forward(const DCtx *ctx, const AgentLayout *L, const float *P, DSeg s, int rows,
                            DFlowWork *w, bool save) {
    DIn in = din_empty();
    din_add(&in, s.p, L->obs_dim, s.ld, s.div);
    return dmlp_forward(ctx, &L->pol_trunk, P, &in, rows, &w->trunk, save);
}

void dgauss_backward(const DCtx *ctx, const AgentLayout *L, const float *P, float *G, DFlowWork *w,
                     const float *dout, int rows) {
    dmlp_backward(ctx, &L->pol_trunk, P, G, &w->trunk, dout, rows, NULL);
}

void dqwork_alloc(DQWork *w, const AgentLayout *L, int rows) {
    memset(w, 0, sizeof *w);
    dmlp_cache_alloc(&w->c, &L->q, rows, DMLP_CACHE_BWD);
    size_t n = (size_t)rows * (size_t)(L->obs_dim + L->act_dim);
    CUDA_CHECK(cudaMalloc(&w->din, n * sizeof(float)));
    CUDA_CHECK(cudaMemset(w->din, 0, n * sizeof(float)));
}

void dqwork_free(DQWork *w) {
    dmlp_cache_free(&w->c);
    if (w->din) {
        CUDA_CHECK(cudaFree(w->din));
    }
    memset(w, 0, sizeof *w);
}

static DIn critic_in(const AgentLayout *L, DSeg s, DSeg a) {
    DIn in = din_empty();
    din_add(&in, s.p, L->obs_dim, s.ld, s.div);
    din_add(&in, a.p, L->act_dim, a.ld, a.div);
    return in;
}

const float *dcritic_forward(const DCtx *ctx, const AgentLayout *L, const float *P, DSeg s, DSeg a,
                             int rows, DQWork *w, bool save) {
    DIn in = critic_in(L, s, a);
    return dmlp_forward(ctx, &L->q, P, &in, rows, &w->c, save);
}

void dcritic_forward2(const DCtx *ctx, const AgentLayout *L, const float *P1, const float *P2,
                      DSeg s, DSeg a, int rows, DQWork *w1, DQWork *w2, bool save) {
    DIn in = critic_in(L, s, a);
    dmlp_forward2(ctx, &L->q, P1, P2, &in, rows, &w1->c, &w2->c, save);
}

void dcritic_backward(const DCtx *ctx, const AgentLayout *L, const float *P, float *G, DQWork *w,
                      const float *dq, int rows, float *da) {
    int S = L->obs_dim, D = L->act_dim;
    dmlp_backward(ctx, &L->q, P, G, &w->c, dq, rows, da ? w->din : NULL);
    if (da) {
        dcopy_cols(ctx, da, w->din, S + D, S, D, rows);
    }
}
