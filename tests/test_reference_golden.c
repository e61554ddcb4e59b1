/*
 * test_reference_golden.c: one update of the CPU backend against the authors' own update function
 * (lzqw/FLAME at 35df7a3, jitted JAX on CPU) on identical parameters, Adam state, minibatch and
 * random draws: tests/data/golden_<case>.h5 (tools/gen_reference_golden.py; README: Fidelity).
 *
 * Cases: FLAME-M at update 300 (critic double step, candidate weights after the first critic step,
 * actor, alpha and Polyak steps), FLAME-M with the B*K-row flow loss (flow.collapse_k=false) at
 * update 202, FLAME-R at update 300, SAC (compat: reference) at update 300; networks 3 x 32 on
 * HalfCheetah-v5's dimensions, B 64, K 32, 16 particles, a few hundred updates into training.
 *
 * For each case: the update replayed through the file's noise bundle is compared with every
 * quantity the reference recorded (TD target, next action, best particle, entropy estimates,
 * noisy actions, times, candidate weights, v-bar, losses, gradients, parameters, Adam moments,
 * EMA / target copies, log alpha, step counts); FLAME cases are replayed a second time with the
 * other flow-loss form (K-collapse is exact for the gradient; the B*K-row form also has the
 * reference's loss value); the same update without the bundle (Philox draws, the minibatch gathered
 * from the checkpoint's replay buffer) must be bitwise the same, which is what lets the CUDA test
 * compare against the same file; and `flame debug update` must write exactly this update.
 * Also: Adam's constants are optax's (1 - beta in double, then float).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "algo_common.h"
#include "flame/ckpt.h"
#include "flame/params.h"
#include "golden_common.h"

static bool same_floats(const float *a, const float *b, size_t n) {
    return memcmp(a, b, n * sizeof(float)) == 0;
}

static const GoldenTols CPU_TOLS = {TOL_GOLDEN_VALUE, TOL_GOLDEN_GRAD, TOL_GOLDEN_MOMENT,
                                    TOL_GOLDEN_STEP, TOL_GOLDEN_SCALAR};

typedef struct {
    Checkpoint ck;
    FlameConfig cfg;
    Backend *b;
    AgentState after;
    CpuDebugView v;
    UpdateMetrics m;
} CpuRun;

/* one update from the golden file's state; noise: replay the file's bundle (else Philox + replay) */
static void cpu_run(const char *path, bool noise, int collapse, CpuRun *r) {
    memset(r, 0, sizeof *r);
    EXPECT(ckpt_read(path, &r->ck, true) == FLAME_OK);
    r->cfg = r->ck.cfg;
    r->cfg.backend.type = BACKEND_CPU;
    snprintf(r->cfg.backend.noise_file, sizeof r->cfg.backend.noise_file, "%s", noise ? path : "");
    if (collapse >= 0) {
        r->cfg.flow.collapse_k = collapse;
    }
    EXPECT(config_validate(&r->cfg) == FLAME_OK);
    EXPECT(backend_cpu_ops.create(&r->cfg, r->ck.obs_dim, r->ck.act_dim, &r->b) == FLAME_OK);
    backend_cpu_ops.set_state(r->b, &r->ck.st);
    EXPECT(r->ck.has_replay);
    backend_cpu_ops.set_replay(r->b, &r->ck.replay);
    update_step(&backend_cpu_ops, r->b);
    agent_state_init(&r->after, &r->cfg, r->ck.obs_dim, r->ck.act_dim);
    backend_cpu_ops.get_state(r->b, &r->after);
    backend_cpu_ops.get_metrics(r->b, &r->m);
    backend_cpu_debug(r->b, &r->v);
}

static void cpu_done(CpuRun *r) {
    backend_cpu_ops.destroy(r->b);
    agent_state_free(&r->after);
    ckpt_free(&r->ck);
}

static GoldenGot got_of(const CpuRun *r) {
    GoldenGot g = {.y = r->v.y, .next_a = r->v.next_a, .ent = r->v.ent, .m = r->m};
    if (r->cfg.algo == ALGO_SAC) {
        g.logpi = r->v.logpi;
    } else {
        g.a_star = r->v.a_star, g.x = r->v.x, g.r = r->v.r, g.t = r->v.t, g.w = r->v.w;
        g.vbar = r->v.vbar;
    }
    return g;
}

