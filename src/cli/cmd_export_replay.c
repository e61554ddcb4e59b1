/*
 * cmd_export_replay.c: `flame export-replay`, a run's replay buffer as a D4RL-layout dataset.
 *
 * Rows are the buffer's transitions in insertion order, oldest first (when the ring is full the
 * oldest slot is `head`, else slot 0). Actions are mapped from agent units to env units like
 * rollout datasets. The buffer stores only `terminated` (time-limit truncations bootstrap), so
 * timeouts are all false, and with several training envs consecutive rows interleave the envs:
 * next_observations, not observations[i + 1], is the successor of row i.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flame/check.h"
#include "flame/ckpt.h"
#include "flame/cli.h"
#include "flame/dataset.h"
#include "flame/env.h"
#include "flame/fsutil.h"
#include "flame/h5util.h"
#include "flame/run_dir.h"

#define CMD "export-replay"
#define EXPORT_BATCH_ROWS 65536

static void export_usage(void) {
    printf("usage: flame export-replay (--run DIR | --ckpt FILE) --out PATH [--format d4rl]\n"
           "                           [--env ID] [--force]\n\n"
           "Writes the replay buffer stored in a checkpoint as a D4RL-layout HDF5 file\n"
           "(observations, actions in env units, rewards, terminals, timeouts = false,\n"
           "next_observations, metadata/*), oldest transition first (tools/DATASETS.md).\n\n"
           "options:\n"
           "  --run DIR     run directory: the latest DIR/ckpt/step_<N>.h5 with a replay buffer\n"
           "  --ckpt FILE   this checkpoint (it must hold a replay buffer: run.save_replay=true)\n"
           "  --out PATH    output file\n"
           "  --format F    d4rl (the only layout: the buffer keeps no episode boundaries)\n"
           "  --env ID      check that the checkpoint belongs to this env\n"
           "  --force       replace an existing output\n");
}

/* whether the file is an HDF5 file with a /replay group (without reading it) */
static bool has_replay_group(const char *path) {
    if (fs_check_regular(path, "checkpoint") != FLAME_OK) {
        return false; /* a FIFO or a device named like a checkpoint is not one */
    }
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        return false;
    }
    bool yes = h5_exists(f, "replay");
    H5Fclose(f);
    return yes;
}

/* the checkpoint with the largest step in DIR/ckpt that holds a replay buffer */
static int latest_with_replay(const char *run, char *out, size_t out_len) {
    int64_t *steps = NULL;
    size_t n = 0;
    if (run_dir_checkpoints(run, &steps, &n) != FLAME_OK) {
        return cli_fail(CMD, FLAME_EINPUT,
                        "--run %s: no checkpoint directory %s/ckpt; pass a run directory "
                        "(runs/<name>) or --ckpt FILE",
                        run, run);
    }
    if (n == 0) {
        return cli_fail(CMD, FLAME_EINPUT, "--run %s: no step_<N>.h5 checkpoint in %s/ckpt", run,
                        run);
    }
    bool found = false;
    for (size_t i = 0; i < n && !found; i++) {
        run_dir_ckpt_path(out, out_len, run, steps[i]);
        found = has_replay_group(out);
    }
    free(steps);
    if (!found) {
        return cli_fail(CMD, FLAME_EINPUT,
                        "--run %s: none of the %zu checkpoints in %s/ckpt holds a replay buffer; "
                        "train with run.save_replay=true",
                        run, n, run);
    }
    return FLAME_OK;
}

/* writes rows [start, start + n) of the ring (no wrap inside) with actions in env units */
static int write_rows(DatasetWriter *w, const Replay *r, int64_t start, int64_t n,
                      const double *low, const double *high, float *act) {
    const size_t S = (size_t)r->obs_dim, D = (size_t)r->act_dim;
    for (int64_t k = 0; k < n; k += EXPORT_BATCH_ROWS) {
        int64_t m = n - k < EXPORT_BATCH_ROWS ? n - k : EXPORT_BATCH_ROWS;
        size_t s0 = (size_t)(start + k);
        for (size_t i = 0; i < (size_t)m; i++) {
            for (size_t d = 0; d < D; d++) {
                double center = 0.5 * (low[d] + high[d]), half = 0.5 * (high[d] - low[d]);
                act[i * D + d] = (float)(center + (double)r->act[(s0 + i) * D + d] * half);
            }
        }
        int rc = dataset_add_transitions(w, r->obs + s0 * S, act, r->rew + s0, r->next_obs + s0 * S,
                                         r->done + s0, m);
        if (rc != FLAME_OK) {
            return rc;
        }
    }
    return FLAME_OK;
}

typedef struct {
    const char *run, *ckpt, *out, *format, *env;
    bool force;
} ExportArgs;

