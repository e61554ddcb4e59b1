/*
 * env.c: the Gymnasium MuJoCo environments (v4 and v5) on MuJoCo's C library.
 *
 * What is here: the table of registered ids, model loading (embedded MJCF through MuJoCo's virtual
 * file system, or a user file) with validation, and per-family observation, reward, termination and
 * reset noise. What is not: time limits, auto-reset and threads (envpool.c).
 *
 * Invariants: the mjModel is never written; quantities Gymnasium reads from kinematics (xpos,
 * xipos, site_xpos, cinert, cvel, cfrc_ext, qfrc_constraint, qfrc_actuator) are read straight from
 * mjData after the step, never recomputed (they lag qpos by one substep, as in Gymnasium).
 */
#include "flame/env.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "flame/check.h"
#include "flame/fsutil.h"
#include "flame/rng.h"

/* the MJCF files under src/env/models, embedded by cmake/embed_files.cmake */
typedef struct {
    const char *name;
    const unsigned char *data;
    size_t size;
} FlameEmbeddedFile;
extern const FlameEmbeddedFile flame_embedded_models[];

// ------------------------------------------------------------------------------------ families

typedef enum {
    FAM_HALF_CHEETAH,
    FAM_HOPPER,
    FAM_WALKER2D,
    FAM_ANT,
    FAM_HUMANOID,
    FAM_SWIMMER,
    FAM_INVERTED_PENDULUM,
    FAM_INVERTED_DOUBLE_PENDULUM,
    FAM_REACHER,
    FAM_PUSHER,
    FAM_COUNT
} EnvFamilyId;

/* model facts a loaded model must have (Gymnasium's model files) and the step's frame skip */
typedef struct {
    const char *name;
    int frame_skip;
    int nq, nv, nu, nbody;
    const char *body_a, *body_b, *body_c; /* named bodies the env reads (NULL: none) */
    const char *site;                     /* named site the env reads (NULL: none) */
} EnvFamily;

static const EnvFamily env_families[FAM_COUNT] = {
    [FAM_HALF_CHEETAH] = {"HalfCheetah", 5, 9, 9, 6, 8, NULL, NULL, NULL, NULL},
    [FAM_HOPPER] = {"Hopper", 4, 6, 6, 3, 5, NULL, NULL, NULL, NULL},
    [FAM_WALKER2D] = {"Walker2d", 4, 9, 9, 6, 8, NULL, NULL, NULL, NULL},
    [FAM_ANT] = {"Ant", 5, 15, 14, 8, 14, "torso", NULL, NULL, NULL},
    [FAM_HUMANOID] = {"Humanoid", 5, 24, 23, 17, 14, NULL, NULL, NULL, NULL},
    [FAM_SWIMMER] = {"Swimmer", 4, 5, 5, 2, 4, NULL, NULL, NULL, NULL},
    [FAM_INVERTED_PENDULUM] = {"InvertedPendulum", 2, 2, 2, 1, 3, NULL, NULL, NULL, NULL},
    [FAM_INVERTED_DOUBLE_PENDULUM] = {"InvertedDoublePendulum", 5, 3, 3, 1, 4, NULL, NULL, NULL,
                                      "tip"},
    [FAM_REACHER] = {"Reacher", 2, 4, 4, 2, 5, "fingertip", "target", NULL, NULL},
    [FAM_PUSHER] = {"Pusher", 5, 11, 11, 7, 13, "tips_arm", "object", "goal", NULL},
};

