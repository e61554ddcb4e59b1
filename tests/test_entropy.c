/*
 * test_entropy.c: entropy estimators on flows with known densities.
 *
 * The policy network is made exactly affine (identity activations, weights set by hand) so that
 * u(x, r, t | s) = M x + c for every (r, t). Then:
 *   - the one-step policy a = z - u(z, 0, 1) = (I - M) z - c, z ~ N(0, sd^2 I), is Gaussian with a
 *     known density: `exact` must equal -log p(a) per sample (tolerance 1e-4: fp32 network passes);
 *   - the N-step decoupled integration is the map (I - M/N)^N with entropy H0 + N log|det(I - M/N)|;
 *     Hutchinson traces are unbiased for tr(M), so the estimate's mean is H0 - tr(M) for every N and
 *     its error against the exact N-step entropy must shrink as N grows (O(1/N));
 *   - `biased1` has mean H0 - tr(M): its bias against the true one-step entropy
 *     H0 + log|det(I - M)| is the predicted -tr(M) - log det(I - M), clearly non-zero;
 *   - FLAME-R's ODE estimator converges to the density of the ODE flow x' = M x + c as N grows;
 *   - averaged over probes, Gaussian and Rademacher traces are unbiased for tr(M).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "flame/entropy.h"
#include "flame/rng.h"
#include "flame_test.h"

#define D 2
#define S 3
static const double M[D][D] = {{0.5, 0.2}, {-0.1, -0.3}};
static const double C[D] = {0.3, -0.2};

/* identity-activation agent whose trunk computes M x + c */
static void affine_agent(FlameConfig *cfg, AgentState *st, int algo) {
    config_defaults(cfg);
    cfg->algo = algo;
    cfg->net.hidden = 4;
    cfg->net.layers = 1;
    config_resolve(cfg);
    cfg->net.activation = ACT_IDENTITY;
    agent_state_init(st, cfg, S, D);
    const AgentLayout *L = &st->L;
    float *P = st->pol.params;
    memset(P, 0, st->pol.n * sizeof(float));
    const Mlp *t = &L->pol_trunk;
    for (int i = 0; i < D; i++) {
        P[t->w_off[0] + (size_t)i * t->dims[0] + S + i] = 1.0f; /* hidden i = x_i */
    }
    for (int k = 0; k < D; k++) {
        for (int i = 0; i < D; i++) {
            P[t->w_off[1] + (size_t)k * t->dims[1] + i] = (float)M[k][i];
        }
        P[t->b_off[1] + k] = (float)C[k];
    }
}

static double trace_m(void) {
    return M[0][0] + M[1][1];
}

static double det2(double a, double b, double c, double d) {
    return a * d - b * c;
}

/* log|det(I - h M)| */
static double logdet_i_minus(double h) {
    return log(fabs(det2(1 - h * M[0][0], -h * M[0][1], -h * M[1][0], 1 - h * M[1][1])));
}

static double H0(double sd) {
    return 0.5 * D * (1 + log(2 * M_PI)) + D * log(sd);
}

typedef struct {
    FlowWork w;
    float *s, *z, *probes, *scr, *H, *astar;
    int rows;
} Bench;

static void bench_alloc(Bench *b, const AgentLayout *L, int rows, int probes) {
    flow_work_alloc(&b->w, L, rows);
    b->rows = rows;
    b->s = calloc((size_t)rows * S, sizeof(float));
    b->z = malloc(sizeof(float) * (size_t)rows * D);
    b->astar = malloc(sizeof(float) * (size_t)rows * D);
    b->probes = malloc(sizeof(float) * (size_t)rows * probes * D);
    b->scr = malloc(sizeof(float) * entropy_scratch_floats(L, rows));
    b->H = malloc(sizeof(float) * (size_t)rows);
    for (int i = 0; i < rows * S; i++) {
        b->s[i] = rng_normal(3, RNG_STREAM_TEST, 0, 0, (uint32_t)i); /* ignored by the net */
    }
    for (int i = 0; i < rows * D; i++) {
        b->z[i] = rng_normal(3, RNG_STREAM_TEST, 1, 0, (uint32_t)i);
    }
}

static void fill_probes(Bench *b, int probes, int rademacher, uint32_t step) {
    for (int i = 0; i < b->rows * probes * D; i++) {
        if (rademacher) {
            b->probes[i] = (rng_u32(4, RNG_STREAM_TEST, step, 0, (uint32_t)i) & 1) ? 1.0f : -1.0f;
        } else {
            b->probes[i] = rng_normal(4, RNG_STREAM_TEST, step, 0, (uint32_t)i);
        }
    }
}

