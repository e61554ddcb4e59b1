/*
 * flow_math.h: the small formulas of the Q-reweighted objective and the exact entropy estimator,
 * shared verbatim by the CPU reference and the CUDA kernels (FLAME_HD = __host__ __device__ under
 * nvcc), so both backends evaluate the same expressions.
 *
 * Conventions (per action coordinate, t the flow time of the batch row):
 *   reference:  x = t a + (1 - t) eps0 (data at t = 1); candidates a-hat = (x - (1 - t) e) / t with
 *               e ~ N(0, 1) truncated to [(x - t) / (1 - t), (x + t) / (1 - t)], i.e. a-hat in [-1, 1];
 *   consistent: x = (1 - t) a + t s eps0 (noise of std s at t = 1); a-hat = (x - t s e) / (1 - t)
 *               with e truncated to [(x - (1 - t)) / (t s), (x + (1 - t)) / (t s)].
 *
 * defines: flow_noisy_action flow_posterior_bounds flow_candidate flow_logdet_lu
 */
#ifndef FLAME_FLOW_MATH_H
#define FLAME_FLOW_MATH_H

#include <math.h>

#include "flame/rng.h" /* FLAME_HD */

/* The noisy action x of one coordinate (before any clipping). */
FLAME_HD static inline float flow_noisy_action(float a, float eps0, float t, float sd0,
                                               int consistent) {
    return consistent ? (1.0f - t) * a + t * (sd0 * eps0) : t * a + (1.0f - t) * eps0;
}

/* Bounds of the standard-normal draw e that keep the candidate inside [-1, 1]. */
FLAME_HD static inline void flow_posterior_bounds(double x, double t, double sd0, int consistent,
                                                  double *lo, double *hi) {
    if (consistent) {
        *lo = (x - (1.0 - t)) / (t * sd0);
        *hi = (x + (1.0 - t)) / (t * sd0);
    } else {
        *lo = (x - t) / (1.0 - t);
        *hi = (x + t) / (1.0 - t);
    }
}

/* The candidate action a-hat from x, t and the draw e. The reference convention evaluates
   (1/t) x - ((1-t)/t) e with the reference code's float operations, which for small t (a 1/t of
   hundreds) rounds differently from (x - (1-t) e) / t by up to ~1e-4. */
FLAME_HD static inline float flow_candidate(float x, float t, float e, float sd0, int consistent) {
    return consistent ? (x - t * sd0 * e) / (1.0f - t) : (1.0f / t) * x - ((1.0f - t) / t) * e;
}

/* log|det(A)| of a row-major n x n matrix by LU with partial pivoting (A is overwritten). */
FLAME_HD static inline double flow_logdet_lu(double *A, int n) {
    double ld = 0;
    for (int k = 0; k < n; k++) {
        int piv = k;
        for (int i = k + 1; i < n; i++) {
            if (fabs(A[i * n + k]) > fabs(A[piv * n + k])) {
                piv = i;
            }
        }
        if (piv != k) {
            for (int j = 0; j < n; j++) {
                double tmp = A[k * n + j];
                A[k * n + j] = A[piv * n + j];
                A[piv * n + j] = tmp;
            }
        }
        double p = A[k * n + k];
        if (p == 0) {
            return -INFINITY;
        }
        ld += log(fabs(p));
        for (int i = k + 1; i < n; i++) {
            double f = A[i * n + k] / p;
            for (int j = k + 1; j < n; j++) {
                A[i * n + j] -= f * A[k * n + j];
            }
        }
    }
    return ld;
}

#endif
