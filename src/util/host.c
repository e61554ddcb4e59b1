/* host.c: clock, terminal, thread count and CPU description (see include/flame/host.h). */
#include "flame/host.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define HOST_X86 1
#endif

double host_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

bool host_stdout_is_tty(void) {
    return isatty(STDOUT_FILENO) != 0;
}

int host_cores(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

int host_resolve_threads(int requested, int num_envs) {
    int n = requested;
    if (n <= 0) {
        int cores = host_cores();
        n = cores > 1 ? cores - 1 : 1;
    }
    if (n > num_envs) {
        n = num_envs;
    }
    return n < 1 ? 1 : n;
}

const char *host_simd_name(HostSimd s) {
    switch (s) {
        case HOST_SIMD_AVX512:
            return "AVX-512";
        case HOST_SIMD_AVX2:
            return "AVX2";
        case HOST_SIMD_AVX:
            return "AVX";
        case HOST_SIMD_SSE:
            return "SSE";
        default:
            return "unknown";
    }
}

/* ------------------------------------------------------------------ /proc/cpuinfo */

/* the value of "key<spaces>: value" when `line` starts with key, else NULL */
static const char *cpuinfo_value(const char *line, const char *key) {
    size_t k = strlen(key);
    if (strncmp(line, key, k) != 0 || (line[k] != ' ' && line[k] != '\t' && line[k] != ':')) {
        return NULL;
    }
    const char *c = strchr(line + k, ':');
    if (!c) {
        return NULL;
    }
    c++;
    while (*c == ' ' || *c == '\t') {
        c++;
    }
    return c;
}

void host_cpu_parse_cpuinfo(const char *text, HostCpu *out) {
    bool model = false, vendor = false, mhz = false;
    const char *line = text;
    while (line && *line) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        char buf[512];
        len = len < sizeof buf - 1 ? len : sizeof buf - 1;
        memcpy(buf, line, len);
        buf[len] = '\0';
        if (!strncmp(buf, "processor", 9) && (model || vendor || mhz)) {
            break; /* the first processor's block only */
        }
        const char *v;
        if (!model && (v = cpuinfo_value(buf, "model name")) != NULL) {
            snprintf(out->model, sizeof out->model, "%s", v);
            model = true;
        } else if (!vendor && (v = cpuinfo_value(buf, "vendor_id")) != NULL) {
            snprintf(out->vendor, sizeof out->vendor, "%s", v);
            vendor = true;
        } else if (!mhz && (v = cpuinfo_value(buf, "cpu MHz")) != NULL) {
            char *e = NULL;
            double x = strtod(v, &e);
            if (e != v && x > 0) {
                out->clock_ghz = x * 1e-3;
                snprintf(out->clock_source, sizeof out->clock_source, "cpu MHz");
            }
            mhz = true;
        }
        line = end ? end + 1 : NULL;
    }
}

/* the whole of a small text file, NUL-terminated (NULL when unreadable) */
static char *read_text(const char *path, size_t cap) {
    FILE *f = fopen(path, "r");
    if (!f) {
        return NULL;
    }
    char *buf = malloc(cap);
    size_t n = buf ? fread(buf, 1, cap - 1, f) : 0;
    fclose(f);
    if (buf) {
        buf[n] = '\0';
    }
    return buf;
}

/* "@ 2.50GHz" at the end of a model name */
static double model_name_ghz(const char *model) {
    const char *at = strrchr(model, '@');
    if (!at) {
        return NAN;
    }
    char *e = NULL;
    double x = strtod(at + 1, &e);
    if (e == at + 1 || !(x > 0)) {
        return NAN;
    }
    while (*e == ' ') {
        e++;
    }
    return !strncmp(e, "GHz", 3) ? x : (!strncmp(e, "MHz", 3) ? x * 1e-3 : NAN);
}

/* ------------------------------------------------------------------ cpuid */
#ifdef HOST_X86
static unsigned long long host_xgetbv0(void) {
    unsigned int lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}

