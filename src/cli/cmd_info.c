/* cmd_info.c: `flame info` (build and machine) and `flame envs` (environment ids). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "flame/blas_core.h"
#include "flame/build_info.h"
#include "flame/check.h"
#include "flame/cli.h"
#include "flame/env.h"
#include "flame/host.h"
#include "flame/mlp.h"
#ifdef FLAME_HAVE_CUDA
#include "flame/cuda_api.h"
#endif

static bool wants_help(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            return true;
        }
    }
    return false;
}

static int reject_args(const char *cmd, int argc, char **argv) {
    if (argc > 1) {
        return cli_fail(cmd, FLAME_EINPUT, "unexpected argument '%s'; `flame %s` takes no options",
                        argv[1], cmd);
    }
    return FLAME_OK;
}

int cmd_info(int argc, char **argv) {
    if (wants_help(argc, argv)) {
        printf("usage: flame info\n\nPrints the version, git commit, compiled backends, the CUDA "
               "devices found, the CPU (SIMD width, FMA peak per core) and the BLAS library of the "
               "CPU backend with the kernel set (core) it runs.\n");
        return FLAME_OK;
    }
    int rc = reject_args("info", argc, argv);
    if (rc) {
        return rc;
    }
    printf("flame %s\n", FLAME_VERSION);
    printf("commit:    %s\n", FLAME_GIT_COMMIT);
    printf("build:     %s\n", FLAME_BUILD_TYPE);
#ifdef FLAME_HAVE_CUDA
    printf("backends:  cpu cuda (architectures %s)\n", FLAME_CUDA_ARCHS);
    int n = flame_cuda_device_count();
    if (n == 0) {
        printf("cuda:      no CUDA device\n");
    } else {
        int drv = flame_cuda_driver_version();
        printf("cuda:      %d device(s), driver %d.%d\n", n, drv / 1000, (drv % 1000) / 10);
        for (int i = 0; i < n; i++) {
            FlameCudaDevice d;
            if (flame_cuda_device_info(i, &d) == 0) {
                printf("  [%d] %s, sm_%d%d, %d SMs, %.1f GiB\n", i, d.name, d.major, d.minor,
                       d.sm_count, d.mem_gib);
            }
        }
    }
#else
    printf("backends:  cpu (built without CUDA)\n");
    printf("cuda:      no CUDA device (not compiled in)\n");
#endif
    const HostCpu *cpu = host_cpu();
    printf("cpu:       %s, %d cores, %s, ", cpu->model, cpu->cores, host_simd_name(cpu->simd));
    if (isnan(cpu->peak_gflops)) {
        printf("FMA peak unknown\n");
    } else {
        printf("FMA peak %.1f GFLOP/s per core (%d fp32 lanes x %d FMA units x 2 x %.2f GHz, %s)\n",
               cpu->peak_gflops, cpu->fp32_lanes, cpu->fma_units, cpu->clock_ghz,
               cpu->clock_source);
    }
    char core[256];
    blas_core_describe(core, sizeof core);
    printf("blas:      %s\n", blas_info());
    printf("blas core: %s\n", core);
    printf("mujoco:    %s\n", mj_versionString());
    return FLAME_OK;
}

int cmd_envs(int argc, char **argv) {
    if (wants_help(argc, argv)) {
        printf("usage: flame envs\n\nLists every environment id with its observation and action "
               "sizes, action box and episode length.\n");
        return FLAME_OK;
    }
    int rc = reject_args("envs", argc, argv);
    if (rc) {
        return rc;
    }
    env_list_print(stdout);
    return FLAME_OK;
}
