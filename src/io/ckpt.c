/* ckpt.c: checkpoint files (see include/flame/ckpt.h). */
#include "flame/ckpt.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flame/build_info.h"
#include "flame/check.h"
#include "flame/h5util.h"

#define CKPT_FORMAT "flame-checkpoint"
#define CKPT_VERSION 1

static int write_floats(hid_t g, const char *name, const float *x, size_t n) {
    hsize_t d = n;
    return h5_write(g, name, H5T_NATIVE_FLOAT, 1, &d, x);
}

static void write_layout(hid_t g, const ParamTable *t) {
    size_t cap = 64 * (size_t)(t->count + 1), len = 0;
    char *s = calloc(cap, 1);
    for (int i = 0; i < t->count; i++) {
        len += (size_t)snprintf(s + len, cap - len, "%s %d %d %zu\n", t->t[i].name, t->t[i].rows,
                                t->t[i].cols, t->t[i].offset);
    }
    h5_attr_str(g, "layout", s);
    free(s);
}

static int write_blob(hid_t f, const char *name, const ParamBlob *b, const ParamTable *t,
                      const char *extra_name, const float *extra) {
    hid_t g = h5_group(f, name);
    int rc = write_floats(g, "params", b->params, b->n);
    rc = rc ? rc : write_floats(g, "adam_m", b->m, b->n);
    rc = rc ? rc : write_floats(g, "adam_v", b->v, b->n);
    rc = rc ? rc : write_floats(g, "grads", b->grads, b->n);
    rc = rc ? rc : write_floats(g, extra_name, extra, b->n);
    write_layout(g, t);
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

int ckpt_write(const char *path, const FlameConfig *cfg, const AgentState *st,
               const TrainCounters *tc, const Replay *replay, const void *env_state,
               size_t env_state_size, const char *backend) {
    h5_silence();
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) {
        return flame_errorf(FLAME_ERUNTIME, "%s: cannot create the checkpoint (%s)", tmp,
                            strerror(errno));
    }
    int rc = FLAME_OK;
    char *yaml = config_to_yaml(cfg);
    h5_attr_str(f, "format", CKPT_FORMAT);
    h5_attr_i64(f, "format_version", CKPT_VERSION);
    h5_attr_str(f, "version", FLAME_VERSION);
    h5_attr_str(f, "commit", FLAME_GIT_COMMIT);
    h5_attr_str(f, "algo", config_algo_name(cfg->algo));
    h5_attr_str(f, "env_id", cfg->env.id);
    h5_attr_i64(f, "obs_dim", st->L.obs_dim);
    h5_attr_i64(f, "act_dim", st->L.act_dim);
    h5_attr_str(f, "backend", backend ? backend : "cpu");
    h5_attr_str(f, "config", yaml);
    free(yaml);

    rc = write_blob(f, "policy", &st->pol, &st->L.pol_table, "ema", st->pol_ema);
    rc = rc ? rc : write_blob(f, "q1", &st->q1, &st->L.q_table, "target", st->q1_targ);
    rc = rc ? rc : write_blob(f, "q2", &st->q2, &st->L.q_table, "target", st->q2_targ);
    hid_t g = h5_group(f, "alpha");
    rc = rc ? rc : h5_write(g, "log_alpha", H5T_NATIVE_FLOAT, 0, NULL, &st->log_alpha);
    rc = rc ? rc : h5_write(g, "adam_m", H5T_NATIVE_FLOAT, 0, NULL, &st->alpha_m);
    rc = rc ? rc : h5_write(g, "adam_v", H5T_NATIVE_FLOAT, 0, NULL, &st->alpha_v);
    H5Gclose(g);

    g = h5_group(f, "counters");
    CounterRef refs[16];
    /* the table takes writable pointers; writing only reads through them */
    int nref = counter_refs((AgentState *)st, (TrainCounters *)tc, refs);
    for (int i = 0; i < nref; i++) {
        h5_attr_i64(g, refs[i].name, *refs[i].value);
    }
    h5_attr_f64(g, "wall_seconds", tc->wall_seconds);
    H5Gclose(g);

    if (env_state && env_state_size) {
        hsize_t d = env_state_size;
        /* mostly the solver's scratch arrays: compresses ~100x */
        rc = rc ? rc : h5_write_gz(f, "envpool/state", H5T_NATIVE_UINT8, 1, &d, env_state, 1);
    }
    if (replay) {
        g = h5_group(f, "replay");
        hsize_t n = (hsize_t)replay->size;
        hsize_t ds[2] = {n, (hsize_t)replay->obs_dim}, da[2] = {n, (hsize_t)replay->act_dim};
        /* the ring's first `size` slots hold every stored transition */
        rc = rc ? rc : h5_write(g, "obs", H5T_NATIVE_FLOAT, 2, ds, replay->obs);
        rc = rc ? rc : h5_write(g, "next_obs", H5T_NATIVE_FLOAT, 2, ds, replay->next_obs);
        rc = rc ? rc : h5_write(g, "act", H5T_NATIVE_FLOAT, 2, da, replay->act);
        rc = rc ? rc : h5_write(g, "rew", H5T_NATIVE_FLOAT, 1, &n, replay->rew);
        rc = rc ? rc : h5_write(g, "done", H5T_NATIVE_UINT8, 1, &n, replay->done);
        h5_attr_i64(g, "capacity", replay->capacity);
        h5_attr_i64(g, "size", replay->size);
        h5_attr_i64(g, "head", replay->head);
        H5Gclose(g);
    }
    if (H5Fclose(f) < 0 && rc == FLAME_OK) {
        rc = flame_errorf(FLAME_ERUNTIME, "%s: cannot finish writing the checkpoint", tmp);
    }
    if (rc != FLAME_OK) {
        remove(tmp);
        return rc;
    }
    if (rename(tmp, path) != 0) {
        remove(tmp);
        return flame_errorf(FLAME_ERUNTIME, "cannot rename %s to %s (%s)", tmp, path,
                            strerror(errno));
    }
    return FLAME_OK;
}

