/*
 * golden_common.h: the golden files of the authors' reference update (tests/data/golden_<case>.h5,
 * written by tools/gen_reference_golden.py from lzqw/FLAME at 35df7a3) and the comparison of one
 * update of ours with them, shared by the CPU test (test_reference_golden.c) and the CUDA test
 * (gpu/test_golden_cuda.c).
 *
 * A golden file is at once a flame checkpoint (the state before the update, its config and a small
 * replay buffer), a noise bundle (the update's draws and minibatch: Philox draws of run.seed at the
 * update index, so a backend without the bundle draws the same numbers) and, under /reference, what
 * the reference code computed: the state after the update in the checkpoint's tensor layout
 * (params, adam_m, adam_v, grads, ema / target), log alpha with its Adam moments, and
 * /reference/update (named like `flame debug update`'s /update: y, next_a, ent, a_star, x, r, t, w,
 * vbar, logpi, particle_q, cand_q; losses as attributes).
 *
 * Comparisons are per tensor and report max |ours - ref| / scale, the scale being the largest |ref|
 * of the quantity (values, gradients, moments) or the largest change of the update (parameters and
 * their EMA / target copies: |ours - ref| against |ref - before|).
 */
#ifndef FLAME_GOLDEN_COMMON_H
#define FLAME_GOLDEN_COMMON_H

#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flame/agent.h"
#include "flame/backend.h"
#include "flame/ckpt.h"
#include "flame/h5util.h"
#include "flame_test.h"
#include "tolerances.h"

static const char *const GOLDEN_CASES[] = {"flame_m", "flame_m_bk", "flame_r", "sac"};
#define GOLDEN_NCASES ((int)(sizeof GOLDEN_CASES / sizeof GOLDEN_CASES[0]))

static inline void golden_path(const char *name, char *out, size_t n) {
    const char *src = getenv("FLAME_SOURCE_DIR");
    snprintf(out, n, "%s/tests/data/golden_%s.h5", src ? src : "..", name);
}

/* the state after the update and the intermediates, as the reference computed them */
typedef struct {
    float *params[3], *adam_m[3], *adam_v[3], *grads[3], *copy[3]; /* policy, q1, q2 */
    int64_t adam_count[3];
    float log_alpha, alpha_m, alpha_v;
    int64_t alpha_count;
    int B, D, K, Np;
    float *y, *next_a, *ent, *a_star, *x, *r, *t, *w, *vbar, *logpi, *particle_q, *cand_q;
    double critic_loss[2], actor_loss, fm_loss, qterm_loss, entropy, alpha;
    bool has_qterm;
} GoldenRef;

/* reads a float dataset of exactly n elements (NULL when absent, a test failure when misshaped) */
static inline float *golden_read(hid_t f, const char *name, size_t n) {
    if (!h5_exists(f, name)) {
        return NULL;
    }
    hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    hid_t s = H5Dget_space(d);
    hssize_t have = H5Sget_simple_extent_npoints(s);
    float *x = NULL;
    if (have == (hssize_t)n) {
        x = (float *)malloc((n ? n : 1) * sizeof(float));
        if (H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x) < 0) {
            free(x);
            x = NULL;
        }
    }
    EXPECT_MSG(x != NULL, "%s: %lld elements, expected %zu", name, (long long)have, n);
    H5Sclose(s);
    H5Dclose(d);
    return x;
}

static inline double golden_attr(hid_t loc, const char *name) {
    double v = NAN;
    if (H5Aexists(loc, name) > 0) {
        hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
        H5Aread(a, H5T_NATIVE_DOUBLE, &v);
        H5Aclose(a);
    }
    return v;
}

