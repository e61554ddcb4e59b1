/*
 * train.c: the training loop. One iteration reads like the data flow of the README:
 *
 *     collect (act, envpool step, replay push) -> update(s) -> metrics -> evaluation -> checkpoint
 *
 * train_run opens a session (a fresh run directory or a checkpoint to resume, the envs, the
 * backend, the outputs), runs the loop, finishes (final evaluation, last metrics row, checkpoint)
 * and closes everything on one path, whatever failed. Everything random is addressed by counters
 * (rng.h) that checkpoints store, so a resumed run continues bitwise-identically.
 */
#include "flame/train.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flame/blas_core.h"
#include "flame/check.h"
#include "flame/ckpt.h"
#include "flame/host.h"
#include "flame/metrics.h"
#include "flame/mlp.h"
#include "flame/proc.h"
#include "flame/progress.h"
#include "flame/rollout.h"
#include "flame/run_dir.h"
#include "flame/train_start.h"
#include "flame/train_stats.h"
#include "flame/update.h"
#ifdef FLAME_HAVE_CUDA
#include "flame/cuda_api.h"
#endif

/* env rows of the evaluation pools (rng.h reset addresses): one block per round, away from the
   training envs (0..N-1) and from `flame eval` / `flame rollout` pools (ROLLOUT_ENV_OFFSET) */
#define EVAL_ENV_BASE 0x100000u
#define EVAL_ENV_BLOCK 0x1000u

static volatile sig_atomic_t g_signal = 0;

static void on_signal(int sig) {
    g_signal = sig;
}

typedef struct {
    const FlameConfig *cfg;
    const TrainOptions *opt;
    TrainSummary *sum;
    const BackendOps *ops;
    Backend *b;
    Rollout *roll;
    MetricsFile *metrics;
    TrainCounters tc;
    int N, S, D;
    RolloutReplay replay; /* staging of the replay push */
    char device[256];
    int64_t start_steps, end_steps, session_start;
    int64_t next_row, next_flush, last_row_step, last_eval_step;
    double eval_return;
    bool target_reached, stopped_at_target;
    double t0;         /* clock of the last wall_seconds update */
    double session_t0; /* start of the loop */
    double last_row_t; /* previous /train row: time and counters */
    int64_t last_row_steps, last_row_updates;
    Progress progress;
    TrainStats row_stats;  /* updates since the previous /train row */
    TrainStats line_stats; /* updates since the previous progress line */
    bool dev_stats;        /* the backend keeps both intervals (stats_track: slots 0 and 1) */
    bool overlap;          /* backend.overlap with a backend that publishes */
    RecentReturns recent;  /* returns of the last training episodes (progress line) */
    bool signals_on;
    struct sigaction old_int, old_term;
    RunDir rd;             /* the run directory's lock, and what a fresh start made in it */
    int64_t updates_owed;  /* updates of the current loop iteration still to do */
    bool eval_stopped;     /* a signal stopped the last evaluation: it is still due */
    bool stopped_starting; /* a signal came before the run started: nothing was written */
    bool ckpt_saved;       /* a checkpoint of this session holds saved_tc / saved_updates */
    TrainCounters saved_tc;
    int64_t saved_updates;
} Loop;

static int64_t updates_done(const Loop *L) {
    return backend_base(L->b)->counters.updates;
}

/* The first origin + k * every (k >= 1) above `now`. */
static int64_t next_multiple(int64_t now, int64_t origin, int64_t every) {
    if (now < origin) {
        return origin + every;
    }
    return origin + ((now - origin) / every + 1) * every;
}

static double elapsed(const Loop *L) {
    return L->tc.wall_seconds + (host_now() - L->t0);
}

/* whether anything reads the update diagnostics' interval statistics: the /train rows or the
   progress line (not benchmarks) */
static bool wants_stats(const Loop *L) {
    return L->metrics || !L->opt->quiet;
}

/* the interval statistics slot k (0: row, 1: line) a backend keeps, added to *s */
static void take_stats(Loop *L, int k, TrainStats *s) {
    if (L->dev_stats) {
        TrainStats t;
        L->ops->stats_take(L->b, k, &t);
        train_stats_merge(s, &t);
    }
}

