/*
 * entropy_cuda.cu: the entropy estimators on the device, the twin of src/algo/entropy.c
 * (reference3, decoupled, biased1, exact, ode): the same steps, probes, clipping and float/double
 * arithmetic per row; the JVPs go through the device flow (fused kernel or cuBLAS layers).
 * Draws: base z at (ENT_Z, n, row, d), probes at (ENT_PROBE, n, row, p*D + d) or Rademacher signs
 * from (ENT_PROBE_SIGN, n, row, p*D + d), as noise_fill_philox() addresses them.
 * The exact estimator's D x D log-determinant is the CPU's LU with partial pivoting, in double,
 * one thread per row.
 */
#include "backend_impl.cuh"
#include "flame/flow_math.h"


static int egrid(long long n) {
    long long g = (n + 255) / 256;
    return (int)(g < 1 ? 1 : (g > 65535 ? 65535 : g));
}

#define GRID_LOOP(idx, n)                                                                          \
    for (long long idx = blockIdx.x * (long long)blockDim.x + threadIdx.x; idx < (n);              \
         idx += (long long)gridDim.x * blockDim.x)

/* zk = (float)(sd * z) with z the base draws; trace = 0 */
__global__ void ent_init_kernel(float *zk, float *tr, int B, int D, double sd, uint64_t seed,
                                const DevScalars *sc) {
    uint32_t step = (uint32_t)sc->n;
    long long n = (long long)B * D;
    GRID_LOOP(idx, n) {
        int i = (int)(idx / D), d = (int)(idx % D);
        float z = rng_normal(seed, RNG_STREAM_ENT_Z, step, (uint32_t)i, (uint32_t)d);
        zk[idx] = (float)(sd * z);
        if (d == 0) {
            tr[i] = 0.0f;
        }
    }
}

__global__ void probe_kernel(float *tan, int B, int D, int p, int rademacher, uint64_t seed,
                             const DevScalars *sc) {
    uint32_t step = (uint32_t)sc->n;
    long long n = (long long)B * D;
    GRID_LOOP(idx, n) {
        int i = (int)(idx / D), d = (int)(idx % D);
        uint32_t col = (uint32_t)(p * D + d);
        if (rademacher) {
            uint32_t w = rng_u32(seed, RNG_STREAM_ENT_PROBE_SIGN, step, (uint32_t)i, col);
            tan[idx] = (w & 1u) ? 1.0f : -1.0f;
        } else {
            tan[idx] = rng_normal(seed, RNG_STREAM_ENT_PROBE, step, (uint32_t)i, col);
        }
    }
}

__global__ void unit_tangent_kernel(float *tan, int B, int D, int dsel) {
    long long n = (long long)B * D;
    GRID_LOOP(idx, n) {
        tan[idx] = (int)(idx % D) == dsel ? 1.0f : 0.0f;
    }
}

/* q = sum_d tan du (double); q *= h; clipped to +-clip when clip >= 0; tr += (float)(q / d1 / d2) */
__global__ void trace_kernel(const float *tan, const float *du, int B, int D, double h, double clip,
                             double d1, double d2, float *tr) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= B) {
        return;
    }
    double q = 0;
    for (int d = 0; d < D; d++) {
        q += (double)tan[(size_t)i * D + d] * du[(size_t)i * D + d];
    }
    q *= h;
    if (clip >= 0) {
        q = q > clip ? clip : (q < -clip ? -clip : q);
    }
    tr[i] += (float)(q / d1 / d2);
}

/* decoupled steps: zk -= (float)(h u); ode: zk -= u / (float)N */
__global__ void ent_step_kernel(float *zk, const float *u, long long n, double h, int ode, float fN) {
    GRID_LOOP(i, n) {
        if (ode) {
            zk[i] -= u[i] / fN;
        } else {
            zk[i] -= (float)(h * u[i]);
        }
    }
}

__global__ void ent_base_kernel(const float *tr, int B, double base, float *H) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < B) {
        H[i] = (float)(base - tr[i]);
    }
}

__global__ void ent_ode_final_kernel(const float *zk, const float *tr, int B, int D, double sd,
                                     double l2pi, float *H) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= B) {
        return;
    }
    double lp = 0;
    for (int k = 0; k < D; k++) {
        double f = zk[(size_t)i * D + k];
        lp += -0.5 * f * f / (sd * sd);
    }
    lp -= D * log(sd) + 0.5 * D * l2pi;
    H[i] = (float)-(lp - tr[i]);
}

/* column dsel of J (B x D x D): J[i][k][dsel] = du[i][k] */
__global__ void jac_col_kernel(const float *du, int B, int D, int dsel, float *J) {
    long long n = (long long)B * D;
    GRID_LOOP(idx, n) {
        int i = (int)(idx / D), k = (int)(idx % D);
        J[(size_t)i * D * D + (size_t)k * D + dsel] = du[idx];
    }
}


__global__ void ent_exact_final_kernel(const float *zk, const float *J, double *Awork, int B, int D,
                                       double sd, double l2pi, float *H) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= B) {
        return;
    }
    double *A = Awork + (size_t)i * D * D;
    double lognz = 0;
    for (int k = 0; k < D; k++) {
        double x = zk[(size_t)i * D + k];
        lognz += -0.5 * x * x / (sd * sd);
        for (int j = 0; j < D; j++) {
            A[k * D + j] = (k == j) - (double)J[(size_t)i * D * D + (size_t)k * D + j];
        }
    }
    lognz -= D * log(sd) + 0.5 * D * l2pi;
    H[i] = (float)-(lognz - flow_logdet_lu(A, D));
}

