/*
 * test_update_fast_cuda.c: whole updates with every new CUDA kernel choice on (backend.small_rows
 * cluster, scoring, backward and entropy fused, grid reductions, merged launches) against the CPU
 * reference with the checks of test_update_cuda.c (10 updates, losses at each, parameters at the
 * end), captured as graphs (the grid reductions' counters and the cluster launches replay) and
 * eagerly, fp32 and TF32; and the structure they are for: an actor update's graph has fewer nodes
 * with them than without. Every update is audited as in test_update_cuda.c (its Adam and Polyak
 * steps replayed on the host). FLAME_GPU_TEST_SIZES picks the cases.
 * The cluster choices need compute capability 9.0: exit 77 below that or without a device.
 */
#define FLAME_UPDATE_CHECKS_ONLY
#include "test_update_cuda.c"

static void fast_choices(FlameConfig *c) {
    c->backend.small_rows = SMALL_CLUSTER;
    c->backend.scoring = PATH_FUSED;
    c->backend.backward = PATH_FUSED;
    c->backend.entropy = PATH_FUSED;
    c->backend.reductions = REDUCE_GRID;
    c->backend.merge_launches = true;
}

static void tw_fast_eps(FlameConfig *c) {
    tw_eps(c);
    fast_choices(c);
}

static void run_fast(int algo, int compat, GpuSize size, bool graphs, bool tf32) {
    const GpuShape *sh = &GPU_SHAPES[size];
    FlameConfig cc, cg;
    gpu_config(&cc, algo, compat, size, BACKEND_CPU, KERNELS_FUSED, tw_eps);
    gpu_config(&cg, algo, compat, size, BACKEND_CUDA, KERNELS_FUSED, tw_fast_eps);
    cg.backend.graphs = graphs;
    cg.backend.precision = tf32 ? PRECISION_TF32 : PRECISION_FP32;
    Trajectory tr;
    cpu_trajectory(&cc, sh->S, sh->D, &tr);
    char tag[160]; /* room for the suffixes gpu_against adds in its 256-byte names */
    snprintf(tag, sizeof tag, "%s %s %s, all fast%s%s", config_algo_name(algo),
             compat ? "consistent" : "reference", sh->name, graphs ? ", graphs" : ", eager",
             tf32 ? ", tf32" : "");
    gpu_against(&cg, sh->S, sh->D, &tr, tf32 ? CMP_DISPLACEMENT : CMP_ELEMENTWISE, tag);
    traj_free(&tr);
}

FLAME_TEST(test_fast_updates) {
    if (gpu_runs_min_only()) { /* compute-sanitizer: graph capture and replay */
        run_fast(ALGO_FLAME_M, COMPAT_REFERENCE, SIZE_ODD, true, false);
        return;
    }
    if (gpu_runs_small()) {
        int algos[3] = {ALGO_FLAME_M, ALGO_FLAME_R, ALGO_SAC};
        for (int a = 0; a < 3; a++) {
            run_fast(algos[a], COMPAT_REFERENCE, SIZE_ODD, true, false);
        }
        run_fast(ALGO_FLAME_M, COMPAT_CONSISTENT, SIZE_ODD, false, false);
    }
    if (gpu_runs_real()) {
        run_fast(ALGO_FLAME_M, COMPAT_REFERENCE, SIZE_HALFCHEETAH, true, false);
        run_fast(ALGO_FLAME_M, COMPAT_REFERENCE, SIZE_HALFCHEETAH, false, false);
        run_fast(ALGO_FLAME_M, COMPAT_REFERENCE, SIZE_HALFCHEETAH, true, true);
        run_fast(ALGO_SAC, COMPAT_REFERENCE, SIZE_HALFCHEETAH, true, false);
        run_fast(ALGO_FLAME_M, COMPAT_REFERENCE, SIZE_HUMANOID, true, false);
    }
}

/* nodes of the captured graph of an actor update (HalfCheetah sizes) */
static int actor_graph_nodes(bool fast) {
    const GpuShape *sh = &GPU_SHAPES[SIZE_HALFCHEETAH];
    FlameConfig cg;
    gpu_config(&cg, ALGO_FLAME_M, COMPAT_REFERENCE, SIZE_HALFCHEETAH, BACKEND_CUDA, KERNELS_FUSED,
               fast ? fast_choices : NULL);
    cg.backend.graphs = true;
    Backend *b = gpu_create(GPU, &cg, sh->S, sh->D);
    gpu_push_random(GPU, b, sh->S, sh->D, 900);
    for (int i = 0; i < 6; i++) { /* every flag combination of the first updates is captured */
        update_step(GPU, b);
    }
    GPU->sync(b);
    int n = backend_cuda_graph_nodes(b, true);
    GPU->destroy(b);
    return n;
}

FLAME_TEST(test_fewer_graph_nodes) {
    if (!gpu_runs_real()) { /* HalfCheetah sizes, no CPU reference */
        return;
    }
    int before = actor_graph_nodes(false), after = actor_graph_nodes(true);
    printf(
        "       graph nodes per actor update: %d with the staged kernels, %d with the new ones\n",
        before, after);
    EXPECT(before > 0 && after > 0);
    EXPECT_MSG(after < before, "actor update graph: %d nodes with the new kernels, %d without",
               after, before);
}

int main(void) {
    FLAME_REQUIRE_GPU();
    FLAME_REQUIRE_CLUSTERS();
    RUN_TEST(test_fewer_graph_nodes);
    RUN_TEST(test_fast_updates);
    return flame_test_report();
}
