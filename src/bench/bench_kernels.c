/*
 * bench_kernels.c: `flame bench kernels`: the CUDA backend's kernel benchmarks (numbered variants
 * against cuBLAS and the roofline, style.md G16) live with the CUDA code; this hands them the
 * command line (it parses its own options). Without CUDA compiled in, or without a device, the
 * suite says that it needs a GPU, appends a "skipped" record to the --json file if one is named,
 * and succeeds.
 */
#include <stdio.h>
#include <string.h>

#include "flame/bench.h"
#include "flame/check.h"
#ifdef FLAME_HAVE_CUDA
#include "flame/cuda_api.h"
#endif

/* exit status of flame_cuda_bench_kernels when there is no device */
#define BENCH_KERNELS_NO_DEVICE 77

int bench_kernels(int argc, char **argv) {
    const char *json = NULL;
    bool quick = false, help = false;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--json") && i + 1 < argc) {
            json = argv[++i];
        } else if (!strncmp(argv[i], "--json=", 7)) {
            json = argv[i] + 7;
        } else if (!strcmp(argv[i], "--quick")) {
            quick = true;
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            help = true;
        }
    }
#ifdef FLAME_HAVE_CUDA
    /* the CUDA side parses its options (usage errors: 2) before it looks for a device */
    int cuda_rc = flame_cuda_bench_kernels(argc, argv);
    if (cuda_rc != BENCH_KERNELS_NO_DEVICE) {
        return cuda_rc;
    }
    const char *why = "no CUDA device found";
#else
    const char *why = "this flame was built without CUDA";
    if (help) {
        printf("usage: flame bench kernels [--json FILE] [--quick] [lab options]\n\nThe CUDA "
               "kernel labs (bench/bench_*.cu); this flame was built without CUDA.\n");
        return FLAME_OK;
    }
#endif
    (void)help;
    printf("flame bench kernels: skipped: the kernels suite needs a CUDA GPU (%s)\n", why);
    BenchJson j;
    bench_json_header(&j, "kernels", "kernels", "skipped", false, true, NULL, 0, 0, quick);
    bench_json_str(&j, "reason", why);
    int rc = bench_json_write(&j, json);
    bench_json_free(&j);
    return rc;
}
