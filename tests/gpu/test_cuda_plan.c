/*
 * test_cuda_plan.c: the CUDA backend's memory plan (backend_cuda_plan_bytes), which runs without a
 * device: it covers at least the buffers whose sizes follow from the config alone (replay, state,
 * candidate draws and weights, cuBLAS workspace), and its differences between configs are exactly
 * the buffers that the changed key adds: the replay ring per transition, the exact estimator's
 * Jacobians and LU, the fused scoring's state projections.
 */
#include "flame/agent.h"
#include "flame/backend_cuda.h"
#include "flame/config.h"
#include "flame_test.h"

#define S_DIM 17
#define D_DIM 6

static FlameConfig base_config(void) {
    FlameConfig c;
    config_defaults(&c);
    config_resolve(&c);
    return c;
}

static size_t plan(FlameConfig c) {
    config_resolve(&c);
    EXPECT(config_validate(&c) == FLAME_OK);
    return backend_cuda_plan_bytes(&c, S_DIM, D_DIM);
}

FLAME_TEST(test_plan_covers_the_sized_buffers) {
    FlameConfig c = base_config();
    AgentLayout L;
    agent_layout_init(&L, &c, S_DIM, D_DIM);
    size_t C = (size_t)c.update.replay_size, B = (size_t)c.update.batch_size;
    size_t K = (size_t)c.flow.sample_k, np = L.pol_table.total, nq = L.q_table.total;
    size_t replay = C * (4 * (2 * S_DIM + D_DIM + 1) + 1);
    size_t state = 4 * (4 * np + 8 * nq + np + 2 * nq);
    size_t batch = 4 * (B * K * D_DIM + 2 * B * K);
    size_t lower = replay + state + batch + (32u << 20);
    size_t got = plan(c);
    printf("       HalfCheetah defaults: %.1f MiB planned, %.1f MiB in the sized buffers\n",
           got / 1048576.0, lower / 1048576.0);
    EXPECT(got >= lower);
}

FLAME_TEST(test_plan_differences) {
    FlameConfig c = base_config();
    size_t p0 = plan(c);
    /* replay: one transition = 2 S + D + 1 floats and a done byte */
    FlameConfig r = c;
    r.update.replay_size = 2 * c.update.replay_size;
    EXPECT(plan(r) - p0 == (size_t)c.update.replay_size * (4 * (2 * S_DIM + D_DIM + 1) + 1));
    /* exact entropy: B x D x D Jacobians (float) and LU (double) instead of one entry per row */
    FlameConfig e = c;
    e.entropy.estimator = ENT_EXACT;
    size_t B = (size_t)c.update.batch_size;
    EXPECT(plan(e) - p0 == B * (D_DIM * D_DIM - 1) * (4 + 8));
    /* fused scoring: both critics' first layer on max(B, states of a particle chunk) states */
    FlameConfig s = c;
    s.backend.scoring = PATH_FUSED;
    int fcap = c.update.batch_size * c.flow.num_particles;
    fcap = fcap > 32768 ? 32768 : fcap;
    size_t states = (size_t)fcap / (size_t)c.flow.num_particles;
    states = states > B ? states : B;
    EXPECT(plan(s) - p0 == 2 * states * (size_t)c.net.hidden * 4);
    /* a larger batch needs more */
    FlameConfig big = c;
    big.update.batch_size = 4096;
    EXPECT(plan(big) > p0);
}

int main(void) {
    RUN_TEST(test_plan_covers_the_sized_buffers);
    RUN_TEST(test_plan_differences);
    return flame_test_report();
}