void cuda_entropy_estimate(Backend *b, const float *P, const float *s, const float *a_star,
                           float *H) {
    const FlameConfig *cfg = b->base.cfg;
    const AgentLayout *L = &b->L;
    int B = b->B, D = b->D, S = b->S, NP = cfg->entropy.probes, est = cfg->entropy.estimator;
    int N = cfg->entropy.steps;
    double sd = cfg->entropy.base_std;
    int rad = cfg->entropy.probe == PROBE_RADEMACHER;
    cudaStream_t st = b->ctx.stream;
    long long n = (long long)B * D;
    DSeg ss = dseg(s, S, S, 1), zs = dseg(b->ez, D, D, 1), ts = dseg(b->etan, D, D, 1);
    const float *du;
    /* log(2 pi) and the base entropy on the host, with the CPU's libm */
    double l2pi = log(2.0 * 3.14159265358979323846);
    double base = 0.5 * D * (1.0 + l2pi) + D * log(sd);

    ent_init_kernel<<<egrid(n), 256, 0, st>>>(b->ez, b->etr, B, D, sd, b->seed, b->sc);
    CUDA_CHECK_LAUNCH();

    if (est == ENT_EXACT) {
        FLAME_CHECK(D <= 64, "exact entropy supports act_dim <= 64 (got %d)", D);
        for (int d = 0; d < D; d++) {
            unit_tangent_kernel<<<egrid(n), 256, 0, st>>>(b->etan, B, D, d);
            CUDA_CHECK_LAUNCH();
            dflow_jvp(&b->ctx, L, P, ss, zs, dtime_const(0.0f), dtime_const(1.0f), ts, NULL, B,
                      &b->fw, false, &du);
            jac_col_kernel<<<egrid(n), 256, 0, st>>>(du, B, D, d, b->ejac);
            CUDA_CHECK_LAUNCH();
        }
        ent_exact_final_kernel<<<cdiv(B, 64), 64, 0, st>>>(b->ez, b->ejac, b->elu, B, D, sd, l2pi, H);
        CUDA_CHECK_LAUNCH();
        return;
    }

    if (est == ENT_BIASED1) {
        for (int p = 0; p < NP; p++) {
            probe_kernel<<<egrid(n), 256, 0, st>>>(b->etan, B, D, p, rad, b->seed, b->sc);
            CUDA_CHECK_LAUNCH();
            dflow_jvp(&b->ctx, L, P, ss, zs, dtime_const(0.0f), dtime_const(1.0f), ts, NULL, B,
                      &b->fw, false, &du);
            trace_kernel<<<cdiv(B, 128), 128, 0, st>>>(b->etan, du, B, D, 1.0, -1.0, (double)NP,
                                                      1.0, b->etr);
            CUDA_CHECK_LAUNCH();
        }
        ent_base_kernel<<<cdiv(B, 128), 128, 0, st>>>(b->etr, B, base, H);
        CUDA_CHECK_LAUNCH();
        return;
    }

    if (est == ENT_ODE) {
        FLAME_CHECK(a_star != NULL, "the ode estimator needs the action a*");
        CUDA_CHECK(cudaMemcpyAsync(b->ez, a_star, (size_t)n * sizeof(float),
                                   cudaMemcpyDeviceToDevice, st));
        for (int j = 0; j < N; j++) {
            float tj = (float)(1.0 - (double)j / N);
            const float *v = NULL;
            for (int p = 0; p < NP; p++) {
                probe_kernel<<<egrid(n), 256, 0, st>>>(b->etan, B, D, p, rad, b->seed, b->sc);
                CUDA_CHECK_LAUNCH();
                v = dflow_jvp(&b->ctx, L, P, ss, zs, dtime_const(0.0f), dtime_const(tj), ts, NULL,
                              B, &b->fw, false, &du);
                trace_kernel<<<cdiv(B, 128), 128, 0, st>>>(b->etan, du, B, D, 1.0, -1.0,
                                                          (double)N, (double)NP, b->etr);
                CUDA_CHECK_LAUNCH();
            }
            ent_step_kernel<<<egrid(n), 256, 0, st>>>(b->ez, v, n, 1.0, 1, (float)N);
            CUDA_CHECK_LAUNCH();
        }
        ent_ode_final_kernel<<<cdiv(B, 128), 128, 0, st>>>(b->ez, b->etr, B, D, sd, l2pi, H);
        CUDA_CHECK_LAUNCH();
        return;
    }

    /* reference3 / decoupled */
    int consistent = est == ENT_DECOUPLED;
    double h = consistent ? 1.0 / N : 1.0;
    double clip = consistent ? -1.0 : cfg->entropy.trace_clip;
    for (int k = 0; k < N; k++) {
        float rk = (float)(1.0 - (double)(k + 1) / N), tk = (float)(1.0 - (double)k / N);
        const float *u = NULL;
        for (int p = 0; p < NP; p++) {
            probe_kernel<<<egrid(n), 256, 0, st>>>(b->etan, B, D, p, rad, b->seed, b->sc);
            CUDA_CHECK_LAUNCH();
            u = dflow_jvp(&b->ctx, L, P, ss, zs, dtime_const(rk), dtime_const(tk), ts, NULL, B,
                          &b->fw, false, &du);
            trace_kernel<<<cdiv(B, 128), 128, 0, st>>>(b->etan, du, B, D, h, clip, (double)NP, 1.0,
                                                      b->etr);
            CUDA_CHECK_LAUNCH();
        }
        ent_step_kernel<<<egrid(n), 256, 0, st>>>(b->ez, u, n, h, 0, 1.0f);
        CUDA_CHECK_LAUNCH();
    }
    ent_base_kernel<<<cdiv(B, 128), 128, 0, st>>>(b->etr, B, base, H);
    CUDA_CHECK_LAUNCH();
}