static void bench_free(Bench *b) {
    flow_work_free(&b->w);
    free(b->s), free(b->z), free(b->probes), free(b->scr), free(b->H), free(b->astar);
}

static void mean_se(const float *x, int n, double *mean, double *se) {
    double s = 0, s2 = 0;
    for (int i = 0; i < n; i++) {
        s += x[i];
        s2 += (double)x[i] * x[i];
    }
    *mean = s / n;
    *se = sqrt(fmax(s2 / n - (*mean) * (*mean), 0) / n);
}

FLAME_TEST(test_exact_matches_density) {
    FlameConfig cfg;
    AgentState st;
    affine_agent(&cfg, &st, ALGO_FLAME_M);
    cfg.entropy.estimator = ENT_EXACT;
    cfg.entropy.base_std = 0.5;
    int rows = 64;
    Bench b;
    bench_alloc(&b, &st.L, rows, 1);
    entropy_estimate(&st.L, st.pol.params, &cfg, b.s, b.z, b.probes, NULL, rows, &b.w, b.scr, b.H);
    /* independent reference: a ~ N(-c, sd^2 A A^T), A = I - M; -log p(a) from the covariance */
    double sd = 0.5, A[2][2] = {{1 - M[0][0], -M[0][1]}, {-M[1][0], 1 - M[1][1]}};
    double Sg[2][2];
    for (int i = 0; i < 2; i++) {
        for (int j = 0; j < 2; j++) {
            Sg[i][j] = sd * sd * (A[i][0] * A[j][0] + A[i][1] * A[j][1]);
        }
    }
    double det = det2(Sg[0][0], Sg[0][1], Sg[1][0], Sg[1][1]);
    double inv[2][2] = {{Sg[1][1] / det, -Sg[0][1] / det}, {-Sg[1][0] / det, Sg[0][0] / det}};
    float ref[64];
    for (int i = 0; i < rows; i++) {
        double z0 = sd * b.z[2 * i], z1 = sd * b.z[2 * i + 1];
        double a0 = A[0][0] * z0 + A[0][1] * z1 - C[0], a1 = A[1][0] * z0 + A[1][1] * z1 - C[1];
        double d0 = a0 + C[0], d1 = a1 + C[1];
        double q = d0 * (inv[0][0] * d0 + inv[0][1] * d1) + d1 * (inv[1][0] * d0 + inv[1][1] * d1);
        ref[i] = (float)(0.5 * q + 0.5 * log(4 * M_PI * M_PI * det));
    }
    EXPECT_CLOSE("exact -log p(a)", b.H, ref, rows, 1e-4, 0);
    bench_free(&b);
    agent_state_free(&st);
}

FLAME_TEST(test_decoupled_converges) {
    FlameConfig cfg;
    AgentState st;
    affine_agent(&cfg, &st, ALGO_FLAME_M);
    cfg.entropy.estimator = ENT_DECOUPLED;
    cfg.entropy.base_std = 0.5;
    cfg.entropy.probes = 4;
    int rows = 4096, Ns[6] = {1, 2, 4, 8, 16, 32};
    Bench b;
    bench_alloc(&b, &st.L, rows, 4);
    double prev = INFINITY, first = 0;
    for (int k = 0; k < 6; k++) {
        cfg.entropy.steps = Ns[k];
        fill_probes(&b, 4, 1, (uint32_t)k);
        entropy_estimate(&st.L, st.pol.params, &cfg, b.s, b.z, b.probes, NULL, rows, &b.w, b.scr,
                         b.H);
        double mean, se;
        mean_se(b.H, rows, &mean, &se);
        double exact_n = H0(0.5) + Ns[k] * logdet_i_minus(1.0 / Ns[k]);
        double err = fabs(mean - exact_n);
        printf("       decoupled N=%2d: estimate %.5f (se %.1e), exact N-step entropy %.5f, "
               "|error| %.5f, limit H0 - tr M = %.5f\n",
               Ns[k], mean, se, exact_n, err, H0(0.5) - trace_m());
        /* the estimate is unbiased for H0 - tr M at every N */
        EXPECT_MSG(fabs(mean - (H0(0.5) - trace_m())) <= 5 * se + 1e-5, "N=%d mean %.6f", Ns[k],
                   mean);
        EXPECT_MSG(err < prev + 5 * se, "N=%d: error %.5f did not shrink (%.5f)", Ns[k], err, prev);
        if (k == 0) {
            first = err;
        }
        prev = err;
    }
    EXPECT_MSG(prev < first / 16 + 5e-3, "error at N=32 (%.5f) vs N=1 (%.5f)", prev, first);
    bench_free(&b);
    agent_state_free(&st);
}

