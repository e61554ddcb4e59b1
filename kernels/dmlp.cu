/*
 * dmlp.cu: the device MLP (see dmlp.cuh): layered cuBLAS path, fused whole-network kernel,
 * layered backward.
 *
 * Row-major GEMMs through column-major cuBLAS: for Z (rows x out) = X (rows x in) W^T with W
 * (out x in) row-major, the column-major view is Z^T = W X^T:
 *   forward    sgemm(T, N, out, rows, in, W [ld in], X [ld in], Z [ld out])
 *   dW += dz^T x   sgemm(N, T, in, out, rows, x [ld in], dz [ld out], G [ld in], beta 1)
 *   dx = dz W      sgemm(N, N, in, rows, out, W [ld in], dz [ld out], dx [ld in])
 * Bias gradients are column sums in row order (one thread per column), as the CPU sums them.
 */
#include "dmlp.cuh"

#include "cmlp.cuh"

#define FM_THREADS 256
#define FM_KC 16      /* k-chunk of staged weights */
#define FM_MAXW 256   /* widest layer of the tile path */
#define FM_WLD 260    /* staged weight row stride (floats; multiple of 4 for float4 reads) */
#define FM_DOT_MAX 32 /* layers at most this wide use the per-output dot product */

static int g_force_tile = 0;

void dmlp_force_tile(int tile_rows) {
    g_force_tile = tile_rows;
}

static inline int rup(int a, int b) {
    return (a + b - 1) / b * b;
}

__device__ __forceinline__ int rupd(int a, int b) {
    return (a + b - 1) / b * b;
}

/* ------------------------------------------------------------------ cache */
/* Lays out a cache of `rows` rows from `p` (NULL: sizes only); returns the floats it takes. */
static size_t cache_layout(DMlpCache *c, const Mlp *m, int rows, int flags, float *p) {
    size_t R = (size_t)rows, md = (size_t)m->max_dim, total = 0;
#define CACHE_TAKE(field, count)                                                                   \
    do {                                                                                           \
        (field) = p ? p + total : NULL;                                                            \
        total += (count);                                                                          \
    } while (0)
    for (int l = 0; l < m->n_layers; l++) {
        CACHE_TAKE(c->x[l], R * (size_t)m->dims[l]);
        CACHE_TAKE(c->z[l], R * (size_t)m->dims[l + 1]);
    }
    if (flags & DMLP_CACHE_JVP) {
        CACHE_TAKE(c->t0, R * md);
        CACHE_TAKE(c->t1, R * md);
        CACHE_TAKE(c->tout, R * (size_t)m->dims[m->n_layers]);
    }
    if (flags & DMLP_CACHE_BWD) {
        CACHE_TAKE(c->d0, R * md);
        CACHE_TAKE(c->d1, R * md);
        /* the fused backward's dz of every layer below the last (its passes are short) */
        c->dzcap = rows < DMLP_SMALL_ROWS ? rows : DMLP_SMALL_ROWS;
        for (int l = 0; l + 1 < m->n_layers; l++) {
            CACHE_TAKE(c->dz[l], (size_t)c->dzcap * (size_t)m->dims[l + 1]);
        }
    }
#undef CACHE_TAKE
    return total;
}

size_t dmlp_cache_bytes(const Mlp *m, int rows, int flags) {
    DMlpCache c;
    memset(&c, 0, sizeof c);
    return cache_layout(&c, m, rows, flags, NULL) * sizeof(float);
}

void dmlp_cache_alloc(DMlpCache *c, const Mlp *m, int rows, int flags) {
    memset(c, 0, sizeof *c);
    c->cap = rows;
    c->flags = flags;
    size_t total = cache_layout(c, m, rows, flags, NULL);
    CUDA_CHECK(cudaMalloc(&c->mem, total * sizeof(float)));
    CUDA_CHECK(cudaMemset(c->mem, 0, total * sizeof(float)));
    cache_layout(c, m, rows, flags, c->mem);
}

