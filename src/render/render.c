/*
 * render.c: offscreen frames of our envs with MuJoCo's renderer (see include/flame/render.h).
 *
 * The OpenGL context comes from EGL or OSMesa, both loaded with dlopen: the project builds and
 * runs without any GL package, and only rendering asks for one. The renderer keeps its own copy
 * of the model (lights, colours and offscreen size are set there) and renders the caller's mjData.
 */
#include "flame/render.h"

#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flame/check.h"

// ---------------------------------------------------------------------------- GL contexts

/* the few EGL / OSMesa declarations used (no GL headers are needed to build) */
typedef void *EglPtr;
typedef int32_t EglInt;
#define EGL_ALPHA_SIZE 0x3021
#define EGL_BLUE_SIZE 0x3022
#define EGL_GREEN_SIZE 0x3023
#define EGL_RED_SIZE 0x3024
#define EGL_DEPTH_SIZE 0x3025
#define EGL_STENCIL_SIZE 0x3026
#define EGL_SURFACE_TYPE 0x3033
#define EGL_NONE 0x3038
#define EGL_RENDERABLE_TYPE 0x3040
#define EGL_OPENGL_API 0x30A2
#define EGL_PBUFFER_BIT 0x0001
#define EGL_OPENGL_BIT 0x0008
#define EGL_PLATFORM_SURFACELESS_MESA 0x31DD
#define OSMESA_RGBA 0x1908
#define GL_UNSIGNED_BYTE 0x1401
#define GL_VENDOR 0x1F00
#define GL_RENDERER 0x1F01

typedef struct {
    RenderGl kind;
    void *lib;
    /* EGL */
    EglPtr display, context;
    EglPtr (*egl_get_proc)(const char *);
    unsigned (*egl_destroy_context)(EglPtr, EglPtr);
    unsigned (*egl_make_current)(EglPtr, EglPtr, EglPtr, EglPtr);
    /* OSMesa */
    EglPtr osmesa;
    void (*osmesa_destroy)(EglPtr);
    unsigned char *osmesa_buf;
} GlContext;

#define RENDER_EGL_PACKAGES "libegl1 libegl-mesa0 libgl1-mesa-dri"
#define RENDER_OSMESA_PACKAGE "libosmesa6"

static void *gl_sym(void *lib, const char *name, int *missing) {
    void *f = dlsym(lib, name);
    *missing += f == NULL;
    return f;
}