/* the progress line's values; the update diagnostics of the interval since the previous line */
static ProgressSample progress_sample(Loop *L) {
    UpdateMetrics m;
    memset(&m, 0, sizeof m);
    m.critic_loss[0] = m.alpha = m.entropy = NAN;
    if (L->b && updates_done(L) > 0) {
        L->ops->get_metrics(L->b, &m);
        take_stats(L, 1, &L->line_stats);
        train_stats_fill(&L->line_stats, &m);
    }
    ProgressSample s = {.now = host_now(),
                        .steps = L->tc.env_steps,
                        .end_steps = L->end_steps,
                        .warmup_end = L->start_steps,
                        .updates = L->b ? updates_done(L) : 0,
                        .elapsed = elapsed(L),
                        .eval_return = L->eval_return,
                        .train_return = recent_returns_mean(&L->recent),
                        .critic_loss = m.critic_loss[0],
                        .alpha = m.alpha,
                        .entropy = m.entropy};
    return s;
}

/* a progress line when one is due (progress.h) */
static void show_progress(Loop *L, bool force) {
    if (!L->opt->quiet && L->tc.env_steps >= L->start_steps) {
        progress_updates_begin(&L->progress, host_now(), L->tc.env_steps);
    }
    if (L->opt->quiet || (!force && host_now() - L->progress.last_t < L->progress.every_s)) {
        return;
    }
    ProgressSample s = progress_sample(L);
    if (progress_update(&L->progress, &s, force)) {
        train_stats_reset(&L->line_stats);
    }
}

/* ------------------------------------------------------------------ collect */

/* the step's transitions into the replay (unstable rows left out, rollout.h) */
static int replay_on_step(void *ctx, const RolloutStep *s) {
    Loop *L = ctx;
    rollout_replay_push(&L->replay, s);
    L->tc.env_steps += s->n;
    return FLAME_OK;
}

static int episode_on_end(void *ctx, const RolloutStep *s, const RolloutEpisode *e) {
    (void)s;
    Loop *L = ctx;
    if (e->unstable) {
        L->tc.instabilities++;
        return FLAME_OK;
    }
    L->tc.episodes++;
    recent_returns_add(&L->recent, e->ret);
    if (L->metrics) {
        MetricsEpisodeRow r = {L->tc.env_steps, e->ret, e->length,
                               (uint8_t)(e->terminated ? 0 : 1)};
        metrics_add_episode(L->metrics, &r);
    }
    return FLAME_OK;
}

/* One vectorised env step: uniform random actions in the warm-up, then the exploring policy. */
static int collect(Loop *L) {
    RolloutPolicy pol;
    uint32_t call;
    if (L->tc.env_steps < L->start_steps) {
        pol = rollout_policy_random((uint64_t)L->cfg->run.seed);
        call = (uint32_t)(L->tc.env_steps / L->N);
    } else {
        pol = rollout_policy_agent(L->ops, L->b, ACT_EXPLORE);
        call = (uint32_t)L->tc.act_calls++;
    }
    RolloutSink sink = {.ctx = L, .on_step = replay_on_step, .on_episode = episode_on_end};
    RolloutTimes t = {0, 0, 0};
    int rc = rollout_step(L->roll, &pol, call, &sink, &t);
    L->sum->act_s += t.act_s;
    L->sum->env_s += t.env_s;
    L->sum->push_s += t.sink_s;
    return rc;
}

/* ------------------------------------------------------------------ update, metrics */

/* The updates of one loop iteration: update.updates_per_iter once the warm-up is over and the
   replay holds a batch, none before. */
static int64_t updates_due(const Loop *L) {
    if (L->tc.env_steps < L->start_steps || L->ops->replay_size(L->b) < L->cfg->update.batch_size) {
        return 0; /* no updates in the warm-up */
    }
    return L->cfg->update.updates_per_iter;
}

/* The iteration's owed updates. A signal stops them between two updates; the rest stay owed. The
   first update of an iteration always runs, so a checkpoint holds either whole iterations (a
   multiple of updates_per_iter) or a part of one that a resumed run recognises and finishes. */
static void update(Loop *L) {
    if (L->updates_owed <= 0) {
        return;
    }
    const int64_t per = L->cfg->update.updates_per_iter;
    double t = host_now();
    if (L->overlap && L->updates_owed == per) {
        /* acting goes on with the state before this iteration's updates while they run */
        L->ops->publish(L->b);
    }
    /* the diagnostics of every update feed the rows and the progress line (not needed without
       either: benchmarks), here or kept by the backend */
    bool track = wants_stats(L) && !L->dev_stats;
    const AgentCounters *c = &backend_base(L->b)->counters;
    for (; L->updates_owed > 0 && (L->updates_owed == per || !g_signal); L->updates_owed--) {
        int64_t actor_steps = c->actor_steps;
        update_step(L->ops, L->b);
        if (track) {
            UpdateMetrics m;
            L->ops->get_metrics(L->b, &m);
            train_stats_add(&L->row_stats, &m, c->actor_steps > actor_steps);
            train_stats_add(&L->line_stats, &m, c->actor_steps > actor_steps);
        }
    }
    if (L->ops->sync && !L->overlap) {
        L->ops->sync(L->b); /* with overlap, the updates' time shows in the next act's wait */
    }
    L->sum->update_s += host_now() - t;
}

