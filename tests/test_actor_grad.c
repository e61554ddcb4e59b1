/*
 * test_actor_grad.c: the actor loss gradient of every variant against central finite differences,
 * on 300 parameters spread over every tensor:
 *   - FLAME-R and SAC (reparameterised tanh-Gaussian): the loss itself;
 *   - FLAME-M flow matching: its target y-bar = v-bar - (t - r) du is a stop-gradient, so the
 *     reference is the loss with y-bar frozen at the current parameters, (1/BD) sum |u - y-bar|^2;
 *   - FLAME-M -Q term: the difference between the losses with and without it. The loss is evaluated in fp32 at O(1) values:
 * with h = 2e-3 the difference quotient carries ~1e-4 of rounding noise, so atol 1e-3 + rtol 2e-2
 * separates it from any real error (a wrong sign or a missing term is off by O(|g|)).
 */
#include <math.h>
#include <stdlib.h>

#include "algo_common.h"
#include "flame/flow.h"

typedef struct {
    Backend *b;
    FlameConfig cfg;
    CpuDebugView v;
} Setup;

/* a realistic state (one update done), then the stages before the actor for the next update */
static void setup(Setup *s, int algo, int compat, double qweight) {
    small_config(&s->cfg, algo, compat);
    s->cfg.flow.actor_q_weight = qweight;
    s->cfg.alpha.init = 0.4;
    s->b = make_backend(&s->cfg, 5, 3, 300);
    update_step(&backend_cpu_ops, s->b);
    BackendBase *base = backend_base(s->b);
    UpdateCtx u = update_context(&s->cfg, &base->counters);
    backend_cpu_ops.replay_sample(s->b, &u);
    backend_cpu_ops.critic_target(s->b, &u);
    backend_cpu_ops.qweight(s->b, &u);
    backend_cpu_debug(s->b, &s->v);
}

enum { M = 300 };
static const double H = 2e-3;

static size_t sample_index(int k, size_t n) {
    return (size_t)((double)k / M * (double)n); /* spread over every tensor */
}

/* gradient (analytic) vs finite differences of loss_fn at the sampled parameters */
static void compare(const char *name, const float *grad, size_t n, float *P,
                    double (*loss_fn)(void *), void *ctx) {
    float got[M], fd[M];
    double gmax = 0;
    for (int k = 0; k < M; k++) {
        size_t i = sample_index(k, n);
        float keep = P[i];
        P[i] = (float)(keep + H);
        double lp = loss_fn(ctx);
        P[i] = (float)(keep - H);
        double lm = loss_fn(ctx);
        P[i] = keep;
        got[k] = grad[i];
        fd[k] = (float)((lp - lm) / (2 * H));
        gmax = fmax(gmax, fabs(grad[i]));
    }
    EXPECT(gmax > 1e-3);
    EXPECT_CLOSE(name, got, fd, M, 1e-3, 2e-2);
}

static double full_loss(void *ctx) {
    return backend_cpu_actor_loss((Backend *)ctx, NULL);
}

static void check_direct(int algo) {
    Setup s;
    setup(&s, algo, COMPAT_REFERENCE, 0.0);
    size_t n = s.v.state->pol.n;
    float *g = malloc(n * sizeof(float));
    backend_cpu_actor_loss(s.b, g);
    compare(algo == ALGO_SAC ? "sac actor grad" : "flame-r actor grad", g, n,
            backend_cpu_policy_params(s.b), full_loss, s.b);
    free(g);
    backend_cpu_ops.destroy(s.b);
}

/* FLAME-M flow matching with the target frozen */
typedef struct {
    Setup *s;
    FlowWork w;
    float *ybar; /* B x D */
} Frozen;

static double frozen_loss(void *ctx) {
    Frozen *f = ctx;
    const CpuDebugView *v = &f->s->v;
    const float *u = flow_forward(&v->state->L, backend_cpu_policy_params(f->s->b), v->obs, v->x,
                                  v->r, v->t, v->B, &f->w);
    double l = 0;
    for (int i = 0; i < v->B * v->D; i++) {
        double e = (double)u[i] - f->ybar[i];
        l += e * e;
    }
    return l / ((double)v->B * v->D);
}