static int read_floats(hid_t f, const char *name, float *x, size_t n, const char *path) {
    hsize_t d = n;
    return h5_read(f, name, H5T_NATIVE_FLOAT, 1, &d, x, path);
}

static int read_blob(hid_t f, const char *grp, ParamBlob *b, const char *extra_name, float *extra,
                     const char *path) {
    char name[64];
    const char *roles[5] = {"params", "adam_m", "adam_v", "grads", extra_name};
    float *dst[5] = {b->params, b->m, b->v, b->grads, extra};
    for (int i = 0; i < 5; i++) {
        snprintf(name, sizeof name, "%s/%s", grp, roles[i]);
        int rc = read_floats(f, name, dst[i], b->n, path);
        if (rc != FLAME_OK) {
            return rc;
        }
    }
    return FLAME_OK;
}

static int attr_i64(hid_t loc, const char *name, int64_t *v, const char *path) {
    if (h5_attr_read_i64(loc, name, v) != FLAME_OK) {
        return flame_errorf(FLAME_EINPUT, "%s: checkpoint attribute '%s' is missing or invalid",
                            path, name);
    }
    return FLAME_OK;
}

int ckpt_read(const char *path, Checkpoint *ck, bool with_replay) {
    h5_silence();
    memset(ck, 0, sizeof *ck);
    FILE *probe = fopen(path, "rb");
    if (!probe) {
        return flame_errorf(FLAME_EINPUT, "%s: cannot open the checkpoint (%s)", path,
                            strerror(errno));
    }
    fclose(probe);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        return flame_errorf(FLAME_EINPUT, "%s: not a readable HDF5 file (corrupt or truncated "
                                          "checkpoint)",
                            path);
    }
    int rc = FLAME_OK;
    char *fmt = h5_attr_read_str(f, "format");
    char *yaml = h5_attr_read_str(f, "config");
    char *env = h5_attr_read_str(f, "env_id");
    char *backend = h5_attr_read_str(f, "backend");
    int64_t version = 0, obs_dim = 0, act_dim = 0;
    if (!fmt || strcmp(fmt, CKPT_FORMAT) != 0 || !yaml || !env) {
        rc = flame_errorf(FLAME_EINPUT, "%s: not a flame checkpoint (format attribute missing)",
                          path);
    }
    rc = rc ? rc : attr_i64(f, "format_version", &version, path);
    if (rc == FLAME_OK && version != CKPT_VERSION) {
        rc = flame_errorf(FLAME_EINPUT, "%s: checkpoint format version %lld, this flame reads %d",
                          path, (long long)version, CKPT_VERSION);
    }
    rc = rc ? rc : attr_i64(f, "obs_dim", &obs_dim, path);
    rc = rc ? rc : attr_i64(f, "act_dim", &act_dim, path);
    if (rc == FLAME_OK) {
        config_defaults(&ck->cfg);
        char origin[1100];
        snprintf(origin, sizeof origin, "%s (stored config)", path);
        rc = config_load_string(&ck->cfg, yaml, strlen(yaml), origin);
    }
    if (rc == FLAME_OK) {
        config_resolve(&ck->cfg);
        snprintf(ck->env_id, sizeof ck->env_id, "%s", env);
        snprintf(ck->backend, sizeof ck->backend, "%s", backend ? backend : "?");
        ck->obs_dim = (int)obs_dim;
        ck->act_dim = (int)act_dim;
        agent_state_init(&ck->st, &ck->cfg, ck->obs_dim, ck->act_dim);
        AgentState *st = &ck->st;
        rc = read_blob(f, "policy", &st->pol, "ema", st->pol_ema, path);
        rc = rc ? rc : read_blob(f, "q1", &st->q1, "target", st->q1_targ, path);
        rc = rc ? rc : read_blob(f, "q2", &st->q2, "target", st->q2_targ, path);
        rc = rc ? rc : h5_read(f, "alpha/log_alpha", H5T_NATIVE_FLOAT, 0, NULL, &st->log_alpha, path);
        rc = rc ? rc : h5_read(f, "alpha/adam_m", H5T_NATIVE_FLOAT, 0, NULL, &st->alpha_m, path);
        rc = rc ? rc : h5_read(f, "alpha/adam_v", H5T_NATIVE_FLOAT, 0, NULL, &st->alpha_v, path);
    }
    if (rc == FLAME_OK) {
        hid_t g = H5Gopen2(f, "counters", H5P_DEFAULT);
        if (g < 0) {
            rc = flame_errorf(FLAME_EINPUT, "%s: checkpoint has no counters group", path);
        } else {
            TrainCounters *tc = &ck->tc;
            CounterRef refs[16];
            int nref = counter_refs(&ck->st, tc, refs);
            for (int i = 0; i < nref && rc == FLAME_OK; i++) {
                rc = attr_i64(g, refs[i].name, refs[i].value, path);
            }
            if (rc == FLAME_OK && H5Aexists(g, "wall_seconds") > 0) {
                hid_t a = H5Aopen(g, "wall_seconds", H5P_DEFAULT);
                H5Aread(a, H5T_NATIVE_DOUBLE, &tc->wall_seconds);
                H5Aclose(a);
            }
            H5Gclose(g);
        }
    }
    if (rc == FLAME_OK && h5_exists(f, "envpool/state")) {
        hsize_t d[8];
        h5_dims(f, "envpool/state", d);
        ck->env_state_size = (size_t)d[0];
        ck->env_state = flame_malloc(ck->env_state_size ? ck->env_state_size : 1);
        rc = h5_read(f, "envpool/state", H5T_NATIVE_UINT8, 1, d, ck->env_state, path);
    }
    if (rc == FLAME_OK && with_replay && h5_exists(f, "replay")) {
        hid_t g = H5Gopen2(f, "replay", H5P_DEFAULT);
        int64_t cap = 0, size = 0, head = 0;
        rc = attr_i64(g, "capacity", &cap, path);
        rc = rc ? rc : attr_i64(g, "size", &size, path);
        rc = rc ? rc : attr_i64(g, "head", &head, path);
        if (rc == FLAME_OK && (cap <= 0 || size < 0 || size > cap || head < 0 || head >= cap)) {
            rc = flame_errorf(FLAME_EINPUT, "%s: replay attributes are inconsistent", path);
        }
        if (rc == FLAME_OK) {
            replay_init(&ck->replay, cap, ck->obs_dim, ck->act_dim);
            ck->has_replay = true;
            hsize_t n = (hsize_t)size;
            hsize_t ds[2] = {n, (hsize_t)ck->obs_dim}, da[2] = {n, (hsize_t)ck->act_dim};
            rc = h5_read(g, "obs", H5T_NATIVE_FLOAT, 2, ds, ck->replay.obs, path);
            rc = rc ? rc : h5_read(g, "next_obs", H5T_NATIVE_FLOAT, 2, ds, ck->replay.next_obs, path);
            rc = rc ? rc : h5_read(g, "act", H5T_NATIVE_FLOAT, 2, da, ck->replay.act, path);
            rc = rc ? rc : h5_read(g, "rew", H5T_NATIVE_FLOAT, 1, &n, ck->replay.rew, path);
            rc = rc ? rc : h5_read(g, "done", H5T_NATIVE_UINT8, 1, &n, ck->replay.done, path);
            ck->replay.size = size;
            ck->replay.head = head;
        }
        H5Gclose(g);
    }
    free(fmt), free(yaml), free(env), free(backend);
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
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/ckpt", run_dir);
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
    snprintf(out, out_len, "%s/step_%lld.h5", dir, best);
    return FLAME_OK;
}
