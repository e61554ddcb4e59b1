/*
 * bench_entropy.cu: kernel lab for the entropy estimator of the TD target (reference3: 3
 * MeanFlow steps from the base, one Hutchinson probe each; decoupled: probes 2, Rademacher),
 * cuda_entropy_estimate on a CUDA backend: B rows, a JVP of the 3 x 256 velocity network per
 * step and probe.
 *
 * versions (--version N):
 *   1  staged: per step the probe, time-feature, JVP (fused tile kernel), trace and step kernels
 *   2  staged on the cluster engine (backend.small_rows=cluster; sm_90)
 *   3  as 2 with the time features of each JVP computed once (backend.merge_launches)
 *   4  fused: one cluster kernel for every step and probe (backend.entropy=fused; sm_90)
 * Sizes: HalfCheetah B = 256 and 4096, Humanoid B = 256; reference3 (and decoupled, full runs).
 * Validation: the CPU estimator (entropy_estimate) on the same state, states and Philox draws, for
 * the first 64 rows (rows are independent), before and after timing.
 */
#include "bench_stage_common.cuh"

#include "../tests/tolerances.h"

extern "C" {
#include "flame/entropy.h"
#include "flame/flow.h"
#include "flame/noise.h"
}

typedef struct {
    const char *env;
    int S, D, B;
    int estimator;
} EntSize;

static int g_ent_estimator = ENT_REFERENCE3;

static void ent_tweak(FlameConfig *c, int v) {
    c->backend.kernels = KERNELS_FUSED;
    c->backend.small_rows = v >= 2 ? SMALL_CLUSTER : SMALL_TILE;
    c->backend.merge_launches = v == 3;
    c->backend.entropy = v == 4 ? PATH_FUSED : PATH_STAGED;
    c->entropy.estimator = g_ent_estimator;
    if (g_ent_estimator == ENT_DECOUPLED) {
        c->entropy.probes = 2;
        c->entropy.probe = PROBE_RADEMACHER;
    }
}

static void run_ent(BenchCtx *bc, void *arg) {
    (void)bc;
    Backend *b = (Backend *)arg;
    cuda_entropy_estimate(b, blob_params(b->pol, b->np), b->next_obs, NULL, b->ent);
}

static bool ent_validate(StageLab *L, double *rel) {
    Backend *b = L->b;
    CudaDebugView v;
    backend_cuda_debug(b, &v);
    AgentState st;
    agent_state_init(&st, &L->cfg, L->S, L->D);
    backend_cuda_ops.get_state(b, &st);
    int B = v.B, S = v.S, D = v.D, R = B < 64 ? B : 64, NP = L->cfg.entropy.probes;
    UpdateNoise nz;
    noise_alloc(&nz, B, S, D, L->cfg.flow.sample_k, L->cfg.flow.num_particles, NP);
    noise_fill_philox(&nz, &L->cfg, 0);
    /* the first R rows: their states, base draws and probes lead the arrays */
    FlowWork fw;
    flow_work_alloc(&fw, &st.L, R);
    float *scratch = (float *)malloc(entropy_scratch_floats(&st.L, R) * sizeof(float));
    float *H = (float *)malloc((size_t)R * sizeof(float));
    entropy_estimate(&st.L, st.pol.params, &L->cfg, v.next_obs, nz.ent_z, nz.ent_probe, NULL, R,
                     &fw, scratch, H);
    bool ok = bench_compare(v.ent, H, (size_t)R, TOL_ENTROPY.atol, TOL_ENTROPY.rtol, rel);
    free(scratch), free(H);
    flow_work_free(&fw);
    noise_free(&nz);
    agent_state_free(&st);
    return ok;
}

static void ent_lab_size(BenchCtx *bc, const EntSize *sz) {
    const char *names[5] = {"", "staged tile", "staged cluster", "staged cluster merged",
                            "fused estimator"};
    g_ent_estimator = sz->estimator;
    bool dec = sz->estimator == ENT_DECOUPLED;
    char sizes_json[256], sizes_txt[96];
    snprintf(sizes_json, sizeof sizes_json,
             "\"env\": \"%s\", \"S\": %d, \"D\": %d, \"B\": %d, \"estimator\": \"%s\", "
             "\"steps\": 3, \"probes\": %d, \"hidden\": 256, \"layers\": 3",
             sz->env, sz->S, sz->D, sz->B, dec ? "decoupled" : "reference3", dec ? 2 : 1);
    snprintf(sizes_txt, sizeof sizes_txt, "%s B=%d %s", sz->env, sz->B,
             dec ? "decoupled" : "reference3");
    int major = 0, dev = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
    for (int v = 1; v <= 4; v++) {
        if (bc->version > 0 && bc->version != v) {
            continue;
        }
        if (v >= 2 && major < 9) { /* clusters */
            BenchTime z = {0, 0};
            bench_record(bc, "entropy", v, names[v], 0, sizes_json, sizes_txt, z, 0, 0, true, true,
                         0, true);
            continue;
        }
        StageLab L;
        stage_lab_open(&L, sz->S, sz->D, sz->B, 100, v, ent_tweak);
        const AgentLayout *Ly = &L.b->L;
        double fp = mlp_flops(&Ly->pol_trunk) + mlp_flops(&Ly->pol_tr) + mlp_flops(&Ly->pol_tt);
        double flops = 3.0 * (dec ? 2 : 1) * 2.0 * sz->B * fp; /* steps x probes x JVP */
        double bytes = 4.0 * (double)sz->B * (sz->S + 2 * sz->D + 1);
        bool ok[2];
        double rel = 0;
        BenchTime bt = {0, 0};
        for (int pass = 0; pass < 2; pass++) {
            CUDA_CHECK(
                cudaMemsetAsync(L.b->ent, 0xff, (size_t)sz->B * sizeof(float), L.b->ctx.stream));
            run_ent(bc, L.b);
            ok[pass] = ent_validate(&L, &rel);
            if (pass == 0) {
                bt = stage_lab_time(bc, &L, run_ent, L.b);
            }
        }
        bench_record(bc, "entropy", v, names[v], 0, sizes_json, sizes_txt, bt, flops, bytes, ok[0],
                     ok[1], rel, false);
        stage_lab_close(&L);
    }
}

static void bench_entropy_lab(BenchCtx *bc) {
    static const EntSize tiny[] = {{"HalfCheetah", 17, 6, 37, ENT_REFERENCE3}};
    static const EntSize quick[] = {{"HalfCheetah", 17, 6, 256, ENT_REFERENCE3}};
    static const EntSize full[] = {{"HalfCheetah", 17, 6, 256, ENT_REFERENCE3},
                                   {"HalfCheetah", 17, 6, 256, ENT_DECOUPLED},
                                   {"HalfCheetah", 17, 6, 4096, ENT_REFERENCE3},
                                   {"Humanoid", 348, 17, 256, ENT_REFERENCE3}};
    const EntSize *s = bc->tiny ? tiny : (bc->quick ? quick : full);
    int n = bc->tiny ? 1 : (bc->quick ? 1 : 4);
    for (int i = 0; i < n; i++) {
        ent_lab_size(bc, &s[i]);
    }
}

#ifdef FLAME_BENCH_MAIN
int main(int argc, char **argv) {
    return bench_lab_main(argc, argv, "bench_entropy", bench_entropy_lab);
}
#endif
