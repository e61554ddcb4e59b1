/*
 * cmd_eval.c: `flame eval`, the return of a checkpoint's policy over N episodes on fresh envs.
 *
 * The envs are addressed exactly as `flame rollout` addresses them (rollout.h: ROLLOUT_ENV_OFFSET,
 * draw index = vectorised step) and the policy is created the same way (cli_policy_open), so
 * `flame eval` and `flame rollout` with the same checkpoint, seed, episodes and --envs run the same
 * episodes. With --json the result is one JSON object on stdout and nothing else (eval_json).
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flame/bench.h"
#include "flame/check.h"
#include "flame/cli.h"
#include "flame/host.h"
#include "flame/rollout.h"

#define CMD "eval"

static void eval_usage(FILE *f) {
    fprintf(
        f,
        "usage: flame eval --ckpt FILE [--episodes N] [--stochastic] [--seed S] [--envs N]\n"
        "                  [--threads W] [--backend auto|cpu|cuda] [--json]\n\n"
        "Runs N episodes (default 20) of a checkpoint's policy on fresh envs: the deterministic "
        "EMA policy\n(best-of-N particles, no exploration noise), or the exploring one with "
        "--stochastic; prints the\nmean +- std return and the episode lengths.\n\n"
        "options:\n"
        "  --ckpt FILE      checkpoint (runs/<name>/ckpt/step_<N>.h5)\n"
        "  --episodes N     complete episodes (default 20)\n"
        "  --stochastic     exploring actions\n"
        "  --seed S         seed of env resets and action draws (default: the checkpoint's "
        "run.seed)\n"
        "  --envs N         parallel envs (default min(episodes, %d)); the result depends on "
        "seed and\n"
        "                   envs, never on threads; `flame rollout` with the same checkpoint, "
        "seed, episodes\n"
        "                   and envs runs the same episodes\n"
        "  --threads W      env worker threads (default 0: all cores but one)\n"
        "  --backend B      backend that computes the actions: auto, cpu, cuda (default: the "
        "checkpoint's)\n"
        "  --json           print one JSON object instead: ckpt, step, env, algo, policy, seed, "
        "envs,\n"
        "                   episodes, returns, lengths, return_mean, return_std (population), "
        "return_min,\n"
        "                   return_max, length_mean, unstable\n"
        "Episodes in which MuJoCo went unstable are replaced and counted (include/flame/"
        "rollout.h).\n",
        ROLLOUT_DEFAULT_ENVS);
}

typedef struct {
    const char *ckpt;
    long long episodes, seed, envs, threads;
    int backend; /* -1: the checkpoint's */
    bool stochastic, json;
} EvalArgs;

