/*
 * test_env.c: the environments on their own: model facts (Gymnasium's model files, MuJoCo 2.2.2), observation
 * sizes per version, reset noise, action scaling without clipping, the MuJoCo hooks and bad input.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "flame/env.h"
#include "flame/envpool.h"
#include "flame/rng.h"
#include "flame_test.h"

/* facts of Gymnasium's models, one row per family */
typedef struct {
    const char *family;
    double timestep;
    int frame_skip, nq, nv, nu, nbody, ngeom_v4, ngeom_v5, integrator;
    double ctrl_lo, ctrl_hi;
    double gear[17];
    double total_mass;
    int obs_v4, obs_v5, act_dim;
} ModelFacts;

/* clang-format off */
static const ModelFacts facts[] = {
    {"HalfCheetah", 0.01, 5, 9, 9, 6, 8, 9, 9, mjINT_EULER, -1, 1, {120, 90, 60, 120, 60, 30},
     14.0, 17, 17, 6},
    {"Hopper", 0.002, 4, 6, 6, 3, 5, 5, 5, mjINT_RK4, -1, 1, {200, 200, 200}, 15.82, 11, 11, 3},
    {"Walker2d", 0.002, 4, 9, 9, 6, 8, 8, 8, mjINT_RK4, -1, 1, {100, 100, 100, 100, 100, 100},
     23.68, 17, 17, 6},
    {"Ant", 0.01, 5, 15, 14, 8, 14, 14, 14, mjINT_RK4, -1, 1,
     {150, 150, 150, 150, 150, 150, 150, 150}, 0.911, 27, 105, 8},
    {"Humanoid", 0.003, 5, 24, 23, 17, 14, 18, 18, mjINT_RK4, -0.4, 0.4,
     {100, 100, 100, 100, 100, 300, 200, 100, 100, 300, 200, 25, 25, 25, 25, 25, 25}, 42.12, 376,
     348, 17},
    {"Swimmer", 0.01, 4, 5, 5, 2, 4, 4, 4, mjINT_RK4, -1, 1, {150, 150}, 106.8, 8, 8, 2},
    {"InvertedPendulum", 0.02, 2, 2, 2, 1, 3, 3, 3, mjINT_RK4, -3, 3, {100}, 15.49, 4, 4, 1},
    {"InvertedDoublePendulum", 0.01, 5, 3, 3, 1, 4, 5, 5, mjINT_RK4, -1, 1, {500}, 18.87, 11, 9,
     1},
    {"Reacher", 0.01, 2, 4, 4, 2, 5, 10, 10, mjINT_RK4, -1, 1, {200, 200}, 0.078, 11, 10, 2},
    {"Pusher", 0.01, 5, 11, 11, 7, 13, 21, 20, mjINT_EULER, -2, 2, {1, 1, 1, 1, 1, 1, 1}, 13.67,
     23, 23, 7},
};
/* clang-format on */

static const ModelFacts *facts_of(const char *family) {
    for (size_t i = 0; i < sizeof facts / sizeof facts[0]; i++) {
        if (!strcmp(facts[i].family, family)) {
            return &facts[i];
        }
    }
    return NULL;
}

static Env *make_env(const char *id, mjModel **m) {
    const EnvSpec *s = env_spec_find(id);
    FLAME_CHECK(s, "unknown id %s", id);
    FLAME_CHECK(env_model_load(s, NULL, m) == FLAME_OK, "%s", flame_last_error());
    return env_create(s, *m);
}

