/*
 * test_update.c: the CPU update as a whole: it runs for every variant and compat mode with finite
 * results; determinism; noise injection equals Philox; the K-collapse gradient equals the B*K-row
 * gradient; each quirk switch changes exactly the quantity it names; after a publish, act uses the
 * published state until the next publish (backend.overlap's policy lag).
 */
#include <math.h>
#include <stdlib.h>
#include <unistd.h>

#include "algo_common.h"
#include "flame/agent.h"
#include "flame/h5util.h"

static void run_updates(Backend *b, int n) {
    for (int i = 0; i < n; i++) {
        update_step(&backend_cpu_ops, b);
    }
}

static bool all_finite(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(x[i])) {
            return false;
        }
    }
    return true;
}

FLAME_TEST(test_variants_run) {
    int algos[3] = {ALGO_FLAME_M, ALGO_FLAME_R, ALGO_SAC};
    for (int a = 0; a < 3; a++) {
        for (int c = 0; c < 2; c++) {
            FlameConfig cfg;
            small_config(&cfg, algos[a], c);
            Backend *b = make_backend(&cfg, 5, 3, 200);
            run_updates(b, 6);
            AgentState st;
            agent_state_init(&st, &cfg, 5, 3);
            backend_cpu_ops.get_state(b, &st);
            EXPECT_MSG(st.updates == 6, "algo %d compat %d: %lld updates", a, c,
                       (long long)st.updates);
            EXPECT(st.actor_steps == (a == 2 ? 6 : 3)); /* SAC steps its actor every update */
            EXPECT(st.critic_steps == ((a == 0 && c == 0) ? 12 : 6));
            EXPECT(all_finite(st.pol.params, st.pol.n) && all_finite(st.q1.params, st.q1.n));
            UpdateMetrics m;
            backend_cpu_ops.get_metrics(b, &m);
            EXPECT(isfinite(m.critic_loss[0]) && isfinite(m.actor_loss) && isfinite(m.entropy));
            agent_state_free(&st);
            backend_cpu_ops.destroy(b);
        }
    }
}

static void state_after(int algo, int64_t seed, int n, AgentState *out) {
    FlameConfig cfg;
    small_config(&cfg, algo, COMPAT_REFERENCE);
    cfg.run.seed = seed;
    Backend *b = make_backend(&cfg, 4, 2, 100);
    run_updates(b, n);
    agent_state_init(out, &cfg, 4, 2);
    backend_cpu_ops.get_state(b, out);
    backend_cpu_ops.destroy(b);
}

/* publish: act after it and three more updates equals act of a backend holding the state of the
   publish (exploring and deterministic, every algorithm), and differs from act with the newer
   state, which the next publish brings */
FLAME_TEST(test_publish_acts_with_the_published_state) {
    int algos[3] = {ALGO_FLAME_M, ALGO_FLAME_R, ALGO_SAC};
    enum { S = 4, D = 2, N = 7 };
    float obs[N * S];
    for (int i = 0; i < N * S; i++) {
        obs[i] = 0.3f * sinf(1.7f * (float)i);
    }
    for (int a = 0; a < 3; a++) {
        for (int mode = 0; mode < 2; mode++) {
            ActMode m = mode ? ACT_DETERMINISTIC : ACT_EXPLORE;
            FlameConfig cfg;
            small_config(&cfg, algos[a], COMPAT_REFERENCE);
            Backend *b = make_backend(&cfg, S, D, 100);
            Backend *ref = make_backend(&cfg, S, D, 100);
            AgentState st;
            agent_state_init(&st, &cfg, S, D);
            run_updates(b, 2);
            backend_cpu_ops.get_state(b, &st);
            backend_cpu_ops.publish(b);
            run_updates(b, 3);
            float got[N * D], want[N * D], newer[N * D];
            backend_cpu_ops.act(b, obs, N, m, 11, got);
            backend_cpu_ops.set_state(ref, &st); /* the published state */
            backend_cpu_ops.act(ref, obs, N, m, 11, want);
            EXPECT_MSG(memcmp(got, want, sizeof got) == 0,
                       "algo %d mode %d: act after a publish is not the published state's", a,
                       mode);
            backend_cpu_ops.get_state(b, &st);
            backend_cpu_ops.set_state(ref, &st); /* the current state */
            backend_cpu_ops.act(ref, obs, N, m, 11, want);
            EXPECT_MSG(memcmp(got, want, sizeof got) != 0,
                       "algo %d mode %d: the updates after the publish changed no action", a,
                       mode);
            backend_cpu_ops.publish(b);
            backend_cpu_ops.act(b, obs, N, m, 11, newer);
            EXPECT_MSG(memcmp(newer, want, sizeof newer) == 0,
                       "algo %d mode %d: the next publish does not bring the current state", a,
                       mode);
            agent_state_free(&st);
            backend_cpu_ops.destroy(b);
            backend_cpu_ops.destroy(ref);
        }
    }
}

