/*
 * rollout.c: the rollout engine: policies, one vectorised step, episode runs with quotas and the
 * policy for unstable episodes, and evaluation on top (see include/flame/rollout.h).
 */
#include "flame/rollout.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "flame/check.h"
#include "flame/host.h"
#include "flame/rng.h"

struct Rollout {
    EnvPool *pool;
    int N, S, D, nq, nv;
    double *obs, *next_obs, *final_obs; /* (N, S) */
    double *reward, *ep_ret;            /* (N) */
    double *qpos, *qvel;                /* (N, nq), (N, nv) or NULL */
    float *obs_f, *act;                 /* (N, S), (N, D) */
    uint8_t *term, *trunc, *unstable;   /* (N) */
    int *ep_len;                        /* (N) */
    uint32_t *env_episode;              /* (N) episodes ended since the reset */
    bool record_state, keep_final;
};

/* ------------------------------------------------------------------ policies */
RolloutPolicy rollout_policy_agent(const BackendOps *ops, Backend *b, ActMode mode) {
    RolloutPolicy p;
    memset(&p, 0, sizeof p);
    p.kind = ROLLOUT_AGENT;
    p.ops = ops;
    p.backend = b;
    p.mode = mode;
    return p;
}

RolloutPolicy rollout_policy_random(uint64_t seed) {
    RolloutPolicy p;
    memset(&p, 0, sizeof p);
    p.kind = ROLLOUT_RANDOM;
    p.seed = seed;
    return p;
}

void rollout_policy_act(const RolloutPolicy *p, const float *obs, int n, int act_dim, uint32_t call,
                        float *actions) {
    switch (p->kind) {
        case ROLLOUT_AGENT:
            p->ops->act(p->backend, obs, n, p->mode, call, actions);
            break;
        case ROLLOUT_RANDOM:
            for (int i = 0; i < n; i++) {
                for (int d = 0; d < act_dim; d++) {
                    actions[(size_t)i * act_dim + d] =
                        2.0f * rng_uniform(p->seed, RNG_STREAM_WARMUP, call, (uint32_t)i,
                                           (uint32_t)d) -
                        1.0f;
                }
            }
            break;
        case ROLLOUT_FUNCTION:
            p->fn(p->ctx, obs, n, act_dim, call, actions);
            break;
    }
}

static int policy_check(const RolloutPolicy *p) {
    if (p->kind == ROLLOUT_AGENT && (!p->ops || !p->backend)) {
        return flame_errorf(FLAME_EINPUT, "rollout: the agent policy needs a created backend");
    }
    if (p->kind == ROLLOUT_FUNCTION && !p->fn) {
        return flame_errorf(FLAME_EINPUT, "rollout: the function policy needs a function");
    }
    return FLAME_OK;
}

/* ------------------------------------------------------------------ the engine */
int rollout_create(const RolloutEnvs *e, Rollout **out) {
    *out = NULL;
    if (!e->spec) {
        return flame_errorf(FLAME_EINPUT, "rollout: no environment given");
    }
    if (e->num_envs < 1 || e->num_threads < 1) {
        return flame_errorf(FLAME_EINPUT,
                            "rollout: envs and threads must be at least 1 (got %d, %d)",
                            e->num_envs, e->num_threads);
    }
    EnvPool *pool = NULL;
    int threads = e->num_threads < e->num_envs ? e->num_threads : e->num_envs;
    int rc =
        envpool_create(e->spec, e->model_xml, e->num_envs, threads, e->seed, e->env_offset, &pool);
    if (rc != FLAME_OK) {
        return rc;
    }
    Rollout *r = flame_calloc(1, sizeof *r);
    r->pool = pool;
    r->N = envpool_num_envs(pool);
    r->S = envpool_obs_dim(pool);
    r->D = envpool_act_dim(pool);
    r->nq = envpool_nq(pool);
    r->nv = envpool_nv(pool);
    r->record_state = e->record_state;
    r->keep_final = e->keep_final;
    if (e->keep_final) { /* ended envs wait for envpool_reset_pending (rollout_renew) */
        envpool_set_modes(pool, ENVPOOL_AUTORESET_NEXT_STEP, ENVPOOL_ACTIONS_AGENT);
    }
    size_t N = (size_t)r->N, NS = N * (size_t)r->S;
    r->obs = flame_malloc(NS * sizeof(double));
    r->next_obs = flame_malloc(NS * sizeof(double));
    r->final_obs = flame_malloc(NS * sizeof(double));
    r->reward = flame_malloc(N * sizeof(double));
    r->ep_ret = flame_malloc(N * sizeof(double));
    r->obs_f = flame_malloc(NS * sizeof(float));
    r->act = flame_malloc(N * (size_t)r->D * sizeof(float));
    r->term = flame_malloc(N);
    r->trunc = flame_malloc(N);
    r->unstable = flame_malloc(N);
    r->ep_len = flame_malloc(N * sizeof(int));
    r->env_episode = flame_calloc(N, sizeof(uint32_t));
    if (e->record_state) {
        r->qpos = flame_malloc(N * (size_t)r->nq * sizeof(double));
        r->qvel = flame_malloc(N * (size_t)r->nv * sizeof(double));
    }
    *out = r;
    return FLAME_OK;
}