void dmlp_cache_free(DMlpCache *c) {
    if (c->mem) {
        CUDA_CHECK(cudaFree(c->mem));
    }
    memset(c, 0, sizeof *c);
}

/* ------------------------------------------------------------------ small kernels */
__global__ void assemble_kernel(DIn in, int rows, int width, float *out, int ld) {
    long long n = (long long)rows * width;
    for (long long idx = blockIdx.x * (long long)blockDim.x + threadIdx.x; idx < n;
         idx += (long long)gridDim.x * blockDim.x) {
        int i = (int)(idx / width), c = (int)(idx % width);
        out[(long long)i * ld + c] = din_get(in, i, c);
    }
}

static int grid_for(long long n, int threads) {
    long long g = (n + threads - 1) / threads;
    if (g > 65535LL * 8) {
        g = 65535LL * 8;
    }
    return (int)(g < 1 ? 1 : g);
}

void dmlp_assemble(const DCtx *ctx, const DIn *in, int rows, float *out, int ld) {
    int w = din_width(in);
    if (rows <= 0 || w <= 0) {
        return;
    }
    assemble_kernel<<<grid_for((long long)rows * w, 256), 256, 0, ctx->stream>>>(*in, rows, w,
                                                                                  out, ld);
    CUDA_CHECK_LAUNCH();
}

/* z += b (per column); x = act(z) when x != NULL */
__global__ void bias_act_kernel(float *z, const float *b, int rows, int dout, int act, float *x) {
    long long n = (long long)rows * dout;
    for (long long idx = blockIdx.x * (long long)blockDim.x + threadIdx.x; idx < n;
         idx += (long long)gridDim.x * blockDim.x) {
        int j = (int)(idx % dout);
        float v = z[idx] + b[j];
        z[idx] = v;
        if (x) {
            x[idx] = act_forward(act, v);
        }
    }
}

/* t *= act'(z) */
__global__ void act_deriv_mul_kernel(float *t, const float *z, long long n, int act) {
    for (long long idx = blockIdx.x * (long long)blockDim.x + threadIdx.x; idx < n;
         idx += (long long)gridDim.x * blockDim.x) {
        t[idx] *= act_derivative(act, z[idx]);
    }
}

/* gb[j] += sum over rows of dz[r][j], rows in order */
__global__ void colsum_kernel(const float *dz, int rows, int dout, float *gb) {
    int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= dout) {
        return;
    }
    float s = gb[j];
    for (int r = 0; r < rows; r++) {
        s += dz[(size_t)r * dout + j];
    }
    gb[j] = s;
}

__global__ void copy_cols_kernel(float *dst, const float *src, int ld, int col, int n, int rows) {
    long long tot = (long long)rows * n;
    for (long long idx = blockIdx.x * (long long)blockDim.x + threadIdx.x; idx < tot;
         idx += (long long)gridDim.x * blockDim.x) {
        int i = (int)(idx / n), c = (int)(idx % n);
        dst[idx] = src[(long long)i * ld + col + c];
    }
}

void dcopy_cols(const DCtx *ctx, float *dst, const float *src, int ld, int col, int n, int rows) {
    if (rows <= 0 || n <= 0) {
        return;
    }
    copy_cols_kernel<<<grid_for((long long)rows * n, 256), 256, 0, ctx->stream>>>(dst, src, ld,
                                                                                   col, n, rows);
    CUDA_CHECK_LAUNCH();
}

__global__ void fill_kernel(float *x, long long n, float v) {
    for (long long idx = blockIdx.x * (long long)blockDim.x + threadIdx.x; idx < n;
         idx += (long long)gridDim.x * blockDim.x) {
        x[idx] = v;
    }
}

void dfill(const DCtx *ctx, float *x, size_t n, float v) {
    if (n == 0) {
        return;
    }
    fill_kernel<<<grid_for((long long)n, 256), 256, 0, ctx->stream>>>(x, (long long)n, v);
    CUDA_CHECK_LAUNCH();
}

