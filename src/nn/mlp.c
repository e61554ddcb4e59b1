/*
 * mlp.c: the CPU MLP: layout, initialisation, forward, JVP and backward (see include/flame/mlp.h).
 * Readable first: each pass is a loop over layers of one GEMM plus an element-wise loop.
 */
#include "flame/mlp.h"

#include <stdio.h>
#include <string.h>

#include <cblas.h>

#include "flame/activation.h"
#include "flame/build_info.h"
#include "flame/check.h"
#include "flame/rng.h"

/* ------------------------------------------------------------------ BLAS */
extern void openblas_set_num_threads(int n) __attribute__((weak));
extern char *openblas_get_config(void) __attribute__((weak));

void blas_set_threads(int n) {
    if (openblas_set_num_threads) {
        openblas_set_num_threads(n);
    }
}

const char *blas_info(void) {
    static char buf[256];
    if (openblas_get_config) {
        snprintf(buf, sizeof buf, "OpenBLAS (%s)", openblas_get_config());
    } else {
        snprintf(buf, sizeof buf, "%s", FLAME_BLAS_NAME);
    }
    return buf;
}

/* ------------------------------------------------------------------ layout and init */
void mlp_layout(Mlp *m, ParamTable *t, const char *prefix, int in, int hidden, int n_hidden,
                int out, int act) {
    FLAME_CHECK(n_hidden + 1 <= MLP_MAX_LAYERS, "too many layers (%d)", n_hidden + 1);
    memset(m, 0, sizeof *m);
    m->n_layers = n_hidden + 1;
    m->act = act;
    m->dims[0] = in;
    for (int l = 1; l <= n_hidden; l++) {
        m->dims[l] = hidden;
    }
    m->dims[m->n_layers] = out;
    m->first_tensor = t->count;
    m->max_dim = 0;
    for (int l = 0; l <= m->n_layers; l++) {
        m->max_dim = m->dims[l] > m->max_dim ? m->dims[l] : m->max_dim;
    }
    for (int l = 0; l < m->n_layers; l++) {
        char name[48];
        snprintf(name, sizeof name, "%s.w%d", prefix, l);
        m->w_off[l] = param_table_add(t, name, m->dims[l + 1], m->dims[l]);
        snprintf(name, sizeof name, "%s.b%d", prefix, l);
        m->b_off[l] = param_table_add(t, name, m->dims[l + 1], 1);
    }
}

void mlp_init_params(const Mlp *m, const ParamTable *t, float *params, uint64_t seed,
                     uint32_t net_id) {
    for (int l = 0; l < m->n_layers; l++) {
        int fan_in = m->dims[l];
        double sd = 1.0 / sqrt((double)fan_in);
        size_t n = (size_t)m->dims[l + 1] * (size_t)fan_in;
        uint32_t tensor = (uint32_t)(m->first_tensor + 2 * l);
        float *w = params + m->w_off[l];
        for (size_t i = 0; i < n; i++) {
            w[i] = (float)(sd * rng_trunc_normal(seed, RNG_STREAM_INIT, net_id, tensor, (uint32_t)i,
                                                 -2.0, 2.0));
        }
        memset(params + m->b_off[l], 0, (size_t)m->dims[l + 1] * sizeof(float));
    }
    (void)t;
}

void mlp_cache_alloc(MlpCache *c, const Mlp *m, int rows) {
    memset(c, 0, sizeof *c);
    c->cap = rows;
    size_t total = 0;
    for (int l = 0; l < m->n_layers; l++) {
        total += (size_t)rows * (size_t)m->dims[l];     /* x[l] */
        total += (size_t)rows * (size_t)m->dims[l + 1]; /* z[l] */
    }
    total += 4 * (size_t)rows * (size_t)m->max_dim + (size_t)rows * (size_t)m->dims[m->n_layers];
    c->mem = flame_malloc(total * sizeof(float));
    float *p = c->mem;
    for (int l = 0; l < m->n_layers; l++) {
        c->x[l] = p;
        p += (size_t)rows * (size_t)m->dims[l];
        c->z[l] = p;
        p += (size_t)rows * (size_t)m->dims[l + 1];
    }
    c->t0 = p;
    p += (size_t)rows * (size_t)m->max_dim;
    c->t1 = p;
    p += (size_t)rows * (size_t)m->max_dim;
    c->d0 = p;
    p += (size_t)rows * (size_t)m->max_dim;
    c->d1 = p;
    p += (size_t)rows * (size_t)m->max_dim;
    c->tout = p;
}

void mlp_cache_free(MlpCache *c) {
    flame_free(c->mem);
    memset(c, 0, sizeof *c);
}

double mlp_flops(const Mlp *m) {
    double f = 0;
    for (int l = 0; l < m->n_layers; l++) {
        f += 2.0 * m->dims[l] * m->dims[l + 1];
    }
    return f;
}

/* ------------------------------------------------------------------ element-wise loops */
/* Each loop is compiled for AVX-512, AVX2 and the baseline and picked at load time; the activation
   formulas (activation.h) are branch-free so the compiler vectorises them. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define FLAME_SIMD_CLONES __attribute__((target_clones("default", "avx2", "avx512f")))
#else
#define FLAME_SIMD_CLONES
#endif

/* x = act(z) */
FLAME_SIMD_CLONES static void act_apply(int act, const float *z, float *x, size_t n) {
    if (act == ACT_MISH) {
        for (size_t i = 0; i < n; i++) {
            x[i] = act_mish(z[i]);
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            x[i] = act_forward(act, z[i]);
        }
    }
}

