/*
 * mlp.h: the fp32 multilayer perceptron of the CPU reference backend.
 *
 * A network is a chain of Linear layers (W: out x in row-major, b: out) with a hidden activation
 * after every layer but the last (identity output). Parameters live in a ParamBlob; the Mlp records
 * offsets only, so one blob can hold several Mlps (the policy's two time MLPs and its trunk).
 *
 * Passes (all batched over `rows`, GEMMs through CBLAS):
 *   forward   y = f(x), caching every layer's input and pre-activation in an MlpCache;
 *   jvp       y and the forward-mode tangent dy = (df/dx) dx in one pass (the primal is cached);
 *   backward  from dL/dy and the cache: dL/dW, dL/db accumulated into the gradient role array
 *             (skipped when NULL), and dL/dx (skipped when NULL).
 * There is no backward through a tangent: FLAME only needs tangents for stop-gradient targets and
 * entropy estimates.
 *
 * Initialisation follows Haiku's Linear: W ~ truncated normal on [-2, 2] times 1/sqrt(fan_in)
 * (no variance correction), b = 0; draws come from rng.h at (seed, RNG_STREAM_INIT, net_id, tensor,
 * element), so a network's initial weights depend only on the seed and its id.
 *
 * defines: Mlp MlpCache mlp_layout mlp_init_params mlp_cache_alloc mlp_cache_free mlp_forward
 *          mlp_jvp mlp_backward mlp_output mlp_flops blas_set_threads blas_info linear_forward
 */
#ifndef FLAME_MLP_H
#define FLAME_MLP_H

#include <stddef.h>
#include <stdint.h>

#include "flame/params.h"

#define MLP_MAX_LAYERS 16

typedef struct {
    int n_layers;                 /* Linear layers */
    int dims[MLP_MAX_LAYERS + 1]; /* dims[0] = input, dims[n_layers] = output */
    size_t w_off[MLP_MAX_LAYERS], b_off[MLP_MAX_LAYERS];
    int act;         /* hidden activation (FlameActivation) */
    int first_tensor; /* index of W0 in the table */
    int max_dim;
} Mlp;

typedef struct {
    int cap; /* rows */
    float *x[MLP_MAX_LAYERS]; /* input of layer l: rows x dims[l] */
    float *z[MLP_MAX_LAYERS]; /* pre-activation of layer l: rows x dims[l+1]; z[n-1] = output */
    float *t0, *t1;           /* tangent ping-pong, rows x max_dim */
    float *tout;              /* output tangent, rows x dims[n] */
    float *d0, *d1;           /* backward ping-pong, rows x max_dim */
    float *mem;
} MlpCache;

/* Appends the tensors "<prefix>.w<l>", "<prefix>.b<l>" for an MLP in -> hidden x n_hidden -> out. */
void mlp_layout(Mlp *m, ParamTable *t, const char *prefix, int in, int hidden, int n_hidden,
                int out, int act);

/* Haiku-style initialisation of this MLP's tensors inside `params` (role array of the blob). */
void mlp_init_params(const Mlp *m, const ParamTable *t, float *params, uint64_t seed,
                     uint32_t net_id);

void mlp_cache_alloc(MlpCache *c, const Mlp *m, int rows);
void mlp_cache_free(MlpCache *c);

/* y = f(x) for `rows` rows (rows <= cache capacity); `in` is copied into the cache. Returns the
   output (rows x dims[n], owned by the cache). */
const float *mlp_forward(const Mlp *m, const float *P, const float *in, int rows, MlpCache *c);

/* Primal and tangent: returns the output; *tout receives the tangent (owned by the cache). */
const float *mlp_jvp(const Mlp *m, const float *P, const float *in, const float *tin, int rows,
                     MlpCache *c, const float **tout);

/* Backward from dout (rows x dims[n]) through the cached forward: G += dL/dparams when G != NULL,
   din = dL/dinput (rows x dims[0]) when din != NULL. */
void mlp_backward(const Mlp *m, const float *P, float *G, MlpCache *c, const float *dout, int rows,
                  float *din);

/* Forward FLOPs per row (2 per multiply-add, bias and activation not counted). */
double mlp_flops(const Mlp *m);

/* Z = X W^T + b for one layer (rows x in) -> (rows x out); W is out x in. */
void linear_forward(const float *X, const float *W, const float *b, float *Z, int rows, int in,
                    int out);

/* BLAS threads (OpenBLAS; no-op for other CBLAS) and a one-line description of the library. */
void blas_set_threads(int n);
const char *blas_info(void);

#endif