FLAME_TEST(registry_has_every_id) {
    const char *fams[] = {"HalfCheetah", "Hopper",  "Walker2d",         "Ant",
                          "Humanoid",    "Swimmer", "InvertedPendulum", "InvertedDoublePendulum",
                          "Reacher",     "Pusher"};
    EXPECT(env_spec_count() == 20);
    for (size_t f = 0; f < sizeof fams / sizeof fams[0]; f++) {
        for (int v = 4; v <= 5; v++) {
            char id[64];
            snprintf(id, sizeof id, "%s-v%d", fams[f], v);
            const EnvSpec *s = env_spec_find(id);
            EXPECT_MSG(s != NULL, "%s missing", id);
            if (s) {
                EXPECT(s->version == v && !strcmp(s->family, fams[f]));
            }
        }
    }
    EXPECT(env_spec_find("HalfCheetah-v3") == NULL);
    EXPECT(env_spec_find(NULL) == NULL);
    EXPECT(env_spec_at(-1) == NULL && env_spec_at(env_spec_count()) == NULL);
    /* time limits and thresholds of the registry */
    EXPECT(env_spec_find("Reacher-v5")->max_episode_steps == 50);
    EXPECT(env_spec_find("Pusher-v4")->max_episode_steps == 100);
    EXPECT(env_spec_find("Ant-v5")->max_episode_steps == 1000);
    EXPECT(env_spec_find("Hopper-v5")->reward_threshold == 3800.0);
    EXPECT(isnan(env_spec_find("Walker2d-v4")->reward_threshold));
    EXPECT(isnan(env_spec_find("Humanoid-v5")->reward_threshold));
    EXPECT(env_spec_find("Reacher-v4")->reward_threshold == -3.75);
}

FLAME_TEST(model_facts_match_gymnasium) {
    for (int k = 0; k < env_spec_count(); k++) {
        const EnvSpec *s = env_spec_at(k);
        const ModelFacts *F = facts_of(s->family);
        EXPECT_MSG(F != NULL, "%s: no facts", s->id);
        if (!F) {
            continue;
        }
        mjModel *m = NULL;
        Env *e = make_env(s->id, &m);
        EXPECT_MSG(m->opt.timestep == F->timestep, "%s timestep %g", s->id, m->opt.timestep);
        EXPECT_MSG(env_frame_skip(e) == F->frame_skip, "%s frame_skip", s->id);
        EXPECT_MSG(m->nq == F->nq && m->nv == F->nv && m->nu == F->nu && m->nbody == F->nbody,
                   "%s sizes nq %d nv %d nu %d nbody %d", s->id, m->nq, m->nv, m->nu, m->nbody);
        EXPECT_MSG(m->ngeom == (s->version == 4 ? F->ngeom_v4 : F->ngeom_v5), "%s ngeom %d", s->id,
                   m->ngeom);
        EXPECT_MSG(m->opt.integrator == F->integrator, "%s integrator %d", s->id,
                   m->opt.integrator);
        EXPECT_MSG(s->obs_dim == (s->version == 4 ? F->obs_v4 : F->obs_v5), "%s obs_dim", s->id);
        EXPECT_MSG(s->act_dim == F->act_dim && env_nq(e) == F->nq && env_nv(e) == F->nv,
                   "%s act_dim", s->id);
        double lo[17], hi[17], mass = 0;
        env_action_bounds(e, lo, hi);
        for (int a = 0; a < m->nu; a++) {
            EXPECT_MSG(lo[a] == F->ctrl_lo && hi[a] == F->ctrl_hi, "%s ctrlrange %d", s->id, a);
            EXPECT_MSG(m->actuator_gear[6 * a] == F->gear[a], "%s gear %d = %g", s->id, a,
                       m->actuator_gear[6 * a]);
        }
        for (int b = 0; b < m->nbody; b++) {
            mass += m->body_mass[b];
        }
        /* the table gives 2-4 significant digits */
        EXPECT_NEAR("total mass", mass, F->total_mass, 0, 6e-3);
        env_free(e);
        mj_deleteModel(m);
    }
    /* solver settings that matter (Gymnasium's model files, MuJoCo 2.2.2) */
    mjModel *m = NULL;
    EXPECT(env_model_load(env_spec_find("Humanoid-v5"), NULL, &m) == FLAME_OK);
    EXPECT(m->opt.solver == mjSOL_PGS && m->opt.iterations == 50);
    mj_deleteModel(m);
    EXPECT(env_model_load(env_spec_find("Pusher-v5"), NULL, &m) == FLAME_OK);
    EXPECT(m->opt.iterations == 20 && m->opt.gravity[2] == 0);
    mj_deleteModel(m);
    EXPECT(env_model_load(env_spec_find("InvertedDoublePendulum-v5"), NULL, &m) == FLAME_OK);
    EXPECT(m->opt.gravity[0] == 1e-5 && m->opt.gravity[2] == -9.81);
    mj_deleteModel(m);
    /* start states: Hopper's rootz carries ref 1.25, Reacher's target slides start at (.1, -.1) */
    EXPECT(env_model_load(env_spec_find("Hopper-v4"), NULL, &m) == FLAME_OK);
    EXPECT(m->qpos0[1] == 1.25);
    mj_deleteModel(m);
    EXPECT(env_model_load(env_spec_find("Reacher-v4"), NULL, &m) == FLAME_OK);
    EXPECT(m->qpos0[2] == 0.1 && m->qpos0[3] == -0.1);
    mj_deleteModel(m);
    EXPECT(env_model_load(env_spec_find("Ant-v4"), NULL, &m) == FLAME_OK);
    EXPECT(m->qpos0[2] == 0.75 && m->qpos0[3] == 1.0);
    mj_deleteModel(m);
}

