/*
 * cmd_rollout.c: `flame rollout`, rollouts of a checkpoint's policy (or of the uniform random
 * policy) written as a D4RL or Minari dataset (include/flame/dataset.h, tools/DATASETS.md).
 *
 * Everything that can be checked before the rollout is checked first (options, env id,
 * checkpoint, output location), so bad input costs no simulation and leaves nothing behind.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flame/backend.h"
#include "flame/check.h"
#include "flame/ckpt.h"
#include "flame/cli.h"
#include "flame/dataset.h"
#include "flame/env.h"

#define CMD "rollout"
#define ROLLOUT_DEFAULT_ENVS 16

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
           "  --out PATH         output file (d4rl) or directory (minari)\n"
           "  --format F         d4rl (default) or minari\n"
           "  --stochastic       exploring actions (default: deterministic policy actions)\n"
           "  --seed S           seed of env resets and action draws (default: the checkpoint's\n"
           "                     run.seed, 1 for the random policy)\n"
           "  --force            replace an existing output\n"
           "  --envs N           parallel envs (default min(episodes, %d)); the dataset depends\n"
           "                     on seed and envs, never on threads\n"
           "  --threads W        env worker threads (default 0: all cores but one)\n"
           "  --backend B        backend that computes the actions: auto (default), cpu, cuda\n"
           "  --dataset-id ID    Minari dataset id NAMESPACE/NAME-vN (default\n"
           "                     flame/<env>/<policy>[-stochastic]-v0, e.g.\n"
           "                     flame/hopper-v5/sac-v0); minari.load_dataset(ID) finds it at\n"
           "                     $MINARI_DATASETS_PATH/ID\n"
           "  --author NAME, --author-email EMAIL, --code-permalink URL   Minari metadata\n"
           "                     (the permalink must be an http(s) URL)\n",
           ROLLOUT_DEFAULT_ENVS);
}

static int parse_int(const char *opt, const char *s, long long lo, long long hi, long long *out) {
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s ? s : "", &end, 10);
    if (!s || !s[0] || *end || errno) {
        return cli_fail(CMD, FLAME_EINPUT, "%s expects an integer, got '%s'", opt, s ? s : "");
    }
    if (v < lo || v > hi) {
        return cli_fail(CMD, FLAME_EINPUT, "%s must be in [%lld, %lld] (got %lld)", opt, lo, hi, v);
    }
    *out = v;
    return FLAME_OK;
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
            num = &a->episodes, lo = LLONG_MIN, hi = LLONG_MAX;
        } else if (!strcmp(o, "--seed")) {
            num = &a->seed, lo = 0, hi = LLONG_MAX;
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
            int rc = parse_int(o, v, lo, hi, num);
            if (rc != FLAME_OK) {
                return rc;
            }
        }
    }
    return FLAME_OK;
}

/* backend kind from --backend (or the checkpoint's when absent) */
static int parse_backend(const char *name, int *kind) {
    if (!name) {
        return FLAME_OK;
    }
    const char *names[3] = {"auto", "cpu", "cuda"};
    const int kinds[3] = {BACKEND_AUTO, BACKEND_CPU, BACKEND_CUDA};
    for (int k = 0; k < 3; k++) {
        if (!strcmp(name, names[k])) {
            *kind = kinds[k];
            return FLAME_OK;
        }
    }
    return cli_fail(CMD, FLAME_EINPUT, "unknown --backend '%s'; use auto, cpu or cuda", name);
}

static void print_summary(const RolloutStats *s, const char *out, DatasetFormat fmt,
                          const char *dataset_id) {
    double sum = 0, mn = INFINITY, mx = -INFINITY, len = 0;
    for (int i = 0; i < s->episodes; i++) {
        sum += s->returns[i];
        mn = s->returns[i] < mn ? s->returns[i] : mn;
        mx = s->returns[i] > mx ? s->returns[i] : mx;
        len += s->lengths[i];
    }
    double mean = sum / s->episodes, var = 0;
    for (int i = 0; i < s->episodes; i++) {
        var += (s->returns[i] - mean) * (s->returns[i] - mean);
    }
    printf("rollout: %d episodes, %lld steps in %.1f s (%.0f steps/s)", s->episodes,
           (long long)s->steps, s->seconds, s->seconds > 0 ? (double)s->steps / s->seconds : 0.0);
    if (s->unstable > 0) {
        printf(", %lld unstable episodes dropped and replaced", (long long)s->unstable);
    }
    printf("\nreturn %.6f +- %.6f (min %.6f, max %.6f), length %.1f\n", mean,
           sqrt(var / s->episodes), mn, mx, len / s->episodes);
    printf("wrote %s (%s)\n", out, dataset_format_name(fmt));
    if (dataset_id) {
        printf("dataset id %s: minari.load_dataset('%s') finds it at "
               "$MINARI_DATASETS_PATH/%s\n",
               dataset_id, dataset_id, dataset_id);
    }
}

