/*
 * ckpt.c: checkpoint files (see include/flame/ckpt.h).
 *
 * Writing: "<path>.tmp" through the h5_file_* writer (every write checked, synced at close), then
 * renamed into place; after any failure the temporary file is removed, so the checkpoints already
 * in the directory stay the newest complete ones.
 * Reading validates everything before it is used: a regular file, the format, the stored config
 * (parsed, resolved and validated like a config file), the dimensions against that config's env,
 * the tensor layout, every parameter, moment and target finite (Adam's second moments
 * non-negative), the counters non-negative and consistent with the update schedule of the config,
 * and the replay ring's attributes and contents. Anything else is FLAME_EINPUT with the reason.
 */
#include "flame/ckpt.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flame/build_info.h"
#include "flame/check.h"
#include "flame/env.h"
#include "flame/fsutil.h"
#include "flame/h5util.h"
#include "flame/update.h"

#define CKPT_FORMAT "flame-checkpoint"
#define CKPT_VERSION 1
#define CKPT_MAX_DIM (1 << 20)        /* larger observation or action sizes are not dimensions */
#define CKPT_MAX_COUNT ((int64_t)1 << 62) /* counters beyond this are damage, not progress */

static int write_floats(hid_t g, const char *name, const float *x, size_t n) {
    hsize_t d = n;
    return h5_write(g, name, H5T_NATIVE_FLOAT, 1, &d, x);
}

/* the tensor table as text: "name rows cols offset" lines (caller frees) */
static char *layout_text(const ParamTable *t) {
    size_t cap = 96 * (size_t)(t->count + 1), len = 0;
    char *s = flame_calloc(cap, 1);
    for (int i = 0; i < t->count; i++) {
        len += (size_t)snprintf(s + len, cap - len, "%s %d %d %zu\n", t->t[i].name, t->t[i].rows,
                                t->t[i].cols, t->t[i].offset);
    }
    return s;
}

static int write_blob(hid_t f, const char *name, const ParamBlob *b, const ParamTable *t,
                      const char *extra_name, const float *extra) {
    hid_t g = h5_group(f, name);
    if (g < 0) {
        return flame_errorf(FLAME_ERUNTIME, "cannot create the group %s", name);
    }
    int rc = write_floats(g, "params", b->params, b->n);
    rc = rc ? rc : write_floats(g, "adam_m", b->m, b->n);
    rc = rc ? rc : write_floats(g, "adam_v", b->v, b->n);
    rc = rc ? rc : write_floats(g, "grads", b->grads, b->n);
    rc = rc ? rc : write_floats(g, extra_name, extra, b->n);
    char *layout = layout_text(t);
    rc = rc ? rc : h5_attr_str(g, "layout", layout);
    flame_free(layout);
    H5Gclose(g);
    return rc;
}

/* The integer counters of a checkpoint, written and read through one table. */
typedef struct {
    const char *name;
    int64_t *value;
} CounterRef;

static int counter_refs(AgentState *st, TrainCounters *tc, CounterRef *r) {
    CounterRef refs[] = {
        {"updates", &st->updates},         {"actor_steps", &st->actor_steps},
        {"critic_steps", &st->critic_steps}, {"alpha_steps", &st->alpha_steps},
        {"env_steps", &tc->env_steps},     {"act_calls", &tc->act_calls},
        {"episodes", &tc->episodes},       {"eval_rounds", &tc->eval_rounds},
        {"next_eval", &tc->next_eval},     {"next_ckpt", &tc->next_ckpt},
        {"instabilities", &tc->instabilities},
    };
    int n = (int)(sizeof refs / sizeof refs[0]);
    memcpy(r, refs, sizeof refs);
    return n;
}

