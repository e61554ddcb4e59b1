/*
 * bench_kernels.cu: `flame bench kernels` (flame_cuda_bench_kernels): the kernel labs of bench/
 * compiled into the backend library, run in one process with one harness (bench_common.cuh):
 * the ceilings of this run first, then every lab (or those of --lab NAME[,NAME...]), every
 * version (or --version N).
 *
 *   mlp_fwd     twin-critic forward over the B*K candidates (bench/bench_mlp_fwd.cu)
 *   mlp_jvp     velocity-network forward + JVP (bench/bench_mlp_jvp.cu)
 *   small_rows  passes over the batch: tile kernel against the cluster engine
 *               (bench/bench_small_rows.cu)
 *   backward    backward at the batch: layered cuBLAS against the fused chain and weight
 *               gradients (bench/bench_backward.cu)
 *   qscore      the candidate-scoring stage: staged against the tensor-core kernel
 *               (bench/bench_qscore.cu)
 *   entropy     the entropy estimator: staged against the fused kernel (bench/bench_entropy.cu)
 */
#include "../bench/bench_common.cuh"
#include "../bench/bench_mlp_fwd.cu"
#include "../bench/bench_mlp_jvp.cu"
#include "../bench/bench_small_rows.cu"
#include "../bench/bench_backward.cu"
#include "../bench/bench_qscore.cu"
#include "../bench/bench_entropy.cu"

typedef struct {
    const char *name;
    BenchLabFn fn;
} BenchLabEntry;

static const BenchLabEntry LABS[] = {
    {"mlp_fwd", bench_mlp_fwd_lab},       {"mlp_jvp", bench_mlp_jvp_lab},
    {"small_rows", bench_small_rows_lab}, {"backward", bench_backward_lab},
    {"qscore", bench_qscore_lab},         {"entropy", bench_entropy_lab},
};

/* whether `name` is one of the comma-separated names of `list` (NULL: every lab) */
static bool lab_selected(const char *list, const char *name) {
    if (!list) {
        return true;
    }
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && !strncmp(p, name, n)) {
            return true;
        }
        p += len + (end ? 1 : 0);
    }
    return false;
}

extern "C" int flame_cuda_bench_kernels(int argc, char **argv) {
    BenchCtx b;
    int rc = bench_parse(&b, argc, argv);
    if (rc) {
        return rc;
    }
    int nl = (int)(sizeof LABS / sizeof LABS[0]);
    if (b.help) {
        printf("usage: flame bench kernels [--json FILE] [--quick] [--tiny] "
               "[--lab NAME[,NAME...]] [--version N] [--repeats R]\nlabs:");
        for (int i = 0; i < nl; i++) {
            printf(" %s", LABS[i].name);
        }
        printf("\n");
        return 0;
    }
    /* every name of --lab must be a lab */
    for (const char *p = b.lab; p && *p;) {
        const char *end = strchr(p, ',');
        int len = end ? (int)(end - p) : (int)strlen(p);
        bool known = false;
        for (int i = 0; i < nl && !known; i++) {
            known = (int)strlen(LABS[i].name) == len && !strncmp(LABS[i].name, p, (size_t)len);
        }
        if (!known) {
            fprintf(stderr, "flame bench kernels: unknown lab '%.*s' (try --help)\n", len, p);
            return 2;
        }
        p += len + (end ? 1 : 0);
    }
    if (b.lab && (!b.lab[0] || b.lab[strlen(b.lab) - 1] == ',')) {
        fprintf(stderr, "flame bench kernels: --lab '%s': give lab names separated by commas\n",
                b.lab);
        return 2;
    }
    if (flame_cuda_device_count() == 0) {
        printf("flame bench kernels: skipped: no CUDA device\n");
        return 77;
    }
    bench_setup(&b);
    bench_ceilings(&b);
    for (int i = 0; i < nl; i++) {
        if (lab_selected(b.lab, LABS[i].name)) {
            printf("---- lab %s\n", LABS[i].name);
            LABS[i].fn(&b);
        }
    }
    printf("flame bench kernels: %d measurement(s), %d failed validation\n", b.records, b.failures);
    bench_teardown(&b);
    return b.failures ? 1 : 0;
}
