/*
 * dataset_rollout.c: rollouts of a policy on an env pool, episode by episode, into a dataset
 * writer (see include/flame/dataset.h).
 *
 * Env i of the N pool envs runs a fixed quota of whole episodes (episodes / N, the first
 * episodes % N envs one more); once its quota is met its further steps are ignored. Episodes go to
 * the writer in completion order (vectorised step, then env index). Actions: the agent's act op
 * with call index = vectorised step (deterministic or exploring draws), or uniform on [-1, 1]^D
 * from rng(seed, RNG_STREAM_WARMUP, step, env, dim) for the random policy; both are stored in env
 * units, ctrl = center + a * half_range, computed in double exactly as env_step does.
 */
#include "flame/dataset.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "flame/check.h"
#include "flame/envpool.h"
#include "flame/rng.h"

/* the running episode of one env */
typedef struct {
    int len;
    double *obs; /* (Tmax + 1, S) */
    float *act;  /* (Tmax, D) env units */
    double *rew;
    uint8_t *term, *trunc;
    double *qpos, *qvel;
    float *logp;
} EpisodeBuf;

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

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

void dataset_rollout_stats_free(RolloutStats *s) {
    flame_free(s->returns);
    flame_free(s->lengths);
    memset(s, 0, sizeof *s);
}

