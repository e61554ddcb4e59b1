/*
 * backend_cuda.h: CUDA-backend-only access for verification, the twin of backend_cpu.h: host
 * copies of the intermediate quantities of the last update (minibatch, TD targets, entropies,
 * noisy actions, candidate draws, weights, ...) and setters that overwrite a device intermediate
 * with given values, so each stage operation can be checked against the CPU reference on
 * identical inputs. Plain C: no CUDA header.
 *
 * The view's arrays are owned by the backend and refreshed by each backend_cuda_debug() call
 * (which synchronises the device).
 *
 * defines: CudaDebugView CudaDebugField backend_cuda_debug backend_cuda_debug_set
 *          backend_cuda_graph_count backend_cuda_graph_nodes backend_cuda_device_bytes
 *          backend_cuda_plan_bytes
 */
#ifndef FLAME_BACKEND_CUDA_H
#define FLAME_BACKEND_CUDA_H

#include "flame/backend.h"

typedef struct {
    int B, S, D, K, Np;
    const float *obs, *act, *rew, *next_obs, *done; /* the minibatch */
    const float *y;                                  /* TD targets (B) */
    const float *ent;                                /* H(s') (B) */
    const float *next_a;                             /* a' (B x D) */
    const float *a_star;                             /* best particle before noise (B x D) */
    const float *pscore;                             /* min twin-Q of each particle (B x Np) */
    const int *pbest;                                /* chosen particle per row (B) */
    const float *x, *r, *t;                          /* noisy actions (B x D), times (B) */
    const float *eps_post;                           /* candidate draws eps_bk (B x K x D) */
    const float *qc;                                 /* min twin-Q of each candidate (B x K) */
    const float *w;                                  /* candidate weights (B x K) */
    const float *vbar;                               /* weighted tangent (B x D) */
    const float *ess;                                /* effective sample size per row (B) */
    int act_n;                                       /* rows of the last act call */
    const float *act_score;                          /* its particle scores (act_n x Np) */
    const int *act_best;                             /* its chosen particles (act_n) */
} CudaDebugView;

void backend_cuda_debug(Backend *b, CudaDebugView *v);

typedef enum {
    CUDA_DBG_Y,        /* B */
    CUDA_DBG_ENT,      /* B */
    CUDA_DBG_NEXT_A,   /* B x D */
    CUDA_DBG_X,        /* B x D */
    CUDA_DBG_R,        /* B */
    CUDA_DBG_T,        /* B */
    CUDA_DBG_EPS_POST, /* B x K x D */
    CUDA_DBG_W,        /* B x K */
    CUDA_DBG_VBAR,     /* B x D */
} CudaDebugField;

/* Overwrites one device intermediate with host values (sizes as listed above). */
void backend_cuda_debug_set(Backend *b, CudaDebugField f, const float *host);

/* Number of update graphs captured so far (0 when backend.graphs is off). */
int backend_cuda_graph_count(Backend *b);

/* Nodes of a captured update graph with (actor) or without an actor step; -1 when none yet. */
int backend_cuda_graph_nodes(Backend *b, bool actor);

/* Device bytes this backend has allocated (its own buffers; the CUDA context and cuBLAS's
   internal memory are not counted). */
size_t backend_cuda_device_bytes(Backend *b);

/* Device bytes the CUDA backend would allocate for this resolved configuration at creation,
   computed without a device (acting buffers grow with the first act call; a publish adds the
   acting work set). */
size_t backend_cuda_plan_bytes(const FlameConfig *cfg, int obs_dim, int act_dim);

#endif