FLAME_TEST(observation_sizes_and_finiteness) {
    for (int k = 0; k < env_spec_count(); k++) {
        const EnvSpec *s = env_spec_at(k);
        mjModel *m = NULL;
        Env *e = make_env(s->id, &m);
        const int S = s->obs_dim;
        double *obs = malloc((size_t)(S + 8) * sizeof(double));
        float *act = calloc((size_t)s->act_dim, sizeof(float));
        for (int i = 0; i < S + 8; i++) {
            obs[i] = -12345.0;
        }
        env_reset(e, 3, 0, 0, obs);
        int written = 1, tail_ok = 1;
        for (int i = 0; i < S; i++) {
            written &= obs[i] != -12345.0 && isfinite(obs[i]);
        }
        for (int i = S; i < S + 8; i++) {
            tail_ok &= obs[i] == -12345.0;
        }
        EnvStepInfo info;
        for (int t = 0; t < 5; t++) {
            for (int j = 0; j < s->act_dim; j++) {
                act[j] = 2.0f * rng_uniform(9, RNG_STREAM_TEST, (uint32_t)t, 0, (uint32_t)j) - 1.0f;
            }
            env_step(e, act, obs, &info);
            for (int i = 0; i < S; i++) {
                written &= isfinite(obs[i]);
            }
            for (int i = S; i < S + 8; i++) {
                tail_ok &= obs[i] == -12345.0;
            }
            written &= isfinite(info.reward) && !info.unstable;
        }
        EXPECT_MSG(written && tail_ok, "%s: obs of %d values written=%d tail untouched=%d", s->id,
                   S, written, tail_ok);
        free(obs);
        free(act);
        env_free(e);
        mj_deleteModel(m);
    }
}

