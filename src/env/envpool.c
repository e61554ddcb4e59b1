/*
 * envpool.c: a pool of environments stepped in parallel by persistent threads.
 *
 * The caller's thread and W - 1 workers take envs from a shared atomic counter in small chunks, so
 * long (contact-heavy) envs balance out; which thread steps an env never changes its result
 * because every env owns its mjData, counters and RNG address. One job (reset or step) runs at a
 * time: the caller publishes it under the mutex by bumping `generation`, works along, then waits
 * until every worker reported the generation done.
 *
 * State blob layout (envpool_state_save): EnvPoolStateHeader, then per env an EnvPoolEnvState,
 * the EnvPoolDataScalars of its mjData and the nbuffer bytes of mjData.buffer.
 */
#include "flame/envpool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "flame/check.h"

#define ENVPOOL_CHUNK 1 /* one env per claim: an env step costs far more than the atomic */

typedef enum {
    ENVPOOL_JOB_RESET,
    ENVPOOL_JOB_RESET_NEXT,
    ENVPOOL_JOB_RESET_PENDING,
    ENVPOOL_JOB_STEP
} EnvPoolJob;

struct EnvPool {
    const EnvSpec *spec;
    mjModel *m;
    int n, nthreads, obs_dim, act_dim, nq, nv;
    uint64_t seed;
    uint32_t offset;
    Env **envs;
    uint32_t *episode;        /* (N) episode counter: the reset RNG step */
    int *steps;               /* (N) steps in the running episode */
    double *ret;              /* (N) running return */
    uint64_t *unstable_count; /* (N) */
    double *scratch_obs;      /* (N, S) final obs when the caller passes none */
    EnvPoolAutoreset autoreset;
    EnvPoolActions action_units;
    uint8_t *pending;         /* (N) next-step autoreset: the env resets on its next step */
    double *ctrl;             /* (N, D) env-unit actions as double (ENVPOOL_ACTIONS_CTRL) */

    /* the job being run */
    EnvPoolJob job;
    const float *actions;
    EnvPoolStep *out;
    double *reset_obs;
    atomic_int next;

    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t cv_start, cv_done;
    atomic_uint_fast64_t generation; /* bumped once per job */
    atomic_int done;                 /* workers finished with the current job */
    atomic_int stop;
};

/* Waits are short (one env step): spin this many pause iterations (tens of microseconds) before
   sleeping on the condition variable, so a step costs no wake-up latency. */
#define ENVPOOL_SPIN 20000

static inline void envpool_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

// ---------------------------------------------------------------------------------- work

static void envpool_reset_one(EnvPool *p, int i, double *obs) {
    if (p->job == ENVPOOL_JOB_RESET_PENDING && !p->pending[i]) {
        return; /* only the envs waiting for a next-step reset */
    }
    if (p->job != ENVPOOL_JOB_RESET) {
        p->episode[i] += p->pending[i] ? 0u : 1u; /* a pending reset has its counter already */
    } else {
        p->episode[i] = 0;
    }
    p->pending[i] = 0;
    p->steps[i] = 0;
    p->ret[i] = 0;
    env_reset(p->envs[i], p->seed, p->offset + (uint32_t)i, p->episode[i],
              obs + (size_t)i * p->obs_dim);
}

/* next-step autoreset: the step after an episode's end resets the env instead of stepping it */
static void envpool_pending_reset(EnvPool *p, int i) {
    EnvPoolStep *o = p->out;
    Env *e = p->envs[i];
    const size_t S = (size_t)p->obs_dim;
    if (o->qpos_before && o->qvel_before) {
        env_get_state(e, o->qpos_before + (size_t)i * p->nq, o->qvel_before + (size_t)i * p->nv);
    }
    p->pending[i] = 0;
    env_reset(e, p->seed, p->offset + (uint32_t)i, p->episode[i], o->obs + i * S);
    if (o->final_obs) {
        memcpy(o->final_obs + i * S, o->obs + i * S, S * sizeof(double));
    }
    o->reward[i] = 0;
    o->terminated[i] = 0;
    o->truncated[i] = 0;
    if (o->unstable) {
        o->unstable[i] = 0;
    }
    if (o->episode_return) {
        o->episode_return[i] = 0;
    }
    if (o->episode_length) {
        o->episode_length[i] = 0;
    }
}

