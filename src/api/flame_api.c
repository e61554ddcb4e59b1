/*
 * flame_api.c: the C API of libflame.so (include/flame/flame_api.h) over the project's own
 * modules: a checkpoint's policy as the commands open it (rollout/policy) and the backends' act
 * operation (algo), the env pool (env).
 * Every entry point checks its arguments first, so bad input is an error code and a message,
 * never a fatal inside a host process (a Python interpreter).
 */
#include "flame/flame_api.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "flame/build_info.h"
#include "flame/check.h"
#include "flame/config.h"
#include "flame/env.h"
#include "flame/envpool.h"
#include "flame/h5util.h"
#include "flame/policy.h"
#include "flame/rollout.h"

_Static_assert((int)FLAME_API_OK == (int)FLAME_OK && (int)FLAME_API_EINPUT == (int)FLAME_EINPUT &&
                   (int)FLAME_API_ERUNTIME == (int)FLAME_ERUNTIME,
               "the API's status codes are the project's");
_Static_assert(FLAME_API_EVAL_ENV_OFFSET == ROLLOUT_ENV_OFFSET,
               "the API names the env rows of the commands' rollouts");

#define NEED(cond, ...)                                                                            \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            return flame_errorf(FLAME_EINPUT, __VA_ARGS__);                                        \
        }                                                                                          \
    } while (0)

int flame_api_version(const char **build) {
    if (build) {
        *build = "flame " FLAME_VERSION " (" FLAME_GIT_COMMIT ")";
    }
    return FLAME_API_VERSION;
}

const char *flame_api_last_error(void) {
    return flame_last_error();
}

// ---------------------------------------------------------------------------- env specs

int flame_env_count(void) {
    return env_spec_count();
}

const char *flame_env_id(int i) {
    const EnvSpec *s = env_spec_at(i);
    return s ? s->id : NULL;
}

static int find_spec(const char *env_id, const EnvSpec **out) {
    NEED(env_id, "no env id given");
    *out = env_spec_find(env_id);
    NEED(*out, "unknown env id '%s'; flame_env_id() (or `flame envs`) lists them", env_id);
    return FLAME_OK;
}

int flame_env_spec(const char *env_id, int *obs_dim, int *act_dim, int *max_episode_steps,
                   double *reward_threshold) {
    const EnvSpec *s;
    int rc = find_spec(env_id, &s);
    if (rc != FLAME_OK) {
        return rc;
    }
    if (obs_dim) {
        *obs_dim = s->obs_dim;
    }
    if (act_dim) {
        *act_dim = s->act_dim;
    }
    if (max_episode_steps) {
        *max_episode_steps = s->max_episode_steps;
    }
    if (reward_threshold) {
        *reward_threshold = s->reward_threshold;
    }
    return FLAME_OK;
}

/* the actuators' ctrlrange of an env id (embedded model unless model_xml) */
static int action_bounds(const EnvSpec *spec, const char *model_xml, double *low, double *high) {
    mjModel *m = NULL;
    int rc = env_model_load(spec, model_xml, &m);
    if (rc != FLAME_OK) {
        return rc;
    }
    Env *e = env_create(spec, m);
    env_action_bounds(e, low, high);
    env_free(e);
    mj_deleteModel(m);
    return FLAME_OK;
}

// ---------------------------------------------------------------------------- policies

struct flame_policy {
    Policy pol;            /* the checkpoint's policy (policy.h), as the commands open it */
    char *config_yaml;     /* the checkpoint's resolved config */
    double *center, *half; /* (act_dim) env units = center + a * half */
};

int flame_policy_load(const char *ckpt_path, const char *backend, int64_t seed,
                      flame_policy **out) {
    NEED(out, "no output pointer");
    *out = NULL;
    NEED(ckpt_path && ckpt_path[0], "no checkpoint path given");
    h5_silence();
    int kind = BACKEND_AUTO;
    if (backend && backend[0] && policy_backend_parse(backend, &kind) != FLAME_OK) {
        return FLAME_EINPUT;
    }
    flame_policy *p = flame_calloc(1, sizeof *p);
    int rc = policy_open(&p->pol, ckpt_path, kind, seed);
    if (rc != FLAME_OK) {
        flame_free(p);
        return rc;
    }
    const EnvSpec *spec = p->pol.spec;
    p->center = flame_malloc((size_t)spec->act_dim * sizeof(double));
    p->half = flame_malloc((size_t)spec->act_dim * sizeof(double));
    rc = action_bounds(spec, p->pol.cfg.env.model_xml, p->center, p->half);
    if (rc != FLAME_OK) {
        flame_policy_free(p);
        return rc;
    }
    for (int d = 0; d < spec->act_dim; d++) {
        double lo = p->center[d], hi = p->half[d];
        p->center[d] = 0.5 * (lo + hi);
        p->half[d] = 0.5 * (hi - lo);
    }
    p->config_yaml = config_to_yaml(&p->pol.ck.cfg);
    *out = p;
    return FLAME_OK;
}

