/*
 * test_learning.c: end-to-end learning on the CPU backend (label slow). Trains the config given as
 * the first argument (configs/inverted_pendulum_small.yaml: FLAME-M; ..._sac.yaml: the SAC
 * baseline with the same budget) on InvertedPendulum-v5 with its fixed seed and requires the mean
 * evaluation return (10 episodes, deterministic policy) to reach 900 within the step budget.
 * The run stops at the first evaluation that reaches it.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "flame/train.h"
#include "flame_test.h"

static const char *g_config;

FLAME_TEST(test_reaches_900) {
    const char *src = getenv("FLAME_SOURCE_DIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/configs/%s", src ? src : ".", g_config);
    FlameConfig cfg;
    config_defaults(&cfg);
    EXPECT_MSG(config_load_file(&cfg, path) == FLAME_OK, "%s", flame_last_error());
    config_resolve(&cfg);
    EXPECT(config_validate(&cfg) == FLAME_OK);
    cfg.backend.type = BACKEND_CPU;
    cfg.run.stop_return = 900.0;
    TrainOptions opt = {NULL, false, NULL, false, false, 0};
    TrainSummary sum;
    int rc = train_run(&cfg, &opt, &sum);
    EXPECT_MSG(rc == FLAME_OK, "%s", flame_last_error());
    printf("       %s: best evaluation return %.1f after %lld env steps (budget %lld), %.0f s\n",
           g_config, sum.best_eval_return, (long long)sum.env_steps,
           (long long)(cfg.run.start_steps + cfg.run.total_steps), sum.total_s);
    EXPECT(sum.best_eval_return >= 900.0);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: test_learning CONFIG.yaml\n");
        return 2;
    }
    g_config = argv[1];
    RUN_TEST(test_reaches_900);
    return flame_test_report();
}
