/*
 * test_env_oracle.c: our MJCF models against Gymnasium's asset files (test oracle only, read from
 * $FLAME_REFERENCE_DIR/gym-assets; the test exits 77 = skipped when that folder is absent).
 *
 * Two checks per env id whose asset is present:
 *   1. the compiled models agree on every physics array (bodies, joints, dofs, geoms, sites,
 *      actuators, tendons, qpos0) and on mjOption; names and visual-only fields are not compared;
 *   2. dynamics: from identical states and identical random actions, 50 env steps on each model
 *      agree on qpos/qvel, observation and reward within 1e-6 + 1e-6|ref| (
 *      trajectories are meaningful for about 50 steps at about 1e-6; identical compiled models give
 *      identical numbers, so any difference here is a model difference).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <mujoco/mjxmacro.h>

#include "flame/env.h"
#include "flame/rng.h"
#include "flame_test.h"

static const char *oracle_dir = NULL;

/* Gymnasium's asset file for an id */
static const char *oracle_asset(const EnvSpec *s) {
    const char *fam = s->family;
    if (!strcmp(fam, "HalfCheetah"))
        return "half_cheetah.xml";
    if (!strcmp(fam, "Hopper"))
        return "hopper.xml";
    if (!strcmp(fam, "Walker2d"))
        return s->version == 4 ? "walker2d.xml" : "walker2d_v5.xml";
    if (!strcmp(fam, "Ant"))
        return "ant.xml";
    if (!strcmp(fam, "Humanoid"))
        return "humanoid.xml";
    if (!strcmp(fam, "Swimmer"))
        return "swimmer.xml";
    if (!strcmp(fam, "InvertedPendulum"))
        return "inverted_pendulum.xml";
    if (!strcmp(fam, "InvertedDoublePendulum"))
        return "inverted_double_pendulum.xml";
    if (!strcmp(fam, "Reacher"))
        return "reacher.xml";
    if (!strcmp(fam, "Pusher"))
        return s->version == 4 ? "pusher.xml" : "pusher_v5.xml";
    return NULL;
}

static int oracle_path(const EnvSpec *s, char *buf, size_t n) {
    const char *a = oracle_asset(s);
    if (!a) {
        return 0;
    }
    snprintf(buf, n, "%s/%s", oracle_dir, a);
    struct stat st;
    return stat(buf, &st) == 0;
}

static int starts_with(const char *s, const char *p) {
    return strncmp(s, p, strlen(p)) == 0;
}

static int ends_with(const char *s, const char *p) {
    size_t a = strlen(s), b = strlen(p);
    return a >= b && strcmp(s + a - b, p) == 0;
}

/* physics arrays: by prefix, minus visual-only and user fields */
static int oracle_compared(const char *name) {
    static const char *prefixes[] = {"qpos0", "qpos_spring", "body_",     "jnt_",    "dof_",
                                     "geom_", "site_",       "actuator_", "tendon_", "wrap_"};
    static const char *skip[] = {"geom_rgba",    "geom_matid",  "geom_group",  "site_rgba",
                                 "site_matid",   "site_group",  "tendon_rgba", "tendon_matid",
                                 "tendon_group", "tendon_width"};
    int hit = 0;
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
        hit |= starts_with(name, prefixes[i]);
    }
    for (size_t i = 0; i < sizeof skip / sizeof skip[0]; i++) {
        hit &= strcmp(name, skip[i]) != 0;
    }
    return hit && !ends_with(name, "_user");
}

static int oracle_cmp_array(const char *id, const char *name, const char *type, const void *a,
                            const void *b, long na, long nb, size_t elem) {
    if (!oracle_compared(name)) {
        return 0;
    }
    if (na != nb) {
        fprintf(stderr, "  FAIL [%s] model array %s: size %ld vs %ld\n", id, name, na, nb);
        return 1;
    }
    if (!strcmp(type, "mjtNum")) {
        const double *x = a, *y = b;
        for (long i = 0; i < na; i++) {
            /* compiled from the same numbers: equal up to the compiler's round-off */
            if (!(fabs(x[i] - y[i]) <= 1e-12 + 1e-12 * fabs(y[i]))) {
                fprintf(stderr, "  FAIL [%s] model array %s[%ld]: ours %.17g, Gymnasium %.17g\n",
                        id, name, i, x[i], y[i]);
                return 1;
            }
        }
        return 0;
    }
    if (memcmp(a, b, (size_t)na * elem) != 0) {
        fprintf(stderr, "  FAIL [%s] model array %s (%s) differs\n", id, name, type);
        return 1;
    }
    return 0;
}

static int oracle_cmp_models(const char *id, const mjModel *a, const mjModel *b) {
    int bad = 0;
    const int sizes_a[] = {a->nq,    a->nv,    a->nu,      a->na,    a->nbody, a->njnt,
                           a->ngeom, a->nsite, a->ntendon, a->nwrap, a->neq};
    const int sizes_b[] = {b->nq,    b->nv,    b->nu,      b->na,    b->nbody, b->njnt,
                           b->ngeom, b->nsite, b->ntendon, b->nwrap, b->neq};
    if (memcmp(sizes_a, sizes_b, sizeof sizes_a) != 0) {
        fprintf(stderr, "  FAIL [%s] model sizes differ\n", id);
        return 1;
    }
    if (memcmp(&a->opt, &b->opt, sizeof a->opt) != 0) {
        fprintf(stderr, "  FAIL [%s] mjOption differs (timestep %g/%g, integrator %d/%d)\n", id,
                a->opt.timestep, b->opt.timestep, a->opt.integrator, b->opt.integrator);
        bad++;
    }
    MJMODEL_POINTERS_PREAMBLE(a)
#define X(type, name, n0, n1)                                                                      \
    bad += oracle_cmp_array(id, #name, #type, a->name, b->name, (long)a->n0 * (long)(n1),          \
                            (long)b->n0 * (long)(n1), sizeof(type));
    MJMODEL_POINTERS
#undef X
        /* the preamble declares every size; not all appear in the arrays */
        (void) nq;
    (void)nv;
    (void)na;
    (void)nu;
    (void)nmocap;
    (void)nuser_body;
    (void)nuser_jnt;
    (void)nuser_geom;
    (void)nuser_site;
    (void)nuser_cam;
    (void)nuser_tendon;
    (void)nuser_actuator;
    (void)nuser_sensor;
    return bad;
}

