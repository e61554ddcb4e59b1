/*
 * cmlp.cuh: the cluster engine for small row counts (sm_90): an MLP pass over a tile of CM_TR
 * rows computed by a cluster of CM_RANKS thread blocks, each block computing 1/CM_RANKS of the
 * columns of every layer, so that a pass of 256 rows fills ~128 SMs instead of the 4-8 blocks of
 * the one-block-per-row-tile kernel (dmlp.cu, fmlp_kernel).
 *
 * Per layer, every block holds the layer's whole input for its CM_TR rows in shared memory (X,
 * and the tangent T for a JVP), stages its slice of the weights (W: its <= CM_CPR output columns
 * x the input width), and computes its output columns: thread (c, g) = (lane, warp) sums the
 * products of column c over the g-th eighth of the input width for all CM_TR rows (float4 reads:
 * the input row is a broadcast, the weight row conflict-free since the row stride is 4 mod 32),
 * the eight partial sums of each output are added in warp order (deterministic), then bias and
 * activation (or, backward, the activation derivative of the cached pre-activation). Each block
 * writes its columns to a slice buffer; after a cluster barrier every block gathers the slices
 * of all ranks through distributed shared memory into its X (T) for the next layer. Only gathered
 * layers write slices, and they alternate the two slice buffers (CmState.phase counts them), so
 * a block never overwrites a slice a peer may still be reading: between two writes of one buffer
 * lies the barrier of the gathered layer in between, which a peer reaches only after finishing
 * its earlier gather. A kernel that uses the engine ends with cm_finish() (the last barrier: no
 * block leaves while a peer may read its shared memory).
 *
 * Modes: CM_FWD (primal), CM_JVP (primal and tangent), CM_BWD (backward row chain: the input is
 * dz of layer l, the weights are staged transposed, the output is dz of layer l-1 = (dz W) *
 * act'(z), or dL/dinput at layer 0). Layer outputs up to CM_RANKS * CM_CPR = 256 columns (a wider
 * input gradient is computed 256 columns at a time); inputs of any width that fits.
 *
 * defines: CM_RANKS CM_TR CM_THREADS CM_CPR CM_MAXW CmNet CmState CmOut cm_net cm_ld
 *          cm_smem_floats cm_setup cm_layer cm_forward cm_finish cm_init cm_widths_ok cm_pass_ok
 *          cm_pass cm_pass_ld cm_launch
 */
#ifndef FLAME_KERNELS_CMLP_CUH
#define FLAME_KERNELS_CMLP_CUH

#include <cooperative_groups.h>

#include "dmlp.cuh"

#define CM_RANKS 8     /* blocks per cluster (the portable maximum) */
#define CM_TR 16       /* rows per cluster tile */
#define CM_THREADS 256 /* 8 warps = 8 input-width groups x 32 columns */
#define CM_CPR 32      /* most output columns per block */
#define CM_MAXW (CM_RANKS * CM_CPR)

enum { CM_FWD = 0, CM_JVP = 1, CM_BWD = 2 };

/* One network on the device: parameters and layout (Mlp offsets as ints). */
typedef struct {
    const float *P;
    int n_layers, act;
    int dims[MLP_MAX_LAYERS + 1];
    int w_off[MLP_MAX_LAYERS], b_off[MLP_MAX_LAYERS];
} CmNet;

static inline CmNet cm_net(const Mlp *m, const float *P) {
    CmNet n;
    memset(&n, 0, sizeof n);
    n.P = P;
    n.n_layers = m->n_layers;
    n.act = m->act;
    for (int l = 0; l <= m->n_layers; l++) {
        n.dims[l] = m->dims[l];
    }
    for (int l = 0; l < m->n_layers; l++) {
        n.w_off[l] = (int)m->w_off[l];
        n.b_off[l] = (int)m->b_off[l];
    }
    return n;
}

/* Global outputs of one layer (NULL: not written); row i of the pass, column j. */
typedef struct {
    float *z; /* pre-activation (FWD/JVP) or the backward output (BWD), rows x width */
    float *x; /* activation (FWD/JVP hidden layers) */
    float *t; /* tangent (JVP) */
    int ld;   /* row stride of all three */
} CmOut;

static inline int cm_rup(int a, int b) {
    return (a + b - 1) / b * b;
}

/* shared-memory row stride for inputs up to `width` columns: a multiple of 32 plus 4 */
static inline int cm_ld(int width) {
    return cm_rup(width, 32) + 4;
}

