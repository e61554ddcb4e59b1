/*
 * dflow.cuh: device evaluation of the policy networks and critics on batches of rows, the twin of
 * src/algo/flow.c (same inputs, same assembly [s, x, g_r(r), g_t(t)], same caches for backward).
 *
 * Times are per row (DTime.p) or one value for every row (DTime.p == NULL, DTime.c). The time
 * features g(tau) = MLP(e(tau)) are computed per row, so the backward pass is the CPU's. With
 * DCtx.merge the embedding and both time MLPs of a pass are one kernel (one warp per row,
 * tmlp_warp), and a pass whose times are all constant and that saves nothing computes them once
 * and broadcasts them (a row-divisor-0 segment).
 * With DCtx.bwd_fused the policy backward is three launches: the trunk's row chain, the time
 * MLPs' row chains (both in one launch) and one weight-gradient launch for all three networks.
 *
 * defines: DTime DFlowWork DQWork TNet TMLP_MAX tnet_of tnet_ok temb_at tmlp_dot tmlp_warp
 *          dflow_work_alloc dflow_work_bytes dflow_work_free dflow_forward dflow_jvp
 *          dflow_backward dgauss_forward dgauss_backward dqwork_alloc dqwork_bytes dqwork_free
 *          dcritic_forward dcritic_forward2 dcritic_backward dcritic_backward2 dtime_embed
 */
#ifndef FLAME_KERNELS_DFLOW_CUH
#define FLAME_KERNELS_DFLOW_CUH

#include "dmlp.cuh"

typedef struct {
    const float *p; /* per-row values (NULL: every row takes c) */
    float c;
} DTime;

static inline DTime dtime_rows(const float *p) {
    DTime t;
    t.p = p;
    t.c = 0.0f;
    return t;
}

static inline DTime dtime_const(float c) {
    DTime t;
    t.p = NULL;
    t.c = c;
    return t;
}

static inline DSeg dseg(const float *p, int width, int ld, int div) {
    DSeg s;
    s.p = p;
    s.width = width;
    s.ld = ld;
    s.div = div;
    return s;
}

typedef struct {
    int cap;
    DMlpCache trunk, tr, tt;
    float *er, *et, *det; /* cap x time_dim */
    float *din;           /* cap x trunk_in */
    float *dg;            /* cap x time_dim */
    float *mem;
} DFlowWork;

typedef struct {
    DMlpCache c;
    float *din; /* cap x (S + D) */
} DQWork;

void dflow_work_alloc(DFlowWork *w, const AgentLayout *L, int rows);
void dflow_work_free(DFlowWork *w);
/* Device bytes of dflow_work_alloc / dqwork_alloc for these arguments. */
size_t dflow_work_bytes(const AgentLayout *L, int rows);
size_t dqwork_bytes(const AgentLayout *L, int rows);

/* ------------------------------------------------------------------ time MLPs, a warp per row */
#define TMLP_MAX 64 /* time_embed_dim and time_hidden of the one-kernel path */

/* A two-layer time MLP (embedding T -> hidden Th -> T) as offsets into the policy blob. */
typedef struct {
    int T, Th, act;
    int w0, b0, w1, b1;
} TNet;

static inline TNet tnet_of(const Mlp *m) {
    TNet n;
    n.T = m->dims[0];
    n.Th = m->dims[1];
    n.act = m->act;
    n.w0 = (int)m->w_off[0];
    n.b0 = (int)m->b_off[0];
    n.w1 = (int)m->w_off[1];
    n.b1 = (int)m->b_off[1];
    return n;
}

/* Whether the policy's time MLPs fit the one-kernel path. */
static inline bool tnet_ok(const AgentLayout *L) {
    if (L->time_dim > TMLP_MAX || L->time_dim % 2 || !L->has_tt) {
        return false;
    }
    const Mlp *ms[2] = {&L->pol_tt, L->has_tr ? &L->pol_tr : &L->pol_tt};
    for (int k = 0; k < 2; k++) {
        if (ms[k]->n_layers != 2 || ms[k]->dims[1] > TMLP_MAX) {
            return false;
        }
    }
    return true;
}

/* Entries j and half + j of the time embedding at tau (agent_time_embedding, the CPU's float
   arithmetic) and of its derivative times m (with_m) or not. */
__device__ __forceinline__ void temb_at(float tau, int j, int half, float m, bool with_m, float *e0,
                                        float *e1, float *d0, float *d1) {
    float w = (float)pow(10000.0, -(double)j / half);
    float s = sinf(tau * w), c = cosf(tau * w);
    *e0 = 0.25f * s;
    *e1 = 0.25f * c;
    float a = 0.25f * w * c, b = -0.25f * w * s;
    if (with_m) {
        a *= m;
        b *= m;
    }
    *d0 = a;
    *d1 = b;
}

/* sum_k w[k] x[k] and, in *ts, sum_k w[k] tx[k], in order with fused multiply-adds */
__device__ __forceinline__ float tmlp_dot(const float *__restrict__ w, const float *x,
                                          const float *tx, int n, float *ts) {
    float s = 0.0f, t = 0.0f;
    for (int k = 0; k < n; k++) {
        float wk = __ldg(w + k);
        s = fmaf(x[k], wk, s);
        t = fmaf(tx[k], wk, t);
    }
    *ts = t;
    return s;
}

