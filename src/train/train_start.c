/* train_start.c: the start block of `flame train` and its duration estimate (train_start.h). */
#include "flame/train_start.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "flame/agent.h"
#include "flame/check.h"
#include "flame/host.h"
#include "flame/progress.h"
#include "flame/rollout.h"
#include "flame/update.h"

/* reset rows of the scratch env pool: away from training, evaluation and eval/rollout envs */
#define SCRATCH_ENV_OFFSET 0x02000000u
#define SCRATCH_REPLAY_MIN 1024
#define MAX_TIMED_UPDATES 64

/* made-up but finite values in [-1, 1) (a linear congruential sequence) */
static void made_up(float *v, size_t n, uint32_t *x) {
    for (size_t i = 0; i < n; i++) {
        *x = *x * 1664525u + 1013904223u;
        v[i] = (float)(*x >> 8) / 16777216.0f * 2.0f - 1.0f;
    }
}

/* made-up transitions, enough for the minibatches */
static void fill_replay(const BackendOps *ops, Backend *b, int64_t rows, int S, int D) {
    const int chunk = 256;
    float *obs = flame_malloc((size_t)chunk * S * sizeof(float));
    float *next = flame_malloc((size_t)chunk * S * sizeof(float));
    float *act = flame_malloc((size_t)chunk * D * sizeof(float));
    float *rew = flame_malloc((size_t)chunk * sizeof(float));
    uint8_t *done = flame_calloc((size_t)chunk, 1);
    uint32_t x = 12345u;
    for (int64_t r0 = 0; r0 < rows; r0 += chunk) {
        int n = rows - r0 < chunk ? (int)(rows - r0) : chunk;
        made_up(obs, (size_t)n * S, &x);
        made_up(next, (size_t)n * S, &x);
        made_up(act, (size_t)n * D, &x);
        made_up(rew, (size_t)n, &x);
        ops->replay_push(b, obs, act, rew, next, done, n);
    }
    flame_free(obs);
    flame_free(next);
    flame_free(act);
    flame_free(rew);
    flame_free(done);
}

/* seconds per update over whole schedule periods, and per act call on n observations */
static int time_agent(const FlameConfig *cfg, const BackendOps *ops, int S, int D, int n,
                      TrainEstimate *e) {
    FlameConfig c = *cfg; /* the scratch agent's: a small replay ring */
    int64_t cap =
        c.update.batch_size > SCRATCH_REPLAY_MIN ? c.update.batch_size : SCRATCH_REPLAY_MIN;
    c.update.replay_size = cap < c.update.replay_size ? cap : c.update.replay_size;
    Backend *b = NULL;
    int rc = ops->create(&c, S, D, &b);
    if (rc != FLAME_OK) {
        return rc;
    }
    fill_replay(ops, b, c.update.replay_size, S, D);
    int period = update_schedule_period(&c);
    int warm = strcmp(ops->name, "cpu") ? 2 * period : 1;
    for (int k = 0; k < warm; k++) {
        update_step(ops, b);
    }
    if (ops->sync) {
        ops->sync(b);
    }
    double t0 = host_now(), dt = 0;
    int done = 0;
    while (done == 0 || (dt < TRAIN_ESTIMATE_BUDGET_S && done + period <= MAX_TIMED_UPDATES)) {
        for (int k = 0; k < period; k++) {
            update_step(ops, b);
        }
        if (ops->sync) {
            ops->sync(b);
        }
        done += period;
        dt = host_now() - t0;
    }
    e->update_s = dt / done;
    e->timed_updates = done;
    /* acting on n made-up observations */
    float *acts = flame_malloc((size_t)n * D * sizeof(float));
    float *obs = flame_malloc((size_t)n * S * sizeof(float));
    uint32_t x = 777u;
    made_up(obs, (size_t)n * S, &x);
    ops->act(b, obs, n, ACT_EXPLORE, 0, acts);
    int calls = 0;
    t0 = host_now();
    do {
        ops->act(b, obs, n, ACT_EXPLORE, (uint32_t)(1 + calls), acts);
        calls++;
        dt = host_now() - t0;
    } while (dt < 0.1 && calls < 50);
    e->act_s = dt / calls;
    flame_free(obs);
    flame_free(acts);
    ops->destroy(b);
    return FLAME_OK;
}