static void envpool_step_one(EnvPool *p, int i) {
    if (p->pending[i]) {
        envpool_pending_reset(p, i);
        return;
    }
    EnvPoolStep *o = p->out;
    Env *e = p->envs[i];
    const size_t S = (size_t)p->obs_dim;
    if (o->qpos_before && o->qvel_before) {
        env_get_state(e, o->qpos_before + (size_t)i * p->nq, o->qvel_before + (size_t)i * p->nv);
    }
    double *fo = (o->final_obs ? o->final_obs : p->scratch_obs) + i * S;
    EnvStepInfo info;
    const size_t D = (size_t)p->act_dim;
    if (p->action_units == ENVPOOL_ACTIONS_CTRL) {
        double *ctrl = p->ctrl + (size_t)i * D;
        for (size_t d = 0; d < D; d++) {
            ctrl[d] = (double)p->actions[(size_t)i * D + d];
        }
        env_step_ctrl(e, ctrl, fo, &info);
    } else {
        env_step(e, p->actions + (size_t)i * D, fo, &info);
    }
    p->steps[i]++;
    p->ret[i] += info.reward;
    const int trunc = info.unstable || p->steps[i] >= p->spec->max_episode_steps;
    if (info.unstable) {
        p->unstable_count[i]++;
    }
    o->reward[i] = info.reward;
    o->terminated[i] = (uint8_t)info.terminated;
    o->truncated[i] = (uint8_t)trunc;
    if (o->unstable) {
        o->unstable[i] = (uint8_t)info.unstable;
    }
    if (o->episode_return) {
        o->episode_return[i] = p->ret[i];
    }
    if (o->episode_length) {
        o->episode_length[i] = p->steps[i];
    }
    if (info.terminated || trunc) {
        p->episode[i]++;
        p->steps[i] = 0;
        p->ret[i] = 0;
        if (p->autoreset == ENVPOOL_AUTORESET_NEXT_STEP) {
            p->pending[i] = 1;
            memcpy(o->obs + i * S, fo, S * sizeof(double));
        } else {
            env_reset(e, p->seed, p->offset + (uint32_t)i, p->episode[i], o->obs + i * S);
        }
    } else {
        memcpy(o->obs + i * S, fo, S * sizeof(double));
    }
}

static void envpool_work(EnvPool *p) {
    for (;;) {
        int i0 = atomic_fetch_add(&p->next, ENVPOOL_CHUNK);
        if (i0 >= p->n) {
            return;
        }
        int i1 = i0 + ENVPOOL_CHUNK < p->n ? i0 + ENVPOOL_CHUNK : p->n;
        for (int i = i0; i < i1; i++) {
            if (p->job == ENVPOOL_JOB_STEP) {
                envpool_step_one(p, i);
            } else {
                envpool_reset_one(p, i, p->reset_obs);
            }
        }
    }
}

static void *envpool_worker(void *arg) {
    EnvPool *p = arg;
    uint64_t seen = 0;
    for (;;) {
        /* wait for the next job: spin briefly, then sleep */
        for (int k = 0; k < ENVPOOL_SPIN && atomic_load(&p->generation) == seen &&
                        !atomic_load(&p->stop);
             k++) {
            envpool_relax();
        }
        if (atomic_load(&p->generation) == seen && !atomic_load(&p->stop)) {
            pthread_mutex_lock(&p->mu);
            while (!atomic_load(&p->stop) && atomic_load(&p->generation) == seen) {
                pthread_cond_wait(&p->cv_start, &p->mu);
            }
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->stop)) {
            return NULL;
        }
        seen = atomic_load(&p->generation);

        envpool_work(p);

        if (atomic_fetch_add(&p->done, 1) + 1 == p->nthreads - 1) {
            pthread_mutex_lock(&p->mu); /* the caller may be asleep on cv_done */
            pthread_cond_signal(&p->cv_done);
            pthread_mutex_unlock(&p->mu);
        }
    }
}

