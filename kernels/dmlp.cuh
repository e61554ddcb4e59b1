/*
 * dmlp.cuh: the device MLP: the same network as src/nn/mlp.c (Mlp layout, parameters in the same
 * ParamBlob layout), evaluated on the GPU.
 *
 * Inputs are described, not materialised: a DIn is the concatenation of up to four segments, each
 * a row-major matrix read with a row divisor (row i reads source row i / div; div 0 broadcasts
 * row 0; a NULL pointer reads zeros). So [s, a-hat] for B*K candidate rows reads s from the batch
 * with div K and a-hat from a B*K matrix without copying s K times.
 *
 * Two implementations of forward and JVP, chosen per call (DCtx.fused):
 *   layered  assemble the input, then per layer one cuBLAS GEMM and one bias/activation kernel
 *            (the baseline; always available);
 *   fused    one kernel for the whole network (fmlp_kernel): a tile of TR rows is assembled into
 *            shared memory and every layer runs from shared memory to shared memory, weights
 *            staged in 16-wide k-chunks; a layer of width <= 32 (the critic's output, the time
 *            MLPs) is a per-output dot product. Needs every layer width <= 256 and the tile in
 *            shared memory; otherwise the call falls back to the layered path. Twin networks of
 *            one layout run in one launch (blockIdx.y selects the network).
 *   cluster  (DCtx.cluster, sm_90, passes of at most DMLP_SMALL_ROWS rows) a cluster of 8
 *            blocks per tile of 16 rows, each block computing 1/8 of every layer (cmlp.cuh);
 *            preferred over the fused tile kernel where it applies.
 * The backward pass (parameter gradients and input gradient) is layered (cuBLAS) by default; with
 * DCtx.bwd_fused (sm_90, at most DMLP_SMALL_ROWS rows) it is one row-chain launch (dz of every
 * layer and the input gradient, cluster engine) and one weight-gradient launch (every layer's dW
 * and db, each element summed over the rows in row order by one thread: no atomics, no column-sum
 * pass).
 * Caches hold every layer's input x[l] and pre-activation z[l] as in MlpCache; the layered path
 * always fills them, the fused paths only when `save` is set (they always write the output z[n-1]).
 * TF32: DCtx.tf32 switches cuBLAS to TF32 tensor-op math; the fused kernels compute in fp32.
 *
 * defines: DMLP_SMALL_ROWS DSeg DIn DCtx DMlpCache DBwdNet din_empty din_add din_get dmlp_init
 *          dmlp_cache_alloc dmlp_cache_bytes dmlp_cache_free dmlp_assemble dmlp_forward
 *          dmlp_forward2 dmlp_jvp dmlp_backward dmlp_bwd_fused_ok dmlp_chain dmlp_wgrad
 *          dmlp_fused_ok dcopy_cols dfill
 */
#ifndef FLAME_KERNELS_DMLP_CUH
#define FLAME_KERNELS_DMLP_CUH

#include "common.cuh"

#define DIN_MAX_SEGS 4
#define DMLP_SMALL_ROWS 4096 /* passes of at most this many rows may take the cluster engine */

typedef struct {
    const float *p; /* NULL: zeros */
    int width;      /* columns of the segment */
    int ld;         /* row stride of the source */
    int div;        /* row i reads source row i / div (0: always row 0) */
} DSeg;

typedef struct {
    int n;
    DSeg s[DIN_MAX_SEGS];
} DIn;

typedef struct {
    cudaStream_t stream;
    cublasHandle_t blas;
    int fused;      /* use the fused kernels where the shapes allow */
    int tf32;       /* cuBLAS in TF32 tensor-op mode (set on the handle by the owner) */
    int smem_optin; /* largest dynamic shared memory per block */
    int cluster;    /* small passes on the cluster engine (needs compute capability 9.0) */
    int has_clusters; /* the device has thread-block clusters (set by dmlp_init) */
    int bwd_fused;  /* fused backward (needs compute capability 9.0) */
    int merge;      /* time features of a flow pass in one kernel (dflow.cu) */
} DCtx;

enum { DMLP_CACHE_JVP = 1, DMLP_CACHE_BWD = 2 };

typedef struct {
    int cap, flags;
    float *x[MLP_MAX_LAYERS]; /* input of layer l: rows x dims[l] */
    float *z[MLP_MAX_LAYERS]; /* pre-activation of layer l: rows x dims[l+1]; z[n-1] = output */
    float *t0, *t1;           /* tangent ping-pong (JVP), rows x max_dim */
    float *tout;              /* output tangent (JVP), rows x dims[n] */
    float *d0, *d1;           /* backward ping-pong (BWD), rows x max_dim */
    float *dz[MLP_MAX_LAYERS]; /* fused backward (BWD): dz of layer l < n-1, dzcap x dims[l+1] */
    int dzcap;
    float *mem;
} DMlpCache;