/* everything of a checkpoint but the file handling */
static int write_contents(hid_t f, const FlameConfig *cfg, const AgentState *st,
                          const TrainCounters *tc, const Replay *replay, const void *env_state,
                          size_t env_state_size, const char *backend) {
    char *yaml = config_to_yaml(cfg);
    int rc = h5_attr_str(f, "format", CKPT_FORMAT);
    rc = rc ? rc : h5_attr_i64(f, "format_version", CKPT_VERSION);
    rc = rc ? rc : h5_attr_str(f, "version", FLAME_VERSION);
    rc = rc ? rc : h5_attr_str(f, "commit", FLAME_GIT_COMMIT);
    rc = rc ? rc : h5_attr_str(f, "algo", config_algo_name(cfg->algo));
    rc = rc ? rc : h5_attr_str(f, "env_id", cfg->env.id);
    rc = rc ? rc : h5_attr_i64(f, "obs_dim", st->L.obs_dim);
    rc = rc ? rc : h5_attr_i64(f, "act_dim", st->L.act_dim);
    rc = rc ? rc : h5_attr_str(f, "backend", backend ? backend : "cpu");
    rc = rc ? rc : h5_attr_str(f, "config", yaml);
    free(yaml);

    rc = rc ? rc : write_blob(f, "policy", &st->pol, &st->L.pol_table, "ema", st->pol_ema);
    rc = rc ? rc : write_blob(f, "q1", &st->q1, &st->L.q_table, "target", st->q1_targ);
    rc = rc ? rc : write_blob(f, "q2", &st->q2, &st->L.q_table, "target", st->q2_targ);
    if (rc != FLAME_OK) {
        return rc;
    }
    hid_t g = h5_group(f, "alpha");
    if (g < 0) {
        return flame_errorf(FLAME_ERUNTIME, "cannot create the group alpha");
    }
    rc = h5_write(g, "log_alpha", H5T_NATIVE_FLOAT, 0, NULL, &st->log_alpha);
    rc = rc ? rc : h5_write(g, "adam_m", H5T_NATIVE_FLOAT, 0, NULL, &st->alpha_m);
    rc = rc ? rc : h5_write(g, "adam_v", H5T_NATIVE_FLOAT, 0, NULL, &st->alpha_v);
    H5Gclose(g);
    if (rc != FLAME_OK || (g = h5_group(f, "counters")) < 0) {
        return rc ? rc : flame_errorf(FLAME_ERUNTIME, "cannot create the group counters");
    }
    CounterRef refs[16];
    /* the table takes writable pointers; writing only reads through them */
    int nref = counter_refs((AgentState *)st, (TrainCounters *)tc, refs);
    for (int i = 0; i < nref && rc == FLAME_OK; i++) {
        rc = h5_attr_i64(g, refs[i].name, *refs[i].value);
    }
    rc = rc ? rc : h5_attr_f64(g, "wall_seconds", tc->wall_seconds);
    H5Gclose(g);

    if (rc == FLAME_OK && env_state && env_state_size) {
        hsize_t d = env_state_size;
        /* mostly the solver's scratch arrays: compresses ~100x */
        rc = h5_write_gz(f, "envpool/state", H5T_NATIVE_UINT8, 1, &d, env_state, 1);
    }
    if (rc == FLAME_OK && replay) {
        if ((g = h5_group(f, "replay")) < 0) {
            return flame_errorf(FLAME_ERUNTIME, "cannot create the group replay");
        }
        hsize_t n = (hsize_t)replay->size;
        hsize_t ds[2] = {n, (hsize_t)replay->obs_dim}, da[2] = {n, (hsize_t)replay->act_dim};
        /* the ring's first `size` slots hold every stored transition */
        rc = h5_write(g, "obs", H5T_NATIVE_FLOAT, 2, ds, replay->obs);
        rc = rc ? rc : h5_write(g, "next_obs", H5T_NATIVE_FLOAT, 2, ds, replay->next_obs);
        rc = rc ? rc : h5_write(g, "act", H5T_NATIVE_FLOAT, 2, da, replay->act);
        rc = rc ? rc : h5_write(g, "rew", H5T_NATIVE_FLOAT, 1, &n, replay->rew);
        rc = rc ? rc : h5_write(g, "done", H5T_NATIVE_UINT8, 1, &n, replay->done);
        rc = rc ? rc : h5_attr_i64(g, "capacity", replay->capacity);
        rc = rc ? rc : h5_attr_i64(g, "size", replay->size);
        rc = rc ? rc : h5_attr_i64(g, "head", replay->head);
        H5Gclose(g);
    }
    return rc;
}

