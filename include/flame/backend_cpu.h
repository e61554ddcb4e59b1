/*
 * backend_cpu.h: CPU-backend-only access for verification: read-only views of the intermediate
 * quantities of the last update (TD targets, noisy actions, weights, ...) and a fixed analytic
 * critic mode in which a user function replaces both online and target critics (used to check that
 * the Q-reweighted objective converges to exp(Q/alpha) without critic learning).
 *
 * defines: CpuDebugView backend_cpu_debug backend_cpu_set_analytic_critic AnalyticQ
 *          backend_cpu_actor_loss backend_cpu_policy_params
 */
#ifndef FLAME_BACKEND_CPU_H
#define FLAME_BACKEND_CPU_H

#include "flame/backend.h"
#include "flame/noise.h"

typedef struct {
    int B, S, D, K, Np;
    const float *obs, *act, *rew, *next_obs, *done; /* the minibatch */
    const float *y;                                  /* TD targets (B) */
    const float *ent;                                /* H(s') (B) */
    const float *next_a;                             /* a' (B x D) */
    const float *a_star;                             /* best particle before noise (B x D) */
    const float *x, *r, *t;                          /* noisy actions (B x D), times (B) */
    const float *w;                                  /* candidate weights (B x K) */
    const float *vbar;                               /* weighted tangent (B x D) */
    const float *ess;                                /* effective sample size per row (B) */
    const float *logpi;                              /* SAC: log pi of the actor sample (B) */
    const UpdateNoise *noise;                        /* the update's draws */
    const AgentState *state;
} CpuDebugView;

void backend_cpu_debug(Backend *b, CpuDebugView *v);

/* q(s, a) for `rows` rows (S and D from the backend); writes rows values. */
typedef void (*AnalyticQ)(const float *s, const float *a, int rows, int S, int D, float *q,
                          void *ctx);

/* The actor loss at the last update's batch and draws with the current parameters (after
   replay_sample, critic_target and qweight have run), and its gradient with respect to the policy
   parameters in `grads` (pol.n floats; NULL: the state's gradient array). For verification. */
double backend_cpu_actor_loss(Backend *b, float *grads);

/* Writable policy parameters (pol.n floats), for finite-difference checks. */
float *backend_cpu_policy_params(Backend *b);

/* Replaces both critics (online and target) by q; NULL restores the networks. */
void backend_cpu_set_analytic_critic(Backend *b, AnalyticQ q, void *ctx);

#endif