/* The golden file's config is what `compat: reference` resolves to: every key derived from algo
   and compat (the quirks.* keys, "auto" values, 0-means-auto counts) reset and resolved again gives
   the stored config back. So the defaults reproduce the reference code, not only the stored keys. */
static void check_presets(const char *name, const FlameConfig *stored) {
    static const char *const zero_auto[] = {"flow.sample_steps", "alpha.delay", "entropy.steps",
                                            "update.policy_delay", "update.target_delay"};
    FlameConfig c = *stored;
    int n;
    const ConfigField *f = config_fields(&n);
    for (int i = 0; i < n; i++) {
        bool reset = !strcmp(f[i].def, "auto") && strcmp(f[i].section, "backend") &&
                     strcmp(f[i].section, "run");
        for (size_t k = 0; k < sizeof zero_auto / sizeof zero_auto[0]; k++) {
            reset = reset || !strcmp(f[i].key, zero_auto[k]);
        }
        if (reset) {
            EXPECT(config_set_value(&c, &f[i], f[i].def, "test") == FLAME_OK);
        }
    }
    EXPECT(c.compat == COMPAT_REFERENCE);
    config_resolve(&c);
    char *want = config_to_yaml(stored), *got = config_to_yaml(&c);
    const char *w = want, *g = got;
    while (*w && *w == *g) {
        w++, g++;
    }
    while (w > want && w[-1] != '\n') {
        w--, g--;
    }
    EXPECT_MSG(!strcmp(want, got), "%s: compat: reference resolves '%.*s' where the reference run "
               "had '%.*s'", name, (int)strcspn(g, "\n"), g, (int)strcspn(w, "\n"), w);
    free(want);
    free(got);
}

static void check_case(const char *name) {
    char path[4096], tag[128];
    golden_path(name, path, sizeof path);
    printf("  -- %s (%s)\n", name, path);
    CpuRun r;
    cpu_run(path, true, -1, &r);
    check_presets(name, &r.ck.cfg);
    GoldenRef R;
    if (golden_load(path, &r.ck.st, &r.cfg, &R) != 0) {
        EXPECT_MSG(0, "%s: golden file missing", path);
        cpu_done(&r);
        return;
    }
    bool flame = r.cfg.algo != ALGO_SAC;
    /* the reference's flow loss is the B*K-row form (FLAME-M) or its mean (FLAME-R) */
    bool fm_form = !flame || !r.cfg.flow.collapse_k;
    snprintf(tag, sizeof tag, "%s", name);
    GoldenGot g = got_of(&r);
    golden_check(tag, &r.cfg, &R, &r.ck.st, &r.after, &g, &CPU_TOLS, fm_form);

    if (flame) {
        /* the other flow-loss form: the same gradient (exact collapse), the loss value where it
           has the reference's form */
        CpuRun o;
        cpu_run(path, true, !r.cfg.flow.collapse_k, &o);
        snprintf(tag, sizeof tag, "%s collapse_k=%s", name, o.cfg.flow.collapse_k ? "true" : "false");
        golden_cmp_blob(tag, "policy grads", &o.after.L.pol_table, o.after.pol.grads, R.grads[0],
                        NULL, TOL_GOLDEN_GRAD);
        if (!o.cfg.flow.collapse_k) {
            golden_scalar(tag, "actor loss", o.m.actor_loss, R.actor_loss, TOL_GOLDEN_SCALAR);
            golden_scalar(tag, "flow loss", o.m.fm_loss, R.fm_loss, TOL_GOLDEN_SCALAR);
        }
        cpu_done(&o);
    }

    /* the bundle holds exactly the Philox draws of run.seed at this update and the minibatch
       gathered from the replay buffer: without it the update is bitwise the same */
    CpuRun p;
    cpu_run(path, false, -1, &p);
    char what[64] = "";
    EXPECT_MSG(agent_state_equal(&r.after, &p.after, what, sizeof what),
               "%s: the update from Philox and the replay buffer differs from the bundle's in %s",
               name, what);
    cpu_done(&p);
    golden_free(&R);
    cpu_done(&r);
}

FLAME_TEST(test_golden_flame_m) {
    check_case("flame_m");
}
FLAME_TEST(test_golden_flame_m_bk) {
    check_case("flame_m_bk");
}
FLAME_TEST(test_golden_flame_r) {
    check_case("flame_r");
}
FLAME_TEST(test_golden_sac) {
    check_case("sac");
}

