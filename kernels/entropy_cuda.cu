/*
 * entropy_cuda.cu: the entropy estimators on the device, the twin of src/algo/entropy.c
 * (reference3, decoupled, biased1, exact, ode): the same steps, probes, clipping and float/double
 * arithmetic per row; the JVPs go through the device flow (fused kernel or cuBLAS layers).
 * Draws: base z at (ENT_Z, n, row, d), probes at (ENT_PROBE, n, row, p*D + d) or Rademacher signs
 * from (ENT_PROBE_SIGN, n, row, p*D + d), as noise_fill_philox() addresses them.
 * The exact estimator's D x D log-determinant is the CPU's LU with partial pivoting, in double,
 * one thread per row.
 *
 * backend.entropy=fused (reference3, decoupled; sm_90): one cluster kernel runs every step and
 * probe (ent_fused_kernel): rows are independent, so a cluster keeps its 16 rows' state z_k,
 * probes and traces in shared memory across the steps, computes the step's time features itself
 * (constant over the rows) and runs each JVP on the cluster engine (cmlp.cuh) with the output
 * gathered to every block, which then updates its copy of z_k and the traces identically.
 */
#include "backend_impl.cuh"
#include "cmlp.cuh"
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

/* probe entry (row i, column col = p D + d): Rademacher sign or standard normal */
__device__ __forceinline__ float ent_probe(uint64_t seed, uint32_t step, int i, uint32_t col,
                                           int rademacher) {
    if (rademacher) {
        uint32_t w = rng_u32(seed, RNG_STREAM_ENT_PROBE_SIGN, step, (uint32_t)i, col);
        return (w & 1u) ? 1.0f : -1.0f;
    }
    return rng_normal(seed, RNG_STREAM_ENT_PROBE, step, (uint32_t)i, col);
}