static const EnvSpec env_specs[] = {
    {"HalfCheetah-v4", "HalfCheetah", 4, "half_cheetah.xml", 17, 6, 1000, 4800.0},
    {"HalfCheetah-v5", "HalfCheetah", 5, "half_cheetah.xml", 17, 6, 1000, 4800.0},
    {"Hopper-v4", "Hopper", 4, "hopper.xml", 11, 3, 1000, 3800.0},
    {"Hopper-v5", "Hopper", 5, "hopper.xml", 11, 3, 1000, 3800.0},
    {"Walker2d-v4", "Walker2d", 4, "walker2d_v4.xml", 17, 6, 1000, NAN},
    {"Walker2d-v5", "Walker2d", 5, "walker2d_v5.xml", 17, 6, 1000, NAN},
    {"Ant-v4", "Ant", 4, "ant.xml", 27, 8, 1000, 6000.0},
    {"Ant-v5", "Ant", 5, "ant.xml", 105, 8, 1000, 6000.0},
    {"Humanoid-v4", "Humanoid", 4, "humanoid.xml", 376, 17, 1000, NAN},
    {"Humanoid-v5", "Humanoid", 5, "humanoid.xml", 348, 17, 1000, NAN},
    {"Swimmer-v4", "Swimmer", 4, "swimmer.xml", 8, 2, 1000, 360.0},
    {"Swimmer-v5", "Swimmer", 5, "swimmer.xml", 8, 2, 1000, 360.0},
    {"InvertedPendulum-v4", "InvertedPendulum", 4, "inverted_pendulum.xml", 4, 1, 1000, 950.0},
    {"InvertedPendulum-v5", "InvertedPendulum", 5, "inverted_pendulum.xml", 4, 1, 1000, 950.0},
    {"InvertedDoublePendulum-v4", "InvertedDoublePendulum", 4, "inverted_double_pendulum.xml", 11,
     1, 1000, 9100.0},
    {"InvertedDoublePendulum-v5", "InvertedDoublePendulum", 5, "inverted_double_pendulum.xml", 9, 1,
     1000, 9100.0},
    {"Reacher-v4", "Reacher", 4, "reacher.xml", 11, 2, 50, -3.75},
    {"Reacher-v5", "Reacher", 5, "reacher.xml", 10, 2, 50, -3.75},
    {"Pusher-v4", "Pusher", 4, "pusher_v4.xml", 23, 7, 100, 0.0},
    {"Pusher-v5", "Pusher", 5, "pusher_v5.xml", 23, 7, 100, 0.0},
};
#define ENV_SPEC_COUNT ((int)(sizeof(env_specs) / sizeof(env_specs[0])))

int env_spec_count(void) {
    return ENV_SPEC_COUNT;
}

const EnvSpec *env_spec_at(int i) {
    return (i >= 0 && i < ENV_SPEC_COUNT) ? &env_specs[i] : NULL;
}

const EnvSpec *env_spec_find(const char *id) {
    if (!id) {
        return NULL;
    }
    for (int i = 0; i < ENV_SPEC_COUNT; i++) {
        if (strcmp(env_specs[i].id, id) == 0) {
            return &env_specs[i];
        }
    }
    return NULL;
}

static int env_family_of(const EnvSpec *spec) {
    for (int f = 0; f < FAM_COUNT; f++) {
        if (strcmp(env_families[f].name, spec->family) == 0) {
            return f;
        }
    }
    return -1;
}

// ------------------------------------------------------------------------- MuJoCo hooks

#define ENV_WARNINGS_PRINTED 3

static atomic_uint_fast64_t env_warning_count;
/* MuJoCo's XML loader is not reentrant */
static pthread_mutex_t env_load_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t env_hooks_once = PTHREAD_ONCE_INIT;

/* instability is detected from mjData's warning counters; the first few messages are printed so
   that other warnings (e.g. a full contact buffer) do not pass unnoticed, the rest only counted */
static void env_on_mujoco_warning(const char *msg) {
    uint64_t k = atomic_fetch_add(&env_warning_count, 1);
    if (k < ENV_WARNINGS_PRINTED) {
        fprintf(stderr, "flame: MuJoCo warning: %s%s\n", msg,
                k + 1 == ENV_WARNINGS_PRINTED ? " (further MuJoCo warnings are only counted)" : "");
    }
}

static void env_on_mujoco_error(const char *msg) {
    flame_fatal("MuJoCo error: %s", msg);
}

static void env_install_hooks_once(void) {
    if (!mju_user_warning) {
        mju_user_warning = env_on_mujoco_warning;
    }
    if (!mju_user_error) {
        mju_user_error = env_on_mujoco_error;
    }
}

void env_install_mujoco_handlers(void) {
    pthread_once(&env_hooks_once, env_install_hooks_once);
}

uint64_t env_mujoco_warning_count(void) {
    return (uint64_t)atomic_load(&env_warning_count);
}

// ------------------------------------------------------------------------------- loading

static void env_one_line(char *s) {
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' ' || s[n - 1] == '\r')) {
        s[--n] = 0;
    }
    for (char *p = s; *p; p++) {
        if (*p == '\n' || *p == '\r' || *p == '\t') {
            *p = ' ';
        }
    }
}

