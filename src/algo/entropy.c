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

void entropy_estimate(const AgentLayout *L, const float *P, const FlameConfig *cfg, const float *s,
                      const float *z, const float *probes, const float *a_star, int rows,
                      FlowWork *w, float *scratch, float *H) {
    int D = L->act_dim, NP = cfg->entropy.probes, est = cfg->entropy.estimator;
    int N = cfg->entropy.steps;
    double sd = cfg->entropy.base_std;
    float *zk = scratch, *tan = zk + (size_t)rows * D, *rr = tan + (size_t)rows * D;
    float *tt = rr + rows, *ones = tt + rows, *tr = ones + rows;
    float *J = tr + rows;
    for (int i = 0; i < rows; i++) {
        ones[i] = 1.0f;
        tr[i] = 0.0f;
    }
    const float *du;

    if (est == ENT_EXACT) {
        /* a = z - u(z, 0, 1); log p(a) = log N(z; 0, sd^2) - log|det(I - J)| */
        for (size_t i = 0; i < (size_t)rows * D; i++) {
            zk[i] = (float)(sd * z[i]);
        }
        for (int i = 0; i < rows; i++) {
            rr[i] = 0.0f;
            tt[i] = 1.0f;
        }
        for (int d = 0; d < D; d++) {
            memset(tan, 0, (size_t)rows * D * sizeof(float));
            for (int i = 0; i < rows; i++) {
                tan[(size_t)i * D + d] = 1.0f;
            }
            flow_jvp(L, P, s, zk, rr, tt, tan, NULL, rows, w, &du);
            for (int i = 0; i < rows; i++) {
                for (int k = 0; k < D; k++) {
                    J[(size_t)i * D * D + (size_t)k * D + d] = du[(size_t)i * D + k]; /* column d */
                }
            }
        }
        double A[64 * 64];
        FLAME_CHECK(D <= 64, "exact entropy supports act_dim <= 64 (got %d)", D);
        for (int i = 0; i < rows; i++) {
            double lognz = 0;
            for (int k = 0; k < D; k++) {
                double x = zk[(size_t)i * D + k];
                lognz += -0.5 * x * x / (sd * sd);
                for (int j = 0; j < D; j++) {
                    A[k * D + j] = (k == j) - (double)J[(size_t)i * D * D + (size_t)k * D + j];
                }
            }
            lognz -= D * log(sd) + 0.5 * D * log(2.0 * M_PI);
            H[i] = (float)-(lognz - logdet_lu(A, D));
        }
        return;
    }

    if (est == ENT_BIASED1) {
        for (size_t i = 0; i < (size_t)rows * D; i++) {
            zk[i] = (float)(sd * z[i]);
        }
        for (int i = 0; i < rows; i++) {
            rr[i] = 0.0f;
            tt[i] = 1.0f;
        }
        for (int p = 0; p < NP; p++) {
            for (int i = 0; i < rows; i++) {
                memcpy(tan + (size_t)i * D, probes + ((size_t)i * NP + p) * D, D * sizeof(float));
            }
            flow_jvp(L, P, s, zk, rr, tt, tan, NULL, rows, w, &du);
            for (int i = 0; i < rows; i++) {
                double q = 0;
                for (int k = 0; k < D; k++) {
                    q += (double)tan[(size_t)i * D + k] * du[(size_t)i * D + k];
                }
                tr[i] += (float)(q / NP);
            }
        }
        for (int i = 0; i < rows; i++) {
            H[i] = (float)(base_entropy(D, sd) - tr[i]);
        }
        return;
    }

    if (est == ENT_ODE) {
        /* reverse Euler from a* at t_j = 1 - j/N: f <- f - v(f, t_j)/N, trace += eps^T J eps / N */
        FLAME_CHECK(a_star != NULL, "the ode estimator needs the action a*");
        memcpy(zk, a_star, (size_t)rows * D * sizeof(float));
        for (int j = 0; j < N; j++) {
            float tj = (float)(1.0 - (double)j / N);
            for (int i = 0; i < rows; i++) {
                tt[i] = tj;
            }
            float *fnext = NULL;
            for (int p = 0; p < NP; p++) {
                for (int i = 0; i < rows; i++) {
                    memcpy(tan + (size_t)i * D, probes + ((size_t)i * NP + p) * D,
                           D * sizeof(float));
                }
                const float *v = flow_jvp(L, P, s, zk, NULL, tt, tan, NULL, rows, w, &du);
                for (int i = 0; i < rows; i++) {
                    double q = 0;
                    for (int k = 0; k < D; k++) {
                        q += (double)tan[(size_t)i * D + k] * du[(size_t)i * D + k];
                    }
                    tr[i] += (float)(q / N / NP);
                }
                if (p == NP - 1) {
                    fnext = (float *)v; /* owned by the cache until the next pass */
                }
            }
            for (size_t i = 0; i < (size_t)rows * D; i++) {
                zk[i] -= fnext[i] / (float)N;
            }
        }
        for (int i = 0; i < rows; i++) {
            double lp = 0;
            for (int k = 0; k < D; k++) {
                double f = zk[(size_t)i * D + k];
                lp += -0.5 * f * f / (sd * sd);
            }
            lp -= D * log(sd) + 0.5 * D * log(2.0 * M_PI);
            H[i] = (float)-(lp - tr[i]);
        }
        return;
    }

    /* reference3 / decoupled: N MeanFlow steps from the base, (r_k, t_k) = (1-(k+1)/N, 1-k/N) */
    int consistent = est == ENT_DECOUPLED;
    double h = consistent ? 1.0 / N : 1.0;
    double clip = cfg->entropy.trace_clip;
    for (size_t i = 0; i < (size_t)rows * D; i++) {
        zk[i] = (float)(sd * z[i]);
    }
    for (int k = 0; k < N; k++) {
        float rk = (float)(1.0 - (double)(k + 1) / N), tk = (float)(1.0 - (double)k / N);
        for (int i = 0; i < rows; i++) {
            rr[i] = rk;
            tt[i] = tk;
        }
        const float *u = NULL;
        for (int p = 0; p < NP; p++) {
            for (int i = 0; i < rows; i++) {
                memcpy(tan + (size_t)i * D, probes + ((size_t)i * NP + p) * D, D * sizeof(float));
            }
            u = flow_jvp(L, P, s, zk, rr, tt, tan, NULL, rows, w, &du);
            for (int i = 0; i < rows; i++) {
                double q = 0;
                for (int d = 0; d < D; d++) {
                    q += (double)tan[(size_t)i * D + d] * du[(size_t)i * D + d];
                }
                q *= h;
                if (!consistent) {
                    q = q > clip ? clip : (q < -clip ? -clip : q);
                }
                tr[i] += (float)(q / NP);
            }
        }
        for (size_t i = 0; i < (size_t)rows * D; i++) {
            zk[i] -= (float)(h * u[i]);
        }
    }
    for (int i = 0; i < rows; i++) {
        H[i] = (float)(base_entropy(D, sd) - tr[i]);
    }
}
