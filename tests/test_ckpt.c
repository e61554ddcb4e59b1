/*
 * test_ckpt.c: checkpoints are validated before use. A valid checkpoint reads back bit for bit;
 * copies damaged one way each are refused with FLAME_EINPUT and a message naming what is wrong:
 * non-finite parameters, moments or targets (naming the tensor), negative second moments, stored
 * dimensions that are not positive or do not fit the stored config's env, a label that disagrees
 * with the stored config, counters that are negative or inconsistent with the update schedule,
 * replay attributes out of line, non-finite replay contents. A FIFO given as a checkpoint is
 * refused at once.
 *
 * Also a helper for tests/cli_reliability.sh:
 *   test_ckpt --corrupt KIND OUT   writes a Hopper-v5 checkpoint damaged as KIND (or intact with
 *                                  KIND = none) to OUT
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "flame/ckpt.h"
#include "flame/env.h"
#include "flame/h5util.h"
#include "flame_test.h"

static char g_dir[] = "/tmp/flame_test_ckpt_XXXXXX";

static void small_config(FlameConfig *cfg) {
    config_defaults(cfg);
    const char *sets[] = {"env.id=Hopper-v5",       "net.hidden=16",         "net.layers=2",
                          "flow.num_particles=4",   "update.replay_size=64", "update.batch_size=32",
                          "backend.type=cpu",       "run.seed=7"};
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++) {
        FLAME_CHECK(config_set(cfg, sets[i]) == FLAME_OK, "%s", flame_last_error());
    }
    config_resolve(cfg);
    FLAME_CHECK(config_validate(cfg) == FLAME_OK, "%s", flame_last_error());
}

/* a valid checkpoint: an initialised agent with the counters 10 updates leave, 20 transitions */
static int write_valid(const char *path) {
    FlameConfig cfg;
    small_config(&cfg);
    const EnvSpec *spec = env_spec_find("Hopper-v5");
    AgentState st;
    agent_state_init(&st, &cfg, spec->obs_dim, spec->act_dim);
    st.updates = 10;
    st.actor_steps = 5;  /* policy_delay 2 */
    st.critic_steps = 20; /* the reference double step */
    st.alpha_steps = 1;  /* alpha.delay resolves to 100 */
    TrainCounters tc = {.env_steps = 300, .act_calls = 50, .episodes = 4, .eval_rounds = 1,
                        .next_eval = 400, .next_ckpt = 500, .instabilities = 1,
                        .wall_seconds = 2.5};
    Replay r;
    replay_init(&r, cfg.update.replay_size, spec->obs_dim, spec->act_dim);
    float o[64] = {0}, n[64] = {0}, a[8] = {0};
    for (int k = 0; k < 20; k++) {
        o[0] = (float)k;
        n[0] = (float)k + 0.5f;
        a[0] = 0.01f * (float)k;
        float rew = 0.1f * (float)k;
        uint8_t done = (uint8_t)(k % 7 == 6);
        replay_push(&r, o, a, &rew, n, &done, 1);
    }
    uint8_t env_state[16] = {1, 2, 3};
    int rc = ckpt_write(path, &cfg, &st, &tc, &r, env_state, sizeof env_state, "cpu");
    replay_free(&r);
    agent_state_free(&st);
    return rc;
}

// ---------------------------------------------------------------------------- damage

static void set_attr_i64(hid_t f, const char *obj, const char *name, int64_t v) {
    hid_t o = H5Oopen(f, obj, H5P_DEFAULT);
    FLAME_CHECK(o >= 0 && h5_attr_i64(o, name, v) == FLAME_OK, "cannot set %s/%s", obj, name);
    H5Oclose(o);
}

static void set_attr_str(hid_t f, const char *obj, const char *name, const char *v) {
    hid_t o = H5Oopen(f, obj, H5P_DEFAULT);
    FLAME_CHECK(o >= 0 && h5_attr_str(o, name, v) == FLAME_OK, "cannot set %s/%s", obj, name);
    H5Oclose(o);
}

/* element i of a float dataset set to v */
static void set_float(hid_t f, const char *name, size_t i, float v) {
    hsize_t d[8];
    int rank = h5_dims(f, name, d);
    FLAME_CHECK(rank >= 0, "no dataset %s", name);
    size_t n = 1;
    for (int k = 0; k < rank; k++) {
        n *= (size_t)d[k];
    }
    float *x = malloc((n ? n : 1) * sizeof(float));
    hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
    H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x);
    x[i] = v;
    FLAME_CHECK(H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x) >= 0,
                "cannot write %s", name);
    H5Dclose(ds);
    free(x);
}

/* the stored config with one line replaced */
static void edit_config(hid_t f, const char *from, const char *to) {
    char *y = h5_attr_read_str(f, "config");
    FLAME_CHECK(y && strstr(y, from), "stored config lacks '%s'", from);
    size_t n = strlen(y) + strlen(to) + 1;
    char *out = malloc(n);
    char *at = strstr(y, from);
    snprintf(out, n, "%.*s%s%s", (int)(at - y), y, to, at + strlen(from));
    set_attr_str(f, "/", "config", out);
    free(out);
    free(y);
}

