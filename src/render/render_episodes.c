/*
 * render_episodes.c: the episode loop of `flame render` (include/flame/render.h): one env of the
 * env pool in next-step mode (so an episode's last state stays to be drawn), the policy through
 * the backend's act operation, frames to a FrameWriter.
 */
#include <stdlib.h>
#include <string.h>

#include "flame/check.h"
#include "flame/envpool.h"
#include "flame/render.h"
#include "flame/rng.h"

/* the env addresses of `flame eval`'s round 0 (src/train/eval.c): reset-noise seed and row */
#define RENDER_EVAL_SEED_SHIFT 0x9e3779b97f4a7c15ull
#define RENDER_EVAL_ENV_ROW 0x100000u

void render_stats_free(RenderStats *st) {
    free(st->returns);
    free(st->lengths);
    st->returns = NULL;
    st->lengths = NULL;
}

static int draw(Renderer *r, FrameWriter *w, EnvPool *pool, uint8_t *rgb) {
    Env *e = envpool_env(pool, 0);
    render_frame(r, env_data(e), rgb);
    return frame_writer_add(w, rgb);
}

int render_episodes(const RenderEpisodesOptions *o, RenderStats *st) {
    memset(st, 0, sizeof *st);
    if (o->episodes < 1) {
        return flame_errorf(FLAME_EINPUT, "--episodes must be at least 1");
    }
    EnvPool *pool = NULL;
    int rc = envpool_create(o->spec, o->model_xml, 1, 1, o->seed + RENDER_EVAL_SEED_SHIFT,
                            RENDER_EVAL_ENV_ROW, &pool);
    if (rc != FLAME_OK) {
        return rc;
    }
    envpool_set_modes(pool, ENVPOOL_AUTORESET_NEXT_STEP, ENVPOOL_ACTIONS_AGENT);
    const int S = o->spec->obs_dim, D = o->spec->act_dim;
    double *obs = flame_malloc((size_t)S * sizeof(double)), rew;
    float *obs_f = flame_malloc((size_t)S * sizeof(float));
    float *act = flame_malloc((size_t)D * sizeof(float));
    uint8_t *rgb = flame_malloc((size_t)o->width * (size_t)o->height * 3), term, trunc;
    Renderer *r = NULL;
    FrameWriter *w = NULL;
    envpool_reset(pool, obs);
    Env *env = envpool_env(pool, 0);
    st->fps = render_fps(env_model(env), env_frame_skip(env));
    rc = render_create(o->spec, env_model(env), env_data(env), o->width, o->height, o->gl,
                       o->camera, &r);
    if (rc == FLAME_OK) {
        snprintf(st->gl, sizeof st->gl, "%s", render_gl_name(r));
        rc = frame_writer_open(o->out, o->width, o->height, st->fps, o->force, &w);
    }
    st->returns = calloc((size_t)o->episodes, sizeof(double));
    st->lengths = calloc((size_t)o->episodes, sizeof(int));
    EnvPoolStep step = {.obs = obs, .reward = &rew, .terminated = &term, .truncated = &trunc};
    uint32_t call = 0;
    for (int ep = 0; rc == FLAME_OK && ep < o->episodes; ep++) {
        if (ep > 0) {
            envpool_reset_next(pool, obs);
        }
        rc = draw(r, w, pool, rgb);
        bool done = false;
        while (rc == FLAME_OK && !done) {
            if (o->stop && *o->stop) {
                rc = flame_errorf(FLAME_ERUNTIME, "interrupted; nothing was written");
                break;
            }
            if (o->ops) {
                for (int k = 0; k < S; k++) {
                    obs_f[k] = (float)obs[k];
                }
                o->ops->act(o->backend, obs_f, 1,
                            o->deterministic ? ACT_DETERMINISTIC : ACT_EXPLORE, call, act);
            } else {
                for (int d = 0; d < D; d++) {
                    act[d] =
                        2.0f * rng_uniform(o->seed, RNG_STREAM_WARMUP, call, 0, (uint32_t)d) - 1.0f;
                }
            }
            call++;
            envpool_step(pool, act, &step);
            st->returns[ep] += rew;
            st->lengths[ep]++;
            done = term || trunc;
            rc = draw(r, w, pool, rgb);
        }
        st->episodes += rc == FLAME_OK;
    }
    st->frames = w ? frame_writer_count(w) : 0;
    if (w) {
        if (rc == FLAME_OK) {
            rc = frame_writer_close(w);
        } else {
            frame_writer_abort(w);
        }
    }
    render_free(r);
    envpool_free(pool);
    flame_free(obs), flame_free(obs_f), flame_free(act), flame_free(rgb);
    if (rc != FLAME_OK) {
        render_stats_free(st);
    }
    return rc;
}