static int egl_open(GlContext *g, char *why, size_t n) {
    const char *name = getenv("FLAME_LIBEGL");
    name = name && name[0] ? name : "libEGL.so.1";
    g->lib = dlopen(name, RTLD_NOW | RTLD_GLOBAL);
    if (!g->lib) {
        snprintf(why, n, "cannot load %s", name);
        return FLAME_EINPUT;
    }
    int missing = 0;
    EglPtr (*get_proc)(const char *) = gl_sym(g->lib, "eglGetProcAddress", &missing);
    g->egl_get_proc = get_proc;
    EglPtr (*get_display)(EglPtr) = gl_sym(g->lib, "eglGetDisplay", &missing);
    unsigned (*init)(EglPtr, EglInt *, EglInt *) = gl_sym(g->lib, "eglInitialize", &missing);
    unsigned (*choose)(EglPtr, const EglInt *, EglPtr *, EglInt, EglInt *) =
        gl_sym(g->lib, "eglChooseConfig", &missing);
    unsigned (*bind_api)(unsigned) = gl_sym(g->lib, "eglBindAPI", &missing);
    EglPtr (*create)(EglPtr, EglPtr, EglPtr, const EglInt *) =
        gl_sym(g->lib, "eglCreateContext", &missing);
    g->egl_make_current = gl_sym(g->lib, "eglMakeCurrent", &missing);
    g->egl_destroy_context = gl_sym(g->lib, "eglDestroyContext", &missing);
    if (missing) {
        snprintf(why, n, "%s lacks EGL 1.4 functions", name);
        return FLAME_EINPUT;
    }
    /* Mesa's surfaceless platform (software or GPU, no display server), else the default display
       (a GPU driver's EGL, headless) */
    EglPtr (*get_platform_display)(unsigned, EglPtr, const EglInt *) =
        (EglPtr(*)(unsigned, EglPtr, const EglInt *))get_proc("eglGetPlatformDisplayEXT");
    EglInt major = 0, minor = 0;
    g->display = get_platform_display
                     ? get_platform_display(EGL_PLATFORM_SURFACELESS_MESA, NULL, NULL)
                     : NULL;
    if (!g->display || !init(g->display, &major, &minor)) {
        g->display = get_display(NULL);
        if (!g->display || !init(g->display, &major, &minor)) {
            g->display = NULL;
            snprintf(why, n, "EGL has no usable display (no GPU driver or Mesa EGL)");
            return FLAME_EINPUT;
        }
    }
    const EglInt attrs[] = {EGL_RED_SIZE,
                            8,
                            EGL_GREEN_SIZE,
                            8,
                            EGL_BLUE_SIZE,
                            8,
                            EGL_ALPHA_SIZE,
                            8,
                            EGL_DEPTH_SIZE,
                            24,
                            EGL_STENCIL_SIZE,
                            8,
                            EGL_SURFACE_TYPE,
                            EGL_PBUFFER_BIT,
                            EGL_RENDERABLE_TYPE,
                            EGL_OPENGL_BIT,
                            EGL_NONE};
    EglPtr config = NULL;
    EglInt nconfig = 0;
    if (!choose(g->display, attrs, &config, 1, &nconfig) || nconfig < 1 ||
        !bind_api(EGL_OPENGL_API) || !(g->context = create(g->display, config, NULL, NULL)) ||
        !g->egl_make_current(g->display, NULL, NULL, g->context)) {
        snprintf(why, n, "EGL %d.%d cannot make a desktop OpenGL context", major, minor);
        return FLAME_EINPUT;
    }
    g->kind = RENDER_GL_EGL;
    return FLAME_OK;
}

static int osmesa_open(GlContext *g, int width, int height, char *why, size_t n) {
    const char *name = getenv("FLAME_LIBOSMESA");
    name = name && name[0] ? name : "libOSMesa.so.8";
    g->lib = dlopen(name, RTLD_NOW | RTLD_GLOBAL);
    if (!g->lib) {
        snprintf(why, n, "cannot load %s", name);
        return FLAME_EINPUT;
    }
    int missing = 0;
    EglPtr (*create)(unsigned, int, int, int, EglPtr) =
        gl_sym(g->lib, "OSMesaCreateContextExt", &missing);
    unsigned char (*make_current)(EglPtr, void *, unsigned, int, int) =
        gl_sym(g->lib, "OSMesaMakeCurrent", &missing);
    g->osmesa_destroy = gl_sym(g->lib, "OSMesaDestroyContext", &missing);
    if (missing) {
        snprintf(why, n, "%s lacks the OSMesa functions", name);
        return FLAME_EINPUT;
    }
    g->osmesa_buf = flame_malloc((size_t)width * (size_t)height * 4);
    if (!(g->osmesa = create(OSMESA_RGBA, 24, 8, 0, NULL)) ||
        !make_current(g->osmesa, g->osmesa_buf, GL_UNSIGNED_BYTE, width, height)) {
        snprintf(why, n, "OSMesa cannot make a context");
        return FLAME_EINPUT;
    }
    g->kind = RENDER_GL_OSMESA;
    return FLAME_OK;
}

static void gl_close(GlContext *g) {
    if (g->context) {
        g->egl_make_current(g->display, NULL, NULL, NULL);
        g->egl_destroy_context(g->display, g->context);
    }
    /* no eglTerminate: it may unload the driver while MuJoCo keeps GL function pointers into
       it, and a later context in this process reuses the initialised display */
    if (g->osmesa) {
        g->osmesa_destroy(g->osmesa);
    }
    flame_free(g->osmesa_buf);
    /* the library stays loaded: MuJoCo keeps the GL function pointers it looked up */
    memset(g, 0, sizeof *g);
}