void rollout_free(Rollout *r) {
    if (!r) {
        return;
    }
    envpool_free(r->pool);
    flame_free(r->obs), flame_free(r->next_obs), flame_free(r->final_obs);
    flame_free(r->reward), flame_free(r->ep_ret), flame_free(r->obs_f), flame_free(r->act);
    flame_free(r->term), flame_free(r->trunc), flame_free(r->unstable), flame_free(r->ep_len);
    flame_free(r->env_episode), flame_free(r->qpos), flame_free(r->qvel);
    flame_free(r);
}

EnvPool *rollout_pool(Rollout *r) {
    return r->pool;
}

void rollout_reset(Rollout *r) {
    envpool_reset(r->pool, r->obs);
    memset(r->env_episode, 0, (size_t)r->N * sizeof(uint32_t));
}

void rollout_observe(Rollout *r) {
    for (int i = 0; i < r->N; i++) {
        env_observe(envpool_env(r->pool, i), r->obs + (size_t)i * r->S);
    }
}

/* acts and steps the pool; fills the view the sinks see */
static void rollout_advance(Rollout *r, const RolloutPolicy *p, uint32_t call, const uint8_t *owed,
                            RolloutStep *s, RolloutTimes *t) {
    const size_t NS = (size_t)r->N * r->S;
    double t0 = host_now();
    for (size_t k = 0; k < NS; k++) {
        r->obs_f[k] = (float)r->obs[k];
    }
    rollout_policy_act(p, r->obs_f, r->N, r->D, call, r->act);
    double t1 = host_now();
    EnvPoolStep out = {.obs = r->next_obs,
                       .final_obs = r->final_obs,
                       .reward = r->reward,
                       .terminated = r->term,
                       .truncated = r->trunc,
                       .unstable = r->unstable,
                       .episode_return = r->ep_ret,
                       .episode_length = r->ep_len,
                       .qpos_before = r->qpos,
                       .qvel_before = r->qvel};
    envpool_step(r->pool, r->act, &out);
    double t2 = host_now();
    if (t) {
        t->act_s += t1 - t0;
        t->env_s += t2 - t1;
    }
    *s = (RolloutStep){.n = r->N,
                       .obs_dim = r->S,
                       .act_dim = r->D,
                       .nq = r->nq,
                       .nv = r->nv,
                       .call = call,
                       .obs = r->obs,
                       .obs_f = r->obs_f,
                       .act = r->act,
                       .reward = r->reward,
                       .final_obs = r->final_obs,
                       .next_obs = r->next_obs,
                       .terminated = r->term,
                       .truncated = r->trunc,
                       .unstable = r->unstable,
                       .episode_return = r->ep_ret,
                       .episode_length = r->ep_len,
                       .qpos = r->qpos,
                       .qvel = r->qvel,
                       .owed = owed};
}

/* the episode env i ended in this step (its counter advances) */
static RolloutEpisode rollout_ended(Rollout *r, int i) {
    RolloutEpisode e = {.env = i,
                        .env_episode = r->env_episode[i]++,
                        .length = r->ep_len[i],
                        .ret = r->ep_ret[i],
                        .terminated = r->term[i] != 0,
                        .unstable = r->unstable[i] != 0,
                        .index = -1};
    return e;
}

static bool ended(const Rollout *r, int i) {
    return r->term[i] || r->trunc[i];
}

/* keep_final: the envs whose episode ended reset now, their reset observations into next_obs */
static void rollout_renew(Rollout *r) {
    if (r->keep_final) {
        envpool_reset_pending(r->pool, r->next_obs);
    }
}