static inline int golden_load(const char *path, const AgentState *shape, const FlameConfig *cfg,
                              GoldenRef *g) {
    memset(g, 0, sizeof *g);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        fprintf(stderr, "cannot open %s (set FLAME_SOURCE_DIR to the source tree, or regenerate it "
                        "with tools/gen_reference_golden.py)\n",
                path);
        return -1;
    }
    const char *net[3] = {"policy", "q1", "q2"};
    size_t n[3] = {shape->pol.n, shape->q1.n, shape->q2.n};
    char name[128];
    for (int k = 0; k < 3; k++) {
        const char *copy = k ? "target" : "ema";
#define GOLDEN_ROLE(field, role)                                                                   \
    snprintf(name, sizeof name, "reference/%s/%s", net[k], role);                                \
    g->field[k] = golden_read(f, name, n[k]);
        GOLDEN_ROLE(params, "params")
        GOLDEN_ROLE(adam_m, "adam_m")
        GOLDEN_ROLE(adam_v, "adam_v")
        GOLDEN_ROLE(grads, "grads")
        GOLDEN_ROLE(copy, copy)
#undef GOLDEN_ROLE
        snprintf(name, sizeof name, "reference/%s", net[k]);
        hid_t grp = H5Gopen2(f, name, H5P_DEFAULT);
        g->adam_count[k] = (int64_t)golden_attr(grp, "adam_count");
        H5Gclose(grp);
    }
    float *la = golden_read(f, "reference/alpha/log_alpha", 1);
    float *am = golden_read(f, "reference/alpha/adam_m", 1);
    float *av = golden_read(f, "reference/alpha/adam_v", 1);
    if (la && am && av) {
        g->log_alpha = *la, g->alpha_m = *am, g->alpha_v = *av;
    }
    free(la), free(am), free(av);
    hid_t ga = H5Gopen2(f, "reference/alpha", H5P_DEFAULT);
    g->alpha_count = (int64_t)golden_attr(ga, "adam_count");
    H5Gclose(ga);

    int B = cfg->update.batch_size, D = shape->L.act_dim, K = cfg->flow.sample_k;
    int Np = cfg->flow.num_particles;
    size_t b = (size_t)B, bd = b * D;
    g->B = B, g->D = D, g->K = K, g->Np = Np;
    g->y = golden_read(f, "reference/update/y", b);
    g->next_a = golden_read(f, "reference/update/next_a", bd);
    g->ent = golden_read(f, "reference/update/ent", b);
    g->a_star = golden_read(f, "reference/update/a_star", bd);
    g->x = golden_read(f, "reference/update/x", bd);
    g->r = golden_read(f, "reference/update/r", b);
    g->t = golden_read(f, "reference/update/t", b);
    g->w = golden_read(f, "reference/update/w", b * K);
    g->vbar = golden_read(f, "reference/update/vbar", bd);
    g->logpi = golden_read(f, "reference/update/logpi", b);
    g->particle_q = golden_read(f, "reference/update/particle_q", b * Np);
    g->cand_q = golden_read(f, "reference/update/cand_q", b * K);
    hid_t gu = H5Gopen2(f, "reference/update", H5P_DEFAULT);
    g->critic_loss[0] = golden_attr(gu, "critic_loss_1");
    g->critic_loss[1] = golden_attr(gu, "critic_loss_2");
    g->actor_loss = golden_attr(gu, "actor_loss");
    g->fm_loss = golden_attr(gu, "fm_loss");
    g->qterm_loss = golden_attr(gu, "qterm_loss");
    g->entropy = golden_attr(gu, "entropy");
    g->alpha = golden_attr(gu, "alpha");
    g->has_qterm = cfg->algo == ALGO_FLAME_M;
    H5Gclose(gu);
    H5Fclose(f);
    return 0;
}

static inline void golden_free(GoldenRef *g) {
    for (int k = 0; k < 3; k++) {
        free(g->params[k]), free(g->adam_m[k]), free(g->adam_v[k]), free(g->grads[k]);
        free(g->copy[k]);
    }
    float *v[] = {g->y, g->next_a, g->ent,  g->a_star, g->x,          g->r,
                  g->t, g->w,      g->vbar, g->logpi,  g->particle_q, g->cand_q};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        free(v[i]);
    }
    memset(g, 0, sizeof *g);
}

