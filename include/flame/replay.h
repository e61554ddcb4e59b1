/*
 * replay.h: the host replay buffer, a struct-of-arrays FIFO ring (obs, action, reward, next_obs,
 * terminated), and uniform sampling with replacement from Philox draws.
 *
 * Stores the action as taken (unclipped, agent units), the unscaled reward, the true final
 * observation as next_obs, and `terminated` only: time-limit truncation bootstraps.
 * Sampling for update n draws index b from rng(seed, RNG_STREAM_REPLAY, n, b, 0) mapped to
 * [0, size) by a 32x(size) multiply-shift, identically on every backend.
 *
 * defines: Replay replay_init replay_free replay_push replay_sample_index replay_gather
 *          replay_clear replay_copy replay_bytes
 */
#ifndef FLAME_REPLAY_H
#define FLAME_REPLAY_H

#include <stdint.h>

#include "flame/rng.h"

typedef struct {
    int64_t capacity, size, head; /* head: next slot written */
    int obs_dim, act_dim;
    float *obs, *act, *rew, *next_obs;
    uint8_t *done;
} Replay;

void replay_init(Replay *r, int64_t capacity, int obs_dim, int act_dim);

/* The bytes replay_init allocates for these sizes (the buffer is filled, and its memory taken, as
   transitions arrive: check this against the memory available before creating a large one). */
uint64_t replay_bytes(int64_t capacity, int obs_dim, int act_dim);
void replay_free(Replay *r);
void replay_clear(Replay *r);

/* Appends n transitions (row-major arrays), overwriting the oldest when full. */
void replay_push(Replay *r, const float *obs, const float *act, const float *rew,
                 const float *next_obs, const uint8_t *done, int n);

/* The slot of batch row b of update `step` (size must be > 0). */
FLAME_HD static inline int64_t replay_sample_index(uint64_t seed, uint32_t step, uint32_t b,
                                                   int64_t size) {
    uint32_t w = rng_u32(seed, RNG_STREAM_REPLAY, step, b, 0);
    if (size <= (int64_t)0xffffffff) {
        return (int64_t)(((uint64_t)w * (uint64_t)size) >> 32);
    }
    uint32_t w2 = rng_u32(seed, RNG_STREAM_REPLAY, step, b, 1);
    return (int64_t)((((uint64_t)w << 32) | w2) % (uint64_t)size);
}

/* Copies every slot, size and head (the buffers must have the same capacity and dimensions). */
void replay_copy(Replay *dst, const Replay *src);

/* Gathers B sampled rows into the batch arrays (done as float 0/1). */
void replay_gather(const Replay *r, uint64_t seed, uint32_t step, int B, float *obs, float *act,
                   float *rew, float *next_obs, float *done);

#endif
