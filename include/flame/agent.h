/*
 * agent.h: the networks of one agent and their complete training state, in host memory.
 *
 * AgentLayout fixes the tensor tables (shared by both backends, so their blobs are byte-compatible
 * and checkpoints are interchangeable):
 *   FLAME-M policy u(x, r, t | s): time MLP for r ("pol.tr"), time MLP for t ("pol.tt"), trunk
 *           ("pol.trunk") on [s, x, g_r(r), g_t(t)] -> D.
 *   FLAME-R policy v(x, t | s):    time MLP for t, trunk on [s, x, g_t(t)] -> D.
 *   SAC policy:                    trunk on s -> 2D (mean, log std).
 *   critic Q(s, a):                trunk on [s, a] -> 1 (two independent copies plus targets).
 * AgentState holds every array a resume needs: parameters, gradients and Adam moments (ParamBlob),
 * the EMA policy, the target critics, log alpha with its Adam moments, and the step counters.
 *
 * defines: AgentLayout AgentState agent_layout_init agent_state_init agent_state_free
 *          agent_state_copy agent_state_equal agent_time_embedding agent_time_frequencies
 *          agent_time_embedding_w
 */
#ifndef FLAME_AGENT_H
#define FLAME_AGENT_H

#include <stdbool.h>
#include <stdint.h>

#include "flame/config.h"
#include "flame/mlp.h"
#include "flame/params.h"

/* network ids of the initialisation draws */
enum { NET_POLICY = 1, NET_Q1 = 2, NET_Q2 = 3 };

typedef struct {
    int algo;
    int obs_dim, act_dim;
    /* policy */
    ParamTable pol_table;
    Mlp pol_tr, pol_tt, pol_trunk;
    bool has_tr, has_tt;
    int time_dim;  /* sinusoidal embedding size = output of each time MLP */
    int trunk_in;  /* trunk input width */
    int pol_out;   /* D for flows, 2D for SAC */
    /* critic */
    ParamTable q_table;
    Mlp q;
} AgentLayout;

typedef struct {
    AgentLayout L;
    ParamBlob pol, q1, q2;    /* params, grads, Adam m, v */
    float *pol_ema;           /* EMA policy (acts) */
    float *q1_targ, *q2_targ; /* target critics */
    float log_alpha, alpha_m, alpha_v;
    int64_t updates;      /* gradient updates done (n) */
    int64_t actor_steps;  /* policy Adam steps done */
    int64_t critic_steps; /* critic Adam steps done (two per update with the double-step quirk) */
    int64_t alpha_steps;  /* log-alpha Adam steps done */
    float *mem;           /* one allocation for pol_ema, q1_targ, q2_targ */
} AgentState;

void agent_layout_init(AgentLayout *L, const FlameConfig *cfg, int obs_dim, int act_dim);

/* Layout, allocation and initialisation from cfg->run.seed (targets = critics, EMA = policy). */
void agent_state_init(AgentState *a, const FlameConfig *cfg, int obs_dim, int act_dim);
void agent_state_free(AgentState *a);

/* Deep copy of every array and counter (dst must have been initialised with the same layout). */
void agent_state_copy(AgentState *dst, const AgentState *src);

/* Bitwise equality of every array and counter; on mismatch `what` names the first difference. */
bool agent_state_equal(const AgentState *a, const AgentState *b, char *what, size_t what_len);

/* The scaled sinusoidal time embedding e(tau) = 1/4 [sin(tau w_j), cos(tau w_j)], w_j =
   10000^(-j/half), j < half = dim/2; optionally its derivative de/dtau. */
void agent_time_embedding(float tau, int dim, float *e, float *de);

/* The frequencies w_j (dim/2 of them), and the embedding with precomputed frequencies. */
void agent_time_frequencies(int dim, float *w);
void agent_time_embedding_w(float tau, int dim, const float *w, float *e, float *de);

#endif
