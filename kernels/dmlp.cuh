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
 * The backward pass (parameter gradients and input gradient) is layered (cuBLAS) in both modes.
 * Caches hold every layer's input x[l] and pre-activation z[l] as in MlpCache; the layered path
 * always fills them, the fused path only when `save` is set (it always writes the output z[n-1]).
 * TF32: DCtx.tf32 switches cuBLAS to TF32 tensor-op math; the fused kernels compute in fp32.
 *
 * defines: DSeg DIn DCtx DMlpCache din_empty din_add dmlp_init dmlp_cache_alloc dmlp_cache_free
 *          dmlp_assemble dmlp_forward dmlp_forward2 dmlp_jvp dmlp_backward dmlp_fused_ok
 *          dcopy_cols dfill
 */
#ifndef FLAME_KERNELS_DMLP_CUH
#define FLAME_KERNELS_DMLP_CUH

#include "common.cuh"

#define DIN_MAX_SEGS 4

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
} DCtx;

enum { DMLP_CACHE_JVP = 1, DMLP_CACHE_BWD = 2 };

typedef struct {
    int cap, flags;
    float *x[MLP_MAX_LAYERS]; /* input of layer l: rows x dims[l] */
    float *z[MLP_MAX_LAYERS]; /* pre-activation of layer l: rows x dims[l+1]; z[n-1] = output */
    float *t0, *t1;           /* tangent ping-pong (JVP), rows x max_dim */
    float *tout;              /* output tangent (JVP), rows x dims[n] */
    float *d0, *d1;           /* backward ping-pong (BWD), rows x max_dim */
    float *mem;
} DMlpCache;

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