FLAME_TEST(test_biased1_shows_bias) {
    FlameConfig cfg;
    AgentState st;
    affine_agent(&cfg, &st, ALGO_FLAME_M);
    cfg.entropy.estimator = ENT_BIASED1;
    cfg.entropy.base_std = 1.0;
    cfg.entropy.probes = 1;
    int rows = 8192;
    Bench b;
    bench_alloc(&b, &st.L, rows, 1);
    fill_probes(&b, 1, 0, 7);
    entropy_estimate(&st.L, st.pol.params, &cfg, b.s, b.z, b.probes, NULL, rows, &b.w, b.scr, b.H);
    double mean, se;
    mean_se(b.H, rows, &mean, &se);
    double truth = H0(1.0) + logdet_i_minus(1.0);
    double predicted_bias = -trace_m() - logdet_i_minus(1.0);
    printf("       biased1: estimate %.4f (se %.1e), true one-step entropy %.4f, bias %.4f, "
           "predicted %.4f\n",
           mean, se, truth, mean - truth, predicted_bias);
    EXPECT(fabs(mean - truth) > 10 * se);
    EXPECT(fabs((mean - truth) - predicted_bias) <= 5 * se);
    bench_free(&b);
    agent_state_free(&st);
}

FLAME_TEST(test_hutchinson_unbiased) {
    /* biased1's per-sample value is H0 - eps^T J eps, so H0 - mean(H) estimates tr(M) */
    FlameConfig cfg;
    AgentState st;
    affine_agent(&cfg, &st, ALGO_FLAME_M);
    cfg.entropy.estimator = ENT_BIASED1;
    cfg.entropy.base_std = 1.0;
    int rows = 8192;
    for (int rad = 0; rad < 2; rad++) {
        for (int np = 1; np <= 8; np *= 8) {
            cfg.entropy.probes = np;
            Bench b;
            bench_alloc(&b, &st.L, rows, np);
            fill_probes(&b, np, rad, 11 + (uint32_t)np);
            entropy_estimate(&st.L, st.pol.params, &cfg, b.s, b.z, b.probes, NULL, rows, &b.w,
                             b.scr, b.H);
            double mean, se;
            mean_se(b.H, rows, &mean, &se);
            double tr = H0(1.0) - mean;
            printf("       %s probes x%d: trace %.5f (se %.1e), tr M = %.5f\n",
                   rad ? "rademacher" : "gaussian", np, tr, se, trace_m());
            EXPECT(fabs(tr - trace_m()) <= 5 * se + 1e-6);
            bench_free(&b);
        }
    }
    agent_state_free(&st);
}

/* 2x2 matrix exponential by scaling and squaring of a Taylor series (double) */
static void expm2(const double A[2][2], double E[2][2]) {
    double X[2][2] = {{A[0][0] / 1024, A[0][1] / 1024}, {A[1][0] / 1024, A[1][1] / 1024}};
    double T[2][2] = {{1, 0}, {0, 1}}, P[2][2] = {{1, 0}, {0, 1}};
    for (int k = 1; k < 20; k++) {
        double Q[2][2];
        for (int i = 0; i < 2; i++) {
            for (int j = 0; j < 2; j++) {
                Q[i][j] = (P[i][0] * X[0][j] + P[i][1] * X[1][j]) / k;
            }
        }
        memcpy(P, Q, sizeof P);
        for (int i = 0; i < 2; i++) {
            for (int j = 0; j < 2; j++) {
                T[i][j] += P[i][j];
            }
        }
    }
    for (int s = 0; s < 10; s++) {
        double Q[2][2];
        for (int i = 0; i < 2; i++) {
            for (int j = 0; j < 2; j++) {
                Q[i][j] = T[i][0] * T[0][j] + T[i][1] * T[1][j];
            }
        }
        memcpy(T, Q, sizeof T);
    }
    memcpy(E, T, sizeof T);
}

