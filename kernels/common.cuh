/*
 * common.cuh: what every CUDA translation unit of the backend shares: the project's C headers
 * (with C linkage), error checks with file:line, launch helpers and block reductions.
 *
 * Error tiers (style.md G10): CUDA_CHECK / CUBLAS_CHECK wrap every runtime and cuBLAS call;
 * CUDA_CHECK_LAUNCH() follows every kernel launch (cudaGetLastError). With FLAME_CUDA_SYNC_CHECK=1
 * in the environment each launch is also followed by a device synchronisation (outside graph
 * capture), so an asynchronous fault is reported at the launch that caused it.
 * A failure calls flame_fatal() (tests install a hook that fails the running test).
 *
 * defines: CUDA_CHECK CUBLAS_CHECK CUDA_CHECK_LAUNCH flame_cuda_fail cdiv block_sum_d block_max_f
 *          block_min_d block_max_d GridRed RED_SUM RED_MAX RED_MIN grid_reduce grid_red_blocks
 */
#ifndef FLAME_KERNELS_COMMON_CUH
#define FLAME_KERNELS_COMMON_CUH

/* system headers first, so that the C headers below find them already included */
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cublas_v2.h>
#include <cuda_runtime.h>

extern "C" {
#include "flame/activation.h"
#include "flame/agent.h"
#include "flame/backend.h"
#include "flame/check.h"
#include "flame/config.h"
#include "flame/cuda_api.h"
#include "flame/mlp.h"
#include "flame/params.h"
#include "flame/replay.h"
#include "flame/rng.h"
}

/* Reports a failed CUDA or cuBLAS call and does not return. */
extern "C" void flame_cuda_fail(const char *what, const char *msg, const char *file, int line)
    __attribute__((noreturn));

/* 1 when FLAME_CUDA_SYNC_CHECK=1 and no graph is being captured: every launch check also
   synchronises (debugging aid). */
extern "C" int flame_cuda_sync_check(void);
/* Marks the start / end of a graph capture on this thread (disables the synchronising check). */
extern "C" void flame_cuda_set_capturing(int on);

#define CUDA_CHECK(call)                                                                           \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess) {                                                                   \
            flame_cuda_fail(#call, cudaGetErrorString(e_), __FILE__, __LINE__);                    \
        }                                                                                          \
    } while (0)