void flame_policy_free(flame_policy *p) {
    if (!p) {
        return;
    }
    policy_close(&p->pol);
    free(p->config_yaml);
    flame_free(p->center), flame_free(p->half);
    flame_free(p);
}

int flame_policy_info(const flame_policy *p, const char **env_id, const char **algo,
                      const char **backend, int *obs_dim, int *act_dim, int64_t *updates,
                      int64_t *env_steps) {
    NEED(p, "no policy");
    if (env_id) {
        *env_id = p->pol.spec->id;
    }
    if (algo) {
        *algo = config_algo_name(p->pol.cfg.algo);
    }
    if (backend) {
        *backend = p->pol.ops->name;
    }
    if (obs_dim) {
        *obs_dim = p->pol.ck.obs_dim;
    }
    if (act_dim) {
        *act_dim = p->pol.ck.act_dim;
    }
    if (updates) {
        *updates = p->pol.ck.st.updates;
    }
    if (env_steps) {
        *env_steps = p->pol.ck.tc.env_steps;
    }
    return FLAME_OK;
}

const char *flame_policy_config(const flame_policy *p) {
    return p ? p->config_yaml : NULL;
}

int flame_policy_act(flame_policy *p, const float *obs, int n, int deterministic, uint32_t call,
                     float *actions) {
    NEED(p, "no policy");
    NEED(n >= 0, "the batch size must be >= 0 (got %d)", n);
    NEED(n == 0 || (obs && actions), "observations and actions must be arrays");
    if (n > 0) {
        const Policy *pol = &p->pol;
        pol->ops->act(pol->b, obs, n, deterministic ? ACT_DETERMINISTIC : ACT_EXPLORE, call,
                      actions);
        if (pol->ops->sync) {
            pol->ops->sync(pol->b);
        }
    }
    return FLAME_OK;
}

int flame_policy_to_env_units(const flame_policy *p, float *actions, int n) {
    NEED(p, "no policy");
    NEED(n >= 0 && (n == 0 || actions), "actions must be an array of n >= 0 rows");
    const int D = p->pol.ck.act_dim;
    for (int i = 0; i < n; i++) {
        for (int d = 0; d < D; d++) {
            float *a = actions + (size_t)i * D + d;
            *a = (float)(p->center[d] + (double)*a * p->half[d]);
        }
    }
    return FLAME_OK;
}

// ---------------------------------------------------------------------------- vector envs

struct flame_vec {
    EnvPool *pool;
    const EnvSpec *spec;
    int n, obs_dim, act_dim;
    uint64_t seed;
    int resets;         /* resets done */
    double *low, *high; /* (act_dim) ctrlrange */
};

int flame_vec_create(const char *env_id, int num_envs, int num_threads, int autoreset, int actions,
                     uint64_t seed, uint32_t env_index_offset, const char *model_xml,
                     flame_vec **out) {
    NEED(out, "no output pointer");
    *out = NULL;
    const EnvSpec *spec;
    int rc = find_spec(env_id, &spec);
    if (rc != FLAME_OK) {
        return rc;
    }
    NEED(num_envs >= 1 && num_envs <= 65536, "num_envs must be in [1, 65536] (got %d)", num_envs);
    NEED(num_threads >= 0 && num_threads <= 1024, "num_threads must be in [0, 1024] (got %d)",
         num_threads);
    NEED(autoreset == FLAME_VEC_AUTORESET_NEXT_STEP || autoreset == FLAME_VEC_AUTORESET_SAME_STEP,
         "unknown autoreset mode %d", autoreset);
    NEED(actions == FLAME_VEC_ACTIONS_ENV || actions == FLAME_VEC_ACTIONS_AGENT,
         "unknown action units %d", actions);
    if (num_threads == 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        num_threads = cores > 1 ? (int)cores - 1 : 1;
    }
    num_threads = num_threads < num_envs ? num_threads : num_envs;
    flame_vec *v = flame_calloc(1, sizeof *v);
    rc = envpool_create(spec, model_xml, num_envs, num_threads, seed, env_index_offset, &v->pool);
    if (rc != FLAME_OK) {
        flame_free(v);
        return rc;
    }
    envpool_set_modes(v->pool,
                      autoreset == FLAME_VEC_AUTORESET_NEXT_STEP ? ENVPOOL_AUTORESET_NEXT_STEP
                                                                 : ENVPOOL_AUTORESET_SAME_STEP,
                      actions == FLAME_VEC_ACTIONS_ENV ? ENVPOOL_ACTIONS_CTRL
                                                       : ENVPOOL_ACTIONS_AGENT);
    v->spec = spec;
    v->n = num_envs;
    v->obs_dim = envpool_obs_dim(v->pool);
    v->act_dim = envpool_act_dim(v->pool);
    v->seed = seed;
    v->low = flame_malloc((size_t)v->act_dim * sizeof(double));
    v->high = flame_malloc((size_t)v->act_dim * sizeof(double));
    env_action_bounds(envpool_env(v->pool, 0), v->low, v->high);
    *out = v;
    return FLAME_OK;
}