/* FLAME_OK, an exit status, or -1 after --help */
static int parse_args(int argc, char **argv, ExportArgs *a) {
    memset(a, 0, sizeof *a);
    a->format = "d4rl";
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
            export_usage();
            return -1;
        }
        if (!strcmp(o, "--force")) {
            a->force = true;
            continue;
        }
        const char **dst = !strcmp(o, "--run")      ? &a->run
                           : !strcmp(o, "--ckpt")   ? &a->ckpt
                           : !strcmp(o, "--out")    ? &a->out
                           : !strcmp(o, "--format") ? &a->format
                           : !strcmp(o, "--env")    ? &a->env
                                                    : NULL;
        if (!dst) {
            return cli_fail(CMD, FLAME_EINPUT,
                            "unknown option '%s'; see `flame export-replay --help`", o);
        }
        if (i + 1 >= argc) {
            return cli_fail(CMD, FLAME_EINPUT, "%s needs a value; see `flame export-replay --help`",
                            o);
        }
        *dst = argv[++i];
    }
    DatasetFormat fmt;
    if (dataset_format_parse(a->format, &fmt) != FLAME_OK) {
        return cli_fail_last(CMD, FLAME_EINPUT);
    }
    if (fmt != DATASET_D4RL) {
        return cli_fail(CMD, FLAME_EINPUT,
                        "--format %s is not available here: the replay buffer keeps no episode "
                        "boundaries at time limits; use --format d4rl",
                        a->format);
    }
    if ((a->run != NULL) == (a->ckpt != NULL)) {
        return cli_fail(CMD, FLAME_EINPUT, "give exactly one of --run DIR and --ckpt FILE");
    }
    if (!a->out) {
        return cli_fail(CMD, FLAME_EINPUT, "--out PATH is required");
    }
    if (a->env && !env_spec_find(a->env)) {
        return cli_fail(CMD, FLAME_EINPUT, "unknown env id '%s'; `flame envs` lists the ids",
                        a->env);
    }
    return FLAME_OK;
}

/* the checkpoint holds a non-empty replay buffer of a known env (--env when given) */
static int check_checkpoint(const Checkpoint *ck, const char *path, const char *env) {
    const EnvSpec *ck_spec = env_spec_find(ck->env_id);
    if (!ck->has_replay) {
        return cli_fail(CMD, FLAME_EINPUT,
                        "%s holds no replay buffer (written with run.save_replay=false); export a "
                        "checkpoint written with run.save_replay=true",
                        path);
    }
    if (!ck_spec) {
        return cli_fail(CMD, FLAME_EINPUT, "%s: checkpoint env '%s' is not a known env id", path,
                        ck->env_id);
    }
    if (env && env_spec_find(env) != ck_spec) {
        return cli_fail(CMD, FLAME_EINPUT,
                        "%s was trained on %s, not on --env %s; drop --env or pass a checkpoint "
                        "of %s",
                        path, ck->env_id, env, env);
    }
    if (ck->obs_dim != ck_spec->obs_dim || ck->act_dim != ck_spec->act_dim) {
        return cli_fail(CMD, FLAME_EINPUT,
                        "%s: checkpoint dimensions (obs %d, act %d) differ from %s", path,
                        ck->obs_dim, ck->act_dim, ck->env_id);
    }
    if (ck->replay.size == 0) {
        return cli_fail(CMD, FLAME_EINPUT, "%s: the replay buffer is empty; nothing to export",
                        path);
    }
    return FLAME_OK;
}

/* the ring, oldest first (slot head when it has wrapped, else slot 0), into a new D4RL file */
static int export_ring(const ExportArgs *a, const Checkpoint *ck, const CliDatasetInfo *d,
                       const char *path) {
    DatasetWriter *w = NULL;
    int rc = dataset_open(&w, a->out, DATASET_D4RL, &d->info, a->force);
    if (rc != FLAME_OK) {
        return cli_fail_last(CMD, rc);
    }
    const Replay *r = &ck->replay;
    int64_t start = r->size < r->capacity ? 0 : r->head;
    int64_t first = start + r->size <= r->capacity ? r->size : r->capacity - start;
    float *act = flame_malloc((size_t)EXPORT_BATCH_ROWS * (size_t)r->act_dim * sizeof(float));
    rc = write_rows(w, r, start, first, d->low, d->high, act);
    rc = rc ? rc : write_rows(w, r, 0, r->size - first, d->low, d->high, act);
    flame_free(act);
    if (rc == FLAME_OK) {
        rc = dataset_close(w);
    } else {
        dataset_abort(w);
    }
    if (rc != FLAME_OK) {
        return cli_fail_last(CMD, rc);
    }
    printf("export-replay: wrote %lld transitions (oldest first) of %s (%s) from %s to %s (d4rl)\n",
           (long long)r->size, ck->env_id, config_algo_name(ck->cfg.algo), path, a->out);
    return FLAME_OK;
}

int cmd_export_replay(int argc, char **argv) {
    ExportArgs a;
    int rc = parse_args(argc, argv, &a);
    if (rc != FLAME_OK) {
        return rc < 0 ? FLAME_OK : rc;
    }
    char path[4200];
    if (a.run) {
        rc = latest_with_replay(a.run, path, sizeof path);
        if (rc != FLAME_OK) {
            return rc;
        }
    } else {
        snprintf(path, sizeof path, "%s", a.ckpt);
    }
    Checkpoint ck;
    if (ckpt_read(path, &ck, true) != FLAME_OK) {
        return cli_fail(CMD, FLAME_EINPUT, "%s; pass a checkpoint written by `flame train`",
                        flame_last_error());
    }
    CliDatasetInfo d;
    memset(&d, 0, sizeof d);
    rc = check_checkpoint(&ck, path, a.env);
    if (rc == FLAME_OK &&
        cli_dataset_info_init(&d, env_spec_find(ck.env_id), ck.cfg.env.model_xml, "replay") !=
            FLAME_OK) {
        rc = cli_fail_last(CMD, FLAME_EINPUT);
    }
    if (rc == FLAME_OK) {
        cli_dataset_info_checkpoint(&d, &ck, path);
        d.info.backend = ck.backend;
        d.info.seed = (uint64_t)ck.cfg.run.seed;
        d.info.deterministic = false;
        d.info.num_envs = ck.cfg.env.num_envs;
        rc = export_ring(&a, &ck, &d, path);
    }
    cli_dataset_info_free(&d);
    ckpt_free(&ck);
    return rc;
}