/* seconds per vectorised step of a scratch pool like the training one */
static int time_envs(const FlameConfig *cfg, int num_envs, int threads, TrainEstimate *e) {
    RolloutEnvs env = {.spec = env_spec_find(cfg->env.id),
                       .model_xml = cfg->env.model_xml,
                       .num_envs = num_envs,
                       .num_threads = threads,
                       .seed = (uint64_t)cfg->run.seed,
                       .env_offset = SCRATCH_ENV_OFFSET};
    Rollout *r = NULL;
    int rc = rollout_create(&env, &r);
    if (rc != FLAME_OK) {
        return rc;
    }
    rollout_reset(r);
    RolloutPolicy pol = rollout_policy_random((uint64_t)cfg->run.seed);
    RolloutSink none = {.ctx = NULL}; /* no sink */
    RolloutTimes t = {0, 0, 0};
    int steps = 0;
    double t0 = host_now();
    while (rc == FLAME_OK && (steps < 10 || (host_now() - t0 < 0.2 && steps < 2000))) {
        rc = rollout_step(r, &pol, (uint32_t)steps, &none, &t);
        steps++;
    }
    e->env_step_s = t.env_s / steps;
    rollout_free(r);
    return rc;
}

void train_estimate_model(const FlameConfig *cfg, int num_envs, int obs_dim, int act_dim,
                          int64_t from_step, bool cuda, TrainEstimate *e) {
    const int64_t start = cfg->run.start_steps, end = start + cfg->run.total_steps;
    const double N = num_envs;
    int64_t from = from_step < end ? from_step : end;
    e->warmup_steps = from < start ? start - from : 0;
    e->train_steps = end - (from > start ? from : start);
    double warm_calls = ceil((double)e->warmup_steps / N);
    double train_calls = ceil((double)e->train_steps / N);
    e->updates = (int64_t)train_calls * cfg->update.updates_per_iter;
    e->warmup_s = warm_calls * e->env_step_s;
    e->train_s = train_calls * (e->env_step_s + e->act_s) + (double)e->updates * e->update_s;
    /* evaluation rounds left: at start + k every (k >= 1) after `from`, and one at the end when
       that is not on the cadence */
    int64_t every = cfg->run.eval_every, total = cfg->run.total_steps;
    e->eval_rounds = 0;
    e->eval_s = 0;
    if (cfg->run.eval_episodes > 0) {
        int64_t k0 = from < start ? 1 : (from - start) / every + 1, k1 = total / every;
        e->eval_rounds = (k1 >= k0 ? k1 - k0 + 1 : 0) + (total % every ? 1 : 0);
        const EnvSpec *spec = env_spec_find(cfg->env.id);
        double T = spec ? spec->max_episode_steps : 1000;
        int episodes = cfg->run.eval_episodes;
        int envs =
            cfg->env.eval_envs > 0 && cfg->env.eval_envs < episodes ? cfg->env.eval_envs : episodes;
        double per_round =
            episodes * T * (e->env_step_s / N) + ceil((double)episodes / envs) * T * e->act_s;
        e->eval_s = (double)e->eval_rounds * per_round;
    }
    e->total_s = e->warmup_s + e->train_s + e->eval_s;
    e->update_phase_sps =
        e->train_s + e->eval_s > 0 ? (double)e->train_steps / (e->train_s + e->eval_s) : NAN;
    e->flops_per_update = e->cuda_update_s = e->cuda_total_s = NAN;
    if (cuda) {
        UpdateFlops f;
        update_flops(cfg, obs_dim, act_dim, &f);
        e->flops_per_update = f.per_update;
        e->cuda_update_s =
            f.per_update / (CUDA_MODEL_EFFICIENCY * CUDA_MODEL_FP32_PEAK) + CUDA_MODEL_LAUNCH_S;
        e->cuda_total_s = e->warmup_s + train_calls * (e->env_step_s + e->act_s) +
                          (double)e->updates * e->cuda_update_s + e->eval_s;
    }
}

int train_estimate(const FlameConfig *cfg, const BackendOps *ops, int obs_dim, int act_dim,
                   int num_envs, int env_threads, int64_t from_step, TrainEstimate *e) {
    memset(e, 0, sizeof *e);
    int rc = time_agent(cfg, ops, obs_dim, act_dim, num_envs, e);
    rc = rc ? rc : time_envs(cfg, num_envs, env_threads, e);
    if (rc == FLAME_OK) {
        train_estimate_model(cfg, num_envs, obs_dim, act_dim, from_step, !strcmp(ops->name, "cpu"),
                             e);
    }
    return rc;
}

/* ------------------------------------------------------------------ the block */

/* n with thousands separators */
static const char *grouped(int64_t n, char *buf, size_t len) {
    char digits[32];
    snprintf(digits, sizeof digits, "%lld", (long long)(n < 0 ? -n : n));
    size_t nd = strlen(digits), o = 0;
    if (n < 0 && o + 1 < len) {
        buf[o++] = '-';
    }
    for (size_t i = 0; i < nd && o + 1 < len; i++) {
        if (i > 0 && (nd - i) % 3 == 0 && o + 2 < len) {
            buf[o++] = ',';
        }
        buf[o++] = digits[i];
    }
    buf[o] = '\0';
    return buf;
}

