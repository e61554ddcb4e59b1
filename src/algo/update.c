/*
 * update.c: the order of one update, written once for every backend (README: "The algorithm as implemented").
 *
 *   1-4  critic_target: a' from best-of-N particles, H(s'), y = s r + gamma (1-d)(min Q'(s',a') -/+ alpha H)
 *   5    critic_step:   twin-critic gradient and Adam step #1
 *   6-7  qweight:       posterior candidates scored by the critics (after step #1 in the reference
 *                       FLAME-M code, before it otherwise), softmax weights, v-bar
 *   8,11 policy_step:   actor gradient and Adam step (every policy_delay updates)
 *   10   critic_step:   re-apply the same critic gradient (FLAME-M reference quirk)
 *   9,12 alpha_step:    temperature step (every alpha.delay updates)
 *   13   polyak:        target critics and EMA policy (every target_delay updates)
 * The actor gradient and the candidate weights it uses are computed only on updates that apply
 * it (the reference code computes both every update and discards them on the others): they have
 * no other effect, and their random draws are addressed by the update index, so no other draw
 * moves. The ESS diagnostics are then those of the last actor update.
 */
#include "flame/update.h"

#include "flame/params.h"

/* SAC's temperature gradient is the log pi of the actor step's samples: its alpha steps come
   with actor steps (with update.policy_delay > 1, only every lcm(policy_delay, alpha.delay)-th
   update). FLAME's uses the critic target's entropy estimate, made on every update. */
static bool alpha_needs_actor(const FlameConfig *cfg) {
    return cfg->algo == ALGO_SAC;
}

UpdateCtx update_context(const FlameConfig *cfg, const AgentCounters *c) {
    UpdateCtx u;
    u.n = c->updates;
    u.do_actor = u.n % cfg->update.policy_delay == 0;
    u.do_alpha = cfg->alpha.learn && u.n % cfg->alpha.delay == 0 &&
                 (!alpha_needs_actor(cfg) || u.do_actor);
    u.do_target = u.n % cfg->update.target_delay == 0;
    u.actor_lr = adam_lr_linear(cfg->optim.actor_lr, cfg->optim.actor_lr_end,
                                cfg->optim.actor_lr_decay_begin, cfg->optim.actor_lr_decay_end,
                                c->actor_steps);
    return u;
}

/* steps of a schedule "every `every` updates, from update 0" within the first n updates */
static int64_t steps_within(int64_t n, int64_t every) {
    return n > 0 ? (n - 1) / every + 1 : 0;
}

void update_counters_after(const FlameConfig *cfg, int64_t updates, AgentCounters *counters) {
    counters->updates = updates;
    counters->actor_steps = steps_within(updates, cfg->update.policy_delay);
    counters->critic_steps = updates * (cfg->quirks.critic_double_step == TRI_YES ? 2 : 1);
    int64_t alpha_every = cfg->alpha.delay;
    if (alpha_needs_actor(cfg)) { /* lcm(policy_delay, alpha.delay) */
        int64_t a = cfg->update.policy_delay, b = cfg->alpha.delay;
        while (b) {
            int64_t t = a % b;
            a = b, b = t;
        }
        alpha_every = cfg->update.policy_delay / a * cfg->alpha.delay;
    }
    counters->alpha_steps = cfg->alpha.learn ? steps_within(updates, alpha_every) : 0;
}

int update_schedule_period(const FlameConfig *cfg) {
    int64_t a = cfg->update.policy_delay, b = cfg->update.target_delay, x = a, y = b;
    while (y) {
        int64_t t = x % y;
        x = y;
        y = t;
    }
    int64_t lcm = a / x * b;
    return lcm > 16 ? 16 : (int)lcm;
}

void update_step(const BackendOps *ops, Backend *b) {
    BackendBase *base = backend_base(b);
    const FlameConfig *cfg = base->cfg;
    AgentCounters *c = &base->counters;
    UpdateCtx u = update_context(cfg, c);

    ops->replay_sample(b, &u);
    ops->critic_target(b, &u);
    /* the candidate weights feed only the actor step: skipped on updates without one */
    if (cfg->quirks.weights_after_critic_step == TRI_YES) {
        ops->critic_step(b, &u, CRITIC_GRAD_AND_STEP);
        c->critic_steps++;
        if (u.do_actor) {
            ops->qweight(b, &u);
        }
    } else {
        if (u.do_actor) {
            ops->qweight(b, &u);
        }
        ops->critic_step(b, &u, CRITIC_GRAD_AND_STEP);
        c->critic_steps++;
    }
    if (u.do_actor) {
        ops->policy_step(b, &u);
        c->actor_steps++;
    }
    if (cfg->quirks.critic_double_step == TRI_YES) {
        ops->critic_step(b, &u, CRITIC_REAPPLY);
        c->critic_steps++;
    }
    if (u.do_alpha) {
        ops->alpha_step(b, &u);
        c->alpha_steps++;
    }
    if (u.do_target) {
        ops->polyak(b, &u);
    }
    if (ops->end_update) {
        ops->end_update(b, &u);
    }
    c->updates++;
}
