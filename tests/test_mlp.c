/*
 * test_mlp.c: the CPU MLP core against an independent double-precision reference.
 *
 * The reference is a plain triple loop in double (its own activation formulas, tanh(log1p(exp)));
 * gradients and tangents are checked against central finite differences of that reference.
 * Tolerances: the fp32 passes accumulate at most a few hundred products of O(1) terms, so their
 * relative error is ~1e-6..1e-5; central differences with h = 1e-5 in double are exact to ~1e-10
 * for these smooth functions. atol 2e-5 + rtol 2e-4 leaves a 10x margin over fp32 rounding while
 * still catching any wrong term (a missing factor or transposed index gives O(1) relative errors).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "flame/activation.h"
#include "flame/config.h"
#include "flame/mlp.h"
#include "flame/params.h"
#include "flame/rng.h"
#include "flame_test.h"
#include "ref_nn.h"

typedef struct {
    ParamTable t;
    ParamBlob blob;
    Mlp m;
} Net;

static void net_make(Net *n, int in, int hidden, int nh, int out, int act, uint64_t seed) {
    param_table_init(&n->t);
    mlp_layout(&n->m, &n->t, "net", in, hidden, nh, out, act);
    param_blob_alloc(&n->blob, &n->t);
    mlp_init_params(&n->m, &n->t, n->blob.params, seed, 1);
    /* non-zero biases so the bias path is exercised */
    for (int l = 0; l < n->m.n_layers; l++) {
        for (int j = 0; j < n->m.dims[l + 1]; j++) {
            n->blob.params[n->m.b_off[l] + j] = 0.1f * rng_normal(seed, RNG_STREAM_TEST, 9, l, j);
        }
    }
}

static void fill(float *x, size_t n, uint64_t seed, uint32_t step, float scale) {
    for (size_t i = 0; i < n; i++) {
        x[i] = scale * rng_normal(seed, RNG_STREAM_TEST, step, 0, (uint32_t)i);
    }
}

static double *to_double(const float *x, size_t n) {
    double *d = malloc(sizeof(double) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) {
        d[i] = x[i];
    }
    return d;
}

/* L = sum(w .* f(x)) for a fixed random weighting w of the outputs */
static double ref_loss(const Mlp *m, const double *P, const double *in, int rows, const double *w) {
    int no = rows * m->dims[m->n_layers];
    double *out = malloc(sizeof(double) * (size_t)no);
    ref_forward(m, P, in, rows, out);
    double s = 0;
    for (int i = 0; i < no; i++) {
        s += w[i] * out[i];
    }
    free(out);
    return s;
}

static void check_net(int in, int hidden, int nh, int out, int act, int rows, uint64_t seed) {
    Net n;
    net_make(&n, in, hidden, nh, out, act, seed);
    size_t ni = (size_t)rows * in, no = (size_t)rows * out;
    float *x = malloc(sizeof(float) * ni), *dout = malloc(sizeof(float) * no);
    float *din = malloc(sizeof(float) * ni), *tin = malloc(sizeof(float) * ni);
    fill(x, ni, seed, 1, 1.0f);
    fill(dout, no, seed, 2, 1.0f);
    fill(tin, ni, seed, 3, 1.0f);
    MlpCache c;
    mlp_cache_alloc(&c, &n.m, rows);

    /* forward vs double reference */
    double *P = to_double(n.blob.params, n.t.total), *xd = to_double(x, ni);
    double *wd = to_double(dout, no), *ref = malloc(sizeof(double) * no);
    const float *y = mlp_forward(&n.m, n.blob.params, x, rows, &c);
    ref_forward(&n.m, P, xd, rows, ref);
    float *reff = malloc(sizeof(float) * no);
    for (size_t i = 0; i < no; i++) {
        reff[i] = (float)ref[i];
    }
    EXPECT_CLOSE("forward", y, reff, no, 2e-5, 2e-4);

    /* backward: param and input gradients of L = sum(dout .* y) against central differences */
    memset(n.blob.grads, 0, n.t.total * sizeof(float));
    mlp_backward(&n.m, n.blob.params, n.blob.grads, &c, dout, rows, din);
    const double h = 1e-5;
    float *fd = malloc(sizeof(float) * n.t.total);
    for (size_t i = 0; i < n.t.total; i++) {
        double keep = P[i];
        P[i] = keep + h;
        double lp = ref_loss(&n.m, P, xd, rows, wd);
        P[i] = keep - h;
        double lm = ref_loss(&n.m, P, xd, rows, wd);
        P[i] = keep;
        fd[i] = (float)((lp - lm) / (2 * h));
    }
    EXPECT_CLOSE("dL/dparams", n.blob.grads, fd, n.t.total, 2e-5, 2e-4);
    float *fdx = malloc(sizeof(float) * ni);
    for (size_t i = 0; i < ni; i++) {
        double keep = xd[i];
        xd[i] = keep + h;
        double lp = ref_loss(&n.m, P, xd, rows, wd);
        xd[i] = keep - h;
        double lm = ref_loss(&n.m, P, xd, rows, wd);
        xd[i] = keep;
        fdx[i] = (float)((lp - lm) / (2 * h));
    }
    EXPECT_CLOSE("dL/dinput", din, fdx, ni, 2e-5, 2e-4);

    /* JVP: primal equals forward; tangent against the central difference along tin */
    const float *tout;
    const float *yj = mlp_jvp(&n.m, n.blob.params, x, tin, rows, &c, &tout);
    EXPECT_CLOSE("jvp primal", yj, reff, no, 2e-5, 2e-4);
    double *xp = malloc(sizeof(double) * ni), *xm = malloc(sizeof(double) * ni);
    for (size_t i = 0; i < ni; i++) {
        xp[i] = xd[i] + h * tin[i];
        xm[i] = xd[i] - h * tin[i];
    }
    double *yp = malloc(sizeof(double) * no), *ym = malloc(sizeof(double) * no);
    ref_forward(&n.m, P, xp, rows, yp);
    ref_forward(&n.m, P, xm, rows, ym);
    float *tref = malloc(sizeof(float) * no);
    for (size_t i = 0; i < no; i++) {
        tref[i] = (float)((yp[i] - ym[i]) / (2 * h));
    }
    EXPECT_CLOSE("jvp tangent", tout, tref, no, 2e-5, 2e-4);

    /* backward after a JVP uses the cached primal: same gradients as after a forward */
    float *g2 = calloc(n.t.total, sizeof(float));
    mlp_backward(&n.m, n.blob.params, g2, &c, dout, rows, NULL);
    EXPECT_CLOSE("backward after jvp", g2, n.blob.grads, n.t.total, 0, 1e-6);

    free(x), free(dout), free(din), free(tin), free(P), free(xd), free(wd), free(ref), free(reff);
    free(fd), free(fdx), free(xp), free(xm), free(yp), free(ym), free(tref), free(g2);
    mlp_cache_free(&c);
    param_blob_free(&n.blob);
}

