/*
 * cmd_debug.c: `flame debug update`, one update replayed from a checkpoint, with every intermediate
 * written out, so that it can be compared with another implementation on identical inputs.
 *
 * The input is a checkpoint (state, Adam moments, targets, counters, config, optionally the replay
 * buffer). The update's random draws come from Philox (addressed by the checkpoint's update
 * counter and run.seed) or from a noise bundle (--noise, include/flame/noise.h), whose minibatch,
 * when it holds one, replaces the replay sample. --record writes the draws and the minibatch the
 * update used as a new bundle. The output is a checkpoint of the state after the update (params,
 * gradients, Adam moments, EMA policy, target critics, log alpha) plus a group /update:
 *
 *   attrs   update (index n), backend, actor / alpha / target (which steps ran: 0 or 1), the
 *           update's diagnostics (critic_loss_1, critic_loss_2, q_mean, target_mean, actor_loss,
 *           fm_loss, qterm_loss, entropy, alpha, ess_mean, ess_min)
 *   obs, act, rew, next_obs, done   the minibatch (rew unscaled)
 *   y (B), ent (B), next_a (B x D)  TD target, entropy estimate H(s') (SAC: -log pi(a'|s')), a'
 *   a_star (B x D)                  the best particle before the exploration noise (FLAME)
 *   x (B x D), r (B), t (B), w (B x K), vbar (B x D), ess (B)   Q-reweighting (FLAME actor updates)
 *   logpi (B)                       SAC: log pi of the actor's reparameterised sample
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "flame/backend.h"
#include "flame/backend_cpu.h"
#include "flame/check.h"
#include "flame/ckpt.h"
#include "flame/cli.h"
#include "flame/h5util.h"
#include "flame/update.h"
#ifdef FLAME_HAVE_CUDA
#include "flame/backend_cuda.h"
#endif

#define CMD "debug update"
#define DEBUG_MAX_SETS 64

static void debug_usage(FILE *f) {
    fprintf(f,
            "usage: flame debug update --ckpt FILE --out FILE [--noise FILE] [--record FILE]\n"
            "                          [--set KEY=VALUE]... [--backend cpu|cuda] [--force]\n\n"
            "Runs one update from a checkpoint's state and writes the state after it and every\n"
            "intermediate (minibatch, TD target, next action, entropy estimate, noisy actions,\n"
            "times, candidate weights, v-bar, losses) to FILE, to compare with another\n"
            "implementation on identical inputs (README: Fidelity).\n\n"
            "options:\n"
            "  --ckpt FILE     the state to start from (a flame checkpoint)\n"
            "  --out FILE      output: a checkpoint of the state after the update plus /update\n"
            "  --noise FILE    take the update's random draws (and minibatch, when the bundle\n"
            "                  holds one) from this noise bundle instead of Philox (cpu backend)\n"
            "  --record FILE   write the draws and minibatch of the update as a noise bundle (cpu)\n"
            "  --set KEY=VAL   override a key of the checkpoint's config (not the network layout)\n"
            "  --backend B     cpu (default) or cuda\n"
            "  --force         replace existing output files\n");
}

/* Whether a noise bundle holds the draws of update n (checked before anything runs or is
   written), and whether it holds minibatches. */
static int bundle_covers(const char *path, int64_t n, bool *with_batch) {
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        return flame_errorf(FLAME_EINPUT, "%s: cannot open the noise bundle (missing or not HDF5)",
                            path);
    }
    int64_t first = 0;
    hsize_t dims[8] = {0};
    if (H5Aexists(f, "first_update") > 0) {
        h5_attr_read_i64(f, "first_update", &first);
    }
    int rank = h5_dims(f, "next_z", dims);
    *with_batch = h5_exists(f, "batch/obs");
    H5Fclose(f);
    if (rank < 1) {
        return flame_errorf(FLAME_EINPUT, "%s: not a noise bundle (no next_z dataset)", path);
    }
    if (n < first || n >= first + (int64_t)dims[0]) {
        return flame_errorf(FLAME_EINPUT,
                            "%s holds the draws of updates %lld to %lld, the checkpoint is at "
                            "update %lld; record a bundle from this checkpoint (--record)",
                            path, (long long)first, (long long)(first + (int64_t)dims[0] - 1),
                            (long long)n);
    }
    return FLAME_OK;
}