static mjModel *env_load_embedded(const char *name, char *err, int errsz) {
    const FlameEmbeddedFile *f = NULL;
    for (const FlameEmbeddedFile *p = flame_embedded_models; p->name; p++) {
        if (strcmp(p->name, name) == 0) {
            f = p;
            break;
        }
    }
    if (!f) {
        snprintf(err, (size_t)errsz, "the embedded model '%s' is missing from this build", name);
        return NULL;
    }
    mjVFS *vfs = flame_calloc(1, sizeof(mjVFS));
    mj_defaultVFS(vfs);
    mjModel *m = NULL;
    /* the parser gets a NUL-terminated copy */
    if (mj_makeEmptyFileVFS(vfs, name, (int)f->size + 1) != 0) {
        snprintf(err, (size_t)errsz, "cannot place '%s' in MuJoCo's virtual file system", name);
    } else {
        int idx = mj_findFileVFS(vfs, name);
        memcpy(vfs->filedata[idx], f->data, f->size);
        ((char *)vfs->filedata[idx])[f->size] = 0;
        m = mj_loadXML(name, vfs, err, errsz);
    }
    mj_deleteVFS(vfs);
    flame_free(vfs);
    return m;
}

static void env_valid_ids(char *buf, size_t n) {
    size_t used = 0;
    buf[0] = 0;
    for (int i = 0; i < ENV_SPEC_COUNT && used < n; i++) {
        int w = snprintf(buf + used, n - used, "%s%s", i ? ", " : "", env_specs[i].id);
        if (w < 0) {
            break;
        }
        used += (size_t)w;
    }
}

int env_model_load(const EnvSpec *spec, const char *model_xml, mjModel **out) {
    *out = NULL;
    if (!spec) {
        char ids[1024];
        env_valid_ids(ids, sizeof ids);
        return flame_errorf(FLAME_EINPUT, "no environment given; valid ids: %s", ids);
    }
    int fam = env_family_of(spec);
    if (fam < 0) {
        return flame_errorf(FLAME_EINPUT, "%s: unknown environment family '%s'", spec->id,
                            spec->family);
    }
    env_install_mujoco_handlers();
    char err[1024] = "";
    const int embedded = !model_xml || !model_xml[0];
    const char *what = embedded ? spec->model_name : model_xml;
    mjModel *m = NULL;
    if (!embedded && access(model_xml, R_OK) != 0) {
        return flame_errorf(FLAME_EINPUT, "%s: cannot read model file '%s': %s", spec->id,
                            model_xml, strerror(errno));
    }
    if (!embedded && fs_check_regular(model_xml, "model file (env.model_xml)") != FLAME_OK) {
        return FLAME_EINPUT; /* a FIFO or a device would block the XML parser */
    }
    pthread_mutex_lock(&env_load_mutex);
    if (embedded) {
        m = env_load_embedded(spec->model_name, err, (int)sizeof err);
    } else {
        m = mj_loadXML(model_xml, NULL, err, (int)sizeof err);
    }
    pthread_mutex_unlock(&env_load_mutex);
    if (!m) {
        env_one_line(err);
        return flame_errorf(FLAME_EINPUT, "%s: cannot load model '%s': %s", spec->id, what,
                            err[0] ? err : "MuJoCo gave no reason");
    }

    /* the env code indexes qpos, qvel, bodies and actuators directly: check the sizes */
    const EnvFamily *F = &env_families[fam];
    const char *bad = NULL;
    int got = 0, want = 0;
    if (m->nq != F->nq) {
        bad = "nq", got = m->nq, want = F->nq;
    } else if (m->nv != F->nv) {
        bad = "nv", got = m->nv, want = F->nv;
    } else if (m->nu != F->nu || m->nu != spec->act_dim) {
        bad = "nu (actuators)", got = m->nu, want = F->nu;
    } else if (m->nbody != F->nbody) {
        bad = "nbody", got = m->nbody, want = F->nbody;
    }
    if (bad) {
        mj_deleteModel(m);
        return flame_errorf(FLAME_EINPUT,
                            "%s: model '%s' does not fit this env: %s = %d, expected %d", spec->id,
                            what, bad, got, want);
    }
    const char *bodies[3] = {F->body_a, F->body_b, F->body_c};
    for (int k = 0; k < 3; k++) {
        if (bodies[k] && mj_name2id(m, mjOBJ_BODY, bodies[k]) < 0) {
            mj_deleteModel(m);
            return flame_errorf(FLAME_EINPUT, "%s: model '%s' has no body named '%s'", spec->id,
                                what, bodies[k]);
        }
    }
    if (F->site && mj_name2id(m, mjOBJ_SITE, F->site) < 0) {
        mj_deleteModel(m);
        return flame_errorf(FLAME_EINPUT, "%s: model '%s' has no site named '%s'", spec->id, what,
                            F->site);
    }
    for (int a = 0; a < m->nu; a++) {
        if (!m->actuator_ctrllimited[a]) {
            mj_deleteModel(m);
            return flame_errorf(FLAME_EINPUT,
                                "%s: model '%s': actuator %d has no ctrlrange (the action box is "
                                "built from ctrlrange)",
                                spec->id, what, a);
        }
    }
    *out = m;
    return FLAME_OK;
}

