/* cli.c: helpers shared by the commands (see include/flame/cli.h). */
#include "flame/cli.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int cli_parse_backend(const char *cmd, const char *name, int *kind) {
    if (policy_backend_parse(name, kind) != FLAME_OK) {
        return cli_fail(cmd, FLAME_EINPUT, "unknown --backend '%s'; use auto, cpu or cuda", name);
    }
    return FLAME_OK;
}

int cli_parse_int(const char *cmd, const char *opt, const char *s, long long lo, long long hi,
                  long long *out) {
    int64_t v = 0;
    if (!s || !config_parse_integer(s, &v) || v < lo || v > hi) {
        return cli_fail(cmd, FLAME_EINPUT, "%s '%s' is not valid: expected an integer in [%lld, %lld]",
                        opt, s ? s : "", lo, hi);
    }
    *out = (long long)v;
    return FLAME_OK;
}

/* ------------------------------------------------------------------ a checkpoint's policy */
int cli_policy_open(const char *cmd, Policy *p, const char *ckpt_path, const char *env_id,
                    int backend_kind, int64_t seed) {
    int rc = policy_open(p, ckpt_path, backend_kind, seed);
    if (rc != FLAME_OK) {
        return cli_fail_last(cmd, rc);
    }
    if (env_id && env_spec_find(env_id) != p->spec) {
        rc = cli_fail(cmd, FLAME_EINPUT,
                      "%s was trained on %s, not on --env %s; drop --env or pass a checkpoint of "
                      "%s",
                      ckpt_path, p->ck.env_id, env_id, env_id);
        policy_close(p);
    }
    return rc;
}

/* ------------------------------------------------------------------ dataset descriptions */
int cli_dataset_info_init(CliDatasetInfo *d, const EnvSpec *spec, const char *model_xml,
                          const char *source) {
    memset(d, 0, sizeof *d);
    mjModel *m = NULL;
    if (env_model_load(spec, model_xml, &m) != FLAME_OK) {
        return FLAME_EINPUT;
    }
    Env *probe = env_create(spec, m);
    d->low = flame_malloc((size_t)spec->act_dim * sizeof(double));
    d->high = flame_malloc((size_t)spec->act_dim * sizeof(double));
    env_action_bounds(probe, d->low, d->high);
    d->info.spec = spec;
    d->info.nq = env_nq(probe);
    d->info.nv = env_nv(probe);
    d->info.act_low = d->low;
    d->info.act_high = d->high;
    d->info.source = source;
    env_free(probe);
    mj_deleteModel(m);
    return FLAME_OK;
}

void cli_dataset_info_checkpoint(CliDatasetInfo *d, const Checkpoint *ck, const char *path) {
    free(d->config_yaml);
    d->config_yaml = config_to_yaml(&ck->cfg);
    d->info.algorithm = config_algo_name(ck->cfg.algo);
    d->info.policy = path;
    d->info.config_yaml = d->config_yaml;
    d->info.iteration = ck->st.updates;
    d->info.env_steps = ck->tc.env_steps;
}

void cli_dataset_info_free(CliDatasetInfo *d) {
    flame_free(d->low);
    flame_free(d->high);
    free(d->config_yaml);
    memset(d, 0, sizeof *d);
}