/* the intermediates of the last update, from either backend's debug view */
typedef struct {
    int B, S, D, K;
    const float *obs, *act, *rew, *next_obs, *done, *y, *ent, *next_a, *a_star;
    const float *x, *r, *t, *w, *vbar, *ess, *logpi;
} UpdateView;

#define UPDATE_VIEW_FROM(c)                                                                        \
    {.B = (c).B, .S = (c).S, .D = (c).D, .K = (c).K, .obs = (c).obs, .act = (c).act,              \
     .rew = (c).rew, .next_obs = (c).next_obs, .done = (c).done, .y = (c).y, .ent = (c).ent,      \
     .next_a = (c).next_a, .a_star = (c).a_star, .x = (c).x, .r = (c).r, .t = (c).t,              \
     .w = (c).w, .vbar = (c).vbar, .ess = (c).ess}

static void view_of(const BackendOps *ops, Backend *b, UpdateView *v) {
#ifdef FLAME_HAVE_CUDA
    if (ops == &backend_cuda_ops) {
        CudaDebugView c;
        backend_cuda_debug(b, &c);
        *v = (UpdateView)UPDATE_VIEW_FROM(c);
        return;
    }
#endif
    (void)ops;
    CpuDebugView c;
    backend_cpu_debug(b, &c);
    *v = (UpdateView)UPDATE_VIEW_FROM(c);
    v->logpi = c.logpi;
}

static int write_update_group(const char *path, const FlameConfig *cfg, const UpdateCtx *u,
                              const char *backend, const UpdateView *v, const UpdateMetrics *m) {
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    if (f < 0) {
        return flame_errorf(FLAME_ERUNTIME, "%s: cannot reopen the output", path);
    }
    hid_t g = h5_group(f, "update");
    h5_attr_i64(g, "update", u->n);
    h5_attr_str(g, "backend", backend);
    h5_attr_i64(g, "actor", u->do_actor);
    h5_attr_i64(g, "alpha_step", u->do_alpha);
    h5_attr_i64(g, "target", u->do_target);
    struct {
        const char *name;
        double value;
    } sc[] = {{"critic_loss_1", m->critic_loss[0]}, {"critic_loss_2", m->critic_loss[1]},
              {"q_mean", m->q_mean},               {"target_mean", m->target_mean},
              {"actor_loss", m->actor_loss},       {"fm_loss", m->fm_loss},
              {"qterm_loss", m->qterm_loss},       {"entropy", m->entropy},
              {"alpha", m->alpha},                 {"ess_mean", m->ess_mean},
              {"ess_min", m->ess_min}};
    for (size_t i = 0; i < sizeof sc / sizeof sc[0]; i++) {
        h5_attr_f64(g, sc[i].name, sc[i].value);
    }
    hsize_t B = (hsize_t)v->B, S = (hsize_t)v->S, D = (hsize_t)v->D, K = (hsize_t)v->K;
    bool flame = cfg->algo != ALGO_SAC, weights = flame && u->do_actor;
    struct {
        const char *name;
        const float *data;
        hsize_t cols; /* 0: a vector of B */
        bool present;
    } ds[] = {
        {"obs", v->obs, S, true},          {"act", v->act, D, true},
        {"rew", v->rew, 0, true},          {"next_obs", v->next_obs, S, true},
        {"done", v->done, 0, true},        {"y", v->y, 0, true},
        {"ent", v->ent, 0, true},          {"next_a", v->next_a, D, true},
        {"a_star", v->a_star, D, flame},   {"x", v->x, D, weights},
        {"r", v->r, 0, weights},           {"t", v->t, 0, weights},
        {"w", v->w, K, weights},           {"vbar", v->vbar, D, weights},
        {"ess", v->ess, 0, weights},       {"logpi", v->logpi, 0, !flame && v->logpi},
    };
    int rc = FLAME_OK;
    for (size_t i = 0; i < sizeof ds / sizeof ds[0] && rc == FLAME_OK; i++) {
        if (!ds[i].present || !ds[i].data) {
            continue;
        }
        hsize_t dims[2] = {B, ds[i].cols};
        rc = h5_write(g, ds[i].name, H5T_NATIVE_FLOAT, ds[i].cols ? 2 : 1, dims, ds[i].data);
    }
    H5Gclose(g);
    if (H5Fclose(f) < 0 && rc == FLAME_OK) {
        rc = flame_errorf(FLAME_ERUNTIME, "%s: cannot finish writing the output", path);
    }
    return rc;
}