// ----------------------------------------------------------------------------------- Env

struct Env {
    const EnvSpec *spec;
    const mjModel *m;
    mjData *d;
    int fam;
    int frame_skip;
    double dt; /* timestep * frame_skip */
    int body_a, body_b, body_c, site;
    double mass_total;     /* Humanoid: sum of body masses */
    double *ctrl;          /* (nu) scratch for env_step */
    double *center, *half; /* (nu) ctrlrange center and half width */
};

Env *env_create(const EnvSpec *spec, const mjModel *m) {
    FLAME_CHECK(spec && m, "env_create needs a spec and a model");
    int fam = env_family_of(spec);
    FLAME_CHECK(fam >= 0, "unknown family %s", spec->family);
    env_install_mujoco_handlers();
    Env *e = flame_calloc(1, sizeof(Env));
    const EnvFamily *F = &env_families[fam];
    e->spec = spec;
    e->m = m;
    e->fam = fam;
    e->frame_skip = F->frame_skip;
    e->dt = m->opt.timestep * F->frame_skip;
    e->d = mj_makeData(m);
    FLAME_CHECK(e->d, "mj_makeData failed for %s", spec->id);
    e->body_a = F->body_a ? mj_name2id(m, mjOBJ_BODY, F->body_a) : -1;
    e->body_b = F->body_b ? mj_name2id(m, mjOBJ_BODY, F->body_b) : -1;
    e->body_c = F->body_c ? mj_name2id(m, mjOBJ_BODY, F->body_c) : -1;
    e->site = F->site ? mj_name2id(m, mjOBJ_SITE, F->site) : -1;
    e->mass_total = 0;
    for (int b = 0; b < m->nbody; b++) {
        e->mass_total += m->body_mass[b];
    }
    e->ctrl = flame_calloc((size_t)m->nu * 3, sizeof(double));
    e->center = e->ctrl + m->nu;
    e->half = e->center + m->nu;
    for (int a = 0; a < m->nu; a++) {
        double lo = m->actuator_ctrlrange[2 * a], hi = m->actuator_ctrlrange[2 * a + 1];
        e->center[a] = 0.5 * (lo + hi);
        e->half[a] = 0.5 * (hi - lo);
    }
    mj_forward(m, e->d);
    return e;
}

void env_free(Env *e) {
    if (!e) {
        return;
    }
    mj_deleteData(e->d);
    flame_free(e->ctrl);
    flame_free(e);
}

int env_nq(const Env *e) {
    return e->m->nq;
}

int env_nv(const Env *e) {
    return e->m->nv;
}

const EnvSpec *env_spec(const Env *e) {
    return e->spec;
}

const mjModel *env_model(const Env *e) {
    return e->m;
}

int env_frame_skip(const Env *e) {
    return e->frame_skip;
}

mjData *env_data(Env *e) {
    return e->d;
}

void env_action_bounds(const Env *e, double *low, double *high) {
    for (int a = 0; a < e->m->nu; a++) {
        low[a] = e->m->actuator_ctrlrange[2 * a];
        high[a] = e->m->actuator_ctrlrange[2 * a + 1];
    }
}

// -------------------------------------------------------------------------- observations

static double env_clip(double x, double lo, double hi) {
    return x < lo ? lo : (x > hi ? hi : x);
}

/* copies n values of src to dst, clipped to [lo, hi]; returns dst + n */
static double *env_put(double *dst, const double *src, int n, double lo, double hi) {
    for (int i = 0; i < n; i++) {
        dst[i] = env_clip(src[i], lo, hi);
    }
    return dst + n;
}

static double *env_put_raw(double *dst, const double *src, int n) {
    memcpy(dst, src, (size_t)n * sizeof(double));
    return dst + n;
}

/* Humanoid's whole-body centre of mass along axis k, from xipos (lagged, as in Gymnasium) */
static double env_com(const Env *e, int k) {
    double s = 0;
    for (int b = 0; b < e->m->nbody; b++) {
        s += e->m->body_mass[b] * e->d->xipos[3 * b + k];
    }
    return s / e->mass_total;
}

