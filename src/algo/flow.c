/* flow.c: batched CPU evaluation of policies and critics (see include/flame/flow.h). */
#include "flame/flow.h"

#include <string.h>

#include "flame/check.h"

void flow_work_alloc(FlowWork *w, const AgentLayout *L, int rows) {
    memset(w, 0, sizeof *w);
    w->cap = rows;
    mlp_cache_alloc(&w->trunk, &L->pol_trunk, rows);
    if (L->has_tr) {
        mlp_cache_alloc(&w->tr, &L->pol_tr, rows);
    }
    if (L->has_tt) {
        mlp_cache_alloc(&w->tt, &L->pol_tt, rows);
    }
    size_t ti = (size_t)rows * (size_t)L->trunk_in, td = (size_t)rows * (size_t)L->time_dim;
    w->mem = flame_calloc(3 * ti + 4 * td + (size_t)rows, sizeof(float));
    float *p = w->mem;
    w->in = p, p += ti;
    w->tin = p, p += ti;
    w->din = p, p += ti;
    w->er = p, p += td;
    w->et = p, p += td;
    w->det = p, p += td;
    w->dg = p, p += td;
    w->zero_t = p;
}

void flow_work_free(FlowWork *w) {
    mlp_cache_free(&w->trunk);
    if (w->tr.mem) {
        mlp_cache_free(&w->tr);
    }
    if (w->tt.mem) {
        mlp_cache_free(&w->tt);
    }
    flame_free(w->mem);
    memset(w, 0, sizeof *w);
}

/* copy a rows x n block into columns [col, col+n) of a rows x ld matrix */
static void put_cols(float *dst, int ld, int col, const float *src, int n, int rows) {
    for (int i = 0; i < rows; i++) {
        memcpy(dst + (size_t)i * ld + col, src + (size_t)i * n, (size_t)n * sizeof(float));
    }
}

static void get_cols(float *dst, const float *src, int ld, int col, int n, int rows) {
    for (int i = 0; i < rows; i++) {
        memcpy(dst + (size_t)i * n, src + (size_t)i * ld + col, (size_t)n * sizeof(float));
    }
}

/* Assembles [s, x, g_r, g_t] (and with tangents, [0, tx, 0, dg_t]) into w->in / w->tin. */
static void assemble(const AgentLayout *L, const float *P, const float *s, const float *x,
                     const float *r, const float *t, const float *tx, const float *tt, int rows,
                     FlowWork *w) {
    int S = L->obs_dim, D = L->act_dim, T = L->time_dim, ld = L->trunk_in;
    FLAME_CHECK(rows <= w->cap, "flow work holds %d rows, asked for %d", w->cap, rows);
    put_cols(w->in, ld, 0, s, S, rows);
    put_cols(w->in, ld, S, x, D, rows);
    int col = S + D;
    if (tx) {
        memset(w->tin, 0, (size_t)rows * ld * sizeof(float));
        put_cols(w->tin, ld, S, tx, D, rows);
    }
    float freq[512];
    agent_time_frequencies(T, freq);
    if (L->has_tr) {
        for (int i = 0; i < rows; i++) {
            agent_time_embedding_w(r[i], T, freq, w->er + (size_t)i * T, NULL);
        }
        const float *g = mlp_forward(&L->pol_tr, P, w->er, rows, &w->tr);
        put_cols(w->in, ld, col, g, T, rows);
        col += T; /* tangent of r is zero: tin columns stay 0 */
    }
    for (int i = 0; i < rows; i++) {
        agent_time_embedding_w(t[i], T, freq, w->et + (size_t)i * T, w->det + (size_t)i * T);
    }
    if (tx && tt) {
        /* tangent of the t features: JVP of the t-MLP with tangent (de/dt) * tt */
        for (int i = 0; i < rows; i++) {
            for (int j = 0; j < T; j++) {
                w->det[(size_t)i * T + j] *= tt[i];
            }
        }
        const float *dg;
        const float *g = mlp_jvp(&L->pol_tt, P, w->et, w->det, rows, &w->tt, &dg);
        put_cols(w->in, ld, col, g, T, rows);
        put_cols(w->tin, ld, col, dg, T, rows);
    } else {
        const float *g = mlp_forward(&L->pol_tt, P, w->et, rows, &w->tt);
        put_cols(w->in, ld, col, g, T, rows);
    }
}

