/*
 * train.c: the training loop. It reads like the data flow of the README:
 *
 *     act (warm-up: uniform random) -> envpool step -> replay push -> update(s) -> metrics
 *
 * with evaluation, checkpoints, progress and signals around it. Everything random is addressed
 * by counters (rng.h) that checkpoints store, so a resumed run continues bitwise-identically.
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "flame/check.h"
#include "flame/ckpt.h"
#include "flame/cli.h"
#include "flame/envpool.h"
#include "flame/fsutil.h"
#include "flame/metrics.h"
#include "flame/proc.h"
#include "flame/rng.h"
#include "flame/train.h"
#include "flame/update.h"
#ifdef FLAME_HAVE_CUDA
#include "flame/cuda_api.h"
#endif

static volatile sig_atomic_t g_signal = 0;

static void on_signal(int sig) {
    g_signal = sig;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ------------------------------------------------------------------ run directory */
static bool path_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

static int make_dir(const char *path) {
    if (fs_mkdir_p(path, NULL, 0) != FLAME_OK) {
        char why[FLAME_ERROR_MAX];
        snprintf(why, sizeof why, "%s", flame_last_error());
        return flame_errorf(FLAME_EINPUT, "%s; choose a writable run.out_dir", why);
    }
    char buf[FS_PATH_MAX];
    snprintf(buf, sizeof buf, "%s", path);
    if (access(buf, W_OK) != 0) {
        return flame_errorf(FLAME_EINPUT, "run directory %s is not writable; choose another "
                                          "run.out_dir or run.name",
                            buf);
    }
    return FLAME_OK;
}

/* Prepares a fresh run directory; refuses to touch an existing run without --force. */
static int prepare_run_dir(const char *dir, bool force) {
    char p[FS_PATH_MAX];
    snprintf(p, sizeof p, "%s/metrics.h5", dir);
    bool has_metrics = path_exists(p);
    snprintf(p, sizeof p, "%s/ckpt", dir);
    bool has_ckpt = path_exists(p);
    if ((has_metrics || has_ckpt) && !force) {
        return flame_errorf(FLAME_EINPUT,
                            "run directory %s already holds a run; use --resume %s to continue it, "
                            "--force to overwrite it, or another run.name",
                            dir, dir);
    }
    int rc = make_dir(dir);
    if (rc != FLAME_OK) {
        return rc;
    }
    if (has_metrics || has_ckpt) {
        /* --force: remove the previous run's files (only ours) */
        snprintf(p, sizeof p, "%s/metrics.h5", dir);
        remove(p);
        snprintf(p, sizeof p, "%s/config.yaml", dir);
        remove(p);
        char latest[FS_PATH_MAX];
        while (has_ckpt && ckpt_latest(dir, latest, sizeof latest) == FLAME_OK) {
            if (remove(latest) != 0) {
                break;
            }
        }
        flame_clear_error();
    }
    snprintf(p, sizeof p, "%s/ckpt", dir);
    return make_dir(p);
}

static int write_config_copy(const char *dir, const FlameConfig *cfg) {
    char p[FS_PATH_MAX];
    snprintf(p, sizeof p, "%s/config.yaml", dir);
    char *y = config_to_yaml(cfg);
    char *text = NULL;
    int n = asprintf(&text, "# resolved configuration of this run (flame train --config loads it "
                            "back)\n%s",
                     y);
    free(y);
    FLAME_CHECK(n >= 0, "out of memory");
    int rc = fs_write_atomic(p, text, (size_t)n);
    free(text);
    return rc;
}

static void device_name(const BackendOps *ops, char *buf, size_t n) {
#ifdef FLAME_HAVE_CUDA
    if (!strcmp(ops->name, "cuda")) {
        FlameCudaDevice d;
        if (flame_cuda_device_info(0, &d) == 0) {
            snprintf(buf, n, "%s", d.name);
            return;
        }
    }
#endif
    (void)ops;
    FILE *f = fopen("/proc/cpuinfo", "r");
    snprintf(buf, n, "cpu");
    if (!f) {
        return;
    }
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, "model name", 10)) {
            char *c = strchr(line, ':');
            if (c) {
                c += 2;
                c[strcspn(c, "\n")] = '\0';
                snprintf(buf, n, "%s", c);
            }
            break;
        }
    }
    fclose(f);
}