int ckpt_write(const char *path, const FlameConfig *cfg, const AgentState *st,
               const TrainCounters *tc, const Replay *replay, const void *env_state,
               size_t env_state_size, const char *backend) {
    h5_silence();
    char tmp[FS_PATH_MAX];
    int rc = fs_printf(tmp, sizeof tmp, "checkpoint", "%s.tmp", path);
    if (rc != FLAME_OK) {
        return rc;
    }
    fs_set_errno(0);
    hid_t f = -1;
    rc = h5_file_create(tmp, false, H5P_DEFAULT, &f);
    if (rc == FLAME_OK) {
        rc = write_contents(f, cfg, st, tc, replay, env_state, env_state_size, backend);
        int crc = h5_file_close(f); /* the device's error says more than the call that saw it */
        rc = crc ? crc : rc;
    }
    if (rc == FLAME_OK && rename(tmp, path) != 0) {
        fs_set_errno(errno);
        rc = FLAME_ERUNTIME;
    }
    if (rc != FLAME_OK) {
        remove(tmp);
        char reason[FLAME_ERROR_MAX];
        return flame_errorf(FLAME_ERUNTIME,
                            "%s: cannot write the checkpoint (%s); nothing of it was kept, the "
                            "checkpoints written before are unchanged",
                            path, fs_last_reason(reason, sizeof reason));
    }
    return fs_fsync_dir(path);
}

// ---------------------------------------------------------------------------- reading

static int read_floats(hid_t f, const char *name, float *x, size_t n, const char *path) {
    hsize_t d = n;
    return h5_read(f, name, H5T_NATIVE_FLOAT, 1, &d, x, path);
}

/* x[0..n) finite (and >= 0 when nonneg); otherwise FLAME_EINPUT naming the array, the tensor of
   the table that holds the bad element (when a table is given) and the element */
static int check_values(const float *x, size_t n, const ParamTable *t, bool nonneg,
                        const char *what, const char *path) {
    for (size_t i = 0; i < n; i++) {
        if (isfinite(x[i]) && (!nonneg || x[i] >= 0.0f)) {
            continue;
        }
        const char *bad = isnan(x[i]) ? "NaN" : (isinf(x[i]) ? "an infinite value" : "a negative value");
        char where[160];
        snprintf(where, sizeof where, "at element %zu", i);
        for (int k = 0; t && k < t->count; k++) {
            const TensorDesc *d = &t->t[k];
            if (i >= d->offset && i < d->offset + d->size) {
                size_t j = i - d->offset;
                snprintf(where, sizeof where, "in tensor '%s' at [%zu, %zu]", d->name,
                         j / (size_t)d->cols, j % (size_t)d->cols);
            }
        }
        return flame_errorf(FLAME_EINPUT,
                            "%s: %s holds %s %s; the checkpoint is unusable (a run that diverged "
                            "or a damaged file); use an earlier checkpoint",
                            path, what, bad, where);
    }
    return FLAME_OK;
}

static int read_blob(hid_t f, const char *grp, ParamBlob *b, const ParamTable *t,
                     const char *extra_name, float *extra, const FlameConfig *cfg,
                     const char *path) {
    /* the stored tensor table must be the one the stored config gives */
    char name[64];
    snprintf(name, sizeof name, "%s", grp);
    hid_t g = H5Gopen2(f, grp, H5P_DEFAULT);
    if (g < 0) {
        return flame_errorf(FLAME_EINPUT, "%s: group /%s is missing", path, grp);
    }
    char *stored = h5_attr_read_str(g, "layout");
    H5Gclose(g);
    char *want = layout_text(t);
    int rc = FLAME_OK;
    if (stored && strcmp(stored, want) != 0) {
        rc = flame_errorf(FLAME_EINPUT,
                          "%s: the tensors of /%s are not those of the stored config's network "
                          "(%s, net.layers %d, net.hidden %d); the file is inconsistent",
                          path, grp, config_algo_name(cfg->algo), cfg->net.layers,
                          cfg->net.hidden);
    }
    free(stored);
    flame_free(want);
    if (rc != FLAME_OK) {
        return rc;
    }
    const char *roles[5] = {"params", "adam_m", "adam_v", "grads", extra_name};
    float *dst[5] = {b->params, b->m, b->v, b->grads, extra};
    for (int i = 0; i < 5 && rc == FLAME_OK; i++) {
        snprintf(name, sizeof name, "%s/%s", grp, roles[i]);
        rc = read_floats(f, name, dst[i], b->n, path);
        rc = rc ? rc : check_values(dst[i], b->n, t, i == 2, name, path);
    }
    return rc;
}

