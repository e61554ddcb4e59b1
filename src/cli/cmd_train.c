/* cmd_train.c: `flame train`: a new run from a config, or the continuation of a run. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flame/check.h"
#include "flame/ckpt.h"
#include "flame/cli.h"
#include "flame/fsutil.h"
#include "flame/train.h"

#define MAX_SETS 256
/* what the run directory gets appended at most: "/ckpt/step_<int64>.h5.tmp" */
#define RUN_DIR_RESERVE 40

static void train_usage(FILE *f) {
    fprintf(f,
            "usage: flame train [CONFIG.yaml] [options]\n\n"
            "Trains an agent: warm-up with random actions, then vectorised env steps, replay, "
            "gradient updates,\nperiodic evaluation; writes <run.out_dir>/<run.name>/metrics.h5, "
            "config.yaml and ckpt/step_<N>.h5.\n\n"
            "options:\n"
            "  CONFIG.yaml, --config F   YAML config (keys: flame train --help-config); default: "
            "built-in defaults\n"
            "                            (FLAME-M, HalfCheetah-v5, reference hyperparameters)\n"
            "  --set KEY=VALUE           override one key (repeatable), e.g. --set "
            "update.batch_size=512\n"
            "  --backend auto|cpu|cuda   backend (auto: cuda when a device exists)\n"
            "  --name NAME, --out DIR    run name and parent directory (run.name, run.out_dir)\n"
            "  --resume RUN_DIR          continue a run from its latest checkpoint (--set may "
            "change run.* keys)\n"
            "  --force                   overwrite an existing run directory\n"
            "  --print-config            print the resolved config as YAML and exit\n"
            "  --help-config             list every config key with its default and range\n"
            "  --quiet                   no start block (estimate included) and no progress lines\n"
            "exit status: 0 done, 1 runtime failure, 2 bad usage/config/input or a run directory "
            "another\nflame train is writing (named), 130/143 stopped by SIGINT/SIGTERM "
            "(checkpoint written)\n");
}

/* Keys a resumed run may change: its budget and cadences, and where it computes. */
static bool resumable_key(const char *assignment) {
    return !strncmp(assignment, "run.total_steps=", 16) || !strncmp(assignment, "run.eval_", 9) ||
           !strncmp(assignment, "run.ckpt_every=", 15) || !strncmp(assignment, "run.log_every=", 14) ||
           !strncmp(assignment, "run.metrics_every=", 18) ||
           !strncmp(assignment, "run.flush_every=", 16) || !strncmp(assignment, "backend.", 8) ||
           !strncmp(assignment, "env.threads=", 12);
}

typedef struct {
    const char *config_path, *resume, *backend, *name, *out;
    char *sets[MAX_SETS + 3];
    int nsets;
    bool force, print_config, quiet;
    /* --backend/--name/--out as --set assignments */
    char bset[64], nset[FLAME_CFG_STR + 16], oset[FLAME_CFG_STR + 16];
} TrainArgs;