/* ------------------------------------------------------------------ the loop */
typedef struct {
    const FlameConfig *cfg;
    const BackendOps *ops;
    Backend *b;
    EnvPool *pool;
    MetricsFile *metrics;
    TrainCounters tc;
    int N, S, D;
    double *obs, *next_obs, *final_obs, *rew, *ep_ret;
    uint8_t *term, *trunc, *unstable, *done8;
    int *ep_len;
    float *obs_f, *next_f, *act, *rew_f;
    const char *run_dir;
    double t0, last_log, last_row_t;
    int64_t log_steps, log_updates; /* counters at the previous progress line */
    double session_t0;               /* start of this session, and its counters */
    int64_t session_steps, session_updates;
    int64_t last_row_steps, last_row_updates;
    TrainSummary *sum;
    double eval_return;
    int64_t start_steps, end_steps;
    bool quiet;
} Loop;

/* Deletes all but the `keep` newest step_<N>.h5 of <run_dir>/ckpt. */
static void prune_checkpoints(const char *run_dir, int keep) {
    char dir[FS_PATH_MAX];
    snprintf(dir, sizeof dir, "%s/ckpt", run_dir);
    DIR *d = opendir(dir);
    if (!d) {
        return;
    }
    long long steps[4096];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < 4096) {
        long long s;
        char tail[8];
        if (sscanf(e->d_name, "step_%lld.h%7s", &s, tail) == 2 && !strcmp(tail, "5")) {
            steps[n++] = s;
        }
    }
    closedir(d);
    for (int i = 0; i < n; i++) {
        int newer = 0;
        for (int j = 0; j < n; j++) {
            newer += steps[j] > steps[i];
        }
        if (newer >= keep) {
            char p[FS_PATH_MAX + 32];
            snprintf(p, sizeof p, "%s/step_%lld.h5", dir, steps[i]);
            remove(p);
        }
    }
}

static int save_checkpoint(Loop *L) {
    const FlameConfig *cfg = L->cfg;
    char path[FS_PATH_MAX];
    snprintf(path, sizeof path, "%s/ckpt/step_%lld.h5", L->run_dir, (long long)L->tc.env_steps);
    AgentState st;
    agent_state_init(&st, cfg, L->S, L->D);
    L->ops->get_state(L->b, &st);
    Replay rep;
    bool with_replay = cfg->run.save_replay;
    if (with_replay) {
        replay_init(&rep, cfg->update.replay_size, L->S, L->D);
        L->ops->get_replay(L->b, &rep);
    }
    size_t es = envpool_state_size(L->pool);
    void *ebuf = flame_malloc(es ? es : 1);
    envpool_state_save(L->pool, ebuf);
    L->tc.wall_seconds += now_s() - L->t0;
    L->t0 = now_s();
    int rc = ckpt_write(path, cfg, &st, &L->tc, with_replay ? &rep : NULL, ebuf, es, L->ops->name);
    flame_free(ebuf);
    if (rc == FLAME_OK && cfg->run.keep_ckpts > 0) {
        prune_checkpoints(L->run_dir, cfg->run.keep_ckpts);
    }
    if (with_replay) {
        replay_free(&rep);
    }
    agent_state_free(&st);
    return rc;
}

static double elapsed(const Loop *L) {
    return L->tc.wall_seconds + (now_s() - L->t0);
}

