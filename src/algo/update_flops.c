/* update_flops.c: the analytic GEMM FLOPs of one update (update.h; flame-algorithm.md §13). */
#include <string.h>

#include "flame/mlp.h"
#include "flame/update.h"

void update_flops(const FlameConfig *cfg, int obs_dim, int act_dim, UpdateFlops *f) {
    AgentLayout L;
    agent_layout_init(&L, cfg, obs_dim, act_dim);
    memset(f, 0, sizeof *f);
    double Fp = mlp_flops(&L.pol_trunk);
    if (L.has_tr) {
        Fp += mlp_flops(&L.pol_tr);
    }
    if (L.has_tt && cfg->algo != ALGO_SAC) {
        Fp += mlp_flops(&L.pol_tt);
    }
    double Fq = mlp_flops(&L.q);
    f->f_policy = Fp;
    f->f_critic = Fq;
    double B = cfg->update.batch_size, K = cfg->flow.sample_k, Np = cfg->flow.num_particles;
    double N = cfg->flow.sample_steps > 0 ? cfg->flow.sample_steps : 1;
    double NP = cfg->entropy.probes, Ne = cfg->entropy.steps;

    /* critic target: a' (particles scored by both critics), H(s'), target twin-Q on (s', a') */
    double ct = 2 * B * Fq;
    if (cfg->algo == ALGO_SAC) {
        ct += B * Fp;
    } else {
        ct += Np * B * N * Fp + 2 * Np * B * Fq;
        double jvps = 0; /* JVPs of B rows, 2 forwards each */
        switch (cfg->entropy.estimator) {
            case ENT_REFERENCE3:
            case ENT_DECOUPLED:
            case ENT_ODE:
                jvps = Ne * NP;
                break;
            case ENT_BIASED1:
                jvps = NP;
                break;
            case ENT_EXACT:
                jvps = act_dim;
                break;
            default:
                jvps = 0;
        }
        ct += jvps * B * 2 * Fp;
    }
    f->critic_target = ct;
    /* critic step: forward + parameter backward of both critics on the batch */
    f->critic_step = 2 * B * 3 * Fq;
    /* candidate weights: B*K rows through both critics */
    f->qweight = cfg->algo == ALGO_SAC ? 0 : 2 * B * K * Fq;
    /* policy step */
    double ps;
    if (cfg->algo == ALGO_SAC) {
        ps = B * 3 * Fp + 2 * B * 2 * Fq; /* policy fwd + bwd; both critics fwd + input bwd */
    } else if (cfg->algo == ALGO_FLAME_R) {
        ps = B * 3 * Fp; /* regression on the weighted target: B rows either way */
    } else {
        ps = (cfg->flow.collapse_k ? B : B * K) * 4 * Fp; /* JVP + parameter backward */
        if (cfg->flow.actor_q_weight > 0) {
            ps += B * 3 * Fp + 2 * B * 2 * Fq; /* -Q term through the target critics */
        }
    }
    f->policy_step = ps;
    double pd = cfg->update.policy_delay;
    f->all_stages = f->critic_target + f->critic_step + f->qweight + f->policy_step;
    /* update_step computes the candidate weights only for the actor step that uses them */
    f->per_update = f->critic_target + f->critic_step + (f->qweight + f->policy_step) / pd;
}