/* FLAME_OK, an exit status, or -1 when a help text was printed */
static int parse_args(int argc, char **argv, TrainArgs *a) {
    static const struct option longopts[] = {
        {"config", required_argument, 0, 'c'}, {"set", required_argument, 0, 's'},
        {"backend", required_argument, 0, 'b'}, {"name", required_argument, 0, 'n'},
        {"out", required_argument, 0, 'o'},     {"resume", required_argument, 0, 'r'},
        {"force", no_argument, 0, 'f'},         {"print-config", no_argument, 0, 'p'},
        {"help-config", no_argument, 0, 'H'},   {"quiet", no_argument, 0, 'q'},
        {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
    memset(a, 0, sizeof *a);
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "hc:s:", longopts, NULL)) != -1) {
        switch (c) {
            case 'c':
                a->config_path = optarg;
                break;
            case 's':
                if (a->nsets >= MAX_SETS) {
                    return cli_fail("train", FLAME_EINPUT, "too many --set options (max %d)",
                                    MAX_SETS);
                }
                a->sets[a->nsets++] = optarg;
                break;
            case 'b':
                a->backend = optarg;
                break;
            case 'n':
                a->name = optarg;
                break;
            case 'o':
                a->out = optarg;
                break;
            case 'r':
                a->resume = optarg;
                break;
            case 'f':
                a->force = true;
                break;
            case 'p':
                a->print_config = true;
                break;
            case 'q':
                a->quiet = true;
                break;
            case 'H':
                config_print_help(stdout);
                return -1;
            case 'h':
                train_usage(stdout);
                return -1;
            default:
                return cli_fail("train", FLAME_EINPUT,
                                "unknown or incomplete option '%s'; see `flame train --help`",
                                argv[optind - 1]);
        }
    }
    if (optind < argc) {
        if (a->config_path || optind + 1 < argc) {
            return cli_fail("train", FLAME_EINPUT,
                            "unexpected argument '%s'; give one config file (or --config F)",
                            argv[optind + (a->config_path ? 0 : 1)]);
        }
        a->config_path = argv[optind];
    }
    /* --backend/--name/--out are --set shorthands; a run name is one directory name */
    if (a->name && !fs_name_component_ok(a->name)) {
        return cli_fail("train", FLAME_EINPUT,
                        "--name '%s' is not a single directory name (not empty, no '/', not '.' "
                        "or '..'); choose the parent directory with --out",
                        a->name);
    }
    const char *too_long = a->name && strlen(a->name) >= FLAME_CFG_STR  ? "--name"
                           : a->out && strlen(a->out) >= FLAME_CFG_STR ? "--out"
                                                                       : NULL;
    if (too_long) {
        return cli_fail("train", FLAME_EINPUT, "%s is %zu bytes; at most %d bytes are allowed",
                        too_long, strlen(!strcmp(too_long, "--name") ? a->name : a->out),
                        FLAME_CFG_STR - 1);
    }
    if (a->backend) {
        snprintf(a->bset, sizeof a->bset, "backend.type=%s", a->backend);
        a->sets[a->nsets++] = a->bset;
    }
    if (a->name) {
        snprintf(a->nset, sizeof a->nset, "run.name=%s", a->name);
        a->sets[a->nsets++] = a->nset;
    }
    if (a->out) {
        snprintf(a->oset, sizeof a->oset, "run.out_dir=%s", a->out);
        a->sets[a->nsets++] = a->oset;
    }
    return FLAME_OK;
}

/* A resumed run: the config stored in its latest checkpoint, a given config only as a check, and
   --set limited to what a resume may change. */
static int resume_config(const TrainArgs *a, FlameConfig *cfg, char *ckpt_path, size_t ckpt_len) {
    if (fs_check_path(a->resume, RUN_DIR_RESERVE, "--resume") != FLAME_OK) {
        return cli_fail_last("train", FLAME_EINPUT);
    }
    if (ckpt_latest(a->resume, ckpt_path, ckpt_len) != FLAME_OK) {
        return cli_fail_last("train", FLAME_EINPUT);
    }
    Checkpoint ck;
    if (ckpt_read(ckpt_path, &ck, false) != FLAME_OK) {
        return cli_fail_last("train", FLAME_EINPUT);
    }
    *cfg = ck.cfg;
    ckpt_free(&ck);
    if (a->config_path) {
        FlameConfig given;
        if (cli_load_config(&given, a->config_path, NULL, 0) != FLAME_OK) {
            return cli_fail_last("train", FLAME_EINPUT);
        }
        if (strcmp(given.env.id, cfg->env.id) || given.algo != cfg->algo ||
            given.net.hidden != cfg->net.hidden || given.net.layers != cfg->net.layers) {
            return cli_fail("train", FLAME_EINPUT,
                            "%s was trained as %s on %s (%dx%d) but %s asks for %s on %s "
                            "(%dx%d); resume without a config or with the run's config.yaml",
                            a->resume, config_algo_name(cfg->algo), cfg->env.id, cfg->net.layers,
                            cfg->net.hidden, a->config_path, config_algo_name(given.algo),
                            given.env.id, given.net.layers, given.net.hidden);
        }
    }
    for (int i = 0; i < a->nsets; i++) {
        if (!resumable_key(a->sets[i])) {
            return cli_fail("train", FLAME_EINPUT,
                            "--set %s cannot change a resumed run (only run.total_steps, "
                            "run.*_every, run.eval_*, env.threads and backend.* can)",
                            a->sets[i]);
        }
        if (config_set(cfg, a->sets[i]) != FLAME_OK) {
            return cli_fail_last("train", FLAME_EINPUT);
        }
    }
    config_resolve(cfg);
    if (config_validate(cfg) != FLAME_OK) {
        return cli_fail_last("train", FLAME_EINPUT);
    }
    return FLAME_OK;
}