static int gl_open(GlContext *g, RenderGl kind, int width, int height) {
    memset(g, 0, sizeof *g);
    char egl_why[256] = "", osmesa_why[256] = "";
    if (kind != RENDER_GL_OSMESA) {
        if (egl_open(g, egl_why, sizeof egl_why) == FLAME_OK) {
            return FLAME_OK;
        }
        void *lib = g->lib;
        gl_close(g);
        if (lib && kind == RENDER_GL_AUTO) {
            dlclose(lib); /* MuJoCo must not find EGL's functions for an OSMesa context */
        }
        if (kind == RENDER_GL_EGL) {
            return flame_errorf(FLAME_EINPUT,
                                "no OpenGL through EGL for offscreen rendering: %s; install a GPU "
                                "driver's EGL or Mesa's (apt-get install " RENDER_EGL_PACKAGES
                                "), or use --gl osmesa",
                                egl_why);
        }
    }
    if (osmesa_open(g, width, height, osmesa_why, sizeof osmesa_why) == FLAME_OK) {
        return FLAME_OK;
    }
    gl_close(g);
    if (kind == RENDER_GL_OSMESA) {
        return flame_errorf(FLAME_EINPUT,
                            "no OpenGL through OSMesa for offscreen rendering: %s; install it "
                            "(apt-get install " RENDER_OSMESA_PACKAGE ")",
                            osmesa_why);
    }
    return flame_errorf(FLAME_EINPUT,
                        "no OpenGL for offscreen rendering (EGL: %s; OSMesa: %s); install "
                        "OSMesa (apt-get install " RENDER_OSMESA_PACKAGE
                        ") or EGL (apt-get install " RENDER_EGL_PACKAGES ")",
                        egl_why, osmesa_why);
}

int render_gl_parse(const char *name, RenderGl *out) {
    const char *names[3] = {"auto", "egl", "osmesa"};
    for (int k = 0; k < 3; k++) {
        if (name && !strcmp(name, names[k])) {
            *out = (RenderGl)k;
            return FLAME_OK;
        }
    }
    return flame_errorf(FLAME_EINPUT, "unknown --gl '%s'; use auto, egl or osmesa",
                        name ? name : "");
}

// ---------------------------------------------------------------------------- cameras

/* Gymnasium's default view of an env family (gymnasium/envs/mujoco: the "track" camera of the
   model file where there is one, else DEFAULT_CAMERA_CONFIG on the free camera) */
typedef struct {
    const char *family;
    bool track;
    double pos[3];   /* track: position in the torso's frame */
    double yaxis[3]; /* track: the camera's y axis in the torso's frame (x axis is (1, 0, 0)) */
    double distance; /* free: 0 keeps the model's extent */
    bool has_lookat;
    double lookat[3];
} CameraDefault;

static const CameraDefault camera_defaults[] = {
    {"HalfCheetah", true, {0, -3, 0.3}, {0, 0, 1}, 0, false, {0}},
    {"Ant", true, {0, -3, 0.3}, {0, 0, 1}, 0, false, {0}},
    {"Hopper", true, {0, -3, -0.25}, {0, 0, 1}, 0, false, {0}},
    {"Walker2d", true, {0, -3, -0.25}, {0, 0, 1}, 0, false, {0}},
    {"Humanoid", true, {0, -4, 0}, {0, 0, 1}, 0, false, {0}},
    {"Swimmer", true, {0, -3, 3}, {0, 1, 1}, 0, false, {0}},
    {"InvertedPendulum", false, {0}, {0}, 2.04, false, {0}},
    {"InvertedDoublePendulum", false, {0}, {0}, 4.1225, true, {0, 0, 0.12250000000000005}},
    {"Reacher", false, {0}, {0}, 0, false, {0}},
    {"Pusher", false, {0}, {0}, 4.0, false, {0}},
};

struct Renderer {
    GlContext gl;
    mjModel *m;
    mjvScene scn;
    mjvCamera cam;
    mjvOption opt;
    mjrContext con;
    int width, height;
    bool track;
    int track_body;
    mjtNum track_offset[3]; /* camera position - torso subtree com, at qpos0 */
    char gl_name[160];
    uint8_t *flip;
};