/* ------------------------------------------------------------------ cuBLAS helpers */
static void gemm_forward(const DCtx *ctx, const float *X, const float *W, float *Z, int rows, int in,
                         int out) {
    const float one = 1.0f, zero = 0.0f;
    CUBLAS_CHECK(cublasSgemm(ctx->blas, CUBLAS_OP_T, CUBLAS_OP_N, out, rows, in, &one, W, in, X, in,
                             &zero, Z, out));
}

/* ------------------------------------------------------------------ layered path */
static const float *layered_forward(const DCtx *ctx, const Mlp *m, const float *P, const DIn *in,
                                    int rows, DMlpCache *c) {
    dmlp_assemble(ctx, in, rows, c->x[0], m->dims[0]);
    for (int l = 0; l < m->n_layers; l++) {
        int din = m->dims[l], dout = m->dims[l + 1];
        bool last = l + 1 == m->n_layers;
        gemm_forward(ctx, c->x[l], P + m->w_off[l], c->z[l], rows, din, dout);
        bias_act_kernel<<<grid_for((long long)rows * dout, 256), 256, 0, ctx->stream>>>(
            c->z[l], P + m->b_off[l], rows, dout, m->act, last ? NULL : c->x[l + 1]);
        CUDA_CHECK_LAUNCH();
    }
    return c->z[m->n_layers - 1];
}

static const float *layered_jvp(const DCtx *ctx, const Mlp *m, const float *P, const DIn *in,
                                const DIn *tin, int rows, DMlpCache *c) {
    FLAME_CHECK(c->flags & DMLP_CACHE_JVP, "MLP cache allocated without tangent buffers");
    dmlp_assemble(ctx, in, rows, c->x[0], m->dims[0]);
    dmlp_assemble(ctx, tin, rows, c->t1, m->dims[0]);
    const float *t_in = c->t1;
    for (int l = 0; l < m->n_layers; l++) {
        int din = m->dims[l], dout = m->dims[l + 1];
        bool last = l + 1 == m->n_layers;
        const float *W = P + m->w_off[l];
        gemm_forward(ctx, c->x[l], W, c->z[l], rows, din, dout);
        bias_act_kernel<<<grid_for((long long)rows * dout, 256), 256, 0, ctx->stream>>>(
            c->z[l], P + m->b_off[l], rows, dout, m->act, last ? NULL : c->x[l + 1]);
        CUDA_CHECK_LAUNCH();
        float *tz = last ? c->tout : (t_in == c->t0 ? c->t1 : c->t0);
        gemm_forward(ctx, t_in, W, tz, rows, din, dout);
        if (!last) {
            long long n = (long long)rows * dout;
            act_deriv_mul_kernel<<<grid_for(n, 256), 256, 0, ctx->stream>>>(tz, c->z[l], n,
                                                                             m->act);
            CUDA_CHECK_LAUNCH();
        }
        t_in = tz;
    }
    return c->z[m->n_layers - 1];
}

/* ------------------------------------------------------------------ fused kernel */
typedef CmNet FmDesc; /* the layout of the network (its parameters come per network in FmArgs) */

typedef struct {
    const float *P[2];
    DIn in, tin;
    int rows;
    float *out[2], *tout[2];
    float *cx[2][MLP_MAX_LAYERS]; /* saved layer inputs (NULL: not saved) */
    float *cz[2][MLP_MAX_LAYERS]; /* saved pre-activations of hidden layers */
} FmArgs;

/* the optional outputs of one element of a layer: pre-activation, activation, tangent */
__device__ __forceinline__ void store_outputs(float *oz, float *ox, float *otz, int i, int rows,
                                              int j, int dout, float z, float xv, float tz) {
    if (i >= rows) {
        return;
    }
    if (oz) {
        oz[(size_t)i * dout + j] = z;
    }
    if (ox) {
        ox[(size_t)i * dout + j] = xv;
    }
    if (otz) {
        otz[(size_t)i * dout + j] = tz;
    }
}

