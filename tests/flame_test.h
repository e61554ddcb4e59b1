/*
 * flame_test.h: the test harness. One executable per module, registered with CTest.
 *
 *   FLAME_TEST(name) { EXPECT(x > 0); EXPECT_CLOSE("w", got, ref, n, atol, rtol); }
 *   int main(void) { RUN_TEST(name); return flame_test_report(); }
 *
 * EXPECT_CLOSE passes when |got-ref| <= atol + rtol*|ref| for every element; any NaN/Inf in either
 * array fails. It prints the worst element and how much of its allowance it used, so a log shows how
 * close each check is to failing. FLAME_TOL_SCALE (environment) scales every tolerance.
 * A failing FLAME_CHECK inside library code fails the running test (fatal hook) instead of exiting 1.
 * flame_test_run() runs a command (the flame binary of $FLAME_BIN) and keeps its output.
 * GPU tests call flame_require_gpu() first: it returns 77 (CTest SKIP_RETURN_CODE) without a device.
 * Every test runs the OpenBLAS core the flame binary runs (blas_core.h, chosen before main), so a
 * test and a flame command it starts compute bitwise alike, at the CPU's speed.
 */
#ifndef FLAME_TEST_H
#define FLAME_TEST_H

#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "flame/blas_core.h"
#include "flame/check.h"

static int flame_test_failures = 0;
static int flame_test_checks = 0;
static int flame_test_count = 0;
static const char *flame_test_current = "";
static jmp_buf flame_test_jmp;
static int flame_test_jmp_armed = 0;

#define FLAME_TEST(name) static void name(void)

/* glibc passes main's arguments to constructors; blas_core_select re-executes at most once */
__attribute__((constructor)) static void flame_test_blas_core(int argc, char **argv) {
    (void)argc;
    blas_core_select(argv);
}

static inline void flame_test_fatal_hook(const char *msg) {
    fprintf(stderr, "  FAIL [%s] fatal error inside the code under test: %s\n", flame_test_current,
            msg);
    flame_test_failures++;
    if (flame_test_jmp_armed) {
        longjmp(flame_test_jmp, 1);
    }
    exit(1);
}

#define RUN_TEST(fn)                                                                               \
    do {                                                                                           \
        int before_ = flame_test_failures;                                                         \
        flame_test_current = #fn;                                                                  \
        flame_set_fatal_hook(flame_test_fatal_hook);                                               \
        flame_test_count++;                                                                        \
        flame_test_jmp_armed = 1;                                                                  \
        if (setjmp(flame_test_jmp) == 0) {                                                         \
            fn();                                                                                  \
        }                                                                                          \
        flame_test_jmp_armed = 0;                                                                  \
        printf("%s %s\n", flame_test_failures == before_ ? "  ok  " : "  FAIL", #fn);              \
        fflush(stdout);                                                                            \
    } while (0)

#define EXPECT(cond)                                                                               \
    do {                                                                                           \
        flame_test_checks++;                                                                       \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "  FAIL %s:%d [%s]: %s\n", __FILE__, __LINE__, flame_test_current,     \
                    #cond);                                                                        \
            flame_test_failures++;                                                                 \
        }                                                                                          \
    } while (0)

#define EXPECT_MSG(cond, ...)                                                                      \
    do {                                                                                           \
        flame_test_checks++;                                                                       \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "  FAIL %s:%d [%s]: %s: ", __FILE__, __LINE__, flame_test_current,     \
                    #cond);                                                                        \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
            flame_test_failures++;                                                                 \
        }                                                                                          \
    } while (0)

static inline double flame_tol_scale(void) {
    const char *s = getenv("FLAME_TOL_SCALE");
    double v = s ? atof(s) : 1.0;
    return v > 0 ? v : 1.0;
}

