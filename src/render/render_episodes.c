/*
 * render_episodes.c: the episode loop of `flame render` (include/flame/render.h): an episode run
 * of the rollout engine on one env that keeps each episode's final state until it is drawn, with a
 * sink that draws the env after every step and at every episode's start.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flame/check.h"
#include "flame/envpool.h"
#include "flame/render.h"

void render_stats_free(RenderStats *st) {
    free(st->returns);
    free(st->lengths);
    st->returns = NULL;
    st->lengths = NULL;
}

/* the sink: draws env 0 of the rollout into the frame writer */
typedef struct {
    Rollout *ro;
    Renderer *r;
    FrameWriter *w;
    uint8_t *rgb;
} Drawer;

static int draw(void *ctx) {
    Drawer *d = ctx;
    render_frame(d->r, env_data(envpool_env(rollout_pool(d->ro), 0)), d->rgb);
    return frame_writer_add(d->w, d->rgb);
}

static int draw_step(void *ctx, const RolloutStep *s) {
    return !s->owed || s->owed[0] ? draw(ctx) : FLAME_OK;
}

static int draw_start(void *ctx, int env) {
    (void)env; /* one env */
    return draw(ctx);
}

/* the renderer (framing the reset state) and the output, before any step */
static int render_open(const RenderEpisodesOptions *o, Drawer *d, RenderStats *st) {
    Env *env = envpool_env(rollout_pool(d->ro), 0);
    rollout_reset(d->ro); /* the state the episode run starts from */
    st->fps = render_fps(env_model(env), env_frame_skip(env));
    int rc = render_create(o->spec, env_model(env), env_data(env), o->width, o->height, o->gl,
                           o->camera, &d->r);
    if (rc == FLAME_OK) {
        snprintf(st->gl, sizeof st->gl, "%s", render_gl_name(d->r));
        rc = frame_writer_open(o->out, o->width, o->height, st->fps, o->force, &d->w);
    }
    return rc;
}

int render_episodes(const RenderEpisodesOptions *o, RenderStats *st) {
    memset(st, 0, sizeof *st);
    if (o->episodes < 1) {
        return flame_errorf(FLAME_EINPUT, "--episodes must be at least 1");
    }
    RolloutEnvs e = {.spec = o->spec,
                     .model_xml = o->model_xml,
                     .num_envs = 1,
                     .num_threads = 1,
                     .seed = o->seed,
                     .env_offset = ROLLOUT_ENV_OFFSET,
                     .keep_final = true};
    Drawer d = {0};
    int rc = rollout_create(&e, &d.ro);
    if (rc != FLAME_OK) {
        return rc;
    }
    rc = render_open(o, &d, st);
    if (rc == FLAME_OK) {
        d.rgb = flame_malloc((size_t)o->width * (size_t)o->height * 3);
        RolloutSink sink = {.ctx = &d, .on_step = draw_step, .on_start = draw_start};
        RolloutRun run = {.episodes = o->episodes, .stop = o->stop};
        RolloutResult res;
        rc = rollout_episodes(d.ro, &o->policy, &run, &sink, &res);
        st->episodes = res.episodes;
        st->unstable = res.unstable;
        st->returns = res.returns; /* the stats own the arrays now */
        st->lengths = res.lengths;
        st->frames = frame_writer_count(d.w);
        if (rc == FLAME_OK) {
            rc = frame_writer_close(d.w);
        } else {
            char why[FLAME_ERROR_MAX];
            snprintf(why, sizeof why, "%s", flame_last_error());
            frame_writer_abort(d.w);
            flame_errorf(rc, "%s; nothing was written", why);
        }
    }
    render_free(d.r);
    rollout_free(d.ro);
    flame_free(d.rgb);
    if (rc != FLAME_OK) {
        render_stats_free(st);
    }
    return rc;
}