/* the /train row of the interval since the previous one (train_stats.h) and its /timing row */
static void metrics_rows(Loop *L) {
    UpdateMetrics m;
    L->ops->get_metrics(L->b, &m);
    take_stats(L, 0, &L->row_stats);
    train_stats_fill(&L->row_stats, &m);
    train_stats_reset(&L->row_stats);
    double dt = host_now() - L->last_row_t;
    int64_t updates = updates_done(L);
    MetricsTrainRow r = {
        .step = L->tc.env_steps,
        .wall_time = elapsed(L),
        .updates = updates,
        .critic_loss = 0.5 * (m.critic_loss[0] + m.critic_loss[1]),
        .q_mean = m.q_mean,
        .q_min = m.q_min,
        .q_max = m.q_max,
        .target_mean = m.target_mean,
        .actor_loss = m.actor_loss,
        .fm_loss = m.fm_loss,
        .qterm_loss = m.qterm_loss,
        .alpha = m.alpha,
        .entropy = m.entropy,
        .ess_mean = m.ess_mean,
        .ess_min = m.ess_min,
        .jvp_max = m.jvp_max,
        .updates_per_s = dt > 0 ? (double)(updates - L->last_row_updates) / dt : 0,
        .steps_per_s = dt > 0 ? (double)(L->tc.env_steps - L->last_row_steps) / dt : 0,
        .instabilities = L->tc.instabilities,
    };
    metrics_add_train(L->metrics, &r);
    const TrainSummary *s = L->sum;
    MetricsTimingRow tr = {L->tc.env_steps,         s->env_s,  s->act_s,
                           s->update_s + s->push_s, s->eval_s, s->io_s};
    metrics_add_timing(L->metrics, &tr);
    L->last_row_t = host_now();
    L->last_row_steps = L->tc.env_steps;
    L->last_row_updates = updates;
    L->last_row_step = L->tc.env_steps;
}

static bool finite_metrics(const UpdateMetrics *m) {
    return isfinite(m->critic_loss[0]) && isfinite(m->critic_loss[1]) && isfinite(m->actor_loss) &&
           isfinite(m->alpha);
}

/* A /train row every run.metrics_every steps after the warm-up (and when `force`: checkpoints);
   a non-finite loss stops the run. */
static int record(Loop *L, bool force) {
    const int64_t every = L->cfg->run.metrics_every;
    if (L->tc.env_steps < L->next_row && !force) {
        return FLAME_OK;
    }
    if (L->tc.env_steps > L->start_steps && L->last_row_step != L->tc.env_steps) {
        UpdateMetrics m;
        L->ops->get_metrics(L->b, &m);
        if (updates_done(L) > 0 && !finite_metrics(&m)) {
            return flame_errorf(FLAME_ERUNTIME,
                                "non-finite loss at env step %lld (critic %g, actor %g); the last "
                                "good checkpoint is in %s/ckpt; lower the learning rates",
                                (long long)L->tc.env_steps, m.critic_loss[0], m.actor_loss,
                                L->opt->run_dir ? L->opt->run_dir : ".");
        }
        if (L->metrics) {
            metrics_rows(L);
        }
    }
    L->next_row = next_multiple(L->tc.env_steps, 0, every);
    return FLAME_OK;
}

/* ------------------------------------------------------------------ evaluation */

