/*
 * render.h: frames of our MuJoCo envs with MuJoCo's own renderer (mjv/mjr) in an offscreen OpenGL
 * context, and their output as a video (ffmpeg through a pipe) or PNG files.
 *
 * OpenGL: loaded at run time (dlopen), so nothing links against a GL library:
 *   - EGL (libEGL.so.1): a GPU driver's, or Mesa's software rasteriser on the surfaceless
 *     platform (Debian: libegl1 libegl-mesa0 libgl1-mesa-dri);
 *   - OSMesa (libOSMesa.so.8, Debian: libosmesa6): Mesa's software rasteriser without EGL.
 * RENDER_GL_AUTO tries EGL, then OSMesa; $FLAME_LIBEGL / $FLAME_LIBOSMESA name other library files.
 * Without either, render_create fails with FLAME_EINPUT and names the package to install.
 * MuJoCo finds the GL functions through whichever of these libraries is loaded, so one process
 * uses one kind of context.
 *
 * Camera (render_create's `camera`): NULL or "" follows Gymnasium's default for the env id: the
 * "track" camera of its model file where it has one (HalfCheetah, Hopper, Walker2d, Ant, Humanoid,
 * Swimmer: a camera at a fixed offset from the torso's subtree centre of mass, fixed orientation),
 * else the free camera of its DEFAULT_CAMERA_CONFIG (InvertedPendulum, InvertedDoublePendulum,
 * Reacher, Pusher). Our embedded models carry no cameras, so these are set up from the same
 * numbers. "free" is MuJoCo's default free camera over the whole model.
 * Looks: our models carry no materials or lights, so the renderer adds a floor grid (1 m lines,
 * the motion is visible under a tracking camera), a light from above and body colours.
 *
 * defines: RenderGl Renderer render_gl_parse render_create render_free render_frame
 *          render_gl_name render_fps FrameWriter frame_writer_open frame_writer_add
 *          frame_writer_close frame_writer_abort frame_writer_count png_write
 *          RenderEpisodesOptions RenderStats render_episodes render_stats_free
 */
#ifndef FLAME_RENDER_H
#define FLAME_RENDER_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include <mujoco/mujoco.h>

#include "flame/env.h"
#include "flame/rollout.h"

typedef enum { RENDER_GL_AUTO, RENDER_GL_EGL, RENDER_GL_OSMESA } RenderGl;

/* "auto" | "egl" | "osmesa" -> RenderGl; FLAME_EINPUT with a message otherwise. */
int render_gl_parse(const char *name, RenderGl *out);

typedef struct Renderer Renderer;

/* An offscreen context and scene for frames of width x height of env `spec` on model m (copied; m
   may be freed after). `d` is the data whose state the free cameras frame initially (as Gymnasium
   frames the state of its first render). FLAME_EINPUT with a message for a missing GL library (the
   Debian package named), an unknown camera or a bad size; FLAME_ERUNTIME when a context cannot be
   made. */
int render_create(const EnvSpec *spec, const mjModel *m, const mjData *d, int width, int height,
                  RenderGl gl, const char *camera, Renderer **out);
void render_free(Renderer *r);

/* Renders the state in d (computed by mj_forward or a step) into rgb (width x height x 3 bytes,
   top row first). */
void render_frame(Renderer *r, const mjData *d, uint8_t *rgb);

/* "egl (<GL renderer string>)" or "osmesa (...)". */
const char *render_gl_name(const Renderer *r);

/* Gymnasium's render_fps of an env: round(1 / (timestep x frame_skip)). */
int render_fps(const mjModel *m, int frame_skip);

/* Frames to a video file (by extension: .mp4 .mkv .mov .webm .avi .gif; ffmpeg through a pipe) or
   to a directory of PNG files frame_000000.png, ... Everything is written under a temporary name
   and renamed into place by frame_writer_close; an existing output is replaced only with force
   (a directory only when it holds nothing but frame_*.png). FLAME_EINPUT with a message when
   ffmpeg is not installed (naming the package), the output exists, or its place is not writable. */
typedef struct FrameWriter FrameWriter;
int frame_writer_open(const char *out, int width, int height, int fps, bool force, FrameWriter **w);
int frame_writer_add(FrameWriter *w, const uint8_t *rgb);
long frame_writer_count(const FrameWriter *w);
int frame_writer_close(FrameWriter *w);
void frame_writer_abort(FrameWriter *w);

/* One RGB image (width x height x 3, top row first) as a PNG file (8-bit RGB, zlib). */
int png_write(const char *path, const uint8_t *rgb, int width, int height);

/* ------------------------------------------------------------------ episodes */

typedef struct {
    RolloutPolicy policy; /* a checkpoint's agent (policy.h) or the random policy (rollout.h) */
    const EnvSpec *spec;
    const char *model_xml; /* NULL or "": embedded model */
    int episodes;          /* >= 1 */
    uint64_t seed;         /* of the env's reset noise (the policy's seed for the same episodes) */
    int width, height;
    RenderGl gl;
    const char *camera;
    const char *out; /* video file or frame directory (frame_writer_open) */
    bool force;
    volatile sig_atomic_t *stop; /* non-NULL: non-zero stops (FLAME_ERUNTIME, nothing written) */
} RenderEpisodesOptions;

typedef struct {
    int episodes;
    double *returns; /* (episodes) in order */
    int *lengths;    /* (episodes) */
    int64_t unstable; /* episodes MuJoCo could not integrate (drawn, not counted, replaced) */
    long frames;
    int fps;
    char gl[160];
} RenderStats;

/* Renders `episodes` episodes one after the other on one env of the rollout engine (rollout.h,
   RolloutEnvs.keep_final): the reset frame, then one frame per step, the last one showing the state
   the episode ended in. The env is addressed as `flame eval` and `flame rollout` address theirs
   (ROLLOUT_ENV_OFFSET, draw index = step from 0), so with the same policy and seed the episodes
   are those of `flame eval --envs 1` and `flame rollout --envs 1`. An episode MuJoCo could not
   integrate stays in the frames up to its failure and is replaced by the next one, as in those
   commands. Everything that can be refused (GL, ffmpeg, the output) is checked before the first
   frame. */
int render_episodes(const RenderEpisodesOptions *o, RenderStats *st);
void render_stats_free(RenderStats *st);

#endif