FLAME_TEST(test_determinism) {
    int algos[3] = {ALGO_FLAME_M, ALGO_FLAME_R, ALGO_SAC};
    for (int a = 0; a < 3; a++) {
        AgentState s1, s2, s3;
        state_after(algos[a], 7, 5, &s1);
        state_after(algos[a], 7, 5, &s2);
        state_after(algos[a], 8, 5, &s3);
        char what[64];
        EXPECT_MSG(agent_state_equal(&s1, &s2, what, sizeof what), "same seed differs in %s",
                   what);
        EXPECT(!agent_state_equal(&s1, &s3, what, sizeof what));
        agent_state_free(&s1);
        agent_state_free(&s2);
        agent_state_free(&s3);
    }
}

FLAME_TEST(test_noise_injection_equals_philox) {
    /* record the draws (and minibatches) of 4 updates, then replay them from the file on a fresh
       backend with an empty replay buffer: bitwise-identical final state */
    int algos[3] = {ALGO_FLAME_M, ALGO_FLAME_R, ALGO_SAC};
    for (int a = 0; a < 3; a++) {
        char path[] = "/tmp/flame_noise_XXXXXX";
        int fd = mkstemp(path);
        close(fd);
        FlameConfig cfg;
        small_config(&cfg, algos[a], COMPAT_REFERENCE);
        Backend *b = make_backend(&cfg, 4, 2, 100);
        EXPECT(backend_cpu_record_noise(b, path, true) == FLAME_OK);
        run_updates(b, 4);
        AgentState ref;
        agent_state_init(&ref, &cfg, 4, 2);
        backend_cpu_ops.get_state(b, &ref);
        backend_cpu_ops.destroy(b); /* closes the bundle */

        FlameConfig cfg2;
        small_config(&cfg2, algos[a], COMPAT_REFERENCE);
        snprintf(cfg2.backend.noise_file, sizeof cfg2.backend.noise_file, "%s", path);
        Backend *b2 = make_backend(&cfg2, 4, 2, 0);
        run_updates(b2, 4);
        AgentState got;
        agent_state_init(&got, &cfg2, 4, 2);
        backend_cpu_ops.get_state(b2, &got);
        char what[64] = "";
        EXPECT_MSG(agent_state_equal(&ref, &got, what, sizeof what), "algo %d: %s differs", a,
                   what);
        backend_cpu_ops.destroy(b2);
        /* a bundle with different dimensions is refused with a clear message */
        FlameConfig cfg3;
        small_config(&cfg3, algos[a], COMPAT_REFERENCE);
        cfg3.flow.sample_k = 9;
        snprintf(cfg3.backend.noise_file, sizeof cfg3.backend.noise_file, "%s", path);
        config_resolve(&cfg3);
        Backend *b3 = NULL;
        EXPECT(backend_cpu_ops.create(&cfg3, 4, 2, &b3) == FLAME_EINPUT);
        EXPECT(strstr(flame_last_error(), "dimension K") != NULL);
        agent_state_free(&ref);
        agent_state_free(&got);
        unlink(path);
    }
}