FLAME_TEST(test_mlp_mish) {
    check_net(7, 16, 2, 3, ACT_MISH, 5, 11);
}
FLAME_TEST(test_mlp_gelu) {
    check_net(5, 12, 3, 2, ACT_GELU, 4, 12);
}
FLAME_TEST(test_mlp_relu) {
    /* seed chosen so no pre-activation lies within h of the kink (checked: FD would disagree) */
    check_net(6, 10, 2, 4, ACT_RELU, 3, 13);
}
FLAME_TEST(test_mlp_single_layer) {
    check_net(9, 1, 0, 5, ACT_MISH, 6, 14);
}

FLAME_TEST(test_mish_single_exp) {
    /* the single-exp form against tanh(log1p(exp(x))) in double, and its derivative against a
       central difference, over the whole range including the cut-over at 20 */
    for (double x = -30; x <= 30; x += 0.01) {
        double ref = x * tanh(log1p(exp(x)));
        float got = act_mish((float)x);
        EXPECT_MSG(fabs(got - ref) <= 1e-6 + 2e-6 * fabs(ref), "mish(%g) = %.9g ref %.9g", x, got,
                   ref);
        double h = 1e-5;
        double dref = ((x + h) * tanh(log1p(exp(x + h))) - (x - h) * tanh(log1p(exp(x - h)))) /
                      (2 * h);
        float dgot = act_mish_d((float)x);
        EXPECT_MSG(fabs(dgot - dref) <= 1e-5 + 1e-5 * fabs(dref), "mish'(%g) = %.9g ref %.9g", x,
                   dgot, dref);
    }
}

FLAME_TEST(test_blob_layout) {
    ParamTable t;
    param_table_init(&t);
    Mlp a, b;
    mlp_layout(&a, &t, "a", 23, 256, 3, 6, ACT_MISH);
    mlp_layout(&b, &t, "b", 16, 32, 1, 16, ACT_MISH);
    size_t expect = 0;
    for (int i = 0; i < t.count; i++) {
        EXPECT(t.t[i].offset % FLAME_PARAM_ALIGN == 0);
        EXPECT(t.t[i].offset == expect); /* increasing, no gaps beyond alignment padding */
        EXPECT(t.t[i].size == (size_t)t.t[i].rows * t.t[i].cols);
        expect += (t.t[i].size + FLAME_PARAM_ALIGN - 1) / FLAME_PARAM_ALIGN * FLAME_PARAM_ALIGN;
    }
    EXPECT(t.total == expect);
    /* parameter count of the 23 -> 3x256 -> 6 trunk: 256*23+256 + 2*(256^2+256) + 257*6 */
    size_t n = 0;
    for (int i = 0; i < 8; i++) {
        n += t.t[i].size;
    }
    EXPECT(n == 256u * 23 + 256 + 2 * (256u * 256 + 256) + 257u * 6);
    ParamBlob blob;
    param_blob_alloc(&blob, &t);
    EXPECT(blob.grads == blob.params + t.total && blob.m == blob.grads + t.total &&
           blob.v == blob.m + t.total);
    EXPECT(((uintptr_t)blob.params % 64) == 0 && ((uintptr_t)blob.grads % 64) == 0);
    EXPECT(param_table_find(&t, "b.w1") == &t.t[10]);
    EXPECT(param_table_find(&t, "nope") == NULL);
    param_blob_free(&blob);
}

