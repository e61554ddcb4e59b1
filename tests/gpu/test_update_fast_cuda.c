/*
 * test_update_fast_cuda.c: whole updates with every new CUDA kernel choice on (backend.small_rows
 * cluster, scoring, backward and entropy fused, grid reductions, merged launches) against the CPU
 * reference with the checks of test_update_cuda.c (10 updates, losses at each, parameters at the
 * end), captured as graphs (the grid reductions' counters and the cluster launches replay) and
 * eagerly, fp32 and TF32; alpha steps inside the compared updates (the grid reduction of the
 * temperature step, captured and replayed); and the structure they are for: an actor update's
 * graph has fewer nodes with them than without. Every update is audited as in test_update_cuda.c
 * (its Adam and Polyak steps replayed on the host). FLAME_GPU_TEST_SIZES picks the cases.
 * The cluster choices need compute capability 9.0: exit 77 below that or without a device.
 */
#define FLAME_UPDATE_CHECKS_ONLY
#include "test_update_cuda.c"

static void tw_fast_eps(FlameConfig *c) {
    tw_eps(c);
    gpu_new_choices(c);
}

static void tw_fast_alpha_every_update(FlameConfig *c) {
    tw_alpha_every_update(c);
    gpu_new_choices(c);
}

static void tw_fast_alpha_every_3(FlameConfig *c) {
    tw_alpha_every_3(c);
    gpu_new_choices(c);
}

/* the GPU runs compared with one CPU trajectory */
enum { F_GRAPHS = 1, F_EAGER = 2, F_GRAPHS_TF32 = 4 };

/* the CPU trajectory with `cpu_tweak`, the GPU's (the variants of `variants`) with `gpu_tweak`:
   the same plus every new choice */
static void run_fast_with(int algo, int compat, GpuSize size, int variants, GpuTweak cpu_tweak,
                          GpuTweak gpu_tweak, const char *extra) {
    const GpuShape *sh = &GPU_SHAPES[size];
    FlameConfig cc;
    gpu_config(&cc, algo, compat, size, BACKEND_CPU, KERNELS_FUSED, cpu_tweak);
    Trajectory tr;
    cpu_trajectory(&cc, sh->S, sh->D, &tr);
    for (int k = 0; k < 3; k++) {
        if (!(variants & (1 << k))) {
            continue;
        }
        bool graphs = k != 1, tf32 = k == 2;
        FlameConfig cg;
        gpu_config(&cg, algo, compat, size, BACKEND_CUDA, KERNELS_FUSED, gpu_tweak);
        cg.backend.graphs = graphs;
        cg.backend.precision = tf32 ? PRECISION_TF32 : PRECISION_FP32;
        char tag[160]; /* room for the suffixes gpu_against adds in its 256-byte names */
        snprintf(tag, sizeof tag, "%s %s %s, all fast%s%s%s", config_algo_name(algo),
                 compat ? "consistent" : "reference", sh->name, extra ? extra : "",
                 graphs ? ", graphs" : ", eager", tf32 ? ", tf32" : "");
        gpu_against(&cg, sh->S, sh->D, &tr, tf32 ? CMP_DISPLACEMENT : CMP_ELEMENTWISE, tag);
    }
    traj_free(&tr);
}

static void run_fast(int algo, int compat, GpuSize size, int variants) {
    run_fast_with(algo, compat, size, variants, tw_eps, tw_fast_eps, NULL);
}

FLAME_TEST(test_fast_updates) {
    if (gpu_runs_min_only()) { /* the alpha-step case below covers capture and replay */
        return;
    }
    if (gpu_runs_small()) {
        int algos[3] = {ALGO_FLAME_M, ALGO_FLAME_R, ALGO_SAC};
        for (int a = 0; a < 3; a++) {
            run_fast(algos[a], COMPAT_REFERENCE, SIZE_ODD, F_GRAPHS);
        }
        run_fast(ALGO_FLAME_M, COMPAT_CONSISTENT, SIZE_ODD, F_EAGER);
    }
    if (gpu_runs_real()) {
        run_fast(ALGO_FLAME_M, COMPAT_REFERENCE, SIZE_HALFCHEETAH,
                 F_GRAPHS | F_EAGER | F_GRAPHS_TF32);
        run_fast(ALGO_SAC, COMPAT_REFERENCE, SIZE_HALFCHEETAH, F_GRAPHS);
        run_fast(ALGO_FLAME_M, COMPAT_REFERENCE, SIZE_HUMANOID, F_GRAPHS);
    }
}

/* the temperature step (a grid reduction with the new choices) inside captured graphs; with
   FLAME_GPU_TEST_SIZES=min the one case that compute-sanitizer runs: graph capture and replay,
   the grid reductions' counters across replays, the cluster launches */
FLAME_TEST(test_fast_alpha_steps) {
    if (gpu_runs_small()) {
        run_fast_with(ALGO_FLAME_M, COMPAT_REFERENCE, SIZE_ODD, F_GRAPHS, tw_alpha_every_update,
                      tw_fast_alpha_every_update, ", alpha every update");
    }
    if (gpu_runs_small() && !gpu_runs_min_only()) {
        run_fast_with(ALGO_FLAME_R, COMPAT_REFERENCE, SIZE_ODD, F_GRAPHS, tw_alpha_every_3,
                      tw_fast_alpha_every_3, ", alpha every 3rd");
        run_fast_with(ALGO_SAC, COMPAT_REFERENCE, SIZE_ODD, F_GRAPHS, tw_alpha_every_3,
                      tw_fast_alpha_every_3, ", alpha every 3rd");
    }
    if (gpu_runs_real()) {
        run_fast_with(ALGO_FLAME_M, COMPAT_REFERENCE, SIZE_HALFCHEETAH, F_GRAPHS, tw_alpha_every_3,
                      tw_fast_alpha_every_3, ", alpha every 3rd");
    }
}

/* nodes of the captured graph of an actor update (HalfCheetah sizes) */
static int actor_graph_nodes(bool fast) {
    const GpuShape *sh = &GPU_SHAPES[SIZE_HALFCHEETAH];
    FlameConfig cg;
    gpu_config(&cg, ALGO_FLAME_M, COMPAT_REFERENCE, SIZE_HALFCHEETAH, BACKEND_CUDA, KERNELS_FUSED,
               fast ? gpu_new_choices : NULL);
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
    RUN_TEST(test_fast_alpha_steps);
    return flame_test_report();
}
