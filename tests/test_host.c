/*
 * test_host.c: machine queries (include/flame/host.h) and the OpenBLAS core choice
 * (include/flame/blas_core.h): thread resolution; /proc/cpuinfo parsing on fixed texts; the CPU
 * description against /proc/cpuinfo's flags and the peak formula; the FMA-unit rule; which core
 * replaces which on which CPU; and `flame info` (the core in use is never narrower than the CPU
 * unless the user asked for it, OPENBLAS_CORETYPE always wins).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flame/blas_core.h"
#include "flame/host.h"
#include "flame_test.h"

FLAME_TEST(threads_resolve) {
    int cores = host_cores();
    EXPECT(cores >= 1);
    EXPECT(host_resolve_threads(3, 8) == 3);
    EXPECT(host_resolve_threads(16, 4) == 4);  /* never more than the envs */
    EXPECT(host_resolve_threads(-2, 1) == 1);  /* at least one */
    int autos = host_resolve_threads(0, 1000); /* all cores but one */
    EXPECT(autos == (cores > 1 ? cores - 1 : 1));
    EXPECT(host_resolve_threads(0, 1) == 1);
}

FLAME_TEST(cpuinfo_parsing) {
    const char *text = "processor\t: 0\n"
                       "vendor_id\t: GenuineIntel\n"
                       "cpu family\t: 6\n"
                       "model\t\t: 85\n"
                       "model name\t: Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz\n"
                       "cpu MHz\t\t: 1000.123\n"
                       "flags\t\t: fpu avx2 avx512f\n"
                       "\n"
                       "processor\t: 1\n"
                       "vendor_id\t: OtherVendor\n"
                       "model name\t: second processor\n"
                       "cpu MHz\t\t: 3000.0\n";
    HostCpu c;
    memset(&c, 0, sizeof c);
    c.clock_ghz = NAN;
    host_cpu_parse_cpuinfo(text, &c);
    EXPECT(!strcmp(c.model, "Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz"));
    EXPECT(!strcmp(c.vendor, "GenuineIntel"));
    EXPECT_NEAR("cpu MHz", c.clock_ghz, 1.000123, 1e-12, 0);
    EXPECT(!strcmp(c.clock_source, "cpu MHz"));
    /* "model" is not "model name"; absent keys leave the fields alone */
    HostCpu d;
    memset(&d, 0, sizeof d);
    d.clock_ghz = NAN;
    snprintf(d.model, sizeof d.model, "kept");
    host_cpu_parse_cpuinfo("processor : 0\nmodel : 85\n", &d);
    EXPECT(!strcmp(d.model, "kept") && isnan(d.clock_ghz) && d.vendor[0] == '\0');
}

FLAME_TEST(fma_units_rule) {
    HostCpu c;
    memset(&c, 0, sizeof c);
    snprintf(c.vendor, sizeof c.vendor, "GenuineIntel");
    snprintf(c.model, sizeof c.model, "Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz");
    c.family = 6, c.model_id = 0x55, c.simd = HOST_SIMD_AVX512;
    EXPECT(host_fma_units(&c) == 2);
    snprintf(c.model, sizeof c.model, "Intel(R) Xeon(R) Silver 4114 CPU @ 2.20GHz");
    EXPECT(host_fma_units(&c) == 1);
    snprintf(c.model, sizeof c.model, "Intel(R) Xeon(R) Gold 5120 CPU @ 2.20GHz");
    EXPECT(host_fma_units(&c) == 1);
    c.model_id = 0x6a; /* Ice Lake SP: every model has two */
    EXPECT(host_fma_units(&c) == 2);
    snprintf(c.model, sizeof c.model, "11th Gen Intel(R) Core(TM) i7-1165G7 @ 2.80GHz");
    c.model_id = 0x8c;
    EXPECT(host_fma_units(&c) == 1); /* client AVX-512 */
    c.simd = HOST_SIMD_AVX2;
    EXPECT(host_fma_units(&c) == 2);
    snprintf(c.vendor, sizeof c.vendor, "AuthenticAMD");
    c.family = 0x19, c.simd = HOST_SIMD_AVX512;
    EXPECT(host_fma_units(&c) == 1); /* Zen 4 */
    c.family = 0x17, c.model_id = 0x01, c.simd = HOST_SIMD_AVX2;
    EXPECT(host_fma_units(&c) == 1); /* Zen 1 */
    c.model_id = 0x31;
    EXPECT(host_fma_units(&c) == 2); /* Zen 2 */
    c.simd = HOST_SIMD_SSE;
    EXPECT(host_fma_units(&c) == 1);
}