FLAME_TEST(reset_noise_is_addressed_and_bounded) {
    mjModel *m = NULL;
    Env *e = make_env("Hopper-v5", &m);
    double a[11], b[11], c[11], q[6], v[6];
    env_reset(e, 42, 3, 7, a);
    env_reset(e, 42, 3, 7, b);
    EXPECT(memcmp(a, b, sizeof a) == 0); /* same address, same numbers */
    env_reset(e, 42, 3, 8, c);
    EXPECT(memcmp(a, c, sizeof a) != 0); /* next episode */
    env_reset(e, 42, 4, 7, c);
    EXPECT(memcmp(a, c, sizeof a) != 0); /* next env */
    env_reset(e, 43, 3, 7, c);
    EXPECT(memcmp(a, c, sizeof a) != 0); /* other seed */
    /* uniform +-5e-3 around qpos0 and zero velocity */
    double maxq = 0, maxv = 0;
    for (uint32_t ep = 0; ep < 200; ep++) {
        env_reset(e, 1, 0, ep, NULL);
        env_get_state(e, q, v);
        for (int i = 0; i < 6; i++) {
            maxq = fmax(maxq, fabs(q[i] - m->qpos0[i]));
            maxv = fmax(maxv, fabs(v[i]));
        }
    }
    EXPECT(maxq <= 5e-3 && maxq > 4e-3 && maxv <= 5e-3 && maxv > 4e-3);
    env_free(e);
    mj_deleteModel(m);

    /* HalfCheetah: qpos uniform +-0.1, qvel normal with std 0.1 */
    e = make_env("HalfCheetah-v4", &m);
    double sum = 0, sum2 = 0, qmax = 0, q9[9], v9[9];
    const int reps = 2000;
    for (int ep = 0; ep < reps; ep++) {
        env_reset(e, 5, 1, (uint32_t)ep, NULL);
        env_get_state(e, q9, v9);
        for (int i = 0; i < 9; i++) {
            sum += v9[i];
            sum2 += v9[i] * v9[i];
            qmax = fmax(qmax, fabs(q9[i] - m->qpos0[i]));
        }
    }
    double n = 9.0 * reps, mean = sum / n, sd = sqrt(sum2 / n - mean * mean);
    EXPECT_NEAR("qvel noise std", sd, 0.1, 0, 0.03); /* 18000 draws: std of the estimate ~0.5% */
    EXPECT_NEAR("qvel noise mean", mean, 0.0, 0.003, 0);
    EXPECT(qmax <= 0.1 && qmax > 0.099);
    env_free(e);
    mj_deleteModel(m);

    /* Reacher: goal inside the 0.2 disc, target velocity zero; Pusher: arm at qpos0, object away */
    e = make_env("Reacher-v5", &m);
    double rq[4], rv[4];
    for (uint32_t ep = 0; ep < 300; ep++) {
        env_reset(e, 8, 2, ep, NULL);
        env_get_state(e, rq, rv);
        EXPECT(hypot(rq[2], rq[3]) < 0.2 && rv[2] == 0 && rv[3] == 0 && fabs(rv[0]) <= 0.005);
        EXPECT(fabs(rq[0]) <= 0.1 && fabs(rq[1]) <= 0.1);
    }
    env_free(e);
    mj_deleteModel(m);
    e = make_env("Pusher-v5", &m);
    double pq[11], pv[11];
    for (uint32_t ep = 0; ep < 300; ep++) {
        env_reset(e, 8, 2, ep, NULL);
        env_get_state(e, pq, pv);
        int arm_at_rest = 1;
        for (int i = 0; i < 7; i++) {
            arm_at_rest &= pq[i] == m->qpos0[i] && fabs(pv[i]) <= 0.005;
        }
        EXPECT(arm_at_rest);
        EXPECT(pq[7] >= -0.3 && pq[7] <= 0 && fabs(pq[8]) <= 0.2 && hypot(pq[7], pq[8]) > 0.17);
        EXPECT(pq[9] == 0 && pq[10] == 0 && pv[7] == 0 && pv[10] == 0);
    }
    env_free(e);
    mj_deleteModel(m);
}

FLAME_TEST(actions_scale_without_clipping) {
    mjModel *m = NULL;
    Env *e = make_env("Humanoid-v4", &m), *e2 = NULL;
    mjModel *m2 = NULL;
    e2 = make_env("Humanoid-v4", &m2);
    float act[17];
    double ctrl[17], o1[376], o2[376];
    for (int j = 0; j < 17; j++) {
        act[j] = (j % 3 == 0) ? 1.5f : (float)(0.1 * j - 0.8); /* some outside [-1, 1] */
        ctrl[j] = 0.0 + (double)act[j] * 0.4;
    }
    env_reset(e, 1, 0, 0, NULL);
    env_reset(e2, 1, 0, 0, NULL);
    EnvStepInfo i1, i2;
    env_step(e, act, o1, &i1);
    env_step_ctrl(e2, ctrl, o2, &i2);
    EXPECT(memcmp(o1, o2, sizeof o1) == 0 && i1.reward == i2.reward);
    /* d->ctrl keeps the unclipped value (MuJoCo clamps only inside the force computation) */
    EXPECT(env_data(e)->ctrl[0] == (double)1.5f * 0.4);
    env_free(e);
    env_free(e2);
    mj_deleteModel(m);
    mj_deleteModel(m2);

    /* the control cost uses the unclipped control: HalfCheetah, all ctrl = 2 (ctrlrange +-1) */
    e = make_env("HalfCheetah-v5", &m);
    double c2[6] = {2, 2, 2, 2, 2, 2}, c1[6] = {1, 1, 1, 1, 1, 1}, ob[17], q[9], v[9];
    env_reset(e, 1, 0, 0, NULL);
    env_get_state(e, q, v);
    double x0 = q[0];
    env_step_ctrl(e, c2, ob, &i1);
    env_get_state(e, q, v);
    const double fwd2 = (q[0] - x0) / 0.05;
    EXPECT_NEAR("reward with ctrl 2", i1.reward, fwd2 - 0.1 * 6 * 4.0, 1e-12, 1e-12);
    env_reset(e, 1, 0, 0, NULL);
    env_step_ctrl(e, c1, o1, &i2);
    /* same motion (MuJoCo clamps 2 to 1), different cost */
    EXPECT(memcmp(ob, o1, sizeof ob) == 0);
    EXPECT_NEAR("cost difference", i2.reward - i1.reward, 0.1 * 6 * (4.0 - 1.0), 1e-12, 1e-12);
    env_free(e);
    mj_deleteModel(m);
}

