/*
 * test_flow.c: the policy/critic evaluation layer (time embeddings, input assembly, backward into
 * the time MLPs) against central finite differences of an independent double-precision forward
 * (tests/ref_nn.h), h = 1e-5. The fp32 passes accumulate a few hundred O(1) products (relative error
 * ~1e-6..1e-5) and the differences are exact to ~1e-9, so atol 2e-5 + rtol 2e-4 as for the MLP.
 */
#include <math.h>
#include <stdlib.h>

#include "algo_common.h"
#include "flame/flow.h"
#include "ref_nn.h"

#define ROWS 5

static double *dcopy(const float *x, size_t n) {
    double *d = malloc(sizeof(double) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) {
        d[i] = x[i];
    }
    return d;
}

/* sum(wout .* u) in double */
static double ref_loss(const AgentLayout *L, const double *P, const double *s, const double *x,
                       const double *r, const double *t, const double *wout) {
    double u[ROWS * 8];
    ref_flow_forward(L, P, s, x, r, t, ROWS, u);
    double l = 0;
    for (int i = 0; i < ROWS * L->act_dim; i++) {
        l += wout[i] * u[i];
    }
    return l;
}

static void check_policy(int algo) {
    FlameConfig cfg;
    small_config(&cfg, algo, COMPAT_REFERENCE);
    cfg.net.hidden = 8;
    config_resolve(&cfg);
    enum { S = 3, D = 2 };
    AgentState st;
    agent_state_init(&st, &cfg, S, D);
    const AgentLayout *L = &st.L;
    FlowWork w;
    flow_work_alloc(&w, L, ROWS);
    float s[ROWS * S], x[ROWS * D], r[ROWS], t[ROWS], wout[ROWS * D], tx[ROWS * D], tt[ROWS];
    for (int i = 0; i < ROWS * S; i++) {
        s[i] = rng_normal(1, RNG_STREAM_TEST, 0, 0, (uint32_t)i);
    }
    for (int i = 0; i < ROWS * D; i++) {
        x[i] = rng_normal(1, RNG_STREAM_TEST, 1, 0, (uint32_t)i);
        wout[i] = rng_normal(1, RNG_STREAM_TEST, 2, 0, (uint32_t)i);
        tx[i] = rng_normal(1, RNG_STREAM_TEST, 3, 0, (uint32_t)i);
    }
    for (int i = 0; i < ROWS; i++) {
        t[i] = 0.2f + 0.15f * i;
        r[i] = 0.1f * i;
        tt[i] = 0.5f + 0.3f * i;
    }
    /* the time MLPs start with zero biases and small weights: scale them up so their gradient and
       the t tangent are well above the finite-difference noise */
    float *P = st.pol.params;
    for (size_t i = 0; i < st.pol.n; i++) {
        P[i] *= 3.0f;
    }
    /* parameter gradient */
    memset(st.pol.grads, 0, st.pol.n * sizeof(float));
    flow_forward(L, P, s, x, r, t, ROWS, &w);
    float dx[ROWS * D];
    flow_backward(L, P, st.pol.grads, &w, wout, ROWS, dx);
    double *Pd = dcopy(P, st.pol.n), *sd = dcopy(s, ROWS * S), *xd = dcopy(x, ROWS * D);
    double *rd = dcopy(r, ROWS), *td = dcopy(t, ROWS), *wd = dcopy(wout, ROWS * D);
    float *fd = malloc(st.pol.n * sizeof(float));
    const double h = 1e-5;
    for (size_t i = 0; i < st.pol.n; i++) {
        double keep = Pd[i];
        Pd[i] = keep + h;
        double lp = ref_loss(L, Pd, sd, xd, rd, td, wd);
        Pd[i] = keep - h;
        double lm = ref_loss(L, Pd, sd, xd, rd, td, wd);
        Pd[i] = keep;
        fd[i] = (float)((lp - lm) / (2 * h));
    }
    /* time-MLP tensors must have non-trivial gradients (the path under test) */
    const TensorDesc *tw = param_table_find(&L->pol_table, "pol.tt.w0");
    double gmax = 0;
    for (size_t i = 0; i < tw->size; i++) {
        gmax = fmax(gmax, fabs(st.pol.grads[tw->offset + i]));
    }
    EXPECT(gmax > 1e-3);
    EXPECT_CLOSE("flow dL/dtheta", st.pol.grads, fd, st.pol.n, 2e-5, 2e-4);
    /* input gradient */
    float fdx[ROWS * D];
    for (int i = 0; i < ROWS * D; i++) {
        double keep = xd[i];
        xd[i] = keep + h;
        double lp = ref_loss(L, Pd, sd, xd, rd, td, wd);
        xd[i] = keep - h;
        double lm = ref_loss(L, Pd, sd, xd, rd, td, wd);
        xd[i] = keep;
        fdx[i] = (float)((lp - lm) / (2 * h));
    }
    EXPECT_CLOSE("flow dL/dx", dx, fdx, ROWS * D, 2e-5, 2e-4);
    /* JVP along (tx, 0, tt) against the central difference of u(x + h tx, r, t + h tt), and along
       (0, 0, tt) alone */
    for (int only_t = 0; only_t < 2; only_t++) {
        float zero[ROWS * D] = {0};
        const float *du;
        flow_jvp(L, P, s, x, r, t, only_t ? zero : tx, tt, ROWS, &w, &du);
        double xp[ROWS * D], xm[ROWS * D], tp[ROWS], tm[ROWS], up[ROWS * D], um[ROWS * D];
        for (int i = 0; i < ROWS * D; i++) {
            double dir = only_t ? 0.0 : tx[i];
            xp[i] = xd[i] + h * dir;
            xm[i] = xd[i] - h * dir;
        }
        for (int i = 0; i < ROWS; i++) {
            tp[i] = td[i] + h * tt[i];
            tm[i] = td[i] - h * tt[i];
        }
        ref_flow_forward(L, Pd, sd, xp, rd, tp, ROWS, up);
        ref_flow_forward(L, Pd, sd, xm, rd, tm, ROWS, um);
        float fdj[ROWS * D];
        double jmax = 0;
        for (int i = 0; i < ROWS * D; i++) {
            fdj[i] = (float)((up[i] - um[i]) / (2 * h));
            jmax = fmax(jmax, fabs(du[i]));
        }
        EXPECT(jmax > 1e-2);
        EXPECT_CLOSE(only_t ? "flow jvp (t only)" : "flow jvp (x, t)", du, fdj, ROWS * D, 2e-5,
                     2e-4);
    }
    free(Pd), free(sd), free(xd), free(rd), free(td), free(wd);
    free(fd);
    flow_work_free(&w);
    agent_state_free(&st);
}