static void host_cpuid(HostCpu *c) {
    unsigned int a, b, cx, d;
    if (!__get_cpuid(0, &a, &b, &cx, &d)) {
        return;
    }
    unsigned int max_leaf = a;
    char vendor[13];
    memcpy(vendor, &b, 4), memcpy(vendor + 4, &d, 4), memcpy(vendor + 8, &cx, 4);
    vendor[12] = '\0';
    snprintf(c->vendor, sizeof c->vendor, "%s", vendor);
    __get_cpuid(1, &a, &b, &cx, &d);
    int base_family = (int)((a >> 8) & 0xf), base_model = (int)((a >> 4) & 0xf);
    c->family = base_family == 0xf ? base_family + (int)((a >> 20) & 0xff) : base_family;
    c->model_id = (base_family == 0x6 || base_family == 0xf)
                      ? base_model + (int)(((a >> 16) & 0xf) << 4)
                      : base_model;
    c->stepping = (int)(a & 0xf);
    bool osxsave = (cx >> 27) & 1, avx = (cx >> 28) & 1, fma = (cx >> 12) & 1;
    unsigned long long xcr0 = osxsave ? host_xgetbv0() : 0;
    bool ymm_os = (xcr0 & 0x6) == 0x6, zmm_os = (xcr0 & 0xe6) == 0xe6;
    c->simd = HOST_SIMD_SSE;
    if (!(avx && ymm_os)) {
        return;
    }
    c->simd = HOST_SIMD_AVX;
    if (max_leaf < 7) {
        return;
    }
    __get_cpuid_count(7, 0, &a, &b, &cx, &d);
    bool avx2 = (b >> 5) & 1;
    bool f512 = (b >> 16) & 1, dq = (b >> 17) & 1, cd = (b >> 28) & 1, bw = (b >> 30) & 1,
         vl = (b >> 31) & 1;
    c->avx512_fp16 = ((d >> 23) & 1) && zmm_os;
    c->amx = (d >> 24) & 1; /* AMX-TILE */
    unsigned int sub1 = 0;
    if (a >= 1) {
        unsigned int a1 = 0, b1 = 0, c1 = 0, d1 = 0;
        if (__get_cpuid_count(7, 1, &a1, &b1, &c1, &d1)) {
            sub1 = a1;
        }
    }
    c->avx512_bf16 = ((sub1 >> 5) & 1) && zmm_os;
    if (avx2 && fma) {
        c->simd = HOST_SIMD_AVX2;
    }
    if (c->simd == HOST_SIMD_AVX2 && f512 && dq && cd && bw && vl && zmm_os) {
        c->simd = HOST_SIMD_AVX512;
    }
    if (max_leaf >= 0x16 && isnan(c->clock_ghz)) {
        __get_cpuid(0x16, &a, &b, &cx, &d);
        if ((a & 0xffff) > 0) {
            c->clock_ghz = (double)(a & 0xffff) * 1e-3;
            snprintf(c->clock_source, sizeof c->clock_source, "cpuid 0x16");
        }
    }
}
#endif

int host_fma_units(const HostCpu *c) {
    bool intel = !strcmp(c->vendor, "GenuineIntel"), amd = !strcmp(c->vendor, "AuthenticAMD");
    switch (c->simd) {
        case HOST_SIMD_AVX512:
            if (amd) {
                return c->family == 0x19 ? 1 : 2; /* Zen 4: two halves; Zen 5: full width */
            }
            if (intel && !strstr(c->model, "Xeon")) {
                return 1; /* client cores: one 512-bit FMA (ports 0+1) */
            }
            if (intel && c->model_id == 0x55 &&
                (strstr(c->model, "Silver") || strstr(c->model, "Bronze") ||
                 strstr(c->model, "Gold 5"))) {
                return 1;
            }
            return 2;
        case HOST_SIMD_AVX2:
            return amd && c->family == 0x17 && c->model_id < 0x30 ? 1 : 2;
        case HOST_SIMD_AVX:
        case HOST_SIMD_SSE:
            return 1;
        default:
            return 0;
    }
}

