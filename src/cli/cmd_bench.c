/* cmd_bench.c: `flame bench <suite>`: the command line of the benchmark suites (src/bench/). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flame/bench.h"
#include "flame/check.h"
#include "flame/cli.h"

static void bench_usage(FILE *f) {
    fprintf(f,
            "usage: flame bench <suite> [--json FILE] [--quick] [--backend auto|cpu|cuda]\n"
            "                   [--config F] [--set KEY=VALUE ...] [suite options]\n\n"
            "suites:\n"
            "  update    updates/s of the whole update per backend, kernel choice and precision, "
            "a per-stage\n"
            "            breakdown, and on the CPU the ratio to sgemm and to the GEMM floor "
            "(flame-algorithm.md §13)\n"
            "  act       action latency (p50/p99) at batch 1 and at env.num_envs, deterministic "
            "and exploring\n"
            "  env       env pool steps/s per env id and thread count next to a raw mj_step loop\n"
            "  e2e       a short training run without outputs: env steps/s, updates/s, time per "
            "phase\n"
            "  kernels   the CUDA kernel benchmarks (needs a GPU; its arguments go to the CUDA "
            "backend unparsed)\n\n"
            "options:\n"
            "  --json FILE            append one JSON object per measurement to FILE\n"
            "  --quick                tiny sizes and short times (smoke tests)\n"
            "  --backend B            auto (every backend available here), cpu or cuda; default: "
            "backend.type\n"
            "  --config F, --set K=V  config (YAML) and overrides, as for flame train; sizes come "
            "from env.id\n"
            "  --env ID               update/act/e2e: the task whose sizes to use (e.g. "
            "Humanoid-v5);\n"
            "                         env: repeatable (default: HalfCheetah, Hopper, Walker2d, "
            "Ant, Humanoid v5)\n"
            "  --threads LIST         env: thread counts, e.g. 1,2,4 (default 1, 2, 4, ... up to "
            "the cores)\n"
            "  --seconds S            act, env: seconds per measurement (default 1)\n"
            "  --repeats N            update: timed repeats (default 7)\n"
            "  --no-stages            update: skip the per-stage breakdown\n"
            "  --steps N              e2e: transitions after the warm-up (default 500)\n"
            "exit status: 0 done, 1 a validation failed, 2 bad usage or config\n");
}

/* which suites accept which suite option */
static bool suite_accepts(const char *suite, char opt) {
    switch (opt) {
        case 't':
            return !strcmp(suite, "env");
        case 'S':
            return !strcmp(suite, "act") || !strcmp(suite, "env");
        case 'R':
        case 'N':
            return !strcmp(suite, "update");
        case 'T':
            return !strcmp(suite, "e2e");
        default:
            return true;
    }
}

static int parse_threads(const char *s, BenchOptions *o) {
    const char *p = s;
    while (*p) {
        char *end = NULL;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > 1024 || (*end && *end != ',')) {
            return cli_fail("bench", FLAME_EINPUT,
                            "bad --threads '%s'; give thread counts >= 1 separated by commas, "
                            "e.g. 1,2,4",
                            s);
        }
        if (o->n_threads >= BENCH_MAX_THREADS) {
            return cli_fail("bench", FLAME_EINPUT, "too many --threads values (max %d)",
                            BENCH_MAX_THREADS);
        }
        o->threads[o->n_threads++] = (int)v;
        p = *end ? end + 1 : end;
    }
    return o->n_threads > 0 ? FLAME_OK
                            : cli_fail("bench", FLAME_EINPUT, "--threads needs at least one count");
}

static int parse_number(const char *opt, const char *s, double lo, double hi, double *out) {
    char *end = NULL;
    double v = strtod(s, &end);
    if (end == s || *end || !(v >= lo && v <= hi)) {
        return cli_fail("bench", FLAME_EINPUT, "bad %s '%s'; expected a number in [%g, %g]", opt, s,
                        lo, hi);
    }
    *out = v;
    return FLAME_OK;
}

/* one option of a suite into o (c: getopt's code); FLAME_OK or the exit status */
static int apply_option(int c, const char *arg, BenchOptions *o) {
    double num = 0;
    int rc = FLAME_OK;
    switch (c) {
        case 'j':
            o->json_path = arg;
            break;
        case 'q':
            o->quick = true;
            break;
        case 'b':
            rc = cli_parse_backend("bench", arg, &o->backend);
            o->backend_given = true;
            break;
        case 'c':
            o->config_path = arg;
            break;
        case 's':
            if (o->nsets >= BENCH_MAX_SETS) {
                return cli_fail("bench", FLAME_EINPUT, "too many --set options (max %d)",
                                BENCH_MAX_SETS);
            }
            o->sets[o->nsets++] = (char *)arg;
            break;
        case 'e':
            if (o->n_env_ids >= BENCH_MAX_IDS) {
                return cli_fail("bench", FLAME_EINPUT, "too many --env options (max %d)",
                                BENCH_MAX_IDS);
            }
            o->env_ids[o->n_env_ids++] = arg;
            break;
        case 't':
            rc = parse_threads(arg, o);
            break;
        case 'S':
            rc = parse_number("--seconds", arg, 1e-3, 3600, &num);
            o->seconds = num;
            break;
        case 'R':
            rc = parse_number("--repeats", arg, 1, 10000, &num);
            o->repeats = (int)num;
            break;
        case 'N':
            o->no_stages = true;
            break;
        case 'T':
            rc = parse_number("--steps", arg, 1, 1e12, &num);
            o->steps = (int64_t)num;
            break;
    }
    return rc;
}