/* floats of dynamic shared memory of a block: X, T (JVP), W, partial sums (x2 with a tangent),
   two slice buffers of primal and tangent, plus `extra` */
static inline size_t cm_smem_floats(int ld, bool tangent, size_t extra) {
    size_t tile = (size_t)CM_TR * ld;
    size_t part = (size_t)8 * CM_TR * CM_CPR;
    return tile * (tangent ? 2 : 1) + (size_t)CM_CPR * ld + part * (tangent ? 2 : 1) +
           (size_t)2 * 2 * CM_TR * CM_CPR + extra;
}

/* The block's view of the engine's shared memory and its position. */
typedef struct {
    float *X, *T, *W, *part, *tpart, *slice; /* slice: [2 buffers][primal, tangent][TR][CPR] */
    int ld;
    unsigned rank;
    int phase; /* gathered layers so far (selects the slice buffer) */
} CmState;

__device__ __forceinline__ int cm_rupd(int a, int b) {
    return (a + b - 1) / b * b;
}

/* Carves the engine's buffers from dynamic shared memory `sm` (16-byte aligned); returns the
   first float after them. */
__device__ __forceinline__ float *cm_setup(CmState &s, float *sm, int ld, bool tangent) {
    s.ld = ld;
    s.X = sm;
    sm += CM_TR * ld;
    s.T = tangent ? sm : NULL;
    sm += tangent ? CM_TR * ld : 0;
    s.W = sm;
    sm += CM_CPR * ld;
    s.part = sm;
    sm += 8 * CM_TR * CM_CPR;
    s.tpart = tangent ? sm : NULL;
    sm += tangent ? 8 * CM_TR * CM_CPR : 0;
    s.slice = sm;
    sm += 2 * 2 * CM_TR * CM_CPR;
    s.phase = 0;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    s.rank = cooperative_groups::this_cluster().block_rank();
#else
    s.rank = 0;
#endif
    return sm;
}

__device__ __forceinline__ void cm_cluster_sync() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    cooperative_groups::this_cluster().sync();
#else
    __trap();
#endif
}

/* The block's own columns [j0, j0 + nc) of the (at most CM_MAXW) columns [col0, col0 + width)
   of a layer; cpr = columns per rank. */
__device__ __forceinline__ void cm_cols(int width, int col0, unsigned rank, int &j0, int &nc,
                                        int &cpr) {
    cpr = (width + CM_RANKS - 1) / CM_RANKS;
    int off = (int)rank * cpr;
    nc = width - off;
    nc = nc < 0 ? 0 : (nc > cpr ? cpr : nc);
    j0 = col0 + off;
}

/* Zeroes columns [from, rup(from, 32)) of the X (and T) rows: the k-range of the next layer
   reads up to a multiple of 32, and the staged weights there are zero. */
__device__ __forceinline__ void cm_zero_pad(CmState &s, int from) {
    int to = cm_rupd(from, 32);
    for (int idx = threadIdx.x; idx < CM_TR * (to - from); idx += CM_THREADS) {
        int r = idx / (to - from), j = from + idx % (to - from);
        s.X[r * s.ld + j] = 0.0f;
        if (s.T) {
            s.T[r * s.ld + j] = 0.0f;
        }
    }
}

/*
 * One layer. X (T) holds the layer input for the tile (kred columns, zero-padded to a multiple of
 * 32). FWD/JVP: out[r][j] = act(sum_k X[r][k] W[j][k] + b[j]) for the block's columns j of nout;
 * BWD: out[r][k] = sum_n X[r][n] W[n][k] (times act'(zprev[i][k]) when zprev != NULL) for the
 * block's columns k of nout = the layer's input width. The cluster computes the columns
 * [col0, col0 + min(nout - col0, CM_MAXW)). Writes the block's columns to `o` for rows
 * i = r0 + r < rows and to its slice buffer; with `gather` (col0 = 0, nout <= CM_MAXW), then
 * gathers every rank's slice into X (T) so that X holds the whole output (zero-padded).
 */