/* runs the job set in p on every thread, the caller included, and waits for all */
static void envpool_run(EnvPool *p) {
    atomic_store(&p->next, 0);
    if (p->nthreads == 1) {
        envpool_work(p);
        return;
    }
    atomic_store(&p->done, 0);
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add(&p->generation, 1);
    pthread_cond_broadcast(&p->cv_start);
    pthread_mutex_unlock(&p->mu);

    envpool_work(p);

    for (int k = 0; k < ENVPOOL_SPIN && atomic_load(&p->done) < p->nthreads - 1; k++) {
        envpool_relax();
    }
    if (atomic_load(&p->done) < p->nthreads - 1) {
        pthread_mutex_lock(&p->mu);
        while (atomic_load(&p->done) < p->nthreads - 1) {
            pthread_cond_wait(&p->cv_done, &p->mu);
        }
        pthread_mutex_unlock(&p->mu);
    }
}

// ------------------------------------------------------------------------------ lifecycle

int envpool_create(const EnvSpec *spec, const char *model_xml, int num_envs, int num_threads,
                   uint64_t seed, uint32_t env_index_offset, EnvPool **out) {
    *out = NULL;
    if (num_envs < 1) {
        return flame_errorf(FLAME_EINPUT, "env pool: num_envs must be >= 1 (got %d)", num_envs);
    }
    if (num_threads < 1) {
        return flame_errorf(FLAME_EINPUT, "env pool: num_threads must be >= 1 (got %d)",
                            num_threads);
    }
    mjModel *m = NULL;
    int rc = env_model_load(spec, model_xml, &m);
    if (rc != FLAME_OK) {
        return rc;
    }
    EnvPool *p = flame_calloc(1, sizeof(EnvPool));
    p->spec = spec;
    p->m = m;
    p->n = num_envs;
    p->nthreads = num_threads;
    p->obs_dim = spec->obs_dim;
    p->act_dim = spec->act_dim;
    p->nq = m->nq;
    p->nv = m->nv;
    p->seed = seed;
    p->offset = env_index_offset;
    p->envs = flame_calloc((size_t)num_envs, sizeof(Env *));
    for (int i = 0; i < num_envs; i++) {
        p->envs[i] = env_create(spec, m);
    }
    p->episode = flame_calloc((size_t)num_envs, sizeof(uint32_t));
    p->steps = flame_calloc((size_t)num_envs, sizeof(int));
    p->ret = flame_calloc((size_t)num_envs, sizeof(double));
    p->unstable_count = flame_calloc((size_t)num_envs, sizeof(uint64_t));
    p->scratch_obs = flame_calloc((size_t)num_envs * (size_t)p->obs_dim, sizeof(double));
    p->pending = flame_calloc((size_t)num_envs, 1);
    p->ctrl = flame_calloc((size_t)num_envs * (size_t)p->act_dim, sizeof(double));
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv_start, NULL);
    pthread_cond_init(&p->cv_done, NULL);
    if (num_threads > 1) {
        p->threads = flame_calloc((size_t)num_threads - 1, sizeof(pthread_t));
        for (int t = 0; t < num_threads - 1; t++) {
            int e = pthread_create(&p->threads[t], NULL, envpool_worker, p);
            FLAME_CHECK(e == 0, "env pool: cannot start worker thread %d of %d (error %d)", t + 1,
                        num_threads - 1, e);
        }
    }
    *out = p;
    return FLAME_OK;
}

