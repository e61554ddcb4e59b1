/*
 * policy.c: a checkpoint's policy ready to act (see include/flame/policy.h).
 */
#include "flame/policy.h"

#include <stdio.h>
#include <string.h>

#include "flame/check.h"

int policy_backend_parse(const char *name, int *kind) {
    static const char *const names[] = {"auto", "cpu", "cuda"};
    static const int kinds[] = {BACKEND_AUTO, BACKEND_CPU, BACKEND_CUDA};
    for (int k = 0; name && k < 3; k++) {
        if (!strcmp(name, names[k])) {
            *kind = kinds[k];
            return FLAME_OK;
        }
    }
    return flame_errorf(FLAME_EINPUT, "unknown backend '%s'; use auto, cpu or cuda",
                        name ? name : "");
}

/* the checkpoint's env is a known one and has the checkpoint's dimensions */
static int check_env(const Policy *p, const char *path) {
    const Checkpoint *ck = &p->ck;
    if (!p->spec) {
        return flame_errorf(FLAME_EINPUT, "%s: checkpoint env '%s' is not a known env id", path,
                            ck->env_id);
    }
    if (ck->obs_dim != p->spec->obs_dim || ck->act_dim != p->spec->act_dim) {
        return flame_errorf(FLAME_EINPUT,
                            "%s: checkpoint dimensions (obs %d, act %d) differ from %s (obs %d, "
                            "act %d)",
                            path, ck->obs_dim, ck->act_dim, ck->env_id, p->spec->obs_dim,
                            p->spec->act_dim);
    }
    return FLAME_OK;
}

int policy_open(Policy *p, const char *path, int backend, int64_t seed) {
    memset(p, 0, sizeof *p);
    if (ckpt_read(path, &p->ck, false) != FLAME_OK) {
        char why[FLAME_ERROR_MAX];
        snprintf(why, sizeof why, "%s", flame_last_error());
        policy_close(p);
        return flame_errorf(FLAME_EINPUT, "%s; pass a checkpoint written by `flame train`", why);
    }
    p->spec = env_spec_find(p->ck.env_id);
    int rc = check_env(p, path);
    /* acting needs no replay buffer, no minibatch and no noise bundle */
    p->cfg = p->ck.cfg;
    p->cfg.backend.type = backend >= 0 ? backend : p->cfg.backend.type;
    p->cfg.run.seed = seed >= 0 ? seed : p->cfg.run.seed;
    p->cfg.update.replay_size = 1;
    p->cfg.update.batch_size = 1;
    p->cfg.backend.noise_file[0] = '\0';
    if (rc == FLAME_OK && !(p->ops = backend_select(&p->cfg))) {
        rc = FLAME_EINPUT; /* backend_select's message */
    }
    if (rc == FLAME_OK &&
        (rc = p->ops->create(&p->cfg, p->ck.obs_dim, p->ck.act_dim, &p->b)) != FLAME_OK) {
        p->b = NULL;
        rc = FLAME_ERUNTIME;
    }
    if (rc != FLAME_OK) {
        policy_close(p);
        return rc;
    }
    p->ops->set_state(p->b, &p->ck.st);
    /* the backend holds the parameters now: the checkpoint keeps its counters, not its arrays */
    AgentState *st = &p->ck.st;
    const int64_t counters[4] = {st->updates, st->actor_steps, st->critic_steps, st->alpha_steps};
    agent_state_free(st);
    st->updates = counters[0];
    st->actor_steps = counters[1];
    st->critic_steps = counters[2];
    st->alpha_steps = counters[3];
    return FLAME_OK;
}

void policy_close(Policy *p) {
    if (p->b) {
        p->ops->destroy(p->b);
    }
    ckpt_free(&p->ck);
    memset(p, 0, sizeof *p);
}