/* One network of a fused backward: cache c holds its last saved forward (x, z); dout (row stride
   dout_ld) is dL/doutput; G (NULL: none) receives the parameter gradients, din (NULL: none) the
   input gradient (rows x dims[0]). */
typedef struct {
    const Mlp *m;
    const float *P;
    float *G;
    DMlpCache *c;
    const float *dout;
    int dout_ld;
    float *din;
} DBwdNet;

static inline DIn din_empty(void) {
    DIn d;
    memset(&d, 0, sizeof d);
    return d;
}

/* Appends a segment: `width` columns of `p` (row stride ld, row divisor div). */
static inline void din_add(DIn *in, const float *p, int width, int ld, int div) {
    FLAME_CHECK(in->n < DIN_MAX_SEGS, "too many input segments");
    in->s[in->n].p = p;
    in->s[in->n].width = width;
    in->s[in->n].ld = ld;
    in->s[in->n].div = div;
    in->n++;
}

/* Element (i, c) of the input described by `in`. */
__device__ __forceinline__ float din_get(const DIn &in, int i, int c) {
#pragma unroll
    for (int s = 0; s < DIN_MAX_SEGS; s++) {
        if (s < in.n) {
            const DSeg &g = in.s[s];
            if (c < g.width) {
                if (!g.p) {
                    return 0.0f;
                }
                long long row = g.div > 0 ? (long long)(i / g.div) : 0;
                return g.p[row * g.ld + c];
            }
            c -= g.width;
        }
    }
    return 0.0f;
}

static inline int din_width(const DIn *in) {
    int w = 0;
    for (int i = 0; i < in->n; i++) {
        w += in->s[i].width;
    }
    return w;
}

/* Once per device and process: raises the shared-memory limit of the fused kernels. */
void dmlp_init(DCtx *ctx);

void dmlp_cache_alloc(DMlpCache *c, const Mlp *m, int rows, int flags);
void dmlp_cache_free(DMlpCache *c);
/* Device bytes dmlp_cache_alloc takes for these arguments. */
size_t dmlp_cache_bytes(const Mlp *m, int rows, int flags);

/* Writes the rows x width(in) matrix described by `in` to out (row stride ld). */
void dmlp_assemble(const DCtx *ctx, const DIn *in, int rows, float *out, int ld);

/* y = f(in) for rows rows; returns c->z[n-1] (rows x dims[n]). */
const float *dmlp_forward(const DCtx *ctx, const Mlp *m, const float *P, const DIn *in, int rows,
                          DMlpCache *c, bool save);

/* Two networks of layout m (parameters P1, P2) on the same input: outputs c1->z[n-1], c2->z[n-1]. */
void dmlp_forward2(const DCtx *ctx, const Mlp *m, const float *P1, const float *P2, const DIn *in,
                   int rows, DMlpCache *c1, DMlpCache *c2, bool save);

/* Primal and tangent with input tangent tin; returns the output, *tout = c->tout. */
const float *dmlp_jvp(const DCtx *ctx, const Mlp *m, const float *P, const DIn *in, const DIn *tin,
                      int rows, DMlpCache *c, bool save, const float **tout);

/* Backward from dout (rows x dims[n]) through the cached primal: G += dL/dparams (G may be NULL),
   din = dL/dinput (rows x dims[0], may be NULL). */
void dmlp_backward(const DCtx *ctx, const Mlp *m, const float *P, float *G, DMlpCache *c,
                   const float *dout, int rows, float *din);

/* Whether the fused backward handles n networks (of at most 2 per chain launch) at `rows`. */
bool dmlp_bwd_fused_ok(const DCtx *ctx, const DBwdNet *nets, int n, int rows);
/* Fused backward, row chain (one launch, at most 2 networks): dz of every layer below the last
   into c->dz, and din. */
void dmlp_chain(const DCtx *ctx, const DBwdNet *nets, int n, int rows);
/* Fused backward, parameter gradients of every layer of n networks (one launch) from their dout
   and c->dz: G += (accumulate) or G = the gradient. */
void dmlp_wgrad(const DCtx *ctx, const DBwdNet *nets, int n, int rows, bool accumulate);

/* Whether the fused kernel handles this network (and its rows-per-block), for tests and benches. */
bool dmlp_fused_ok(const DCtx *ctx, const Mlp *m, bool jvp, int *tile_rows);

/* dst (rows x n, contiguous) = columns [col, col+n) of src (rows x ld). */
void dcopy_cols(const DCtx *ctx, float *dst, const float *src, int ld, int col, int n, int rows);

/* x[0..n) = v */
void dfill(const DCtx *ctx, float *x, size_t n, float v);

/* Prefers the fused kernel's row tile `tile_rows` where that tile exists for the pass (forward:
   64, 32; JVP: 32, 16), 0: automatic; tests and benches use it to cover every tile size. */
void dmlp_force_tile(int tile_rows);

#endif
