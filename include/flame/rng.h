/*
 * rng.h: the one random number generator of the project, shared by the CPU and CUDA backends.
 *
 * Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11), counter
 * based: every draw is addressed by (seed, stream, step, row, col), never by sequential state, so
 * both backends produce the same numbers for the same address and can be compared to float
 * tolerance. Compiles as C11 and as CUDA __host__ __device__ (this header is the only code shared
 * verbatim by src/ and kernels/).
 *
 * Address layout: key = (seed low 32 bits, seed high 32 bits);
 *                 counter = (col / 4, row, step, stream); the draw is word col % 4 of the output.
 * Normal draws pair the words (0,1) and (2,3) of a block through Box-Muller (even col: cos,
 * odd col: sin), so one Philox call yields four normals. A stream is used for one kind of draw only.
 *
 * Truncated normal: inverse CDF in double precision, in log space in the tails (own ndtri, Wichura's
 * AS 241 algorithm, and a continued fraction for the Mills ratio), so intervals lying deep in one tail
 * give samples at the near face, never NaN and never the far face.
 *
 * defines: FlameStream flame_philox4x32_10 rng_u32 rng_uniform rng_uniform_d rng_normal rng_normal_d
 *          rng_ndtri rng_log_normal_sf rng_trunc_normal_inv rng_trunc_normal
 */
#ifndef FLAME_RNG_H
#define FLAME_RNG_H

#include <math.h>
#include <stdint.h>

#if defined(__CUDACC__)
#define FLAME_HD __host__ __device__
#else
#define FLAME_HD
#endif

/* Streams: one per purpose, so draws for different purposes never share an address. */
typedef enum {
    RNG_STREAM_INIT = 1,           /* network initialisation: row = tensor index, col = element */
    RNG_STREAM_ACT_Z = 2,          /* acting particles: step = act call, row = obs row */
    RNG_STREAM_ACT_NOISE = 3,      /* exploration noise xi when acting */
    RNG_STREAM_NEXT_Z = 4,         /* next-action particles in the TD target: step = update */
    RNG_STREAM_NEXT_NOISE = 5,     /* noise added to the next action */
    RNG_STREAM_ENT_Z = 6,          /* entropy estimator base draws */
    RNG_STREAM_ENT_PROBE = 7,      /* Hutchinson probes (normal) */
    RNG_STREAM_ENT_PROBE_SIGN = 8, /* Hutchinson probes (Rademacher, from uniform words) */
    RNG_STREAM_TIMES = 9,          /* (r, t) pairs of the flow loss: col 0, 1 (uniform) */
    RNG_STREAM_EPS0 = 10,          /* eps0 of the noisy action x */
    RNG_STREAM_TRUNC = 11,         /* uniforms behind the truncated-normal posterior candidates */
    RNG_STREAM_QTERM_Z = 12,       /* base draw of the -Q actor term */
    RNG_STREAM_REPLAY = 13,        /* replay sampling indices: step = update, row = batch row */
    RNG_STREAM_ENV_RESET = 14,     /* env reset noise: step = episode, row = env index */
    RNG_STREAM_WARMUP = 15,        /* uniform random actions during warm-up */
    RNG_STREAM_REQ_T = 16,         /* r = t mask of the flow loss (uniform) */
    RNG_STREAM_SAC_EPS = 17,       /* SAC reparameterisation noise in the actor loss */
    RNG_STREAM_EVAL_Z = 18,        /* evaluation particles */
    RNG_STREAM_TEST = 100,         /* tests only */
} FlameStream;

typedef struct {
    uint32_t v[4];
} FlamePhilox4;

FLAME_HD static inline uint32_t flame_mulhilo32(uint32_t a, uint32_t b, uint32_t *hi) {
    uint64_t p = (uint64_t)a * (uint64_t)b;
    *hi = (uint32_t)(p >> 32);
    return (uint32_t)p;
}

