/*
 * activation.h: hidden-layer activations and their derivatives, shared verbatim by the CPU
 * reference (src/nn/mlp.c) and the CUDA kernels (FLAME_HD = __host__ __device__ under nvcc).
 *
 * mish(x) = x tanh(softplus(x)) with a single exp: with e = exp(x) and n = e (e + 2),
 * tanh(log(1 + e)) = n / (n + 2). Its derivative is tanh(sp) + x sech^2(sp) sigmoid(x), where
 * sech^2(sp) = 1 - tanh^2 = (2 / (n + 2)) (1 + tanh) is formed without cancellation.
 * Above x = 20 mish(x) = x to float precision (and e^2 would overflow at 44).
 *
 * The exponential is our own (act_exp): Cody-Waite range reduction and a degree-7 polynomial, about
 * 2 ulp, branch-free so that loops over it vectorise on the CPU; the CUDA kernels evaluate the same
 * formula, so both backends compute bitwise-comparable activations.
 *
 * defines: act_exp act_forward act_derivative act_mish act_mish_d act_gelu act_gelu_d
 */
#ifndef FLAME_ACTIVATION_H
#define FLAME_ACTIVATION_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "flame/config.h"

#if defined(__CUDACC__)
#define FLAME_HD __host__ __device__
#else
#ifndef FLAME_HD
#define FLAME_HD
#endif
#endif

/* exp(x) for x in [-87, 88] (clamped outside): 2^n * p(r), r = x - n ln2, |r| <= ln2/2 */
FLAME_HD static inline float act_exp(float x) {
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x); /* selects vectorise, fminf calls do not */
    /* n = round(x / ln2) by the 1.5 * 2^23 trick (exact for |x / ln2| < 2^22) */
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = x - n * 0.693145751953125f;   /* ln2, high part (exact product) */
    r = r - n * 1.428606765330187045e-06f;  /* ln2, low part */
    float p = 1.9841270e-4f;
    p = p * r + 1.3888889e-3f;
    p = p * r + 8.3333338e-3f;
    p = p * r + 4.1666668e-2f;
    p = p * r + 1.6666667e-1f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t bits = ((int32_t)n + 127) * 8388608; /* 2^n as float bits */
#if defined(__CUDA_ARCH__)
    float scale = __int_as_float(bits);
#else
    float scale;
    memcpy(&scale, &bits, sizeof scale);
#endif
    return p * scale;
}

/* branch-free (selects), so that loops over it vectorise */
FLAME_HD static inline float act_mish(float x) {
    float e = act_exp(x > 20.0f ? 20.0f : x);
    float n = e * (e + 2.0f);
    float m = x * n / (n + 2.0f);
    return x > 20.0f ? x : m;
}

FLAME_HD static inline float act_mish_d(float x) {
    float e = act_exp(x > 20.0f ? 20.0f : x);
    float n = e * (e + 2.0f);
    float t = n / (n + 2.0f);
    float sech2 = (2.0f / (n + 2.0f)) * (1.0f + t);
    float sig = e / (1.0f + e);
    float d = t + x * sech2 * sig;
    return x > 20.0f ? 1.0f : d;
}

FLAME_HD static inline float act_gelu(float x) {
    return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
}

FLAME_HD static inline float act_gelu_d(float x) {
    float cdf = 0.5f * (1.0f + erff(x * 0.70710678118654752f));
    float pdf = 0.39894228040143268f * expf(-0.5f * x * x);
    return cdf + x * pdf;
}

FLAME_HD static inline float act_forward(int act, float x) {
    switch (act) {
        case ACT_MISH:
            return act_mish(x);
        case ACT_RELU:
            return x > 0.0f ? x : 0.0f;
        case ACT_GELU:
            return act_gelu(x);
        default:
            return x;
    }
}

FLAME_HD static inline float act_derivative(int act, float x) {
    switch (act) {
        case ACT_MISH:
            return act_mish_d(x);
        case ACT_RELU:
            return x > 0.0f ? 1.0f : 0.0f;
        case ACT_GELU:
            return act_gelu_d(x);
        default:
            return 1.0f;
    }
}

#endif