static double median(double *v, int n) {
    for (int i = 1; i < n; i++) { /* insertion sort: a few dozen geoms */
        double x = v[i];
        int j = i - 1;
        for (; j >= 0 && v[j] > x; j--) {
            v[j + 1] = v[j];
        }
        v[j + 1] = x;
    }
    return n == 0 ? 0 : (n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]));
}

/* the track camera as MuJoCo's trackcom mode places it: a fixed offset from the subtree com of
   its body, the orientation it has at qpos0; expressed as a free camera looking the same way */
static void track_setup(Renderer *r, const CameraDefault *c) {
    mjData *d0 = mj_makeData(r->m);
    mj_forward(r->m, d0);
    int b = r->track_body;
    const mjtNum *R = d0->xmat + 9 * b;
    mjtNum y[3] = {c->yaxis[0], c->yaxis[1], c->yaxis[2]}, x[3] = {1, 0, 0}, z[3], pos[3];
    mju_normalize3(y);
    mju_cross(z, x, y);
    mjtNum fwd_local[3] = {-z[0], -z[1], -z[2]}, fwd[3];
    mju_rotVecMat(fwd, fwd_local, R);
    mju_rotVecMat(pos, c->pos, R);
    mju_addTo3(pos, d0->xpos + 3 * b);
    mju_sub3(r->track_offset, pos, d0->subtree_com + 3 * b);
    r->cam.type = mjCAMERA_FREE;
    r->cam.distance = 3;
    r->cam.azimuth = atan2(fwd[1], fwd[0]) * 180 / mjPI;
    r->cam.elevation = asin(fmax(-1, fmin(1, fwd[2]))) * 180 / mjPI;
    mj_deleteData(d0);
}

static void track_update(Renderer *r, const mjData *d) {
    double az = r->cam.azimuth * mjPI / 180, el = r->cam.elevation * mjPI / 180;
    const mjtNum fwd[3] = {cos(el) * cos(az), cos(el) * sin(az), sin(el)};
    for (int k = 0; k < 3; k++) {
        mjtNum pos = d->subtree_com[3 * r->track_body + k] + r->track_offset[k];
        r->cam.lookat[k] = pos + r->cam.distance * fwd[k];
    }
}

static int camera_setup(Renderer *r, const EnvSpec *spec, const mjData *d, const char *camera) {
    mjv_defaultCamera(&r->cam);
    if (camera && !strcmp(camera, "free")) {
        mjv_defaultFreeCamera(r->m, &r->cam);
        return FLAME_OK;
    }
    if (camera && camera[0] && strcmp(camera, "track") != 0) {
        return flame_errorf(FLAME_EINPUT,
                            "unknown --camera '%s'; use track (the default for %s "
                            "follows Gymnasium) or free",
                            camera, spec->id);
    }
    const CameraDefault *c = NULL;
    for (size_t i = 0; i < sizeof camera_defaults / sizeof *camera_defaults; i++) {
        if (!strcmp(camera_defaults[i].family, spec->family)) {
            c = &camera_defaults[i];
        }
    }
    if (!c) {
        mjv_defaultFreeCamera(r->m, &r->cam);
        return FLAME_OK;
    }
    if (camera && !strcmp(camera, "track") && !c->track) {
        return flame_errorf(FLAME_EINPUT,
                            "%s has no track camera in Gymnasium; use --camera free "
                            "or leave --camera out",
                            spec->id);
    }
    if (c->track) {
        r->track = true;
        r->track_body = mj_name2id(r->m, mjOBJ_BODY, "torso");
        if (r->track_body < 0) {
            return flame_errorf(FLAME_EINPUT,
                                "%s: the model has no body 'torso' to track; use "
                                "--camera free",
                                spec->id);
        }
        track_setup(r, c);
        return FLAME_OK;
    }
    /* Gymnasium's free camera: lookat = median geom position of the first rendered state,
       distance = the model's extent, then DEFAULT_CAMERA_CONFIG */
    double *v = flame_malloc((size_t)(r->m->ngeom > 0 ? r->m->ngeom : 1) * sizeof(double));
    for (int k = 0; k < 3; k++) {
        for (int g = 0; g < r->m->ngeom; g++) {
            v[g] = d->geom_xpos[3 * g + k];
        }
        r->cam.lookat[k] = median(v, r->m->ngeom);
    }
    flame_free(v);
    r->cam.type = mjCAMERA_FREE;
    r->cam.distance = c->distance > 0 ? c->distance : r->m->stat.extent;
    if (c->has_lookat) {
        for (int k = 0; k < 3; k++) {
            r->cam.lookat[k] = c->lookat[k];
        }
    }
    return FLAME_OK;
}