/* A new run: the config file and --set; run.name defaults to <env>_<algo>_s<seed>. */
static int fresh_config(TrainArgs *a, FlameConfig *cfg) {
    if (cli_load_config(cfg, a->config_path, a->sets, a->nsets) != FLAME_OK) {
        return cli_fail_last("train", FLAME_EINPUT);
    }
    /* the run directory is run.out_dir/run.name: the name stays one directory below */
    if (cfg->run.name[0] && !fs_name_component_ok(cfg->run.name)) {
        return cli_fail("train", FLAME_EINPUT,
                        "run.name '%s' is not a single directory name (no '/', not '.' or "
                        "'..'); choose the parent directory with run.out_dir (--out)",
                        cfg->run.name);
    }
    if (!cfg->run.name[0]) {
        char nm[FLAME_CFG_STR + 64];
        int len = snprintf(nm, sizeof nm, "%s_%s_s%lld", cfg->env.id, config_algo_name(cfg->algo),
                           (long long)cfg->run.seed);
        if (len >= FLAME_CFG_STR) {
            return cli_fail("train", FLAME_EINPUT, "run name too long; set run.name");
        }
        memcpy(cfg->run.name, nm, (size_t)len + 1);
    }
    return FLAME_OK;
}

int cmd_train(int argc, char **argv) {
    TrainArgs a;
    int rc = parse_args(argc, argv, &a);
    if (rc != FLAME_OK) {
        return rc < 0 ? FLAME_OK : rc;
    }
    FlameConfig cfg;
    char ckpt_path[FS_PATH_MAX] = "";
    char run_dir[FS_PATH_MAX];
    rc = a.resume ? resume_config(&a, &cfg, ckpt_path, sizeof ckpt_path) : fresh_config(&a, &cfg);
    if (rc != FLAME_OK) {
        return rc;
    }
    if (a.resume) {
        snprintf(run_dir, sizeof run_dir, "%s", a.resume);
    } else {
        if (fs_printf(run_dir, sizeof run_dir, "run directory", "%s/%s", cfg.run.out_dir,
                      cfg.run.name) != FLAME_OK ||
            fs_check_path(run_dir, RUN_DIR_RESERVE, "run directory (run.out_dir/run.name)") !=
                FLAME_OK) {
            return cli_fail_last("train", FLAME_EINPUT);
        }
    }
    if (a.print_config) {
        char *y = config_to_yaml(&cfg);
        fputs(y, stdout);
        free(y);
        return FLAME_OK;
    }
    TrainOptions opt = {run_dir, a.force, a.resume ? ckpt_path : NULL, a.quiet, true, 0};
    TrainSummary sum;
    rc = train_run(&cfg, &opt, &sum);
    if (rc != FLAME_OK) {
        return cli_fail_last("train", rc);
    }
    if (!a.quiet && !sum.exit_code) {
        printf("flame train: done: %lld env steps, %lld updates in %.1f s; outputs in %s\n",
               (long long)sum.env_steps, (long long)sum.updates, sum.total_s, run_dir);
    }
    return sum.exit_code ? sum.exit_code : FLAME_OK;
}
