/*
 * bench_e2e.c: `flame bench e2e`: a short real training run (train_run without a run directory,
 * stopped after run.start_steps + --steps transitions, no evaluation) and what it spent its time
 * on: env steps/s, updates/s and the share of each phase of TrainSummary.
 *
 * Defaults (before --config and --set): run.start_steps=1000, run.eval_episodes=0, a replay of
 * 1e5 and 500 transitions after the warm-up; --quick: InvertedPendulum-v5 with 2 x 32 networks,
 * B=32, K=8, 4 particles, 2 envs, 100 warm-up and 100 training transitions. The backend is the
 * one train_run picks for --backend (auto: CUDA when a device exists).
 * Validation: the run returns FLAME_OK, reaches its step count, performs updates, and its phase
 * times are finite and add up to no more than the total.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "flame/bench.h"
#include "flame/check.h"
#include "flame/env.h"
#include "flame/train.h"

static const char *const e2e_defaults[] = {"run.start_steps=1000", "run.eval_episodes=0",
                                           "update.replay_size=100000", NULL};
static const char *const e2e_quick_defaults[] = {"env.id=InvertedPendulum-v5",
                                                 "net.hidden=32",
                                                 "net.layers=2",
                                                 "update.batch_size=32",
                                                 "flow.sample_k=8",
                                                 "flow.num_particles=4",
                                                 "env.num_envs=2",
                                                 "update.replay_size=10000",
                                                 "run.start_steps=100",
                                                 "run.eval_episodes=0",
                                                 NULL};

int bench_e2e(const BenchOptions *o) {
    FlameConfig cfg;
    const EnvSpec *spec;
    int rc = bench_setup(o, o->quick ? e2e_quick_defaults : e2e_defaults, &cfg, &spec);
    if (rc != FLAME_OK) {
        return rc;
    }
    if (!backend_select(&cfg)) {
        /* an explicit --backend cuda without a GPU: say so, like the other CUDA measurements */
        printf("flame bench e2e: skipped (%s)\n", flame_last_error());
        return bench_json_skipped(o, "e2e", "e2e/cuda", &cfg, spec->obs_dim, spec->act_dim,
                                  flame_last_error());
    }
    int64_t steps = o->steps > 0 ? o->steps : (o->quick ? 100 : 500);
    TrainOptions topt;
    memset(&topt, 0, sizeof topt);
    topt.quiet = true;
    topt.write_outputs = false;
    topt.max_steps = cfg.run.start_steps + steps;

    printf("flame bench e2e: %s, %lld warm-up + %lld training transitions, %d envs\n", spec->id,
           (long long)cfg.run.start_steps, (long long)steps, cfg.env.num_envs);
    bench_print_context(&cfg);
    fflush(stdout);

    TrainSummary s;
    int trc = train_run(&cfg, &topt, &s);
    char why[300] = "";
    double phases = s.env_s + s.act_s + s.push_s + s.update_s + s.eval_s + s.io_s;
    double times[] = {s.total_s, s.env_s, s.act_s, s.push_s, s.update_s, s.eval_s, s.io_s};
    bool finite = true;
    for (size_t i = 0; i < sizeof times / sizeof times[0]; i++) {
        finite = finite && isfinite(times[i]) && times[i] >= 0;
    }
    if (trc != FLAME_OK) {
        snprintf(why, sizeof why, "train_run failed: %s", flame_last_error());
    } else if (s.exit_code != 0) {
        snprintf(why, sizeof why, "the run was interrupted (exit %d)", s.exit_code);
    } else if (s.env_steps < topt.max_steps) {
        snprintf(why, sizeof why, "stopped at %lld of %lld transitions", (long long)s.env_steps,
                 (long long)topt.max_steps);
    } else if (s.updates <= 0) {
        snprintf(why, sizeof why, "no update was performed");
    } else if (!finite || phases > 1.05 * s.total_s + 1e-3) {
        snprintf(why, sizeof why, "inconsistent phase times (phases %.3f s, total %.3f s)", phases,
                 s.total_s);
    }
    bool ok = why[0] == 0;
    double total = s.total_s > 0 ? s.total_s : NAN;
    double other = s.total_s - phases;
    const char *names[] = {"env", "act", "push", "update", "eval", "io", "other"};
    double secs[] = {s.env_s, s.act_s, s.push_s, s.update_s, s.eval_s, s.io_s, other};
    double sps = s.env_steps / total, ups = s.updates / total;
    double ups_phase = s.update_s > 0 ? s.updates / s.update_s : NAN;

    printf("\n  %-10s %12s %12s %14s %10s %10s\n", "backend", "env steps/s", "updates/s",
           "updates/s (upd)", "steps", "updates");
    printf("  %-10s %12.1f %12.3f %14.3f %10lld %10lld   %s%s\n", s.backend ? s.backend : "?", sps,
           ups, ups_phase, (long long)s.env_steps, (long long)s.updates,
           ok ? "ok" : "FAILED: ", why);
    printf("\n  %-10s %10s %8s\n", "phase", "seconds", "share");
    for (int i = 0; i < 7; i++) {
        printf("  %-10s %10.3f %7.1f%%\n", names[i], secs[i], 100.0 * secs[i] / total);
    }
    printf("  %-10s %10.3f\n", "total", s.total_s);

    bool cuda = s.backend && !strcmp(s.backend, "cuda");
    char name[128];
    snprintf(name, sizeof name, "e2e/%s/%s", spec->id, s.backend ? s.backend : "none");
    BenchJson j;
    bench_json_header(&j, "e2e", name, ok ? "ok" : "failed", ok, cuda, &cfg, spec->obs_dim,
                      spec->act_dim, o->quick);
    bench_json_str(&j, "backend", s.backend ? s.backend : "");
    bench_json_str(&j, "env_id", spec->id);
    bench_json_int(&j, "num_envs", cfg.env.num_envs);
    bench_json_int(&j, "start_steps", cfg.run.start_steps);
    bench_json_int(&j, "train_steps", steps);
    if (!ok) {
        bench_json_str(&j, "error", why);
    }
    bench_json_int(&j, "env_steps", s.env_steps);
    bench_json_int(&j, "updates", s.updates);
    bench_json_int(&j, "episodes", s.episodes);
    bench_json_num(&j, "total_s", s.total_s);
    bench_json_num(&j, "env_steps_per_s", sps);
    bench_json_num(&j, "updates_per_s", ups);
    bench_json_num(&j, "updates_per_s_update_phase", ups_phase);
    bench_json_key(&j, "seconds");
    for (int i = 0; i < 7; i++) {
        bench_json_num(&j, names[i], secs[i]);
    }
    bench_json_end(&j);
    bench_json_key(&j, "shares");
    for (int i = 0; i < 7; i++) {
        bench_json_num(&j, names[i], secs[i] / total);
    }
    bench_json_end(&j);
    rc = bench_json_write(&j, o->json_path);
    bench_json_free(&j);
    if (rc != FLAME_OK) {
        return rc;
    }
    if (!ok) {
        return trc == FLAME_EINPUT ? FLAME_EINPUT : flame_errorf(FLAME_ERUNTIME, "e2e: %s", why);
    }
    return FLAME_OK;
}