#define CUBLAS_CHECK(call)                                                                         \
    do {                                                                                           \
        cublasStatus_t s_ = (call);                                                                \
        if (s_ != CUBLAS_STATUS_SUCCESS) {                                                         \
            flame_cuda_fail(#call, cublasGetStatusString(s_), __FILE__, __LINE__);                 \
        }                                                                                          \
    } while (0)

#define CUDA_CHECK_LAUNCH()                                                                        \
    do {                                                                                           \
        CUDA_CHECK(cudaGetLastError());                                                            \
        if (flame_cuda_sync_check()) {                                                             \
            CUDA_CHECK(cudaDeviceSynchronize());                                                   \
        }                                                                                          \
    } while (0)

static inline int cdiv(long long a, long long b) {
    return (int)((a + b - 1) / b);
}

/* ------------------------------------------------------------------ block reductions
   All threads of the block must call these; `sh` is shared scratch of at least 32 elements.
   The order of the sums is fixed by the launch shape, so results are deterministic. */
__device__ inline double warp_sum_d(double v) {
    for (int o = 16; o > 0; o >>= 1) {
        v += __shfl_down_sync(0xffffffffu, v, o);
    }
    return v;
}

__device__ inline double block_sum_d(double v, double *sh) {
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    v = warp_sum_d(v);
    __syncthreads();
    if (lane == 0) {
        sh[wid] = v;
    }
    __syncthreads();
    double r = 0;
    if (wid == 0) {
        r = lane < nw ? sh[lane] : 0.0;
        r = warp_sum_d(r);
        if (lane == 0) {
            sh[0] = r;
        }
    }
    __syncthreads();
    r = sh[0];
    __syncthreads();
    return r;
}

__device__ inline double block_max_d(double v, double *sh) {
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    for (int o = 16; o > 0; o >>= 1) {
        v = fmax(v, __shfl_down_sync(0xffffffffu, v, o));
    }
    __syncthreads();
    if (lane == 0) {
        sh[wid] = v;
    }
    __syncthreads();
    if (wid == 0) {
        double r = lane < nw ? sh[lane] : -INFINITY;
        for (int o = 16; o > 0; o >>= 1) {
            r = fmax(r, __shfl_down_sync(0xffffffffu, r, o));
        }
        if (lane == 0) {
            sh[0] = r;
        }
    }
    __syncthreads();
    double r = sh[0];
    __syncthreads();
    return r;
}

__device__ inline double block_min_d(double v, double *sh) {
    return -block_max_d(-v, sh);
}

/* ------------------------------------------------------------------ grid reductions
   A reduction over every block of a launch without a second launch: each block reduces its
   threads' values, writes them to `part`, and the last block to finish (an atomic counter, reset
   by that block for the next launch or graph replay) combines the partials in block order. The
   partition of the elements is fixed by the grid size, which the launcher derives from the
   element count alone, so results are deterministic. With one block this is the block reduction.
   blockIdx.y selects independent reductions (their own partials and counter).
   `part` holds gridDim.x * gridDim.y * NV doubles, `count` gridDim.y counters (zero between
   launches); GRID_RED_MAX_BLOCKS x 4 rows x 8 values are allocated by the backend. */
enum { RED_SUM = 0, RED_MAX = 1, RED_MIN = 2 };

#define GRID_RED_MAX_BLOCKS 512
#define GRID_RED_MAX_VALUES 8
#define GRID_RED_MAX_ROWS 4

typedef struct {
    double *part;
    unsigned *count;
} GridRed;

__device__ inline double red_identity(int kind) {
    return kind == RED_SUM ? 0.0 : (kind == RED_MAX ? -INFINITY : INFINITY);
}

__device__ inline double red_combine(int kind, double a, double b) {
    return kind == RED_SUM ? a + b : (kind == RED_MAX ? fmax(a, b) : fmin(a, b));
}

__device__ inline double block_reduce_d(int kind, double v, double *sh) {
    return kind == RED_SUM ? block_sum_d(v, sh)
                           : (kind == RED_MAX ? block_max_d(v, sh) : block_min_d(v, sh));
}

/* Every thread of every block calls this with its values v (already combined over its own
   elements). Returns true in every thread of the one block that finishes last, whose `out` then
   holds the reductions over the whole grid row; false elsewhere (out untouched). */
template <int NV>
__device__ bool grid_reduce(const double (&v)[NV], const int (&kind)[NV], GridRed gr,
                            double (&out)[NV]) {
    __shared__ double sh[32];
    __shared__ bool last;
    const size_t base = (size_t)blockIdx.y * gridDim.x;
    double b[NV];
#pragma unroll
    for (int j = 0; j < NV; j++) {
        b[j] = block_reduce_d(kind[j], v[j], sh);
    }
    if (threadIdx.x == 0) {
#pragma unroll
        for (int j = 0; j < NV; j++) {
            gr.part[(base + blockIdx.x) * NV + j] = b[j];
        }
        __threadfence(); /* the partials are visible before the counter moves */
        unsigned done = atomicAdd(gr.count + blockIdx.y, 1u);
        last = done == gridDim.x - 1;
    }
    __syncthreads();
    if (!last) {
        return false;
    }
    __threadfence();
#pragma unroll
    for (int j = 0; j < NV; j++) {
        double acc = red_identity(kind[j]);
        for (unsigned q = threadIdx.x; q < gridDim.x; q += blockDim.x) {
            acc = red_combine(kind[j], acc, __ldcg(gr.part + (base + q) * NV + j));
        }
        out[j] = block_reduce_d(kind[j], acc, sh);
    }
    if (threadIdx.x == 0) {
        gr.count[blockIdx.y] = 0u;
    }
    return true;
}

/* Blocks of a grid reduction over n elements (256 threads each): one block when `grid` is false
   (backend.reductions=block), else one block per 64 elements (several blocks already at B = 256,
   so short reductions spread too), at most GRID_RED_MAX_BLOCKS. Depends on n only, so the
   summation order is fixed. */
static inline int grid_red_blocks(long long n, bool grid) {
    if (!grid) {
        return 1;
    }
    long long g = (n + 63) / 64;
    g = g < 1 ? 1 : g;
    return (int)(g > GRID_RED_MAX_BLOCKS ? GRID_RED_MAX_BLOCKS : g);
}

#endif
