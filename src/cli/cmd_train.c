/* cmd_train.c: `flame train` and `flame eval`. */
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
            "  --quiet                   no progress output\n"
            "exit status: 0 done, 1 runtime failure, 2 bad usage/config/input, 130/143 stopped by "
            "SIGINT/SIGTERM (checkpoint written)\n");
}

/* Keys a resumed run may change: its budget and cadences, and where it computes. */
static bool resumable_key(const char *assignment) {
    return !strncmp(assignment, "run.total_steps=", 16) || !strncmp(assignment, "run.eval_", 9) ||
           !strncmp(assignment, "run.ckpt_every=", 15) || !strncmp(assignment, "run.log_every=", 14) ||
           !strncmp(assignment, "run.metrics_every=", 18) ||
           !strncmp(assignment, "run.flush_every=", 16) || !strncmp(assignment, "backend.", 8) ||
           !strncmp(assignment, "env.threads=", 12);
}

int cmd_train(int argc, char **argv) {
    static const struct option longopts[] = {
        {"config", required_argument, 0, 'c'}, {"set", required_argument, 0, 's'},
        {"backend", required_argument, 0, 'b'}, {"name", required_argument, 0, 'n'},
        {"out", required_argument, 0, 'o'},     {"resume", required_argument, 0, 'r'},
        {"force", no_argument, 0, 'f'},         {"print-config", no_argument, 0, 'p'},
        {"help-config", no_argument, 0, 'H'},   {"quiet", no_argument, 0, 'q'},
        {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
    const char *config_path = NULL, *resume = NULL, *backend = NULL, *name = NULL, *out = NULL;
    char *sets[MAX_SETS + 3];
    int nsets = 0;
    bool force = false, print_config = false, quiet = false;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "hc:s:", longopts, NULL)) != -1) {
        switch (c) {
            case 'c':
                config_path = optarg;
                break;
            case 's':
                if (nsets >= MAX_SETS) {
                    return cli_fail("train", FLAME_EINPUT, "too many --set options (max %d)",
                                    MAX_SETS);
                }
                sets[nsets++] = optarg;
                break;
            case 'b':
                backend = optarg;
                break;
            case 'n':
                name = optarg;
                break;
            case 'o':
                out = optarg;
                break;
            case 'r':
                resume = optarg;
                break;
            case 'f':
                force = true;
                break;
            case 'p':
                print_config = true;
                break;
            case 'q':
                quiet = true;
                break;
            case 'H':
                config_print_help(stdout);
                return FLAME_OK;
            case 'h':
                train_usage(stdout);
                return FLAME_OK;
            default:
                return cli_fail("train", FLAME_EINPUT,
                                "unknown or incomplete option '%s'; see `flame train --help`",
                                argv[optind - 1]);
        }
    }
    if (optind < argc) {
        if (config_path || optind + 1 < argc) {
            return cli_fail("train", FLAME_EINPUT,
                            "unexpected argument '%s'; give one config file (or --config F)",
                            argv[optind + (config_path ? 0 : 1)]);
        }
        config_path = argv[optind];
    }
    /* --backend/--name/--out are --set shorthands; a run name is one directory name */
    if (name && !fs_name_component_ok(name)) {
        return cli_fail("train", FLAME_EINPUT,
                        "--name '%s' is not a single directory name (not empty, no '/', not '.' "
                        "or '..'); choose the parent directory with --out",
                        name);
    }
    const char *too_long = name && strlen(name) >= FLAME_CFG_STR ? "--name"
                           : out && strlen(out) >= FLAME_CFG_STR ? "--out"
                                                                 : NULL;
    if (too_long) {
        return cli_fail("train", FLAME_EINPUT, "%s is %zu bytes; at most %d bytes are allowed",
                        too_long, strlen(!strcmp(too_long, "--name") ? name : out),
                        FLAME_CFG_STR - 1);
    }
    char bset[64], nset[FLAME_CFG_STR + 16], oset[FLAME_CFG_STR + 16];
    if (backend) {
        snprintf(bset, sizeof bset, "backend.type=%s", backend);
        sets[nsets++] = bset;
    }
    if (name) {
        snprintf(nset, sizeof nset, "run.name=%s", name);
        sets[nsets++] = nset;
    }
    if (out) {
        snprintf(oset, sizeof oset, "run.out_dir=%s", out);
        sets[nsets++] = oset;
    }

    FlameConfig cfg;
    char ckpt_path[FS_PATH_MAX] = "";
    char run_dir[FS_PATH_MAX];
    if (resume && fs_check_path(resume, RUN_DIR_RESERVE, "--resume") != FLAME_OK) {
        return cli_fail_last("train", FLAME_EINPUT);
    }
    if (resume) {
        /* the run's own config, from its latest checkpoint */
        if (ckpt_latest(resume, ckpt_path, sizeof ckpt_path) != FLAME_OK) {
            return cli_fail_last("train", FLAME_EINPUT);
        }
        Checkpoint ck;
        if (ckpt_read(ckpt_path, &ck, false) != FLAME_OK) {
            return cli_fail_last("train", FLAME_EINPUT);
        }
        cfg = ck.cfg;
        ckpt_free(&ck);
        if (config_path) {
            FlameConfig given;
            if (cli_load_config(&given, config_path, NULL, 0) != FLAME_OK) {
                return cli_fail_last("train", FLAME_EINPUT);
            }
            if (strcmp(given.env.id, cfg.env.id) || given.algo != cfg.algo ||
                given.net.hidden != cfg.net.hidden || given.net.layers != cfg.net.layers) {
                return cli_fail("train", FLAME_EINPUT,
                                "%s was trained as %s on %s (%dx%d) but %s asks for %s on %s "
                                "(%dx%d); resume without a config or with the run's config.yaml",
                                resume, config_algo_name(cfg.algo), cfg.env.id, cfg.net.layers,
                                cfg.net.hidden, config_path, config_algo_name(given.algo),
                                given.env.id, given.net.layers, given.net.hidden);
            }
        }
        for (int i = 0; i < nsets; i++) {
            if (!resumable_key(sets[i])) {
                return cli_fail("train", FLAME_EINPUT,
                                "--set %s cannot change a resumed run (only run.total_steps, "
                                "run.*_every, run.eval_*, env.threads and backend.* can)",
                                sets[i]);
            }
            if (config_set(&cfg, sets[i]) != FLAME_OK) {
                return cli_fail_last("train", FLAME_EINPUT);
            }
        }
        config_resolve(&cfg);
        if (config_validate(&cfg) != FLAME_OK) {
            return cli_fail_last("train", FLAME_EINPUT);
        }
        snprintf(run_dir, sizeof run_dir, "%s", resume);
    } else {
        if (cli_load_config(&cfg, config_path, sets, nsets) != FLAME_OK) {
            return cli_fail_last("train", FLAME_EINPUT);
        }
        /* the run directory is run.out_dir/run.name: the name stays one directory below */
        if (cfg.run.name[0] && !fs_name_component_ok(cfg.run.name)) {
            return cli_fail("train", FLAME_EINPUT,
                            "run.name '%s' is not a single directory name (no '/', not '.' or "
                            "'..'); choose the parent directory with run.out_dir (--out)",
                            cfg.run.name);
        }
        if (!cfg.run.name[0]) {
            char nm[FLAME_CFG_STR + 64];
            int len = snprintf(nm, sizeof nm, "%s_%s_s%lld", cfg.env.id,
                               config_algo_name(cfg.algo), (long long)cfg.run.seed);
            if (len >= FLAME_CFG_STR) {
                return cli_fail("train", FLAME_EINPUT, "run name too long; set run.name");
            }
            memcpy(cfg.run.name, nm, (size_t)len + 1);
        }
        if (fs_printf(run_dir, sizeof run_dir, "run directory", "%s/%s", cfg.run.out_dir,
                      cfg.run.name) != FLAME_OK ||
            fs_check_path(run_dir, RUN_DIR_RESERVE, "run directory (run.out_dir/run.name)") !=
                FLAME_OK) {
            return cli_fail_last("train", FLAME_EINPUT);
        }
    }
    if (print_config) {
        char *y = config_to_yaml(&cfg);
        fputs(y, stdout);
        free(y);
        return FLAME_OK;
    }
    TrainOptions opt = {run_dir, force, resume ? ckpt_path : NULL, quiet, true, 0};
    TrainSummary sum;
    int rc = train_run(&cfg, &opt, &sum);
    if (rc != FLAME_OK) {
        return cli_fail_last("train", rc);
    }
    if (!quiet && !sum.exit_code) {
        printf("flame train: done: %lld env steps, %lld updates in %.1f s; outputs in %s\n",
               (long long)sum.env_steps, (long long)sum.updates, sum.total_s, run_dir);
    }
    return sum.exit_code ? sum.exit_code : FLAME_OK;
}

