/*
 * ref_nn.h: independent double-precision reference forward passes for the tests: an MLP (plain
 * loops, activations written with libm: tanh(log1p(exp))), the time embedding, and the flow policy
 * input assembly [s, x, g_r(r), g_t(t)]. Finite differences are taken on these.
 */
#ifndef FLAME_REF_NN_H
#define FLAME_REF_NN_H

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "flame/agent.h"
#include "flame/config.h"

static inline double ref_act(int act, double x) {
    switch (act) {
        case ACT_MISH:
            return x * tanh(log1p(exp(x)));
        case ACT_RELU:
            return x > 0 ? x : 0;
        case ACT_GELU:
            return 0.5 * x * (1 + erf(x / sqrt(2.0)));
        default:
            return x;
    }
}

/* double-precision forward of an MLP whose parameters are given in double */
static inline void ref_forward(const Mlp *m, const double *P, const double *in, int rows,
                               double *out) {
    double *a = malloc(sizeof(double) * (size_t)rows * (size_t)m->max_dim);
    double *b = malloc(sizeof(double) * (size_t)rows * (size_t)m->max_dim);
    memcpy(a, in, sizeof(double) * (size_t)rows * (size_t)m->dims[0]);
    for (int l = 0; l < m->n_layers; l++) {
        int di = m->dims[l], dn = m->dims[l + 1];
        const double *W = P + m->w_off[l], *bias = P + m->b_off[l];
        for (int r = 0; r < rows; r++) {
            for (int j = 0; j < dn; j++) {
                double s = bias[j];
                for (int k = 0; k < di; k++) {
                    s += W[(size_t)j * di + k] * a[(size_t)r * di + k];
                }
                b[(size_t)r * dn + j] = (l + 1 < m->n_layers) ? ref_act(m->act, s) : s;
            }
        }
        double *t = a;
        a = b;
        b = t;
    }
    memcpy(out, a, sizeof(double) * (size_t)rows * (size_t)m->dims[m->n_layers]);
    free(a);
    free(b);
}

static inline void ref_time_embedding(double tau, int dim, double *e) {
    int half = dim / 2;
    for (int j = 0; j < half; j++) {
        double w = pow(10000.0, -(double)j / half);
        e[j] = 0.25 * sin(tau * w);
        e[half + j] = 0.25 * cos(tau * w);
    }
}

/* u(x, r, t | s) of a flow policy in double (r ignored without an r time MLP) */
static inline void ref_flow_forward(const AgentLayout *L, const double *P, const double *s,
                                    const double *x, const double *r, const double *t, int rows,
                                    double *u) {
    int S = L->obs_dim, D = L->act_dim, T = L->time_dim, ld = L->trunk_in;
    double *in = calloc((size_t)rows * ld, sizeof(double));
    double e[256], g[256];
    for (int i = 0; i < rows; i++) {
        double *row = in + (size_t)i * ld;
        memcpy(row, s + (size_t)i * S, (size_t)S * sizeof(double));
        memcpy(row + S, x + (size_t)i * D, (size_t)D * sizeof(double));
        int col = S + D;
        if (L->has_tr) {
            ref_time_embedding(r[i], T, e);
            ref_forward(&L->pol_tr, P, e, 1, g);
            memcpy(row + col, g, (size_t)T * sizeof(double));
            col += T;
        }
        ref_time_embedding(t[i], T, e);
        ref_forward(&L->pol_tt, P, e, 1, g);
        memcpy(row + col, g, (size_t)T * sizeof(double));
    }
    ref_forward(&L->pol_trunk, P, in, rows, u);
    free(in);
}

#endif