static int attr_i64(hid_t loc, const char *name, int64_t *v, const char *path) {
    if (h5_attr_read_i64(loc, name, v) != FLAME_OK) {
        return flame_errorf(FLAME_EINPUT, "%s: checkpoint attribute '%s' is missing or invalid",
                            path, name);
    }
    return FLAME_OK;
}

/* a stored dimension: an integer attribute in [1, CKPT_MAX_DIM] */
static int read_dim(hid_t f, const char *name, int *out, const char *path) {
    int64_t v = 0;
    int rc = attr_i64(f, name, &v, path);
    if (rc == FLAME_OK && (v < 1 || v > CKPT_MAX_DIM)) {
        rc = flame_errorf(FLAME_EINPUT, "%s: stored %s = %lld is not a valid dimension (1 to %d)",
                          path, name, (long long)v, CKPT_MAX_DIM);
    }
    *out = (int)v;
    return rc;
}

/* the header: format, version, stored config (loaded, resolved, validated) and dimensions that
   agree with it */
static int read_header(hid_t f, Checkpoint *ck, const char *path) {
    char *fmt = h5_attr_read_str(f, "format");
    char *yaml = h5_attr_read_str(f, "config");
    char *env = h5_attr_read_str(f, "env_id");
    char *algo = h5_attr_read_str(f, "algo");
    char *backend = h5_attr_read_str(f, "backend");
    int64_t version = 0;
    int rc = FLAME_OK;
    if (!fmt || strcmp(fmt, CKPT_FORMAT) != 0 || !yaml || !env) {
        rc = flame_errorf(FLAME_EINPUT, "%s: not a flame checkpoint (format attribute missing)",
                          path);
    }
    rc = rc ? rc : attr_i64(f, "format_version", &version, path);
    if (rc == FLAME_OK && version != CKPT_VERSION) {
        rc = flame_errorf(FLAME_EINPUT, "%s: checkpoint format version %lld, this flame reads %d",
                          path, (long long)version, CKPT_VERSION);
    }
    rc = rc ? rc : read_dim(f, "obs_dim", &ck->obs_dim, path);
    rc = rc ? rc : read_dim(f, "act_dim", &ck->act_dim, path);
    if (rc == FLAME_OK) {
        config_defaults(&ck->cfg);
        char origin[FS_PATH_MAX + 32];
        snprintf(origin, sizeof origin, "%s (stored config)", path);
        rc = config_load_string(&ck->cfg, yaml, strlen(yaml), origin);
        if (rc == FLAME_OK) {
            config_resolve(&ck->cfg);
            if (config_validate(&ck->cfg) != FLAME_OK) {
                char why[FLAME_ERROR_MAX];
                snprintf(why, sizeof why, "%s", flame_last_error());
                rc = flame_errorf(FLAME_EINPUT, "%s: the stored config is invalid: %s", path, why);
            }
        }
    }
    const EnvSpec *spec = rc == FLAME_OK ? env_spec_find(ck->cfg.env.id) : NULL;
    if (rc == FLAME_OK && strcmp(env, ck->cfg.env.id) != 0) {
        rc = flame_errorf(FLAME_EINPUT,
                          "%s: the checkpoint is labelled %s but its stored config is for %s; "
                          "the file is inconsistent",
                          path, env, ck->cfg.env.id);
    } else if (rc == FLAME_OK && !spec) {
        rc = flame_errorf(FLAME_EINPUT, "%s: stored env id '%s' is not a known env id (`flame "
                                        "envs` lists them)",
                          path, ck->cfg.env.id);
    } else if (rc == FLAME_OK && (spec->obs_dim != ck->obs_dim || spec->act_dim != ck->act_dim)) {
        rc = flame_errorf(FLAME_EINPUT,
                          "%s: the weights are shaped for obs_dim %d, act_dim %d but the stored "
                          "config's env %s has obs_dim %d, act_dim %d; the file is inconsistent",
                          path, ck->obs_dim, ck->act_dim, spec->id, spec->obs_dim, spec->act_dim);
    } else if (rc == FLAME_OK && algo && strcmp(algo, config_algo_name(ck->cfg.algo)) != 0) {
        rc = flame_errorf(FLAME_EINPUT,
                          "%s: the checkpoint is labelled %s but its stored config trains %s; "
                          "the file is inconsistent",
                          path, algo, config_algo_name(ck->cfg.algo));
    }
    if (rc == FLAME_OK) {
        snprintf(ck->env_id, sizeof ck->env_id, "%s", env);
        snprintf(ck->backend, sizeof ck->backend, "%s", backend ? backend : "?");
    }
    free(fmt), free(yaml), free(env), free(algo), free(backend);
    return rc;
}

