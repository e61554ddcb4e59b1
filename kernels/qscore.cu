/*
 * qscore.cu: fused twin-critic scoring on tensor cores (backend.scoring=fused): min(Q1, Q2) of
 * candidate rows [s, a-hat] whose actions are generated in the kernel (Q-reweighting: the
 * truncated-normal draws of flow_math.h addressed as on the CPU) or read from memory (best-of-N
 * particles, scored as sampled, unclipped), without the input rows ever going to global memory.
 *
 * The critic's first layer splits into a state part and an action part: z0 = (W_s s + b0) +
 * W_a a. The state part is the same for all K candidates (Np particles) of a state and is
 * computed once per state (qs_proj_kernel, fp32); the kernel computes W_a a on the tensor cores and
 * adds it, so the widest input of any layer the kernel multiplies is the hidden width (a Humanoid
 * critic's 365-wide input costs one 17-wide product per row instead of 365).
 *
 * qscore_kernel: a block scores QS_BM = 128 rows with both critics in turn. The block's
 * activations (128 x 256 fp32) stay in shared memory from layer to layer; weights stream through
 * a double-buffered 32-wide k-chunk (cp.async); 8 warps as 2 x 4 each own a 64 x 64 output tile
 * (mma.sync m16n8k8 TF32, 4 x 8 fragments, 128 accumulators per thread). Fragment loads are
 * conflict-free: activation and weight rows are padded to a stride of 4 mod 32 floats. The last
 * layer (width 1) is a dot product in fp32 by two threads per row; the twin minimum is taken
 * before anything leaves the block.
 *   precision fp32: 3xTF32 (a = hi + lo, each rounded to TF32; hi*hi + hi*lo + lo*hi, the lo*lo
 *                   term dropped): about fp32 accuracy, three tensor-core products per product;
 *   precision tf32: one TF32 product (inputs rounded to 10-bit mantissas, fp32 accumulation).
 * Needs every hidden width <= 256, act_dim <= 32 and up to 221 KiB of shared memory (sm_90; the
 * opt-in limit of sm_80 is smaller, and there the staged path runs).
 */
#include "backend_impl.cuh"
#include "flame/flow_math.h"

#define QS_BM 128
#define QS_THREADS 256
#define QS_H 256           /* widest hidden layer */
#define QS_LDX (QS_H + 4)  /* activation row stride, 4 mod 32 */
#define QS_KC 32           /* k-chunk of staged weights */
#define QS_LDW (QS_KC + 4) /* staged weight row stride, 4 mod 32 */
#define QS_DMAX 32         /* widest action */

typedef struct {
    const float *P[2];
    int n_layers, act, S, D, H;
    int w_off[MLP_MAX_LAYERS], b_off[MLP_MAX_LAYERS];
    const float *proj; /* 2 x nst x H: W_s s + b0 per state and critic */
    int nst;           /* states of proj */
    int rows, per;     /* rows; state of row g = g / per */
    int lda0;          /* row stride of the action tile */
    /* actions: generated (gen) from x, t and the truncated-normal draws, or read from a */
    int gen;
    const float *a;
    const float *x, *t;
    uint64_t seed;
    const DevScalars *sc;
    int consistent;
    float sd0;
    float *eps_out;        /* gen: the draws, rows x D (NULL: not written) */
    float *q1, *q2, *qmin; /* outputs (NULL: not written) */
} QsArgs;

/* ------------------------------------------------------------------ tensor-core helpers */
__device__ __forceinline__ uint32_t qs_tf32(float x) {
    uint32_t r;
    asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(x));
    return r;
}

__device__ __forceinline__ void qs_mma(float (&d)[4], const uint32_t (&a)[4],
                                       const uint32_t (&b)[2]) {
    asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, "
                 "{%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

/* x = hi + lo with both in TF32 (lo = 0 without the split) */
template <bool SPLIT3>
__device__ __forceinline__ void qs_split(float x, uint32_t &hi, uint32_t &lo) {
    hi = qs_tf32(x);
    lo = SPLIT3 ? qs_tf32(x - __uint_as_float(hi)) : 0u;
}

__device__ __forceinline__ void qs_cp4(float *dst, const float *src, bool valid) {
    unsigned d = (unsigned)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(d), "l"(src),
                 "r"(valid ? 4 : 0));
}