void envpool_free(EnvPool *p) {
    if (!p) {
        return;
    }
    if (p->threads) {
        pthread_mutex_lock(&p->mu);
        p->stop = 1;
        pthread_cond_broadcast(&p->cv_start);
        pthread_mutex_unlock(&p->mu);
        for (int t = 0; t < p->nthreads - 1; t++) {
            pthread_join(p->threads[t], NULL);
        }
        flame_free(p->threads);
    }
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv_start);
    pthread_cond_destroy(&p->cv_done);
    for (int i = 0; i < p->n; i++) {
        env_free(p->envs[i]);
    }
    flame_free(p->envs);
    flame_free(p->episode);
    flame_free(p->steps);
    flame_free(p->ret);
    flame_free(p->unstable_count);
    flame_free(p->scratch_obs);
    flame_free(p->pending);
    flame_free(p->ctrl);
    mj_deleteModel(p->m);
    flame_free(p);
}

int envpool_num_envs(const EnvPool *p) {
    return p->n;
}
int envpool_obs_dim(const EnvPool *p) {
    return p->obs_dim;
}
int envpool_act_dim(const EnvPool *p) {
    return p->act_dim;
}
int envpool_nq(const EnvPool *p) {
    return p->nq;
}
int envpool_nv(const EnvPool *p) {
    return p->nv;
}
const EnvSpec *envpool_spec(const EnvPool *p) {
    return p->spec;
}
Env *envpool_env(EnvPool *p, int i) {
    return (i >= 0 && i < p->n) ? p->envs[i] : NULL;
}

uint64_t envpool_instability_count(const EnvPool *p) {
    uint64_t s = 0;
    for (int i = 0; i < p->n; i++) {
        s += p->unstable_count[i];
    }
    return s;
}

// ------------------------------------------------------------------------------ stepping

void envpool_reset(EnvPool *p, double *obs) {
    p->job = ENVPOOL_JOB_RESET;
    p->reset_obs = obs;
    envpool_run(p);
    p->reset_obs = NULL;
}

void envpool_reseed(EnvPool *p, uint64_t seed, double *obs) {
    p->seed = seed;
    envpool_reset(p, obs);
}

void envpool_reset_next(EnvPool *p, double *obs) {
    p->job = ENVPOOL_JOB_RESET_NEXT;
    p->reset_obs = obs;
    envpool_run(p);
    p->reset_obs = NULL;
}

void envpool_reset_pending(EnvPool *p, double *obs) {
    p->job = ENVPOOL_JOB_RESET_PENDING;
    p->reset_obs = obs;
    envpool_run(p);
    p->reset_obs = NULL;
}

void envpool_set_modes(EnvPool *p, EnvPoolAutoreset autoreset, EnvPoolActions actions) {
    p->autoreset = autoreset;
    p->action_units = actions;
    if (autoreset == ENVPOOL_AUTORESET_SAME_STEP) {
        memset(p->pending, 0, (size_t)p->n); /* nothing waits for a next step any more */
    }
}

void envpool_step(EnvPool *p, const float *actions, EnvPoolStep *out) {
    FLAME_CHECK(out && out->obs && out->reward && out->terminated && out->truncated,
                "envpool_step: obs, reward, terminated and truncated are required");
    p->job = ENVPOOL_JOB_STEP;
    p->actions = actions;
    p->out = out;
    envpool_run(p);
    p->actions = NULL;
    p->out = NULL;
}

int envpool_step_checked(EnvPool *p, const float *actions, size_t n_actions_floats,
                         EnvPoolStep *out) {
    size_t want = (size_t)p->n * (size_t)p->act_dim;
    if (!actions || n_actions_floats != want) {
        return flame_errorf(FLAME_EINPUT,
                            "%s: actions have %zu floats, expected %zu (%d envs x act_dim %d)",
                            p->spec->id, actions ? n_actions_floats : 0, want, p->n, p->act_dim);
    }
    if (!out || !out->obs || !out->reward || !out->terminated || !out->truncated) {
        return flame_errorf(FLAME_EINPUT,
                            "%s: step output needs obs, reward, terminated and truncated arrays",
                            p->spec->id);
    }
    envpool_step(p, actions, out);
    return FLAME_OK;
}

