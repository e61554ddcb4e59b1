/* agent.c: network layouts and the training state of an agent (see include/flame/agent.h). */
#include "flame/agent.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "flame/check.h"

void agent_layout_init(AgentLayout *L, const FlameConfig *cfg, int obs_dim, int act_dim) {
    memset(L, 0, sizeof *L);
    L->algo = cfg->algo;
    L->obs_dim = obs_dim;
    L->act_dim = act_dim;
    L->time_dim = cfg->net.time_embed_dim;
    int H = cfg->net.hidden, nh = cfg->net.layers, act = cfg->net.activation;
    FLAME_CHECK(act != ACT_AUTO, "config not resolved (net.activation = auto)");

    param_table_init(&L->pol_table);
    if (cfg->algo == ALGO_SAC) {
        L->trunk_in = obs_dim;
        L->pol_out = 2 * act_dim;
    } else {
        L->has_tr = cfg->algo == ALGO_FLAME_M;
        L->has_tt = true;
        if (L->has_tr) {
            mlp_layout(&L->pol_tr, &L->pol_table, "pol.tr", L->time_dim, cfg->net.time_hidden, 1,
                       L->time_dim, act);
        }
        mlp_layout(&L->pol_tt, &L->pol_table, "pol.tt", L->time_dim, cfg->net.time_hidden, 1,
                   L->time_dim, act);
        L->trunk_in = obs_dim + act_dim + (L->has_tr ? 2 : 1) * L->time_dim;
        L->pol_out = act_dim;
    }
    mlp_layout(&L->pol_trunk, &L->pol_table, "pol.trunk", L->trunk_in, H, nh, L->pol_out, act);

    param_table_init(&L->q_table);
    mlp_layout(&L->q, &L->q_table, "q", obs_dim + act_dim, H, nh, 1, act);
}

void agent_state_init(AgentState *a, const FlameConfig *cfg, int obs_dim, int act_dim) {
    memset(a, 0, sizeof *a);
    agent_layout_init(&a->L, cfg, obs_dim, act_dim);
    AgentLayout *L = &a->L;
    param_blob_alloc(&a->pol, &L->pol_table);
    param_blob_alloc(&a->q1, &L->q_table);
    param_blob_alloc(&a->q2, &L->q_table);
    size_t np = L->pol_table.total, nq = L->q_table.total;
    a->mem = flame_calloc(np + 2 * nq, sizeof(float));
    a->pol_ema = a->mem;
    a->q1_targ = a->mem + np;
    a->q2_targ = a->mem + np + nq;

    uint64_t seed = (uint64_t)cfg->run.seed;
    if (L->has_tr) {
        mlp_init_params(&L->pol_tr, &L->pol_table, a->pol.params, seed, NET_POLICY);
    }
    if (L->has_tt) {
        mlp_init_params(&L->pol_tt, &L->pol_table, a->pol.params, seed, NET_POLICY);
    }
    mlp_init_params(&L->pol_trunk, &L->pol_table, a->pol.params, seed, NET_POLICY);
    mlp_init_params(&L->q, &L->q_table, a->q1.params, seed, NET_Q1);
    mlp_init_params(&L->q, &L->q_table, a->q2.params, seed, NET_Q2);
    memcpy(a->pol_ema, a->pol.params, np * sizeof(float));
    memcpy(a->q1_targ, a->q1.params, nq * sizeof(float));
    memcpy(a->q2_targ, a->q2.params, nq * sizeof(float));
    /* the reference code's SAC starts at log alpha = 1 (alpha = e) whatever the initial value */
    bool sac_ref = cfg->algo == ALGO_SAC && cfg->quirks.sac_alpha_init == QUIRK_REFERENCE;
    a->log_alpha = sac_ref ? 1.0f : (float)log(cfg->alpha.init);
}

void agent_state_free(AgentState *a) {
    param_blob_free(&a->pol);
    param_blob_free(&a->q1);
    param_blob_free(&a->q2);
    flame_free(a->mem);
    memset(a, 0, sizeof *a);
}