static void metrics_rows(Loop *L) {
    UpdateMetrics m;
    L->ops->get_metrics(L->b, &m);
    double t = elapsed(L), dt = now_s() - L->last_row_t;
    int64_t updates = backend_base(L->b)->counters.updates;
    MetricsTrainRow r = {
        .step = L->tc.env_steps,
        .wall_time = t,
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
    TrainSummary *s = L->sum;
    MetricsTimingRow tr = {L->tc.env_steps, s->env_s,  s->act_s, s->update_s + s->push_s,
                           s->eval_s,       s->io_s};
    metrics_add_timing(L->metrics, &tr);
    L->last_row_t = now_s();
    L->last_row_steps = L->tc.env_steps;
    L->last_row_updates = updates;
}

static void progress(Loop *L, bool force) {
    const FlameConfig *cfg = L->cfg;
    double now = now_s();
    if (!force && now - L->last_log < cfg->run.log_every) {
        return;
    }
    /* rates over the window since the previous line (the warm-up is far faster than training) */
    int64_t updates = backend_base(L->b)->counters.updates;
    double dt = now - L->last_log;
    int64_t dsteps = L->tc.env_steps - L->log_steps, dupd = updates - L->log_updates;
    if (dt < 0.5) {
        /* too short a window (the line at the end): this session's averages */
        dt = now - L->session_t0;
        dsteps = L->tc.env_steps - L->session_steps;
        dupd = updates - L->session_updates;
    }
    double sps = dt > 0 ? (double)dsteps / dt : 0;
    double ups = dt > 0 ? (double)dupd / dt : 0;
    double eta = (sps > 0 && L->end_steps > L->tc.env_steps)
                     ? (double)(L->end_steps - L->tc.env_steps) / sps
                     : 0;
    char ev[32] = "-";
    if (!isnan(L->eval_return)) {
        snprintf(ev, sizeof ev, "%.1f", L->eval_return);
    }
    const char *phase = L->tc.env_steps < L->start_steps ? " warm-up" : "";
    if (cli_is_tty()) {
        printf("\r[%s] step %lld/%lld%s | %.0f steps/s | %.1f updates/s | eval %s | ETA %.0fs   ",
               cfg->env.id, (long long)L->tc.env_steps, (long long)L->end_steps, phase, sps, ups,
               ev, eta);
    } else {
        printf("step %lld/%lld%s steps_per_s %.0f updates_per_s %.1f last_eval %s eta_s %.0f\n",
               (long long)L->tc.env_steps, (long long)L->end_steps, phase, sps, ups, ev, eta);
    }
    proc_flush_stdout(); /* a closed pipe stops the printing, not the run */
    L->last_log = now;
    L->log_steps = L->tc.env_steps;
    L->log_updates = updates;
}

static int evaluate(Loop *L) {
    const FlameConfig *cfg = L->cfg;
    if (cfg->run.eval_episodes <= 0) {
        return FLAME_OK;
    }
    double t = now_s();
    EvalResult er;
    int rc = eval_policy(L->ops, L->b, cfg, cfg->run.eval_episodes, false,
                         (uint32_t)L->tc.eval_rounds, &er);
    if (rc != FLAME_OK) {
        return rc;
    }
    L->tc.eval_rounds++;
    L->eval_return = er.return_mean;
    if (isnan(L->sum->best_eval_return) || er.return_mean > L->sum->best_eval_return) {
        L->sum->best_eval_return = er.return_mean;
    }
    if (L->metrics) {
        MetricsEvalRow r = {L->tc.env_steps, er.return_mean, er.return_std, er.return_min,
                            er.return_max, er.length_mean};
        metrics_add_eval(L->metrics, &r);
    }
    if (!L->quiet) {
        printf("%seval step %lld: return %.2f +- %.2f (min %.2f, max %.2f), length %.1f\n",
               cli_is_tty() ? "\n" : "", (long long)L->tc.env_steps, er.return_mean,
               er.return_std, er.return_min, er.return_max, er.length_mean);
        proc_flush_stdout();
    }
    free(er.returns);
    free(er.lengths);
    L->sum->eval_s += now_s() - t;
    return FLAME_OK;
}

/* One vectorised env step: act, step, push, bookkeeping. */
static void collect(Loop *L) {
    const FlameConfig *cfg = L->cfg;
    int N = L->N, S = L->S, D = L->D;
    double t = now_s();
    for (size_t i = 0; i < (size_t)N * S; i++) {
        L->obs_f[i] = (float)L->obs[i];
    }
    if (L->tc.env_steps < L->start_steps) {
        /* warm-up: uniform random actions on the agent box */
        uint32_t it = (uint32_t)(L->tc.env_steps / N);
        for (int i = 0; i < N; i++) {
            for (int d = 0; d < D; d++) {
                L->act[(size_t)i * D + d] =
                    2.0f * rng_uniform((uint64_t)cfg->run.seed, RNG_STREAM_WARMUP, it, (uint32_t)i,
                                       (uint32_t)d) -
                    1.0f;
            }
        }
    } else {
        L->ops->act(L->b, L->obs_f, N, ACT_EXPLORE, (uint32_t)L->tc.act_calls++, L->act);
    }
    double t1 = now_s();
    L->sum->act_s += t1 - t;
    EnvPoolStep st = {L->next_obs, L->final_obs, L->rew, L->term, L->trunc, L->unstable,
                      L->ep_ret, L->ep_len, NULL, NULL};
    envpool_step(L->pool, L->act, &st);
    double t2 = now_s();
    L->sum->env_s += t2 - t1;
    /* replay: (s, a, r, s' = true final observation, terminated) */
    for (size_t i = 0; i < (size_t)N * S; i++) {
        L->next_f[i] = (float)L->final_obs[i];
    }
    for (int i = 0; i < N; i++) {
        L->rew_f[i] = (float)L->rew[i];
        L->done8[i] = L->term[i];
    }
    L->ops->replay_push(L->b, L->obs_f, L->act, L->rew_f, L->next_f, L->done8, N);
    L->tc.env_steps += N;
    for (int i = 0; i < N; i++) {
        if (L->term[i] || L->trunc[i]) {
            L->tc.episodes++;
            L->tc.instabilities += L->unstable[i];
            if (L->metrics) {
                MetricsEpisodeRow r = {L->tc.env_steps, L->ep_ret[i], L->ep_len[i],
                                       (uint8_t)(L->term[i] ? 0 : 1)};
                metrics_add_episode(L->metrics, &r);
            }
        }
    }
    memcpy(L->obs, L->next_obs, (size_t)N * S * sizeof(double));
    L->sum->push_s += now_s() - t2;
}

/* The first origin + k * every (k >= 1) above `now`. */
static int64_t next_multiple(int64_t now, int64_t origin, int64_t every) {
    if (now < origin) {
        return origin + every;
    }
    return origin + ((now - origin) / every + 1) * every;
}

static bool finite_metrics(const UpdateMetrics *m) {
    return isfinite(m->critic_loss[0]) && isfinite(m->critic_loss[1]) && isfinite(m->actor_loss) &&
           isfinite(m->alpha);
}

int train_run(const FlameConfig *cfg, const TrainOptions *opt, TrainSummary *sum) {
    memset(sum, 0, sizeof *sum);
    sum->last_eval_return = NAN;
    sum->best_eval_return = NAN;
    const EnvSpec *spec = env_spec_find(cfg->env.id);
    if (!spec) {
        return flame_errorf(FLAME_EINPUT, "unknown env id '%s'; `flame envs` lists them",
                            cfg->env.id);
    }
    const BackendOps *ops = backend_select(cfg);
    if (!ops) {
        return FLAME_EINPUT;
    }
    Loop L;
    memset(&L, 0, sizeof L);
    L.cfg = cfg;
    L.ops = ops;
    L.sum = sum;
    L.eval_return = NAN;
    L.run_dir = opt->run_dir;
    L.quiet = opt->quiet;
    sum->backend = ops->name;
    Checkpoint ck;
    memset(&ck, 0, sizeof ck);
    int rc = FLAME_OK;

    /* resume: the checkpoint must belong to this env and network */
    if (opt->resume_ckpt) {
        rc = ckpt_read(opt->resume_ckpt, &ck, true);
        if (rc != FLAME_OK) {
            return rc;
        }
        if (strcmp(ck.env_id, cfg->env.id) != 0 || ck.cfg.algo != cfg->algo ||
            ck.cfg.net.hidden != cfg->net.hidden || ck.cfg.net.layers != cfg->net.layers) {
            rc = flame_errorf(FLAME_EINPUT,
                              "%s is a %s checkpoint of %s (%dx%d), not of the configured %s %s "
                              "(%dx%d); resume with the run's own config",
                              opt->resume_ckpt, config_algo_name(ck.cfg.algo), ck.env_id,
                              ck.cfg.net.layers, ck.cfg.net.hidden, config_algo_name(cfg->algo),
                              cfg->env.id, cfg->net.layers, cfg->net.hidden);
            ckpt_free(&ck);
            return rc;
        }
        if (cfg->run.save_replay && !ck.has_replay) {
            ckpt_free(&ck);
            return flame_errorf(FLAME_EINPUT,
                                "%s holds no replay buffer; resume needs one (set "
                                "run.save_replay=false to resume with an empty buffer)",
                                opt->resume_ckpt);
        }
    } else if (opt->write_outputs) {
        rc = prepare_run_dir(opt->run_dir, opt->force);
        if (rc != FLAME_OK) {
            return rc;
        }
    }

    /* envs and backend */
    int threads = cli_resolve_threads(cfg->env.threads, cfg->env.num_envs);
    rc = envpool_create(spec, cfg->env.model_xml, cfg->env.num_envs, threads,
                        (uint64_t)cfg->run.seed, 0, &L.pool);
    if (rc != FLAME_OK) {
        ckpt_free(&ck);
        return rc;
    }
    L.N = envpool_num_envs(L.pool);
    L.S = envpool_obs_dim(L.pool);
    L.D = envpool_act_dim(L.pool);
    rc = ops->create(cfg, L.S, L.D, &L.b);
    if (rc != FLAME_OK) {
        envpool_free(L.pool);
        ckpt_free(&ck);
        return rc;
    }
    size_t NS = (size_t)L.N * L.S;
    L.obs = flame_malloc(NS * sizeof(double));
    L.next_obs = flame_malloc(NS * sizeof(double));
    L.final_obs = flame_malloc(NS * sizeof(double));
    L.rew = flame_malloc((size_t)L.N * sizeof(double));
    L.ep_ret = flame_malloc((size_t)L.N * sizeof(double));
    L.ep_len = flame_malloc((size_t)L.N * sizeof(int));
    L.term = flame_malloc((size_t)L.N);
    L.trunc = flame_malloc((size_t)L.N);
    L.unstable = flame_malloc((size_t)L.N);
    L.done8 = flame_malloc((size_t)L.N);
    L.obs_f = flame_malloc(NS * sizeof(float));
    L.next_f = flame_malloc(NS * sizeof(float));
    L.act = flame_malloc((size_t)L.N * L.D * sizeof(float));
    L.rew_f = flame_malloc((size_t)L.N * sizeof(float));
    L.start_steps = cfg->run.start_steps;
    L.end_steps = cfg->run.start_steps + cfg->run.total_steps;

    if (opt->resume_ckpt) {
        ops->set_state(L.b, &ck.st);
        if (ck.has_replay) {
            if (ck.replay.capacity != cfg->update.replay_size) {
                rc = flame_errorf(FLAME_EINPUT, "%s: replay capacity %lld differs from "
                                                "update.replay_size %lld",
                                  opt->resume_ckpt, (long long)ck.replay.capacity,
                                  (long long)cfg->update.replay_size);
            } else {
                ops->set_replay(L.b, &ck.replay);
            }
        }
        if (rc == FLAME_OK) {
            rc = envpool_state_load(L.pool, ck.env_state, ck.env_state_size);
        }
        L.tc = ck.tc;
        /* the next observations are the pool's current ones */
        if (rc == FLAME_OK) {
            for (int i = 0; i < L.N; i++) {
                env_observe(envpool_env(L.pool, i), L.obs + (size_t)i * L.S);
            }
        }
    } else {
        envpool_reset(L.pool, L.obs);
        L.tc.next_eval = next_multiple(0, L.start_steps, cfg->run.eval_every);
        L.tc.next_ckpt = next_multiple(0, L.start_steps, cfg->run.ckpt_every);
    }
    ckpt_free(&ck);

    char device[256];
    device_name(ops, device, sizeof device);
    if (rc == FLAME_OK && opt->write_outputs) {
        char p[FS_PATH_MAX];
        snprintf(p, sizeof p, "%s/metrics.h5", opt->run_dir);
        if (opt->resume_ckpt) {
            rc = metrics_open_append(p, &L.metrics);
            if (rc == FLAME_OK) {
                rc = metrics_truncate(L.metrics, L.tc.env_steps);
            }
        } else {
            rc = write_config_copy(opt->run_dir, cfg);
            if (rc == FLAME_OK) {
                rc = metrics_create(p, cfg, ops->name, device, &L.metrics);
            }
        }
    }
    if (rc == FLAME_OK && !opt->quiet) {
        printf("flame train: %s %s on %s (%s), %d envs x %d threads, %s run in %s\n",
               config_algo_name(cfg->algo), cfg->env.id, ops->name, device, L.N, threads,
               opt->resume_ckpt ? "resumed" : "new",
               opt->write_outputs ? opt->run_dir : "(no outputs)");
        proc_flush_stdout();
    }

    /* signals: finish the iteration, flush, checkpoint, exit 130/143 */
    struct sigaction sa, old_int, old_term;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    g_signal = 0;

    L.t0 = now_s();
    L.last_log = L.session_t0 = L.t0;
    L.log_steps = L.session_steps = L.tc.env_steps;
    L.log_updates = L.session_updates = backend_base(L.b)->counters.updates;
    L.last_row_t = L.t0;
    L.last_row_steps = L.tc.env_steps;
    L.last_row_updates = backend_base(L.b)->counters.updates;
    int64_t session_start = L.tc.env_steps;
    int64_t next_row = next_multiple(L.tc.env_steps, 0, cfg->run.metrics_every);
    int64_t next_flush = next_multiple(L.tc.env_steps, 0, cfg->run.flush_every);
    int64_t last_row_step = -1, last_eval_step = -1;
    bool stopped_at_target = false;
    double tstart = now_s();

    while (rc == FLAME_OK && L.tc.env_steps < L.end_steps && !g_signal) {
        if (opt->max_steps > 0 && L.tc.env_steps - session_start >= opt->max_steps) {
            break;
        }
        collect(&L);
        /* updates: none during the warm-up */
        if (L.tc.env_steps >= L.start_steps &&
            ops->replay_size(L.b) >= cfg->update.batch_size) {
            double t = now_s();
            for (int k = 0; k < cfg->update.updates_per_iter; k++) {
                update_step(ops, L.b);
            }
            if (ops->sync) {
                ops->sync(L.b);
            }
            sum->update_s += now_s() - t;
        }
        if (L.tc.env_steps >= next_row && L.tc.env_steps <= L.start_steps) {
            next_row = next_multiple(L.tc.env_steps, 0, cfg->run.metrics_every); /* warm-up */
        } else if (L.tc.env_steps >= next_row) {
            UpdateMetrics m;
            ops->get_metrics(L.b, &m);
            if (backend_base(L.b)->counters.updates > 0 && !finite_metrics(&m)) {
                rc = flame_errorf(FLAME_ERUNTIME,
                                  "non-finite loss at env step %lld (critic %g, actor %g); the "
                                  "last good checkpoint is in %s/ckpt; lower the learning rates",
                                  (long long)L.tc.env_steps, m.critic_loss[0], m.actor_loss,
                                  opt->run_dir ? opt->run_dir : ".");
                break;
            }
            if (L.metrics) {
                metrics_rows(&L);
                last_row_step = L.tc.env_steps;
            }
            next_row = next_multiple(L.tc.env_steps, 0, cfg->run.metrics_every);
        }
        bool target_reached = false;
        if (L.tc.env_steps >= L.tc.next_eval) {
            rc = evaluate(&L);
            last_eval_step = L.tc.env_steps;
            L.tc.next_eval = next_multiple(L.tc.env_steps, L.start_steps, cfg->run.eval_every);
            target_reached = rc == FLAME_OK && !isnan(cfg->run.stop_return) &&
                             L.eval_return >= cfg->run.stop_return;
        }
        double tio = now_s();
        if (rc == FLAME_OK && L.metrics && L.tc.env_steps >= next_flush) {
            rc = metrics_flush(L.metrics);
            next_flush = next_multiple(L.tc.env_steps, 0, cfg->run.flush_every);
        }
        if (rc == FLAME_OK && opt->write_outputs && L.tc.env_steps >= L.tc.next_ckpt) {
            L.tc.next_ckpt = next_multiple(L.tc.env_steps, L.start_steps, cfg->run.ckpt_every);
            rc = save_checkpoint(&L);
        }
        sum->io_s += now_s() - tio;
        if (!opt->quiet) {
            progress(&L, false);
        }
        if (target_reached) {
            if (!opt->quiet) {
                printf("flame train: evaluation return %.2f reached run.stop_return %.2f\n",
                       L.eval_return, cfg->run.stop_return);
            }
            stopped_at_target = true;
            break;
        }
    }

    /* the end: final evaluation (when the last one is not at this step), metrics, checkpoint */
    bool finished = rc == FLAME_OK && (L.tc.env_steps >= L.end_steps || stopped_at_target);
    if (finished && cfg->run.eval_episodes > 0 && last_eval_step != L.tc.env_steps) {
        rc = evaluate(&L);
    }
    char first_error[FLAME_ERROR_MAX];
    snprintf(first_error, sizeof first_error, "%s", flame_last_error());
    if (L.metrics) {
        if (rc == FLAME_OK && L.tc.env_steps > L.start_steps && last_row_step != L.tc.env_steps) {
            metrics_rows(&L); /* a last row, unless the cadence just wrote one */
        }
        int frc = metrics_close(L.metrics);
        if (rc != FLAME_OK) {
            flame_errorf(rc, "%s", first_error); /* the failure that ended the run */
        }
        rc = rc ? rc : frc;
    }
    if (opt->write_outputs && (rc == FLAME_OK || g_signal)) {
        int crc = save_checkpoint(&L);
        rc = rc ? rc : crc;
    }
    if (!opt->quiet) {
        progress(&L, true);
        printf("\n");
    }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    if (g_signal) {
        sum->exit_code = g_signal == SIGINT ? 130 : 143;
        if (!opt->quiet) {
            printf("flame train: stopped by %s at step %lld; checkpoint written, resume with "
                   "--resume %s\n",
                   g_signal == SIGINT ? "SIGINT" : "SIGTERM", (long long)L.tc.env_steps,
                   opt->run_dir ? opt->run_dir : ".");
        }
    }
    sum->total_s = now_s() - tstart;
    sum->env_steps = L.tc.env_steps;
    sum->updates = backend_base(L.b)->counters.updates;
    sum->episodes = L.tc.episodes;
    sum->last_eval_return = L.eval_return;
    ops->destroy(L.b);
    envpool_free(L.pool);
    flame_free(L.obs), flame_free(L.next_obs), flame_free(L.final_obs), flame_free(L.rew);
    flame_free(L.ep_ret), flame_free(L.ep_len), flame_free(L.term), flame_free(L.trunc);
    flame_free(L.unstable), flame_free(L.done8), flame_free(L.obs_f), flame_free(L.next_f);
    flame_free(L.act), flame_free(L.rew_f);
    return rc;
}