static double env_body_dist(const Env *e, int b1, int b2) {
    const double *p = e->d->xpos + 3 * b1, *q = e->d->xpos + 3 * b2;
    double dx = p[0] - q[0], dy = p[1] - q[1], dz = p[2] - q[2];
    return sqrt(dx * dx + dy * dy + dz * dz);
}

static void env_obs(const Env *e, double *obs) {
    const mjModel *m = e->m;
    const mjData *d = e->d;
    const int v5 = e->spec->version >= 5;
    double *o = obs;
    switch (e->fam) {
        case FAM_HALF_CHEETAH:
            o = env_put_raw(o, d->qpos + 1, 8);
            o = env_put_raw(o, d->qvel, 9);
            break;
        case FAM_HOPPER:
            o = env_put_raw(o, d->qpos + 1, 5);
            o = env_put(o, d->qvel, 6, -10, 10);
            break;
        case FAM_WALKER2D:
            o = env_put_raw(o, d->qpos + 1, 8);
            o = env_put(o, d->qvel, 9, -10, 10);
            break;
        case FAM_ANT:
            o = env_put_raw(o, d->qpos + 2, 13);
            o = env_put_raw(o, d->qvel, 14);
            if (v5) { /* clipped contact forces of bodies 1..13 */
                o = env_put(o, d->cfrc_ext + 6, 6 * (m->nbody - 1), -1, 1);
            }
            break;
        case FAM_HUMANOID: {
            const int skip = v5 ? 1 : 0; /* v5 drops the world body and the root dofs */
            o = env_put_raw(o, d->qpos + 2, 22);
            o = env_put_raw(o, d->qvel, 23);
            o = env_put_raw(o, d->cinert + 10 * skip, 10 * (m->nbody - skip));
            o = env_put_raw(o, d->cvel + 6 * skip, 6 * (m->nbody - skip));
            o = env_put_raw(o, d->qfrc_actuator + 6 * skip, m->nv - 6 * skip);
            o = env_put_raw(o, d->cfrc_ext + 6 * skip, 6 * (m->nbody - skip));
            break;
        }
        case FAM_SWIMMER:
            o = env_put_raw(o, d->qpos + 2, 3);
            o = env_put_raw(o, d->qvel, 5);
            break;
        case FAM_INVERTED_PENDULUM:
            o = env_put_raw(o, d->qpos, 2);
            o = env_put_raw(o, d->qvel, 2);
            break;
        case FAM_INVERTED_DOUBLE_PENDULUM:
            *o++ = d->qpos[0];
            *o++ = sin(d->qpos[1]);
            *o++ = sin(d->qpos[2]);
            *o++ = cos(d->qpos[1]);
            *o++ = cos(d->qpos[2]);
            o = env_put(o, d->qvel, 3, -10, 10);
            o = env_put(o, d->qfrc_constraint, v5 ? 1 : 3, -10, 10);
            break;
        case FAM_REACHER: {
            *o++ = cos(d->qpos[0]);
            *o++ = cos(d->qpos[1]);
            *o++ = sin(d->qpos[0]);
            *o++ = sin(d->qpos[1]);
            o = env_put_raw(o, d->qpos + 2, 2);
            o = env_put_raw(o, d->qvel, 2);
            const double *f = d->xpos + 3 * e->body_a, *t = d->xpos + 3 * e->body_b;
            for (int k = 0; k < (v5 ? 2 : 3); k++) {
                *o++ = f[k] - t[k];
            }
            break;
        }
        case FAM_PUSHER:
            o = env_put_raw(o, d->qpos, 7);
            o = env_put_raw(o, d->qvel, 7);
            o = env_put_raw(o, d->xpos + 3 * e->body_a, 3);
            o = env_put_raw(o, d->xpos + 3 * e->body_b, 3);
            o = env_put_raw(o, d->xpos + 3 * e->body_c, 3);
            break;
        default:
            FLAME_CHECK(0, "unhandled family %d", e->fam);
    }
    FLAME_DCHECK(o - obs == e->spec->obs_dim, "%s: observation size %d, expected %d", e->spec->id,
                 (int)(o - obs), e->spec->obs_dim);
    (void)o;
}

// ------------------------------------------------------------------------------- reset

typedef struct {
    uint64_t seed;
    uint32_t row, step;
} EnvNoise;

static double env_uniform(const EnvNoise *z, uint32_t col, double lo, double hi) {
    return lo + (hi - lo) * rng_uniform_d(z->seed, RNG_STREAM_ENV_RESET, z->step, z->row, col);
}