const float *flow_forward(const AgentLayout *L, const float *P, const float *s, const float *x,
                          const float *r, const float *t, int rows, FlowWork *w) {
    assemble(L, P, s, x, r, t, NULL, NULL, rows, w);
    return mlp_forward(&L->pol_trunk, P, w->in, rows, &w->trunk);
}

const float *flow_jvp(const AgentLayout *L, const float *P, const float *s, const float *x,
                      const float *r, const float *t, const float *tx, const float *tt, int rows,
                      FlowWork *w, const float **du) {
    assemble(L, P, s, x, r, t, tx, tt, rows, w);
    return mlp_jvp(&L->pol_trunk, P, w->in, w->tin, rows, &w->trunk, du);
}

void flow_backward(const AgentLayout *L, const float *P, float *G, FlowWork *w, const float *du,
                   int rows, float *dx) {
    int S = L->obs_dim, D = L->act_dim, T = L->time_dim, ld = L->trunk_in;
    mlp_backward(&L->pol_trunk, P, G, &w->trunk, du, rows, w->din);
    if (dx) {
        get_cols(dx, w->din, ld, S, D, rows);
    }
    if (!G) {
        return;
    }
    int col = S + D;
    if (L->has_tr) {
        get_cols(w->dg, w->din, ld, col, T, rows);
        mlp_backward(&L->pol_tr, P, G, &w->tr, w->dg, rows, NULL);
        col += T;
    }
    get_cols(w->dg, w->din, ld, col, T, rows);
    mlp_backward(&L->pol_tt, P, G, &w->tt, w->dg, rows, NULL);
}

const float *gauss_forward(const AgentLayout *L, const float *P, const float *s, int rows,
                           FlowWork *w) {
    return mlp_forward(&L->pol_trunk, P, s, rows, &w->trunk);
}

void gauss_backward(const AgentLayout *L, const float *P, float *G, FlowWork *w, const float *dout,
                    int rows) {
    mlp_backward(&L->pol_trunk, P, G, &w->trunk, dout, rows, NULL);
}

void qwork_alloc(QWork *w, const AgentLayout *L, int rows) {
    memset(w, 0, sizeof *w);
    w->cap = rows;
    mlp_cache_alloc(&w->c, &L->q, rows);
    size_t n = (size_t)rows * (size_t)(L->obs_dim + L->act_dim);
    w->mem = flame_malloc(2 * n * sizeof(float));
    w->in = w->mem;
    w->din = w->mem + n;
}

void qwork_free(QWork *w) {
    mlp_cache_free(&w->c);
    flame_free(w->mem);
    memset(w, 0, sizeof *w);
}

const float *critic_forward(const AgentLayout *L, const float *P, const float *s, const float *a,
                            int rows, QWork *w) {
    int S = L->obs_dim, D = L->act_dim;
    FLAME_CHECK(rows <= w->cap, "critic work holds %d rows, asked for %d", w->cap, rows);
    put_cols(w->in, S + D, 0, s, S, rows);
    put_cols(w->in, S + D, S, a, D, rows);
    return mlp_forward(&L->q, P, w->in, rows, &w->c);
}

void critic_backward(const AgentLayout *L, const float *P, float *G, QWork *w, const float *dq,
                     int rows, float *da) {
    int S = L->obs_dim, D = L->act_dim;
    mlp_backward(&L->q, P, G, &w->c, dq, rows, da ? w->din : NULL);
    if (da) {
        get_cols(da, w->din, S + D, S, D, rows);
    }
}
