/*
 * dflow.cuh: device evaluation of the policy networks and critics on batches of rows, the twin of
 * src/algo/flow.c (same inputs, same assembly [s, x, g_r(r), g_t(t)], same caches for backward).
 *
 * Times are per row (DTime.p) or one value for every row (DTime.p == NULL, DTime.c). The time
 * features g(tau) = MLP(e(tau)) are computed per row, so the backward pass is the CPU's.
 *
 * defines: DTime DFlowWork DQWork dflow_work_alloc dflow_work_free dflow_forward dflow_jvp
 *          dflow_backward dgauss_forward dgauss_backward dqwork_alloc dqwork_free dcritic_forward
 *          dcritic_forward2 dcritic_backward dtime_embed
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

static inline const float *dq_out(const AgentLayout *L, const DQWork *w) {
    return w->c.z[L->q.n_layers - 1];
}

#endif