/* whether /proc/cpuinfo's first flags line lists `flag` */
static bool cpuinfo_flag(const char *flag) {
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) {
        return false;
    }
    char line[8192];
    bool found = false;
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, "flags", 5)) {
            char pat[64];
            snprintf(pat, sizeof pat, " %s ", flag);
            line[strcspn(line, "\n")] = ' ';
            found = strstr(line, pat) != NULL;
            break;
        }
    }
    fclose(f);
    return found;
}

FLAME_TEST(this_cpu) {
    const HostCpu *c = host_cpu();
    EXPECT(c == host_cpu()); /* read once */
    EXPECT(c->cores == host_cores() && c->model[0]);
#if defined(__x86_64__)
    /* the SIMD level agrees with the kernel's view of the CPU (it also checks the OS state) */
    bool avx512 = cpuinfo_flag("avx512f") && cpuinfo_flag("avx512bw") && cpuinfo_flag("avx512dq") &&
                  cpuinfo_flag("avx512vl") && cpuinfo_flag("avx512cd");
    bool avx2 = cpuinfo_flag("avx2") && cpuinfo_flag("fma");
    HostSimd want =
        avx512 ? HOST_SIMD_AVX512
               : (avx2 ? HOST_SIMD_AVX2 : (cpuinfo_flag("avx") ? HOST_SIMD_AVX : HOST_SIMD_SSE));
    EXPECT_MSG(c->simd == want, "cpuid says %s, /proc/cpuinfo %s", host_simd_name(c->simd),
               host_simd_name(want));
    EXPECT(c->avx512_fp16 == cpuinfo_flag("avx512_fp16"));
    const int lanes[] = {4, 8, 8, 16};
    EXPECT(c->fp32_lanes == lanes[c->simd]);
    EXPECT(c->fma_units == host_fma_units(c));
#endif
    if (!isnan(c->peak_gflops)) {
        EXPECT(c->clock_ghz > 0.1 && c->clock_ghz < 10 && c->clock_source[0]);
        EXPECT_NEAR("peak", c->peak_gflops, c->fp32_lanes * c->fma_units * 2.0 * c->clock_ghz, 1e-9,
                    1e-12);
    }
    char line[256];
    host_cpu_summary(line, sizeof line);
    EXPECT(strstr(line, c->model) == line && strstr(line, "cores)"));
}