// ---------------------------------------------------------------------------- save / load

#define ENVPOOL_MAGIC "FLMENVP1"

typedef struct {
    char magic[8];
    char env_id[48];
    int32_t mj_version;
    int32_t num_envs, nq, nv, nu, nbody, nbuffer;
    int32_t scalars_size;
} EnvPoolStateHeader;

typedef struct {
    uint64_t unstable_count;
    double ret;
    uint32_t episode;
    int32_t steps;
} EnvPoolEnvState;

/* the mjData fields outside the buffer that matter for continuing (timers are left out) */
typedef struct {
    mjWarningStat warning[mjNWARNING];
    int ne, nf, nefc, ncon;
    int solver_iter, solver_nnz;
    mjtNum solver_fwdinv[2];
    mjtNum time;
    mjtNum energy[2];
} EnvPoolDataScalars;

static size_t envpool_env_bytes(const EnvPool *p) {
    return sizeof(EnvPoolEnvState) + sizeof(EnvPoolDataScalars) +
           (size_t)env_data(p->envs[0])->nbuffer;
}

size_t envpool_state_size(const EnvPool *p) {
    return sizeof(EnvPoolStateHeader) + (size_t)p->n * envpool_env_bytes(p);
}

static void envpool_fill_header(const EnvPool *p, EnvPoolStateHeader *h) {
    memset(h, 0, sizeof *h);
    memcpy(h->magic, ENVPOOL_MAGIC, 8);
    snprintf(h->env_id, sizeof h->env_id, "%s", p->spec->id);
    h->mj_version = mj_version();
    h->num_envs = p->n;
    h->nq = p->m->nq;
    h->nv = p->m->nv;
    h->nu = p->m->nu;
    h->nbody = p->m->nbody;
    h->nbuffer = env_data(p->envs[0])->nbuffer;
    h->scalars_size = (int32_t)sizeof(EnvPoolDataScalars);
}

/* The bytes of mjContact after its last field are padding that MuJoCo copies from the stack with
   whole structs: zero them in a saved buffer (at `copy`), so that one state always saves to the
   same bytes (checkpoints of equal runs are equal files). */
static void clear_contact_padding(const mjModel *m, const mjData *d, unsigned char *copy) {
    const size_t used = offsetof(mjContact, efc_address) + sizeof(int);
    const char *buf = d->buffer, *con = (const char *)d->contact;
    if (used >= sizeof(mjContact) || con < buf || con >= buf + d->nbuffer) {
        return; /* no padding, or the contacts live outside the saved buffer */
    }
    size_t off = (size_t)(con - buf);
    size_t n = m->nconmax > 0 ? (size_t)m->nconmax : 0; /* the array's length */
    if (n > ((size_t)d->nbuffer - off) / sizeof(mjContact)) {
        return;
    }
    for (size_t k = 0; k < n; k++) {
        memset(copy + off + k * sizeof(mjContact) + used, 0, sizeof(mjContact) - used);
    }
}

void envpool_state_save(const EnvPool *p, void *buf) {
    unsigned char *b = buf;
    EnvPoolStateHeader h;
    envpool_fill_header(p, &h);
    memcpy(b, &h, sizeof h);
    b += sizeof h;
    for (int i = 0; i < p->n; i++) {
        const mjData *d = env_data(p->envs[i]);
        EnvPoolEnvState s;
        memset(&s, 0, sizeof s);
        s.unstable_count = p->unstable_count[i];
        s.ret = p->ret[i];
        s.episode = p->episode[i];
        s.steps = p->steps[i];
        memcpy(b, &s, sizeof s);
        b += sizeof s;
        EnvPoolDataScalars c;
        memset(&c, 0, sizeof c);
        memcpy(c.warning, d->warning, sizeof c.warning);
        c.ne = d->ne;
        c.nf = d->nf;
        c.nefc = d->nefc;
        c.ncon = d->ncon;
        c.solver_iter = d->solver_iter;
        c.solver_nnz = d->solver_nnz;
        c.solver_fwdinv[0] = d->solver_fwdinv[0];
        c.solver_fwdinv[1] = d->solver_fwdinv[1];
        c.time = d->time;
        c.energy[0] = d->energy[0];
        c.energy[1] = d->energy[1];
        memcpy(b, &c, sizeof c);
        b += sizeof c;
        memcpy(b, d->buffer, (size_t)d->nbuffer);
        clear_contact_padding(p->m, d, b);
        b += d->nbuffer;
    }
}

