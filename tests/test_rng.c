/* test_rng.c: Philox4x32-10 known answers, uniform/normal moments, ndtri, truncated normal. */
#include "flame/rng.h"
#include "flame_test.h"

FLAME_TEST(test_philox_known_answers) {
    /* published Random123 known-answer vectors for philox4x32 with 10 rounds */
    struct {
        uint32_t ctr[4], key[2], want[4];
    } kat[3] = {
        {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
        {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
         {0xffffffff, 0xffffffff},
         {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
        {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
         {0xa4093822, 0x299f31d0},
         {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
    };
    for (int i = 0; i < 3; i++) {
        FlamePhilox4 c = {{kat[i].ctr[0], kat[i].ctr[1], kat[i].ctr[2], kat[i].ctr[3]}};
        FlamePhilox4 r = flame_philox4x32_10(c, kat[i].key[0], kat[i].key[1]);
        for (int j = 0; j < 4; j++) {
            EXPECT_MSG(r.v[j] == kat[i].want[j], "vector %d word %d: %08x != %08x", i, j, r.v[j],
                       kat[i].want[j]);
        }
    }
}

FLAME_TEST(test_addressing) {
    /* the address fields map onto the counter as documented, and different fields differ */
    uint64_t seed = 0x123456789abcdefull;
    FlamePhilox4 c = {{7 >> 2, 11, 13, 17}};
    FlamePhilox4 r = flame_philox4x32_10(c, (uint32_t)seed, (uint32_t)(seed >> 32));
    EXPECT(rng_u32(seed, 17, 13, 11, 7) == r.v[3]);
    EXPECT(rng_u32(seed, 17, 13, 11, 7) != rng_u32(seed, 18, 13, 11, 7));
    EXPECT(rng_u32(seed, 17, 13, 11, 7) != rng_u32(seed, 17, 14, 11, 7));
    EXPECT(rng_u32(seed, 17, 13, 11, 7) != rng_u32(seed, 17, 13, 12, 7));
    EXPECT(rng_u32(seed, 17, 13, 11, 7) != rng_u32(seed + 1, 17, 13, 11, 7));
}

FLAME_TEST(test_uniform_moments) {
    /* n = 1e6: the standard error of the mean is 0.289/1000; 5 sigma bounds */
    const int n = 1000000;
    double s = 0, s2 = 0, lo = 1, hi = 0;
    for (int i = 0; i < n; i++) {
        float u = rng_uniform(42, RNG_STREAM_TEST, 0, (uint32_t)(i / 1000), (uint32_t)(i % 1000));
        s += u;
        s2 += (double)u * u;
        lo = u < lo ? u : lo;
        hi = u > hi ? u : hi;
    }
    double mean = s / n, var = s2 / n - mean * mean;
    EXPECT_NEAR("uniform mean", mean, 0.5, 5 * 0.2887 / 1000, 0);
    EXPECT_NEAR("uniform var", var, 1.0 / 12, 5 * 0.0745 / 1000, 0); /* sd of u^2 terms ~0.0745 */
    EXPECT(lo > 0.0 && hi < 1.0);
}

FLAME_TEST(test_normal_moments) {
    const int n = 1000000;
    double m[5] = {0};
    for (int i = 0; i < n; i++) {
        double z = rng_normal(7, RNG_STREAM_TEST, 3, (uint32_t)(i / 64), (uint32_t)(i % 64));
        double p = 1;
        for (int k = 1; k <= 4; k++) {
            p *= z;
            m[k] += p;
        }
    }
    for (int k = 1; k <= 4; k++) {
        m[k] /= n;
    }
    /* standard errors: mean 1/sqrt(n), E z^2: sqrt(2/n), E z^3: sqrt(15/n), E z^4: sqrt(96/n) */
    EXPECT_NEAR("normal mean", m[1], 0.0, 5 * 1e-3, 0);
    EXPECT_NEAR("normal E z^2", m[2], 1.0, 5 * 1.414e-3, 0);
    EXPECT_NEAR("normal E z^3", m[3], 0.0, 5 * 3.873e-3, 0);
    EXPECT_NEAR("normal E z^4", m[4], 3.0, 5 * 9.8e-3, 0);
}

FLAME_TEST(test_normal_pairs_independent) {
    /* the cos and sin halves of one Box-Muller pair are uncorrelated */
    const int n = 200000;
    double sxy = 0;
    for (int i = 0; i < n; i++) {
        double x = rng_normal_d(9, RNG_STREAM_TEST, 0, (uint32_t)i, 0);
        double y = rng_normal_d(9, RNG_STREAM_TEST, 0, (uint32_t)i, 1);
        sxy += x * y;
    }
    EXPECT_NEAR("corr(cos, sin)", sxy / n, 0.0, 5.0 / sqrt((double)n), 0);
}

static double phi_cdf(double x) {
    return 0.5 * erfc(-x / sqrt(2.0));
}

FLAME_TEST(test_ndtri) {
    /* ndtri inverts the erfc-based CDF: relative accuracy of x well below 1e-12 where the CDF is
       well conditioned */
    /* x <= 0 only: for x > 0 the CDF itself rounds towards 1 and the test would measure that */
    for (double x = -37.0; x <= 0.0; x += 0.0625) {
        double p = phi_cdf(x);
        double xi = rng_ndtri(p);
        double tol = 1e-12 * fmax(1.0, fabs(x));
        EXPECT_MSG(fabs(xi - x) <= tol, "x=%g p=%g ndtri=%.17g", x, p, xi);
    }
    /* symmetry for p > 1/2 at exactly representable p */
    for (int k = 1; k < 64; k++) {
        double p = k / 128.0;
        EXPECT_MSG(fabs(rng_ndtri(1.0 - p) + rng_ndtri(p)) <= 1e-15 * fabs(rng_ndtri(p)) + 1e-16,
                   "p=%g", p);
    }
    EXPECT(rng_ndtri(0.5) == 0.0);
    EXPECT(isinf(rng_ndtri(0.0)) && rng_ndtri(0.0) < 0);
    EXPECT(isinf(rng_ndtri(1.0)) && rng_ndtri(1.0) > 0);
}

FLAME_TEST(test_log_sf) {
    /* log Q agrees with log(erfc) where erfc does not underflow, including across the 8.0 switch */
    for (double x = 0; x < 37; x += 0.25) {
        double ref = log(0.5 * erfc(x / sqrt(2.0)));
        double got = rng_log_normal_sf(x);
        EXPECT_MSG(fabs(got - ref) <= 1e-12 * fabs(ref) + 1e-14, "x=%g got %.17g ref %.17g", x,
                   got, ref);
    }
}

/* Independent reference: moments of N(0,1) truncated to [a,b] by Simpson integration of the
   density exp(-(x^2 - c^2)/2) shifted by c (the bound nearest 0), which never underflows. */
static void trunc_moments_ref(double a, double b, double *mean, double *var) {
    double c = (a > 0) ? a : (b < 0 ? b : 0);
    double lo = a, hi = b;
    if (isinf(lo)) {
        lo = fmin(-12.0, b - 12.0);
    }
    if (isinf(hi)) {
        hi = fmax(12.0, a + 12.0);
    }
    /* beyond ~40/|c| standard deviations of the tail scale the density is below e^-40 */
    double scale = fabs(c) > 1 ? 1.0 / fabs(c) : 1.0;
    if (c > 0) {
        hi = fmin(hi, a + 60 * scale);
    }
    if (c < 0) {
        lo = fmax(lo, b - 60 * scale);
    }
    int n = 200000;
    double h = (hi - lo) / n, z = 0, m1 = 0, m2 = 0;
    for (int i = 0; i <= n; i++) {
        double x = lo + i * h;
        double w = (i == 0 || i == n) ? 1 : (i % 2 ? 4 : 2);
        double d = w * exp(-0.5 * (x * x - c * c));
        z += d;
        m1 += d * x;
        m2 += d * x * x;
    }
    *mean = m1 / z;
    *var = m2 / z - (*mean) * (*mean);
}

FLAME_TEST(test_trunc_normal_moments) {
    /* (a, b): centre, one-sided, narrow, moderately far tail, both bounds deep in one tail (the
       FLAME-M posterior at t -> 1 with an out-of-box replay action), and its mirror image */
    double cases[][2] = {{-1, 1},  {0, INFINITY}, {-INFINITY, -2}, {0.3, 0.4},   {5, 7},
                         {55, 370}, {-370, -55},   {8, 9},          {-0.5, 30.0}, {38.5, 1e4}};
    int ncases = (int)(sizeof cases / sizeof cases[0]);
    const int n = 200000;
    for (int c = 0; c < ncases; c++) {
        double a = cases[c][0], b = cases[c][1];
        double s = 0, s2 = 0;
        int bad = 0;
        for (int i = 0; i < n; i++) {
            double x = rng_trunc_normal(5, RNG_STREAM_TEST, (uint32_t)c, (uint32_t)i, 0, a, b);
            if (!(x >= a && x <= b)) {
                bad++;
            }
            s += x;
            s2 += x * x;
        }
        double mean = s / n, var = s2 / n - mean * mean;
        double rm, rv;
        trunc_moments_ref(a, b, &rm, &rv);
        EXPECT_MSG(bad == 0, "[%g, %g]: %d samples outside the interval or NaN", a, b, bad);
        /* 6 standard errors on the mean; variance within 4% (sample variance of n = 2e5 draws has
           relative sd sqrt(2/n)~0.3% for normal-like tails, more for the exponential-like deep tail) */
        double se = sqrt(rv / n);
        EXPECT_MSG(fabs(mean - rm) <= 6 * se + 1e-12 * fabs(rm), "[%g, %g]: mean %.10g ref %.10g se %g",
                   a, b, mean, rm, se);
        EXPECT_MSG(fabs(var - rv) <= 0.04 * rv, "[%g, %g]: var %.6g ref %.6g", a, b, var, rv);
    }
}

FLAME_TEST(test_trunc_normal_near_face) {
    /* both bounds deep in one tail: every sample lies at the near face, within a few 1/a of it */
    double a = 55, b = 370;
    for (int i = 0; i < 1000; i++) {
        double u = (i + 0.5) / 1000.0;
        double x = rng_trunc_normal_inv(u, a, b);
        EXPECT_MSG(x >= a && x < a + 0.2, "u=%g x=%.12g", u, x);
        double y = rng_trunc_normal_inv(u, -b, -a);
        EXPECT_MSG(y <= -a && y > -a - 0.2, "u=%g y=%.12g", u, y);
    }
    /* extreme uniforms stay finite and inside */
    double us[] = {2.3283064365386963e-10 * 0.5, 1e-300, 0.5, 1 - 1.1641532182693481e-10};
    double iv[][2] = {{55, 370}, {-370, -55}, {-1, 1}, {1e3, 1e3 + 1e-3}, {-40, 40}, {-1e6, -1e5}};
    for (int i = 0; i < 4; i++) {
        for (int j = 0; j < 6; j++) {
            double x = rng_trunc_normal_inv(us[i], iv[j][0], iv[j][1]);
            EXPECT_MSG(isfinite(x) && x >= iv[j][0] && x <= iv[j][1], "u=%g [%g,%g] x=%g", us[i],
                       iv[j][0], iv[j][1], x);
        }
    }
}

FLAME_TEST(test_trunc_normal_quantiles) {
    /* monotone in u and, inside a moderate interval, matching the inverse CDF computed directly */
    double a = -0.7, b = 1.9, prev = -INFINITY;
    for (int i = 1; i < 100; i++) {
        double u = i / 100.0;
        double x = rng_trunc_normal_inv(u, a, b);
        double pa = phi_cdf(a), pb = phi_cdf(b);
        double back = (phi_cdf(x) - pa) / (pb - pa);
        EXPECT_MSG(fabs(back - u) < 1e-12, "u=%g back=%.15g", u, back);
        EXPECT(x > prev);
        prev = x;
    }
}

int main(void) {
    RUN_TEST(test_philox_known_answers);
    RUN_TEST(test_addressing);
    RUN_TEST(test_uniform_moments);
    RUN_TEST(test_normal_moments);
    RUN_TEST(test_normal_pairs_independent);
    RUN_TEST(test_ndtri);
    RUN_TEST(test_log_sf);
    RUN_TEST(test_trunc_normal_moments);
    RUN_TEST(test_trunc_normal_near_face);
    RUN_TEST(test_trunc_normal_quantiles);
    return flame_test_report();
}