/* offset of tensor `name` in the policy table of the small config */
static size_t policy_offset(const char *name) {
    FlameConfig cfg;
    small_config(&cfg);
    AgentLayout L;
    agent_layout_init(&L, &cfg, 11, 3);
    const TensorDesc *d = param_table_find(&L.pol_table, name);
    FLAME_CHECK(d, "no tensor %s", name);
    return d->offset;
}

typedef struct {
    const char *kind;
    const char *expect; /* in the message */
} Damage;

static const Damage DAMAGES[] = {
    {"nan_param", "policy/params holds NaN in tensor 'pol.trunk.w1' at [1, 2]"},
    {"inf_target", "q2/target holds an infinite value"},
    {"inf_ema", "policy/ema holds an infinite value"},
    {"neg_adam_v", "q1/adam_v holds a negative value"},
    {"nan_adam_m", "policy/adam_m holds NaN"},
    {"nan_log_alpha", "alpha/log_alpha holds NaN"},
    {"neg_obs_dim", "stored obs_dim = -3 is not a valid dimension"},
    {"zero_act_dim", "stored act_dim = 0 is not a valid dimension"},
    {"huge_obs_dim", "is not a valid dimension"},
    {"label_other_env", "labelled Walker2d-v5 but its stored config is for Hopper-v5"},
    {"config_other_env", "shaped for obs_dim 11, act_dim 3 but the stored config's env Walker2d-v5"},
    {"label_other_algo", "labelled sac but its stored config trains flame-m"},
    {"config_invalid", "stored config is invalid"},
    {"neg_updates", "counter updates = -5 is out of range"},
    {"neg_env_steps", "counter env_steps = -1 is out of range"},
    {"actor_steps", "actor_steps = 9 after 10 updates, expected 5"},
    {"critic_steps", "critic_steps = 10 after 10 updates, expected 20"},
    {"alpha_steps", "alpha_steps = 0 after 10 updates, expected 1"},
    {"episodes", "episodes = 301 exceeds env_steps = 300"},
    {"instabilities", "instabilities = 5 exceeds episodes = 4"},
    {"wall_seconds", "wall_seconds is not a time"},
    {"replay_head", "replay attributes are inconsistent"},
    {"replay_capacity", "replay capacity 65 does not fit"},
    {"replay_nan", "replay/next_obs holds NaN"},
};
#define NDAMAGES ((int)(sizeof DAMAGES / sizeof DAMAGES[0]))

/* writes a valid checkpoint to path and damages it as `kind` ("none": intact) */
static int make_damaged(const char *path, const char *kind) {
    if (write_valid(path) != FLAME_OK) {
        fprintf(stderr, "write_valid: %s\n", flame_last_error());
        return 1;
    }
    if (!strcmp(kind, "none")) {
        return 0;
    }
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    FLAME_CHECK(f >= 0, "cannot reopen %s", path);
    if (!strcmp(kind, "nan_param")) {
        /* pol.trunk.w1 is 16 x 16: element [1, 2] */
        set_float(f, "policy/params", policy_offset("pol.trunk.w1") + 1 * 16 + 2, NAN);
    } else if (!strcmp(kind, "inf_target")) {
        set_float(f, "q2/target", 3, INFINITY);
    } else if (!strcmp(kind, "inf_ema")) {
        set_float(f, "policy/ema", 0, -INFINITY);
    } else if (!strcmp(kind, "neg_adam_v")) {
        set_float(f, "q1/adam_v", 5, -1e-3f);
    } else if (!strcmp(kind, "nan_adam_m")) {
        set_float(f, "policy/adam_m", 7, NAN);
    } else if (!strcmp(kind, "nan_log_alpha")) {
        set_float(f, "alpha/log_alpha", 0, NAN);
    } else if (!strcmp(kind, "neg_obs_dim")) {
        set_attr_i64(f, "/", "obs_dim", -3);
    } else if (!strcmp(kind, "zero_act_dim")) {
        set_attr_i64(f, "/", "act_dim", 0);
    } else if (!strcmp(kind, "huge_obs_dim")) {
        set_attr_i64(f, "/", "obs_dim", INT64_C(1) << 40);
    } else if (!strcmp(kind, "label_other_env")) {
        set_attr_str(f, "/", "env_id", "Walker2d-v5");
    } else if (!strcmp(kind, "config_other_env")) {
        /* the stored config and the label agree, the weights are Hopper's */
        edit_config(f, "id: \"Hopper-v5\"", "id: \"Walker2d-v5\"");
        set_attr_str(f, "/", "env_id", "Walker2d-v5");
    } else if (!strcmp(kind, "label_other_algo")) {
        set_attr_str(f, "/", "algo", "sac");
    } else if (!strcmp(kind, "config_invalid")) {
        edit_config(f, "batch_size: 32", "batch_size: 128");
    } else if (!strcmp(kind, "neg_updates")) {
        set_attr_i64(f, "counters", "updates", -5);
    } else if (!strcmp(kind, "neg_env_steps")) {
        set_attr_i64(f, "counters", "env_steps", -1);
    } else if (!strcmp(kind, "actor_steps")) {
        set_attr_i64(f, "counters", "actor_steps", 9);
    } else if (!strcmp(kind, "critic_steps")) {
        set_attr_i64(f, "counters", "critic_steps", 10);
    } else if (!strcmp(kind, "alpha_steps")) {
        set_attr_i64(f, "counters", "alpha_steps", 0);
    } else if (!strcmp(kind, "episodes")) {
        set_attr_i64(f, "counters", "episodes", 301);
    } else if (!strcmp(kind, "instabilities")) {
        set_attr_i64(f, "counters", "instabilities", 5);
    } else if (!strcmp(kind, "wall_seconds")) {
        hid_t g = H5Gopen2(f, "counters", H5P_DEFAULT);
        h5_attr_f64(g, "wall_seconds", NAN);
        H5Gclose(g);
    } else if (!strcmp(kind, "replay_head")) {
        set_attr_i64(f, "replay", "head", 3); /* not full: the head must be at size (20) */
    } else if (!strcmp(kind, "replay_capacity")) {
        set_attr_i64(f, "replay", "capacity", 65);
    } else if (!strcmp(kind, "replay_nan")) {
        set_float(f, "replay/next_obs", 11 * 4 + 2, NAN);
    } else {
        fprintf(stderr, "unknown damage '%s'\n", kind);
        H5Fclose(f);
        return 2;
    }
    H5Fclose(f);
    return 0;
}