void agent_state_copy(AgentState *dst, const AgentState *src) {
    FLAME_CHECK(dst->L.pol_table.total == src->L.pol_table.total &&
                    dst->L.q_table.total == src->L.q_table.total,
                "agent_state_copy between different layouts");
    size_t np = src->L.pol_table.total, nq = src->L.q_table.total;
    memcpy(dst->pol.base, src->pol.base, 4 * np * sizeof(float));
    memcpy(dst->q1.base, src->q1.base, 4 * nq * sizeof(float));
    memcpy(dst->q2.base, src->q2.base, 4 * nq * sizeof(float));
    memcpy(dst->mem, src->mem, (np + 2 * nq) * sizeof(float));
    dst->log_alpha = src->log_alpha;
    dst->alpha_m = src->alpha_m;
    dst->alpha_v = src->alpha_v;
    dst->updates = src->updates;
    dst->actor_steps = src->actor_steps;
    dst->critic_steps = src->critic_steps;
    dst->alpha_steps = src->alpha_steps;
}

static bool same(const float *a, const float *b, size_t n) {
    return memcmp(a, b, n * sizeof(float)) == 0;
}

bool agent_state_equal(const AgentState *a, const AgentState *b, char *what, size_t what_len) {
    size_t np = a->L.pol_table.total, nq = a->L.q_table.total;
    struct {
        const char *name;
        const float *x, *y;
        size_t n;
    } arrays[] = {
        {"policy params", a->pol.params, b->pol.params, np},
        {"policy adam m", a->pol.m, b->pol.m, np},
        {"policy adam v", a->pol.v, b->pol.v, np},
        {"q1 params", a->q1.params, b->q1.params, nq},
        {"q1 adam m", a->q1.m, b->q1.m, nq},
        {"q1 adam v", a->q1.v, b->q1.v, nq},
        {"q2 params", a->q2.params, b->q2.params, nq},
        {"q2 adam m", a->q2.m, b->q2.m, nq},
        {"q2 adam v", a->q2.v, b->q2.v, nq},
        {"policy ema", a->pol_ema, b->pol_ema, np},
        {"q1 target", a->q1_targ, b->q1_targ, nq},
        {"q2 target", a->q2_targ, b->q2_targ, nq},
        {"log alpha", &a->log_alpha, &b->log_alpha, 1},
        {"alpha adam m", &a->alpha_m, &b->alpha_m, 1},
        {"alpha adam v", &a->alpha_v, &b->alpha_v, 1},
    };
    if (a->L.pol_table.total != b->L.pol_table.total || a->L.q_table.total != b->L.q_table.total) {
        snprintf(what, what_len, "layouts differ");
        return false;
    }
    for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++) {
        if (!same(arrays[i].x, arrays[i].y, arrays[i].n)) {
            snprintf(what, what_len, "%s", arrays[i].name);
            return false;
        }
    }
    if (a->updates != b->updates || a->actor_steps != b->actor_steps ||
        a->critic_steps != b->critic_steps || a->alpha_steps != b->alpha_steps) {
        snprintf(what, what_len, "step counters");
        return false;
    }
    return true;
}

void agent_time_frequencies(int dim, float *w) {
    int half = dim / 2;
    for (int j = 0; j < half; j++) {
        w[j] = (float)pow(10000.0, -(double)j / half);
    }
}

void agent_time_embedding_w(float tau, int dim, const float *w, float *e, float *de) {
    int half = dim / 2;
    for (int j = 0; j < half; j++) {
        float s = sinf(tau * w[j]), c = cosf(tau * w[j]);
        e[j] = 0.25f * s;
        e[half + j] = 0.25f * c;
        if (de) {
            de[j] = 0.25f * w[j] * c;
            de[half + j] = -0.25f * w[j] * s;
        }
    }
}

void agent_time_embedding(float tau, int dim, float *e, float *de) {
    float w[512];
    FLAME_CHECK(dim <= 1024, "time embedding dimension %d too large", dim);
    agent_time_frequencies(dim, w);
    agent_time_embedding_w(tau, dim, w, e, de);
}