/* One layer of width > 32 for the tile: every thread owns RM rows x 16 columns
   (rows ty*RM.., columns tx*4 + 64c + e). */
template <int TR, bool JVP>
__device__ __forceinline__ void fm_layer_tile(float *xs, float *ts, float *ws,
                                              const float *__restrict__ W,
                                              const float *__restrict__ bias, int din, int dout,
                                              int act, bool last, int r0, int rows, float *oz,
                                              float *ox, float *otz) {
    constexpr int RM = TR / 16;
    const int tid = threadIdx.x, ty = tid >> 4, tx = tid & 15;
    float acc[RM][16];
    float tacc[JVP ? RM : 1][16];
#pragma unroll
    for (int q = 0; q < RM; q++) {
#pragma unroll
        for (int c = 0; c < 16; c++) {
            acc[q][c] = 0.0f;
            if (JVP) {
                tacc[JVP ? q : 0][c] = 0.0f;
            }
        }
    }
    const int dinp = rupd(din, FM_KC);
    for (int k0 = 0; k0 < dinp; k0 += FM_KC) {
        /* stage W[:, k0:k0+KC] transposed: ws[kk][j] */
        for (int idx = tid; idx < FM_KC * FM_MAXW; idx += FM_THREADS) {
            int kk = idx % FM_KC, j = idx / FM_KC, k = k0 + kk;
            ws[kk * FM_WLD + j] = (j < dout && k < din) ? __ldg(W + (size_t)j * din + k) : 0.0f;
        }
        __syncthreads();
#pragma unroll
        for (int kk = 0; kk < FM_KC; kk++) {
            const float *xr = xs + (k0 + kk) * TR + ty * RM;
            float av[4], tv[4];
            if (RM == 4) {
                float4 v = *reinterpret_cast<const float4 *>(xr);
                av[0] = v.x, av[1] = v.y, av[2] = v.z, av[3] = v.w;
            } else if (RM == 2) {
                float2 v = *reinterpret_cast<const float2 *>(xr);
                av[0] = v.x, av[1] = v.y, av[2] = 0.0f, av[3] = 0.0f;
            } else {
                av[0] = xr[0], av[1] = av[2] = av[3] = 0.0f;
            }
            if (JVP) {
                const float *tr = ts + (k0 + kk) * TR + ty * RM;
                if (RM == 4) {
                    float4 v = *reinterpret_cast<const float4 *>(tr);
                    tv[0] = v.x, tv[1] = v.y, tv[2] = v.z, tv[3] = v.w;
                } else if (RM == 2) {
                    float2 v = *reinterpret_cast<const float2 *>(tr);
                    tv[0] = v.x, tv[1] = v.y, tv[2] = 0.0f, tv[3] = 0.0f;
                } else {
                    tv[0] = tr[0], tv[1] = tv[2] = tv[3] = 0.0f;
                }
            }
#pragma unroll
            for (int c = 0; c < 4; c++) {
                float4 w = *reinterpret_cast<const float4 *>(ws + kk * FM_WLD + tx * 4 + 64 * c);
#pragma unroll
                for (int q = 0; q < RM; q++) {
                    acc[q][4 * c + 0] += av[q] * w.x;
                    acc[q][4 * c + 1] += av[q] * w.y;
                    acc[q][4 * c + 2] += av[q] * w.z;
                    acc[q][4 * c + 3] += av[q] * w.w;
                    if (JVP) {
                        tacc[JVP ? q : 0][4 * c + 0] += tv[q] * w.x;
                        tacc[JVP ? q : 0][4 * c + 1] += tv[q] * w.y;
                        tacc[JVP ? q : 0][4 * c + 2] += tv[q] * w.z;
                        tacc[JVP ? q : 0][4 * c + 3] += tv[q] * w.w;
                    }
                }
            }
        }
        __syncthreads();
    }
    /* epilogue: every read of xs/ts is done (barrier above) */
#pragma unroll
    for (int q = 0; q < RM; q++) {
#pragma unroll
        for (int c = 0; c < 16; c++) {
            int r = ty * RM + q, j = tx * 4 + 64 * (c >> 2) + (c & 3), i = r0 + r;
            float z = 0.0f, xv = 0.0f, tz = 0.0f;
            if (j < dout) {
                z = acc[q][c] + bias[j];
                if (!last) {
                    xv = act_forward(act, z);
                    if (JVP) {
                        tz = tacc[JVP ? q : 0][c] * act_derivative(act, z);
                    }
                } else if (JVP) {
                    tz = tacc[JVP ? q : 0][c];
                }
                store_outputs(oz, ox, otz, i, rows, j, dout, z, xv, tz);
            }
            if (!last) {
                xs[j * TR + r] = xv;
                if (JVP) {
                    ts[j * TR + r] = tz;
                }
            }
        }
    }
}