/* every array of the agent, finite */
static int read_agent(hid_t f, Checkpoint *ck, const char *path) {
    AgentState *st = &ck->st;
    agent_state_init(st, &ck->cfg, ck->obs_dim, ck->act_dim);
    const ParamTable *pt = &st->L.pol_table, *qt = &st->L.q_table;
    const FlameConfig *c = &ck->cfg;
    int rc = read_blob(f, "policy", &st->pol, pt, "ema", st->pol_ema, c, path);
    rc = rc ? rc : read_blob(f, "q1", &st->q1, qt, "target", st->q1_targ, c, path);
    rc = rc ? rc : read_blob(f, "q2", &st->q2, qt, "target", st->q2_targ, c, path);
    const char *names[3] = {"alpha/log_alpha", "alpha/adam_m", "alpha/adam_v"};
    float *dst[3] = {&st->log_alpha, &st->alpha_m, &st->alpha_v};
    for (int i = 0; i < 3 && rc == FLAME_OK; i++) {
        rc = h5_read(f, names[i], H5T_NATIVE_FLOAT, 0, NULL, dst[i], path);
        rc = rc ? rc : check_values(dst[i], 1, NULL, i == 2, names[i], path);
    }
    return rc;
}

/* expected optimiser steps after n updates when one happens every `every` updates (update.c) */
/* the counters: non-negative, and consistent with each other and the update schedule */
static int read_counters(hid_t f, Checkpoint *ck, const char *path) {
    hid_t g = H5Gopen2(f, "counters", H5P_DEFAULT);
    if (g < 0) {
        return flame_errorf(FLAME_EINPUT, "%s: checkpoint has no counters group", path);
    }
    AgentState *st = &ck->st;
    TrainCounters *tc = &ck->tc;
    CounterRef refs[16];
    int nref = counter_refs(st, tc, refs);
    int rc = FLAME_OK;
    for (int i = 0; i < nref && rc == FLAME_OK; i++) {
        rc = attr_i64(g, refs[i].name, refs[i].value, path);
        if (rc == FLAME_OK && (*refs[i].value < 0 || *refs[i].value > CKPT_MAX_COUNT)) {
            rc = flame_errorf(FLAME_EINPUT, "%s: counter %s = %lld is out of range (0 to 2^62)",
                              path, refs[i].name, (long long)*refs[i].value);
        }
    }
    if (rc == FLAME_OK && H5Aexists(g, "wall_seconds") > 0) {
        hid_t a = H5Aopen(g, "wall_seconds", H5P_DEFAULT);
        if (H5Aread(a, H5T_NATIVE_DOUBLE, &tc->wall_seconds) < 0 || !isfinite(tc->wall_seconds) ||
            tc->wall_seconds < 0) {
            rc = flame_errorf(FLAME_EINPUT, "%s: counter wall_seconds is not a time in seconds",
                              path);
        }
        H5Aclose(a);
    }
    H5Gclose(g);
    if (rc != FLAME_OK) {
        return rc;
    }
    /* optimiser steps follow from the updates and the config (update.c) */
    AgentCounters want;
    update_counters_after(&ck->cfg, st->updates, &want);
    struct {
        const char *name;
        int64_t have, want;
        const char *rule;
    } steps[3] = {
        {"actor_steps", st->actor_steps, want.actor_steps, "one every update.policy_delay updates"},
        {"critic_steps", st->critic_steps, want.critic_steps,
         "one per update, two with quirks.critic_double_step"},
        {"alpha_steps", st->alpha_steps, want.alpha_steps,
         "one every alpha.delay updates while alpha.learn; SAC: on actor updates only"},
    };
    for (int i = 0; i < 3; i++) {
        if (steps[i].have != steps[i].want) {
            return flame_errorf(FLAME_EINPUT,
                                "%s: counters are inconsistent: %s = %lld after %lld updates, "
                                "expected %lld (%s)",
                                path, steps[i].name, (long long)steps[i].have,
                                (long long)st->updates, (long long)steps[i].want, steps[i].rule);
        }
    }
    struct {
        const char *small, *large;
        int64_t a, b;
    } order[3] = {
        {"episodes", "env_steps", tc->episodes, tc->env_steps},
        {"instabilities", "episodes", tc->instabilities, tc->episodes},
        {"act_calls", "env_steps", tc->act_calls, tc->env_steps},
    };
    for (int i = 0; i < 3; i++) {
        if (order[i].a > order[i].b) {
            return flame_errorf(FLAME_EINPUT,
                                "%s: counters are inconsistent: %s = %lld exceeds %s = %lld", path,
                                order[i].small, (long long)order[i].a, order[i].large,
                                (long long)order[i].b);
        }
    }
    return FLAME_OK;
}