__device__ __forceinline__ void qs_cp16(float *dst, const float *src, bool valid) {
    unsigned d = (unsigned)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(d), "l"(src),
                 "r"(valid ? 16 : 0));
}

__device__ __forceinline__ void qs_commit() {
    asm volatile("cp.async.commit_group;\n" ::);
}

template <int N> __device__ __forceinline__ void qs_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

/* Stages k-chunk c of W (rows n < Np of N, columns k < K, row stride wld) into Wb[n][kk]: zero
   beyond N and K. vec: 16-byte copies (wld and K multiples of 4, W 16-byte aligned). */
__device__ __forceinline__ void qs_stage(float *Wb, const float *__restrict__ W, int wld, int K,
                                         int N, int Np, int c, bool vec) {
    const int k0 = c * QS_KC;
    if (vec) {
        for (int idx = threadIdx.x; idx < Np * (QS_KC / 4); idx += QS_THREADS) {
            int n = idx / (QS_KC / 4), kk = 4 * (idx % (QS_KC / 4)), k = k0 + kk;
            bool valid = n < N && k < K;
            qs_cp16(Wb + n * QS_LDW + kk, valid ? W + (size_t)n * wld + k : W, valid);
        }
    } else {
        for (int idx = threadIdx.x; idx < Np * QS_KC; idx += QS_THREADS) {
            int n = idx / QS_KC, kk = idx % QS_KC, k = k0 + kk;
            bool valid = n < N && k < K;
            qs_cp4(Wb + n * QS_LDW + kk, valid ? W + (size_t)n * wld + k : W, valid);
        }
    }
    qs_commit();
}

/*
 * acc = A (QS_BM x K, stride lda, shared) x W^T (W: N x K, global, stride wld) for the warp's
 * 64 x 64 tile of the QS_BM x N output. All threads of the block call it (it stages and syncs).
 */
template <bool SPLIT3>
__device__ void qs_gemm(float (&acc)[4][8][4], const float *A, int lda, const float *__restrict__ W,
                        int wld, int K, int N, float *Wb, bool vec) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int g = lane >> 2, t = lane & 3, wm = warp & 1, wn = warp >> 1;
    const int Np = (N + 7) / 8 * 8, kp = (K + 7) / 8 * 8, nch = (kp + QS_KC - 1) / QS_KC;
#pragma unroll
    for (int mi = 0; mi < 4; mi++) {
#pragma unroll
        for (int nj = 0; nj < 8; nj++) {
#pragma unroll
            for (int q = 0; q < 4; q++) {
                acc[mi][nj][q] = 0.0f;
            }
        }
    }
    qs_stage(Wb, W, wld, K, N, Np, 0, vec);
    for (int c = 0; c < nch; c++) {
        float *buf = Wb + (c & 1) * QS_H * QS_LDW;
        if (c + 1 < nch) {
            qs_stage(Wb + ((c + 1) & 1) * QS_H * QS_LDW, W, wld, K, N, Np, c + 1, vec);
            qs_wait<1>();
        } else {
            qs_wait<0>();
        }
        __syncthreads();
        const int ksteps = (kp - c * QS_KC < QS_KC ? kp - c * QS_KC : QS_KC) / 8;
        for (int ks = 0; ks < ksteps; ks++) {
            const int k = c * QS_KC + ks * 8, kk = ks * 8;
            uint32_t ah[4][4], al[4][4];
#pragma unroll
            for (int mi = 0; mi < 4; mi++) {
                const float *ar = A + (64 * wm + 16 * mi + g) * lda + k + t;
                qs_split<SPLIT3>(ar[0], ah[mi][0], al[mi][0]);
                qs_split<SPLIT3>(ar[8 * lda], ah[mi][1], al[mi][1]);
                qs_split<SPLIT3>(ar[4], ah[mi][2], al[mi][2]);
                qs_split<SPLIT3>(ar[8 * lda + 4], ah[mi][3], al[mi][3]);
            }
#pragma unroll
            for (int nj = 0; nj < 8; nj++) {
                const int n0 = 64 * wn + 8 * nj;
                if (n0 >= Np) {
                    continue; /* warp-uniform */
                }
                const float *br = buf + (n0 + g) * QS_LDW + kk + t;
                uint32_t bh[2], bl[2];
                qs_split<SPLIT3>(br[0], bh[0], bl[0]);
                qs_split<SPLIT3>(br[4], bh[1], bl[1]);
#pragma unroll
                for (int mi = 0; mi < 4; mi++) {
                    if (SPLIT3) {
                        const uint32_t a_lo[4] = {al[mi][0], al[mi][1], al[mi][2], al[mi][3]};
                        qs_mma(acc[mi][nj], a_lo, bh);
                        qs_mma(acc[mi][nj], ah[mi], bl);
                    }
                    qs_mma(acc[mi][nj], ah[mi], bh);
                }
            }
        }
        __syncthreads(); /* buf is restaged at iteration c + 1 */
    }
}