/* FLAME-R's best-of-N as the reference code does it (relax/network/rf2_sac_ent.py get_action and
   get_action_ent): every particle scored by min(Q1, Q2) on its unclipped 20-step sample, only the
   chosen one clipped. Checked for the TD target's next action and for acting, against the same
   computation written out here, and shown to differ from scoring clipped particles. */
static int best_particles(const FlameConfig *cfg, const AgentLayout *L, const float *P,
                          const float *P1, const float *P2, const float *s, const float *z, int n,
                          bool clip_first, float *out) {
    int S = L->obs_dim, D = L->act_dim, Np = cfg->flow.num_particles, rows = n * Np;
    float *a = malloc(sizeof(float) * rows * D), *score = malloc(sizeof(float) * rows);
    ref_particles(cfg, L, P, P1, P2, s, z, n, a, score);
    if (clip_first) {
        /* the order this checks against: every particle clipped, then scored */
        float *srep = malloc(sizeof(float) * (size_t)rows * S), *c = malloc(sizeof(float) * rows * D);
        QWork w1, w2;
        qwork_alloc(&w1, L, rows);
        qwork_alloc(&w2, L, rows);
        for (int r = 0; r < rows; r++) {
            memcpy(srep + (size_t)r * S, s + (size_t)(r / Np) * S, (size_t)S * sizeof(float));
        }
        for (size_t i = 0; i < (size_t)rows * D; i++) {
            c[i] = a[i] < -1.0f ? -1.0f : (a[i] > 1.0f ? 1.0f : a[i]);
        }
        const float *q1 = critic_forward(L, P1, srep, c, rows, &w1);
        const float *q2 = critic_forward(L, P2, srep, c, rows, &w2);
        for (int r = 0; r < rows; r++) {
            score[r] = q1[r] < q2[r] ? q1[r] : q2[r];
        }
        free(srep), free(c);
        qwork_free(&w1);
        qwork_free(&w2);
    }
    int outside = 0;
    for (int i = 0; i < n; i++) {
        int best = 0;
        for (int p = 1; p < Np; p++) {
            best = score[i * Np + p] > score[i * Np + best] ? p : best;
        }
        for (int d = 0; d < D; d++) {
            float x = a[((size_t)i * Np + best) * D + d];
            outside += x < -1.0f || x > 1.0f;
            out[(size_t)i * D + d] = x < -1.0f ? -1.0f : (x > 1.0f ? 1.0f : x);
        }
    }
    free(a), free(score);
    return outside;
}

FLAME_TEST(test_flame_r_scores_unclipped) {
    FlameConfig cfg;
    small_config(&cfg, ALGO_FLAME_R, COMPAT_REFERENCE);
    cfg.flow.num_particles = 16;
    Backend *b = make_backend(&cfg, 4, 2, 200);
    AgentState s0;
    agent_state_init(&s0, &cfg, 4, 2);
    backend_cpu_ops.get_state(b, &s0);
    update_step(&backend_cpu_ops, b);
    CpuDebugView v;
    backend_cpu_debug(b, &v);
    int B = v.B, D = v.D, Np = v.Np;
    float *want = malloc(sizeof(float) * B * D), *clipped = malloc(sizeof(float) * B * D);
    /* the TD target's next action: online policy and critics before the update */
    int outside = best_particles(&cfg, &s0.L, s0.pol.params, s0.q1.params, s0.q2.params,
                                 v.next_obs, v.noise->next_z, B, false, want);
    best_particles(&cfg, &s0.L, s0.pol.params, s0.q1.params, s0.q2.params, v.next_obs,
                   v.noise->next_z, B, true, clipped);
    EXPECT(same_floats(v.a_star, want, (size_t)B * D));
    EXPECT_MSG(outside > 0 && !same_floats(want, clipped, (size_t)B * D),
               "the case does not tell the two orders apart (%d chosen coordinates outside)",
               outside);
    /* acting: the EMA policy, evaluation particles of call 5 */
    AgentState s1;
    agent_state_init(&s1, &cfg, 4, 2);
    backend_cpu_ops.get_state(b, &s1);
    float *z = malloc(sizeof(float) * B * Np * D), *acts = malloc(sizeof(float) * B * D);
    for (int i = 0; i < B; i++) {
        for (int j = 0; j < Np * D; j++) {
            z[(size_t)i * Np * D + j] = rng_normal((uint64_t)cfg.run.seed, RNG_STREAM_EVAL_Z, 5,
                                                   (uint32_t)i, (uint32_t)j);
        }
    }
    backend_cpu_ops.act(b, v.obs, B, ACT_DETERMINISTIC, 5, acts);
    best_particles(&cfg, &s1.L, s1.pol_ema, s1.q1.params, s1.q2.params, v.obs, z, B, false, want);
    EXPECT(same_floats(acts, want, (size_t)B * D));
    free(want), free(clipped), free(z), free(acts);
    agent_state_free(&s0);
    agent_state_free(&s1);
    backend_cpu_ops.destroy(b);
}