/* One layer of width <= 32: thread p computes output (row p % TR, column p / TR). */
template <int TR, bool JVP>
__device__ __forceinline__ void fm_layer_dot(float *xs, float *ts, const float *__restrict__ W,
                                             const float *__restrict__ bias, int din, int dout,
                                             int act, bool last, int r0, int rows, float *oz,
                                             float *ox, float *otz) {
    const int tid = threadIdx.x, n = TR * dout; /* <= 64 * 32 = 8 * FM_THREADS */
    float res[8], tres[8];
#pragma unroll
    for (int q = 0; q < 8; q++) {
        int p = tid + q * FM_THREADS;
        res[q] = 0.0f;
        tres[q] = 0.0f;
        if (p < n) {
            int r = p % TR, j = p / TR;
            const float *w = W + (size_t)j * din;
            float s = 0.0f, st = 0.0f;
            for (int k = 0; k < din; k++) {
                float wk = __ldg(w + k);
                s += xs[k * TR + r] * wk;
                if (JVP) {
                    st += ts[k * TR + r] * wk;
                }
            }
            res[q] = s;
            tres[q] = st;
        }
    }
    __syncthreads();
#pragma unroll
    for (int q = 0; q < 8; q++) {
        int p = tid + q * FM_THREADS;
        if (p < n) {
            int r = p % TR, j = p / TR, i = r0 + r;
            float z = res[q] + bias[j], xv = 0.0f, tz = 0.0f;
            if (!last) {
                xv = act_forward(act, z);
                if (JVP) {
                    tz = tres[q] * act_derivative(act, z);
                }
                xs[j * TR + r] = xv;
                if (JVP) {
                    ts[j * TR + r] = tz;
                }
            } else if (JVP) {
                tz = tres[q];
            }
            store_outputs(oz, ox, otz, i, rows, j, dout, z, xv, tz);
        }
    }
    if (!last) {
        /* zero the padding columns up to the next k-chunk */
        int padw = rupd(dout, FM_KC) - dout;
        for (int idx = tid; idx < TR * padw; idx += FM_THREADS) {
            int r = idx % TR, j = dout + idx / TR;
            xs[j * TR + r] = 0.0f;
            if (JVP) {
                ts[j * TR + r] = 0.0f;
            }
        }
    }
}