/* FLAME_OK, an exit status, or -1 after --help */
static int parse_args(int argc, char **argv, EvalArgs *a) {
    static const struct option longopts[] = {{"ckpt", required_argument, 0, 'k'},
                                             {"episodes", required_argument, 0, 'e'},
                                             {"stochastic", no_argument, 0, 'S'},
                                             {"seed", required_argument, 0, 's'},
                                             {"envs", required_argument, 0, 'n'},
                                             {"threads", required_argument, 0, 't'},
                                             {"backend", required_argument, 0, 'b'},
                                             {"json", no_argument, 0, 'j'},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    memset(a, 0, sizeof *a);
    a->episodes = 20;
    a->seed = -1;
    a->backend = -1;
    optind = 1;
    opterr = 0;
    int c, rc = FLAME_OK;
    while (rc == FLAME_OK && (c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
            case 'k':
                a->ckpt = optarg;
                break;
            case 'e':
                rc = cli_parse_int(CMD, "--episodes", optarg, 1, 1000000, &a->episodes);
                break;
            case 's':
                rc = cli_parse_int(CMD, "--seed", optarg, 0, FLAME_SEED_MAX, &a->seed);
                break;
            case 'n':
                rc = cli_parse_int(CMD, "--envs", optarg, 1, 65536, &a->envs);
                break;
            case 't':
                rc = cli_parse_int(CMD, "--threads", optarg, 0, 1024, &a->threads);
                break;
            case 'S':
                a->stochastic = true;
                break;
            case 'j':
                a->json = true;
                break;
            case 'b':
                rc = cli_parse_backend(CMD, optarg, &a->backend);
                break;
            case 'h':
                eval_usage(stdout);
                return -1;
            default:
                return cli_fail(CMD, FLAME_EINPUT,
                                "unknown or incomplete option '%s'; see `flame eval --help`",
                                argv[optind - 1]);
        }
    }
    if (rc == FLAME_OK && optind < argc) {
        rc = cli_fail(CMD, FLAME_EINPUT, "unexpected argument '%s'; see `flame eval --help`",
                      argv[optind]);
    }
    if (rc == FLAME_OK && !a->ckpt) {
        rc = cli_fail(CMD, FLAME_EINPUT,
                      "--ckpt FILE is required (a runs/<name>/ckpt/step_<N>.h5 file)");
    }
    return rc;
}

static void print_result(const Policy *p, const EvalArgs *a, const RolloutResult *r) {
    printf("%s %s, %s policy, %lld episodes: return %.2f +- %.2f (min %.2f, max %.2f), length "
           "%.1f\n",
           p->spec->id, config_algo_name(p->cfg.algo),
           a->stochastic ? "stochastic" : "deterministic", a->episodes, r->return_mean,
           r->return_std, r->return_min, r->return_max, r->length_mean);
    printf("returns:");
    for (int i = 0; i < r->episodes; i++) {
        printf(" %.2f", r->returns[i]);
    }
    printf("\nlengths:");
    for (int i = 0; i < r->episodes; i++) {
        printf(" %d", r->lengths[i]);
    }
    printf("\n");
    if (r->unstable > 0) {
        printf("MuJoCo went unstable in %lld episodes; they were replaced\n",
               (long long)r->unstable);
    }
}

/* the same result as one JSON object (every double with all its digits) */
static void eval_json(const Policy *p, const EvalArgs *a, int envs, const RolloutResult *r) {
    BenchJson j;
    bench_json_begin(&j);
    bench_json_str(&j, "ckpt", a->ckpt);
    bench_json_int(&j, "step", p->ck.tc.env_steps);
    bench_json_str(&j, "env", p->spec->id);
    bench_json_str(&j, "algo", config_algo_name(p->cfg.algo));
    bench_json_str(&j, "policy", a->stochastic ? "stochastic" : "deterministic");
    bench_json_int(&j, "seed", p->cfg.run.seed);
    bench_json_int(&j, "envs", envs);
    bench_json_int(&j, "episodes", r->episodes);
    bench_json_doubles(&j, "returns", r->returns, (size_t)r->episodes);
    bench_json_ints(&j, "lengths", r->lengths, (size_t)r->episodes);
    bench_json_double(&j, "return_mean", r->return_mean);
    bench_json_double(&j, "return_std", r->return_std);
    bench_json_double(&j, "return_min", r->return_min);
    bench_json_double(&j, "return_max", r->return_max);
    bench_json_double(&j, "length_mean", r->length_mean);
    bench_json_int(&j, "unstable", r->unstable);
    bench_json_write(&j, NULL);
    printf("%s\n", j.buf);
    bench_json_free(&j);
}

int cmd_eval(int argc, char **argv) {
    EvalArgs a;
    int rc = parse_args(argc, argv, &a);
    if (rc != FLAME_OK) {
        return rc < 0 ? FLAME_OK : rc;
    }
    Policy p;
    rc = cli_policy_open(CMD, &p, a.ckpt, NULL, a.backend, a.seed);
    if (rc != FLAME_OK) {
        return rc;
    }
    int envs = a.envs > 0 ? (int)a.envs : ROLLOUT_DEFAULT_ENVS;
    envs = envs < a.episodes ? envs : (int)a.episodes;
    RolloutEnvs e = {.spec = p.spec,
                     .model_xml = p.cfg.env.model_xml,
                     .num_envs = envs,
                     .num_threads = host_resolve_threads((int)a.threads, envs),
                     .seed = (uint64_t)p.cfg.run.seed,
                     .env_offset = ROLLOUT_ENV_OFFSET};
    RolloutPolicy pol =
        rollout_policy_agent(p.ops, p.b, a.stochastic ? ACT_EXPLORE : ACT_DETERMINISTIC);
    RolloutRun run = {.episodes = (int)a.episodes};
    RolloutResult r;
    rc = rollout_evaluate(&e, &pol, &run, &r);
    if (rc == FLAME_OK && a.json) {
        eval_json(&p, &a, envs, &r);
    } else if (rc == FLAME_OK) {
        print_result(&p, &a, &r);
    } else {
        rc = cli_fail_last(CMD, rc);
    }
    rollout_result_free(&r);
    policy_close(&p);
    return rc;
}
