/*
 * cmd_configs.c: `flame configs`, the shipped training configurations (the .yaml files of configs/)
 * with the env, algorithm and budget of each.
 *
 * Where the configs are, first found wins:
 *   1. --dir DIR;
 *   2. $FLAME_CONFIG_DIR;
 *   3. <directory of the running binary>/../share/flame/configs: an installed tree
 *      (`cmake --install` puts flame in <prefix>/bin and the configs in
 * <prefix>/share/flame/configs);
 *   4. the configs/ of the source tree the binary was built from (FLAME_SOURCE_DIR, recorded at
 *      configure time), for a binary run from its build directory.
 * A directory given by 1 or 2 that does not exist is an error (exit 2); when none of 3 and 4
 * exists the command says where it looked (exit 1).
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "flame/build_info.h"
#include "flame/check.h"
#include "flame/cli.h"

#define CMD "configs"
#define DIR_MAX 4096

static void configs_usage(FILE *f) {
    fprintf(f,
            "usage: flame configs [--dir DIR]\n\n"
            "Lists the shipped training configurations with their env, algorithm and budget "
            "(run.total_steps\nafter a warm-up of run.start_steps env steps), env count and "
            "networks; train one with\n`flame train <DIR>/<name>.yaml`.\n\n"
            "The configs are looked for in, first found: --dir DIR; $FLAME_CONFIG_DIR; "
            "<binary's dir>/../share/flame/configs\n(an installed flame); the configs/ of the "
            "source tree this flame was built from\n(%s/configs).\n",
            FLAME_SOURCE_DIR);
}

static bool is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The configs directory (header comment) into dir, with where it came from; FLAME_OK, or the
   exit status after printing the error. */
static int find_dir(const char *given, char *dir, const char **origin) {
    const char *env = getenv("FLAME_CONFIG_DIR");
    if (given || (env && env[0])) {
        const char *d = given ? given : env;
        *origin = given ? "--dir" : "$FLAME_CONFIG_DIR";
        if (!is_dir(d)) {
            return cli_fail(CMD, FLAME_EINPUT, "%s '%s' is not a directory", *origin, d);
        }
        snprintf(dir, DIR_MAX, "%s", d);
        return FLAME_OK;
    }
    char exe[DIR_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    char installed[DIR_MAX + 64] = "";
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            snprintf(installed, sizeof installed, "%s/../share/flame/configs", exe);
            char real[PATH_MAX];
            if (is_dir(installed) && realpath(installed, real) && strlen(real) < DIR_MAX) {
                snprintf(dir, DIR_MAX, "%s", real);
                *origin = "installed beside this binary";
                return FLAME_OK;
            }
        }
    }
    char source[DIR_MAX];
    snprintf(source, sizeof source, "%s/configs", FLAME_SOURCE_DIR);
    if (is_dir(source)) {
        snprintf(dir, DIR_MAX, "%s", source);
        *origin = "the source tree this flame was built from";
        return FLAME_OK;
    }
    return cli_fail(CMD, FLAME_ERUNTIME,
                    "no configs directory: not %s, not %s; give one with --dir DIR or "
                    "$FLAME_CONFIG_DIR",
                    installed[0] ? installed : "<binary's dir>/../share/flame/configs", source);
}

static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* the *.yaml names of dir, sorted (free each and the array) */
static int list_yaml(const char *dir, char ***names, int *count) {
    DIR *d = opendir(dir);
    if (!d) {
        return cli_fail(CMD, FLAME_ERUNTIME, "cannot read %s (%s)", dir, strerror(errno));
    }
    int n = 0, cap = 16;
    char **v = flame_malloc((size_t)cap * sizeof *v);
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len > 5 && !strcmp(e->d_name + len - 5, ".yaml") && e->d_name[0] != '.') {
            if (n == cap) {
                cap *= 2;
                char **w = flame_malloc((size_t)cap * sizeof *w);
                memcpy(w, v, (size_t)n * sizeof *v);
                flame_free(v);
                v = w;
            }
            v[n] = flame_malloc(len + 1);
            memcpy(v[n++], e->d_name, len + 1);
        }
    }
    closedir(d);
    qsort(v, (size_t)n, sizeof *v, by_name);
    *names = v;
    *count = n;
    return FLAME_OK;
}

int cmd_configs(int argc, char **argv) {
    static const struct option longopts[] = {
        {"dir", required_argument, 0, 'd'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *given = NULL;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        if (c == 'd') {
            given = optarg;
        } else if (c == 'h') {
            configs_usage(stdout);
            return FLAME_OK;
        } else {
            return cli_fail(CMD, FLAME_EINPUT,
                            "unknown or incomplete option '%s'; see `flame configs --help`",
                            argv[optind - 1]);
        }
    }
    if (optind < argc) {
        return cli_fail(CMD, FLAME_EINPUT, "unexpected argument '%s'; see `flame configs --help`",
                        argv[optind]);
    }
    char dir[DIR_MAX];
    const char *origin = NULL;
    int rc = find_dir(given, dir, &origin);
    char **names = NULL;
    int n = 0;
    rc = rc ? rc : list_yaml(dir, &names, &n);
    if (rc != FLAME_OK) {
        return rc;
    }
    printf("configs in %s (%s): flame train %s/<name>.yaml\n\n", dir, origin, dir);
    printf("%-30s %-26s %-8s %11s %8s %5s  %s\n", "name", "env", "algo", "steps", "warm-up", "envs",
           "networks");
    int bad = 0;
    for (int i = 0; i < n; i++) {
        char path[DIR_MAX + 300];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        names[i][strlen(names[i]) - 5] = '\0';
        FlameConfig cfg;
        if (cli_load_config(&cfg, path, NULL, 0) != FLAME_OK) {
            printf("%-30s does not load: %s\n", names[i], flame_last_error());
            bad++;
        } else {
            printf("%-30s %-26s %-8s %11lld %8lld %5d  %dx%d\n", names[i], cfg.env.id,
                   config_algo_name(cfg.algo), (long long)cfg.run.total_steps,
                   (long long)cfg.run.start_steps, cfg.env.num_envs, cfg.net.layers,
                   cfg.net.hidden);
        }
        flame_free(names[i]);
    }
    flame_free(names);
    if (n == 0) {
        printf("(none)\n");
    }
    if (bad) {
        return cli_fail(CMD, FLAME_ERUNTIME, "%d of the %d configs in %s do not load", bad, n, dir);
    }
    return FLAME_OK;
}