/* on_start for env i (no sink or callback: nothing to do) */
static int rollout_started(const RolloutSink *sink, int i) {
    return sink && sink->on_start ? sink->on_start(sink->ctx, i) : FLAME_OK;
}

/* the next observations become the current ones */
static void rollout_swap(Rollout *r) {
    double *o = r->obs;
    r->obs = r->next_obs;
    r->next_obs = o;
}

int rollout_step(Rollout *r, const RolloutPolicy *p, uint32_t call, const RolloutSink *sink,
                 RolloutTimes *times) {
    RolloutStep s;
    rollout_advance(r, p, call, NULL, &s, times);
    double t0 = host_now();
    int rc = sink && sink->on_step ? sink->on_step(sink->ctx, &s) : FLAME_OK;
    for (int i = 0; i < r->N; i++) {
        if (ended(r, i)) {
            RolloutEpisode e = rollout_ended(r, i);
            if (rc == FLAME_OK && sink && sink->on_episode) {
                rc = sink->on_episode(sink->ctx, &s, &e);
            }
        }
    }
    rollout_renew(r);
    for (int i = 0; rc == FLAME_OK && i < r->N; i++) {
        if (ended(r, i)) {
            rc = rollout_started(sink, i);
        }
    }
    rollout_swap(r);
    if (times) {
        times->sink_s += host_now() - t0;
    }
    return rc;
}

/* ------------------------------------------------------------------ the replay sink */
void rollout_replay_init(RolloutReplay *rr, const BackendOps *ops, Backend *b, int num_envs,
                         int obs_dim, int act_dim) {
    size_t N = (size_t)num_envs, NS = N * (size_t)obs_dim;
    rr->ops = ops;
    rr->b = b;
    rr->S = obs_dim;
    rr->D = act_dim;
    rr->next_f = flame_malloc(NS * sizeof(float));
    rr->obs_keep = flame_malloc(NS * sizeof(float));
    rr->act_keep = flame_malloc(N * (size_t)act_dim * sizeof(float));
    rr->rew_f = flame_malloc(N * sizeof(float));
    rr->done8 = flame_malloc(N);
}

void rollout_replay_free(RolloutReplay *rr) {
    flame_free(rr->next_f), flame_free(rr->obs_keep), flame_free(rr->act_keep);
    flame_free(rr->rew_f), flame_free(rr->done8);
    memset(rr, 0, sizeof *rr);
}

int rollout_replay_push(RolloutReplay *rr, const RolloutStep *s) {
    const size_t S = (size_t)rr->S, D = (size_t)rr->D;
    int rows = 0;
    for (int i = 0; i < s->n; i++) {
        if (s->unstable[i]) {
            continue;
        }
        for (size_t k = 0; k < S; k++) {
            rr->next_f[rows * S + k] = (float)s->final_obs[(size_t)i * S + k];
        }
        rr->rew_f[rows] = (float)s->reward[i];
        rr->done8[rows] = s->terminated[i];
        rows++;
    }
    const float *obs = s->obs_f, *act = s->act;
    if (rows < s->n) { /* observations and actions of the rows kept */
        for (int i = 0, j = 0; i < s->n; i++) {
            if (!s->unstable[i]) {
                memcpy(rr->obs_keep + j * S, s->obs_f + i * S, S * sizeof(float));
                memcpy(rr->act_keep + j * D, s->act + i * D, D * sizeof(float));
                j++;
            }
        }
        obs = rr->obs_keep, act = rr->act_keep;
    }
    if (rows > 0) {
        rr->ops->replay_push(rr->b, obs, act, rr->rew_f, rr->next_f, rr->done8, rows);
    }
    return rows;
}

/* ------------------------------------------------------------------ episode runs */
static void result_summarise(RolloutResult *res) {
    int n = res->episodes;
    if (n == 0) {
        res->return_mean = res->return_std = res->return_min = res->return_max = NAN;
        res->length_mean = NAN;
        return;
    }
    double sum = 0, mn = INFINITY, mx = -INFINITY, len = 0;
    for (int i = 0; i < n; i++) {
        sum += res->returns[i];
        mn = fmin(mn, res->returns[i]);
        mx = fmax(mx, res->returns[i]);
        len += res->lengths[i];
    }
    double mean = sum / n, var = 0;
    for (int i = 0; i < n; i++) {
        var += (res->returns[i] - mean) * (res->returns[i] - mean);
    }
    res->return_mean = mean;
    res->return_std = sqrt(var / n);
    res->return_min = mn;
    res->return_max = mx;
    res->length_mean = len / n;
}

