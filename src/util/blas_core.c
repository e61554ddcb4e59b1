/* blas_core.c: the OpenBLAS core in use and re-exec with a better one (see blas_core.h). */
#include "flame/blas_core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* OpenBLAS entry points, absent when another CBLAS is linked */
extern char *openblas_get_corename(void) __attribute__((weak));
extern char *openblas_get_config(void) __attribute__((weak));

/* Core names of OpenBLAS's x86-64 DYNAMIC_ARCH list by the SIMD level of their sgemm kernels. */
static const struct {
    const char *name;
    HostSimd simd;
} blas_cores[] = {
    {"Katmai", HOST_SIMD_SSE},        {"Coppermine", HOST_SIMD_SSE},
    {"Northwood", HOST_SIMD_SSE},     {"Prescott", HOST_SIMD_SSE},
    {"Banias", HOST_SIMD_SSE},        {"Atom", HOST_SIMD_SSE},
    {"Core2", HOST_SIMD_SSE},         {"Penryn", HOST_SIMD_SSE},
    {"Dunnington", HOST_SIMD_SSE},    {"Nehalem", HOST_SIMD_SSE},
    {"Athlon", HOST_SIMD_SSE},        {"Opteron", HOST_SIMD_SSE},
    {"Opteron_SSE3", HOST_SIMD_SSE},  {"Barcelona", HOST_SIMD_SSE},
    {"Nano", HOST_SIMD_SSE},          {"Bobcat", HOST_SIMD_SSE},
    {"Sandybridge", HOST_SIMD_AVX},   {"Bulldozer", HOST_SIMD_AVX},
    {"Piledriver", HOST_SIMD_AVX},    {"Steamroller", HOST_SIMD_AVX},
    {"Excavator", HOST_SIMD_AVX2},    {"Haswell", HOST_SIMD_AVX2},
    {"Zen", HOST_SIMD_AVX2},          {"SkylakeX", HOST_SIMD_AVX512},
    {"Cooperlake", HOST_SIMD_AVX512}, {"SapphireRapids", HOST_SIMD_AVX512},
};

HostSimd blas_core_simd(const char *core) {
    for (size_t i = 0; core && i < sizeof blas_cores / sizeof blas_cores[0]; i++) {
        if (!strcasecmp(core, blas_cores[i].name)) {
            return blas_cores[i].simd;
        }
    }
    return HOST_SIMD_UNKNOWN;
}

const char *blas_core_choose(const char *current, HostSimd cpu, bool amd) {
    HostSimd have = blas_core_simd(current);
    if (have == HOST_SIMD_UNKNOWN || have >= cpu) {
        return NULL;
    }
    switch (cpu) {
        case HOST_SIMD_AVX512:
            return "SkylakeX";
        case HOST_SIMD_AVX2:
            return amd ? "Zen" : "Haswell";
        case HOST_SIMD_AVX:
            return "Sandybridge";
        default:
            return NULL;
    }
}

/* what the re-executed process learnt from its parent (read once by blas_core_select) */
static char g_detected[32];

static bool openblas_dynamic(void) {
    return openblas_get_corename && openblas_get_config &&
           strstr(openblas_get_config(), "DYNAMIC_ARCH") != NULL;
}

void blas_core_select(char **argv) {
    const char *marker = getenv(BLAS_CORE_MARKER);
    if (marker) {
        /* the re-executed process: remember OpenBLAS's own pick, keep the marker out of children */
        snprintf(g_detected, sizeof g_detected, "%s", marker);
        unsetenv(BLAS_CORE_MARKER);
        return;
    }
    if (getenv("OPENBLAS_CORETYPE") || !openblas_dynamic()) {
        return;
    }
    const HostCpu *cpu = host_cpu();
    const char *current = openblas_get_corename();
    const char *better = blas_core_choose(current, cpu->simd, !strcmp(cpu->vendor, "AuthenticAMD"));
    if (!better) {
        return;
    }
    char detected[32];
    snprintf(detected, sizeof detected, "%s", current);
    if (setenv("OPENBLAS_CORETYPE", better, 1) != 0 || setenv(BLAS_CORE_MARKER, detected, 1) != 0) {
        return;
    }
    fflush(NULL);
    execv("/proc/self/exe", argv);
    /* no re-exec possible: carry on with OpenBLAS's choice, environment as it was */
    unsetenv("OPENBLAS_CORETYPE");
    unsetenv(BLAS_CORE_MARKER);
}

void blas_core_query(BlasCore *out) {
    memset(out, 0, sizeof *out);
    out->simd = HOST_SIMD_UNKNOWN;
    if (!openblas_get_corename) {
        out->origin = BLAS_CORE_NOT_OPENBLAS;
        return;
    }
    snprintf(out->name, sizeof out->name, "%s", openblas_get_corename());
    out->simd = blas_core_simd(out->name);
    const char *want = getenv("OPENBLAS_CORETYPE");
    snprintf(out->wanted, sizeof out->wanted, "%s", want ? want : "");
    if (g_detected[0] && want) {
        out->origin = BLAS_CORE_FLAME;
        snprintf(out->detected, sizeof out->detected, "%s", g_detected);
    } else {
        out->origin = want ? BLAS_CORE_USER : BLAS_CORE_LIBRARY;
    }
}

void blas_core_describe(char *out, size_t len) {
    BlasCore c;
    blas_core_query(&c);
    const HostCpu *cpu = host_cpu();
    if (c.origin == BLAS_CORE_NOT_OPENBLAS) {
        snprintf(out, len, "n/a (not OpenBLAS)");
        return;
    }
    char head[96];
    snprintf(head, sizeof head, "%s (%s)", c.name, host_simd_name(c.simd));
    bool short_of_cpu = c.simd != HOST_SIMD_UNKNOWN && c.simd < cpu->simd;
    switch (c.origin) {
        case BLAS_CORE_FLAME:
            snprintf(out, len,
                     "%s, chosen by flame%s%s%s: OpenBLAS picked %s (%s) on this %s CPU; "
                     "set OPENBLAS_CORETYPE to choose",
                     head, strcasecmp(c.name, c.wanted) ? " (asked for " : "",
                     strcasecmp(c.name, c.wanted) ? c.wanted : "",
                     strcasecmp(c.name, c.wanted) ? ")" : "", c.detected,
                     host_simd_name(blas_core_simd(c.detected)), host_simd_name(cpu->simd));
            break;
        case BLAS_CORE_USER:
            snprintf(out, len, "%s, from OPENBLAS_CORETYPE=%s%s", head, c.wanted,
                     short_of_cpu ? " (slower than this CPU allows)" : "");
            break;
        default:
            snprintf(out, len, "%s, OpenBLAS's choice%s", head,
                     short_of_cpu ? " (slower than this CPU allows; this OpenBLAS is not "
                                    "DYNAMIC_ARCH or could not be re-executed)"
                                  : "");
    }
}