/* Hidden-layer epilogue: X[row][col] = act(acc + add) for the warp's tile, add = bias[col] or the
   state projection of the row; columns in [N, Np) are zero. Callers sync before (X may be the
   layer's input) and after. */
__device__ void qs_store(const float (&acc)[4][8][4], float *X, int N, int act,
                         const float *__restrict__ bias, const float *__restrict__ proj, int H,
                         int g0, int rows, int per) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int g = lane >> 2, t = lane & 3, wm = warp & 1, wn = warp >> 1;
    const int Np = (N + 7) / 8 * 8;
#pragma unroll
    for (int mi = 0; mi < 4; mi++) {
#pragma unroll
        for (int q = 0; q < 4; q++) {
            const int row = 64 * wm + 16 * mi + g + 8 * (q >> 1), grow = g0 + row;
            const float *pr = (proj && grow < rows) ? proj + (size_t)(grow / per) * H : NULL;
#pragma unroll
            for (int nj = 0; nj < 8; nj++) {
                const int col = 64 * wn + 8 * nj + 2 * t + (q & 1);
                if (col >= Np) {
                    continue;
                }
                float v = 0.0f;
                if (col < N) {
                    float z = acc[mi][nj][q] + (proj ? (pr ? pr[col] : 0.0f) : bias[col]);
                    v = act_forward(act, z);
                }
                X[row * QS_LDX + col] = v;
            }
        }
    }
}