/* Evaluation round r: its own envs and draws, deterministic EMA policy. */
static int evaluate(Loop *L) {
    const FlameConfig *cfg = L->cfg;
    if (cfg->run.eval_episodes <= 0) {
        return FLAME_OK;
    }
    double t = host_now();
    uint32_t round = (uint32_t)L->tc.eval_rounds;
    int episodes = cfg->run.eval_episodes;
    int envs = cfg->env.eval_envs < episodes ? cfg->env.eval_envs : episodes;
    envs = envs < 1 ? 1 : envs;
    RolloutEnvs e = {.spec = env_spec_find(cfg->env.id),
                     .model_xml = cfg->env.model_xml,
                     .num_envs = envs,
                     .num_threads = host_resolve_threads(cfg->env.threads, envs),
                     .seed = (uint64_t)cfg->run.seed + 0x9e3779b97f4a7c15ull * (round / 256u + 1),
                     .env_offset = EVAL_ENV_BASE + (round % 256u) * EVAL_ENV_BLOCK};
    if (L->overlap) {
        L->ops->publish(L->b); /* the evaluation sees every update done so far */
    }
    RolloutPolicy pol = rollout_policy_agent(L->ops, L->b, ACT_DETERMINISTIC);
    RolloutRun run = {.episodes = episodes, .call_base = round * 1000003u, .stop = &g_signal};
    RolloutResult er;
    int rc = rollout_evaluate(&e, &pol, &run, &er);
    L->eval_stopped = rc != FLAME_OK && g_signal;
    if (L->eval_stopped) {
        rc = FLAME_OK; /* not done: still due (the round is not counted), the run stops */
    } else if (rc == FLAME_OK) {
        L->tc.eval_rounds++;
        L->eval_return = er.return_mean;
        if (isnan(L->sum->best_eval_return) || er.return_mean > L->sum->best_eval_return) {
            L->sum->best_eval_return = er.return_mean;
        }
        if (L->metrics) {
            MetricsEvalRow r = {L->tc.env_steps, er.return_mean, er.return_std,
                                er.return_min,   er.return_max,  er.length_mean};
            metrics_add_eval(L->metrics, &r);
        }
        if (!L->opt->quiet) {
            progress_note(&L->progress,
                          "eval step %lld: return %.2f +- %.2f (min %.2f, max %.2f), length %.1f%s",
                          (long long)L->tc.env_steps, er.return_mean, er.return_std, er.return_min,
                          er.return_max, er.length_mean,
                          er.unstable ? " (MuJoCo went unstable in some episodes: replaced)" : "");
        }
    }
    rollout_result_free(&er);
    if (!L->eval_stopped) {
        L->last_eval_step = L->tc.env_steps;
    }
    L->sum->eval_s += host_now() - t;
    return rc;
}

/* at run.eval_every; run.stop_return ends the run once an evaluation reaches it */
static int evaluate_due(Loop *L) {
    if (L->tc.env_steps < L->tc.next_eval) {
        return FLAME_OK;
    }
    int rc = evaluate(L);
    if (L->eval_stopped) {
        return rc; /* next_eval stays: a resumed run evaluates here first */
    }
    L->tc.next_eval = next_multiple(L->tc.env_steps, L->start_steps, L->cfg->run.eval_every);
    L->target_reached = rc == FLAME_OK && !isnan(L->cfg->run.stop_return) &&
                        L->eval_return >= L->cfg->run.stop_return;
    return rc;
}

/* ------------------------------------------------------------------ checkpoints */
static int save_checkpoint(Loop *L) {
    L->tc.wall_seconds += host_now() - L->t0;
    L->t0 = host_now();
    int rc =
        train_checkpoint_save(L->opt->run_dir, L->cfg, L->ops, L->b, rollout_pool(L->roll), &L->tc);
    L->ckpt_saved = rc == FLAME_OK;
    L->saved_tc = L->tc;
    L->saved_updates = updates_done(L);
    if (L->overlap) {
        /* a run resumed from here acts with this state (nothing published yet): so does this one */
        L->ops->publish(L->b);
    }
    return rc;
}

/* whether the last checkpoint of this session holds the current state (a signal during its
   write ends the run without writing it again) */
static bool checkpoint_current(const Loop *L) {
    const TrainCounters *a = &L->tc, *b = &L->saved_tc;
    return L->ckpt_saved && a->env_steps == b->env_steps && a->act_calls == b->act_calls &&
           a->episodes == b->episodes && a->eval_rounds == b->eval_rounds &&
           a->next_eval == b->next_eval && a->next_ckpt == b->next_ckpt &&
           a->instabilities == b->instabilities && updates_done(L) == L->saved_updates;
}

/* metrics flush at run.flush_every, checkpoint at run.ckpt_every. A checkpoint ends a /train
   interval (a row at its step) and flushes the metrics first: a run resumed from it continues
   with the rows of an uninterrupted run (train_stats.h) and has every row up to it. */
static int persist(Loop *L) {
    const FlameConfig *cfg = L->cfg;
    double t = host_now();
    bool ckpt = L->opt->write_outputs && L->tc.env_steps >= L->tc.next_ckpt;
    int rc = ckpt ? record(L, true) : FLAME_OK;
    if (rc == FLAME_OK && L->metrics && (ckpt || L->tc.env_steps >= L->next_flush)) {
        rc = metrics_flush(L->metrics);
        L->next_flush = next_multiple(L->tc.env_steps, 0, cfg->run.flush_every);
    }
    if (rc == FLAME_OK && ckpt) {
        L->tc.next_ckpt = next_multiple(L->tc.env_steps, L->start_steps, cfg->run.ckpt_every);
        rc = save_checkpoint(L);
    }
    L->sum->io_s += host_now() - t;
    return rc;
}