template <int MODE>
__device__ void cm_layer(CmState &s, const float *__restrict__ W, const float *__restrict__ bias,
                         int kred, int nout, int col0, int wld, int act, bool hidden,
                         const float *__restrict__ zprev, int zld, int r0, int rows, CmOut o,
                         bool gather) {
    constexpr bool JVP = MODE == CM_JVP, BWD = MODE == CM_BWD;
    const int tid = threadIdx.x, lane = tid & 31, g = tid >> 5, ld = s.ld;
    int j0, nc, cpr;
    const int width = nout - col0 < CM_MAXW ? nout - col0 : CM_MAXW;
    cm_cols(width, col0, s.rank, j0, nc, cpr);
    const int kp = cm_rupd(kred, 32), kl = kp / 8;

    /* stage the weight slice: W_s[c][k], k < kp (zero beyond kred and beyond nc) */
    for (int idx = tid; idx < CM_CPR * kp; idx += CM_THREADS) {
        int c, k;
        if (BWD) { /* consecutive threads read consecutive output columns of one W row */
            c = idx % CM_CPR;
            k = idx / CM_CPR;
        } else {
            c = idx / kp;
            k = idx % kp;
        }
        float v = 0.0f;
        if (c < nc && k < kred) {
            v = BWD ? __ldg(W + (size_t)k * wld + j0 + c) : __ldg(W + (size_t)(j0 + c) * wld + k);
        }
        s.W[c * ld + k] = v;
    }
    __syncthreads();

    float acc[CM_TR], tacc[JVP ? CM_TR : 1];
#pragma unroll
    for (int r = 0; r < CM_TR; r++) {
        acc[r] = 0.0f;
        if (JVP) {
            tacc[JVP ? r : 0] = 0.0f;
        }
    }
    if (lane < nc) {
        const float *wr = s.W + lane * ld + g * kl;
        const float *xr = s.X + g * kl;
        const float *tr = JVP ? s.T + g * kl : NULL;
        for (int k = 0; k < kl; k += 4) {
            float4 w = *reinterpret_cast<const float4 *>(wr + k);
#pragma unroll
            for (int r = 0; r < CM_TR; r++) {
                float4 x = *reinterpret_cast<const float4 *>(xr + r * ld + k);
                float a = acc[r];
                a = fmaf(x.x, w.x, a);
                a = fmaf(x.y, w.y, a);
                a = fmaf(x.z, w.z, a);
                a = fmaf(x.w, w.w, a);
                acc[r] = a;
                if (JVP) {
                    float4 t = *reinterpret_cast<const float4 *>(tr + r * ld + k);
                    float b = tacc[JVP ? r : 0];
                    b = fmaf(t.x, w.x, b);
                    b = fmaf(t.y, w.y, b);
                    b = fmaf(t.z, w.z, b);
                    b = fmaf(t.w, w.w, b);
                    tacc[JVP ? r : 0] = b;
                }
            }
        }
    }
#pragma unroll
    for (int r = 0; r < CM_TR; r++) {
        s.part[(g * CM_TR + r) * CM_CPR + lane] = acc[r];
        if (JVP) {
            s.tpart[(g * CM_TR + r) * CM_CPR + lane] = tacc[JVP ? r : 0];
        }
    }
    __syncthreads();

    /* the eight partial sums of each output in warp order, then the epilogue */
    float *sl = s.slice + (s.phase & 1) * 2 * CM_TR * CM_CPR;
    for (int idx = tid; idx < CM_TR * CM_CPR; idx += CM_THREADS) {
        int r = idx / CM_CPR, c = idx % CM_CPR, i = r0 + r, j = j0 + c;
        if (c >= nc) {
            continue;
        }
        float sum = 0.0f, tsum = 0.0f;
#pragma unroll
        for (int q = 0; q < 8; q++) {
            sum += s.part[(q * CM_TR + r) * CM_CPR + c];
            if (JVP) {
                tsum += s.tpart[(q * CM_TR + r) * CM_CPR + c];
            }
        }
        float v, tv = 0.0f;
        bool in = i < rows;
        if (BWD) {
            v = sum;
            if (zprev) {
                float zp = in ? zprev[(size_t)i * zld + j] : 0.0f;
                v = sum * act_derivative(act, zp);
            }
            if (in && o.z) {
                o.z[(size_t)i * o.ld + j] = v;
            }
        } else {
            float z = sum + bias[j];
            v = z;
            if (hidden) {
                v = act_forward(act, z);
                if (JVP) {
                    tv = tsum * act_derivative(act, z);
                }
            } else if (JVP) {
                tv = tsum;
            }
            if (in) {
                if (o.z) {
                    o.z[(size_t)i * o.ld + j] = z;
                }
                if (o.x && hidden) {
                    o.x[(size_t)i * o.ld + j] = v;
                }
                if (JVP && o.t) {
                    o.t[(size_t)i * o.ld + j] = tv;
                }
            }
        }
        if (gather) {
            sl[r * CM_CPR + c] = v;
            if (JVP) {
                sl[CM_TR * CM_CPR + r * CM_CPR + c] = tv;
            }
        }
    }
    if (!gather) {
        return;
    }
    s.phase++;
    /* every rank's slice is complete; gather them (distributed shared memory) */
    cm_cluster_sync();
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    cooperative_groups::cluster_group cl = cooperative_groups::this_cluster();
    const int np = cm_rupd(width, 32);
    for (int idx = tid; idx < CM_TR * np; idx += CM_THREADS) {
        int r = idx / np, j = idx % np;
        float v = 0.0f, tv = 0.0f;
        if (j < width) {
            unsigned q = (unsigned)(j / cpr);
            const float *src = cl.map_shared_rank(sl, q);
            v = src[r * CM_CPR + j - (int)q * cpr];
            if (JVP) {
                tv = src[CM_TR * CM_CPR + r * CM_CPR + j - (int)q * cpr];
            }
        }
        s.X[r * ld + j] = v;
        if (JVP) {
            s.T[r * ld + j] = tv;
        }
    }
#endif
    __syncthreads();
}