template <bool SPLIT3> __global__ void __launch_bounds__(QS_THREADS, 1) qscore_kernel(QsArgs a) {
    extern __shared__ __align__(16) float qs_smem[];
    float *X = qs_smem;
    float *Wb = X + QS_BM * QS_LDX;
    float *A0 = Wb + 2 * QS_H * QS_LDW;
    float *qv = A0 + QS_BM * a.lda0;
    const int tid = threadIdx.x, g0 = blockIdx.x * QS_BM, D = a.D, H = a.H;

    /* the block's actions: a-hat from the draws (written once, for the later stages) or given */
    const uint32_t step = a.gen ? (uint32_t)a.sc->n : 0u;
    for (int idx = tid; idx < QS_BM * a.lda0; idx += QS_THREADS) {
        int r = idx / a.lda0, d = idx % a.lda0, row = g0 + r;
        float v = 0.0f;
        if (d < D && row < a.rows) {
            int i = row / a.per, k = row % a.per;
            if (a.gen) {
                float xv = a.x[(size_t)i * D + d], tv = a.t[i];
                double lo, hi;
                flow_posterior_bounds(xv, tv, a.sd0, a.consistent, &lo, &hi);
                float e = (float)rng_trunc_normal(a.seed, RNG_STREAM_TRUNC, step, (uint32_t)i,
                                                  (uint32_t)(k * D + d), lo, hi);
                if (a.eps_out) {
                    a.eps_out[(size_t)row * D + d] = e;
                }
                v = flow_candidate(xv, tv, e, a.sd0, a.consistent);
            } else {
                v = a.a[(size_t)row * D + d];
            }
        }
        A0[idx] = v;
    }
    __syncthreads();

    const int L = a.n_layers;
    for (int net = 0; net < 2; net++) {
        const float *P = a.P[net];
        float acc[4][8][4];
        /* layer 0: W_a a on the tensor cores, plus the state projection */
        const int din0 = a.S + D;
        qs_gemm<SPLIT3>(acc, A0, a.lda0, P + a.w_off[0] + a.S, din0, D, H, Wb, false);
        qs_store(acc, X, H, a.act, NULL, a.proj + (size_t)net * a.nst * H, H, g0, a.rows, a.per);
        __syncthreads();
        /* hidden layers */
        for (int l = 1; l + 1 < L; l++) {
            bool vec = (H % 4) == 0;
            qs_gemm<SPLIT3>(acc, X, QS_LDX, P + a.w_off[l], H, H, H, Wb, vec);
            qs_store(acc, X, H, a.act, P + a.b_off[l], NULL, H, g0, a.rows, a.per);
            __syncthreads();
        }
        /* output layer (width 1): two threads per row, halves of the sum added in fixed order */
        {
            const float *w = P + a.w_off[L - 1];
            const int r = tid >> 1, h = tid & 1, half = (H + 1) / 2;
            const int n0 = h * half, n1 = h ? H : half;
            float s = 0.0f;
            for (int n = n0; n < n1; n++) {
                s = fmaf(X[r * QS_LDX + n], __ldg(w + n), s);
            }
            float o = __shfl_xor_sync(0xffffffffu, s, 1);
            if (h == 0) {
                qv[net * QS_BM + r] = (s + o) + P[a.b_off[L - 1]];
            }
        }
        __syncthreads(); /* the next critic's layer-0 epilogue overwrites X */
    }
    for (int r = tid; r < QS_BM; r += QS_THREADS) {
        int row = g0 + r;
        if (row < a.rows) {
            float q1 = qv[r], q2 = qv[QS_BM + r];
            if (a.q1) {
                a.q1[row] = q1;
            }
            if (a.q2) {
                a.q2[row] = q2;
            }
            if (a.qmin) {
                a.qmin[row] = q1 < q2 ? q1 : q2;
            }
        }
    }
}

/* proj[(net ns + i) H + n] = b0[n] + sum_{k < S} W0[n][k] s_i[k], s_i = s + i * s_ld */
__global__ void qs_proj_kernel(const float *P1, const float *P2, int w0, int b0, int S, int din,
                               int H, const float *s, int s_ld, int ns, float *proj) {
    long long n = 2LL * ns * H;
    for (long long idx = blockIdx.x * (long long)blockDim.x + threadIdx.x; idx < n;
         idx += (long long)gridDim.x * blockDim.x) {
        int j = (int)(idx % H);
        long long ni = idx / H;
        int i = (int)(ni % ns), net = (int)(ni / ns);
        const float *P = net ? P2 : P1;
        const float *w = P + w0 + (size_t)j * din, *x = s + (size_t)i * s_ld;
        float acc = 0.0f;
        for (int k = 0; k < S; k++) {
            acc = fmaf(__ldg(w + k), __ldg(x + k), acc);
        }
        proj[idx] = acc + P[b0 + j];
    }
}

/* ------------------------------------------------------------------ host */
static size_t qs_smem_bytes(int D) {
    int lda0 = (D + 7) / 8 * 8 + 4;
    return ((size_t)QS_BM * QS_LDX + (size_t)2 * QS_H * QS_LDW + (size_t)QS_BM * lda0 + 2 * QS_BM) *
           sizeof(float);
}

void cuda_qscore_init(const DCtx *ctx) {
    CUDA_CHECK(cudaFuncSetAttribute(qscore_kernel<true>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize, ctx->smem_optin));
    CUDA_CHECK(cudaFuncSetAttribute(qscore_kernel<false>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize, ctx->smem_optin));
}

bool cuda_qscore_ok(const Backend *b) {
    const Mlp *q = &b->L.q;
    if (!b->scoring_fused || q->n_layers < 2 || q->dims[q->n_layers] != 1 || b->D > QS_DMAX) {
        return false;
    }
    for (int l = 1; l < q->n_layers; l++) {
        if (q->dims[l] != q->dims[1] || q->dims[l] > QS_H) {
            return false;
        }
    }
    return qs_smem_bytes(b->D) <= (size_t)b->ctx.smem_optin;
}