int envpool_state_load(EnvPool *p, const void *buf, size_t size) {
    const unsigned char *b = buf;
    if (!buf || size < sizeof(EnvPoolStateHeader)) {
        return flame_errorf(FLAME_EINPUT, "env pool state: %zu bytes, too short for a header",
                            buf ? size : 0);
    }
    EnvPoolStateHeader h, want;
    memcpy(&h, b, sizeof h);
    envpool_fill_header(p, &want);
    if (memcmp(h.magic, ENVPOOL_MAGIC, 8) != 0) {
        return flame_errorf(FLAME_EINPUT, "env pool state: not an env pool state (bad magic)");
    }
    h.env_id[sizeof h.env_id - 1] = 0;
    if (strcmp(h.env_id, want.env_id) != 0) {
        return flame_errorf(FLAME_EINPUT, "env pool state: saved for %s, this pool runs %s",
                            h.env_id, want.env_id);
    }
    if (h.mj_version != want.mj_version) {
        return flame_errorf(FLAME_EINPUT,
                            "env pool state: saved with MuJoCo %d, this build runs MuJoCo %d",
                            h.mj_version, want.mj_version);
    }
    if (h.num_envs != want.num_envs) {
        return flame_errorf(FLAME_EINPUT, "env pool state: saved with %d envs, this pool has %d",
                            h.num_envs, want.num_envs);
    }
    if (h.nq != want.nq || h.nv != want.nv || h.nu != want.nu || h.nbody != want.nbody ||
        h.nbuffer != want.nbuffer || h.scalars_size != want.scalars_size) {
        return flame_errorf(FLAME_EINPUT,
                            "env pool state: model sizes differ (saved nq %d nv %d nu %d nbody %d "
                            "nbuffer %d; here nq %d nv %d nu %d nbody %d nbuffer %d)",
                            h.nq, h.nv, h.nu, h.nbody, h.nbuffer, want.nq, want.nv, want.nu,
                            want.nbody, want.nbuffer);
    }
    if (size != envpool_state_size(p)) {
        return flame_errorf(FLAME_EINPUT, "env pool state: %zu bytes, expected %zu", size,
                            envpool_state_size(p));
    }
    b += sizeof h;
    for (int i = 0; i < p->n; i++) {
        mjData *d = env_data(p->envs[i]);
        EnvPoolEnvState s;
        memcpy(&s, b, sizeof s);
        b += sizeof s;
        p->unstable_count[i] = s.unstable_count;
        p->ret[i] = s.ret;
        p->episode[i] = s.episode;
        p->steps[i] = s.steps;
        EnvPoolDataScalars c;
        memcpy(&c, b, sizeof c);
        b += sizeof c;
        memcpy(d->warning, c.warning, sizeof c.warning);
        d->ne = c.ne;
        d->nf = c.nf;
        d->nefc = c.nefc;
        d->ncon = c.ncon;
        d->solver_iter = c.solver_iter;
        d->solver_nnz = c.solver_nnz;
        d->solver_fwdinv[0] = c.solver_fwdinv[0];
        d->solver_fwdinv[1] = c.solver_fwdinv[1];
        d->time = c.time;
        d->energy[0] = c.energy[0];
        d->energy[1] = c.energy[1];
        d->pstack = 0;
        memcpy(d->buffer, b, (size_t)d->nbuffer);
        b += d->nbuffer;
    }
    return FLAME_OK;
}