// ---------------------------------------------------------------------------- tests

FLAME_TEST(test_valid_checkpoint_reads_back) {
    char path[256];
    snprintf(path, sizeof path, "%s/valid.h5", g_dir);
    EXPECT(make_damaged(path, "none") == 0);
    Checkpoint ck;
    EXPECT_MSG(ckpt_read(path, &ck, true) == FLAME_OK, "%s", flame_last_error());
    EXPECT(ck.obs_dim == 11 && ck.act_dim == 3 && !strcmp(ck.env_id, "Hopper-v5"));
    EXPECT(ck.st.updates == 10 && ck.st.actor_steps == 5 && ck.st.critic_steps == 20);
    EXPECT(ck.tc.env_steps == 300 && ck.tc.wall_seconds == 2.5);
    EXPECT(ck.has_replay && ck.replay.size == 20 && ck.replay.head == 20);
    EXPECT(ck.replay.next_obs[19 * 11] == 19.5f);
    EXPECT(ck.env_state_size == 16 && ck.env_state[2] == 3);
    ckpt_free(&ck);
    remove(path);
}

FLAME_TEST(test_damaged_checkpoints_are_refused) {
    for (int i = 0; i < NDAMAGES; i++) {
        char path[256];
        snprintf(path, sizeof path, "%s/%s.h5", g_dir, DAMAGES[i].kind);
        EXPECT(make_damaged(path, DAMAGES[i].kind) == 0);
        Checkpoint ck;
        int rc = ckpt_read(path, &ck, true);
        EXPECT_MSG(rc == FLAME_EINPUT, "%s: accepted (rc %d)", DAMAGES[i].kind, rc);
        if (rc == FLAME_OK) {
            ckpt_free(&ck);
        }
        EXPECT_MSG(rc != FLAME_EINPUT || strstr(flame_last_error(), DAMAGES[i].expect),
                   "%s: message lacks '%s': %s", DAMAGES[i].kind, DAMAGES[i].expect,
                   flame_last_error());
        EXPECT_MSG(rc != FLAME_EINPUT || strstr(flame_last_error(), path),
                   "%s: message does not name the file: %s", DAMAGES[i].kind, flame_last_error());
        printf("    %-18s %s\n", DAMAGES[i].kind, flame_last_error());
        remove(path);
    }
}

/* a FIFO (or any non-regular file) is not opened: HDF5 would block on it */
FLAME_TEST(test_fifo_checkpoint_is_refused) {
    char path[256];
    snprintf(path, sizeof path, "%s/step_5.h5", g_dir);
    EXPECT(mkfifo(path, 0600) == 0);
    Checkpoint ck;
    alarm(20); /* the old code blocks in open(): fail loudly instead */
    int rc = ckpt_read(path, &ck, false);
    alarm(0);
    EXPECT_MSG(rc == FLAME_EINPUT && strstr(flame_last_error(), "not a regular file"), "%s",
               flame_last_error());
    remove(path);
}

int main(int argc, char **argv) {
    h5_silence();
    if (argc == 4 && !strcmp(argv[1], "--corrupt")) {
        return make_damaged(argv[3], argv[2]);
    }
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    RUN_TEST(test_valid_checkpoint_reads_back);
    RUN_TEST(test_damaged_checkpoints_are_refused);
    RUN_TEST(test_fifo_checkpoint_is_refused);
    rmdir(g_dir);
    return flame_test_report();
}
