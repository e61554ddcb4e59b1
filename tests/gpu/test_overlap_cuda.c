/*
 * test_overlap_cuda.c: acting beside queued updates (BackendOps.publish) on the CUDA backend:
 *   - after a publish, act uses the published state even while updates queued after it run:
 *     its actions equal those of a second backend holding that state (bit for bit: the same
 *     kernels on the same inputs), for FLAME-M (particles scored by the critics, exploration
 *     noise scaled by the published alpha) and SAC (its online policy), deterministic and
 *     exploring, with graphs;
 *   - the next publish moves act to the state after those updates;
 *   - without any publish act uses the current state (the sequential order);
 *   - pushes through the two staging slots, interleaved with updates, leave the device ring
 *     equal to the CPU ring after the same pushes;
 *   - the interval statistics the backend keeps on the device (stats_track / stats_take) equal
 *     the host's train_stats_add over get_metrics after every update (alpha: the device's expf),
 *     with graphs, and a take starts its interval again.
 * Whether act waited for the GPU is a timing property (flame bench), not asserted here.
 * FLAME_GPU_TEST_SIZES picks the cases (gpu_sizes.h).
 */
#include <float.h>
#include <stddef.h>

#include "gpu_common.h"
#include "flame/train_stats.h"

static const BackendOps *CPU = &backend_cpu_ops;
static const BackendOps *GPU = &backend_cuda_ops;

#define N_ENVS 7

static void obs_batch(float *obs, int n, int S, uint32_t tag) {
    for (int i = 0; i < n * S; i++) {
        obs[i] = rng_normal(17, RNG_STREAM_TEST, tag, (uint32_t)i, 0);
    }
}

/* actions of a fresh backend (no publish) holding state st */
static void act_with_state(const FlameConfig *cfg, int S, int D, const AgentState *st,
                           const float *obs, ActMode mode, uint32_t call, float *out) {
    Backend *b = gpu_create(GPU, cfg, S, D);
    GPU->set_state(b, st);
    GPU->act(b, obs, N_ENVS, mode, call, out);
    GPU->destroy(b);
}

static void check_publish(int algo, GpuSize size) {
    const GpuShape *sh = &GPU_SHAPES[size];
    int S = sh->S, D = sh->D;
    FlameConfig cfg;
    gpu_config(&cfg, algo, COMPAT_REFERENCE, size, BACKEND_CUDA, KERNELS_FUSED, NULL);
    cfg.backend.graphs = true;
    cfg.alpha.delay = 1; /* alpha moves every update: the exploration scale must be the published */
    char tag[160];
    snprintf(tag, sizeof tag, "%s %s", config_algo_name(algo), sh->name);
    printf("  -- %s\n", tag);
    Backend *b = gpu_create(GPU, &cfg, S, D);
    gpu_push_random(GPU, b, S, D, 500);
    for (int i = 0; i < 3; i++) {
        update_step(GPU, b);
    }
    AgentState s0, s1;
    agent_state_init(&s0, &cfg, S, D);
    agent_state_init(&s1, &cfg, S, D);
    GPU->get_state(b, &s0);
    float obs[N_ENVS * 400], a[N_ENVS * 32], ref[N_ENVS * 32];
    obs_batch(obs, N_ENVS, S, 1);
    ActMode modes[2] = {ACT_DETERMINISTIC, ACT_EXPLORE};

    /* publish, queue updates, act: the published state */
    GPU->publish(b);
    for (int i = 0; i < 4; i++) {
        update_step(GPU, b);
    }
    for (int m = 0; m < 2; m++) {
        GPU->act(b, obs, N_ENVS, modes[m], 11, a);
        act_with_state(&cfg, S, D, &s0, obs, modes[m], 11, ref);
        EXPECT_MSG(!memcmp(a, ref, sizeof(float) * N_ENVS * D),
                   "%s: act after publish (mode %d) differs from the published state's", tag, m);
    }
    /* the next publish: the state after the queued updates */
    GPU->publish(b);
    GPU->get_state(b, &s1);
    char what[64] = "";
    EXPECT_MSG(!agent_state_equal(&s0, &s1, what, sizeof what), "%s: the updates moved nothing",
               tag);
    for (int m = 0; m < 2; m++) {
        GPU->act(b, obs, N_ENVS, modes[m], 12, a);
        act_with_state(&cfg, S, D, &s1, obs, modes[m], 12, ref);
        EXPECT_MSG(!memcmp(a, ref, sizeof(float) * N_ENVS * D),
                   "%s: act after the second publish (mode %d) differs", tag, m);
    }
    /* and it differs from acting with the earlier state (the test can tell them apart) */
    act_with_state(&cfg, S, D, &s0, obs, ACT_DETERMINISTIC, 12, ref);
    GPU->act(b, obs, N_ENVS, ACT_DETERMINISTIC, 12, a);
    EXPECT_MSG(memcmp(a, ref, sizeof(float) * N_ENVS * D) != 0,
               "%s: actions do not depend on the state", tag);
    agent_state_free(&s0);
    agent_state_free(&s1);
    GPU->destroy(b);
}