int dataset_rollout(const RolloutOptions *o, DatasetWriter *w, RolloutStats *stats) {
    memset(stats, 0, sizeof *stats);
    if (!o->spec) {
        return flame_errorf(FLAME_EINPUT, "rollout: no environment given");
    }
    if (o->episodes < 1) {
        return flame_errorf(FLAME_EINPUT, "--episodes must be at least 1 (got %d)", o->episodes);
    }
    if (o->num_envs < 1 || o->num_threads < 1) {
        return flame_errorf(FLAME_EINPUT, "rollout: envs and threads must be at least 1");
    }
    if (o->policy == ROLLOUT_POLICY_AGENT && (!o->ops || !o->backend)) {
        return flame_errorf(FLAME_EINPUT, "rollout: the agent policy needs a backend");
    }
    const int E = o->episodes;
    const int N = o->num_envs < E ? o->num_envs : E;
    const int W = o->num_threads < N ? o->num_threads : N;
    EnvPool *p = NULL;
    int rc = envpool_create(o->spec, o->model_xml, N, W, o->seed, DATASET_ROLLOUT_ENV_OFFSET, &p);
    if (rc != FLAME_OK) {
        return rc;
    }
    const int S = envpool_obs_dim(p), D = envpool_act_dim(p);
    const int nq = envpool_nq(p), nv = envpool_nv(p);
    const int Tmax = o->spec->max_episode_steps;
    const size_t Ns = (size_t)N;

    /* action box: ctrl = center + a * half, and the random policy's log-density in env units */
    double *low = flame_malloc((size_t)D * sizeof(double));
    double *high = flame_malloc((size_t)D * sizeof(double));
    env_action_bounds(envpool_env(p, 0), low, high);
    double log_volume = 0;
    for (int d = 0; d < D; d++) {
        log_volume += log(high[d] - low[d]);
    }
    const float random_logp = (float)(-log_volume);

    int *quota = flame_calloc(Ns, sizeof(int)), *finished = flame_calloc(Ns, sizeof(int));
    uint32_t *env_episode = flame_calloc(Ns, sizeof(uint32_t));
    for (int i = 0; i < N; i++) {
        quota[i] = E / N + (i < E % N ? 1 : 0);
    }
    EpisodeBuf *buf = flame_calloc(Ns, sizeof(EpisodeBuf));
    for (int i = 0; i < N; i++) {
        episode_buf_init(&buf[i], Tmax, S, D, nq, nv);
    }
    double *obs = flame_malloc(Ns * (size_t)S * sizeof(double));
    double *next_obs = flame_malloc(Ns * (size_t)S * sizeof(double));
    double *final_obs = flame_malloc(Ns * (size_t)S * sizeof(double));
    float *obs_f = flame_malloc(Ns * (size_t)S * sizeof(float));
    float *actions = flame_malloc(Ns * (size_t)D * sizeof(float));
    double *reward = flame_malloc(Ns * sizeof(double));
    uint8_t *term = flame_malloc(Ns), *trunc = flame_malloc(Ns), *unstable = flame_malloc(Ns);
    double *qpos = flame_malloc(Ns * (size_t)nq * sizeof(double));
    double *qvel = flame_malloc(Ns * (size_t)nv * sizeof(double));
    stats->returns = flame_calloc((size_t)E, sizeof(double));
    stats->lengths = flame_calloc((size_t)E, sizeof(int));

    EnvPoolStep out = {.obs = next_obs,
                       .final_obs = final_obs,
                       .reward = reward,
                       .terminated = term,
                       .truncated = trunc,
                       .unstable = unstable,
                       .qpos_before = qpos,
                       .qvel_before = qvel};
    const double t0 = now_seconds();
    double next_report = t0 + 2.0;
    envpool_reset(p, obs);
    for (int i = 0; i < N; i++) {
        memcpy(buf[i].obs, obs + (size_t)i * S, (size_t)S * sizeof(double));
    }
    const ActMode mode = o->deterministic ? ACT_DETERMINISTIC : ACT_EXPLORE;
    int collected = 0;
    for (uint32_t step = 0; rc == FLAME_OK && collected < E; step++) {
        if (o->stop && *o->stop) {
            rc = flame_errorf(FLAME_ERUNTIME,
                              "interrupted after %d of %d episodes; nothing was "
                              "written",
                              collected, E);
            break;
        }
        /* actions for every env (agent units) */
        if (o->policy == ROLLOUT_POLICY_RANDOM) {
            for (int i = 0; i < N; i++) {
                for (int d = 0; d < D; d++) {
                    float u =
                        rng_uniform(o->seed, RNG_STREAM_WARMUP, step, (uint32_t)i, (uint32_t)d);
                    actions[(size_t)i * D + d] = 2.0f * u - 1.0f;
                }
            }
        } else {
            for (size_t k = 0; k < Ns * (size_t)S; k++) {
                obs_f[k] = (float)obs[k];
            }
            o->ops->act(o->backend, obs_f, N, mode, step, actions);
        }
        envpool_step(p, actions, &out);

        /* record each env that still owes episodes; hand finished episodes to the writer */
        for (int i = 0; rc == FLAME_OK && i < N; i++) {
            if (finished[i] >= quota[i]) {
                continue;
            }
            EpisodeBuf *b = &buf[i];
            const size_t k = (size_t)b->len;
            for (int d = 0; d < D; d++) {
                double center = 0.5 * (low[d] + high[d]), half = 0.5 * (high[d] - low[d]);
                b->act[k * D + d] = (float)(center + (double)actions[(size_t)i * D + d] * half);
            }
            b->rew[k] = reward[i];
            b->term[k] = term[i];
            b->trunc[k] = trunc[i];
            b->logp[k] = random_logp;
            memcpy(b->qpos + k * nq, qpos + (size_t)i * nq, (size_t)nq * sizeof(double));
            memcpy(b->qvel + k * nv, qvel + (size_t)i * nv, (size_t)nv * sizeof(double));
            memcpy(b->obs + (k + 1) * S, final_obs + (size_t)i * S, (size_t)S * sizeof(double));
            b->len++;
            if (!term[i] && !trunc[i]) {
                continue;
            }
            if (unstable[i]) {
                stats->unstable++;
            } else {
                DatasetEpisode ep = {.T = b->len,
                                     .obs = b->obs,
                                     .act = b->act,
                                     .rew = b->rew,
                                     .terminated = b->term,
                                     .truncated = b->trunc,
                                     .qpos = b->qpos,
                                     .qvel = b->qvel,
                                     .log_prob =
                                         o->policy == ROLLOUT_POLICY_RANDOM ? b->logp : NULL,
                                     .env_index = (uint32_t)i,
                                     .env_episode = env_episode[i]};
                double ret = 0;
                for (int t = 0; t < b->len; t++) {
                    ret += b->rew[t];
                }
                stats->returns[collected] = ret;
                stats->lengths[collected] = b->len;
                stats->steps += b->len;
                collected++;
                finished[i]++;
                if (w) {
                    rc = dataset_add_episode(w, &ep);
                }
            }
            env_episode[i]++;
            b->len = 0;
            memcpy(b->obs, next_obs + (size_t)i * S, (size_t)S * sizeof(double));
        }
        if (rc == FLAME_OK && stats->unstable > E) {
            rc = flame_errorf(FLAME_ERUNTIME,
                              "MuJoCo went unstable in %lld episodes (more than "
                              "the %d requested); the policy or model is not "
                              "usable for a dataset",
                              (long long)stats->unstable, E);
        }
        double *swap = obs;
        obs = next_obs;
        next_obs = swap;
        out.obs = next_obs;

        double now = now_seconds();
        if (o->progress && now >= next_report && collected < E) {
            printf("rollout: %d/%d episodes, %lld steps, %.0f steps/s\n", collected, E,
                   (long long)stats->steps, (double)stats->steps / (now - t0));
            fflush(stdout);
            next_report = now + 2.0;
        }
    }
    stats->episodes = collected;
    stats->seconds = now_seconds() - t0;

    for (int i = 0; i < N; i++) {
        episode_buf_free(&buf[i]);
    }
    flame_free(buf), flame_free(quota), flame_free(finished), flame_free(env_episode);
    flame_free(obs), flame_free(next_obs), flame_free(final_obs), flame_free(obs_f);
    flame_free(actions), flame_free(reward), flame_free(term), flame_free(trunc);
    flame_free(unstable), flame_free(qpos), flame_free(qvel), flame_free(low), flame_free(high);
    envpool_free(p);
    return rc;
}
