/* train_stats.c: interval statistics of the updates and recent episode returns (train_stats.h). */
#include "flame/train_stats.h"

#include <math.h>
#include <string.h>

void train_stats_reset(TrainStats *s) {
    memset(s, 0, sizeof *s);
    s->q_min = s->ess_min = INFINITY;
    s->q_max = s->jvp_max = -INFINITY;
}

/* extremes propagate NaN (fmin/fmax would drop it, hiding a diverged update) */
static double lowest(double a, double b) {
    return isnan(a) || isnan(b) ? NAN : (b < a ? b : a);
}

static double highest(double a, double b) {
    return isnan(a) || isnan(b) ? NAN : (b > a ? b : a);
}

void train_stats_add(TrainStats *s, const UpdateMetrics *m, bool actor_step) {
    s->updates++;
    s->critic_loss += 0.5 * (m->critic_loss[0] + m->critic_loss[1]);
    s->q_mean += m->q_mean;
    s->target_mean += m->target_mean;
    s->alpha += m->alpha;
    s->entropy += m->entropy;
    s->q_min = lowest(s->q_min, m->q_min);
    s->q_max = highest(s->q_max, m->q_max);
    if (actor_step) {
        s->actor_updates++;
        s->actor_loss += m->actor_loss;
        s->fm_loss += m->fm_loss;
        s->qterm_loss += m->qterm_loss;
        s->ess_mean += m->ess_mean;
        s->ess_min = lowest(s->ess_min, m->ess_min);
        s->jvp_max = highest(s->jvp_max, m->jvp_max);
    }
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