FLAME_TEST(test_publish) {
    if (gpu_runs_small()) {
        check_publish(ALGO_FLAME_M, SIZE_ODD);
        if (!gpu_runs_min_only()) {
            check_publish(ALGO_SAC, SIZE_ODD);
        }
    }
    if (gpu_runs_real()) {
        check_publish(ALGO_FLAME_M, SIZE_HALFCHEETAH);
    }
}

/* no publish: act sees every update queued before it */
FLAME_TEST(test_sequential_without_publish) {
    if (!gpu_runs_small()) {
        return;
    }
    const GpuShape *sh = &GPU_SHAPES[SIZE_ODD];
    FlameConfig cfg;
    gpu_config(&cfg, ALGO_FLAME_M, COMPAT_REFERENCE, SIZE_ODD, BACKEND_CUDA, KERNELS_FUSED, NULL);
    Backend *b = gpu_create(GPU, &cfg, sh->S, sh->D);
    gpu_push_random(GPU, b, sh->S, sh->D, 200);
    for (int i = 0; i < 3; i++) {
        update_step(GPU, b);
    }
    AgentState st;
    agent_state_init(&st, &cfg, sh->S, sh->D);
    GPU->get_state(b, &st);
    float obs[N_ENVS * 16], a[N_ENVS * 8], ref[N_ENVS * 8];
    obs_batch(obs, N_ENVS, sh->S, 2);
    GPU->act(b, obs, N_ENVS, ACT_EXPLORE, 3, a);
    act_with_state(&cfg, sh->S, sh->D, &st, obs, ACT_EXPLORE, 3, ref);
    EXPECT(!memcmp(a, ref, sizeof(float) * N_ENVS * sh->D));
    agent_state_free(&st);
    GPU->destroy(b);
}

/* pushes through both staging slots between updates, publishes and acts */
FLAME_TEST(test_pushes_between_updates) {
    if (!gpu_runs_small()) {
        return;
    }
    const GpuShape *sh = &GPU_SHAPES[SIZE_ODD];
    int S = sh->S, D = sh->D;
    FlameConfig cc, cg;
    gpu_config(&cc, ALGO_FLAME_M, COMPAT_REFERENCE, SIZE_ODD, BACKEND_CPU, KERNELS_FUSED, NULL);
    gpu_config(&cg, ALGO_FLAME_M, COMPAT_REFERENCE, SIZE_ODD, BACKEND_CUDA, KERNELS_FUSED, NULL);
    cg.backend.graphs = true;
    Backend *c = gpu_create(CPU, &cc, S, D), *g = gpu_create(GPU, &cg, S, D);
    gpu_push_random(CPU, c, S, D, 100);
    gpu_push_random(GPU, g, S, D, 100);
    float obs[N_ENVS * 16], nobs[N_ENVS * 16], act[N_ENVS * 8], rew[N_ENVS];
    uint8_t done[N_ENVS];
    for (int it = 0; it < 9; it++) {
        obs_batch(obs, N_ENVS, S, 10 + (uint32_t)it);
        obs_batch(nobs, N_ENVS, S, 40 + (uint32_t)it);
        GPU->act(g, obs, N_ENVS, ACT_EXPLORE, (uint32_t)it, act);
        for (int i = 0; i < N_ENVS; i++) {
            rew[i] = 0.1f * (float)(i - it);
            done[i] = (uint8_t)((i + it) % 3 == 0);
        }
        CPU->replay_push(c, obs, act, rew, nobs, done, N_ENVS);
        GPU->replay_push(g, obs, act, rew, nobs, done, N_ENVS);
        GPU->publish(g);
        update_step(GPU, g);
    }
    Replay rc, rg;
    replay_init(&rc, cc.update.replay_size, S, D);
    replay_init(&rg, cc.update.replay_size, S, D);
    CPU->get_replay(c, &rc);
    GPU->get_replay(g, &rg);
    size_t cap = (size_t)rc.capacity;
    EXPECT(rc.size == rg.size && rc.head == rg.head);
    EXPECT(!memcmp(rc.obs, rg.obs, cap * S * sizeof(float)));
    EXPECT(!memcmp(rc.next_obs, rg.next_obs, cap * S * sizeof(float)));
    EXPECT(!memcmp(rc.act, rg.act, cap * D * sizeof(float)));
    EXPECT(!memcmp(rc.rew, rg.rew, cap * sizeof(float)));
    EXPECT(!memcmp(rc.done, rg.done, cap));
    replay_free(&rc);
    replay_free(&rg);
    CPU->destroy(c);
    GPU->destroy(g);
}