/* g *= act'(z) */
FLAME_SIMD_CLONES static void act_scale_by_derivative(int act, const float *z, float *g, size_t n) {
    if (act == ACT_MISH) {
        for (size_t i = 0; i < n; i++) {
            g[i] *= act_mish_d(z[i]);
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            g[i] *= act_derivative(act, z[i]);
        }
    }
}

/* x = act(z) and g *= act'(z) in one sweep (JVP) */
FLAME_SIMD_CLONES static void act_apply_jvp(int act, const float *z, float *x, float *g, size_t n) {
    if (act == ACT_MISH) {
        for (size_t i = 0; i < n; i++) {
            x[i] = act_mish(z[i]);
            g[i] *= act_mish_d(z[i]);
        }
    } else {
        for (size_t i = 0; i < n; i++) {
            x[i] = act_forward(act, z[i]);
            g[i] *= act_derivative(act, z[i]);
        }
    }
}

/* ------------------------------------------------------------------ passes */
void linear_forward(const float *X, const float *W, const float *b, float *Z, int rows, int in,
                    int out) {
    /* Z = X W^T */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, out, in, 1.0f, X, in, W, in, 0.0f,
                Z, out);
    if (b) {
        for (int r = 0; r < rows; r++) {
            float *zr = Z + (size_t)r * out;
            for (int j = 0; j < out; j++) {
                zr[j] += b[j];
            }
        }
    }
}

const float *mlp_forward(const Mlp *m, const float *P, const float *in, int rows, MlpCache *c) {
    FLAME_CHECK(rows <= c->cap, "MLP cache holds %d rows, asked for %d", c->cap, rows);
    memcpy(c->x[0], in, (size_t)rows * (size_t)m->dims[0] * sizeof(float));
    for (int l = 0; l < m->n_layers; l++) {
        int din = m->dims[l], dout = m->dims[l + 1];
        linear_forward(c->x[l], P + m->w_off[l], P + m->b_off[l], c->z[l], rows, din, dout);
        if (l + 1 < m->n_layers) {
            /* hidden activation: input of the next layer */
            act_apply(m->act, c->z[l], c->x[l + 1], (size_t)rows * (size_t)dout);
        }
    }
    return c->z[m->n_layers - 1];
}

const float *mlp_jvp(const Mlp *m, const float *P, const float *in, const float *tin, int rows,
                     MlpCache *c, const float **tout) {
    FLAME_CHECK(rows <= c->cap, "MLP cache holds %d rows, asked for %d", c->cap, rows);
    memcpy(c->x[0], in, (size_t)rows * (size_t)m->dims[0] * sizeof(float));
    const float *t_in = tin;
    for (int l = 0; l < m->n_layers; l++) {
        int din = m->dims[l], dout = m->dims[l + 1];
        const float *W = P + m->w_off[l];
        linear_forward(c->x[l], W, P + m->b_off[l], c->z[l], rows, din, dout);
        /* tangent of the pre-activation: tz = tx W^T (no bias) */
        float *tz = (l + 1 < m->n_layers) ? (t_in == c->t0 ? c->t1 : c->t0) : c->tout;
        linear_forward(t_in, W, NULL, tz, rows, din, dout);
        if (l + 1 < m->n_layers) {
            act_apply_jvp(m->act, c->z[l], c->x[l + 1], tz, (size_t)rows * (size_t)dout);
        }
        t_in = tz;
    }
    *tout = c->tout;
    return c->z[m->n_layers - 1];
}

void mlp_backward(const Mlp *m, const float *P, float *G, MlpCache *c, const float *dout, int rows,
                  float *din) {
    FLAME_CHECK(rows <= c->cap, "MLP cache holds %d rows, asked for %d", c->cap, rows);
    /* dz of the last layer is dout (identity output) */
    const float *dz = dout;
    for (int l = m->n_layers - 1; l >= 0; l--) {
        int dn_in = m->dims[l], dn_out = m->dims[l + 1];
        const float *W = P + m->w_off[l];
        if (G) {
            /* dW += dz^T x ; db += column sums of dz */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, dn_out, dn_in, rows, 1.0f, dz,
                        dn_out, c->x[l], dn_in, 1.0f, G + m->w_off[l], dn_in);
            float *gb = G + m->b_off[l];
            for (int r = 0; r < rows; r++) {
                const float *dzr = dz + (size_t)r * dn_out;
                for (int j = 0; j < dn_out; j++) {
                    gb[j] += dzr[j];
                }
            }
        }
        if (l == 0 && !din) {
            break;
        }
        /* dx = dz W; then through the activation of the previous layer */
        float *dx = (l == 0) ? din : (dz == c->d0 ? c->d1 : c->d0);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, dn_in, dn_out, 1.0f, dz,
                    dn_out, W, dn_in, 0.0f, dx, dn_in);
        if (l > 0) {
            act_scale_by_derivative(m->act, c->z[l - 1], dx, (size_t)rows * (size_t)dn_in);
        }
        dz = dx;
    }
}