/* Element-wise closeness on arrays accessed through `get(ptr, i)`. Returns 1 on pass. */
static inline int flame_expect_close_impl(const char *file, int line, const char *name, const void *got,
                                   const void *ref, long n, double atol, double rtol,
                                   double (*get)(const void *, long), int verbose) {
    double scale = flame_tol_scale();
    atol *= scale;
    rtol *= scale;
    long worst = -1, nonfinite = -1;
    double worst_frac = 0, max_abs = 0, max_rel = 0;
    for (long i = 0; i < n; i++) {
        double g = get(got, i), r = get(ref, i);
        if (!isfinite(g) || !isfinite(r)) {
            nonfinite = i;
            break;
        }
        double err = fabs(g - r);
        double allow = atol + rtol * fabs(r);
        double frac = allow > 0 ? err / allow : (err > 0 ? INFINITY : 0);
        if (err > max_abs) {
            max_abs = err;
        }
        if (r != 0 && err / fabs(r) > max_rel) {
            max_rel = err / fabs(r);
        }
        if (worst < 0 || frac > worst_frac) {
            worst_frac = frac;
            worst = i;
        }
    }
    flame_test_checks++;
    if (nonfinite >= 0) {
        fprintf(stderr, "  FAIL %s:%d [%s] %s: non-finite value at [%ld]: got %g ref %g\n", file,
                line, flame_test_current, name, nonfinite, get(got, nonfinite),
                get(ref, nonfinite));
        flame_test_failures++;
        return 0;
    }
    int pass = worst_frac <= 1.0;
    if (!pass || verbose) {
        fprintf(pass ? stdout : stderr,
                "  %s %s:%d [%s] %s: n=%ld max|err|=%.3g max rel=%.3g worst [%ld] got %.9g ref "
                "%.9g (%.1f%% of allowance; atol %.2g rtol %.2g)\n",
                pass ? "    " : "FAIL", file, line, flame_test_current, name, n, max_abs, max_rel,
                worst, worst >= 0 ? get(got, worst) : 0.0, worst >= 0 ? get(ref, worst) : 0.0,
                100.0 * worst_frac, atol, rtol);
    }
    if (!pass) {
        flame_test_failures++;
    }
    return pass;
}

static inline double flame_get_f(const void *p, long i) {
    return (double)((const float *)p)[i];
}
static inline double flame_get_d(const void *p, long i) {
    return ((const double *)p)[i];
}

/* float arrays */
#define EXPECT_CLOSE(name, got, ref, n, atol, rtol)                                                \
    flame_expect_close_impl(__FILE__, __LINE__, name, got, ref, (long)(n), atol, rtol,             \
                            flame_get_f, 1)
/* double arrays */
#define EXPECT_CLOSE_D(name, got, ref, n, atol, rtol)                                              \
    flame_expect_close_impl(__FILE__, __LINE__, name, got, ref, (long)(n), atol, rtol,             \
                            flame_get_d, 1)
/* quiet variants for checks inside loops (print only on failure) */
#define EXPECT_CLOSE_Q(name, got, ref, n, atol, rtol)                                              \
    flame_expect_close_impl(__FILE__, __LINE__, name, got, ref, (long)(n), atol, rtol,             \
                            flame_get_f, 0)
#define EXPECT_CLOSE_DQ(name, got, ref, n, atol, rtol)                                             \
    flame_expect_close_impl(__FILE__, __LINE__, name, got, ref, (long)(n), atol, rtol,             \
                            flame_get_d, 0)
/* scalars (double); the _Q form prints only on failure (for loops) */
#define EXPECT_NEAR(name, got, ref, atol, rtol)                                                    \
    do {                                                                                           \
        double g_ = (double)(got), r_ = (double)(ref);                                             \
        flame_expect_close_impl(__FILE__, __LINE__, name, &g_, &r_, 1, atol, rtol, flame_get_d,    \
                                1);                                                                \
    } while (0)
#define EXPECT_NEAR_Q(name, got, ref, atol, rtol)                                                  \
    do {                                                                                           \
        double g_ = (double)(got), r_ = (double)(ref);                                             \
        flame_expect_close_impl(__FILE__, __LINE__, name, &g_, &r_, 1, atol, rtol, flame_get_d,    \
                                0);                                                                \
    } while (0)

/* Runs a shell command, keeps up to n - 1 bytes of its stdout in out; returns its exit status (-1
   when it did not exit normally). */
static inline int flame_test_run(const char *cmd, char *out, size_t n) {
    FILE *p = popen(cmd, "r");
    if (!p) {
        return -1;
    }
    size_t k = fread(out, 1, n - 1, p);
    out[k] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static inline int flame_test_report(void) {
    printf("%d test(s), %d check(s), %d failure(s)\n", flame_test_count, flame_test_checks,
           flame_test_failures);
    return flame_test_failures == 0 ? 0 : 1;
}

#endif
