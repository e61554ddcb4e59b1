/*
 * test_env_bench.c: smoke test of env_bench_run at a tiny size (label bench), and a command-line
 * measurement: test_env_bench ENV_ID NUM_ENVS NUM_THREADS SECONDS prints one result line.
 * Speeds are printed, never asserted.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flame/check.h"
#include "flame/env_bench.h"
#include "flame_test.h"

FLAME_TEST(bench_runs_and_fills_every_number) {
    EnvBenchResult r;
    EXPECT(env_bench_run("Hopper-v5", 4, 2, 0.2, &r) == FLAME_OK);
    env_bench_print(stdout, &r);
    EXPECT(!strcmp(r.env_id, "Hopper-v5") && r.num_envs == 4 && r.num_threads == 2);
    EXPECT(r.frame_skip == 4);
    EXPECT(r.pool_steps > 0 && r.raw_steps_1t > 0 && r.raw_steps_threads > 0);
    EXPECT(r.pool_steps % 4 == 0);
    EXPECT(r.pool_steps_per_s > 0 && r.raw_steps_per_s_1t > 0 && r.raw_steps_per_s_threads > 0);
    EXPECT(r.overhead > 0 && r.pool_episodes > 0); /* random actions make Hopper fall */
    EXPECT(env_bench_run("Nope-v0", 4, 2, 0.1, &r) == FLAME_EINPUT);
    EXPECT(strstr(flame_last_error(), "Nope-v0") != NULL);
    EXPECT(env_bench_run("Hopper-v5", 0, 2, 0.1, &r) == FLAME_EINPUT);
    EXPECT(env_bench_run("Hopper-v5", 2, 1, 0, &r) == FLAME_EINPUT);
}

int main(int argc, char **argv) {
    if (argc == 5) {
        EnvBenchResult r;
        int rc = env_bench_run(argv[1], atoi(argv[2]), atoi(argv[3]), atof(argv[4]), &r);
        if (rc != FLAME_OK) {
            fprintf(stderr, "test_env_bench: %s\n", flame_last_error());
            return rc;
        }
        env_bench_print(stdout, &r);
        return 0;
    }
    RUN_TEST(bench_runs_and_fills_every_number);
    return flame_test_report();
}
