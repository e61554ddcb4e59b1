/*
 * test_golden_cuda.c: one update of the CUDA backend against the authors' own update function, on
 * the golden files of tests/test_reference_golden.c (tests/data/golden_<case>.h5).
 *
 * The CUDA backend takes no noise bundle, but a golden file's bundle holds exactly the Philox draws
 * of its run.seed at its update index and the minibatch gathered from its replay buffer (the CPU
 * test checks this bitwise), so the device update from the file's state and replay buffer sees the
 * reference's inputs and draws. Compared: every quantity of golden_check() (TD target, next and
 * best actions, entropies, noisy actions, times, weights, v-bar, losses, gradients, parameters,
 * Adam moments, EMA / target copies, log alpha, step counts), plus the best-of-N particle scores and
 * choices and the candidate scores against the reference's, with the fused kernels and update
 * graphs (the defaults), with the cuBLAS kernels run eagerly, and (compute capability 9.0 and up)
 * with every opt-in kernel choice on (gpu_new_choices: cluster engine, fused scoring, backward and
 * entropy, grid reductions, merged launches).
 */
#include "gpu_common.h"
#include "golden_common.h"

static const GoldenTols CUDA_TOLS = {TOL_GOLDEN_CUDA_VALUE, TOL_GOLDEN_CUDA_GRAD,
                                     TOL_GOLDEN_CUDA_MOMENT, TOL_GOLDEN_CUDA_STEP,
                                     TOL_GOLDEN_CUDA_SCALAR};

static void check_case(const char *name, int kernels, bool graphs, bool new_choices) {
    char path[4096], tag[160];
    golden_path(name, path, sizeof path);
    snprintf(tag, sizeof tag, "%s cuda %s%s%s", name,
             kernels == KERNELS_FUSED ? "fused" : "cublas", graphs ? " graphs" : "",
             new_choices ? " new" : "");
    printf("  -- %s (%s)\n", tag, path);
    Checkpoint ck;
    if (ckpt_read(path, &ck, true) != FLAME_OK) {
        EXPECT_MSG(0, "%s: %s", path, flame_last_error());
        return;
    }
    FlameConfig cfg = ck.cfg;
    cfg.backend.type = BACKEND_CUDA;
    cfg.backend.kernels = kernels;
    cfg.backend.graphs = graphs;
    cfg.backend.noise_file[0] = '\0';
    if (new_choices) {
        gpu_new_choices(&cfg);
    }
    Backend *b = gpu_create(&backend_cuda_ops, &cfg, ck.obs_dim, ck.act_dim);
    backend_cuda_ops.set_state(b, &ck.st);
    EXPECT(ck.has_replay);
    backend_cuda_ops.set_replay(b, &ck.replay);
    update_step(&backend_cuda_ops, b);
    AgentState after;
    agent_state_init(&after, &cfg, ck.obs_dim, ck.act_dim);
    backend_cuda_ops.get_state(b, &after);
    GoldenGot g;
    memset(&g, 0, sizeof g);
    backend_cuda_ops.get_metrics(b, &g.m);
    CudaDebugView v;
    backend_cuda_debug(b, &v);
    g.y = v.y, g.next_a = v.next_a, g.ent = v.ent;
    bool flame = cfg.algo != ALGO_SAC;
    if (flame) {
        g.a_star = v.a_star, g.x = v.x, g.r = v.r, g.t = v.t, g.w = v.w, g.vbar = v.vbar;
    }
    GoldenRef R;
    if (golden_load(path, &ck.st, &cfg, &R) != 0) {
        EXPECT_MSG(0, "%s: golden file missing", path);
    } else {
        golden_check(tag, &cfg, &R, &ck.st, &after, &g, &CUDA_TOLS,
                     !flame || !cfg.flow.collapse_k);
        if (flame) {
            /* the best-of-N scores and choices (the generator keeps the best and second-best
               particles of every row apart by more than round-off) */
            char nm[256];
            snprintf(nm, sizeof nm, "%s particle scores", tag);
            double e = golden_cmp(nm, v.pscore, R.particle_q, NULL, (size_t)R.B * R.Np,
                                  TOL_GOLDEN_CUDA_VALUE);
            printf("       %-22s %-20s %.3g\n", tag, "particle scores", e);
            int differ = 0;
            for (int i = 0; i < R.B; i++) {
                const float *q = R.particle_q + (size_t)i * R.Np;
                int best = 0;
                for (int p = 1; p < R.Np; p++) {
                    best = q[p] > q[best] ? p : best;
                }
                differ += v.pbest[i] != best;
            }
            EXPECT_MSG(differ == 0, "%s: %d rows chose another particle than the reference", tag,
                       differ);
            if (R.cand_q) {
                snprintf(nm, sizeof nm, "%s candidate scores", tag);
                e = golden_cmp(nm, v.qc, R.cand_q, NULL, (size_t)R.B * R.K, TOL_GOLDEN_CUDA_VALUE);
                printf("       %-22s %-20s %.3g\n", tag, "candidate scores", e);
            }
        }
        golden_free(&R);
    }
    agent_state_free(&after);
    backend_cuda_ops.destroy(b);
    ckpt_free(&ck);
}

FLAME_TEST(test_golden_cuda) {
    FlameCudaDevice dev;
    bool cluster = flame_cuda_device_info(0, &dev) == 0 && dev.major >= 9;
    if (!cluster) {
        printf("  (the opt-in kernel choices need compute capability 9.0: not run here)\n");
    }
    for (int c = 0; c < GOLDEN_NCASES; c++) {
        check_case(GOLDEN_CASES[c], KERNELS_FUSED, true, false);
        check_case(GOLDEN_CASES[c], KERNELS_CUBLAS, false, false);
        if (cluster) {
            check_case(GOLDEN_CASES[c], KERNELS_FUSED, true, true);
        }
    }
}

int main(void) {
    FLAME_REQUIRE_GPU();
    h5_silence();
    RUN_TEST(test_golden_cuda);
    return flame_test_report();
}
