/*
 * blas_core.h: which OpenBLAS kernel set ("core") the CPU backend runs, and choosing a better one
 * when OpenBLAS picks a core that lacks SIMD features this CPU has.
 *
 * OpenBLAS built with DYNAMIC_ARCH (Debian's) picks its kernels from cpuid when the library is
 * loaded, before main(). A CPU model it does not know falls back to a generic core: OpenBLAS 0.3.21
 * runs its SSE3 "Prescott" kernels on Emerald Rapids Xeons, about a fifth of the speed of its
 * AVX-512 "SkylakeX" kernels there. OPENBLAS_CORETYPE overrides the choice, but it is read only at
 * load time, so blas_core_select() (the first call of main) re-executes the program once with
 * OPENBLAS_CORETYPE set when
 *   - the library is OpenBLAS with DYNAMIC_ARCH,
 *   - the user did not set OPENBLAS_CORETYPE (their choice always wins, including "Prescott"),
 *   - the core in use is a known one whose SIMD level (blas_core_simd) is below the CPU's
 *     (host_cpu()->simd), and a core of the CPU's level exists: SkylakeX for AVX-512, Haswell
 *     (Intel) or Zen (AMD) for AVX2, Sandybridge for AVX.
 * The re-executed process carries FLAME_BLAS_CORE_DETECTED=<OpenBLAS's own pick>, which also stops
 * a second re-exec. Unknown core names are left alone. Linked against another BLAS, nothing
 * happens.
 *
 * defines: BlasCoreOrigin BlasCore blas_core_select blas_core_query blas_core_choose
 *          blas_core_simd blas_core_describe BLAS_CORE_MARKER
 */
#ifndef FLAME_BLAS_CORE_H
#define FLAME_BLAS_CORE_H

#include <stdbool.h>
#include <stddef.h>

#include "flame/host.h"

#define BLAS_CORE_MARKER "FLAME_BLAS_CORE_DETECTED"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    BLAS_CORE_NOT_OPENBLAS, /* another CBLAS: no core to report */
    BLAS_CORE_LIBRARY,      /* OpenBLAS chose the core itself */
    BLAS_CORE_USER,         /* OPENBLAS_CORETYPE set by the user */
    BLAS_CORE_FLAME,        /* OPENBLAS_CORETYPE set by blas_core_select */
} BlasCoreOrigin;

typedef struct {
    BlasCoreOrigin origin;
    char name[32];     /* core in use ("" for another BLAS) */
    char detected[32]; /* BLAS_CORE_FLAME: what OpenBLAS had picked itself */
    char wanted[32];   /* OPENBLAS_CORETYPE ("" when unset) */
    HostSimd simd;     /* SIMD level of the core in use (HOST_SIMD_UNKNOWN for unknown names) */
} BlasCore;

/* Called first in main(): re-executes the program (argv as given) with OPENBLAS_CORETYPE set when
   the rules of the header comment ask for it; returns when it does not (or when exec fails). */
void blas_core_select(char **argv);

/* The core in use and where the choice came from. */
void blas_core_query(BlasCore *out);

/* The core to run instead of `current` on a CPU of level `cpu` (amd: an AMD CPU), or NULL when
   `current` is unknown or already uses the CPU's level (or more). */
const char *blas_core_choose(const char *current, HostSimd cpu, bool amd);

/* SIMD level of an OpenBLAS core name (case-insensitive); HOST_SIMD_UNKNOWN for names not known. */
HostSimd blas_core_simd(const char *core);

/* One line for `flame info`, bench headers and run logs, e.g. "SkylakeX (AVX-512; chosen by flame:
   OpenBLAS picked Prescott (SSE) on this AVX-512 CPU; OPENBLAS_CORETYPE overrides)". */
void blas_core_describe(char *out, size_t len);

#ifdef __cplusplus
}
#endif

#endif
