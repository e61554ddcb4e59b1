/*
 * bench_kernels.cu: `flame bench kernels` (flame_cuda_bench_kernels): the kernel labs of bench/
 * compiled into the backend library, run in one process with one harness (bench_common.cuh):
 * the ceilings of this run first, then every lab (or --lab NAME), every version (or --version N).
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

extern "C" int flame_cuda_bench_kernels(int argc, char **argv) {
    BenchCtx b;
    int rc = bench_parse(&b, argc, argv);
    if (rc) {
        return rc;
    }
    int nl = (int)(sizeof LABS / sizeof LABS[0]);
    if (b.help) {
        printf("usage: flame bench kernels [--json FILE] [--quick] [--tiny] [--lab NAME] "
               "[--version N] [--repeats R]\nlabs:");
        for (int i = 0; i < nl; i++) {
            printf(" %s", LABS[i].name);
        }
        printf("\n");
        return 0;
    }
    bool known = b.lab == NULL;
    for (int i = 0; i < nl && !known; i++) {
        known = !strcmp(LABS[i].name, b.lab);
    }
    if (!known) {
        fprintf(stderr, "flame bench kernels: unknown lab '%s' (try --help)\n", b.lab);
        return 2;
    }
    if (flame_cuda_device_count() == 0) {
        printf("flame bench kernels: skipped: no CUDA device\n");
        return 77;
    }
    bench_setup(&b);
    bench_ceilings(&b);
    for (int i = 0; i < nl; i++) {
        if (!b.lab || !strcmp(b.lab, LABS[i].name)) {
            printf("---- lab %s\n", LABS[i].name);
            LABS[i].fn(&b);
        }
    }
    printf("flame bench kernels: %d measurement(s), %d failed validation\n", b.records, b.failures);
    bench_teardown(&b);
    return b.failures ? 1 : 0;
}