/* ------------------------------------------------------------------ the loop */
static bool loop_done(const Loop *L) {
    const int64_t max = L->opt->max_steps;
    return L->tc.env_steps >= L->end_steps || g_signal ||
           (max > 0 && L->tc.env_steps - L->session_start >= max);
}

/* An iteration after its collection: updates, metrics, evaluation, outputs. A signal ends it
   early (after the update or the evaluation it stopped): what is left of it stays due, and a
   resumed run starts with it. */
static int iteration_rest(Loop *L) {
    update(L);
    if (g_signal) {
        return FLAME_OK;
    }
    int rc = record(L, false);
    rc = rc ? rc : evaluate_due(L);
    if (rc == FLAME_OK && !g_signal) {
        rc = persist(L);
    }
    show_progress(L, false);
    if (rc == FLAME_OK && L->target_reached) {
        if (!L->opt->quiet) {
            progress_note(&L->progress,
                          "flame train: evaluation return %.2f reached run.stop_return %.2f",
                          L->eval_return, L->cfg->run.stop_return);
        }
        L->stopped_at_target = true;
    }
    return rc;
}

static int train_loop(Loop *L) {
    /* a resumed run first ends the iteration a signal interrupted (nothing after a whole one:
       no update owed, the evaluation, metrics row and checkpoint cadences already past) */
    int rc = L->opt->resume_ckpt ? iteration_rest(L) : FLAME_OK;
    while (rc == FLAME_OK && !L->stopped_at_target && !loop_done(L)) {
        rc = collect(L);
        if (rc == FLAME_OK) {
            L->updates_owed = updates_due(L);
            rc = iteration_rest(L);
        }
    }
    return rc;
}

/* ------------------------------------------------------------------ open and close */

/* The replay buffer takes its memory as it fills, long after the start: it must fit in what the
   process can still allocate (proc.h), with the host copy a checkpoint with run.save_replay
   makes (and the one a resume reads) on top of the CPU backend's own buffer. */
static int check_memory(const Loop *L) {
    const FlameConfig *cfg = L->cfg;
    bool on_device = !strcmp(L->ops->name, "cuda");
    bool copy = (cfg->run.save_replay && L->opt->write_outputs) || L->opt->resume_ckpt;
    int copies = (on_device ? 0 : 1) + (copy ? 1 : 0);
    uint64_t row = replay_bytes(1, L->S, L->D);
    uint64_t need = replay_bytes(cfg->update.replay_size, L->S, L->D) * (uint64_t)copies;
    uint64_t avail = proc_memory_available();
    if (copies == 0 || need <= avail) {
        return FLAME_OK;
    }
    return flame_errorf(
        FLAME_ERUNTIME,
        "out of memory: the replay buffer needs %llu bytes (%.1f GiB: update.replay_size = %lld "
        "transitions of %llu bytes%s) but %llu bytes (%.1f GiB) are available; lower "
        "update.replay_size (at most %llu fit)%s",
        (unsigned long long)need, need / 1073741824.0, (long long)cfg->update.replay_size,
        (unsigned long long)row,
        copies == 2 ? ", twice: the buffer and its copy for checkpoints (run.save_replay)" : "",
        (unsigned long long)avail, avail / 1073741824.0,
        (unsigned long long)(avail / (row * (uint64_t)copies)),
        copies == 2 && !L->opt->resume_ckpt ? " or set run.save_replay=false" : "");
}

/* The training envs and the backend. */
static int create_agent(Loop *L) {
    const FlameConfig *cfg = L->cfg;
    RolloutEnvs e = {.spec = env_spec_find(cfg->env.id),
                     .model_xml = cfg->env.model_xml,
                     .num_envs = cfg->env.num_envs,
                     .num_threads = host_resolve_threads(cfg->env.threads, cfg->env.num_envs),
                     .seed = (uint64_t)cfg->run.seed,
                     .env_offset = 0};
    int rc = rollout_create(&e, &L->roll);
    if (rc != FLAME_OK) {
        return rc;
    }
    EnvPool *pool = rollout_pool(L->roll);
    L->N = envpool_num_envs(pool);
    L->S = envpool_obs_dim(pool);
    L->D = envpool_act_dim(pool);
    rc = check_memory(L);
    rc = rc ? rc : L->ops->create(cfg, L->S, L->D, &L->b);
    if (rc != FLAME_OK) {
        L->b = NULL;
        return rc;
    }
    rollout_replay_init(&L->replay, L->ops, L->b, L->N, L->S, L->D);
    return FLAME_OK;
}