static void expect_stats(const char *what, const TrainStats *dev, const TrainStats *host) {
    EXPECT_MSG(dev->updates == host->updates && dev->actor_updates == host->actor_updates,
               "%s: %lld/%lld updates (actor) on the device, %lld/%lld on the host", what,
               (long long)dev->updates, (long long)dev->actor_updates, (long long)host->updates,
               (long long)host->actor_updates);
    const double *d = &dev->critic_loss, *h = &host->critic_loss;
    int nf = (int)((sizeof(TrainStats) - offsetof(TrainStats, critic_loss)) / sizeof(double));
    for (int i = 0; i < nf; i++) {
        bool is_alpha = &d[i] == &dev->alpha;
        /* the same doubles added in the same order; alpha is expf of log alpha, on the device
           there and on the host here (CUDA's expf: at most 2 ulp) */
        double tol = is_alpha ? 4 * FLT_EPSILON * fabs(h[i]) : 0.0;
        EXPECT_MSG(fabs(d[i] - h[i]) <= tol || (isnan(d[i]) && isnan(h[i])),
                   "%s: field %d: %.17g on the device, %.17g on the host", what, i, d[i], h[i]);
    }
}

FLAME_TEST(test_stats_on_device) {
    if (!gpu_runs_small()) {
        return;
    }
    const GpuShape *sh = &GPU_SHAPES[SIZE_ODD];
    FlameConfig cfg;
    gpu_config(&cfg, ALGO_FLAME_M, COMPAT_REFERENCE, SIZE_ODD, BACKEND_CUDA, KERNELS_FUSED, NULL);
    cfg.backend.graphs = true; /* the statistics kernel runs after captured and replayed graphs */
    Backend *b = gpu_create(GPU, &cfg, sh->S, sh->D);
    gpu_push_random(GPU, b, sh->S, sh->D, 200);
    GPU->stats_track(b, 2);
    TrainStats host_all, host_part, dev;
    train_stats_reset(&host_all);
    train_stats_reset(&host_part);
    const AgentCounters *c = &backend_base(b)->counters;
    for (int i = 0; i < 7; i++) {
        int64_t actor = c->actor_steps;
        update_step(GPU, b);
        UpdateMetrics m;
        GPU->get_metrics(b, &m);
        train_stats_add(&host_all, &m, c->actor_steps > actor);
        train_stats_add(&host_part, &m, c->actor_steps > actor);
        if (i == 3) {
            GPU->stats_take(b, 0, &dev);
            expect_stats("slot 0, updates 1-4", &dev, &host_part);
            train_stats_reset(&host_part);
        }
    }
    EXPECT(host_all.actor_updates > 0 && host_all.actor_updates < host_all.updates);
    GPU->stats_take(b, 0, &dev);
    expect_stats("slot 0, updates 5-7", &dev, &host_part);
    GPU->stats_take(b, 1, &dev);
    expect_stats("slot 1, updates 1-7", &dev, &host_all);
    GPU->stats_take(b, 1, &dev);
    EXPECT(dev.updates == 0); /* a take starts the interval again */
    GPU->destroy(b);
}

int main(void) {
    FLAME_REQUIRE_GPU();
    EXPECT(backend_cpu_ops.publish == NULL); /* the CPU backend acts sequentially */
    RUN_TEST(test_publish);
    RUN_TEST(test_sequential_without_publish);
    RUN_TEST(test_pushes_between_updates);
    RUN_TEST(test_stats_on_device);
    return flame_test_report();
}