/* the replay ring: attributes that fit the config, finite contents, done flags 0 or 1 */
static int read_replay(hid_t f, Checkpoint *ck, const char *path) {
    hid_t g = H5Gopen2(f, "replay", H5P_DEFAULT);
    if (g < 0) {
        return flame_errorf(FLAME_EINPUT, "%s: group /replay cannot be opened", path);
    }
    int64_t cap = 0, size = 0, head = 0;
    int rc = attr_i64(g, "capacity", &cap, path);
    rc = rc ? rc : attr_i64(g, "size", &size, path);
    rc = rc ? rc : attr_i64(g, "head", &head, path);
    /* training writes its whole ring (capacity = update.replay_size); never a larger one */
    if (rc == FLAME_OK && (cap < 1 || cap > ck->cfg.update.replay_size)) {
        rc = flame_errorf(FLAME_EINPUT,
                          "%s: replay capacity %lld does not fit the stored config's "
                          "update.replay_size %lld; the file is inconsistent",
                          path, (long long)cap, (long long)ck->cfg.update.replay_size);
    }
    if (rc == FLAME_OK &&
        (size < 0 || size > cap || head < 0 || head >= cap || (size < cap && head != size))) {
        rc = flame_errorf(FLAME_EINPUT,
                          "%s: replay attributes are inconsistent (capacity %lld, size %lld, "
                          "head %lld)",
                          path, (long long)cap, (long long)size, (long long)head);
    }
    if (rc == FLAME_OK) {
        replay_init(&ck->replay, cap, ck->obs_dim, ck->act_dim);
        ck->has_replay = true;
        Replay *r = &ck->replay;
        hsize_t n = (hsize_t)size;
        size_t S = (size_t)ck->obs_dim, D = (size_t)ck->act_dim, un = (size_t)size;
        hsize_t ds[2] = {n, (hsize_t)S}, da[2] = {n, (hsize_t)D};
        rc = h5_read(g, "obs", H5T_NATIVE_FLOAT, 2, ds, r->obs, path);
        rc = rc ? rc : h5_read(g, "next_obs", H5T_NATIVE_FLOAT, 2, ds, r->next_obs, path);
        rc = rc ? rc : h5_read(g, "act", H5T_NATIVE_FLOAT, 2, da, r->act, path);
        rc = rc ? rc : h5_read(g, "rew", H5T_NATIVE_FLOAT, 1, &n, r->rew, path);
        rc = rc ? rc : h5_read(g, "done", H5T_NATIVE_UINT8, 1, &n, r->done, path);
        rc = rc ? rc : check_values(r->obs, un * S, NULL, false, "replay/obs", path);
        rc = rc ? rc : check_values(r->next_obs, un * S, NULL, false, "replay/next_obs", path);
        rc = rc ? rc : check_values(r->act, un * D, NULL, false, "replay/act", path);
        rc = rc ? rc : check_values(r->rew, un, NULL, false, "replay/rew", path);
        for (size_t i = 0; rc == FLAME_OK && i < un; i++) {
            if (r->done[i] > 1) {
                rc = flame_errorf(FLAME_EINPUT, "%s: replay/done[%zu] = %d is not 0 or 1", path, i,
                                  r->done[i]);
            }
        }
        r->size = size;
        r->head = head;
    }
    H5Gclose(g);
    return rc;
}