/* metrics.h5: appended to (rows after the checkpoint dropped) or created with config.yaml */
static int open_outputs(Loop *L) {
    const TrainOptions *opt = L->opt;
    char p[RUN_DIR_PATH_MAX];
    run_dir_file(p, sizeof p, opt->run_dir, "metrics.h5");
    if (opt->resume_ckpt) {
        int rc = metrics_open_append(p, &L->metrics);
        return rc == FLAME_OK ? metrics_truncate(L->metrics, L->tc.env_steps) : rc;
    }
    int rc = run_dir_write_config(opt->run_dir, L->cfg);
    return rc == FLAME_OK ? metrics_create(p, L->cfg, L->ops->name, L->device, &L->metrics) : rc;
}

static void device_name(const BackendOps *ops, const FlameConfig *cfg, char *buf, size_t n) {
#ifdef FLAME_HAVE_CUDA
    FlameCudaDevice d;
    if (!strcmp(ops->name, "cuda") && flame_cuda_device_info(cfg->backend.device, &d) == 0) {
        snprintf(buf, n, "%s", d.name);
        return;
    }
#endif
    (void)ops, (void)cfg;
    snprintf(buf, n, "%s", host_cpu()->model);
}

/* signals, from the start on: the phase under way stops at its next step (an update, an
   evaluation's env step, a loop iteration; a start or a checkpoint write ends first), then the
   metrics flush, a checkpoint, exit 130/143 */
static void signals_install(Loop *L) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART; /* system calls under way complete: the flag is polled */
    sigaction(SIGINT, &sa, &L->old_int);
    sigaction(SIGTERM, &sa, &L->old_term);
    g_signal = 0;
    L->signals_on = true;
}

static void signals_restore(Loop *L) {
    if (L->signals_on) {
        sigaction(SIGINT, &L->old_int, NULL);
        sigaction(SIGTERM, &L->old_term, NULL);
        L->signals_on = false;
    }
}

/* where the CUDA backend could run instead (the start block's note) */
static void cuda_here(char *buf, size_t n) {
#ifdef FLAME_HAVE_CUDA
    FlameCudaDevice d;
    if (flame_cuda_device_count() > 0 && flame_cuda_device_info(0, &d) == 0) {
        snprintf(buf, n, "This machine has a CUDA device (%s): --backend cuda", d.name);
    } else {
        snprintf(buf, n, "This machine has no CUDA device");
    }
#else
    snprintf(buf, n, "This build has no CUDA backend (nvcc was not found when it was configured)");
#endif
}

/* The start lines: what runs where, and the estimate (train_start.h). Returns the update phase's
   modelled env steps per second (NaN when the estimate failed). */
static double announce(Loop *L) {
    const FlameConfig *cfg = L->cfg;
    const TrainOptions *opt = L->opt;
    int threads = host_resolve_threads(cfg->env.threads, cfg->env.num_envs);
    printf("flame train: %s %s on %s (%s), %d envs x %d threads, %s run in %s\n",
           config_algo_name(cfg->algo), cfg->env.id, L->ops->name, L->device, L->N, threads,
           opt->resume_ckpt ? "resumed" : "new",
           opt->write_outputs ? opt->run_dir : "(no outputs)");
    proc_flush_stdout();
    TrainEstimate est;
    bool ok =
        train_estimate(cfg, L->ops, L->S, L->D, L->N, threads, L->tc.env_steps, &est) == FLAME_OK;
    char core[256], here[320];
    blas_core_describe(core, sizeof core);
    cuda_here(here, sizeof here);
    TrainStartInfo in = {cfg,  L->ops->name, L->device, blas_info(),     core,
                         here, L->S,         L->D,      ok ? &est : NULL};
    train_start_block(stdout, &in);
    proc_flush_stdout();
    return ok ? est.update_phase_sps : NAN;
}

static void start_clocks(Loop *L, double model_sps) {
    const FlameConfig *cfg = L->cfg;
    L->t0 = L->session_t0 = L->last_row_t = host_now();
    L->session_start = L->last_row_steps = L->tc.env_steps;
    L->last_row_updates = updates_done(L);
    L->next_row = next_multiple(L->tc.env_steps, 0, cfg->run.metrics_every);
    L->next_flush = next_multiple(L->tc.env_steps, 0, cfg->run.flush_every);
    train_stats_reset(&L->row_stats);
    train_stats_reset(&L->line_stats);
    L->overlap = cfg->backend.overlap && L->ops->publish;
    L->dev_stats = wants_stats(L) && L->ops->stats_take && L->ops->stats_track;
    if (L->dev_stats) {
        L->ops->stats_track(L->b, 2);
    }
    ProgressSample s = progress_sample(L);
    progress_init(&L->progress, stdout, host_stdout_is_tty(), cfg->env.id, cfg->run.log_every,
                  model_sps, &s);
}