FLAME_TEST(set_state_round_trip) {
    mjModel *m = NULL;
    Env *e = make_env("Walker2d-v5", &m);
    double q[9], v[9], q2[9], v2[9], o[17];
    for (int i = 0; i < 9; i++) {
        q[i] = m->qpos0[i] + 0.01 * i;
        v[i] = 0.1 * i - 0.3;
    }
    env_set_state(e, q, v, o);
    env_get_state(e, q2, v2);
    EXPECT(memcmp(q, q2, sizeof q) == 0 && memcmp(v, v2, sizeof v) == 0);
    /* Walker2d obs: qpos[1:9] then clipped qvel */
    EXPECT(o[0] == q[1] && o[7] == q[8] && o[8] == v[0] && o[16] == v[8]);
    v[3] = 25.0;
    env_set_state(e, q, v, o);
    EXPECT(o[8 + 3] == 10.0);
    env_free(e);
    mj_deleteModel(m);
}

FLAME_TEST(mujoco_hooks_and_no_log_file) {
    mjModel *m = NULL;
    unlink("MUJOCO_LOG.TXT");
    Env *e = make_env("HalfCheetah-v5", &m);
    EXPECT(mju_user_warning != NULL && mju_user_error != NULL);
    double q[9] = {0}, v[9] = {0}, o[17], c[6] = {0};
    v[3] = 1e12; /* beyond mjMAXVAL: MuJoCo warns and resets the data itself */
    env_set_state(e, q, v, NULL);
    uint64_t w0 = env_mujoco_warning_count();
    EnvStepInfo info;
    env_step_ctrl(e, c, o, &info);
    EXPECT(info.unstable == 1 && info.terminated == 0 && info.reward == 0);
    EXPECT(env_mujoco_warning_count() > w0);
    for (int i = 0; i < 17; i++) {
        EXPECT(isfinite(o[i]));
    }
    EXPECT(access("MUJOCO_LOG.TXT", F_OK) != 0);
    /* a NaN control is caught too */
    env_reset(e, 1, 0, 0, NULL);
    c[2] = NAN;
    env_step_ctrl(e, c, o, &info);
    EXPECT(info.unstable == 1);
    c[2] = 0;
    env_reset(e, 1, 0, 0, NULL);
    env_step_ctrl(e, c, o, &info);
    EXPECT(info.unstable == 0);
    env_free(e);
    mj_deleteModel(m);
}

static int one_line(const char *s) {
    return s[0] != 0 && strchr(s, '\n') == NULL;
}

