/*
 * entropy.h: entropy estimators of flow policies at a batch of states (CPU reference).
 *
 *   reference3  the reference code's decoupled estimator (§8.2): N steps of z <- z - u(z, r_k, t_k)
 *               from N(0, base_std^2 I), traces eps^T J eps clipped to +-trace_clip, no (t-r) factor
 *   decoupled   the consistent version (§8.3): z <- z - h u, trace h eps^T J eps, h = 1/N
 *   biased1     one-step first-order estimate H0 - eps^T J eps with J = du(z,0,1)/dz (§8.1)
 *   exact       one-step log-density: log N(z; 0, s^2 I) - log|det(I - J)|, J from D JVPs and an
 *               LU of the D x D matrix; H = -log p(a) at a = z - u(z, 0, 1)
 *   ode         FLAME-R (§8.4): reverse Euler from a* over N steps with traces eps^T J_v eps / N;
 *               H = -(log N(f; 0, s^2 I) - sum)
 * H0 = D/2 (1 + ln 2 pi) + D ln base_std is the base entropy. Probes are averaged when P > 1.
 *
 * defines: entropy_scratch_floats entropy_estimate logdet_lu
 */
#ifndef FLAME_ENTROPY_H
#define FLAME_ENTROPY_H

#include "flame/config.h"
#include "flame/flow.h"

/* Floats of scratch entropy_estimate needs for `rows` rows. */
size_t entropy_scratch_floats(const AgentLayout *L, int rows);

/* H per row. z: rows x D standard normals (scaled by entropy.base_std inside); probes: rows x P x D;
   a_star: rows x D (ode only, else NULL). w must hold `rows` rows. */
void entropy_estimate(const AgentLayout *L, const float *P, const FlameConfig *cfg, const float *s,
                      const float *z, const float *probes, const float *a_star, int rows,
                      FlowWork *w, float *scratch, float *H);

/* log|det(A)| of a row-major n x n matrix by LU with partial pivoting (A is overwritten). */
double logdet_lu(double *A, int n);

#endif
