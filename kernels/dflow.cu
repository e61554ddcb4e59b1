/* dflow.cu: device policy and critic evaluation (see dflow.cuh); mirrors src/algo/flow.c. */
#include "dflow.cuh"

#define FLOW_CACHE_FLAGS (DMLP_CACHE_JVP | DMLP_CACHE_BWD)

/* floats of the flow work's own scratch (embeddings, their tangents, dg, din) */
static size_t flow_scratch_floats(const AgentLayout *L, int rows) {
    size_t R = (size_t)rows, T = (size_t)(L->time_dim > 0 ? L->time_dim : 1);
    return 4 * R * T + R * (size_t)L->trunk_in;
}

size_t dflow_work_bytes(const AgentLayout *L, int rows) {
    size_t b = dmlp_cache_bytes(&L->pol_trunk, rows, FLOW_CACHE_FLAGS);
    b += L->has_tr ? dmlp_cache_bytes(&L->pol_tr, rows, FLOW_CACHE_FLAGS) : 0;
    b += L->has_tt ? dmlp_cache_bytes(&L->pol_tt, rows, FLOW_CACHE_FLAGS) : 0;
    return b + flow_scratch_floats(L, rows) * sizeof(float);
}

void dflow_work_alloc(DFlowWork *w, const AgentLayout *L, int rows) {
    memset(w, 0, sizeof *w);
    w->cap = rows;
    int flags = FLOW_CACHE_FLAGS;
    dmlp_cache_alloc(&w->trunk, &L->pol_trunk, rows, flags);
    if (L->has_tr) {
        dmlp_cache_alloc(&w->tr, &L->pol_tr, rows, flags);
    }
    if (L->has_tt) {
        dmlp_cache_alloc(&w->tt, &L->pol_tt, rows, flags);
    }
    size_t R = (size_t)rows, T = (size_t)(L->time_dim > 0 ? L->time_dim : 1);
    size_t n = flow_scratch_floats(L, rows);
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
        float m = has_tt ? (tt.p ? tt.p[i] : tt.c) : 1.0f;
        float e0, e1, d0, d1;
        temb_at(tv, j, half, m, has_tt != 0, &e0, &e1, &d0, &d1);
        e[(size_t)i * T + j] = e0;
        e[(size_t)i * T + half + j] = e1;
        if (de) {
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

/* ------------------------------------------------------------------ time features, one kernel */
typedef struct {
    const float *P;
    TNet net[2];     /* r (when has_r), t */
    DTime tau[2];    /* r, t */
    DTime m;         /* tangent multiplier of t */
    int has_r, tangent, rows;
    float *g[2], *dg; /* outputs (rows x T); dg: tangent of the t features */
    float *cx0[2], *cz0[2], *cx1[2]; /* caches (NULL: not saved) */
} TfArgs;

#define TF_WARPS 8

__global__ void __launch_bounds__(TF_WARPS * 32) time_features_kernel(TfArgs a) {
    __shared__ float sh[TF_WARPS][4 * TMLP_MAX];
    const int warp = threadIdx.x >> 5, i = blockIdx.x * TF_WARPS + warp;
    if (i >= a.rows) {
        return; /* warp-uniform; the kernel has no block barrier */
    }
#pragma unroll
    for (int k = 0; k < 2; k++) {
        if (k == 0 && !a.has_r) {
            continue;
        }
        const TNet n = a.net[k];
        const size_t oT = (size_t)i * n.T, oH = (size_t)i * n.Th;
        float tau = a.tau[k].p ? a.tau[k].p[i] : a.tau[k].c;
        bool tg = k == 1 && a.tangent;
        float m = tg ? (a.m.p ? a.m.p[i] : a.m.c) : 1.0f;
        tmlp_warp(a.P, n, tau, m, tg, sh[warp], a.g[k] + oT, tg ? a.dg + oT : NULL,
                  a.cx0[k] ? a.cx0[k] + oT : NULL, a.cz0[k] ? a.cz0[k] + oH : NULL,
                  a.cx1[k] ? a.cx1[k] + oH : NULL);
    }
}

/* The r and t features of a pass in one launch (DCtx.merge); `once`: one row, broadcast. */
static void time_features(const DCtx *ctx, const AgentLayout *L, const float *P, DTime r, DTime t,
                          const DTime *tt, int rows, DFlowWork *w, bool save) {
    TfArgs a;
    memset(&a, 0, sizeof a);
    a.P = P;
    a.has_r = L->has_tr;
    a.tangent = tt != NULL;
    a.m = tt ? *tt : dtime_const(1.0f);
    a.tau[0] = r;
    a.tau[1] = t;
    a.rows = rows;
    DMlpCache *c[2] = {&w->tr, &w->tt};
    const Mlp *m[2] = {&L->pol_tr, &L->pol_tt};
    for (int k = L->has_tr ? 0 : 1; k < 2; k++) {
        a.net[k] = tnet_of(m[k]);
        a.g[k] = c[k]->z[1];
        if (save) {
            a.cx0[k] = c[k]->x[0];
            a.cz0[k] = c[k]->z[0];
            a.cx1[k] = c[k]->x[1];
        }
    }
    a.dg = w->tt.tout;
    time_features_kernel<<<cdiv(rows, TF_WARPS), TF_WARPS * 32, 0, ctx->stream>>>(a);
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
    if (ctx->merge && tnet_ok(L)) {
        /* one kernel; constant times without saved caches: one row, broadcast */
        bool tangent = tin && tt;
        bool once = !save && !r.p && !t.p && (!tangent || !tt->p);
        time_features(ctx, L, P, r, t, tangent ? tt : NULL, once ? 1 : rows, w, save);
        int div = once ? 0 : 1;
        if (L->has_tr) {
            din_add(in, w->tr.z[1], T, T, div);
            if (tin) {
                din_add(tin, NULL, T, 0, 1);
            }
        }
        din_add(in, w->tt.z[1], T, T, div);
        if (tin) {
            din_add(tin, tangent ? w->tt.tout : NULL, T, tangent ? T : 0, div);
        }
        return;
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

/* the fused policy backward: trunk chain, time-MLP chains, one gradient launch; false when it
   does not apply */
static bool flow_backward_fused(const DCtx *ctx, const AgentLayout *L, const float *P, float *G,
                                DFlowWork *w, const float *du, int rows) {
    int S = L->obs_dim, D = L->act_dim, T = L->time_dim, ld = L->trunk_in;
    DBwdNet n[3];
    int nn = 0;
    n[nn++] = DBwdNet{&L->pol_trunk, P, G, &w->trunk, du, L->pol_out, w->din};
    if (G) {
        int col = S + D;
        if (L->has_tr) {
            n[nn++] = DBwdNet{&L->pol_tr, P, G, &w->tr, w->din + col, ld, NULL};
            col += T;
        }
        n[nn++] = DBwdNet{&L->pol_tt, P, G, &w->tt, w->din + col, ld, NULL};
    }
    if (!dmlp_bwd_fused_ok(ctx, n, nn, rows)) {
        return false;
    }
    dmlp_chain(ctx, n, 1, rows);
    if (nn > 1) {
        dmlp_chain(ctx, n + 1, nn - 1, rows);
    }
    dmlp_wgrad(ctx, n, nn, rows, true);
    return true;
}

void dflow_backward(const DCtx *ctx, const AgentLayout *L, const float *P, float *G, DFlowWork *w,
                    const float *du, int rows, float *dx) {
    int S = L->obs_dim, D = L->act_dim, T = L->time_dim, ld = L->trunk_in;
    if (L->algo != ALGO_SAC && flow_backward_fused(ctx, L, P, G, w, du, rows)) {
        if (dx) {
            dcopy_cols(ctx, dx, w->din, ld, S, D, rows);
        }
        return;
    }
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

size_t dqwork_bytes(const AgentLayout *L, int rows) {
    return dmlp_cache_bytes(&L->q, rows, DMLP_CACHE_BWD) +
           (size_t)rows * (size_t)(L->obs_dim + L->act_dim) * sizeof(float);
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

void dcritic_backward2(const DCtx *ctx, const AgentLayout *L, const float *P1, const float *P2,
                       float *G1, float *G2, DQWork *w1, DQWork *w2, const float *dq1,
                       const float *dq2, int rows, float *da1, float *da2) {
    int S = L->obs_dim, D = L->act_dim;
    DBwdNet n[2] = {{&L->q, P1, G1, &w1->c, dq1, 1, da1 ? w1->din : NULL},
                    {&L->q, P2, G2, &w2->c, dq2, 1, da2 ? w2->din : NULL}};
    if (rows > 0 && dmlp_bwd_fused_ok(ctx, n, 2, rows)) {
        dmlp_chain(ctx, n, 2, rows);
        dmlp_wgrad(ctx, n, 2, rows, true);
        if (da1) {
            dcopy_cols(ctx, da1, w1->din, S + D, S, D, rows);
        }
        if (da2) {
            dcopy_cols(ctx, da2, w2->din, S + D, S, D, rows);
        }
        return;
    }
    dcritic_backward(ctx, L, P1, G1, w1, dq1, rows, da1);
    dcritic_backward(ctx, L, P2, G2, w2, dq2, rows, da2);
}