static double env_normal(const EnvNoise *z, uint32_t col, double sd) {
    return sd * rng_normal_d(z->seed, RNG_STREAM_ENV_RESET, z->step, z->row, col);
}

static uint32_t env_align4(uint32_t x) {
    return (x + 3u) & ~3u;
}

void env_reset(Env *e, uint64_t seed, uint32_t env_index, uint32_t episode, double *obs) {
    const mjModel *m = e->m;
    mjData *d = e->d;
    const EnvNoise z = {seed, env_index, episode};
    const uint32_t nq = (uint32_t)m->nq, nv = (uint32_t)m->nv;
    const uint32_t qv0 = env_align4(nq);        /* first col of the qvel draws */
    const uint32_t rej0 = env_align4(qv0 + nv); /* first col of rejection-sampling pairs */
    mj_resetData(m, d);

    /* noise kind and scale per family: qpos uniform +-sq; qvel uniform +-sv or normal(sd sv) */
    double sq = 0, sv = 0;
    int qvel_normal = 0;
    switch (e->fam) {
        case FAM_HALF_CHEETAH:
        case FAM_ANT:
        case FAM_INVERTED_DOUBLE_PENDULUM:
            sq = 0.1, sv = 0.1, qvel_normal = 1;
            break;
        case FAM_HOPPER:
        case FAM_WALKER2D:
            sq = 5e-3, sv = 5e-3;
            break;
        case FAM_HUMANOID:
        case FAM_INVERTED_PENDULUM:
            sq = 0.01, sv = 0.01;
            break;
        case FAM_SWIMMER:
            sq = 0.1, sv = 0.1;
            break;
        case FAM_REACHER:
            sq = 0.1, sv = 0.005;
            break;
        case FAM_PUSHER:
            sq = 0, sv = 0.005;
            break;
        default:
            FLAME_CHECK(0, "unhandled family %d", e->fam);
    }
    if (sq > 0) {
        for (uint32_t i = 0; i < nq; i++) {
            d->qpos[i] += env_uniform(&z, i, -sq, sq);
        }
    }
    for (uint32_t j = 0; j < nv; j++) {
        d->qvel[j] += qvel_normal ? env_normal(&z, qv0 + j, sv) : env_uniform(&z, qv0 + j, -sv, sv);
    }

    if (e->fam == FAM_REACHER) {
        /* goal uniform in [-0.2, 0.2]^2 until inside the disc of radius 0.2; overwrites the
           target slides (absolute, not added to qpos0); the target does not move initially */
        double gx = 0, gy = 0;
        for (uint32_t k = 0;; k++) {
            FLAME_CHECK(k < 100000, "Reacher goal sampling did not terminate");
            gx = env_uniform(&z, rej0 + 2 * k, -0.2, 0.2);
            gy = env_uniform(&z, rej0 + 2 * k + 1, -0.2, 0.2);
            if (sqrt(gx * gx + gy * gy) < 0.2) {
                break;
            }
        }
        d->qpos[2] = gx;
        d->qpos[3] = gy;
        d->qvel[2] = 0;
        d->qvel[3] = 0;
    } else if (e->fam == FAM_PUSHER) {
        /* object x in [-0.3, 0], y in [-0.2, 0.2], farther than 0.17 from the goal at (0, 0) */
        double ox = 0, oy = 0;
        for (uint32_t k = 0;; k++) {
            FLAME_CHECK(k < 100000, "Pusher object sampling did not terminate");
            ox = env_uniform(&z, rej0 + 2 * k, -0.3, 0.0);
            oy = env_uniform(&z, rej0 + 2 * k + 1, -0.2, 0.2);
            if (sqrt(ox * ox + oy * oy) > 0.17) {
                break;
            }
        }
        d->qpos[7] = ox;
        d->qpos[8] = oy;
        d->qpos[9] = 0;
        d->qpos[10] = 0;
        for (int j = 7; j < 11; j++) {
            d->qvel[j] = 0;
        }
    }
    mj_forward(m, d);
    if (obs) {
        env_obs(e, obs);
    }
}

void env_set_state(Env *e, const double *qpos, const double *qvel, double *obs) {
    mj_resetData(e->m, e->d);
    memcpy(e->d->qpos, qpos, (size_t)e->m->nq * sizeof(double));
    memcpy(e->d->qvel, qvel, (size_t)e->m->nv * sizeof(double));
    mj_forward(e->m, e->d);
    if (obs) {
        env_obs(e, obs);
    }
}

void env_observe(const Env *e, double *obs) {
    env_obs(e, obs);
}