/* optax's Adam constants: 1 - beta computed in double and rounded (0.001f, not 1.0f - 0.999f =
   9.99987e-4), the bias correction 1 - beta^t from beta rounded to float */
FLAME_TEST(test_adam_optax_constants) {
    float p = 0.5f, g = 1.0f, m = 0.0f, v = 0.0f;
    adam_step(&p, &g, &m, &v, 1, 1e-3, 0.9, 0.999, 1e-8, 1);
    EXPECT(m == (float)(1.0 - 0.9) && m != 1.0f - 0.9f);
    EXPECT(v == (float)(1.0 - 0.999) && v != 1.0f - 0.999f);
    /* step 2 with g = -2: v = 0.999f v + 0.001f (g g); mhat / sqrt(vhat) with bc = 1 - 0.999f^2 */
    float g2 = -2.0f, m2 = m, v2 = v, p2 = p;
    adam_step(&p2, &g2, &m2, &v2, 1, 1e-3, 0.9, 0.999, 1e-8, 2);
    float want_m = 0.9f * m + (float)(1.0 - 0.9) * g2;
    float want_v = 0.999f * v + (float)(1.0 - 0.999) * (g2 * g2);
    EXPECT(m2 == want_m && v2 == want_v);
    float bc1 = 1.0f - (float)(0.9f * (double)0.9f), bc2 = 1.0f - (float)(0.999f * (double)0.999f);
    float want_p = p - 1e-3f * ((want_m / bc1) / (sqrtf(want_v / bc2) + 1e-8f));
    EXPECT_MSG(p2 == want_p, "p %.9g, optax %.9g", p2, want_p);
}

/* runs a command; returns its exit status and the number of lines it wrote to stderr */
static int run_cmd(const char *cmd, int *err_lines) {
    char full[20000];
    snprintf(full, sizeof full, "%s 2>&1 >/dev/null", cmd);
    FILE *f = popen(full, "r");
    if (!f) {
        return -1;
    }
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        n++;
    }
    int st = pclose(f);
    *err_lines = n;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* `flame debug update` writes this update: the state after it and the intermediates */
