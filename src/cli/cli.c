/* cli.c: helpers shared by the commands (see include/flame/cli.h). */
#include "flame/cli.h"

#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

#include "flame/check.h"

int cli_fail(const char *cmd, int code, const char *fmt, ...) {
    char msg[FLAME_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "flame %s: %s\n", cmd, msg);
    fflush(stderr);
    return code;
}

int cli_fail_last(const char *cmd, int code) {
    return cli_fail(cmd, code, "%s", flame_last_error());
}

int cli_load_config(FlameConfig *cfg, const char *path, char **sets, int nsets) {
    config_defaults(cfg);
    if (path) {
        int rc = config_load_file(cfg, path);
        if (rc != FLAME_OK) {
            return rc;
        }
    }
    for (int i = 0; i < nsets; i++) {
        int rc = config_set(cfg, sets[i]);
        if (rc != FLAME_OK) {
            return rc;
        }
    }
    config_resolve(cfg);
    return config_validate(cfg);
}

int cli_resolve_threads(int requested, int num_envs) {
    int n = requested;
    if (n <= 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        n = cores > 1 ? (int)cores - 1 : 1;
    }
    if (n > num_envs) {
        n = num_envs;
    }
    return n < 1 ? 1 : n;
}

bool cli_is_tty(void) {
    return isatty(STDOUT_FILENO) != 0;
}
