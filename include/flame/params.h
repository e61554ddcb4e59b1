/*
 * params.h: parameter tables and blobs, Adam, Polyak averaging.
 *
 * A network's tensors are described by one ParamTable (name, offset, shape); its parameters,
 * gradients and Adam moments live in one ParamBlob: a single allocation holding four equally laid
 * out arrays (params, grads, m, v). Offsets are in floats and aligned to FLAME_PARAM_ALIGN floats
 * (64 bytes), so every tensor starts on a cache line and the gradient of a whole network is one
 * contiguous buffer (one all-reduce per network when data-parallel).
 *
 * defines: TensorDesc ParamTable ParamBlob param_table_init param_table_add param_table_find
 *          param_blob_alloc param_blob_free adam_step adam_lr_linear polyak_update
 */
#ifndef FLAME_PARAMS_H
#define FLAME_PARAMS_H

#include <stddef.h>
#include <stdint.h>

#define FLAME_PARAM_ALIGN 16 /* floats */
#define FLAME_MAX_TENSORS 64

typedef struct {
    char name[48];
    size_t offset; /* floats from the start of the role array */
    size_t size;   /* rows * cols */
    int rows, cols;
} TensorDesc;

typedef struct {
    TensorDesc t[FLAME_MAX_TENSORS];
    int count;
    size_t total; /* floats in one role array (aligned) */
} ParamTable;

typedef struct {
    float *params, *grads, *m, *v; /* four role arrays of table->total floats each */
    float *base;                   /* the single allocation */
    size_t n;                      /* table->total */
} ParamBlob;

void param_table_init(ParamTable *t);

/* Appends a rows x cols tensor and returns its offset (aligned). */
size_t param_table_add(ParamTable *t, const char *name, int rows, int cols);

/* The tensor named `name`, NULL when absent. */
const TensorDesc *param_table_find(const ParamTable *t, const char *name);

/* One zeroed allocation for all four roles. */
void param_blob_alloc(ParamBlob *b, const ParamTable *t);
void param_blob_free(ParamBlob *b);

/* One Adam step (optax semantics: eps outside the square root, bias correction with step t >= 1):
   m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;  p -= lr * ((m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)),
   in float with optax's constants: 1 - b computed in double and rounded (optax's Python floats),
   b^t the power of b rounded to float (optax raises the float32 decay to the step count). */
void adam_step(float *p, const float *g, float *m, float *v, size_t n, double lr, double b1,
               double b2, double eps, int64_t t);

/* Linear schedule (optax.linear_schedule): lr0 before `begin`, lr1 after `end`, linear between;
   `count` is the number of optimiser steps already taken. */
double adam_lr_linear(double lr0, double lr1, int64_t begin, int64_t end, int64_t count);

/* target = tau * src + (1 - tau) * target */
void polyak_update(float *target, const float *src, size_t n, double tau);

#endif