template <int TR, bool JVP>
__global__ void __launch_bounds__(FM_THREADS) fmlp_kernel(FmDesc m, FmArgs a, int act_ld) {
    extern __shared__ __align__(16) float fm_smem[];
    float *xs = fm_smem;
    float *ts = xs + (JVP ? act_ld * TR : 0);
    float *ws = xs + (JVP ? 2 : 1) * act_ld * TR;
    const int net = blockIdx.y, tid = threadIdx.x;
    const float *P = a.P[net];
    const int r0 = blockIdx.x * TR, rows = a.rows;
    {
        const int in0 = m.dims[0], inp = rupd(in0, FM_KC);
        float *cx0 = a.cx[net][0];
        for (int idx = tid; idx < TR * inp; idx += FM_THREADS) {
            int r = idx % TR, c = idx / TR, i = r0 + r;
            float v = 0.0f, tv = 0.0f;
            if (i < rows && c < in0) {
                v = din_get(a.in, i, c);
                if (JVP) {
                    tv = din_get(a.tin, i, c);
                }
                if (cx0) {
                    cx0[(size_t)i * in0 + c] = v;
                }
            }
            xs[c * TR + r] = v;
            if (JVP) {
                ts[c * TR + r] = tv;
            }
        }
    }
    __syncthreads();
    for (int l = 0; l < m.n_layers; l++) {
        const int din = m.dims[l], dout = m.dims[l + 1];
        const bool last = l == m.n_layers - 1;
        const float *W = P + m.w_off[l], *bias = P + m.b_off[l];
        float *oz = last ? a.out[net] : a.cz[net][l];
        float *ox = last ? NULL : a.cx[net][l + 1];
        float *otz = (JVP && last) ? a.tout[net] : NULL;
        if (dout <= FM_DOT_MAX) {
            fm_layer_dot<TR, JVP>(xs, ts, W, bias, din, dout, m.act, last, r0, rows, oz, ox, otz);
        } else {
            fm_layer_tile<TR, JVP>(xs, ts, ws, W, bias, din, dout, m.act, last, r0, rows, oz, ox,
                                   otz);
        }
        __syncthreads();
    }
}

/* shared-memory row width of the fused kernel for m (floats) */
static int fm_act_ld(const Mlp *m) {
    int ld = rup(m->dims[0], FM_KC);
    for (int l = 0; l + 1 < m->n_layers; l++) {
        int w = m->dims[l + 1] > FM_DOT_MAX ? FM_MAXW : rup(m->dims[l + 1], FM_KC);
        ld = w > ld ? w : ld;
    }
    return ld;
}

static size_t fm_smem_bytes(const Mlp *m, bool jvp, int tr) {
    return ((size_t)(jvp ? 2 : 1) * fm_act_ld(m) * tr + (size_t)FM_KC * FM_WLD) * sizeof(float);
}

bool dmlp_fused_ok(const DCtx *ctx, const Mlp *m, bool jvp, int *tile_rows) {
    for (int l = 0; l < m->n_layers; l++) {
        if (m->dims[l + 1] > FM_MAXW) {
            return false;
        }
    }
    int cand[2] = {jvp ? 32 : 64, jvp ? 16 : 32};
    bool forced = g_force_tile == cand[0] || g_force_tile == cand[1];
    for (int i = 0; i < 2; i++) {
        if (forced && cand[i] != g_force_tile) {
            continue;
        }
        if (fm_smem_bytes(m, jvp, cand[i]) <= (size_t)ctx->smem_optin) {
            if (tile_rows) {
                *tile_rows = cand[i];
            }
            return true;
        }
    }
    return false;
}

void dmlp_init(DCtx *ctx) {
    int dev = 0, optin = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
    ctx->smem_optin = optin;
    int major = 0;
    CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
    ctx->has_clusters = major >= 9;
    CUDA_CHECK(cudaFuncSetAttribute(fmlp_kernel<64, false>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize, optin));
    CUDA_CHECK(cudaFuncSetAttribute(fmlp_kernel<32, false>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize, optin));
    CUDA_CHECK(cudaFuncSetAttribute(fmlp_kernel<32, true>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize, optin));
    CUDA_CHECK(cudaFuncSetAttribute(fmlp_kernel<16, true>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize, optin));
    cm_init(ctx);
}

static FmDesc fm_desc(const Mlp *m) {
    return cm_net(m, NULL);
}