/* one implementation's update: its intermediates (NULL where it has none) and metrics */
typedef struct {
    const float *y, *next_a, *ent, *a_star, *x, *r, *t, *w, *vbar, *logpi;
    UpdateMetrics m;
} GoldenGot;

/* the tolerances of one implementation (tests/tolerances.h) */
typedef struct {
    FlameTol value, grad, moment, step, scalar;
} GoldenTols;

/* Compares n values; fails the test when an element exceeds atol x scale + rtol x |ref|, the scale
   being the largest |ref| or, with the state before the update, the largest |ref - before| (the
   update's change). Returns max |ours - ref| / scale. */
static inline double golden_cmp(const char *what, const float *got, const float *ref,
                                   const float *before, size_t n, FlameTol tol) {
    if (!got || !ref) {
        EXPECT_MSG(got && ref, "%s: missing (%s)", what, got ? "reference" : "ours");
        return INFINITY;
    }
    double scale = 0, dmax = 0;
    for (size_t i = 0; i < n; i++) {
        double s = before ? fabs((double)ref[i] - before[i]) : fabs((double)ref[i]);
        scale = s > scale ? s : scale;
        double d = fabs((double)got[i] - ref[i]);
        dmax = d > dmax ? d : dmax;
    }
    EXPECT_CLOSE_Q(what, got, ref, n, tol.atol * scale + 1e-30, tol.rtol);
    return scale > 0 ? dmax / scale : (dmax > 0 ? INFINITY : 0.0);
}

/* per-tensor comparison of a parameter-shaped array; prints the worst tensor */
static inline void golden_cmp_blob(const char *tag, const char *what, const ParamTable *t,
                                   const float *got, const float *ref, const float *before,
                                   FlameTol tol) {
    double worst = 0;
    const char *wname = "";
    char nm[256];
    for (int i = 0; i < t->count; i++) {
        const TensorDesc *d = &t->t[i];
        snprintf(nm, sizeof nm, "%s %s %s", tag, what, d->name);
        double e = golden_cmp(nm, got ? got + d->offset : NULL, ref ? ref + d->offset : NULL,
                              before ? before + d->offset : NULL, d->size, tol);
        if (e >= worst) {
            worst = e;
            wname = d->name;
        }
    }
    if (before) {
        printf("       %-22s %-20s %.3g of the change (%s)\n", tag, what, worst, wname);
    } else {
        printf("       %-22s %-20s %.3g (%s)\n", tag, what, worst, wname);
    }
}

static inline void golden_scalar(const char *tag, const char *what, double got, double ref,
                                 FlameTol tol) {
    char nm[256];
    snprintf(nm, sizeof nm, "%s %s", tag, what);
    EXPECT_NEAR_Q(nm, got, ref, tol.atol * fabs(ref) + 1e-30, tol.rtol);
    printf("       %-22s %-20s %.3g (got %.9g ref %.9g)\n", tag, what,
           fabs(got - ref) / (fabs(ref) > 0 ? fabs(ref) : 1.0), got, ref);
}

/* Everything one update produced against the reference. `before` is the state the update started
   from, `after` ours after it. compare_fm: our flow loss has the reference's form (the B*K-row
   form of FLAME-M with flow.collapse_k=false; FLAME-R likewise; SAC's actor loss always). */
