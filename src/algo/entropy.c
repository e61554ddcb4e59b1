/* entropy.c: entropy estimators of flow policies (see include/flame/entropy.h). */
#include "flame/entropy.h"

#include <math.h>
#include <string.h>

#include "flame/check.h"
#include "flame/flow_math.h"

size_t entropy_scratch_floats(const AgentLayout *L, int rows) {
    size_t D = (size_t)L->act_dim;
    /* z, tangent, r, t, ones, trace, J (D x D per row) */
    return (size_t)rows * (2 * D + 4 + D * D);
}

double logdet_lu(double *A, int n) {
    return flow_logdet_lu(A, n);
}

static double base_entropy(int D, double sd) {
    return 0.5 * D * (1.0 + log(2.0 * M_PI)) + D * log(sd);
}

/* scratch of entropy_estimate (entropy_scratch_floats): rows x D, rows x D, 4 x rows, rows x D x D
 */
typedef struct {
    float *zk;      /* (rows, D) the flow's state */
    float *tan;     /* (rows, D) the tangent of a JVP */
    float *rr, *tt; /* (rows) the times (r, t) */
    float *tr;      /* (rows) accumulated traces */
    float *J;       /* (rows, D, D) Jacobians (exact only) */
} EntScratch;

static EntScratch ent_scratch(float *scratch, int rows, int D) {
    EntScratch e;
    e.zk = scratch;
    e.tan = e.zk + (size_t)rows * D;
    e.rr = e.tan + (size_t)rows * D;
    e.tt = e.rr + rows;
    e.tr = e.tt + 2 * (size_t)rows; /* a unit row sits between (t, trace) */
    e.J = e.tr + rows;
    for (int i = 0; i < rows; i++) {
        e.tr[i] = 0.0f;
    }
    return e;
}

/* zk = sd z: the base draw at the base noise scale */
static void scale_base(float *zk, const float *z, double sd, size_t n) {
    for (size_t i = 0; i < n; i++) {
        zk[i] = (float)(sd * z[i]);
    }
}

/* (r, t) of every row; rr may be NULL (no r) */
static void set_times(float *rr, float *tt, int rows, float r, float t) {
    for (int i = 0; i < rows; i++) {
        if (rr) {
            rr[i] = r;
        }
        tt[i] = t;
    }
}

/* probe p of every row (probes: rows x NP x D) into tan */
static void load_probe(float *tan, const float *probes, int rows, int NP, int p, int D) {
    for (int i = 0; i < rows; i++) {
        memcpy(tan + (size_t)i * D, probes + ((size_t)i * NP + p) * D, D * sizeof(float));
    }
}

/* eps^T J eps of row i: the tangent against the JVP's output tangent */
static double probe_dot(const float *tan, const float *du, int i, int D) {
    double q = 0;
    for (int k = 0; k < D; k++) {
        q += (double)tan[(size_t)i * D + k] * du[(size_t)i * D + k];
    }
    return q;
}

/* log N(x; 0, sd^2 I) of one row of D values */
static double log_normal(const float *x, int D, double sd) {
    double lp = 0;
    for (int k = 0; k < D; k++) {
        double v = x[k];
        lp += -0.5 * v * v / (sd * sd);
    }
    return lp - (D * log(sd) + 0.5 * D * log(2.0 * M_PI));
}

/* exact: a = z - u(z, 0, 1); log p(a) = log N(z; 0, sd^2) - log|det(I - J)|, J column by column */
static void entropy_exact(const AgentLayout *L, const float *P, double sd, const float *s,
                          const float *z, int rows, FlowWork *w, EntScratch *e, float *H) {
    const int D = L->act_dim;
    const float *du;
    scale_base(e->zk, z, sd, (size_t)rows * D);
    set_times(e->rr, e->tt, rows, 0.0f, 1.0f);
    for (int d = 0; d < D; d++) {
        memset(e->tan, 0, (size_t)rows * D * sizeof(float));
        for (int i = 0; i < rows; i++) {
            e->tan[(size_t)i * D + d] = 1.0f;
        }
        flow_jvp(L, P, s, e->zk, e->rr, e->tt, e->tan, NULL, rows, w, &du);
        for (int i = 0; i < rows; i++) {
            for (int k = 0; k < D; k++) {
                e->J[(size_t)i * D * D + (size_t)k * D + d] = du[(size_t)i * D + k]; /* column d */
            }
        }
    }
    double A[64 * 64];
    FLAME_CHECK(D <= 64, "exact entropy supports act_dim <= 64 (got %d)", D);
    for (int i = 0; i < rows; i++) {
        for (int k = 0; k < D; k++) {
            for (int j = 0; j < D; j++) {
                A[k * D + j] = (k == j) - (double)e->J[(size_t)i * D * D + (size_t)k * D + j];
            }
        }
        double lognz = log_normal(e->zk + (size_t)i * D, D, sd);
        H[i] = (float)-(lognz - logdet_lu(A, D));
    }
}

