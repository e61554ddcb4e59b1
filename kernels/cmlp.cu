/*
 * cmlp.cu: the cluster engine's kernels (cmlp.cuh) and the fused backward:
 *   cm_pass_kernel   forward / JVP of one or two networks on the same input (blockIdx.y = net)
 *   cm_chain_kernel  backward row chain of one or two networks: dz of every layer, input gradient
 *   bw_wgrad_kernel  parameter gradients of every layer of several networks in one launch: a block
 *                    owns a 32 x 32 tile of one dW (and, for its first column tile, 32 biases) and
 *                    sums over all rows in row order, so every element has one writer and a fixed
 *                    summation order (the bias in the CPU's order: G, then row by row)
 * Cluster kernels are launched with cudaLaunchKernelEx (cluster dimension CM_RANKS); their sm_80
 * builds trap, and the host never launches them below compute capability 9.0.
 */
#include "cmlp.cuh"

#define BW_MAX_TASKS 32
#define BW_TILE 32

typedef struct {
    CmNet net[2];
    DIn in, tin;
    int rows;
    float *out[2], *tout[2];
    float *cx[2][MLP_MAX_LAYERS]; /* layer inputs to save (NULL: not saved) */
    float *cz[2][MLP_MAX_LAYERS]; /* hidden pre-activations to save */
} CmPassArgs;

typedef struct {
    CmNet net[2];
    const float *dout[2];
    int dout_ld[2];
    const float *zc[2][MLP_MAX_LAYERS]; /* cached pre-activations z[l] */
    float *dz[2][MLP_MAX_LAYERS];       /* outputs: dz of layer l < n-1 */
    float *din[2];                      /* input gradient (NULL: none) */
    int rows;
} CmChainArgs;

typedef struct {
    const float *dz; /* rows x dout, row stride dz_ld */
    const float *x;  /* layer input, rows x din */
    float *gw, *gb;  /* dW (dout x din) and db (dout) */
    int dz_ld, dout, din, ntk, tile0;
} BwTask;

typedef struct {
    BwTask t[BW_MAX_TASKS];
    int ntasks, rows, accumulate;
} BwArgs;

/* ------------------------------------------------------------------ kernels */
template <int MODE>
__global__ void __launch_bounds__(CM_THREADS) cm_pass_kernel(CmPassArgs a, int ld) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 900
    __trap();
#else
    extern __shared__ __align__(16) float cm_smem[];
    constexpr bool JVP = MODE == CM_JVP;
    CmState s;
    cm_setup(s, cm_smem, ld, JVP);
    const int net = blockIdx.y, r0 = (int)(blockIdx.x / CM_RANKS) * CM_TR;
    const CmNet &N = a.net[net];
    const int in0 = N.dims[0], inp = cm_rupd(in0, 32);
    float *cx0 = a.cx[net][0];
    for (int idx = threadIdx.x; idx < CM_TR * inp; idx += CM_THREADS) {
        int r = idx / inp, c = idx % inp, i = r0 + r;
        float v = 0.0f, tv = 0.0f;
        if (i < a.rows && c < in0) {
            v = din_get(a.in, i, c);
            if (JVP) {
                tv = din_get(a.tin, i, c);
            }
            if (cx0 && s.rank == 0) {
                cx0[(size_t)i * in0 + c] = v;
            }
        }
        s.X[r * ld + c] = v;
        if (JVP) {
            s.T[r * ld + c] = tv;
        }
    }
    __syncthreads();
    cm_forward<MODE>(s, N, r0, a.rows, a.cx[net], a.cz[net], a.out[net], a.tout[net], false);
    cm_finish();
#endif
}

__global__ void __launch_bounds__(CM_THREADS) cm_chain_kernel(CmChainArgs a, int ld) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 900
    __trap();
#else
    extern __shared__ __align__(16) float cm_smem[];
    CmState s;
    cm_setup(s, cm_smem, ld, false);
    const int net = blockIdx.y, r0 = (int)(blockIdx.x / CM_RANKS) * CM_TR;
    const CmNet &N = a.net[net];
    const int L = N.n_layers, wout = N.dims[L], np = cm_rupd(wout, 32);
    const float *dout = a.dout[net];
    for (int idx = threadIdx.x; idx < CM_TR * np; idx += CM_THREADS) {
        int r = idx / np, j = idx % np, i = r0 + r;
        s.X[r * ld + j] = (i < a.rows && j < wout) ? dout[(size_t)i * a.dout_ld[net] + j] : 0.0f;
    }
    __syncthreads();
    float *din = a.din[net];
    for (int l = L - 1; l >= 0; l--) {
        if (l == 0 && !din) {
            break; /* uniform over the cluster: one network per cluster */
        }
        const int n_in = N.dims[l], n_out = N.dims[l + 1];
        CmOut o;
        o.ld = n_in;
        o.z = l > 0 ? a.dz[net][l - 1] : din;
        o.x = NULL;
        o.t = NULL;
        const float *W = N.P + N.w_off[l];
        if (l > 0) {
            bool more = l > 1 || din != NULL;
            cm_layer<CM_BWD>(s, W, NULL, n_out, n_in, 0, n_in, N.act, true, a.zc[net][l - 1], n_in,
                             r0, a.rows, o, more);
        } else {
            /* the input gradient, CM_MAXW columns at a time (inputs may be wider) */
            for (int col0 = 0; col0 < n_in; col0 += CM_MAXW) {
                cm_layer<CM_BWD>(s, W, NULL, n_out, n_in, col0, n_in, N.act, true, NULL, 0, r0,
                                 a.rows, o, false);
            }
        }
    }
    cm_finish();