void env_get_state(const Env *e, double *qpos, double *qvel) {
    memcpy(qpos, e->d->qpos, (size_t)e->m->nq * sizeof(double));
    memcpy(qvel, e->d->qvel, (size_t)e->m->nv * sizeof(double));
}

// -------------------------------------------------------------------------------- step

static int env_all_finite(const double *x, int n) {
    for (int i = 0; i < n; i++) {
        if (!isfinite(x[i])) {
            return 0;
        }
    }
    return 1;
}

static int env_bad_count(const mjData *d) {
    return d->warning[mjWARN_BADQPOS].number + d->warning[mjWARN_BADQVEL].number +
           d->warning[mjWARN_BADQACC].number + d->warning[mjWARN_BADCTRL].number;
}

/* the quantity measured before the substeps that the reward needs afterwards */
static void env_before(const Env *e, double *b) {
    const mjData *d = e->d;
    switch (e->fam) {
        case FAM_ANT:
            b[0] = d->xpos[3 * e->body_a];
            break;
        case FAM_HUMANOID:
            b[0] = env_com(e, 0);
            break;
        case FAM_REACHER:
            b[0] = env_body_dist(e, e->body_a, e->body_b); /* fingertip - target */
            break;
        case FAM_PUSHER:
            b[0] = env_body_dist(e, e->body_b, e->body_a); /* object - tips_arm */
            b[1] = env_body_dist(e, e->body_b, e->body_c); /* object - goal */
            break;
        default:
            b[0] = d->qpos[0];
            break;
    }
}

static double env_sumsq(const double *x, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) {
        s += x[i] * x[i];
    }
    return s;
}

/* reward and termination from the post-step data; ctrl is the unclipped control */
static void env_reward(const Env *e, const double *ctrl, const double *b, EnvStepInfo *info) {
    const mjModel *m = e->m;
    const mjData *d = e->d;
    const int v5 = e->spec->version >= 5;
    const double *q = d->qpos, *v = d->qvel;
    const double ctrl2 = env_sumsq(ctrl, m->nu);
    double r = 0;
    int term = 0;
    switch (e->fam) {
        case FAM_HALF_CHEETAH:
            r = (q[0] - b[0]) / e->dt - 0.1 * ctrl2;
            break;
        case FAM_SWIMMER:
            r = (q[0] - b[0]) / e->dt - 1e-4 * ctrl2;
            break;
        case FAM_HOPPER: {
            /* healthy: qpos[2:] and (unclipped) qvel in (-100, 100), z > 0.7, |angle| < 0.2 */
            int healthy = q[1] > 0.7 && q[2] > -0.2 && q[2] < 0.2;
            for (int i = 2; i < m->nq && healthy; i++) {
                healthy = q[i] > -100.0 && q[i] < 100.0;
            }
            for (int i = 0; i < m->nv && healthy; i++) {
                healthy = v[i] > -100.0 && v[i] < 100.0;
            }
            term = !healthy;
            r = (q[0] - b[0]) / e->dt + ((v5 && !healthy) ? 0.0 : 1.0) - 1e-3 * ctrl2;
            break;
        }
        case FAM_WALKER2D: {
            int healthy = q[1] > 0.8 && q[1] < 2.0 && q[2] > -1.0 && q[2] < 1.0;
            term = !healthy;
            r = (q[0] - b[0]) / e->dt + ((v5 && !healthy) ? 0.0 : 1.0) - 1e-3 * ctrl2;
            break;
        }
        case FAM_ANT: {
            /* healthy: finite state and z in the closed interval [0.2, 1.0] */
            int healthy =
                env_all_finite(q, m->nq) && env_all_finite(v, m->nv) && q[2] >= 0.2 && q[2] <= 1.0;
            term = !healthy;
            double fwd = (d->xpos[3 * e->body_a] - b[0]) / e->dt;
            r = fwd + ((v5 && !healthy) ? 0.0 : 1.0) - 0.5 * ctrl2;
            if (v5) {
                double c2 = 0;
                for (int i = 0; i < 6 * m->nbody; i++) {
                    double c = env_clip(d->cfrc_ext[i], -1, 1);
                    c2 += c * c;
                }
                r -= 5e-4 * c2;
            }
            break;
        }
        case FAM_HUMANOID: {
            int healthy = q[2] > 1.0 && q[2] < 2.0;
            term = !healthy;
            double fwd = (env_com(e, 0) - b[0]) / e->dt;
            r = 1.25 * fwd + ((v5 && !healthy) ? 0.0 : 5.0) - 0.1 * env_sumsq(d->ctrl, m->nu);
            if (v5) {
                double c = 5e-7 * env_sumsq(d->cfrc_ext, 6 * m->nbody);
                r -= c < 10.0 ? c : 10.0;
            }
            break;
        }
        case FAM_INVERTED_PENDULUM:
            term = !(env_all_finite(q, 2) && env_all_finite(v, 2)) || fabs(q[1]) > 0.2;
            r = (v5 && term) ? 0.0 : 1.0;
            break;
        case FAM_INVERTED_DOUBLE_PENDULUM: {
            const double x = d->site_xpos[3 * e->site], y = d->site_xpos[3 * e->site + 2];
            term = y <= 1.0;
            double dist = 0.01 * x * x + (y - 2.0) * (y - 2.0);
            double vel = 1e-3 * v[1] * v[1] + 5e-3 * v[2] * v[2];
            r = ((v5 && term) ? 0.0 : 10.0) - dist - vel;
            break;
        }
        case FAM_REACHER: {
            double dist = v5 ? env_body_dist(e, e->body_a, e->body_b) : b[0];
            r = -dist - ctrl2;
            break;
        }
        case FAM_PUSHER: {
            double near = v5 ? env_body_dist(e, e->body_b, e->body_a) : b[0];
            double dist = v5 ? env_body_dist(e, e->body_b, e->body_c) : b[1];
            r = -dist - 0.1 * ctrl2 - 0.5 * near;
            break;
        }
        default:
            FLAME_CHECK(0, "unhandled family %d", e->fam);
    }
    info->reward = r;
    info->terminated = term;
}

