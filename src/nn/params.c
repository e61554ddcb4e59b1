/* params.c: parameter tables, blobs, Adam and Polyak averaging (see include/flame/params.h). */
#include "flame/params.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "flame/check.h"

void param_table_init(ParamTable *t) {
    memset(t, 0, sizeof *t);
}

size_t param_table_add(ParamTable *t, const char *name, int rows, int cols) {
    FLAME_CHECK(t->count < FLAME_MAX_TENSORS, "too many tensors (%d) in one parameter table",
                t->count);
    FLAME_CHECK(rows > 0 && cols > 0, "tensor %s has shape %dx%d", name, rows, cols);
    TensorDesc *d = &t->t[t->count++];
    snprintf(d->name, sizeof d->name, "%s", name);
    d->rows = rows;
    d->cols = cols;
    d->size = (size_t)rows * (size_t)cols;
    d->offset = t->total;
    t->total += (d->size + FLAME_PARAM_ALIGN - 1) / FLAME_PARAM_ALIGN * FLAME_PARAM_ALIGN;
    return d->offset;
}

const TensorDesc *param_table_find(const ParamTable *t, const char *name) {
    for (int i = 0; i < t->count; i++) {
        if (!strcmp(t->t[i].name, name)) {
            return &t->t[i];
        }
    }
    return NULL;
}

void param_blob_alloc(ParamBlob *b, const ParamTable *t) {
    b->n = t->total;
    b->base = flame_calloc(4 * (t->total ? t->total : 1), sizeof(float));
    b->params = b->base;
    b->grads = b->base + t->total;
    b->m = b->base + 2 * t->total;
    b->v = b->base + 3 * t->total;
}

void param_blob_free(ParamBlob *b) {
    flame_free(b->base);
    memset(b, 0, sizeof *b);
}

void adam_step(float *p, const float *g, float *m, float *v, size_t n, double lr, double b1,
               double b2, double eps, int64_t t) {
    FLAME_CHECK(t >= 1, "Adam step count must start at 1 (got %lld)", (long long)t);
    float fb1 = (float)b1, fb2 = (float)b2, flr = (float)lr, feps = (float)eps;
    float omb1 = (float)(1.0 - b1), omb2 = (float)(1.0 - b2);
    float bc1 = 1.0f - (float)pow((double)fb1, (double)t);
    float bc2 = 1.0f - (float)pow((double)fb2, (double)t);
    for (size_t i = 0; i < n; i++) {
        float gi = g[i];
        float mi = fb1 * m[i] + omb1 * gi;
        float vi = fb2 * v[i] + omb2 * (gi * gi);
        m[i] = mi;
        v[i] = vi;
        float mhat = mi / bc1;
        float vhat = vi / bc2;
        p[i] -= flr * (mhat / (sqrtf(vhat) + feps));
    }
}

double adam_lr_linear(double lr0, double lr1, int64_t begin, int64_t end, int64_t count) {
    if (end <= begin) {
        return count < begin ? lr0 : lr1;
    }
    if (count <= begin) {
        return lr0;
    }
    if (count >= end) {
        return lr1;
    }
    return lr0 + (lr1 - lr0) * ((double)(count - begin) / (double)(end - begin));
}

void polyak_update(float *target, const float *src, size_t n, double tau) {
    float a = (float)tau, b = (float)(1.0 - tau);
    for (size_t i = 0; i < n; i++) {
        target[i] = a * src[i] + b * target[i];
    }
}