FLAME_TEST(test_debug_update_command) {
    const char *bin = getenv("FLAME_BIN");
    EXPECT_MSG(bin != NULL, "FLAME_BIN is not set (ctest sets it to the flame binary)");
    if (!bin) {
        return;
    }
    char path[1024], dir[] = "/tmp/flame_debug_XXXXXX", out[1100], cmd[16384];
    golden_path("flame_m", path, sizeof path);
    EXPECT(mkdtemp(dir) != NULL);
    snprintf(out, sizeof out, "%s/out.h5", dir);
    int lines;
    snprintf(cmd, sizeof cmd, "'%s' debug update --ckpt '%s' --noise '%s' --out '%s'", bin, path,
             path, out);
    EXPECT(run_cmd(cmd, &lines) == 0);
    CpuRun r;
    cpu_run(path, true, -1, &r);
    Checkpoint ck;
    EXPECT(ckpt_read(out, &ck, false) == FLAME_OK);
    char what[64] = "";
    EXPECT_MSG(agent_state_equal(&ck.st, &r.after, what, sizeof what), "debug output differs: %s",
               what);
    hid_t f = H5Fopen(out, H5F_ACC_RDONLY, H5P_DEFAULT);
    size_t B = (size_t)r.v.B, BK = B * r.v.K;
    struct {
        const char *name;
        const float *want;
        size_t n;
    } ds[] = {{"update/y", r.v.y, B}, {"update/w", r.v.w, BK}, {"update/vbar", r.v.vbar, B * r.v.D},
              {"update/a_star", r.v.a_star, B * r.v.D}, {"update/obs", r.v.obs, B * r.v.S}};
    for (size_t i = 0; i < sizeof ds / sizeof ds[0]; i++) {
        float *x = golden_read(f, ds[i].name, ds[i].n);
        EXPECT_MSG(x && !memcmp(x, ds[i].want, ds[i].n * sizeof(float)), "%s differs", ds[i].name);
        free(x);
    }
    hid_t g = H5Gopen2(f, "update", H5P_DEFAULT);
    EXPECT(golden_attr(g, "critic_loss_1") == r.m.critic_loss[0]);
    EXPECT(golden_attr(g, "update") == 300.0 && golden_attr(g, "alpha_step") == 1.0);
    H5Gclose(g);
    H5Fclose(f);
    ckpt_free(&ck);
    cpu_done(&r);

    /* --record writes the draws the update used: replaying them gives the same update */
    char rec[1100], out2[1100];
    snprintf(rec, sizeof rec, "%s/rec.h5", dir);
    snprintf(out2, sizeof out2, "%s/out2.h5", dir);
    snprintf(cmd, sizeof cmd, "'%s' debug update --ckpt '%s' --record '%s' --out '%s' --force", bin,
             path, rec, out);
    EXPECT(run_cmd(cmd, &lines) == 0);
    snprintf(cmd, sizeof cmd, "'%s' debug update --ckpt '%s' --noise '%s' --out '%s'", bin, path,
             rec, out2);
    EXPECT(run_cmd(cmd, &lines) == 0);
    Checkpoint c1, c2;
    EXPECT(ckpt_read(out, &c1, false) == FLAME_OK && ckpt_read(out2, &c2, false) == FLAME_OK);
    EXPECT_MSG(agent_state_equal(&c1.st, &c2.st, what, sizeof what), "recorded replay: %s", what);
    ckpt_free(&c1);
    ckpt_free(&c2);

    /* bad input: exit 2, one line on stderr, nothing written */
    char bad[8][4096], other[1024];
    golden_path("flame_m_bk", other, sizeof other);
    snprintf(bad[0], sizeof bad[0], "debug update --out '%s/x.h5'", dir); /* no --ckpt */
    snprintf(bad[1], sizeof bad[1], "debug update --ckpt '%s/none.h5' --out '%s/x.h5'", dir, dir);
    snprintf(bad[2], sizeof bad[2], "debug update --ckpt '%s' --out '%s'", path, out); /* exists */
    snprintf(bad[3], sizeof bad[3], "debug update --ckpt '%s' --out '%s/x.h5' --backend tpu", path,
             dir);
    snprintf(bad[4], sizeof bad[4], "debug update --ckpt '%s' --out '%s/x.h5' --set net.hidden=8",
             path, dir); /* changes the network layout */
    snprintf(bad[5], sizeof bad[5],
             "debug update --ckpt '%s' --out '%s/x.h5' --set flow.sample_k=5 --noise '%s'", path,
             dir, path); /* the bundle's dimensions no longer match */
    snprintf(bad[6], sizeof bad[6], "debug frobnicate");
    snprintf(bad[7], sizeof bad[7], "debug update --ckpt '%s' --out '%s/x.h5' --noise '%s'", other,
             dir, rec); /* the bundle holds update 300, the checkpoint is at 202 */
    for (int i = 0; i < 8; i++) {
        snprintf(cmd, sizeof cmd, "'%s' %.4000s", bin, bad[i]);
        int rc = run_cmd(cmd, &lines);
        EXPECT_MSG(rc == 2 && lines == 1, "`flame %s`: exit %d, %d stderr lines", bad[i], rc, lines);
        char x[1100];
        snprintf(x, sizeof x, "%s/x.h5", dir);
        EXPECT_MSG(access(x, F_OK) != 0, "`flame %s` wrote %s", bad[i], x);
    }
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    EXPECT(system(cmd) == 0);
}

int main(void) {
    h5_silence();
    RUN_TEST(test_adam_optax_constants);
    RUN_TEST(test_flame_r_scores_unclipped);
    RUN_TEST(test_golden_flame_m);
    RUN_TEST(test_golden_flame_m_bk);
    RUN_TEST(test_golden_flame_r);
    RUN_TEST(test_golden_sac);
    RUN_TEST(test_debug_update_command);
    return flame_test_report();
}