int cmd_rollout(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            rollout_usage();
            return FLAME_OK;
        }
    }
    RolloutArgs a;
    int rc = parse_args(argc, argv, &a);
    if (rc != FLAME_OK) {
        return rc;
    }

    /* options that need nothing else */
    DatasetFormat fmt;
    if (dataset_format_parse(a.format, &fmt) != FLAME_OK) {
        return cli_fail_last(CMD, FLAME_EINPUT);
    }
    if (a.episodes == -1) {
        return cli_fail(CMD, FLAME_EINPUT, "--episodes N is required (N >= 1)");
    }
    if (a.episodes < 1 || a.episodes > INT_MAX) {
        return cli_fail(CMD, FLAME_EINPUT, "--episodes must be at least 1 (got %lld)", a.episodes);
    }
    if (!a.out) {
        return cli_fail(CMD, FLAME_EINPUT,
                        "--out PATH is required (a file for d4rl, a "
                        "directory for minari)");
    }
    bool random_policy = false;
    if (a.policy) {
        if (strcmp(a.policy, "random") != 0) {
            return cli_fail(CMD, FLAME_EINPUT,
                            "unknown --policy '%s'; use --policy random or "
                            "--ckpt FILE",
                            a.policy);
        }
        random_policy = true;
    }
    if (random_policy == (a.ckpt != NULL)) {
        return cli_fail(CMD, FLAME_EINPUT, "give exactly one of --ckpt FILE and --policy random");
    }
    if (random_policy && !a.env) {
        return cli_fail(CMD, FLAME_EINPUT,
                        "--policy random needs --env ID (`flame envs` lists "
                        "them)");
    }
    const EnvSpec *spec = NULL;
    if (a.env && !(spec = env_spec_find(a.env))) {
        return cli_fail(CMD, FLAME_EINPUT, "unknown env id '%s'; `flame envs` lists the ids",
                        a.env);
    }
    int backend_kind = BACKEND_AUTO;
    if ((rc = parse_backend(a.backend, &backend_kind)) != FLAME_OK) {
        return rc;
    }

    /* the checkpoint */
    Checkpoint ck;
    memset(&ck, 0, sizeof ck);
    FlameConfig cfg;
    if (a.ckpt) {
        if (ckpt_read(a.ckpt, &ck, false) != FLAME_OK) {
            return cli_fail(CMD, FLAME_EINPUT, "%s; pass a checkpoint written by `flame train`",
                            flame_last_error());
        }
        const EnvSpec *ck_spec = env_spec_find(ck.env_id);
        if (!ck_spec) {
            rc = cli_fail(CMD, FLAME_EINPUT, "%s: checkpoint env '%s' is not a known env id",
                          a.ckpt, ck.env_id);
        } else if (spec && spec != ck_spec) {
            rc = cli_fail(CMD, FLAME_EINPUT,
                          "%s was trained on %s, not on --env %s; drop --env "
                          "or pass a checkpoint of %s",
                          a.ckpt, ck.env_id, a.env, a.env);
        } else if (ck.obs_dim != ck_spec->obs_dim || ck.act_dim != ck_spec->act_dim) {
            rc = cli_fail(CMD, FLAME_EINPUT,
                          "%s: checkpoint dimensions (obs %d, act %d) differ "
                          "from %s (obs %d, act %d)",
                          a.ckpt, ck.obs_dim, ck.act_dim, ck.env_id, ck_spec->obs_dim,
                          ck_spec->act_dim);
        }
        if (rc != FLAME_OK) {
            ckpt_free(&ck);
            return rc;
        }
        spec = ck_spec;
        cfg = ck.cfg;
    } else {
        config_defaults(&cfg);
    }
    uint64_t seed = a.have_seed ? (uint64_t)a.seed : (a.ckpt ? (uint64_t)cfg.run.seed : 1);
    int envs = a.envs > 0 ? (int)a.envs : ROLLOUT_DEFAULT_ENVS;
    envs = envs < a.episodes ? envs : (int)a.episodes;

    /* the output location (checked now, written under a temporary name) */
    char dataset_id[1024] = "";
    if (fmt == DATASET_MINARI &&
        dataset_minari_id(a.dataset_id, spec->id, a.ckpt ? config_algo_name(cfg.algo) : "random",
                          !a.stochastic || !a.ckpt, dataset_id, sizeof dataset_id) != FLAME_OK) {
        ckpt_free(&ck);
        return cli_fail_last(CMD, FLAME_EINPUT);
    }
    const BackendOps *ops = NULL;
    Backend *backend = NULL;
    if (a.ckpt) {
        cfg.backend.type = a.backend ? backend_kind : cfg.backend.type;
        cfg.run.seed = (int64_t)seed;
        /* acting needs no replay buffer and no minibatch */
        cfg.update.replay_size = 1;
        cfg.update.batch_size = 1;
        ops = backend_select(&cfg);
        if (!ops) {
            ckpt_free(&ck);
            return cli_fail_last(CMD, FLAME_EINPUT);
        }
    }
    double *low = flame_malloc((size_t)spec->act_dim * sizeof(double));
    double *high = flame_malloc((size_t)spec->act_dim * sizeof(double));
    mjModel *m = NULL;
    const char *model_xml = a.ckpt ? cfg.env.model_xml : NULL;
    if (env_model_load(spec, model_xml, &m) != FLAME_OK) {
        rc = cli_fail_last(CMD, FLAME_EINPUT);
        flame_free(low), flame_free(high);
        ckpt_free(&ck);
        return rc;
    }
    Env *probe = env_create(spec, m);
    env_action_bounds(probe, low, high);
    DatasetInfo info = {.spec = spec,
                        .nq = env_nq(probe),
                        .nv = env_nv(probe),
                        .act_low = low,
                        .act_high = high,
                        .source = "rollout",
                        .algorithm = a.ckpt ? config_algo_name(cfg.algo) : "random",
                        .policy = a.ckpt ? a.ckpt : "random",
                        .backend = ops ? ops->name : "",
                        .config_yaml = NULL,
                        .iteration = a.ckpt ? ck.st.updates : 0,
                        .env_steps = a.ckpt ? ck.tc.env_steps : 0,
                        .seed = seed,
                        .deterministic = !a.stochastic && !random_policy,
                        .num_envs = envs,
                        .dataset_id = dataset_id,
                        .author = a.author,
                        .author_email = a.author_email,
                        .code_permalink = a.code_permalink};
    env_free(probe);
    mj_deleteModel(m);
    char *yaml = a.ckpt ? config_to_yaml(&ck.cfg) : NULL;
    info.config_yaml = yaml;
    DatasetWriter *w = NULL;
    /* from here on a signal stops the rollout and the temporary output is removed */
    void (*old_int)(int) = signal(SIGINT, rollout_on_signal);
    void (*old_term)(int) = signal(SIGTERM, rollout_on_signal);
    rc = dataset_open(&w, a.out, fmt, &info, a.force);
    if (rc != FLAME_OK) {
        rc = cli_fail_last(CMD, rc);
        goto done;
    }

    /* the policy */
    if (ops) {
        if (ops->create(&cfg, spec->obs_dim, spec->act_dim, &backend) != FLAME_OK) {
            rc = cli_fail_last(CMD, FLAME_ERUNTIME);
            dataset_abort(w);
            goto done;
        }
        ops->set_state(backend, &ck.st);
    }

    /* the rollout */
    RolloutOptions ro = {.policy = random_policy ? ROLLOUT_POLICY_RANDOM : ROLLOUT_POLICY_AGENT,
                         .ops = ops,
                         .backend = backend,
                         .deterministic = !a.stochastic,
                         .spec = spec,
                         .model_xml = model_xml,
                         .episodes = (int)a.episodes,
                         .num_envs = envs,
                         .num_threads = cli_resolve_threads((int)a.threads, envs),
                         .seed = seed,
                         .progress = true,
                         .stop = &rollout_stop};
    printf("rollout: %s, %s policy%s, %d episodes on %d envs (%d thread%s), seed %llu -> %s "
           "(%s)\n",
           spec->id, info.algorithm, random_policy ? "" : (a.stochastic ? " (stochastic)" : ""),
           ro.episodes, envs, ro.num_threads, ro.num_threads == 1 ? "" : "s",
           (unsigned long long)seed, a.out, dataset_format_name(fmt));
    fflush(stdout);
    RolloutStats stats;
    rc = dataset_rollout(&ro, w, &stats);
    if (rc == FLAME_OK) {
        rc = dataset_close(w);
    } else {
        dataset_abort(w);
    }
    if (rc == FLAME_OK) {
        print_summary(&stats, a.out, fmt, fmt == DATASET_MINARI ? dataset_id : NULL);
    } else {
        rc = cli_fail_last(CMD, rc);
    }
    dataset_rollout_stats_free(&stats);
    if (backend) {
        ops->destroy(backend);
    }
done:
    signal(SIGINT, old_int);
    signal(SIGTERM, old_term);
    free(yaml);
    flame_free(low), flame_free(high);
    ckpt_free(&ck);
    return rc;
}
