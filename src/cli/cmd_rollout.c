/*
 * cmd_rollout.c: `flame rollout`, rollouts of a checkpoint's policy (or of the uniform random
 * policy) written as a D4RL or Minari dataset (include/flame/dataset.h, tools/DATASETS.md).
 *
 * Everything that can be checked before the rollout is checked first (options, env id,
 * checkpoint, output location), so bad input costs no simulation and leaves nothing behind.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flame/check.h"
#include "flame/cli.h"
#include "flame/dataset.h"
#include "flame/env.h"
#include "flame/host.h"
#include "flame/rollout.h"

#define CMD "rollout"

static volatile sig_atomic_t rollout_stop = 0;

static void rollout_on_signal(int sig) {
    (void)sig;
    rollout_stop = 1;
}

static void rollout_usage(void) {
    printf("usage: flame rollout (--ckpt FILE | --policy random --env ID) --episodes N --out PATH\n"
           "                     [--format d4rl|minari] [--stochastic] [--seed S] [--force]\n"
           "                     [--envs N] [--threads W] [--backend auto|cpu|cuda]\n"
           "                     [--dataset-id ID] [--author NAME] [--author-email EMAIL]\n"
           "                     [--code-permalink URL]\n\n"
           "Runs the policy for exactly N complete episodes on parallel envs and writes them as\n"
           "an offline-RL dataset (tools/DATASETS.md):\n"
           "  d4rl    one HDF5 file of transitions (observations, actions, rewards, terminals,\n"
           "          timeouts, next_observations, infos/qpos, infos/qvel, metadata/*)\n"
           "  minari  a Minari 0.5 dataset directory (PATH/data/metadata.json, main_data.hdf5)\n\n"
           "options:\n"
           "  --ckpt FILE        checkpoint whose EMA policy acts (runs/<name>/ckpt/step_<N>.h5)\n"
           "  --policy random    uniform random actions on the action box instead (needs --env)\n"
           "  --env ID           environment id (with --ckpt: must match the checkpoint's)\n"
           "  --episodes N       complete episodes to collect (>= 1)\n"
           "  --out PATH         output file (d4rl) or directory (minari); missing\n"
           "                     directories are created\n"
           "  --format F         d4rl (default) or minari\n"
           "  --stochastic       exploring actions (default: deterministic policy actions)\n"
           "  --seed S           seed of env resets and action draws (default: the checkpoint's\n"
           "                     run.seed, 1 for the random policy)\n"
           "  --force            replace an existing output\n"
           "  --envs N           parallel envs (default min(episodes, %d)); the dataset depends\n"
           "                     on seed and envs, never on threads\n"
           "  --threads W        env worker threads (default 0: all cores but one)\n"
           "  --backend B        backend that computes the actions: auto, cpu, cuda (default: the\n"
           "                     checkpoint's)\n"
           "  --dataset-id ID    Minari dataset id NAMESPACE/NAME-vN (default\n"
           "                     flame/<env>/<policy>[-stochastic]-v0, e.g.\n"
           "                     flame/hopper-v5/sac-v0); minari.load_dataset(ID) finds it at\n"
           "                     $MINARI_DATASETS_PATH/ID\n"
           "  --author NAME, --author-email EMAIL, --code-permalink URL   Minari metadata\n"
           "                     (the permalink must be an http(s) URL)\n",
           ROLLOUT_DEFAULT_ENVS);
}

typedef struct {
    const char *ckpt, *policy, *env, *out, *format, *backend;
    const char *dataset_id, *author, *author_email, *code_permalink;
    long long episodes, seed, envs, threads;
    bool have_seed, stochastic, force;
} RolloutArgs;

static int parse_args(int argc, char **argv, RolloutArgs *a) {
    memset(a, 0, sizeof *a);
    a->episodes = -1;
    a->envs = 0;
    a->format = "d4rl";
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        const char **str = NULL;
        long long *num = NULL;
        long long lo = 0, hi = 0;
        if (!strcmp(o, "--stochastic")) {
            a->stochastic = true;
            continue;
        }
        if (!strcmp(o, "--force")) {
            a->force = true;
            continue;
        }
        if (!strcmp(o, "--ckpt")) {
            str = &a->ckpt;
        } else if (!strcmp(o, "--policy")) {
            str = &a->policy;
        } else if (!strcmp(o, "--env")) {
            str = &a->env;
        } else if (!strcmp(o, "--out")) {
            str = &a->out;
        } else if (!strcmp(o, "--format")) {
            str = &a->format;
        } else if (!strcmp(o, "--backend")) {
            str = &a->backend;
        } else if (!strcmp(o, "--dataset-id")) {
            str = &a->dataset_id;
        } else if (!strcmp(o, "--author")) {
            str = &a->author;
        } else if (!strcmp(o, "--author-email")) {
            str = &a->author_email;
        } else if (!strcmp(o, "--code-permalink")) {
            str = &a->code_permalink;
        } else if (!strcmp(o, "--episodes")) {
            num = &a->episodes, lo = 1, hi = INT_MAX;
        } else if (!strcmp(o, "--seed")) {
            num = &a->seed, lo = 0, hi = FLAME_SEED_MAX;
            a->have_seed = true;
        } else if (!strcmp(o, "--envs")) {
            num = &a->envs, lo = 1, hi = 65536;
        } else if (!strcmp(o, "--threads")) {
            num = &a->threads, lo = 0, hi = 1024;
        } else {
            return cli_fail(CMD, FLAME_EINPUT, "unknown option '%s'; see `flame rollout --help`",
                            o);
        }
        if (!v) {
            return cli_fail(CMD, FLAME_EINPUT, "%s needs a value; see `flame rollout --help`", o);
        }
        i++;
        if (str) {
            *str = v;
        } else {
            int rc = cli_parse_int(CMD, o, v, lo, hi, num);
            if (rc != FLAME_OK) {
                return rc;
            }
        }
    }
    return FLAME_OK;
}

/* The options that need nothing else: format, episodes, output, policy, env id, backend. */
static int check_args(const RolloutArgs *a, DatasetFormat *fmt, const EnvSpec **spec,
                      int *backend_kind) {
    if (dataset_format_parse(a->format, fmt) != FLAME_OK) {
        return cli_fail_last(CMD, FLAME_EINPUT);
    }
    if (a->episodes == -1) {
        return cli_fail(CMD, FLAME_EINPUT, "--episodes N is required (N >= 1)");
    }
    if (!a->out) {
        return cli_fail(CMD, FLAME_EINPUT,
                        "--out PATH is required (a file for d4rl, a directory for minari)");
    }
    if (a->policy && strcmp(a->policy, "random") != 0) {
        return cli_fail(CMD, FLAME_EINPUT,
                        "unknown --policy '%s'; use --policy random or --ckpt FILE", a->policy);
    }
    if ((a->policy != NULL) == (a->ckpt != NULL)) {
        return cli_fail(CMD, FLAME_EINPUT, "give exactly one of --ckpt FILE and --policy random");
    }
    if (a->policy && !a->env) {
        return cli_fail(CMD, FLAME_EINPUT,
                        "--policy random needs --env ID (`flame envs` lists them)");
    }
    *spec = NULL;
    if (a->env && !(*spec = env_spec_find(a->env))) {
        return cli_fail(CMD, FLAME_EINPUT, "unknown env id '%s'; `flame envs` lists the ids",
                        a->env);
    }
    *backend_kind = -1;
    return a->backend ? cli_parse_backend(CMD, a->backend, backend_kind) : FLAME_OK;
}