/* applies the --set overrides to the checkpoint's config; the network layout must not change */
static int apply_sets(FlameConfig *cfg, const Checkpoint *ck, char **sets, int nsets) {
    for (int i = 0; i < nsets; i++) {
        if (config_set(cfg, sets[i]) != FLAME_OK) {
            return FLAME_EINPUT;
        }
    }
    config_resolve(cfg);
    if (config_validate(cfg) != FLAME_OK) {
        return FLAME_EINPUT;
    }
    AgentLayout L;
    agent_layout_init(&L, cfg, ck->obs_dim, ck->act_dim);
    if (cfg->algo != ck->cfg.algo || L.pol_table.total != ck->st.L.pol_table.total ||
        L.q_table.total != ck->st.L.q_table.total) {
        return flame_errorf(FLAME_EINPUT,
                            "--set changes the algorithm or the network layout of the checkpoint; "
                            "only keys that keep both may be overridden");
    }
    return FLAME_OK;
}

static int debug_update(int argc, char **argv) {
    static const struct option opts[] = {
        {"ckpt", required_argument, 0, 'c'},   {"out", required_argument, 0, 'o'},
        {"noise", required_argument, 0, 'n'},  {"record", required_argument, 0, 'r'},
        {"set", required_argument, 0, 's'},    {"backend", required_argument, 0, 'b'},
        {"force", no_argument, 0, 'f'},        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *ckpt = NULL, *out = NULL, *noise = NULL, *record = NULL, *backend = "cpu";
    char *sets[DEBUG_MAX_SETS];
    int nsets = 0;
    bool force = false;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
            case 'c':
                ckpt = optarg;
                break;
            case 'o':
                out = optarg;
                break;
            case 'n':
                noise = optarg;
                break;
            case 'r':
                record = optarg;
                break;
            case 's':
                if (nsets == DEBUG_MAX_SETS) {
                    return cli_fail(CMD, FLAME_EINPUT, "more than %d --set options",
                                    DEBUG_MAX_SETS);
                }
                sets[nsets++] = optarg;
                break;
            case 'b':
                backend = optarg;
                break;
            case 'f':
                force = true;
                break;
            case 'h':
                debug_usage(stdout);
                return FLAME_OK;
            default:
                return cli_fail(CMD, FLAME_EINPUT,
                                "unknown or incomplete option '%s'; see `flame debug update --help`",
                                argv[optind - 1]);
        }
    }
    if (optind < argc) {
        return cli_fail(CMD, FLAME_EINPUT,
                        "unexpected argument '%s'; see `flame debug update --help`", argv[optind]);
    }
    if (!ckpt || !out) {
        return cli_fail(CMD, FLAME_EINPUT, "--ckpt FILE and --out FILE are required; see "
                                           "`flame debug update --help`");
    }
    bool cpu = !strcmp(backend, "cpu");
    if (!cpu && strcmp(backend, "cuda")) {
        return cli_fail(CMD, FLAME_EINPUT, "--backend '%s' is not valid: expected cpu or cuda",
                        backend);
    }
    if (!cpu && (noise || record)) {
        return cli_fail(CMD, FLAME_EINPUT,
                        "noise bundles (--noise, --record) are read and written by the cpu backend "
                        "only; use --backend cpu");
    }
    const char *outputs[2] = {out, record};
    for (int i = 0; i < 2; i++) {
        if (outputs[i] && !force && access(outputs[i], F_OK) == 0) {
            return cli_fail(CMD, FLAME_EINPUT, "%s exists; pass --force to replace it",
                            outputs[i]);
        }
    }
    if (record && !strcmp(record, out)) {
        return cli_fail(CMD, FLAME_EINPUT, "--record and --out name the same file");
    }

    Checkpoint ck;
    if (ckpt_read(ckpt, &ck, true) != FLAME_OK) {
        return cli_fail_last(CMD, FLAME_EINPUT);
    }
    long long update_index = (long long)ck.st.updates;
    FlameConfig cfg = ck.cfg;
    snprintf(cfg.backend.noise_file, sizeof cfg.backend.noise_file, "%s", noise ? noise : "");
    cfg.backend.type = cpu ? BACKEND_CPU : BACKEND_CUDA;
    if (apply_sets(&cfg, &ck, sets, nsets) != FLAME_OK) {
        ckpt_free(&ck);
        return cli_fail_last(CMD, FLAME_EINPUT);
    }
    bool batch_in_bundle = false;
    if (noise && bundle_covers(noise, ck.st.updates, &batch_in_bundle) != FLAME_OK) {
        ckpt_free(&ck);
        return cli_fail_last(CMD, FLAME_EINPUT);
    }
    if (!batch_in_bundle && (!ck.has_replay || ck.replay.size < 1)) {
        ckpt_free(&ck);
        return cli_fail(CMD, FLAME_EINPUT,
                        "%s holds no replay buffer to sample the minibatch from; pass --noise with "
                        "a bundle that holds the minibatch, or a checkpoint written with "
                        "run.save_replay=true",
                        ckpt);
    }
    const BackendOps *ops = backend_select(&cfg);
    Backend *b = NULL;
    if (!ops || ops->create(&cfg, ck.obs_dim, ck.act_dim, &b) != FLAME_OK) {
        ckpt_free(&ck);
        return cli_fail_last(CMD, FLAME_EINPUT);
    }
    ops->set_state(b, &ck.st);
    if (ck.has_replay) {
        ops->set_replay(b, &ck.replay);
    }
    int rc = FLAME_OK;
    if (record) {
        rc = backend_cpu_record_noise(b, record, true);
    }
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.part", out);
    if (rc == FLAME_OK) {
        UpdateCtx u = update_context(&cfg, &backend_base(b)->counters);
        update_step(ops, b);
        if (ops->sync) {
            ops->sync(b);
        }
        UpdateMetrics m;
        ops->get_metrics(b, &m);
        AgentState after;
        agent_state_init(&after, &cfg, ck.obs_dim, ck.act_dim);
        ops->get_state(b, &after);
        UpdateView v;
        view_of(ops, b, &v);
        rc = ckpt_write(tmp, &cfg, &after, &ck.tc, NULL, NULL, 0, ops->name);
        rc = rc ? rc : write_update_group(tmp, &cfg, &u, ops->name, &v, &m);
        agent_state_free(&after);
    }
    ops->destroy(b); /* closes (completes) the recorded bundle */
    ckpt_free(&ck);
    if (rc == FLAME_OK && rename(tmp, out) != 0) {
        rc = flame_errorf(FLAME_ERUNTIME, "cannot rename %s to %s", tmp, out);
    }
    if (rc != FLAME_OK) {
        remove(tmp);
        if (record) {
            remove(record);
        }
        return cli_fail_last(CMD, rc);
    }
    printf("update %lld on the %s backend: %s\n", update_index, backend, out);
    return FLAME_OK;
}

int cmd_debug(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        FILE *f = argc < 2 ? stderr : stdout;
        fprintf(f, "usage: flame debug update ...   (flame debug update --help)\n");
        return argc < 2 ? FLAME_EINPUT : FLAME_OK;
    }
    if (strcmp(argv[1], "update")) {
        return cli_fail("debug", FLAME_EINPUT,
                        "unknown subcommand '%s'; the only one is `flame debug update`", argv[1]);
    }
    return debug_update(argc - 1, argv + 1);
}