#endif
}

__global__ void __launch_bounds__(256) bw_wgrad_kernel(BwArgs a) {
    __shared__ float dzs[BW_TILE][BW_TILE + 1], xs[BW_TILE][BW_TILE + 1];
    int ti = 0;
    while (ti + 1 < a.ntasks && a.t[ti + 1].tile0 <= (int)blockIdx.x) {
        ti++;
    }
    const BwTask t = a.t[ti];
    const int tile = (int)blockIdx.x - t.tile0;
    const int n0 = (tile / t.ntk) * BW_TILE, k0 = (tile % t.ntk) * BW_TILE;
    const int tid = threadIdx.x, ty = tid >> 4, tx = tid & 15;
    float acc[2][2] = {{0.0f, 0.0f}, {0.0f, 0.0f}};
    /* the first column tile also sums the biases of its 32 rows of W */
    const bool bias = k0 == 0 && tid < BW_TILE && n0 + tid < t.dout;
    float bacc = (bias && a.accumulate) ? t.gb[n0 + tid] : 0.0f;
    for (int rr0 = 0; rr0 < a.rows; rr0 += BW_TILE) {
        for (int idx = tid; idx < BW_TILE * BW_TILE; idx += 256) {
            int rr = idx / BW_TILE, c = idx % BW_TILE, i = rr0 + rr;
            bool row = i < a.rows;
            dzs[rr][c] = (row && n0 + c < t.dout) ? t.dz[(size_t)i * t.dz_ld + n0 + c] : 0.0f;
            xs[rr][c] = (row && k0 + c < t.din) ? t.x[(size_t)i * t.din + k0 + c] : 0.0f;
        }
        __syncthreads();
        const int nr = a.rows - rr0 < BW_TILE ? a.rows - rr0 : BW_TILE;
        for (int rr = 0; rr < nr; rr++) {
            float a0 = dzs[rr][ty], a1 = dzs[rr][ty + 16], b0 = xs[rr][tx], b1 = xs[rr][tx + 16];
            acc[0][0] = fmaf(a0, b0, acc[0][0]);
            acc[0][1] = fmaf(a0, b1, acc[0][1]);
            acc[1][0] = fmaf(a1, b0, acc[1][0]);
            acc[1][1] = fmaf(a1, b1, acc[1][1]);
        }
        if (bias) {
            for (int rr = 0; rr < nr; rr++) {
                bacc += dzs[rr][tid];
            }
        }
        __syncthreads();
    }
#pragma unroll
    for (int p = 0; p < 2; p++) {
#pragma unroll
        for (int q = 0; q < 2; q++) {
            int n = n0 + ty + 16 * p, k = k0 + tx + 16 * q;
            if (n < t.dout && k < t.din) {
                float *gw = t.gw + (size_t)n * t.din + k;
                *gw = a.accumulate ? *gw + acc[p][q] : acc[p][q];
            }
        }
    }
    if (bias) {
        t.gb[n0 + tid] = bacc;
    }
}

/* ------------------------------------------------------------------ host */
void cm_init(const DCtx *ctx) {
    int optin = ctx->smem_optin;
    CUDA_CHECK(cudaFuncSetAttribute(cm_pass_kernel<CM_FWD>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize, optin));
    CUDA_CHECK(cudaFuncSetAttribute(cm_pass_kernel<CM_JVP>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize, optin));
    CUDA_CHECK(
        cudaFuncSetAttribute(cm_chain_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, optin));
}

int cm_pass_ld(const Mlp *m, bool with_output) {
    int w = 0;
    for (int l = 0; l < m->n_layers + (with_output ? 1 : 0); l++) {
        w = m->dims[l] > w ? m->dims[l] : w;
    }
    return cm_ld(w);
}

bool cm_widths_ok(const Mlp *m) {
    for (int l = 1; l <= m->n_layers; l++) {
        if (m->dims[l] > CM_MAXW) {
            return false;
        }
    }
    return true;
}

bool cm_pass_ok(const DCtx *ctx, const Mlp *m, bool tangent, int rows) {
    if (!ctx->cluster || !ctx->has_clusters || rows <= 0 || rows > DMLP_SMALL_ROWS ||
        !cm_widths_ok(m)) {
        return false;
    }
    return cm_smem_floats(cm_pass_ld(m, false), tangent, 0) * sizeof(float) <=
           (size_t)ctx->smem_optin;
}