FLAME_TEST(test_init_statistics) {
    /* Haiku init: truncated normal on [-2,2] times 1/sqrt(fan_in): std = 0.8796/sqrt(fan_in) */
    ParamTable t;
    param_table_init(&t);
    Mlp m;
    mlp_layout(&m, &t, "q", 256, 256, 1, 1, ACT_MISH);
    ParamBlob blob;
    param_blob_alloc(&blob, &t);
    mlp_init_params(&m, &t, blob.params, 3, 2);
    const float *w = blob.params + m.w_off[0]; /* 256 x 256 */
    double s = 0, s2 = 0, mx = 0;
    int n = 256 * 256;
    for (int i = 0; i < n; i++) {
        s += w[i];
        s2 += (double)w[i] * w[i];
        mx = fmax(mx, fabs(w[i]));
    }
    double sd = sqrt(s2 / n) * sqrt(256.0);
    EXPECT_NEAR("init std * sqrt(fan_in)", sd, 0.87962566, 0.01, 0);
    EXPECT(mx <= 2.0 / 16.0 + 1e-7);
    EXPECT(fabs(s / n) < 5 * 0.88 / 16 / sqrt((double)n));
    for (int j = 0; j < 256; j++) {
        EXPECT(blob.params[m.b_off[0] + j] == 0.0f);
    }
    param_blob_free(&blob);
}

FLAME_TEST(test_adam_hand_computed) {
    /* scalar parameter p0 = 1, lr 0.1, b1 0.9, b2 0.999, eps 1e-8, gradients 1, -2, 0.5, written out:
       t=1: m = 0.1,    v = 0.001,      mh = 1,                vh = 1
       t=2: m = -0.11,  v = 0.004999,   mh = -0.11/0.19,       vh = 0.004999/0.001999
       t=3: m = -0.049, v = 0.005244001, mh = -0.049/0.271,    vh = 0.005244001/0.002997001 */
    double p = 1.0;
    p -= 0.1 * 1.0 / (1.0 + 1e-8);
    double p1 = p;
    p -= 0.1 * (-0.11 / 0.19) / (sqrt(0.004999 / 0.001999) + 1e-8);
    double p2 = p;
    p -= 0.1 * (-0.049 / 0.271) / (sqrt(0.005244001 / 0.002997001) + 1e-8);
    double p3 = p;
    float pf = 1.0f, m = 0, v = 0;
    float g[3] = {1.0f, -2.0f, 0.5f};
    double want[3] = {p1, p2, p3};
    for (int t = 1; t <= 3; t++) {
        adam_step(&pf, &g[t - 1], &m, &v, 1, 0.1, 0.9, 0.999, 1e-8, t);
        /* fp32 rounding of (1-b1), (1-b2) and the bias corrections costs a few ulp (~1e-6
           relative); a wrong term in the update would be off by >1e-3 */
        EXPECT_NEAR("adam p", pf, want[t - 1], 0, 2e-6);
    }
    /* the linear schedule: 3e-4 until step 25k, 3e-5 from 75k, linear between */
    EXPECT(adam_lr_linear(3e-4, 3e-5, 25000, 75000, 0) == 3e-4);
    EXPECT(adam_lr_linear(3e-4, 3e-5, 25000, 75000, 25000) == 3e-4);
    EXPECT_NEAR("lr mid", adam_lr_linear(3e-4, 3e-5, 25000, 75000, 50000), 1.65e-4, 1e-15, 0);
    EXPECT(adam_lr_linear(3e-4, 3e-5, 25000, 75000, 75000) == 3e-5);
    EXPECT(adam_lr_linear(3e-4, 3e-5, 25000, 75000, 1000000) == 3e-5);
    /* polyak */
    float tgt[2] = {1.0f, -1.0f}, src[2] = {3.0f, 1.0f};
    polyak_update(tgt, src, 2, 0.25);
    EXPECT(fabsf(tgt[0] - 1.5f) < 1e-7f && fabsf(tgt[1] + 0.5f) < 1e-7f);
}

int main(void) {
    RUN_TEST(test_mlp_mish);
    RUN_TEST(test_mlp_gelu);
    RUN_TEST(test_mlp_relu);
    RUN_TEST(test_mlp_single_layer);
    RUN_TEST(test_mish_single_exp);
    RUN_TEST(test_blob_layout);
    RUN_TEST(test_init_statistics);
    RUN_TEST(test_adam_hand_computed);
    return flame_test_report();
}