int ckpt_read(const char *path, Checkpoint *ck, bool with_replay) {
    h5_silence();
    memset(ck, 0, sizeof *ck);
    /* a FIFO or a device would block HDF5 (or feed it garbage): regular files only */
    int rc = fs_check_regular(path, "checkpoint");
    if (rc != FLAME_OK) {
        return rc;
    }
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        return flame_errorf(FLAME_EINPUT, "%s: not a readable HDF5 file (corrupt or truncated "
                                          "checkpoint)",
                            path);
    }
    rc = read_header(f, ck, path);
    rc = rc ? rc : read_agent(f, ck, path);
    rc = rc ? rc : read_counters(f, ck, path);
    if (rc == FLAME_OK && h5_exists(f, "envpool/state")) {
        hsize_t d[8];
        if (h5_dims(f, "envpool/state", d) != 1) {
            rc = flame_errorf(FLAME_EINPUT, "%s: envpool/state is not a byte array", path);
        } else {
            ck->env_state_size = (size_t)d[0];
            ck->env_state = flame_malloc(ck->env_state_size ? ck->env_state_size : 1);
            rc = h5_read(f, "envpool/state", H5T_NATIVE_UINT8, 1, d, ck->env_state, path);
        }
    }
    if (rc == FLAME_OK && with_replay && h5_exists(f, "replay")) {
        rc = read_replay(f, ck, path);
    }
    H5Fclose(f);
    if (rc != FLAME_OK) {
        ckpt_free(ck);
    }
    return rc;
}

void ckpt_free(Checkpoint *ck) {
    if (ck->st.mem) {
        agent_state_free(&ck->st);
    }
    if (ck->has_replay) {
        replay_free(&ck->replay);
    }
    flame_free(ck->env_state);
    memset(ck, 0, sizeof *ck);
}

int ckpt_latest(const char *run_dir, char *out, size_t out_len) {
    char dir[FS_PATH_MAX];
    int rc = fs_printf(dir, sizeof dir, "checkpoint directory", "%s/ckpt", run_dir);
    if (rc != FLAME_OK) {
        return rc;
    }
    DIR *d = opendir(dir);
    if (!d) {
        return flame_errorf(FLAME_EINPUT, "%s: no checkpoint directory (%s); is this a run "
                                          "directory?",
                            dir, strerror(errno));
    }
    long long best = -1;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        long long step;
        char tail[8];
        if (sscanf(e->d_name, "step_%lld.h%7s", &step, tail) == 2 && !strcmp(tail, "5") &&
            step > best) {
            best = step;
        }
    }
    closedir(d);
    if (best < 0) {
        return flame_errorf(FLAME_EINPUT, "%s: no step_<N>.h5 checkpoint found", dir);
    }
    return fs_printf(out, out_len, "checkpoint", "%s/step_%lld.h5", dir, best);
}