/* A resume continues the newest checkpoint of its run: one that a newer checkpoint follows
   would overwrite the run's later history (its metrics rows, those checkpoints). */
static int check_newest(const Loop *L, const Checkpoint *ck) {
    int64_t *steps = NULL;
    size_t n = 0;
    if (run_dir_checkpoints(L->opt->run_dir, &steps, &n) != FLAME_OK) {
        flame_clear_error();
        return FLAME_OK;
    }
    int64_t newest = n > 0 ? steps[0] : -1;
    free(steps);
    if (newest <= ck->tc.env_steps) {
        return FLAME_OK;
    }
    return flame_errorf(FLAME_EINPUT,
                        "%s (step %lld) is not the newest checkpoint of %s: step_%lld.h5 is; "
                        "resume from the newest (run the command again), or remove the newer "
                        "checkpoints to go back",
                        L->opt->resume_ckpt, (long long)ck->tc.env_steps, L->opt->run_dir,
                        (long long)newest);
}

/* The run directory: a resume locks it; a fresh run claims it (locked when it exists) */
static int hold_run_dir(Loop *L) {
    const TrainOptions *opt = L->opt;
    int rc = FLAME_OK;
    if (opt->resume_ckpt) {
        rc = run_dir_lock(&L->rd, opt->run_dir);
    } else if (opt->write_outputs) {
        rc = run_dir_claim(&L->rd, opt->run_dir, opt->force);
    }
    const FsLock *k = &L->rd.lock;
    if (rc == FLAME_OK && k->stale_pid > 0 && !opt->quiet) {
        printf("flame train: %s was locked by process %ld on host %s, which no longer runs; "
               "taking it over\n",
               opt->run_dir, k->stale_pid, k->stale_host);
        proc_flush_stdout();
    }
    return rc;
}

/* The agent: restored from the checkpoint to resume, or new. */
static int load_agent(Loop *L) {
    const FlameConfig *cfg = L->cfg;
    const TrainOptions *opt = L->opt;
    if (!opt->resume_ckpt) {
        rollout_reset(L->roll);
        L->tc.next_eval = next_multiple(0, L->start_steps, cfg->run.eval_every);
        L->tc.next_ckpt = next_multiple(0, L->start_steps, cfg->run.ckpt_every);
        return FLAME_OK;
    }
    Checkpoint ck;
    memset(&ck, 0, sizeof ck);
    int rc = ckpt_read(opt->resume_ckpt, &ck, true);
    rc = rc ? rc : train_checkpoint_check(&ck, cfg, opt->resume_ckpt);
    rc = rc ? rc : check_newest(L, &ck);
    rc = rc ? rc
            : train_checkpoint_restore(&ck, cfg, L->ops, L->b, rollout_pool(L->roll),
                                       opt->resume_ckpt);
    if (rc == FLAME_OK) {
        L->tc = ck.tc;
        rollout_observe(L->roll); /* the next observations are the pool's current ones */
        /* the updates of an iteration a signal interrupted (iteration_rest) */
        int64_t per = cfg->update.updates_per_iter;
        L->updates_owed = per > 0 ? (per - updates_done(L) % per) % per : 0;
    }
    ckpt_free(&ck);
    return rc;
}

/* Everything the loop needs, or the reason it cannot start. A fresh run makes its directory only
   once the agent exists; a start that fails (or that a signal stops) leaves nothing behind. */
static int train_open(Loop *L) {
    const FlameConfig *cfg = L->cfg;
    const TrainOptions *opt = L->opt;
    if (!env_spec_find(cfg->env.id)) {
        return flame_errorf(FLAME_EINPUT, "unknown env id '%s'; `flame envs` lists them",
                            cfg->env.id);
    }
    if (!(L->ops = backend_select(cfg))) {
        return FLAME_EINPUT;
    }
    L->sum->backend = L->ops->name;
    signals_install(L);
    int rc = hold_run_dir(L);
    rc = rc ? rc : create_agent(L);
    rc = rc ? rc : load_agent(L);
    if (rc == FLAME_OK && g_signal) {
        L->stopped_starting = true; /* nothing written yet: none will be */
        return FLAME_OK;
    }
    if (rc == FLAME_OK && opt->write_outputs && !opt->resume_ckpt) {
        rc = run_dir_prepare(&L->rd, opt->force);
    }
    device_name(L->ops, cfg, L->device, sizeof L->device);
    if (rc == FLAME_OK && opt->write_outputs) {
        rc = open_outputs(L);
    }
    if (rc != FLAME_OK) {
        return rc;
    }
    L->rd.started = true;
    /* a signal during the estimate stops the run at its first step */
    double model_sps = opt->quiet ? NAN : announce(L);
    start_clocks(L, model_sps);
    return FLAME_OK;
}

