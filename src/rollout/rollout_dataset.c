/*
 * rollout_dataset.c: the dataset sink of the rollout engine: each env's running episode is kept in
 * its own buffer and handed to a dataset writer (include/flame/dataset.h) when it ends, in the
 * engine's completion order; unstable episodes are dropped (rollout.h). Actions are stored in env
 * units, ctrl = center + a * half_range computed in double exactly as env_step does; the random
 * policy's actions also carry their log-density in env units, -log(volume of the action box).
 */
#include "flame/rollout.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "flame/check.h"

/* the running episode of one env */
typedef struct {
    int len;
    double *obs; /* (Tmax + 1, S) */
    float *act;  /* (Tmax, D) env units */
    double *rew;
    uint8_t *term, *trunc;
    double *qpos, *qvel; /* (Tmax, nq), (Tmax, nv) */
    float *logp;
} EpisodeBuf;

typedef struct {
    DatasetWriter *w; /* may be NULL: nothing written */
    int N, S, D, nq, nv;
    EpisodeBuf *buf;       /* (N) */
    double *center, *half; /* (D) action box in env units */
    bool store_logp;       /* random policy */
    float logp;            /* its log-density */
} DatasetSink;

static void episode_buf_init(EpisodeBuf *b, int Tmax, int S, int D, int nq, int nv) {
    memset(b, 0, sizeof *b);
    size_t T = (size_t)Tmax;
    b->obs = flame_malloc((T + 1) * (size_t)S * sizeof(double));
    b->act = flame_malloc(T * (size_t)D * sizeof(float));
    b->rew = flame_malloc(T * sizeof(double));
    b->term = flame_malloc(T);
    b->trunc = flame_malloc(T);
    b->qpos = flame_malloc(T * (size_t)nq * sizeof(double));
    b->qvel = flame_malloc(T * (size_t)nv * sizeof(double));
    b->logp = flame_malloc(T * sizeof(float));
}

static void episode_buf_free(EpisodeBuf *b) {
    flame_free(b->obs), flame_free(b->act), flame_free(b->rew), flame_free(b->term);
    flame_free(b->trunc), flame_free(b->qpos), flame_free(b->qvel), flame_free(b->logp);
}

/* appends the step of every env that still owes episodes to its buffer */
static int dataset_on_step(void *ctx, const RolloutStep *s) {
    DatasetSink *k = ctx;
    const int S = k->S, D = k->D, nq = k->nq, nv = k->nv;
    for (int i = 0; i < s->n; i++) {
        if (s->owed && !s->owed[i]) {
            continue;
        }
        EpisodeBuf *b = &k->buf[i];
        const size_t t = (size_t)b->len;
        if (t == 0) { /* the episode's first observation: after the reset */
            memcpy(b->obs, s->obs + (size_t)i * S, (size_t)S * sizeof(double));
        }
        for (int d = 0; d < D; d++) {
            b->act[t * D + d] =
                (float)(k->center[d] + (double)s->act[(size_t)i * D + d] * k->half[d]);
        }
        b->rew[t] = s->reward[i];
        b->term[t] = s->terminated[i];
        b->trunc[t] = s->truncated[i];
        b->logp[t] = k->logp;
        memcpy(b->qpos + t * nq, s->qpos + (size_t)i * nq, (size_t)nq * sizeof(double));
        memcpy(b->qvel + t * nv, s->qvel + (size_t)i * nv, (size_t)nv * sizeof(double));
        memcpy(b->obs + (t + 1) * S, s->final_obs + (size_t)i * S, (size_t)S * sizeof(double));
        b->len++;
    }
    return FLAME_OK;
}

/* a finished episode goes to the writer unless it is unstable; the buffer starts over */
static int dataset_on_episode(void *ctx, const RolloutStep *s, const RolloutEpisode *e) {
    (void)s;
    DatasetSink *k = ctx;
    EpisodeBuf *b = &k->buf[e->env];
    int rc = FLAME_OK;
    if (e->index >= 0 && k->w) {
        DatasetEpisode ep = {.T = b->len,
                             .obs = b->obs,
                             .act = b->act,
                             .rew = b->rew,
                             .terminated = b->term,
                             .truncated = b->trunc,
                             .qpos = b->qpos,
                             .qvel = b->qvel,
                             .log_prob = k->store_logp ? b->logp : NULL,
                             .env_index = (uint32_t)e->env,
                             .env_episode = e->env_episode};
        rc = dataset_add_episode(k->w, &ep);
    }
    b->len = 0;
    return rc;
}

int rollout_dataset(const RolloutEnvs *e, const RolloutPolicy *p, const RolloutRun *run,
                    DatasetWriter *w, RolloutResult *out) {
    memset(out, 0, sizeof *out);
    if (run->episodes < 1) {
        return flame_errorf(FLAME_EINPUT, "--episodes must be at least 1 (got %d)", run->episodes);
    }
    RolloutEnvs env = *e;
    env.num_envs = env.num_envs < run->episodes ? env.num_envs : run->episodes;
    env.record_state = true;
    Rollout *r = NULL;
    int rc = rollout_create(&env, &r);
    if (rc != FLAME_OK) {
        return rc;
    }
    EnvPool *pool = rollout_pool(r);
    DatasetSink k = {.w = w,
                     .N = envpool_num_envs(pool),
                     .S = envpool_obs_dim(pool),
                     .D = envpool_act_dim(pool),
                     .nq = envpool_nq(pool),
                     .nv = envpool_nv(pool),
                     .store_logp = p->kind == ROLLOUT_RANDOM};
    double *low = flame_malloc((size_t)k.D * sizeof(double));
    double *high = flame_malloc((size_t)k.D * sizeof(double));
    k.center = flame_malloc((size_t)k.D * sizeof(double));
    k.half = flame_malloc((size_t)k.D * sizeof(double));
    env_action_bounds(envpool_env(pool, 0), low, high);
    double log_volume = 0;
    for (int d = 0; d < k.D; d++) {
        k.center[d] = 0.5 * (low[d] + high[d]);
        k.half[d] = 0.5 * (high[d] - low[d]);
        log_volume += log(high[d] - low[d]);
    }
    k.logp = (float)(-log_volume);
    k.buf = flame_calloc((size_t)k.N, sizeof(EpisodeBuf));
    for (int i = 0; i < k.N; i++) {
        episode_buf_init(&k.buf[i], e->spec->max_episode_steps, k.S, k.D, k.nq, k.nv);
    }
    RolloutSink sink = {.ctx = &k, .on_step = dataset_on_step, .on_episode = dataset_on_episode};
    rc = rollout_episodes(r, p, run, &sink, out);
    if (rc == FLAME_ERUNTIME && run->stop && *run->stop) {
        char why[512];
        snprintf(why, sizeof why, "%s", flame_last_error());
        flame_errorf(FLAME_ERUNTIME, "%s; nothing was written", why);
    }
    for (int i = 0; i < k.N; i++) {
        episode_buf_free(&k.buf[i]);
    }
    flame_free(k.buf), flame_free(k.center), flame_free(k.half), flame_free(low), flame_free(high);
    rollout_free(r);
    return rc;
}