void rollout_result_free(RolloutResult *res) {
    free(res->returns);
    free(res->lengths);
    memset(res, 0, sizeof *res);
}

/* quota bookkeeping of one episode run */
typedef struct {
    int *quota, *finished;
    uint8_t *owed;
} Quota;

int rollout_episodes(Rollout *r, const RolloutPolicy *p, const RolloutRun *run,
                     const RolloutSink *sink, RolloutResult *out) {
    memset(out, 0, sizeof *out);
    const int E = run->episodes, N = r->N;
    if (E < 1) {
        return flame_errorf(FLAME_EINPUT, "--episodes must be at least 1 (got %d)", E);
    }
    int rc = policy_check(p);
    if (rc != FLAME_OK) {
        return rc;
    }
    out->returns = calloc((size_t)E, sizeof(double));
    out->lengths = calloc((size_t)E, sizeof(int));
    FLAME_CHECK(out->returns && out->lengths, "out of memory for %d episode results", E);
    Quota q = {flame_calloc((size_t)N, sizeof(int)), flame_calloc((size_t)N, sizeof(int)),
               flame_calloc((size_t)N, 1)};
    for (int i = 0; i < N; i++) {
        q.quota[i] = E / N + (i < E % N ? 1 : 0);
        q.owed[i] = q.quota[i] > 0;
    }
    const double t0 = host_now();
    double next_report = t0 + 2.0;
    rollout_reset(r);
    for (int i = 0; rc == FLAME_OK && i < N; i++) {
        if (q.owed[i]) {
            rc = rollout_started(sink, i);
        }
    }
    for (uint32_t k = 0; rc == FLAME_OK && out->episodes < E; k++) {
        if (run->stop && *run->stop) {
            rc = flame_errorf(FLAME_ERUNTIME, "interrupted after %d of %d episodes", out->episodes,
                              E);
            break;
        }
        RolloutStep s;
        rollout_advance(r, p, run->call_base + k, q.owed, &s, NULL);
        if (sink && sink->on_step) {
            rc = sink->on_step(sink->ctx, &s);
        }
        for (int i = 0; rc == FLAME_OK && i < N; i++) {
            if (!q.owed[i] || !ended(r, i)) {
                continue;
            }
            RolloutEpisode e = rollout_ended(r, i);
            if (e.unstable) {
                out->unstable++;
            } else {
                e.index = out->episodes++;
                out->returns[e.index] = e.ret;
                out->lengths[e.index] = e.length;
                out->steps += e.length;
                q.owed[i] = ++q.finished[i] < q.quota[i];
            }
            if (sink && sink->on_episode) {
                rc = sink->on_episode(sink->ctx, &s, &e);
            }
        }
        if (rc == FLAME_OK && out->unstable > E) {
            rc = flame_errorf(FLAME_ERUNTIME,
                              "MuJoCo went unstable in %lld episodes, more than the %d requested; "
                              "the policy or the model is not usable",
                              (long long)out->unstable, E);
        }
        rollout_renew(r);
        for (int i = 0; rc == FLAME_OK && i < N; i++) {
            if (q.owed[i] && ended(r, i)) {
                rc = rollout_started(sink, i);
            }
        }
        rollout_swap(r);
        double now = host_now();
        if (run->progress && now >= next_report && out->episodes < E) {
            run->progress(run->progress_ctx, out->episodes, E, out->steps, now - t0);
            next_report = now + 2.0;
        }
    }
    out->seconds = host_now() - t0;
    result_summarise(out);
    flame_free(q.quota), flame_free(q.finished), flame_free(q.owed);
    return rc;
}

int rollout_evaluate(const RolloutEnvs *e, const RolloutPolicy *p, const RolloutRun *run,
                     RolloutResult *out) {
    memset(out, 0, sizeof *out);
    if (run->episodes < 1) {
        return flame_errorf(FLAME_EINPUT, "evaluation needs at least one episode (got %d)",
                            run->episodes);
    }
    RolloutEnvs env = *e;
    env.num_envs = env.num_envs < run->episodes ? env.num_envs : run->episodes;
    Rollout *r = NULL;
    int rc = rollout_create(&env, &r);
    if (rc != FLAME_OK) {
        return rc;
    }
    rc = rollout_episodes(r, p, run, NULL, out);
    rollout_free(r);
    return rc;
}
