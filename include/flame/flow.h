/*
 * flow.h: CPU evaluation of the policy networks and critics on batches of rows (the reference
 * math the CPU backend's stage operations are built from; also used directly by the tests).
 *
 * Flow policies (FLAME-M u(x, r, t | s), FLAME-R v(x, t | s)):
 *   flow_forward  u for per-row (r, t) (r ignored by FLAME-R), caching for a backward pass;
 *   flow_jvp      u and du = (du/dx) tx + (du/dt) tt (the r tangent is zero) in one pass;
 *   flow_backward G += dL/dtheta from dL/du through the cached primal, optionally dL/dx.
 * The time features g(tau) = MLP(e(tau)) are computed per row, so rows may mix times.
 * Critics: q = Q(s, a) forward (and backward for the -Q actor term and SAC).
 *
 * defines: FlowWork QWork flow_work_alloc flow_work_free flow_forward flow_jvp flow_backward
 *          qwork_alloc qwork_free critic_forward critic_backward
 */
#ifndef FLAME_FLOW_H
#define FLAME_FLOW_H

#include "flame/agent.h"

typedef struct {
    int cap;
    MlpCache trunk, tr, tt;
    float *in, *tin;           /* cap x trunk_in: assembled input and its tangent */
    float *er, *et, *det;      /* cap x time_dim: embeddings and d e_t/dt */
    float *din;                /* cap x trunk_in */
    float *dg;                 /* cap x time_dim */
    float *zero_t;             /* cap zeros (tangent of r) */
    float *mem;
} FlowWork;

void flow_work_alloc(FlowWork *w, const AgentLayout *L, int rows);
void flow_work_free(FlowWork *w);

/* u for rows; s: rows x S, x: rows x D, r, t: rows (r may be NULL for FLAME-R). Returns rows x D. */
const float *flow_forward(const AgentLayout *L, const float *P, const float *s, const float *x,
                          const float *r, const float *t, int rows, FlowWork *w);

/* Primal and tangent with the input tangent (tx, 0, tt); tt may be NULL (zero time tangent). */
const float *flow_jvp(const AgentLayout *L, const float *P, const float *s, const float *x,
                      const float *r, const float *t, const float *tx, const float *tt, int rows,
                      FlowWork *w, const float **du);

/* Backward from du (rows x D) through the last flow_forward/flow_jvp: G += dL/dtheta (if G),
   dx = dL/dx (rows x D, if dx). */
void flow_backward(const AgentLayout *L, const float *P, float *G, FlowWork *w, const float *du,
                   int rows, float *dx);

/* SAC policy trunk: rows x 2D (mean, raw log std). */
const float *gauss_forward(const AgentLayout *L, const float *P, const float *s, int rows,
                           FlowWork *w);
void gauss_backward(const AgentLayout *L, const float *P, float *G, FlowWork *w, const float *dout,
                    int rows);

typedef struct {
    int cap;
    MlpCache c;
    float *in;  /* cap x (S + D) */
    float *din; /* cap x (S + D) */
    float *mem;
} QWork;

void qwork_alloc(QWork *w, const AgentLayout *L, int rows);
void qwork_free(QWork *w);

/* q = Q(s, a) for rows (rows x 1). */
const float *critic_forward(const AgentLayout *L, const float *P, const float *s, const float *a,
                            int rows, QWork *w);

/* From dq (rows): G += dL/dphi (if G); da = dL/da (rows x D, if da). */
void critic_backward(const AgentLayout *L, const float *P, float *G, QWork *w, const float *dq,
                     int rows, float *da);

#endif