void cm_pass(const DCtx *ctx, const Mlp *m, int nets, const float *const *P, const DIn *in,
             const DIn *tin, int rows, DMlpCache *const *c, bool save) {
    CmPassArgs a;
    memset(&a, 0, sizeof a);
    a.in = *in;
    if (tin) {
        a.tin = *tin;
    }
    a.rows = rows;
    for (int k = 0; k < nets; k++) {
        a.net[k] = cm_net(m, P[k]);
        a.out[k] = c[k]->z[m->n_layers - 1];
        a.tout[k] = c[k]->tout;
        if (save) {
            for (int l = 0; l < m->n_layers; l++) {
                a.cx[k][l] = c[k]->x[l];
                if (l + 1 < m->n_layers) {
                    a.cz[k][l] = c[k]->z[l];
                }
            }
        }
    }
    int ld = cm_pass_ld(m, false);
    size_t smem = cm_smem_floats(ld, tin != NULL, 0) * sizeof(float);
    if (tin) {
        cm_launch(ctx, cm_pass_kernel<CM_JVP>, rows, nets, smem, a, ld);
    } else {
        cm_launch(ctx, cm_pass_kernel<CM_FWD>, rows, nets, smem, a, ld);
    }
}

/* row stride of a chain: the reduction widths dims[1..n] */
static int chain_ld(const Mlp *m) {
    int w = 0;
    for (int l = 1; l <= m->n_layers; l++) {
        w = m->dims[l] > w ? m->dims[l] : w;
    }
    return cm_ld(w);
}

bool dmlp_bwd_fused_ok(const DCtx *ctx, const DBwdNet *nets, int n, int rows) {
    if (!ctx->bwd_fused || !ctx->has_clusters || rows <= 0 || rows > DMLP_SMALL_ROWS ||
        n > BW_MAX_TASKS) {
        return false;
    }
    int tasks = 0;
    for (int k = 0; k < n; k++) {
        const Mlp *m = nets[k].m;
        if (!cm_widths_ok(m) || !(nets[k].c->flags & DMLP_CACHE_BWD) || rows > nets[k].c->dzcap ||
            cm_smem_floats(chain_ld(m), false, 0) * sizeof(float) > (size_t)ctx->smem_optin) {
            return false;
        }
        tasks += nets[k].G ? m->n_layers : 0;
    }
    return tasks <= BW_MAX_TASKS;
}

void dmlp_chain(const DCtx *ctx, const DBwdNet *nets, int n, int rows) {
    FLAME_CHECK(n >= 1 && n <= 2, "a chain launch takes one or two networks (got %d)", n);
    CmChainArgs a;
    memset(&a, 0, sizeof a);
    a.rows = rows;
    int ld = 0;
    bool work = false;
    for (int k = 0; k < n; k++) {
        const Mlp *m = nets[k].m;
        a.net[k] = cm_net(m, nets[k].P);
        a.dout[k] = nets[k].dout;
        a.dout_ld[k] = nets[k].dout_ld;
        a.din[k] = nets[k].din;
        for (int l = 0; l < m->n_layers; l++) {
            a.zc[k][l] = nets[k].c->z[l];
            a.dz[k][l] = nets[k].c->dz[l];
        }
        int lk = chain_ld(m);
        ld = lk > ld ? lk : ld;
        work = work || m->n_layers > 1 || nets[k].din;
    }
    if (!work) {
        return; /* single-layer networks without an input gradient: nothing to chain */
    }
    size_t smem = cm_smem_floats(ld, false, 0) * sizeof(float);
    cm_launch(ctx, cm_chain_kernel, rows, n, smem, a, ld);
}

void dmlp_wgrad(const DCtx *ctx, const DBwdNet *nets, int n, int rows, bool accumulate) {
    BwArgs a;
    memset(&a, 0, sizeof a);
    a.rows = rows;
    a.accumulate = accumulate ? 1 : 0;
    int tiles = 0;
    for (int k = 0; k < n; k++) {
        const Mlp *m = nets[k].m;
        if (!nets[k].G) {
            continue;
        }
        for (int l = 0; l < m->n_layers; l++) {
            FLAME_CHECK(a.ntasks < BW_MAX_TASKS, "too many layers for one gradient launch");
            BwTask *t = &a.t[a.ntasks++];
            bool last = l + 1 == m->n_layers;
            t->dz = last ? nets[k].dout : nets[k].c->dz[l];
            t->dz_ld = last ? nets[k].dout_ld : m->dims[l + 1];
            t->x = nets[k].c->x[l];
            t->gw = nets[k].G + m->w_off[l];
            t->gb = nets[k].G + m->b_off[l];
            t->dout = m->dims[l + 1];
            t->din = m->dims[l];
            t->ntk = cdiv(t->din, BW_TILE);
            t->tile0 = tiles;
            tiles += cdiv(t->dout, BW_TILE) * t->ntk;
        }
    }
    if (tiles == 0) {
        return;
    }
    bw_wgrad_kernel<<<tiles, 256, 0, ctx->stream>>>(a);
    CUDA_CHECK_LAUNCH();
}