void flame_vec_free(flame_vec *v) {
    if (!v) {
        return;
    }
    envpool_free(v->pool);
    flame_free(v->low), flame_free(v->high);
    flame_free(v);
}

int flame_vec_info(const flame_vec *v, const char **env_id, int *num_envs, int *obs_dim,
                   int *act_dim, int *nq, int *nv, int *max_episode_steps) {
    NEED(v, "no vector env");
    if (env_id) {
        *env_id = v->spec->id;
    }
    if (num_envs) {
        *num_envs = v->n;
    }
    if (obs_dim) {
        *obs_dim = v->obs_dim;
    }
    if (act_dim) {
        *act_dim = v->act_dim;
    }
    if (nq) {
        *nq = envpool_nq(v->pool);
    }
    if (nv) {
        *nv = envpool_nv(v->pool);
    }
    if (max_episode_steps) {
        *max_episode_steps = v->spec->max_episode_steps;
    }
    return FLAME_OK;
}

int flame_vec_action_bounds(const flame_vec *v, double *low, double *high) {
    NEED(v && low && high, "no vector env or no output arrays");
    memcpy(low, v->low, (size_t)v->act_dim * sizeof(double));
    memcpy(high, v->high, (size_t)v->act_dim * sizeof(double));
    return FLAME_OK;
}

int flame_vec_reset(flame_vec *v, int has_seed, uint64_t seed, double *obs) {
    NEED(v && obs, "no vector env or no observation array");
    if (has_seed || v->resets == 0) {
        envpool_reseed(v->pool, has_seed ? seed : v->seed, obs);
    } else {
        envpool_reset_next(v->pool, obs);
    }
    v->resets++;
    return FLAME_OK;
}

int flame_vec_step(flame_vec *v, const float *actions, double *obs, double *reward,
                   uint8_t *terminated, uint8_t *truncated, double *final_obs) {
    NEED(v, "no vector env");
    NEED(v->resets > 0, "step before the first reset; call reset first");
    NEED(actions && obs && reward && terminated && truncated,
         "actions, obs, reward, terminated and truncated must be arrays");
    EnvPoolStep st = {.obs = obs,
                      .final_obs = final_obs,
                      .reward = reward,
                      .terminated = terminated,
                      .truncated = truncated};
    envpool_step(v->pool, actions, &st);
    return FLAME_OK;
}

int flame_vec_get_state(const flame_vec *v, int i, double *qpos, double *qvel) {
    NEED(v && qpos && qvel, "no vector env or no state arrays");
    NEED(i >= 0 && i < v->n, "env index %d is out of range [0, %d)", i, v->n);
    env_get_state(envpool_env(v->pool, i), qpos, qvel);
    return FLAME_OK;
}

int flame_vec_set_state(flame_vec *v, int i, const double *qpos, const double *qvel, double *obs) {
    NEED(v && qpos && qvel, "no vector env or no state arrays");
    NEED(i >= 0 && i < v->n, "env index %d is out of range [0, %d)", i, v->n);
    for (int k = 0; k < envpool_nq(v->pool); k++) {
        NEED(isfinite(qpos[k]), "qpos[%d] is not finite", k);
    }
    for (int k = 0; k < envpool_nv(v->pool); k++) {
        NEED(isfinite(qvel[k]), "qvel[%d] is not finite", k);
    }
    env_set_state(envpool_env(v->pool, i), qpos, qvel, obs);
    return FLAME_OK;
}