/* The injected path really uses the file: altered draws change the result. */
FLAME_TEST(test_noise_injection_is_used) {
    char path[] = "/tmp/flame_noise_XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    FlameConfig cfg;
    small_config(&cfg, ALGO_FLAME_M, COMPAT_REFERENCE);
    Backend *b = make_backend(&cfg, 4, 2, 100);
    backend_cpu_record_noise(b, path, true);
    run_updates(b, 1);
    AgentState ref;
    agent_state_init(&ref, &cfg, 4, 2);
    backend_cpu_ops.get_state(b, &ref);
    backend_cpu_ops.destroy(b);
    /* overwrite eps_post with zeros */
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t ds = H5Dopen2(f, "eps_post", H5P_DEFAULT);
    size_t n = 16 * 8 * 2;
    float *z = calloc(n, sizeof(float));
    H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, z);
    H5Dclose(ds);
    H5Fclose(f);
    FlameConfig cfg2;
    small_config(&cfg2, ALGO_FLAME_M, COMPAT_REFERENCE);
    snprintf(cfg2.backend.noise_file, sizeof cfg2.backend.noise_file, "%s", path);
    Backend *b2 = make_backend(&cfg2, 4, 2, 0);
    run_updates(b2, 1);
    AgentState got;
    agent_state_init(&got, &cfg2, 4, 2);
    backend_cpu_ops.get_state(b2, &got);
    char what[64];
    EXPECT(!agent_state_equal(&ref, &got, what, sizeof what));
    EXPECT(memcmp(ref.q1.params, got.q1.params, ref.q1.n * sizeof(float)) == 0);
    backend_cpu_ops.destroy(b2);
    agent_state_free(&ref);
    agent_state_free(&got);
    free(z);
    unlink(path);
}

/* K-collapse: the policy gradient of one update with collapse_k on equals the B*K-row gradient. */
FLAME_TEST(test_k_collapse_gradient) {
    int Ks[4] = {1, 3, 8, 33};
    int algos[2] = {ALGO_FLAME_M, ALGO_FLAME_R};
    for (int a = 0; a < 2; a++) {
        for (int c = 0; c < 2; c++) {
            for (int ki = 0; ki < 4; ki++) {
                AgentState st[2];
                for (int collapse = 0; collapse < 2; collapse++) {
                    FlameConfig cfg;
                    small_config(&cfg, algos[a], c);
                    cfg.flow.sample_k = Ks[ki];
                    cfg.flow.collapse_k = collapse;
                    cfg.flow.actor_q_weight = 0; /* the flow-matching gradient alone */
                    cfg.run.seed = 100 + ki;    /* a different random network and batch */
                    Backend *b = make_backend(&cfg, 6, 3, 300);
                    update_step(&backend_cpu_ops, b);
                    agent_state_init(&st[collapse], &cfg, 6, 3);
                    backend_cpu_ops.get_state(b, &st[collapse]);
                    backend_cpu_ops.destroy(b);
                }
                /* relative error in the gradient norm sense, per element allowance 1e-5 of the
                   largest gradient component plus 1e-5 relative */
                size_t n = st[0].pol.n;
                double gmax = 0;
                for (size_t i = 0; i < n; i++) {
                    gmax = fmax(gmax, fabs(st[1].pol.grads[i]));
                }
                char name[96];
                snprintf(name, sizeof name, "algo %d compat %d K=%d policy grad", a, c, Ks[ki]);
                EXPECT(gmax > 0);
                EXPECT_CLOSE_Q(name, st[1].pol.grads, st[0].pol.grads, n, 1e-5 * gmax, 1e-5);
                double num = 0, den = 0;
                for (size_t i = 0; i < n; i++) {
                    double d = (double)st[1].pol.grads[i] - st[0].pol.grads[i];
                    num += d * d;
                    den += (double)st[0].pol.grads[i] * st[0].pol.grads[i];
                }
                printf("       %s: relative error %.3g\n", name, sqrt(num / den));
                EXPECT_MSG(sqrt(num / den) <= 1e-5, "%s: relative error %.3g", name,
                           sqrt(num / den));
                agent_state_free(&st[0]);
                agent_state_free(&st[1]);
            }
        }
    }
}

int main(void) {
    RUN_TEST(test_variants_run);
    RUN_TEST(test_determinism);
    RUN_TEST(test_publish_acts_with_the_published_state);
    RUN_TEST(test_noise_injection_equals_philox);
    RUN_TEST(test_noise_injection_is_used);
    RUN_TEST(test_k_collapse_gradient);
    return flame_test_report();
}