/* The end of a run that started: final evaluation (unless the last one is at this step), last
   metrics row (unless the cadence just wrote one), metrics closed, a checkpoint (also when a
   signal stopped the run, not after a failure). */
static int train_finish(Loop *L, int rc) {
    const FlameConfig *cfg = L->cfg;
    bool finished = rc == FLAME_OK && (L->tc.env_steps >= L->end_steps || L->stopped_at_target);
    if (finished && cfg->run.eval_episodes > 0 && L->last_eval_step != L->tc.env_steps) {
        rc = evaluate(L);
    }
    char first_error[FLAME_ERROR_MAX];
    snprintf(first_error, sizeof first_error, "%s", flame_last_error());
    if (L->metrics) {
        if (rc == FLAME_OK && L->tc.env_steps > L->start_steps &&
            L->last_row_step != L->tc.env_steps) {
            metrics_rows(L);
        }
        int frc = metrics_close(L->metrics);
        L->metrics = NULL;
        if (rc != FLAME_OK) {
            flame_errorf(rc, "%s", first_error); /* the failure that ended the run */
        }
        rc = rc ? rc : frc;
    }
    if (L->opt->write_outputs && (rc == FLAME_OK || g_signal) && !checkpoint_current(L)) {
        int crc = save_checkpoint(L);
        rc = rc ? rc : crc;
    }
    if (!L->opt->quiet) {
        show_progress(L, true);
        progress_end(&L->progress);
    }
    if (g_signal) {
        L->sum->exit_code = g_signal == SIGINT ? 130 : 143;
        if (!L->opt->quiet) {
            printf("flame train: stopped by %s at step %lld; checkpoint written, resume with "
                   "--resume %s\n",
                   g_signal == SIGINT ? "SIGINT" : "SIGTERM", (long long)L->tc.env_steps,
                   L->opt->run_dir ? L->opt->run_dir : ".");
        }
    }
    return rc;
}

/* A signal during the start: the run never started (train_close removes what it made). */
static void report_stopped_start(Loop *L) {
    L->sum->exit_code = g_signal == SIGINT ? 130 : 143;
    if (!L->opt->quiet) {
        printf("flame train: stopped by %s while starting; nothing was written%s\n",
               g_signal == SIGINT ? "SIGINT" : "SIGTERM",
               L->opt->resume_ckpt ? " (the run is as it was)" : "");
    }
}

/* Frees whatever train_open created and fills the summary; safe after any failure. The run
   directory's lock goes last (with what a start that failed made in it). */
static void train_close(Loop *L) {
    TrainSummary *sum = L->sum;
    sum->total_s = L->session_t0 > 0 ? host_now() - L->session_t0 : 0;
    sum->env_steps = L->tc.env_steps;
    sum->updates = L->b ? updates_done(L) : 0;
    sum->episodes = L->tc.episodes;
    sum->last_eval_return = L->eval_return;
    if (L->metrics) {
        metrics_close(L->metrics);
    }
    if (L->b) {
        L->ops->destroy(L->b);
    }
    rollout_free(L->roll);
    rollout_replay_free(&L->replay);
    run_dir_release(&L->rd);
    signals_restore(L);
}

int train_run(const FlameConfig *cfg, const TrainOptions *opt, TrainSummary *sum) {
    memset(sum, 0, sizeof *sum);
    sum->last_eval_return = NAN;
    sum->best_eval_return = NAN;
    Loop L;
    memset(&L, 0, sizeof L);
    L.cfg = cfg;
    L.opt = opt;
    L.sum = sum;
    L.eval_return = NAN;
    L.last_row_step = L.last_eval_step = -1;
    L.start_steps = cfg->run.start_steps;
    L.end_steps = cfg->run.start_steps + cfg->run.total_steps;
    run_dir_init(&L.rd);
    int rc = train_open(&L);
    if (rc == FLAME_OK && L.stopped_starting) {
        report_stopped_start(&L);
    } else if (rc == FLAME_OK) {
        rc = train_loop(&L);
        rc = train_finish(&L, rc);
    }
    train_close(&L);
    return rc;
}