/* Every layer of a network, forward or JVP, from the input in X (T). Caches (cx[l], cz[l], NULL
   entries not written) and the output (out, tout; row stride dims[n]) are written for rows < rows;
   with gather_last the output is also gathered into X (T). */
template <int MODE>
__device__ void cm_forward(CmState &s, const CmNet &net, int r0, int rows, float *const *cx,
                           float *const *cz, float *out, float *tout, bool gather_last) {
    for (int l = 0; l < net.n_layers; l++) {
        const bool last = l == net.n_layers - 1;
        const int din = net.dims[l], dout = net.dims[l + 1];
        CmOut o;
        o.ld = dout;
        o.z = last ? out : (cz ? cz[l] : NULL);
        o.x = (!last && cx) ? cx[l + 1] : NULL;
        o.t = last ? tout : NULL;
        cm_layer<MODE>(s, net.P + net.w_off[l], net.P + net.b_off[l], din, dout, 0, din, net.act,
                       !last, NULL, 0, r0, rows, o, !last || gather_last);
    }
}

/* ------------------------------------------------------------------ host side (cmlp.cu) */
/* Raises the shared-memory limit of the engine's kernels (from dmlp_init). */
void cm_init(const DCtx *ctx);
/* Whether every layer output of m is at most CM_MAXW wide. */
bool cm_widths_ok(const Mlp *m);
/* Whether a forward (tangent false) or JVP pass of m over `rows` rows takes the engine. */
bool cm_pass_ok(const DCtx *ctx, const Mlp *m, bool tangent, int rows);
/* Forward (tin NULL) or JVP of `nets` networks of layout m (parameters P[k], caches c[k]) on the
   same input: outputs in c[k]->z[n-1] (c[k]->tout), caches x, z when save. */
void cm_pass(const DCtx *ctx, const Mlp *m, int nets, const float *const *P, const DIn *in,
             const DIn *tin, int rows, DMlpCache *const *c, bool save);

/* Row stride of the engine's tiles for a pass of m: every layer input (and the output when it is
   gathered). */
int cm_pass_ld(const Mlp *m, bool with_output);

/* Cluster launch of an engine kernel: grid.x = row tiles x CM_RANKS, grid.y = networks. */
template <typename Kernel, typename... Args>
static void cm_launch(const DCtx *ctx, Kernel kernel, int rows, int nets, size_t smem,
                      Args... args) {
    cudaLaunchConfig_t cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.gridDim = dim3((unsigned)(cdiv(rows, CM_TR) * CM_RANKS), (unsigned)nets, 1);
    cfg.blockDim = dim3(CM_THREADS, 1, 1);
    cfg.dynamicSmemBytes = smem;
    cfg.stream = ctx->stream;
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeClusterDimension;
    attr[0].val.clusterDim.x = CM_RANKS;
    attr[0].val.clusterDim.y = 1;
    attr[0].val.clusterDim.z = 1;
    cfg.attrs = attr;
    cfg.numAttrs = 1;
    CUDA_CHECK(cudaLaunchKernelEx(&cfg, kernel, args...));
    CUDA_CHECK_LAUNCH();
}

/* The last cluster barrier of a kernel that used the engine. */
__device__ __forceinline__ void cm_finish() {
    cm_cluster_sync();
}

#endif