/* ------------------------------------------------------------------ eval */
static void eval_usage(FILE *f) {
    fprintf(f, "usage: flame eval --ckpt FILE [--episodes N] [--stochastic] [--seed S] "
               "[--backend auto|cpu|cuda]\n\n"
               "Runs N episodes (default 20) of a checkpoint's policy on fresh envs: the "
               "deterministic EMA policy\n(best-of-N particles, no exploration noise), or the "
               "exploring one with --stochastic; prints the\nmean +- std return and the episode "
               "lengths.\n");
}

int cmd_eval(int argc, char **argv) {
    static const struct option longopts[] = {
        {"ckpt", required_argument, 0, 'k'},  {"episodes", required_argument, 0, 'e'},
        {"stochastic", no_argument, 0, 'S'},  {"seed", required_argument, 0, 's'},
        {"backend", required_argument, 0, 'b'}, {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    const char *ckpt = NULL, *backend = NULL;
    int64_t episodes = 20, seed = -1;
    bool stochastic = false;
    FlameConfig scratch;
    config_defaults(&scratch);
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
            case 'k':
                ckpt = optarg;
                break;
            case 'e':
                if (!config_parse_integer(optarg, &episodes) || episodes < 1 ||
                    episodes > 1000000) {
                    return cli_fail("eval", FLAME_EINPUT,
                                    "--episodes '%s' is not valid: expected an integer in [1, "
                                    "1000000]",
                                    optarg);
                }
                break;
            case 's':
                /* the range of run.seed */
                if (config_set_value(&scratch, config_find_field("run.seed"), optarg, "--seed") !=
                    FLAME_OK) {
                    return cli_fail_last("eval", FLAME_EINPUT);
                }
                seed = scratch.run.seed;
                break;
            case 'S':
                stochastic = true;
                break;
            case 'b':
                backend = optarg;
                break;
            case 'h':
                eval_usage(stdout);
                return FLAME_OK;
            default:
                return cli_fail("eval", FLAME_EINPUT,
                                "unknown or incomplete option '%s'; see `flame eval --help`",
                                argv[optind - 1]);
        }
    }
    if (optind < argc) {
        return cli_fail("eval", FLAME_EINPUT, "unexpected argument '%s'; see `flame eval --help`",
                        argv[optind]);
    }
    if (!ckpt) {
        return cli_fail("eval", FLAME_EINPUT, "--ckpt FILE is required (a runs/<name>/ckpt/"
                                              "step_<N>.h5 file)");
    }
    Checkpoint ck;
    if (ckpt_read(ckpt, &ck, false) != FLAME_OK) {
        return cli_fail_last("eval", FLAME_EINPUT);
    }
    FlameConfig cfg = ck.cfg;
    if (backend) {
        char b[64];
        snprintf(b, sizeof b, "backend.type=%s", backend);
        if (config_set(&cfg, b) != FLAME_OK) {
            ckpt_free(&ck);
            return cli_fail_last("eval", FLAME_EINPUT);
        }
    }
    if (seed >= 0) {
        cfg.run.seed = seed;
    }
    cfg.backend.noise_file[0] = '\0';
    const BackendOps *ops = backend_select(&cfg);
    Backend *b = NULL;
    if (!ops || ops->create(&cfg, ck.obs_dim, ck.act_dim, &b) != FLAME_OK) {
        ckpt_free(&ck);
        return cli_fail_last("eval", FLAME_EINPUT);
    }
    ops->set_state(b, &ck.st);
    EvalResult er;
    int rc = eval_policy(ops, b, &cfg, (int)episodes, stochastic, 0, &er);
    if (rc == FLAME_OK) {
        printf("%s %s, %s policy, %d episodes: return %.2f +- %.2f (min %.2f, max %.2f), "
               "length %.1f\n",
               cfg.env.id, config_algo_name(cfg.algo), stochastic ? "stochastic" : "deterministic",
               (int)episodes, er.return_mean, er.return_std, er.return_min, er.return_max,
               er.length_mean);
        printf("returns:");
        for (int i = 0; i < er.episodes; i++) {
            printf(" %.2f", er.returns[i]);
        }
        printf("\nlengths:");
        for (int i = 0; i < er.episodes; i++) {
            printf(" %d", er.lengths[i]);
        }
        printf("\n");
        free(er.returns);
        free(er.lengths);
    }
    ops->destroy(b);
    ckpt_free(&ck);
    return rc == FLAME_OK ? FLAME_OK : cli_fail_last("eval", rc);
}