FLAME_TEST(test_ode_converges) {
    /* FLAME-R: v(x, t) = M x + c. The ODE flow x(1) = e^M x0 + (e^M - I) M^-1 c has
       log p(a) = log N(x0; 0, I) - tr M with x0 = e^-M (a - (e^M - I) M^-1 c). */
    FlameConfig cfg;
    AgentState st;
    affine_agent(&cfg, &st, ALGO_FLAME_R);
    cfg.entropy.estimator = ENT_ODE;
    cfg.entropy.base_std = 1.0;
    cfg.entropy.probes = 1;
    int rows = 16;
    Bench b;
    bench_alloc(&b, &st.L, rows, 1);
    fill_probes(&b, 1, 0, 21);
    double E[2][2], Ei[2][2], mM[2][2] = {{-M[0][0], -M[0][1]}, {-M[1][0], -M[1][1]}};
    expm2(M, E);
    expm2(mM, Ei);
    double dm = det2(M[0][0], M[0][1], M[1][0], M[1][1]);
    double Mi[2][2] = {{M[1][1] / dm, -M[0][1] / dm}, {-M[1][0] / dm, M[0][0] / dm}};
    double EmI[2][2] = {{E[0][0] - 1, E[0][1]}, {E[1][0], E[1][1] - 1}};
    double shift[2];
    for (int i = 0; i < 2; i++) {
        double v0 = Mi[0][0] * C[0] + Mi[0][1] * C[1], v1 = Mi[1][0] * C[0] + Mi[1][1] * C[1];
        shift[i] = EmI[i][0] * v0 + EmI[i][1] * v1;
    }
    float ref[16];
    for (int i = 0; i < rows; i++) {
        double a0 = 0.5 * b.z[2 * i], a1 = 0.5 * b.z[2 * i + 1]; /* actions inside the box */
        b.astar[2 * i] = (float)a0;
        b.astar[2 * i + 1] = (float)a1;
        double d0 = a0 - shift[0], d1 = a1 - shift[1];
        double x0 = Ei[0][0] * d0 + Ei[0][1] * d1, x1 = Ei[1][0] * d0 + Ei[1][1] * d1;
        double logp = -0.5 * (x0 * x0 + x1 * x1) - log(2 * M_PI) - trace_m();
        ref[i] = (float)-logp;
    }
    cfg.entropy.probes = 256;
    Bench b2;
    bench_alloc(&b2, &st.L, rows, 256);
    memcpy(b2.astar, b.astar, sizeof(float) * rows * D);
    fill_probes(&b2, 256, 1, 22);
    /* the probes are shared by all steps and J is constant, so the trace part of the estimate is
       exactly mean_p(eps_p^T M eps_p) for every N: put that same probe value into the reference,
       leaving only the Euler discretisation error, which must shrink with N */
    for (int i = 0; i < rows; i++) {
        double tr = 0;
        for (int p = 0; p < 256; p++) {
            const float *e = b2.probes + ((size_t)i * 256 + p) * D;
            tr += e[0] * (M[0][0] * e[0] + M[0][1] * e[1]) + e[1] * (M[1][0] * e[0] + M[1][1] * e[1]);
        }
        ref[i] += (float)(tr / 256 - trace_m());
    }
    double prev = INFINITY;
    int Ns[4] = {5, 20, 80, 320};
    for (int k = 0; k < 4; k++) {
        cfg.entropy.steps = Ns[k];
        entropy_estimate(&st.L, st.pol.params, &cfg, b2.s, b2.z, b2.probes, b2.astar, rows, &b2.w,
                         b2.scr, b2.H);
        double err = 0;
        for (int i = 0; i < rows; i++) {
            err = fmax(err, fabs(b2.H[i] - ref[i]));
        }
        printf("       ode N=%3d: max |H - (-log p)| = %.5f\n", Ns[k], err);
        EXPECT_MSG(err < prev, "N=%d error %.5f did not shrink", Ns[k], err);
        prev = err;
    }
    /* first-order Euler: the error at N = 320 is a few 1e-3 at most */
    EXPECT(prev < 5e-3);
    bench_free(&b);
    bench_free(&b2);
    agent_state_free(&st);
}

FLAME_TEST(test_logdet_lu) {
    double A[9] = {2, 1, 0, 1, 3, 1, 0, 1, 4}; /* det = 2(12-1) - 1(4-0) = 18 */
    EXPECT_NEAR("logdet", logdet_lu(A, 3), log(18.0), 1e-12, 0);
    double B[4] = {0, 1, 1, 0}; /* needs pivoting, det = -1 */
    EXPECT_NEAR("logdet pivot", logdet_lu(B, 2), 0.0, 1e-15, 0);
}

int main(void) {
    RUN_TEST(test_exact_matches_density);
    RUN_TEST(test_decoupled_converges);
    RUN_TEST(test_biased1_shows_bias);
    RUN_TEST(test_hutchinson_unbiased);
    RUN_TEST(test_ode_converges);
    RUN_TEST(test_logdet_lu);
    return flame_test_report();
}