FLAME_TEST(bad_input_gives_einput_and_a_message) {
    mjModel *m = (mjModel *)1;
    flame_clear_error();
    EXPECT(env_model_load(NULL, NULL, &m) == FLAME_EINPUT && m == NULL);
    EXPECT(strstr(flame_last_error(), "HalfCheetah-v5") && strstr(flame_last_error(), "Pusher-v4"));
    EXPECT(one_line(flame_last_error()));

    const EnvSpec *s = env_spec_find("Hopper-v5");
    EXPECT(env_model_load(s, "/nonexistent/dir/hopper.xml", &m) == FLAME_EINPUT && m == NULL);
    EXPECT(strstr(flame_last_error(), "/nonexistent/dir/hopper.xml") &&
           strstr(flame_last_error(), "Hopper-v5"));
    EXPECT(one_line(flame_last_error()));

    /* broken XML, then well-formed XML that is not a valid model */
    const char *junk[2] = {"<mujoco><worldbody><body><geom type='sphere'/></body></worldbody>",
                           "<mujoco><worldbody><geom type='nonsense' size='1'/></worldbody>"
                           "</mujoco>"};
    for (int k = 0; k < 2; k++) {
        char path[] = "/tmp/flame_env_badXXXXXX";
        int fd = mkstemp(path);
        EXPECT(fd >= 0);
        EXPECT(write(fd, junk[k], strlen(junk[k])) == (ssize_t)strlen(junk[k]));
        close(fd);
        EXPECT(env_model_load(s, path, &m) == FLAME_EINPUT && m == NULL);
        EXPECT(strstr(flame_last_error(), path) && strstr(flame_last_error(), "cannot load"));
        EXPECT(one_line(flame_last_error()));
        printf("    message: %s\n", flame_last_error());
        unlink(path);
    }

    /* a valid model of another env does not fit */
    const char *src = getenv("FLAME_SOURCE_DIR");
    if (src) {
        char other[1024];
        snprintf(other, sizeof other, "%s/src/env/models/hopper.xml", src);
        EXPECT(env_model_load(env_spec_find("HalfCheetah-v5"), other, &m) == FLAME_EINPUT);
        EXPECT(strstr(flame_last_error(), "does not fit") != NULL);
        EXPECT(env_model_load(s, other, &m) == FLAME_OK && m != NULL); /* the file itself is fine */
        mj_deleteModel(m);
    }

    EnvPool *p = (EnvPool *)1;
    EXPECT(envpool_create(NULL, NULL, 4, 1, 0, 0, &p) == FLAME_EINPUT && p == NULL);
    EXPECT(envpool_create(s, NULL, 0, 1, 0, 0, &p) == FLAME_EINPUT && p == NULL);
    EXPECT(strstr(flame_last_error(), "num_envs") != NULL);
    EXPECT(envpool_create(s, NULL, 2, 0, 0, 0, &p) == FLAME_EINPUT && p == NULL);
    EXPECT(envpool_create(s, "/nonexistent.xml", 2, 1, 0, 0, &p) == FLAME_EINPUT && p == NULL);
    EXPECT(envpool_create(s, NULL, 2, 2, 0, 0, &p) == FLAME_OK && p != NULL);
    float act[3 * 2 + 1] = {0};
    double obs[2 * 11], rew[2];
    uint8_t term[2], trunc[2];
    EnvPoolStep st = {obs, NULL, rew, term, trunc, NULL, NULL, NULL, NULL, NULL};
    envpool_reset(p, obs);
    EXPECT(envpool_step_checked(p, act, 7, &st) == FLAME_EINPUT);
    EXPECT(strstr(flame_last_error(), "7") && strstr(flame_last_error(), "expected 6"));
    EXPECT(one_line(flame_last_error()));
    EXPECT(envpool_step_checked(p, act, 5, &st) == FLAME_EINPUT);
    EXPECT(envpool_step_checked(p, NULL, 6, &st) == FLAME_EINPUT);
    EXPECT(envpool_step_checked(p, act, 6, &st) == FLAME_OK);
    envpool_free(p);
}

FLAME_TEST(list_prints_every_id) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    env_list_print(f);
    fclose(f);
    for (int k = 0; k < env_spec_count(); k++) {
        EXPECT_MSG(strstr(buf, env_spec_at(k)->id) != NULL, "%s not listed", env_spec_at(k)->id);
    }
    EXPECT(strstr(buf, "[-0.4, 0.4]^17") != NULL); /* Humanoid's action box */
    EXPECT(strstr(buf, "?") == NULL);              /* every embedded model loaded */
    free(buf);
}

int main(void) {
    RUN_TEST(registry_has_every_id);
    RUN_TEST(model_facts_match_gymnasium);
    RUN_TEST(observation_sizes_and_finiteness);
    RUN_TEST(reset_noise_is_addressed_and_bounded);
    RUN_TEST(actions_scale_without_clipping);
    RUN_TEST(set_state_round_trip);
    RUN_TEST(mujoco_hooks_and_no_log_file);
    RUN_TEST(bad_input_gives_einput_and_a_message);
    RUN_TEST(list_prints_every_id);
    return flame_test_report();
}