static void fm_set_cache(FmArgs *a, int net, const Mlp *m, DMlpCache *c, bool save) {
    a->out[net] = c->z[m->n_layers - 1];
    a->tout[net] = c->tout;
    if (save) {
        for (int l = 0; l < m->n_layers; l++) {
            a->cx[net][l] = c->x[l];
            if (l + 1 < m->n_layers) {
                a->cz[net][l] = c->z[l];
            }
        }
    }
}

static void fm_launch(const DCtx *ctx, const Mlp *m, bool jvp, int tr, int nets, const FmArgs *a) {
    FmDesc d = fm_desc(m);
    int act_ld = fm_act_ld(m);
    size_t smem = fm_smem_bytes(m, jvp, tr);
    dim3 grid(cdiv(a->rows, tr), nets);
    if (!jvp && tr == 64) {
        fmlp_kernel<64, false><<<grid, FM_THREADS, smem, ctx->stream>>>(d, *a, act_ld);
    } else if (!jvp && tr == 32) {
        fmlp_kernel<32, false><<<grid, FM_THREADS, smem, ctx->stream>>>(d, *a, act_ld);
    } else if (jvp && tr == 32) {
        fmlp_kernel<32, true><<<grid, FM_THREADS, smem, ctx->stream>>>(d, *a, act_ld);
    } else {
        FLAME_CHECK(jvp && tr == 16, "no fused MLP kernel for %d rows per block", tr);
        fmlp_kernel<16, true><<<grid, FM_THREADS, smem, ctx->stream>>>(d, *a, act_ld);
    }
    CUDA_CHECK_LAUNCH();
}

/* ------------------------------------------------------------------ public passes */
const float *dmlp_forward(const DCtx *ctx, const Mlp *m, const float *P, const DIn *in, int rows,
                          DMlpCache *c, bool save) {
    FLAME_CHECK(rows <= c->cap, "device MLP cache holds %d rows, asked for %d", c->cap, rows);
    FLAME_CHECK(din_width(in) == m->dims[0], "MLP input has %d columns, the network takes %d",
                din_width(in), m->dims[0]);
    if (rows <= 0) {
        return c->z[m->n_layers - 1];
    }
    if (cm_pass_ok(ctx, m, false, rows)) {
        cm_pass(ctx, m, 1, &P, in, NULL, rows, &c, save);
        return c->z[m->n_layers - 1];
    }
    int tr = 0;
    if (ctx->fused && dmlp_fused_ok(ctx, m, false, &tr)) {
        FmArgs a;
        memset(&a, 0, sizeof a);
        a.P[0] = P;
        a.in = *in;
        a.rows = rows;
        fm_set_cache(&a, 0, m, c, save);
        fm_launch(ctx, m, false, tr, 1, &a);
        return c->z[m->n_layers - 1];
    }
    return layered_forward(ctx, m, P, in, rows, c);
}

void dmlp_forward2(const DCtx *ctx, const Mlp *m, const float *P1, const float *P2, const DIn *in,
                   int rows, DMlpCache *c1, DMlpCache *c2, bool save) {
    FLAME_CHECK(rows <= c1->cap && rows <= c2->cap, "device MLP caches hold %d/%d rows, asked %d",
                c1->cap, c2->cap, rows);
    if (rows <= 0) {
        return;
    }
    FLAME_CHECK(din_width(in) == m->dims[0], "MLP input has %d columns, the network takes %d",
                din_width(in), m->dims[0]);
    if (cm_pass_ok(ctx, m, false, rows)) {
        const float *P[2] = {P1, P2};
        DMlpCache *c[2] = {c1, c2};
        cm_pass(ctx, m, 2, P, in, NULL, rows, c, save);
        return;
    }
    int tr = 0;
    if (ctx->fused && dmlp_fused_ok(ctx, m, false, &tr)) {
        FmArgs a;
        memset(&a, 0, sizeof a);
        a.P[0] = P1;
        a.P[1] = P2;
        a.in = *in;
        a.rows = rows;
        fm_set_cache(&a, 0, m, c1, save);
        fm_set_cache(&a, 1, m, c2, save);
        fm_launch(ctx, m, false, tr, 2, &a);
        return;
    }
    layered_forward(ctx, m, P1, in, rows, c1);
    layered_forward(ctx, m, P2, in, rows, c2);
}

