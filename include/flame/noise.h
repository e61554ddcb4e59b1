/*
 * noise.h: every random draw of one update, materialised ("noise bundle").
 *
 * The CPU backend fills an UpdateNoise from Philox at the start of each update (the truncated-normal
 * posterior draws in qweight, once their bounds are known) and reads only from it, so the same update
 * can instead take its draws from an HDF5 file, e.g. to replay one update of the authors' reference
 * implementation on identical inputs, and a run can record its draws to such a file.
 *
 * File layout (all float32; N = number of updates in the file; update n reads index
 * n - first_update):
 *   next_z    (N, B, Np, D)  standard normals of the next-action particles (times flow.base_std)
 *   next_xi   (N, B, D)      standard normals of the next action's exploration noise
 *   ent_z     (N, B, D)      standard normals of the entropy estimator's base draws
 *   ent_probe (N, B, P, D)   Hutchinson probes (Gaussian values or +-1)
 *   times     (N, B, 2)      uniforms on (0,1) behind (r, t) (or t for FLAME-R: column 1 unused)
 *   req       (N, B)         uniforms deciding r = t rows
 *   eps0      (N, B, D)      standard normals of the noisy action
 *   eps_post  (N, B, K, D)   the truncated-normal posterior draws eps_bk themselves
 *   qterm_z   (N, B, D)      standard normals of the -Q actor term's base draw
 *   sac_eps   (N, B, D)      standard normals of SAC's reparameterised actor sample
 *   optional batch/obs (N,B,S), batch/act (N,B,D), batch/rew (N,B), batch/next_obs (N,B,S),
 *            batch/done (N,B): the minibatch itself instead of a replay sample.
 * Root attributes: B, D, K, Np, P, S (int64); first_update (int64, optional, 0 when absent): the
 * update index of the file's first entry (a recording started at update 300 holds update 300 first).
 *
 * defines: UpdateNoise NoiseFile FLAME_NOISE_ARRAYS noise_alloc noise_free noise_fill_philox
 *          noise_file_open noise_file_read noise_file_create noise_file_append noise_file_close
 */
#ifndef FLAME_NOISE_H
#define FLAME_NOISE_H

#include <stdbool.h>
#include <stdint.h>

#include "flame/config.h"

/* X(name, stream, kind, per-row width): kind N = normal, U = uniform, P = probe, T = truncated */
#define FLAME_NOISE_ARRAYS(X)                                                                      \
    X(next_z, RNG_STREAM_NEXT_Z, N, Np *D)                                                         \
    X(next_xi, RNG_STREAM_NEXT_NOISE, N, D)                                                        \
    X(ent_z, RNG_STREAM_ENT_Z, N, D)                                                               \
    X(ent_probe, RNG_STREAM_ENT_PROBE, P, P *D)                                                    \
    X(times, RNG_STREAM_TIMES, U, 2)                                                               \
    X(req, RNG_STREAM_REQ_T, U, 1)                                                                 \
    X(eps0, RNG_STREAM_EPS0, N, D)                                                                 \
    X(eps_post, RNG_STREAM_TRUNC, T, K *D)                                                         \
    X(qterm_z, RNG_STREAM_QTERM_Z, N, D)                                                           \
    X(sac_eps, RNG_STREAM_SAC_EPS, N, D)

typedef struct {
    int B, S, D, K, Np, P;
#define FLAME_NOISE_DECL(name, stream, kind, width) float *name;
    FLAME_NOISE_ARRAYS(FLAME_NOISE_DECL)
#undef FLAME_NOISE_DECL
    /* optional minibatch */
    bool have_batch;
    float *obs, *act, *rew, *next_obs, *done;
    float *mem;
} UpdateNoise;

void noise_alloc(UpdateNoise *n, int B, int S, int D, int K, int Np, int P);
void noise_free(UpdateNoise *n);

/* Fills every array except eps_post (drawn in qweight, where its bounds are known) from Philox at
   update index `step`. */
void noise_fill_philox(UpdateNoise *n, const FlameConfig *cfg, uint32_t step);

typedef struct NoiseFile NoiseFile;

/* Opens a bundle for reading and checks its dimensions against (B, S, D, K, Np, P). */
int noise_file_open(const char *path, const UpdateNoise *shape, NoiseFile **out);
/* Loads the draws of update `update` (file index update - first_update) into n (and its batch,
   when the file holds one). */
int noise_file_read(NoiseFile *f, int64_t update, UpdateNoise *n);
/* Creates a bundle for writing whose first entry will be update `first_update` (with_batch: also
   store each update's minibatch). */
int noise_file_create(const char *path, const UpdateNoise *shape, bool with_batch,
                      int64_t first_update, NoiseFile **out);
/* Appends one update's draws (and batch). */
int noise_file_append(NoiseFile *f, const UpdateNoise *n);
int64_t noise_file_count(const NoiseFile *f);
void noise_file_close(NoiseFile *f);

#endif
