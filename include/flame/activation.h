/*
 * activation.h: hidden-layer activations and their derivatives, shared verbatim by the CPU
 * reference (src/nn/mlp.c) and the CUDA kernels (FLAME_HD = __host__ __device__ under nvcc).
 *
 * mish(x) = x tanh(softplus(x)) with a single exp: with e = exp(x) and n = e (e + 2),
 * tanh(log(1 + e)) = n / (n + 2). Its derivative is tanh(sp) + x sech^2(sp) sigmoid(x), where
 * sech^2(sp) = 1 - tanh^2 = (2 / (n + 2)) (1 + tanh) is formed without cancellation.
 * Above x = 20 mish(x) = x to float precision (and e^2 would overflow at 44).
 *
 * defines: act_forward act_derivative act_mish act_mish_d act_gelu act_gelu_d
 */
#ifndef FLAME_ACTIVATION_H
#define FLAME_ACTIVATION_H

#include <math.h>

#include "flame/config.h"

#if defined(__CUDACC__)
#define FLAME_HD __host__ __device__
#else
#ifndef FLAME_HD
#define FLAME_HD
#endif
#endif

FLAME_HD static inline float act_mish(float x) {
    if (x > 20.0f) {
        return x;
    }
    float e = expf(x);
    float n = e * (e + 2.0f);
    return x * n / (n + 2.0f);
}

FLAME_HD static inline float act_mish_d(float x) {
    if (x > 20.0f) {
        return 1.0f;
    }
    float e = expf(x);
    float n = e * (e + 2.0f);
    float t = n / (n + 2.0f);
    float sech2 = (2.0f / (n + 2.0f)) * (1.0f + t);
    float sig = e / (1.0f + e);
    return t + x * sech2 * sig;
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
