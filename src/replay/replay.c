/* replay.c: the host replay ring buffer (see include/flame/replay.h). */
#include "flame/replay.h"

#include <string.h>

#include "flame/check.h"

void replay_init(Replay *r, int64_t capacity, int obs_dim, int act_dim) {
    memset(r, 0, sizeof *r);
    FLAME_CHECK(capacity > 0, "replay capacity must be positive");
    r->capacity = capacity;
    r->obs_dim = obs_dim;
    r->act_dim = act_dim;
    size_t c = (size_t)capacity;
    r->obs = flame_malloc(c * (size_t)obs_dim * sizeof(float));
    r->next_obs = flame_malloc(c * (size_t)obs_dim * sizeof(float));
    r->act = flame_malloc(c * (size_t)act_dim * sizeof(float));
    r->rew = flame_malloc(c * sizeof(float));
    r->done = flame_malloc(c);
}

uint64_t replay_bytes(int64_t capacity, int obs_dim, int act_dim) {
    /* obs, next_obs, act, rew as float; done as one byte */
    uint64_t row = (2 * (uint64_t)obs_dim + (uint64_t)act_dim + 1) * sizeof(float) + 1;
    return (uint64_t)capacity * row;
}

void replay_free(Replay *r) {
    flame_free(r->obs);
    flame_free(r->next_obs);
    flame_free(r->act);
    flame_free(r->rew);
    flame_free(r->done);
    memset(r, 0, sizeof *r);
}

void replay_clear(Replay *r) {
    r->size = 0;
    r->head = 0;
}

void replay_push(Replay *r, const float *obs, const float *act, const float *rew,
                 const float *next_obs, const uint8_t *done, int n) {
    size_t S = (size_t)r->obs_dim, D = (size_t)r->act_dim;
    for (int i = 0; i < n; i++) {
        size_t h = (size_t)r->head;
        memcpy(r->obs + h * S, obs + (size_t)i * S, S * sizeof(float));
        memcpy(r->next_obs + h * S, next_obs + (size_t)i * S, S * sizeof(float));
        memcpy(r->act + h * D, act + (size_t)i * D, D * sizeof(float));
        r->rew[h] = rew[i];
        r->done[h] = done[i] ? 1 : 0;
        r->head = (r->head + 1) % r->capacity;
        if (r->size < r->capacity) {
            r->size++;
        }
    }
}

void replay_copy(Replay *dst, const Replay *src) {
    FLAME_CHECK(dst->capacity == src->capacity && dst->obs_dim == src->obs_dim &&
                    dst->act_dim == src->act_dim,
                "replay buffers of different shapes: %lld x (%d, %d) and %lld x (%d, %d)",
                (long long)dst->capacity, dst->obs_dim, dst->act_dim, (long long)src->capacity,
                src->obs_dim, src->act_dim);
    size_t c = (size_t)src->capacity, S = (size_t)src->obs_dim, D = (size_t)src->act_dim;
    memcpy(dst->obs, src->obs, c * S * sizeof(float));
    memcpy(dst->next_obs, src->next_obs, c * S * sizeof(float));
    memcpy(dst->act, src->act, c * D * sizeof(float));
    memcpy(dst->rew, src->rew, c * sizeof(float));
    memcpy(dst->done, src->done, c);
    dst->size = src->size;
    dst->head = src->head;
}

void replay_gather(const Replay *r, uint64_t seed, uint32_t step, int B, float *obs, float *act,
                   float *rew, float *next_obs, float *done) {
    FLAME_CHECK(r->size > 0, "sampling from an empty replay buffer");
    size_t S = (size_t)r->obs_dim, D = (size_t)r->act_dim;
    for (int b = 0; b < B; b++) {
        size_t i = (size_t)replay_sample_index(seed, step, (uint32_t)b, r->size);
        memcpy(obs + (size_t)b * S, r->obs + i * S, S * sizeof(float));
        memcpy(next_obs + (size_t)b * S, r->next_obs + i * S, S * sizeof(float));
        memcpy(act + (size_t)b * D, r->act + i * D, D * sizeof(float));
        rew[b] = r->rew[i];
        done[b] = r->done[i] ? 1.0f : 0.0f;
    }
}