/* parameters of a network (its tensors' elements, without the alignment padding) */
static int64_t param_count(const ParamTable *t) {
    int64_t n = 0;
    for (int i = 0; i < t->count; i++) {
        n += (int64_t)t->t[i].size;
    }
    return n;
}

/* seconds as a duration with its unit: "270 ms", "4.2 s" */
static const char *short_time(double s, char *buf, size_t len) {
    if (s < 1e-3) {
        snprintf(buf, len, "%.1f us", s * 1e6);
    } else if (s < 1.0) {
        snprintf(buf, len, "%.3g ms", s * 1e3);
    } else {
        snprintf(buf, len, "%.3g s", s);
    }
    return buf;
}

static void estimate_lines(FILE *out, const TrainStartInfo *in) {
    const TrainEstimate *e = in->est;
    const FlameConfig *cfg = in->cfg;
    char tot[32], w[32], tr[32], ev[32], u[32], a[32], s[32], n1[32], n2[32];
    fprintf(out,
            "  estimate:  %s for the %s steps left (model: ", progress_hms(e->total_s, tot, 32),
            grouped(e->warmup_steps + e->train_steps, n1, 32));
    fprintf(out, "warm-up %s, update phase %s, evaluations %s at most; ",
            progress_hms(e->warmup_s, w, 32), progress_hms(e->train_s, tr, 32),
            progress_hms(e->eval_s, ev, 32));
    fprintf(out,
            "%s updates at %s each, timed over %d updates of a scratch agent; acting %s and "
            "an env step of the %d envs %s, timed; %lld evaluation rounds of %d episodes at "
            "the time limit; metrics and checkpoint writes not counted)\n",
            grouped(e->updates, n2, 32), short_time(e->update_s, u, 32), e->timed_updates,
            short_time(e->act_s, a, 32), cfg->env.num_envs, short_time(e->env_step_s, s, 32),
            (long long)e->eval_rounds, cfg->run.eval_episodes);
    if (!strcmp(in->backend, "cpu") && e->total_s > TRAIN_LONG_RUN_S && !isnan(e->cuda_total_s)) {
        char ct[32], cu[32];
        fprintf(out,
                "  note:      this is a long run for the CPU backend (about %.0f hours). The CUDA "
                "backend is modelled at %s for it: %s per update (%.1f GFLOP at %.0f%% of an "
                "H100's %.0f TFLOP/s fp32 peak plus %.1f ms of graph launches, kernels/NOTES.md); "
                "modelled, not measured: no GPU number exists yet. %s.\n",
                e->total_s / 3600.0, progress_hms(e->cuda_total_s, ct, 32),
                short_time(e->cuda_update_s, cu, 32), e->flops_per_update * 1e-9,
                CUDA_MODEL_EFFICIENCY * 100, CUDA_MODEL_FP32_PEAK * 1e-12,
                CUDA_MODEL_LAUNCH_S * 1e3, in->cuda_here);
    }
}

void train_start_block(FILE *out, const TrainStartInfo *in) {
    const FlameConfig *cfg = in->cfg;
    bool cpu = !strcmp(in->backend, "cpu");
    fprintf(out, "  backend:   %s on %s\n", in->backend, in->device);
    if (cpu) {
        fprintf(out, "  blas:      %s, %d thread(s); core %s\n", in->blas, cfg->run.cpu_threads,
                in->blas_core);
    } else {
        fprintf(out, "  blas:      cuBLAS on the device (the host's %s: core %s)\n", in->blas,
                in->blas_core);
    }
    AgentLayout L;
    agent_layout_init(&L, cfg, in->obs_dim, in->act_dim);
    char p[32], q[32];
    fprintf(out,
            "  networks:  policy %s parameters, critics 2 x %s (besides: Adam moments, "
            "gradients, EMA policy, target critics)\n",
            grouped(param_count(&L.pol_table), p, 32), grouped(param_count(&L.q_table), q, 32));
    int64_t row = (2 * (int64_t)in->obs_dim + in->act_dim + 1) * (int64_t)sizeof(float) + 1;
    double mib = (double)row * (double)cfg->update.replay_size / (1024.0 * 1024.0);
    char cap[32];
    fprintf(out, "  replay:    %s transitions x %lld bytes = %.1f MiB of %s memory%s\n",
            grouped(cfg->update.replay_size, cap, 32), (long long)row, mib, cpu ? "host" : "device",
            cfg->run.save_replay ? " (also in every checkpoint)" : "");
    if (in->est) {
        estimate_lines(out, in);
    } else {
        fprintf(out, "  estimate:  none (%s)\n", flame_last_error());
    }
}