FLAME_TEST(blas_core_choice) {
    EXPECT(blas_core_simd("Prescott") == HOST_SIMD_SSE);
    EXPECT(blas_core_simd("skylakex") == HOST_SIMD_AVX512); /* OpenBLAS ignores case */
    EXPECT(blas_core_simd("Haswell") == HOST_SIMD_AVX2);
    EXPECT(blas_core_simd("Sandybridge") == HOST_SIMD_AVX);
    EXPECT(blas_core_simd("Cooperlake") == HOST_SIMD_AVX512);
    EXPECT(blas_core_simd("NoSuchCore") == HOST_SIMD_UNKNOWN && blas_core_simd(NULL) == -1);
    /* narrower than the CPU: the CPU's level */
    EXPECT(!strcmp(blas_core_choose("Prescott", HOST_SIMD_AVX512, false), "SkylakeX"));
    EXPECT(!strcmp(blas_core_choose("Haswell", HOST_SIMD_AVX512, false), "SkylakeX"));
    EXPECT(!strcmp(blas_core_choose("Prescott", HOST_SIMD_AVX2, false), "Haswell"));
    EXPECT(!strcmp(blas_core_choose("Prescott", HOST_SIMD_AVX2, true), "Zen"));
    EXPECT(!strcmp(blas_core_choose("Core2", HOST_SIMD_AVX, false), "Sandybridge"));
    /* as wide as the CPU or wider, unknown names, unknown CPUs: left alone */
    EXPECT(blas_core_choose("SkylakeX", HOST_SIMD_AVX512, false) == NULL);
    EXPECT(blas_core_choose("Cooperlake", HOST_SIMD_AVX512, false) == NULL);
    EXPECT(blas_core_choose("Zen", HOST_SIMD_AVX2, true) == NULL);
    EXPECT(blas_core_choose("SkylakeX", HOST_SIMD_AVX2, false) == NULL);
    EXPECT(blas_core_choose("NewCore", HOST_SIMD_AVX512, false) == NULL);
    EXPECT(blas_core_choose("Prescott", HOST_SIMD_SSE, false) == NULL);
    EXPECT(blas_core_choose("Prescott", HOST_SIMD_UNKNOWN, false) == NULL);
}

/* "blas core: NAME (LEVEL), ..." of `flame info` */
static bool info_core(const char *out, char *name, size_t nlen, char *rest, size_t rlen) {
    const char *p = strstr(out, "\nblas core: ");
    if (!p) {
        return false;
    }
    p += strlen("\nblas core: ");
    size_t k = strcspn(p, " ");
    snprintf(name, nlen, "%.*s", (int)k, p);
    snprintf(rest, rlen, "%.*s", (int)strcspn(p, "\n"), p);
    return true;
}

FLAME_TEST(flame_info_reports_the_core) {
    const char *bin = getenv("FLAME_BIN");
    if (!bin) {
        printf("  (FLAME_BIN not set: the command part needs the flame binary)\n");
        return;
    }
    char cmd[1024], out[8192], name[64], rest[512];
    /* as users start it: the core in use is as wide as the CPU, or the line says why not */
    snprintf(cmd, sizeof cmd, "env -u OPENBLAS_CORETYPE '%s' info 2>&1", bin);
    EXPECT(flame_test_run(cmd, out, sizeof out) == 0);
    if (!strstr(out, "blas core: n/a")) {
        EXPECT_MSG(info_core(out, name, sizeof name, rest, sizeof rest), "%s", out);
        HostSimd level = blas_core_simd(name), cpu = host_cpu()->simd;
        bool explained = strstr(rest, "not DYNAMIC_ARCH or could not be re-executed") != NULL;
        EXPECT_MSG(level == HOST_SIMD_UNKNOWN || level >= cpu || explained,
                   "core %s (%s) on a %s CPU: %s", name, host_simd_name(level), host_simd_name(cpu),
                   rest);
        if (strstr(rest, "chosen by flame")) {
            EXPECT_MSG(level == cpu, "%s", rest);
        }
        printf("  this machine: %s\n", rest);
        /* the user's choice wins, also a narrower one */
        snprintf(cmd, sizeof cmd, "OPENBLAS_CORETYPE=Prescott '%s' info 2>&1", bin);
        EXPECT(flame_test_run(cmd, out, sizeof out) == 0);
        EXPECT_MSG(info_core(out, name, sizeof name, rest, sizeof rest) &&
                       !strcmp(name, "Prescott") && strstr(rest, "from OPENBLAS_CORETYPE=Prescott"),
                   "%s", out);
    }
    EXPECT(strstr(out, "\ncpu:       ") != NULL);
}

int main(void) {
    RUN_TEST(threads_resolve);
    RUN_TEST(cpuinfo_parsing);
    RUN_TEST(fma_units_rule);
    RUN_TEST(this_cpu);
    RUN_TEST(blas_core_choice);
    RUN_TEST(flame_info_reports_the_core);
    return flame_test_report();
}