/* the options after the suite name; FLAME_OK, the exit status, or -1 after --help */
static int parse_options(int argc, char **argv, const char *suite, BenchOptions *o) {
    static const struct option longopts[] = {{"json", required_argument, 0, 'j'},
                                             {"quick", no_argument, 0, 'q'},
                                             {"backend", required_argument, 0, 'b'},
                                             {"config", required_argument, 0, 'c'},
                                             {"set", required_argument, 0, 's'},
                                             {"env", required_argument, 0, 'e'},
                                             {"threads", required_argument, 0, 't'},
                                             {"seconds", required_argument, 0, 'S'},
                                             {"repeats", required_argument, 0, 'R'},
                                             {"no-stages", no_argument, 0, 'N'},
                                             {"steps", required_argument, 0, 'T'},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    memset(o, 0, sizeof *o);
    o->suite = suite;
    o->backend = BACKEND_AUTO;
    /* options start after the suite name: getopt sees argv[1..] with the suite as its argv[0] */
    int ac = argc - 1;
    char **av = argv + 1;
    optind = 1;
    opterr = 0;
    int c, li = -1;
    while ((c = getopt_long(ac, av, "+:h", longopts, &li)) != -1) {
        if (c != '?' && c != ':' && !suite_accepts(suite, (char)c)) {
            return cli_fail("bench", FLAME_EINPUT, "option '--%s' does not apply to the %s suite",
                            li >= 0 ? longopts[li].name : "?", suite);
        }
        li = -1;
        if (c == 'h') {
            bench_usage(stdout);
            return -1;
        }
        if (c == ':') {
            return cli_fail("bench", FLAME_EINPUT, "option '%s' needs a value", av[optind - 1]);
        }
        if (c == '?') {
            return cli_fail("bench", FLAME_EINPUT,
                            "unknown option '%s' (flame bench --help lists them)", av[optind - 1]);
        }
        int rc = apply_option(c, optarg, o);
        if (rc != FLAME_OK) {
            return rc;
        }
    }
    if (optind < ac) {
        return cli_fail("bench", FLAME_EINPUT,
                        "unexpected argument '%s'; the config file goes after --config",
                        av[optind]);
    }
    if (o->n_env_ids > 1 && strcmp(suite, "env") != 0) {
        return cli_fail("bench", FLAME_EINPUT, "the %s suite takes one --env", suite);
    }
    if (o->json_path) {
        FILE *f = fopen(o->json_path, "a");
        if (!f) {
            return cli_fail("bench", FLAME_EINPUT, "cannot append to --json file '%s'",
                            o->json_path);
        }
        fclose(f);
    }
    return FLAME_OK;
}

int cmd_bench(int argc, char **argv) {
    if (argc < 2) {
        return cli_fail("bench", FLAME_EINPUT,
                        "missing suite; use one of update, act, env, e2e, kernels (flame bench "
                        "--help)");
    }
    const char *suite = argv[1];
    if (!strcmp(suite, "--help") || !strcmp(suite, "-h") || !strcmp(suite, "help")) {
        bench_usage(stdout);
        return FLAME_OK;
    }
    if (!strcmp(suite, "kernels")) {
        return bench_kernels(argc - 2, argv + 2);
    }
    static const struct {
        const char *name;
        int (*run)(const BenchOptions *);
    } suites[] = {
        {"update", bench_update}, {"act", bench_act}, {"env", bench_env}, {"e2e", bench_e2e}};
    int which = -1;
    for (int i = 0; i < 4; i++) {
        which = !strcmp(suite, suites[i].name) ? i : which;
    }
    if (which < 0) {
        return cli_fail("bench", FLAME_EINPUT,
                        "unknown suite '%s'; use one of update, act, env, e2e, kernels", suite);
    }
    BenchOptions o;
    int rc = parse_options(argc, argv, suite, &o);
    if (rc != FLAME_OK) {
        return rc < 0 ? FLAME_OK : rc;
    }
    rc = suites[which].run(&o);
    fflush(stdout);
    if (rc != FLAME_OK) {
        return cli_fail_last("bench", rc == FLAME_EINPUT ? FLAME_EINPUT : FLAME_ERUNTIME);
    }
    return FLAME_OK;
}