// ---------------------------------------------------------------------------- looks

static const float FLOOR_RGBA[4] = {0.22f, 0.27f, 0.33f, 1};
static const float GRID_RGBA[4] = {0.42f, 0.47f, 0.53f, 1};
static const float BODY_RGBA[4] = {0.85f, 0.6f, 0.4f, 1};

/* colours in the renderer's model copy: planes are floors, geoms left at MuJoCo's default grey
   become bodies */
static void looks_setup(mjModel *m) {
    for (int g = 0; g < m->ngeom; g++) {
        float *c = m->geom_rgba + 4 * g;
        if (m->geom_type[g] == mjGEOM_PLANE) {
            memcpy(c, FLOOR_RGBA, sizeof FLOOR_RGBA);
        } else if (m->geom_matid[g] < 0 && c[0] == 0.5f && c[1] == 0.5f && c[2] == 0.5f) {
            memcpy(c, BODY_RGBA, sizeof BODY_RGBA);
        }
    }
    m->vis.headlight.ambient[0] = m->vis.headlight.ambient[1] = m->vis.headlight.ambient[2] = 0.25f;
    m->vis.headlight.diffuse[0] = m->vis.headlight.diffuse[1] = m->vis.headlight.diffuse[2] = 0.45f;
    m->vis.headlight.specular[0] = m->vis.headlight.specular[1] = m->vis.headlight.specular[2] =
        0.1f;
    m->vis.quality.shadowsize = 2048;
}

/* after mjv_updateScene: 1 m grid lines on large floors around the view, a light from above */
static void looks_decorate(Renderer *r, const mjData *d) {
    mjvScene *s = &r->scn;
    const mjModel *m = r->m;
    for (int g = 0; g < m->ngeom; g++) {
        const mjtNum *R = d->geom_xmat + 9 * g;
        if (m->geom_type[g] != mjGEOM_PLANE || m->geom_size[3 * g] < 2 || R[8] < 0.999) {
            continue;
        }
        const mjtNum *c = d->geom_xpos + 3 * g;
        const double half = fmin(15.0, m->geom_size[3 * g]);
        for (int axis = 0; axis < 2; axis++) {
            double base = floor(r->cam.lookat[axis]);
            for (int k = -(int)half; k <= (int)half && s->ngeom < s->maxgeom; k++) {
                double at = base + k;
                if (fabs(at - c[axis]) > m->geom_size[3 * g + axis]) {
                    continue;
                }
                mjtNum size[3] = {axis == 0 ? 0.008 : half, axis == 0 ? half : 0.008, 0.0005};
                mjtNum pos[3] = {axis == 0 ? at : r->cam.lookat[0],
                                 axis == 0 ? r->cam.lookat[1] : at, c[2] + 0.001};
                mjv_initGeom(&s->geoms[s->ngeom], mjGEOM_BOX, size, pos, NULL, GRID_RGBA);
                s->geoms[s->ngeom].category = mjCAT_DECOR;
                s->ngeom++;
            }
        }
    }
    if (s->nlight < mjMAXLIGHT) {
        mjvLight *l = &s->lights[s->nlight++];
        memset(l, 0, sizeof *l);
        l->pos[0] = (float)r->cam.lookat[0];
        l->pos[1] = (float)r->cam.lookat[1];
        l->pos[2] = (float)r->cam.lookat[2] + 6;
        l->dir[2] = -1;
        l->attenuation[0] = 1;
        l->cutoff = 180;
        l->directional = 1;
        l->castshadow = 1;
        for (int k = 0; k < 3; k++) {
            l->diffuse[k] = 0.6f;
            l->specular[k] = 0.2f;
        }
    }
}