void env_step_ctrl(Env *e, const double *ctrl, double *obs, EnvStepInfo *info) {
    const mjModel *m = e->m;
    mjData *d = e->d;
    double before[2] = {0, 0};
    env_before(e, before);
    const int bad0 = env_bad_count(d);

    memcpy(d->ctrl, ctrl, (size_t)m->nu * sizeof(double));
    for (int k = 0; k < e->frame_skip; k++) {
        mj_step(m, d);
    }
    mj_rnePostConstraint(m, d);

    const int unstable = env_bad_count(d) != bad0 || !env_all_finite(d->qpos, m->nq) ||
                         !env_all_finite(d->qvel, m->nv);
    env_obs(e, obs);
    env_reward(e, ctrl, before, info);
    info->unstable = unstable;
    if (unstable) {
        /* not a physical transition: no reward, no termination, finite observation */
        info->reward = 0;
        info->terminated = 0;
        for (int i = 0; i < e->spec->obs_dim; i++) {
            if (!isfinite(obs[i])) {
                obs[i] = 0;
            }
        }
    }
}

void env_step(Env *e, const float *action, double *obs, EnvStepInfo *info) {
    for (int a = 0; a < e->m->nu; a++) {
        e->ctrl[a] = e->center[a] + (double)action[a] * e->half[a];
    }
    env_step_ctrl(e, e->ctrl, obs, info);
}

// ------------------------------------------------------------------------------- listing

void env_list_print(FILE *f) {
    fprintf(f, "%-27s %5s %5s  %-22s %9s %10s\n", "id", "obs", "act", "action box (env units)",
            "max_steps", "threshold");
    for (int i = 0; i < ENV_SPEC_COUNT; i++) {
        const EnvSpec *s = &env_specs[i];
        mjModel *m = NULL;
        char box[64] = "?";
        if (env_model_load(s, NULL, &m) == FLAME_OK) {
            double lo = m->actuator_ctrlrange[0], hi = m->actuator_ctrlrange[1];
            int uniform = 1;
            for (int a = 1; a < m->nu; a++) {
                uniform &=
                    m->actuator_ctrlrange[2 * a] == lo && m->actuator_ctrlrange[2 * a + 1] == hi;
            }
            if (uniform) {
                snprintf(box, sizeof box, "[%g, %g]^%d", lo, hi, m->nu);
            } else {
                snprintf(box, sizeof box, "mixed, %d dims", m->nu);
            }
            mj_deleteModel(m);
        } else {
            flame_clear_error();
        }
        char thr[32];
        if (isnan(s->reward_threshold)) {
            snprintf(thr, sizeof thr, "-");
        } else {
            snprintf(thr, sizeof thr, "%g", s->reward_threshold);
        }
        fprintf(f, "%-27s %5d %5d  %-22s %9d %10s\n", s->id, s->obs_dim, s->act_dim, box,
                s->max_episode_steps, thr);
    }
}