static void check_meanflow(int compat) {
    Setup s;
    setup(&s, ALGO_FLAME_M, compat, 0.0);
    const CpuDebugView *v = &s.v;
    size_t n = v->state->pol.n;
    float *g = malloc(n * sizeof(float));
    backend_cpu_actor_loss(s.b, g);
    Frozen f = {&s, {0}, malloc(sizeof(float) * (size_t)v->B * v->D)};
    flow_work_alloc(&f.w, &v->state->L, v->B);
    float *ones = malloc(sizeof(float) * (size_t)v->B);
    for (int i = 0; i < v->B; i++) {
        ones[i] = 1.0f;
    }
    const float *du;
    flow_jvp(&v->state->L, backend_cpu_policy_params(s.b), v->obs, v->x, v->r, v->t, v->vbar,
             ones, v->B, &f.w, &du);
    for (int i = 0; i < v->B; i++) {
        for (int d = 0; d < v->D; d++) {
            size_t j = (size_t)i * v->D + d;
            f.ybar[j] = v->vbar[j] - (v->t[i] - v->r[i]) * du[j];
        }
    }
    compare(compat ? "flame-m flow matching grad (consistent)" : "flame-m flow matching grad", g,
            n, backend_cpu_policy_params(s.b), frozen_loss, &f);
    flow_work_free(&f.w);
    free(f.ybar), free(ones), free(g);
    backend_cpu_ops.destroy(s.b);
}

/* FLAME-M -Q term: the with/without difference of loss and gradient */
typedef struct {
    Setup *with, *without;
} Pair;

static double q_loss(void *ctx) {
    Pair *p = ctx;
    return backend_cpu_actor_loss(p->with->b, NULL) - backend_cpu_actor_loss(p->without->b, NULL);
}

static void check_q_term(int compat) {
    Setup a, b;
    setup(&a, ALGO_FLAME_M, compat, 1.0);
    setup(&b, ALGO_FLAME_M, compat, 0.0);
    size_t n = a.v.state->pol.n;
    float *ga = malloc(n * sizeof(float)), *gb = malloc(n * sizeof(float));
    backend_cpu_actor_loss(a.b, ga);
    backend_cpu_actor_loss(b.b, gb);
    for (size_t i = 0; i < n; i++) {
        ga[i] -= gb[i];
    }
    /* perturb both backends' parameters together: compare() perturbs `with`; mirror into
       `without` inside the loss */
    float *Pa = backend_cpu_policy_params(a.b), *Pb = backend_cpu_policy_params(b.b);
    float got[M], fd[M];
    double gmax = 0;
    Pair p = {&a, &b};
    for (int k = 0; k < M; k++) {
        size_t i = sample_index(k, n);
        float keep = Pa[i];
        Pa[i] = Pb[i] = (float)(keep + H);
        double lp = q_loss(&p);
        Pa[i] = Pb[i] = (float)(keep - H);
        double lm = q_loss(&p);
        Pa[i] = Pb[i] = keep;
        got[k] = ga[i];
        fd[k] = (float)((lp - lm) / (2 * H));
        gmax = fmax(gmax, fabs(ga[i]));
    }
    EXPECT(gmax > 1e-3);
    EXPECT_CLOSE(compat ? "flame-m -Q term grad (consistent)" : "flame-m -Q term grad", got, fd,
                 M, 1e-3, 2e-2);
    free(ga), free(gb);
    backend_cpu_ops.destroy(a.b);
    backend_cpu_ops.destroy(b.b);
}

FLAME_TEST(test_flame_m_flow_matching) {
    check_meanflow(COMPAT_REFERENCE);
    check_meanflow(COMPAT_CONSISTENT);
}

FLAME_TEST(test_flame_m_q_term) {
    check_q_term(COMPAT_REFERENCE);
    check_q_term(COMPAT_CONSISTENT);
}

FLAME_TEST(test_flame_r) {
    check_direct(ALGO_FLAME_R);
}

FLAME_TEST(test_sac) {
    check_direct(ALGO_SAC);
}

int main(void) {
    RUN_TEST(test_flame_m_flow_matching);
    RUN_TEST(test_flame_m_q_term);
    RUN_TEST(test_flame_r);
    RUN_TEST(test_sac);
    return flame_test_report();
}