FLAME_TEST(compiled_models_match) {
    int compared = 0;
    for (int k = 0; k < env_spec_count(); k++) {
        const EnvSpec *s = env_spec_at(k);
        char path[1024];
        if (!oracle_path(s, path, sizeof path)) {
            printf("  (%s: no reference asset, not compared)\n", s->id);
            continue;
        }
        mjModel *ours = NULL, *ref = NULL;
        EXPECT(env_model_load(s, NULL, &ours) == FLAME_OK);
        int rc = env_model_load(s, path, &ref);
        EXPECT_MSG(rc == FLAME_OK, "%s", flame_last_error());
        if (ours && ref) {
            int bad = oracle_cmp_models(s->id, ours, ref);
            EXPECT_MSG(bad == 0, "%s: %d model arrays differ", s->id, bad);
            compared++;
        }
        mj_deleteModel(ours);
        mj_deleteModel(ref);
    }
    EXPECT(compared > 0);
}

FLAME_TEST(dynamics_match_50_steps) {
    for (int k = 0; k < env_spec_count(); k++) {
        const EnvSpec *s = env_spec_at(k);
        char path[1024];
        if (!oracle_path(s, path, sizeof path)) {
            continue;
        }
        mjModel *ma = NULL, *mb = NULL;
        EXPECT(env_model_load(s, NULL, &ma) == FLAME_OK);
        EXPECT(env_model_load(s, path, &mb) == FLAME_OK);
        if (!ma || !mb) {
            mj_deleteModel(ma);
            mj_deleteModel(mb);
            continue;
        }
        Env *a = env_create(s, ma), *b = env_create(s, mb);
        const int nq = ma->nq, nv = ma->nv, S = s->obs_dim, D = s->act_dim;
        double *qa = calloc((size_t)(nq + nv) * 2, sizeof(double)), *qb = qa + nq + nv;
        double *oa = calloc((size_t)S * 2, sizeof(double)), *ob = oa + S;
        float *act = calloc((size_t)D, sizeof(float));
        double worst = 0;
        for (uint32_t ep = 0; ep < 3; ep++) {
            env_reset(a, 7, 0, ep, oa);
            env_get_state(a, qa, qa + nq);
            env_set_state(b, qa, qa + nq, ob);
            env_set_state(a, qa, qa + nq, oa);
            EXPECT_CLOSE_DQ("obs after set_state", oa, ob, S, 1e-6, 1e-6);
            for (uint32_t t = 0; t < 50; t++) {
                for (int j = 0; j < D; j++) {
                    act[j] =
                        2.0f * rng_uniform(11, RNG_STREAM_TEST, ep * 1000 + t, 0, (uint32_t)j) -
                        1.0f;
                }
                EnvStepInfo ia, ib;
                env_step(a, act, oa, &ia);
                env_step(b, act, ob, &ib);
                env_get_state(a, qa, qa + nq);
                env_get_state(b, qb, qb + nq);
                char what[96];
                snprintf(what, sizeof what, "%s ep %u step %u qpos,qvel", s->id, ep, t);
                EXPECT_CLOSE_DQ(what, qa, qb, nq + nv, 1e-6, 1e-6);
                snprintf(what, sizeof what, "%s ep %u step %u obs", s->id, ep, t);
                EXPECT_CLOSE_DQ(what, oa, ob, S, 1e-6, 1e-6);
                EXPECT_NEAR("reward", ia.reward, ib.reward, 1e-6, 1e-6);
                EXPECT(ia.terminated == ib.terminated);
                EXPECT(!ia.unstable && !ib.unstable);
                for (int i = 0; i < nq + nv; i++) {
                    double dd = fabs(qa[i] - qb[i]);
                    worst = dd > worst ? dd : worst;
                }
            }
        }
        printf("  %-26s 3 x 50 steps, max |d qpos,qvel| = %.3g\n", s->id, worst);
        free(qa);
        free(oa);
        free(act);
        env_free(a);
        env_free(b);
        mj_deleteModel(ma);
        mj_deleteModel(mb);
    }
}

int main(void) {
    const char *ref = getenv("FLAME_REFERENCE_DIR");
    static char dir[1024];
    struct stat st;
    if (!ref || !ref[0]) {
        printf("FLAME_REFERENCE_DIR not set: skipping the oracle comparison\n");
        return 77;
    }
    snprintf(dir, sizeof dir, "%s/gym-assets", ref);
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        printf("%s absent: skipping the oracle comparison\n", dir);
        return 77;
    }
    oracle_dir = dir;
    RUN_TEST(compiled_models_match);
    RUN_TEST(dynamics_match_50_steps);
    return flame_test_report();
}