static inline void golden_check(const char *tag, const FlameConfig *cfg, const GoldenRef *R,
                                const AgentState *before, const AgentState *after,
                                const GoldenGot *G, const GoldenTols *T, bool compare_fm) {
    bool flame = cfg->algo != ALGO_SAC;
    size_t B = (size_t)R->B, BD = B * R->D;
    struct {
        const char *name;
        const float *got, *ref;
        size_t n;
        bool want;
    } v[] = {
        {"TD target y", G->y, R->y, B, true},
        {"next action a'", G->next_a, R->next_a, BD, true},
        {"entropy H(s')", G->ent, R->ent, B, true},
        {"best particle a*", G->a_star, R->a_star, BD, flame},
        {"noisy action x", G->x, R->x, BD, flame},
        {"time t", G->t, R->t, B, flame},
        {"time r", G->r, R->r, B, cfg->algo == ALGO_FLAME_M},
        {"candidate weights w", G->w, R->w, B * R->K, flame},
        {"v-bar", G->vbar, R->vbar, BD, flame},
        {"log pi (actor)", G->logpi, R->logpi, B, !flame && G->logpi},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        if (v[i].want) {
            char nm[256];
            snprintf(nm, sizeof nm, "%s %s", tag, v[i].name);
            double e = golden_cmp(nm, v[i].got, v[i].ref, NULL, v[i].n, T->value);
            printf("       %-22s %-20s %.3g\n", tag, v[i].name, e);
        }
    }
    golden_scalar(tag, "critic loss 1", G->m.critic_loss[0], R->critic_loss[0], T->scalar);
    golden_scalar(tag, "critic loss 2", G->m.critic_loss[1], R->critic_loss[1], T->scalar);
    golden_scalar(tag, "mean entropy", G->m.entropy, R->entropy, T->scalar);
    if (R->has_qterm) {
        golden_scalar(tag, "-Q term loss", G->m.qterm_loss, R->qterm_loss, T->scalar);
    }
    if (compare_fm) {
        golden_scalar(tag, "actor loss", G->m.actor_loss, R->actor_loss, T->scalar);
    }

    const ParamTable *tab[3] = {&after->L.pol_table, &after->L.q_table, &after->L.q_table};
    const ParamBlob *ob[3] = {&after->pol, &after->q1, &after->q2};
    const ParamBlob *bb[3] = {&before->pol, &before->q1, &before->q2};
    const float *ocopy[3] = {after->pol_ema, after->q1_targ, after->q2_targ};
    const float *bcopy[3] = {before->pol_ema, before->q1_targ, before->q2_targ};
    const char *net[3] = {"policy", "critic 1", "critic 2"};
    const char *copy[3] = {"EMA", "target", "target"};
    for (int k = 0; k < 3; k++) {
        char what[64];
        snprintf(what, sizeof what, "%s grads", net[k]);
        golden_cmp_blob(tag, what, tab[k], ob[k]->grads, R->grads[k], NULL, T->grad);
        snprintf(what, sizeof what, "%s params", net[k]);
        golden_cmp_blob(tag, what, tab[k], ob[k]->params, R->params[k], bb[k]->params, T->step);
        snprintf(what, sizeof what, "%s adam m", net[k]);
        golden_cmp_blob(tag, what, tab[k], ob[k]->m, R->adam_m[k], NULL, T->moment);
        snprintf(what, sizeof what, "%s adam v", net[k]);
        golden_cmp_blob(tag, what, tab[k], ob[k]->v, R->adam_v[k], NULL, T->moment);
        if (k || flame) {
            snprintf(what, sizeof what, "%s %s", net[k], copy[k]);
            golden_cmp_blob(tag, what, tab[k], ocopy[k], R->copy[k], bcopy[k], T->step);
        }
    }
    golden_scalar(tag, "log alpha", after->log_alpha, R->log_alpha, T->scalar);
    golden_scalar(tag, "alpha adam m", after->alpha_m, R->alpha_m, T->moment);
    golden_scalar(tag, "alpha adam v", after->alpha_v, R->alpha_v, T->moment);
    golden_scalar(tag, "alpha", G->m.alpha, R->alpha, T->scalar);
    /* optimiser step counts: the reference's optax counts are ours */
    EXPECT_MSG(after->critic_steps == R->adam_count[1] && after->critic_steps == R->adam_count[2],
               "%s: critic Adam steps %lld, reference %lld", tag, (long long)after->critic_steps,
               (long long)R->adam_count[1]);
    EXPECT_MSG(after->actor_steps == R->adam_count[0], "%s: actor Adam steps %lld, reference %lld",
               tag, (long long)after->actor_steps, (long long)R->adam_count[0]);
    EXPECT_MSG(after->alpha_steps == R->alpha_count, "%s: alpha Adam steps %lld, reference %lld",
               tag, (long long)after->alpha_steps, (long long)R->alpha_count);
}

#endif