/* the state projection of ns states (state i at s + i * s_ld) for both online critics */
static void qs_project(Backend *b, const float *P1, const float *P2, const float *s, int s_ld,
                       int ns) {
    const Mlp *q = &b->L.q;
    int H = q->dims[1];
    FLAME_CHECK(ns <= b->pcap, "scoring projection holds %d states, asked for %d", b->pcap, ns);
    long long n = 2LL * ns * H;
    long long grid = (n + 255) / 256;
    qs_proj_kernel<<<(int)(grid > 65535 ? 65535 : grid), 256, 0, b->ctx.stream>>>(
        P1, P2, (int)q->w_off[0], (int)q->b_off[0], b->S, q->dims[0], H, s, s_ld, ns, b->qproj);
    CUDA_CHECK_LAUNCH();
}

static void qs_launch(Backend *b, QsArgs *a) {
    const Mlp *q = &b->L.q;
    a->n_layers = q->n_layers;
    a->act = q->act;
    a->S = b->S;
    a->D = b->D;
    a->H = q->dims[1];
    for (int l = 0; l < q->n_layers; l++) {
        a->w_off[l] = (int)q->w_off[l];
        a->b_off[l] = (int)q->b_off[l];
    }
    a->proj = b->qproj;
    a->lda0 = (b->D + 7) / 8 * 8 + 4;
    size_t smem = qs_smem_bytes(b->D);
    int grid = cdiv(a->rows, QS_BM);
    if (b->ctx.tf32) {
        qscore_kernel<false><<<grid, QS_THREADS, smem, b->ctx.stream>>>(*a);
    } else {
        qscore_kernel<true><<<grid, QS_THREADS, smem, b->ctx.stream>>>(*a);
    }
    CUDA_CHECK_LAUNCH();
}

bool cuda_qweight_score(Backend *b, bool consistent, float sd0) {
    if (!cuda_qscore_ok(b)) {
        return false;
    }
    const float *P1 = blob_params(b->q1, b->nq), *P2 = blob_params(b->q2, b->nq);
    qs_project(b, P1, P2, b->obs, b->S, b->B);
    QsArgs a;
    memset(&a, 0, sizeof a);
    a.P[0] = P1;
    a.P[1] = P2;
    a.nst = b->B;
    a.rows = b->B * b->K;
    a.per = b->K;
    a.gen = 1;
    a.x = b->x;
    a.t = b->t;
    a.seed = b->seed;
    a.sc = b->sc;
    a.consistent = consistent ? 1 : 0;
    a.sd0 = sd0;
    a.eps_out = b->eps_post;
    a.qmin = b->qc;
    qs_launch(b, &a);
    return true;
}

void cuda_score_twin(Backend *b, const float *P1, const float *P2, DSeg s, const float *a_rows,
                     int rows) {
    int D = b->D, per = s.div > 0 ? s.div : rows;
    int ns = (rows + per - 1) / per;
    /* 3xTF32 costs three products per product: it pays only with at least one full wave of
       blocks (kernels/NOTES.md); TF32 always does */
    bool fills = b->ctx.tf32 || cdiv(rows, QS_BM) >= b->sm_count;
    if (!cuda_qscore_ok(b) || s.div <= 0 || ns > b->pcap || !fills) {
        dcritic_forward2(&b->ctx, &b->L, P1, P2, s, dseg(a_rows, D, D, 1), rows, &b->q1w, &b->q2w,
                         false);
        return;
    }
    qs_project(b, P1, P2, s.p, s.ld, ns);
    QsArgs a;
    memset(&a, 0, sizeof a);
    a.P[0] = P1;
    a.P[1] = P2;
    a.nst = ns;
    a.rows = rows;
    a.per = per;
    a.a = a_rows;
    a.q1 = b->q1w.c.z[b->L.q.n_layers - 1]; /* where dq_out reads them */
    a.q2 = b->q2w.c.z[b->L.q.n_layers - 1];
    qs_launch(b, &a);
}