FLAME_TEST(test_flow_meanflow_policy) {
    check_policy(ALGO_FLAME_M);
}

FLAME_TEST(test_flow_rectified_policy) {
    check_policy(ALGO_FLAME_R);
}

FLAME_TEST(test_critic_backward) {
    FlameConfig cfg;
    small_config(&cfg, ALGO_FLAME_M, COMPAT_REFERENCE);
    cfg.net.hidden = 8;
    config_resolve(&cfg);
    AgentState st;
    agent_state_init(&st, &cfg, 3, 2);
    QWork w;
    qwork_alloc(&w, &st.L, ROWS);
    float s[ROWS * 3], a[ROWS * 2], dq[ROWS], da[ROWS * 2], fda[ROWS * 2];
    for (int i = 0; i < ROWS * 3; i++) {
        s[i] = rng_normal(2, RNG_STREAM_TEST, 0, 0, (uint32_t)i);
    }
    for (int i = 0; i < ROWS * 2; i++) {
        a[i] = rng_normal(2, RNG_STREAM_TEST, 1, 0, (uint32_t)i);
    }
    for (int i = 0; i < ROWS; i++) {
        dq[i] = rng_normal(2, RNG_STREAM_TEST, 2, 0, (uint32_t)i);
    }
    critic_forward(&st.L, st.q1.params, s, a, ROWS, &w);
    critic_backward(&st.L, st.q1.params, NULL, &w, dq, ROWS, da);
    const double h = 1e-5;
    double *Pd = dcopy(st.q1.params, st.q1.n), in[ROWS * 5], q[ROWS];
    for (int i = 0; i < ROWS; i++) {
        for (int j = 0; j < 3; j++) {
            in[i * 5 + j] = s[i * 3 + j];
        }
        for (int j = 0; j < 2; j++) {
            in[i * 5 + 3 + j] = a[i * 2 + j];
        }
    }
    for (int i = 0; i < ROWS; i++) {
        for (int j = 0; j < 2; j++) {
            double keep = in[i * 5 + 3 + j], lp = 0, lm = 0;
            in[i * 5 + 3 + j] = keep + h;
            ref_forward(&st.L.q, Pd, in, ROWS, q);
            for (int k = 0; k < ROWS; k++) {
                lp += dq[k] * q[k];
            }
            in[i * 5 + 3 + j] = keep - h;
            ref_forward(&st.L.q, Pd, in, ROWS, q);
            for (int k = 0; k < ROWS; k++) {
                lm += dq[k] * q[k];
            }
            in[i * 5 + 3 + j] = keep;
            fda[i * 2 + j] = (float)((lp - lm) / (2 * h));
        }
    }
    free(Pd);
    EXPECT_CLOSE("critic dQ/da", da, fda, ROWS * 2, 2e-5, 2e-4);
    qwork_free(&w);
    agent_state_free(&st);
}

FLAME_TEST(test_time_embedding) {
    float e[16], de[16], ep[16], em[16];
    agent_time_embedding(0.37f, 16, e, de);
    agent_time_embedding(0.37f + 1e-3f, 16, ep, NULL);
    agent_time_embedding(0.37f - 1e-3f, 16, em, NULL);
    for (int j = 0; j < 16; j++) {
        EXPECT(fabsf(de[j] - (ep[j] - em[j]) / 2e-3f) < 1e-3f);
    }
    /* e(tau) = 1/4 [sin(tau w_j), cos(tau w_j)], w_j = 10000^(-j/8) */
    EXPECT(fabsf(e[0] - 0.25f * sinf(0.37f)) < 1e-7f && fabsf(e[8] - 0.25f * cosf(0.37f)) < 1e-7f);
    EXPECT(fabsf(e[1] - 0.25f * sinf(0.37f * powf(10000.0f, -1.0f / 8))) < 1e-7f);
}

int main(void) {
    RUN_TEST(test_flow_meanflow_policy);
    RUN_TEST(test_flow_rectified_policy);
    RUN_TEST(test_critic_backward);
    RUN_TEST(test_time_embedding);
    return flame_test_report();
}