const float *dmlp_jvp(const DCtx *ctx, const Mlp *m, const float *P, const DIn *in, const DIn *tin,
                      int rows, DMlpCache *c, bool save, const float **tout) {
    FLAME_CHECK(rows <= c->cap, "device MLP cache holds %d rows, asked for %d", c->cap, rows);
    FLAME_CHECK(din_width(in) == m->dims[0] && din_width(tin) == m->dims[0],
                "MLP JVP input has %d/%d columns, the network takes %d", din_width(in),
                din_width(tin), m->dims[0]);
    FLAME_CHECK(c->flags & DMLP_CACHE_JVP, "MLP cache allocated without tangent buffers");
    *tout = c->tout;
    if (rows <= 0) {
        return c->z[m->n_layers - 1];
    }
    if (cm_pass_ok(ctx, m, true, rows)) {
        cm_pass(ctx, m, 1, &P, in, tin, rows, &c, save);
        return c->z[m->n_layers - 1];
    }
    int tr = 0;
    if (ctx->fused && dmlp_fused_ok(ctx, m, true, &tr)) {
        FmArgs a;
        memset(&a, 0, sizeof a);
        a.P[0] = P;
        a.in = *in;
        a.tin = *tin;
        a.rows = rows;
        fm_set_cache(&a, 0, m, c, save);
        fm_launch(ctx, m, true, tr, 1, &a);
        return c->z[m->n_layers - 1];
    }
    return layered_jvp(ctx, m, P, in, tin, rows, c);
}

void dmlp_backward(const DCtx *ctx, const Mlp *m, const float *P, float *G, DMlpCache *c,
                   const float *dout, int rows, float *din) {
    FLAME_CHECK(rows <= c->cap, "device MLP cache holds %d rows, asked for %d", c->cap, rows);
    FLAME_CHECK(c->flags & DMLP_CACHE_BWD, "MLP cache allocated without backward buffers");
    if (rows <= 0) {
        return;
    }
    DBwdNet net = {m, P, G, c, dout, m->dims[m->n_layers], din};
    if (dmlp_bwd_fused_ok(ctx, &net, 1, rows)) {
        dmlp_chain(ctx, &net, 1, rows);
        dmlp_wgrad(ctx, &net, 1, rows, true);
        return;
    }
    const float one = 1.0f, zero = 0.0f;
    const float *dz = dout;
    for (int l = m->n_layers - 1; l >= 0; l--) {
        int n_in = m->dims[l], n_out = m->dims[l + 1];
        const float *W = P + m->w_off[l];
        if (G) {
            CUBLAS_CHECK(cublasSgemm(ctx->blas, CUBLAS_OP_N, CUBLAS_OP_T, n_in, n_out, rows, &one,
                                     c->x[l], n_in, dz, n_out, &one, G + m->w_off[l], n_in));
            colsum_kernel<<<cdiv(n_out, 128), 128, 0, ctx->stream>>>(dz, rows, n_out,
                                                                      G + m->b_off[l]);
            CUDA_CHECK_LAUNCH();
        }
        if (l == 0 && !din) {
            break;
        }
        float *dx = (l == 0) ? din : (dz == c->d0 ? c->d1 : c->d0);
        CUBLAS_CHECK(cublasSgemm(ctx->blas, CUBLAS_OP_N, CUBLAS_OP_N, n_in, rows, n_out, &one, W,
                                 n_in, dz, n_out, &zero, dx, n_in));
        if (l > 0) {
            long long n = (long long)rows * n_in;
            act_deriv_mul_kernel<<<grid_for(n, 256), 256, 0, ctx->stream>>>(dx, c->z[l - 1], n,
                                                                             m->act);
            CUDA_CHECK_LAUNCH();
        }
        dz = dx;
    }
}