static void print_summary(const RolloutResult *s, const char *out, DatasetFormat fmt,
                          const char *dataset_id) {
    printf("rollout: %d episodes, %lld steps in %.1f s (%.0f steps/s)", s->episodes,
           (long long)s->steps, s->seconds, s->seconds > 0 ? (double)s->steps / s->seconds : 0.0);
    if (s->unstable > 0) {
        printf(", %lld unstable episodes dropped and replaced", (long long)s->unstable);
    }
    printf("\nreturn %.6f +- %.6f (min %.6f, max %.6f), length %.1f\n", s->return_mean,
           s->return_std, s->return_min, s->return_max, s->length_mean);
    printf("wrote %s (%s)\n", out, dataset_format_name(fmt));
    if (dataset_id) {
        printf("dataset id %s: minari.load_dataset('%s') finds it at "
               "$MINARI_DATASETS_PATH/%s\n",
               dataset_id, dataset_id, dataset_id);
    }
}

static void print_progress(void *ctx, int done, int total, int64_t steps, double seconds) {
    (void)ctx;
    printf("rollout: %d/%d episodes, %lld steps, %.0f steps/s\n", done, total, (long long)steps,
           seconds > 0 ? (double)steps / seconds : 0.0);
    fflush(stdout);
}

/* The dataset's description: env model, policy, rollout settings, Minari metadata. */
static int describe(const RolloutArgs *a, const Policy *pol, const EnvSpec *spec,
                    const RolloutEnvs *e, const char *dataset_id, CliDatasetInfo *d) {
    if (cli_dataset_info_init(d, spec, pol ? pol->cfg.env.model_xml : NULL, "rollout") !=
        FLAME_OK) {
        return cli_fail_last(CMD, FLAME_EINPUT);
    }
    if (pol) {
        cli_dataset_info_checkpoint(d, &pol->ck, a->ckpt);
    } else {
        d->info.algorithm = "random";
        d->info.policy = "random";
    }
    d->info.backend = pol ? pol->ops->name : "";
    d->info.seed = e->seed;
    d->info.deterministic = !a->stochastic && pol != NULL;
    d->info.num_envs = e->num_envs;
    d->info.dataset_id = dataset_id;
    d->info.author = a->author;
    d->info.author_email = a->author_email;
    d->info.code_permalink = a->code_permalink;
    return FLAME_OK;
}