/* One row of a time MLP evaluated by one warp (every lane calls it): the embedding e(tau), the
   hidden layer and the output g, and with `tangent` the tangent dg along de/dtau * m. `sh` is
   per-warp scratch of 4 * TMLP_MAX floats. Outputs (g, dg, caches cx0 = e, cz0, cx1; NULL: not
   written) are the row's own. Sums run over the inputs in order with fused multiply-adds, bias
   last, as the fused kernel's narrow-layer path does. */
__device__ __forceinline__ void tmlp_warp(const float *__restrict__ P, const TNet n, float tau,
                                          float m, bool tangent, float *sh, float *g, float *dg,
                                          float *cx0, float *cz0, float *cx1) {
    const int lane = threadIdx.x & 31, half = n.T / 2;
    float *e = sh, *de = sh + TMLP_MAX, *h = sh + 2 * TMLP_MAX, *th = sh + 3 * TMLP_MAX;
    for (int j = lane; j < half; j += 32) {
        float e0, e1, d0, d1;
        temb_at(tau, j, half, m, true, &e0, &e1, &d0, &d1);
        e[j] = e0;
        e[half + j] = e1;
        de[j] = d0;
        de[half + j] = d1;
        if (cx0) {
            cx0[j] = e0;
            cx0[half + j] = e1;
        }
    }
    __syncwarp();
    for (int j = lane; j < n.Th; j += 32) {
        float ts, s = tmlp_dot(P + n.w0 + (size_t)j * n.T, e, de, n.T, &ts);
        float z = s + P[n.b0 + j];
        float hv = act_forward(n.act, z);
        h[j] = hv;
        th[j] = tangent ? ts * act_derivative(n.act, z) : 0.0f;
        if (cz0) {
            cz0[j] = z;
        }
        if (cx1) {
            cx1[j] = hv;
        }
    }
    __syncwarp();
    for (int o = lane; o < n.T; o += 32) {
        float ts, s = tmlp_dot(P + n.w1 + (size_t)o * n.Th, h, th, n.Th, &ts);
        g[o] = s + P[n.b1 + o];
        if (dg) {
            dg[o] = ts;
        }
    }
    __syncwarp();
}

/* e(tau) (rows x T) and, when de != NULL, de/dtau scaled by the tangent tt (NULL: 1). */
void dtime_embed(const DCtx *ctx, DTime tau, const DTime *tt, int rows, int T, float *e, float *de);

/* u(x, r, t | s) for rows rows (r ignored by FLAME-R); returns rows x D (owned by w). */
const float *dflow_forward(const DCtx *ctx, const AgentLayout *L, const float *P, DSeg s, DSeg x,
                           DTime r, DTime t, int rows, DFlowWork *w, bool save);

/* Primal and tangent with input tangent (tx, 0, tt); tt NULL: zero time tangent. */
const float *dflow_jvp(const DCtx *ctx, const AgentLayout *L, const float *P, DSeg s, DSeg x,
                       DTime r, DTime t, DSeg tx, const DTime *tt, int rows, DFlowWork *w,
                       bool save, const float **du);

/* Backward from du through the last saved forward/JVP: G += dL/dtheta (G may be NULL), dx. */
void dflow_backward(const DCtx *ctx, const AgentLayout *L, const float *P, float *G, DFlowWork *w,
                    const float *du, int rows, float *dx);

/* SAC policy trunk on s: rows x 2D. */
const float *dgauss_forward(const DCtx *ctx, const AgentLayout *L, const float *P, DSeg s, int rows,
                            DFlowWork *w, bool save);
void dgauss_backward(const DCtx *ctx, const AgentLayout *L, const float *P, float *G, DFlowWork *w,
                     const float *dout, int rows);

void dqwork_alloc(DQWork *w, const AgentLayout *L, int rows);
void dqwork_free(DQWork *w);

/* Q(s, a) for rows rows: returns rows values (owned by w). */
const float *dcritic_forward(const DCtx *ctx, const AgentLayout *L, const float *P, DSeg s, DSeg a,
                             int rows, DQWork *w, bool save);
/* Both critics on the same rows (one launch on the fused path); outputs in w1, w2. */
void dcritic_forward2(const DCtx *ctx, const AgentLayout *L, const float *P1, const float *P2,
                      DSeg s, DSeg a, int rows, DQWork *w1, DQWork *w2, bool save);
/* From dq (rows): G += dL/dphi (G may be NULL); da = dL/da (rows x D) when da != NULL. */
void dcritic_backward(const DCtx *ctx, const AgentLayout *L, const float *P, float *G, DQWork *w,
                      const float *dq, int rows, float *da);
/* Both critics' backward (one chain and one gradient launch on the fused path, else two
   dcritic_backward calls); Gk may be NULL, dak may be NULL. */
void dcritic_backward2(const DCtx *ctx, const AgentLayout *L, const float *P1, const float *P2,
                       float *G1, float *G2, DQWork *w1, DQWork *w2, const float *dq1,
                       const float *dq2, int rows, float *da1, float *da2);

static inline const float *dq_out(const AgentLayout *L, const DQWork *w) {
    return w->c.z[L->q.n_layers - 1];
}

#endif
