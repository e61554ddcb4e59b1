/*
 * host.h: what the program asks of the machine it runs on: a monotonic clock, whether stdout is a
 * terminal, how many worker threads to use, and a description of the CPU (model, clock, SIMD width
 * from cpuid, the FMA peak of one core). /proc/cpuinfo and cpuid are read once per process.
 *
 * The FMA peak of one core in fp32 is lanes x FMA units x 2 flops x clock, with
 *   lanes     16 (AVX-512: F, CD, BW, DQ and VL, enabled by the OS), 8 (AVX2 + FMA, AVX),
 *             4 (SSE);
 *   FMA units 2 for AVX2 and AVX-512 cores, except 1 for AMD Zen 1 (128-bit FMA pipes), AVX-512 on
 *             AMD Zen 4 (a 512-bit FMA in two halves), AVX-512 on Intel client cores (model name
 *             without "Xeon") and on the Xeon Bronze, Silver and Gold 5xxx of the Skylake /
 *             Cascade Lake generation (cpuid model 0x55); 1 (a multiplier and an adder) for plain
 *             AVX and SSE;
 *   clock     the nominal base clock: cpufreq's base_frequency, else cpuid leaf 0x16, else the
 *             "@ x.xxGHz" of the model name, else "cpu MHz" of /proc/cpuinfo (what a virtual
 *             machine reports); HostCpu.clock_source names the one used.
 * Turbo and AVX-512 frequency licences move the real figure either way, so benchmarks also measure
 * the clock the core runs at now (host_measure_clock_ghz: a chain of dependent integer multiplies,
 * 3 cycles each on every x86-64 core since 2008) and quote the peak at that clock.
 *
 * defines: HostSimd HostCpu host_now host_stdout_is_tty host_cores host_resolve_threads host_cpu
 *          host_cpu_parse_cpuinfo host_cpu_summary host_simd_name host_fma_units
 *          host_measure_clock_ghz
 */
#ifndef FLAME_HOST_H
#define FLAME_HOST_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* SIMD level usable for fp32 (hardware and operating system support together). */
typedef enum {
    HOST_SIMD_UNKNOWN = -1, /* not an x86 CPU, or cpuid unavailable */
    HOST_SIMD_SSE = 0,      /* 128-bit (every x86-64 CPU) */
    HOST_SIMD_AVX = 1,      /* 256-bit without FMA */
    HOST_SIMD_AVX2 = 2,     /* 256-bit with FMA */
    HOST_SIMD_AVX512 = 3,   /* 512-bit: AVX-512 F, CD, BW, DQ, VL */
} HostSimd;

typedef struct {
    char model[128];  /* "model name" of /proc/cpuinfo ("unknown CPU" when absent) */
    char vendor[16];  /* cpuid vendor ("GenuineIntel", "AuthenticAMD"), or /proc/cpuinfo's */
    int family, model_id, stepping; /* cpuid display family / model (0 when unknown) */
    int cores;        /* online logical CPUs */
    HostSimd simd;
    bool avx512_bf16, avx512_fp16, amx;
    int fp32_lanes;   /* per SIMD register at `simd` */
    int fma_units;    /* per core (see the header comment) */
    double clock_ghz; /* nominal clock; NaN when unknown */
    char clock_source[32];
    double peak_gflops; /* fp32 FMA peak of one core; NaN when unknown */
} HostCpu;

/* Monotonic seconds. */
double host_now(void);

/* Whether stdout is a terminal (a redrawn progress line) or not (plain periodic lines). */
bool host_stdout_is_tty(void);

/* Online logical CPUs (at least 1). */
int host_cores(void);

/* Worker threads for num_envs envs: `requested`, or when 0 all cores but one (at least 1); never
   more than num_envs, never less than 1. */
int host_resolve_threads(int requested, int num_envs);

/* The CPU of this machine, read once (thread-safe). */
const HostCpu *host_cpu(void);

/* Fills model, vendor and clock fields from the text of /proc/cpuinfo (the first processor's
   "model name", "vendor_id", "cpu MHz"); fields absent from the text are left as they are. */
void host_cpu_parse_cpuinfo(const char *text, HostCpu *out);

/* FMA units per core from vendor, family, model id, model name and SIMD level (the rule of the
   header comment). */
int host_fma_units(const HostCpu *c);

/* "AVX-512", "AVX2", "AVX", "SSE" or "unknown". */
const char *host_simd_name(HostSimd s);

/* The clock of the calling thread's core in GHz: the best of `repeats` timings of 4 million
   dependent 64-bit multiplies (3 cycles each, about 4 ms), timed in the thread's CPU time so that
   other work sharing the core does not count; NaN on CPUs other than x86-64. */
double host_measure_clock_ghz(int repeats);

/* One line: "<model> (<cores> cores)", the device of CPU measurements. */
void host_cpu_summary(char *out, size_t len);

#ifdef __cplusplus
}
#endif

#endif