// ---------------------------------------------------------------------------- renderer

int render_create(const EnvSpec *spec, const mjModel *m, const mjData *d, int width, int height,
                  RenderGl gl, const char *camera, Renderer **out) {
    *out = NULL;
    if (width < 16 || height < 16 || width > 8192 || height > 8192) {
        return flame_errorf(FLAME_EINPUT,
                            "frame size %d x %d: --width and --height must be in "
                            "[16, 8192]",
                            width, height);
    }
    Renderer *r = flame_calloc(1, sizeof *r);
    r->width = width;
    r->height = height;
    r->m = mj_copyModel(NULL, m);
    r->m->vis.global.offwidth = width;
    r->m->vis.global.offheight = height;
    looks_setup(r->m);
    int rc = camera_setup(r, spec, d, camera);
    if (rc == FLAME_OK) {
        rc = gl_open(&r->gl, gl, width, height);
    }
    if (rc != FLAME_OK) {
        mj_deleteModel(r->m);
        flame_free(r);
        return rc;
    }
    mjv_defaultOption(&r->opt);
    mjv_defaultScene(&r->scn);
    mjr_defaultContext(&r->con);
    mjv_makeScene(r->m, &r->scn, r->m->ngeom + 200);
    mjr_makeContext(r->m, &r->con, mjFONTSCALE_100);
    mjr_setBuffer(mjFB_OFFSCREEN, &r->con);
    if (r->con.currentBuffer != mjFB_OFFSCREEN || r->con.offWidth < width ||
        r->con.offHeight < height) {
        render_free(r);
        return flame_errorf(FLAME_ERUNTIME, "the OpenGL context has no %d x %d offscreen buffer",
                            width, height);
    }
    void *sym = dlsym(r->gl.lib, "glGetString");
    if (!sym && r->gl.egl_get_proc) {
        sym = r->gl.egl_get_proc("glGetString");
    }
    const unsigned char *(*get_string)(unsigned) = (const unsigned char *(*)(unsigned))sym;
    const unsigned char *renderer = get_string ? get_string(GL_RENDERER) : NULL;
    snprintf(r->gl_name, sizeof r->gl_name, "%s (%s)",
             r->gl.kind == RENDER_GL_EGL ? "egl" : "osmesa",
             renderer ? (const char *)renderer : "OpenGL");
    r->flip = flame_malloc((size_t)width * 3);
    *out = r;
    return FLAME_OK;
}

void render_free(Renderer *r) {
    if (!r) {
        return;
    }
    mjr_freeContext(&r->con);
    mjv_freeScene(&r->scn);
    gl_close(&r->gl);
    mj_deleteModel(r->m);
    flame_free(r->flip);
    flame_free(r);
}

void render_frame(Renderer *r, const mjData *d, uint8_t *rgb) {
    if (r->track) {
        track_update(r, d);
    }
    mjv_updateScene(r->m, (mjData *)d, &r->opt, NULL, &r->cam, mjCAT_ALL, &r->scn);
    looks_decorate(r, d);
    mjrRect viewport = {0, 0, r->width, r->height};
    mjr_render(viewport, &r->scn, &r->con);
    mjr_readPixels(rgb, NULL, viewport, &r->con);
    /* OpenGL's rows start at the bottom */
    const size_t row = (size_t)r->width * 3;
    for (int y = 0; y < r->height / 2; y++) {
        uint8_t *a = rgb + (size_t)y * row, *b = rgb + (size_t)(r->height - 1 - y) * row;
        memcpy(r->flip, a, row);
        memcpy(a, b, row);
        memcpy(b, r->flip, row);
    }
}

const char *render_gl_name(const Renderer *r) {
    return r->gl_name;
}

int render_fps(const mjModel *m, int frame_skip) {
    double dt = m->opt.timestep * frame_skip;
    return dt > 0 ? (int)lround(1.0 / dt) : 30;
}
