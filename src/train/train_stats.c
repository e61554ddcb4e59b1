/* train_stats.c: interval statistics of the updates and recent episode returns (train_stats.h). */
#include "flame/train_stats.h"

#include <math.h>
#include <string.h>

void train_stats_reset(TrainStats *s) {
    memset(s, 0, sizeof *s);
    s->q_min = s->ess_min = INFINITY;
    s->q_max = s->jvp_max = -INFINITY;
}

void train_stats_merge(TrainStats *s, const TrainStats *t) {
    s->updates += t->updates;
    s->actor_updates += t->actor_updates;
    s->critic_loss += t->critic_loss;
    s->q_mean += t->q_mean;
    s->target_mean += t->target_mean;
    s->alpha += t->alpha;
    s->entropy += t->entropy;
    s->q_min = train_stats_lowest(s->q_min, t->q_min);
    s->q_max = train_stats_highest(s->q_max, t->q_max);
    s->actor_loss += t->actor_loss;
    s->fm_loss += t->fm_loss;
    s->qterm_loss += t->qterm_loss;
    s->ess_mean += t->ess_mean;
    s->ess_min = train_stats_lowest(s->ess_min, t->ess_min);
    s->jvp_max = train_stats_highest(s->jvp_max, t->jvp_max);
}

int64_t train_stats_fill(const TrainStats *s, UpdateMetrics *m) {
    if (s->updates > 0) {
        double n = (double)s->updates;
        m->critic_loss[0] = m->critic_loss[1] = s->critic_loss / n;
        m->q_mean = s->q_mean / n;
        m->target_mean = s->target_mean / n;
        m->alpha = s->alpha / n;
        m->entropy = s->entropy / n;
        m->q_min = s->q_min;
        m->q_max = s->q_max;
    }
    if (s->actor_updates > 0) {
        double n = (double)s->actor_updates;
        m->actor_loss = s->actor_loss / n;
        m->fm_loss = s->fm_loss / n;
        m->qterm_loss = s->qterm_loss / n;
        m->ess_mean = s->ess_mean / n;
        m->ess_min = s->ess_min;
        m->jvp_max = s->jvp_max;
    }
    return s->updates;
}

void recent_returns_add(RecentReturns *r, double ret) {
    r->ret[r->next] = ret;
    r->next = (r->next + 1) % TRAIN_RECENT_EPISODES;
    if (r->n < TRAIN_RECENT_EPISODES) {
        r->n++;
    }
}

double recent_returns_mean(const RecentReturns *r) {
    if (r->n == 0) {
        return NAN;
    }
    double sum = 0;
    for (int i = 0; i < r->n; i++) {
        sum += r->ret[i];
    }
    return sum / r->n;
}