__global__ void probe_kernel(float *tan, int B, int D, int p, int rademacher, uint64_t seed,
                             const DevScalars *sc) {
    uint32_t step = (uint32_t)sc->n;
    long long n = (long long)B * D;
    GRID_LOOP(idx, n) {
        int i = (int)(idx / D), d = (int)(idx % D);
        tan[idx] = ent_probe(seed, step, i, (uint32_t)(p * D + d), rademacher);
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

/* ---------------------------------------------------------------- fused reference3, decoupled */
typedef struct {
    CmNet trunk;
    const float *P; /* the policy blob (time MLPs) */
    TNet tr, tt;
    int has_tr;
    const float *s;
    int S, D, T, B, N, NP, rademacher, consistent;
    uint64_t seed;
    const DevScalars *sc;
    double sd, h, clip, base;
    float *H;
} EntArgs;

/* floats after the engine's buffers: z_k, probe, u (CM_TR x D each), traces, g_r, g_t, scratch */
static size_t ent_extra_floats(int D) {
    return (size_t)3 * CM_TR * D + CM_TR + 2 * TMLP_MAX + 4 * TMLP_MAX;
}

__global__ void __launch_bounds__(CM_THREADS) ent_fused_kernel(EntArgs a, int ld) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 900
    __trap();
#else
    extern __shared__ __align__(16) float cm_smem[];
    CmState s;
    float *ex = cm_setup(s, cm_smem, ld, true);
    const int D = a.D, S = a.S, T = a.T, tid = threadIdx.x;
    float *zk = ex, *pr = zk + CM_TR * D, *uu = pr + CM_TR * D, *trc = uu + CM_TR * D;
    float *gr = trc + CM_TR, *gt = gr + TMLP_MAX, *tsh = gt + TMLP_MAX;
    const int r0 = (int)(blockIdx.x / CM_RANKS) * CM_TR;
    const uint32_t step = (uint32_t)a.sc->n;
    const int in0 = a.trunk.dims[0], inp = cm_rupd(in0, 32), tcol = S + D + (a.has_tr ? T : 0);
    for (int idx = tid; idx < CM_TR * D; idx += CM_THREADS) {
        int r = idx / D, d = idx % D, i = r0 + r;
        zk[idx] = i < a.B ? (float)(a.sd * rng_normal(a.seed, RNG_STREAM_ENT_Z, step, (uint32_t)i,
                                                      (uint32_t)d))
                          : 0.0f;
    }
    if (tid < CM_TR) {
        trc[tid] = 0.0f;
    }
    for (int k = 0; k < a.N; k++) {
        /* the step's time features, the same for every row: warp 0 */
        float rk = (float)(1.0 - (double)(k + 1) / a.N), tk = (float)(1.0 - (double)k / a.N);
        if (tid < 32) {
            if (a.has_tr) {
                tmlp_warp(a.P, a.tr, rk, 1.0f, false, tsh, gr, NULL, NULL, NULL, NULL);
            }
            tmlp_warp(a.P, a.tt, tk, 1.0f, false, tsh, gt, NULL, NULL, NULL, NULL);
        }
        __syncthreads();
        for (int p = 0; p < a.NP; p++) {
            for (int idx = tid; idx < CM_TR * D; idx += CM_THREADS) {
                int r = idx / D, d = idx % D, i = r0 + r;
                pr[idx] = i < a.B ? ent_probe(a.seed, step, i, (uint32_t)(p * D + d), a.rademacher)
                                  : 0.0f;
            }
            __syncthreads();
            /* input [s, z_k, g_r, g_t], tangent [0, probe, 0, 0] */
            for (int idx = tid; idx < CM_TR * inp; idx += CM_THREADS) {
                int r = idx / inp, c = idx % inp, i = r0 + r;
                float v = 0.0f, tv = 0.0f;
                if (i < a.B && c < in0) {
                    if (c < S) {
                        v = a.s[(size_t)i * S + c];
                    } else if (c < S + D) {
                        v = zk[r * D + c - S];
                        tv = pr[r * D + c - S];
                    } else if (c < tcol) {
                        v = gr[c - S - D];
                    } else {
                        v = gt[c - tcol];
                    }
                }
                s.X[r * ld + c] = v;
                s.T[r * ld + c] = tv;
            }
            __syncthreads();
            cm_forward<CM_JVP>(s, a.trunk, r0, a.B, NULL, NULL, NULL, NULL, true);
            /* X = u, T = du (every column, every rank): traces and the step's u */
            if (tid < CM_TR) {
                double q = 0;
                for (int d = 0; d < D; d++) {
                    q += (double)pr[tid * D + d] * s.T[tid * ld + d];
                }
                q *= a.h;
                if (!a.consistent) {
                    q = q > a.clip ? a.clip : (q < -a.clip ? -a.clip : q);
                }
                trc[tid] += (float)(q / a.NP);
            }
            if (p == a.NP - 1) {
                for (int idx = tid; idx < CM_TR * D; idx += CM_THREADS) {
                    uu[idx] = s.X[(idx / D) * ld + idx % D];
                }
            }
            __syncthreads();
        }
        for (int idx = tid; idx < CM_TR * D; idx += CM_THREADS) {
            zk[idx] -= (float)(a.h * uu[idx]);
        }
        __syncthreads();
    }
    if (s.rank == 0 && tid < CM_TR && r0 + tid < a.B) {
        a.H[r0 + tid] = (float)(a.base - trc[tid]);
    }
    cm_finish();
#endif
}

void cuda_entropy_init(const DCtx *ctx) {
    CUDA_CHECK(cudaFuncSetAttribute(ent_fused_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    ctx->smem_optin));
}

/* the fused estimator's launch, or false when it does not apply to this configuration */
static bool entropy_fused(Backend *b, const float *P, const float *s, float *H, double base) {
    const FlameConfig *cfg = b->base.cfg;
    const AgentLayout *L = &b->L;
    int est = cfg->entropy.estimator;
    bool applies = est == ENT_REFERENCE3 || est == ENT_DECOUPLED;
    if (!b->entropy_fused || !b->ctx.has_clusters || !applies || !tnet_ok(L) ||
        !cm_widths_ok(&L->pol_trunk)) {
        return false;
    }
    int ld = cm_pass_ld(&L->pol_trunk, true);
    size_t smem = cm_smem_floats(ld, true, ent_extra_floats(b->D)) * sizeof(float);
    if (smem > (size_t)b->ctx.smem_optin) {
        return false;
    }
    EntArgs a;
    memset(&a, 0, sizeof a);
    a.trunk = cm_net(&L->pol_trunk, P);
    a.P = P;
    a.has_tr = L->has_tr;
    if (L->has_tr) {
        a.tr = tnet_of(&L->pol_tr);
    }
    a.tt = tnet_of(&L->pol_tt);
    a.s = s;
    a.S = b->S;
    a.D = b->D;
    a.T = L->time_dim;
    a.B = b->B;
    a.N = cfg->entropy.steps;
    a.NP = cfg->entropy.probes;
    a.rademacher = cfg->entropy.probe == PROBE_RADEMACHER;
    a.consistent = est == ENT_DECOUPLED;
    a.seed = b->seed;
    a.sc = b->sc;
    a.sd = cfg->entropy.base_std;
    a.h = a.consistent ? 1.0 / a.N : 1.0;
    a.clip = cfg->entropy.trace_clip;
    a.base = base;
    a.H = H;
    cm_launch(&b->ctx, ent_fused_kernel, b->B, 1, smem, a, ld);
    return true;
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
    if (entropy_fused(b, P, s, H, base)) {
        return;
    }

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
