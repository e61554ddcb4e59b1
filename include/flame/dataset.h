/*
 * dataset.h: offline-RL datasets written in the layouts other code already reads
 * (tools/DATASETS.md):
 *   - D4RL: one flat HDF5 file of transitions, row i = (s_i, a_i, r_i, s_{i+1}), episodes back to
 *     back: observations, actions, rewards (float32), terminals, timeouts (bool),
 *     next_observations (float32), infos/qpos, infos/qvel (float64, state before the step),
 *     infos/action_log_probs (float32, random policy only), metadata/ (scalar datasets);
 *   - Minari 0.5 (data_format "hdf5"): a directory <out>/data/{metadata.json, main_data.hdf5}
 *     with one group episode_<k> per episode: observations (T+1, S) float64, actions (T, D)
 *     float32, rewards (T) float64, terminations, truncations (T) bool; attributes id, seed,
 *     total_steps, rewards_sum/mean/std/max/min.
 * Booleans use h5py's enum over int8 (h5_bool_type); every array dataset is chunked with an
 * unlimited first dimension and gzip compressed.
 *
 * Invariants:
 *   - nothing partial is left behind: a writer builds its output under a hidden temporary name
 *     in the target's directory and renames it into place in dataset_close(); dataset_abort()
 *     and every failure remove the temporary file or directory;
 *   - an existing output is replaced only with `force`, and a directory only when it is a
 *     Minari dataset (data/metadata.json), so --force never deletes unrelated files;
 *   - actions are stored in env units (what the env received: center + a * half_range of the
 *     agent action a, unclipped).
 * Rollouts of a policy into a writer: rollout_dataset (include/flame/rollout.h).
 *
 * defines: DatasetFormat DatasetInfo DatasetEpisode DatasetWriter dataset_format_parse
 *          dataset_format_name dataset_open dataset_add_episode dataset_add_transitions
 *          dataset_close dataset_abort dataset_minari_id dataset_minari_links_check
 */
#ifndef FLAME_DATASET_H
#define FLAME_DATASET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "flame/env.h"

typedef enum { DATASET_D4RL, DATASET_MINARI } DatasetFormat;

/* "d4rl" or "minari" -> format; FLAME_EINPUT with a message naming the choices otherwise. */
int dataset_format_parse(const char *name, DatasetFormat *out);
const char *dataset_format_name(DatasetFormat f);

/* Everything a dataset says about where its data came from. Strings may be NULL (written as ""). */
typedef struct {
    const EnvSpec *spec;     /* env id, dimensions, time limit, reward threshold */
    int nq, nv;              /* MuJoCo state sizes (infos/qpos, infos/qvel) */
    const double *act_low;   /* (act_dim) action box in env units (ctrlrange) */
    const double *act_high;  /* (act_dim) */
    const char *source;      /* "rollout" or "replay" */
    const char *algorithm;   /* "flame-m", "flame-r", "sac" or "random" */
    const char *policy;      /* checkpoint path, or "random" */
    const char *backend;     /* backend that computed the actions ("" for random) */
    const char *config_yaml; /* resolved config of the checkpoint (NULL for random) */
    int64_t iteration;       /* gradient updates of the policy snapshot */
    int64_t env_steps;       /* training env steps of the snapshot */
    uint64_t seed;           /* rollout seed */
    bool deterministic;      /* deterministic policy actions */
    int num_envs;            /* parallel envs of the rollout */
    /* Minari only */
    const char *dataset_id;     /* validated by dataset_minari_id */
    const char *author;         /* NULL: "unknown" */
    const char *author_email;   /* NULL: key omitted; else NAME@DOMAIN */
    const char *code_permalink; /* NULL: key omitted; else an http(s) URL */
    const char *description;    /* NULL: generated */
} DatasetInfo;

/* One complete episode of T steps. */
typedef struct {
    int T;
    const double *obs;         /* (T+1, S): reset observation ... final observation */
    const float *act;          /* (T, D) env units */
    const double *rew;         /* (T) */
    const uint8_t *terminated; /* (T) the env's flag */
    const uint8_t *truncated;  /* (T) time limit */
    const double *qpos, *qvel; /* (T, nq), (T, nv) state before each step; NULL: not stored */
    const float *log_prob;     /* (T) log-prob of each action; NULL: not stored */
    uint32_t env_index;        /* which env of the pool ran it */
    uint32_t env_episode;      /* that env's episode counter (its reset-noise address) */
} DatasetEpisode;

typedef struct DatasetWriter DatasetWriter;

/* Starts a dataset at `path` (a file for D4RL, a directory for Minari) under a temporary name.
   FLAME_EINPUT with a message naming the problem and the fix when the output exists and force is
   false, when an existing directory is not a Minari dataset, or when the location is not
   writable. `info` (and the arrays it points to) must stay valid until dataset_close. */
int dataset_open(DatasetWriter **out, const char *path, DatasetFormat fmt, const DatasetInfo *info,
                 bool force);

/* Appends one episode (D4RL rows or a Minari episode group). */
int dataset_add_episode(DatasetWriter *w, const DatasetEpisode *ep);

/* D4RL only: appends n raw transitions (float32 rows; actions in env units; timeouts false). */
int dataset_add_transitions(DatasetWriter *w, const float *obs, const float *act, const float *rew,
                            const float *next_obs, const uint8_t *terminal, int64_t n);

/* Writes the metadata, closes the files and renames the result into place; frees w (also on
   failure, after removing the temporary output). */
int dataset_close(DatasetWriter *w);

/* Removes the temporary output and frees w (NULL is ignored). */
void dataset_abort(DatasetWriter *w);

/* The Minari dataset id: `id` when non-empty, else flame/<env_id>/<policy>[-stochastic]-v0 in lower
   case (e.g. flame/hopper-v5/sac-v0, flame/ant-v5/random-v0). It never depends on the output path
   or the environment: minari.load_dataset(id) finds the dataset when it lies at
   $MINARI_DATASETS_PATH/<id>. FLAME_EINPUT when the result is not of the form
   (namespace/)name-vN with name characters [-_A-Za-z0-9]. */
int dataset_minari_id(const char *id, const char *env_id, const char *policy, bool deterministic,
                      char *out, size_t out_len);

/* Minari metadata fields that readers show as links: code_permalink must be an http(s) URL and
   author_email an address (NULL or "" leaves the key out). FLAME_EINPUT with a message otherwise;
   dataset_open checks it for Minari outputs. */
int dataset_minari_links_check(const DatasetInfo *info);

#endif