/* Opens the writer, runs the rollout into it, closes (or removes) it; a signal stops the rollout
   and leaves nothing. */
static int write_dataset(const RolloutArgs *a, DatasetFormat fmt, const CliDatasetInfo *d,
                         const RolloutEnvs *e, const RolloutPolicy *p) {
    void (*old_int)(int) = signal(SIGINT, rollout_on_signal);
    void (*old_term)(int) = signal(SIGTERM, rollout_on_signal);
    DatasetWriter *w = NULL;
    int rc = dataset_open(&w, a->out, fmt, &d->info, a->force);
    if (rc != FLAME_OK) {
        rc = cli_fail_last(CMD, rc);
    } else {
        printf("rollout: %s, %s policy%s, %d episodes on %d envs (%d thread%s), seed %llu -> %s "
               "(%s)\n",
               e->spec->id, d->info.algorithm,
               p->kind == ROLLOUT_RANDOM ? "" : (a->stochastic ? " (stochastic)" : ""),
               (int)a->episodes, e->num_envs, e->num_threads, e->num_threads == 1 ? "" : "s",
               (unsigned long long)e->seed, a->out, dataset_format_name(fmt));
        fflush(stdout);
        RolloutRun run = {.episodes = (int)a->episodes,
                          .stop = &rollout_stop,
                          .progress = print_progress};
        RolloutResult res;
        rc = rollout_dataset(e, p, &run, w, &res);
        if (rc == FLAME_OK) {
            rc = dataset_close(w);
        } else {
            dataset_abort(w);
        }
        if (rc == FLAME_OK) {
            print_summary(&res, a->out, fmt, fmt == DATASET_MINARI ? d->info.dataset_id : NULL);
        } else {
            rc = cli_fail_last(CMD, rc);
        }
        rollout_result_free(&res);
    }
    signal(SIGINT, old_int);
    signal(SIGTERM, old_term);
    return rc;
}

int cmd_rollout(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            rollout_usage();
            return FLAME_OK;
        }
    }
    RolloutArgs a;
    DatasetFormat fmt;
    const EnvSpec *spec = NULL;
    int backend_kind;
    int rc = parse_args(argc, argv, &a);
    rc = rc ? rc : check_args(&a, &fmt, &spec, &backend_kind);
    if (rc != FLAME_OK) {
        return rc;
    }
    /* the policy: a checkpoint's, or uniform random actions */
    Policy pol;
    RolloutPolicy p;
    if (a.ckpt) {
        rc = cli_policy_open(CMD, &pol, a.ckpt, a.env, backend_kind, a.have_seed ? a.seed : -1);
        if (rc != FLAME_OK) {
            return rc;
        }
        spec = pol.spec;
        p = rollout_policy_agent(pol.ops, pol.b, a.stochastic ? ACT_EXPLORE : ACT_DETERMINISTIC);
    } else {
        p = rollout_policy_random(a.have_seed ? (uint64_t)a.seed : 1);
    }
    int envs = a.envs > 0 ? (int)a.envs : ROLLOUT_DEFAULT_ENVS;
    envs = envs < a.episodes ? envs : (int)a.episodes;
    RolloutEnvs e = {.spec = spec,
                     .model_xml = a.ckpt ? pol.cfg.env.model_xml : NULL,
                     .num_envs = envs,
                     .num_threads = host_resolve_threads((int)a.threads, envs),
                     .seed = a.ckpt ? (uint64_t)pol.cfg.run.seed : p.seed,
                     .env_offset = ROLLOUT_ENV_OFFSET};
    /* the output location (checked now, written under a temporary name) */
    char dataset_id[1024] = "";
    CliDatasetInfo d;
    memset(&d, 0, sizeof d);
    if (fmt == DATASET_MINARI &&
        dataset_minari_id(a.dataset_id, spec->id, a.ckpt ? config_algo_name(pol.cfg.algo) : "random",
                          !a.stochastic || !a.ckpt, dataset_id, sizeof dataset_id) != FLAME_OK) {
        rc = cli_fail_last(CMD, FLAME_EINPUT);
    }
    rc = rc ? rc : describe(&a, a.ckpt ? &pol : NULL, spec, &e, dataset_id, &d);
    rc = rc ? rc : write_dataset(&a, fmt, &d, &e, &p);
    cli_dataset_info_free(&d);
    if (a.ckpt) {
        policy_close(&pol);
    }
    return rc;
}