/* biased1: H0 - eps^T J eps with J = du(z, 0, 1)/dz, averaged over the probes */
static void entropy_biased1(const AgentLayout *L, const float *P, double sd, int NP, const float *s,
                            const float *z, const float *probes, int rows, FlowWork *w,
                            EntScratch *e, float *H) {
    const int D = L->act_dim;
    const float *du;
    scale_base(e->zk, z, sd, (size_t)rows * D);
    set_times(e->rr, e->tt, rows, 0.0f, 1.0f);
    for (int p = 0; p < NP; p++) {
        load_probe(e->tan, probes, rows, NP, p, D);
        flow_jvp(L, P, s, e->zk, e->rr, e->tt, e->tan, NULL, rows, w, &du);
        for (int i = 0; i < rows; i++) {
            e->tr[i] += (float)(probe_dot(e->tan, du, i, D) / NP);
        }
    }
    for (int i = 0; i < rows; i++) {
        H[i] = (float)(base_entropy(D, sd) - e->tr[i]);
    }
}

/* ode: reverse Euler from a* at t_j = 1 - j/N: f <- f - v(f, t_j)/N, trace += eps^T J eps / N */
static void entropy_ode(const AgentLayout *L, const float *P, double sd, int NP, int N,
                        const float *s, const float *probes, const float *a_star, int rows,
                        FlowWork *w, EntScratch *e, float *H) {
    const int D = L->act_dim;
    const float *du;
    FLAME_CHECK(a_star != NULL, "the ode estimator needs the action a*");
    memcpy(e->zk, a_star, (size_t)rows * D * sizeof(float));
    for (int j = 0; j < N; j++) {
        set_times(NULL, e->tt, rows, 0.0f, (float)(1.0 - (double)j / N));
        float *fnext = NULL;
        for (int p = 0; p < NP; p++) {
            load_probe(e->tan, probes, rows, NP, p, D);
            const float *v = flow_jvp(L, P, s, e->zk, NULL, e->tt, e->tan, NULL, rows, w, &du);
            for (int i = 0; i < rows; i++) {
                e->tr[i] += (float)(probe_dot(e->tan, du, i, D) / N / NP);
            }
            if (p == NP - 1) {
                fnext = (float *)v; /* owned by the cache until the next pass */
            }
        }
        for (size_t i = 0; i < (size_t)rows * D; i++) {
            e->zk[i] -= fnext[i] / (float)N;
        }
    }
    for (int i = 0; i < rows; i++) {
        H[i] = (float)-(log_normal(e->zk + (size_t)i * D, D, sd) - e->tr[i]);
    }
}

/* reference3 / decoupled: N MeanFlow steps from the base, (r_k, t_k) = (1-(k+1)/N, 1-k/N); the
   reference clips each trace and omits the step size, the consistent version scales by h = 1/N */
static void entropy_meanflow(const AgentLayout *L, const float *P, const FlameConfig *cfg,
                             const float *s, const float *z, const float *probes, int rows,
                             FlowWork *w, EntScratch *e, float *H) {
    const int D = L->act_dim, NP = cfg->entropy.probes, N = cfg->entropy.steps;
    const double sd = cfg->entropy.base_std, clip = cfg->entropy.trace_clip;
    const int consistent = cfg->entropy.estimator == ENT_DECOUPLED;
    const double h = consistent ? 1.0 / N : 1.0;
    const float *du;
    scale_base(e->zk, z, sd, (size_t)rows * D);
    for (int k = 0; k < N; k++) {
        set_times(e->rr, e->tt, rows, (float)(1.0 - (double)(k + 1) / N),
                  (float)(1.0 - (double)k / N));
        const float *u = NULL;
        for (int p = 0; p < NP; p++) {
            load_probe(e->tan, probes, rows, NP, p, D);
            u = flow_jvp(L, P, s, e->zk, e->rr, e->tt, e->tan, NULL, rows, w, &du);
            for (int i = 0; i < rows; i++) {
                double q = probe_dot(e->tan, du, i, D) * h;
                if (!consistent) {
                    q = q > clip ? clip : (q < -clip ? -clip : q);
                }
                e->tr[i] += (float)(q / NP);
            }
        }
        for (size_t i = 0; i < (size_t)rows * D; i++) {
            e->zk[i] -= (float)(h * u[i]);
        }
    }
    for (int i = 0; i < rows; i++) {
        H[i] = (float)(base_entropy(D, sd) - e->tr[i]);
    }
}

void entropy_estimate(const AgentLayout *L, const float *P, const FlameConfig *cfg, const float *s,
                      const float *z, const float *probes, const float *a_star, int rows,
                      FlowWork *w, float *scratch, float *H) {
    EntScratch e = ent_scratch(scratch, rows, L->act_dim);
    const double sd = cfg->entropy.base_std;
    const int NP = cfg->entropy.probes;
    switch (cfg->entropy.estimator) {
        case ENT_EXACT:
            entropy_exact(L, P, sd, s, z, rows, w, &e, H);
            break;
        case ENT_BIASED1:
            entropy_biased1(L, P, sd, NP, s, z, probes, rows, w, &e, H);
            break;
        case ENT_ODE:
            entropy_ode(L, P, sd, NP, cfg->entropy.steps, s, probes, a_star, rows, w, &e, H);
            break;
        default:
            entropy_meanflow(L, P, cfg, s, z, probes, rows, w, &e, H);
    }
}