/* ------------------------------------------------------------------ the CPU, once */
static HostCpu g_cpu;
static pthread_once_t g_cpu_once = PTHREAD_ONCE_INIT;

static void host_cpu_read(void) {
    HostCpu *c = &g_cpu;
    memset(c, 0, sizeof *c);
    snprintf(c->model, sizeof c->model, "unknown CPU");
    c->simd = HOST_SIMD_UNKNOWN;
    c->clock_ghz = NAN;
    c->peak_gflops = NAN;
    c->cores = host_cores();
    /* the nominal clock, most trustworthy source first */
    char *base = read_text("/sys/devices/system/cpu/cpu0/cpufreq/base_frequency", 64);
    if (base) {
        double khz = strtod(base, NULL);
        if (khz > 0) {
            c->clock_ghz = khz * 1e-6;
            snprintf(c->clock_source, sizeof c->clock_source, "base_frequency");
        }
        free(base);
    }
#ifdef HOST_X86
    host_cpuid(c);
#endif
    HostCpu text; /* model, vendor and "cpu MHz" from /proc/cpuinfo */
    memset(&text, 0, sizeof text);
    text.clock_ghz = NAN;
    char *info = read_text("/proc/cpuinfo", 1 << 16);
    if (info) {
        host_cpu_parse_cpuinfo(info, &text);
        free(info);
    }
    if (text.model[0]) {
        snprintf(c->model, sizeof c->model, "%s", text.model);
    }
    if (!c->vendor[0] && text.vendor[0]) {
        snprintf(c->vendor, sizeof c->vendor, "%s", text.vendor);
    }
    if (isnan(c->clock_ghz) && !isnan(model_name_ghz(c->model))) {
        c->clock_ghz = model_name_ghz(c->model);
        snprintf(c->clock_source, sizeof c->clock_source, "model name");
    }
    if (isnan(c->clock_ghz) && !isnan(text.clock_ghz)) {
        c->clock_ghz = text.clock_ghz;
        snprintf(c->clock_source, sizeof c->clock_source, "%s", text.clock_source);
    }
    static const int lanes[] = {4, 8, 8, 16};
    c->fp32_lanes = c->simd >= HOST_SIMD_SSE ? lanes[c->simd] : 0;
    c->fma_units = host_fma_units(c);
    if (c->fp32_lanes > 0 && c->fma_units > 0 && c->clock_ghz > 0) {
        c->peak_gflops = (double)c->fp32_lanes * c->fma_units * 2.0 * c->clock_ghz;
    }
}

const HostCpu *host_cpu(void) {
    pthread_once(&g_cpu_once, host_cpu_read);
    return &g_cpu;
}

/* seconds of CPU time of the calling thread (it stops while other work holds the core) */
static double thread_cpu_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double host_measure_clock_ghz(int repeats) {
#if defined(__x86_64__)
    const long iters = 1000000; /* 12 million cycles: about 4 ms at 3 GHz */
    double best = NAN;
    for (int r = 0; r < repeats; r++) {
        unsigned long x = 3;
        double t0 = thread_cpu_seconds();
        for (long i = 0; i < iters; i++) {
            __asm__ volatile("imul %0, %0\n\timul %0, %0\n\timul %0, %0\n\timul %0, %0"
                             : "+r"(x));
        }
        double dt = thread_cpu_seconds() - t0;
        double ghz = dt > 0 ? 12.0 * (double)iters / dt * 1e-9 : NAN;
        best = isnan(best) || ghz > best ? ghz : best;
    }
    return best;
#else
    (void)repeats;
    return NAN;
#endif
}

void host_cpu_summary(char *out, size_t len) {
    const HostCpu *c = host_cpu();
    snprintf(out, len, "%s (%d cores)", c->model, c->cores);
}