/* Philox4x32 with 10 rounds. */
FLAME_HD static inline FlamePhilox4 flame_philox4x32_10(FlamePhilox4 c, uint32_t k0, uint32_t k1) {
    for (int round = 0; round < 10; round++) {
        uint32_t hi0, hi1;
        uint32_t lo0 = flame_mulhilo32(0xD2511F53u, c.v[0], &hi0);
        uint32_t lo1 = flame_mulhilo32(0xCD9E8D57u, c.v[2], &hi1);
        FlamePhilox4 n;
        n.v[0] = hi1 ^ c.v[1] ^ k0;
        n.v[1] = lo1;
        n.v[2] = hi0 ^ c.v[3] ^ k1;
        n.v[3] = lo0;
        c = n;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    return c;
}

FLAME_HD static inline FlamePhilox4 rng_block(uint64_t seed, uint32_t stream, uint32_t step,
                                              uint32_t row, uint32_t block) {
    FlamePhilox4 c;
    c.v[0] = block;
    c.v[1] = row;
    c.v[2] = step;
    c.v[3] = stream;
    return flame_philox4x32_10(c, (uint32_t)seed, (uint32_t)(seed >> 32));
}

/* One raw 32-bit draw. */
FLAME_HD static inline uint32_t rng_u32(uint64_t seed, uint32_t stream, uint32_t step, uint32_t row,
                                        uint32_t col) {
    return rng_block(seed, stream, step, row, col >> 2).v[col & 3];
}

/* Uniform on the open interval (0, 1) with 32-bit resolution, in double. */
FLAME_HD static inline double rng_word_to_unit(uint32_t w) {
    return ((double)w + 0.5) * 2.3283064365386963e-10; /* 2^-32 */
}

FLAME_HD static inline double rng_uniform_d(uint64_t seed, uint32_t stream, uint32_t step,
                                            uint32_t row, uint32_t col) {
    return rng_word_to_unit(rng_u32(seed, stream, step, row, col));
}

/* Uniform on (0, 1) as float (never exactly 0 or 1). */
FLAME_HD static inline float rng_uniform(uint64_t seed, uint32_t stream, uint32_t step, uint32_t row,
                                         uint32_t col) {
    float u = (float)rng_uniform_d(seed, stream, step, row, col);
    if (u >= 1.0f) {
        u = 0.99999994f; /* rounding of (2^32 - 0.5)/2^32 to float */
    }
    return u;
}

/* Standard normal via Box-Muller on the word pair of the block, computed in double. */
FLAME_HD static inline double rng_normal_d(uint64_t seed, uint32_t stream, uint32_t step,
                                           uint32_t row, uint32_t col) {
    FlamePhilox4 b = rng_block(seed, stream, step, row, col >> 2);
    int pair = (int)((col >> 1) & 1);
    double u1 = rng_word_to_unit(b.v[2 * pair]);
    double u2 = rng_word_to_unit(b.v[2 * pair + 1]);
    double rad = sqrt(-2.0 * log(u1));
    double ang = 6.283185307179586 * u2;
    return (col & 1) ? rad * sin(ang) : rad * cos(ang);
}

FLAME_HD static inline float rng_normal(uint64_t seed, uint32_t stream, uint32_t step, uint32_t row,
                                        uint32_t col) {
    return (float)rng_normal_d(seed, stream, step, row, col);
}

/* ------------------------------------------------------------------ normal quantile and tails */

FLAME_HD static inline double rng_poly7(double r, double c0, double c1, double c2, double c3,
                                        double c4, double c5, double c6, double c7) {
    return (((((((c7 * r + c6) * r + c5) * r + c4) * r + c3) * r + c2) * r + c1) * r + c0);
}

/* Inverse of the standard normal CDF, Wichura's AS 241 (PPND16), relative accuracy ~1e-16.
   Returns -inf at p = 0 and +inf at p = 1. */
FLAME_HD static inline double rng_ndtri(double p) {
    if (p <= 0.0) {
        return -INFINITY;
    }
    if (p >= 1.0) {
        return INFINITY;
    }
    double q = p - 0.5;
    if (fabs(q) <= 0.425) {
        double r = 0.180625 - q * q;
        double num = rng_poly7(r, 3.3871328727963666080e0, 1.3314166789178437745e+2,
                               1.9715909503065514427e+3, 1.3731693765509461125e+4,
                               4.5921953931549871457e+4, 6.7265770927008700853e+4,
                               3.3430575583588128105e+4, 2.5090809287301226727e+3);
        double den = rng_poly7(r, 1.0, 4.2313330701600911252e+1, 6.8718700749205790830e+2,
                               5.3941960214247511077e+3, 2.1213794301586595867e+4,
                               3.9307895800092710610e+4, 2.8729085735721942674e+4,
                               5.2264952788528545610e+3);
        return q * num / den;
    }
    double r = q < 0 ? p : 1.0 - p;
    r = sqrt(-log(r));
    double x;
    if (r <= 5.0) {
        r -= 1.6;
        x = rng_poly7(r, 1.42343711074968357734e0, 4.63033784615654529590e0,
                      5.76949722146069140550e0, 3.64784832476320460504e0,
                      1.27045825245236838258e0, 2.41780725177450611770e-1,
                      2.27238449892691845833e-2, 7.74545014278341407640e-4) /
            rng_poly7(r, 1.0, 2.05319162663775882187e0, 1.67638483018380384940e0,
                      6.89767334985100004550e-1, 1.48103976427480074590e-1,
                      1.51986665636164571966e-2, 5.47593808499534494600e-4,
                      1.05075007164441684324e-9);
    } else {
        r -= 5.0;
        x = rng_poly7(r, 6.65790464350110377720e0, 5.46378491116411436990e0,
                      1.78482653991729133580e0, 2.96560571828504891230e-1,
                      2.65321895265761230930e-2, 1.24266094738807843860e-3,
                      2.71155556874348757815e-5, 2.01033439929228813265e-7) /
            rng_poly7(r, 1.0, 5.99832206555887937690e-1, 1.36929880922735805310e-1,
                      1.48753612908506148525e-2, 7.86869131145613259100e-4,
                      1.84631831751005468180e-5, 1.42151175831644588870e-7,
                      2.04426310338993978564e-15);
    }
    return q < 0 ? -x : x;
}

/* log Q(x) = log P(Z > x) for x >= 0, accurate far into the tail (no underflow up to x ~ 1e150).
   Below 8 it uses erfc; above, the Mills ratio R(x) = Q(x)/phi(x) by its continued fraction
   R = 1/(x + 1/(x + 2/(x + 3/(x + ...)))), evaluated bottom-up. */
FLAME_HD static inline double rng_log_normal_sf(double x) {
    if (x < 8.0) {
        return log(0.5 * erfc(x * 0.70710678118654752440));
    }
    double f = x;
    for (int k = 40; k >= 1; k--) {
        f = x + (double)k / f;
    }
    /* log phi(x) - log f */
    return -0.5 * x * x - 0.91893853320467274178 - log(f);
}

/* Upper-tail quantile in log space: the x >= 0 with log Q(x) = lq (lq <= log 0.5). */
FLAME_HD static inline double rng_log_sf_inv(double lq) {
    double x;
    if (lq > -700.0) {
        x = -rng_ndtri(exp(lq));
    } else {
        /* asymptotic start: Q(x) ~ phi(x)/x */
        double t = -2.0 * lq;
        x = sqrt(t - log(t) - 1.8378770664093453);
    }
    /* Newton on log Q: d/dx log Q(x) = -phi(x)/Q(x) */
    for (int it = 0; it < 4; it++) {
        double lqx = rng_log_normal_sf(x);
        double dlq = -exp(-0.5 * x * x - 0.91893853320467274178 - lqx);
        double step = (lqx - lq) / dlq;
        if (!(fabs(step) < 1e300)) {
            break;
        }
        x -= step;
        if (fabs(step) <= 1e-15 * fabs(x)) {
            break;
        }
    }
    return x;
}

/* Inverse CDF of the standard normal truncated to [a, b] (a < b, either may be infinite) at the
   uniform u in (0, 1). */
FLAME_HD static inline double rng_trunc_normal_inv(double u, double a, double b) {
    if (!(a < b)) {
        return a == b ? a : 0.5 * (a + b); /* degenerate interval: its only point / not ordered */
    }
    double sign = 1.0;
    if (b <= 0.0) {
        /* reflect a lower-tail interval into the upper tail */
        double t = a;
        a = -b;
        b = -t;
        sign = -1.0;
    }
    double x;
    if (a >= 0.0) {
        /* upper tail: Q(x) = Q(a) - u (Q(a) - Q(b)), in logs */
        double la = rng_log_normal_sf(a);
        double lb = isinf(b) ? -INFINITY : rng_log_normal_sf(b);
        double lq = la + log1p(-u * (-expm1(lb - la)));
        x = rng_log_sf_inv(lq);
    } else {
        /* interval straddles 0: plain CDF */
        double pa = 0.5 * erfc(-a * 0.70710678118654752440);
        double pb = isinf(b) ? 1.0 : 0.5 * erfc(-b * 0.70710678118654752440);
        x = rng_ndtri(pa + u * (pb - pa));
    }
    if (!(x >= a)) { /* also catches NaN */
        x = a;
    }
    if (x > b) {
        x = b;
    }
    return sign * x;
}

/* Addressed draw of a standard normal truncated to [a, b]. */
FLAME_HD static inline double rng_trunc_normal(uint64_t seed, uint32_t stream, uint32_t step,
                                               uint32_t row, uint32_t col, double a, double b) {
    return rng_trunc_normal_inv(rng_uniform_d(seed, stream, step, row, col), a, b);
}

#endif
