/*
 * policy.h: a checkpoint's policy ready to act. The one sequence from a checkpoint file to a
 * backend that acts, shared by the commands (`flame eval`, `flame rollout`, `flame render` through
 * cli_policy_open) and the C API (flame_policy_load): the same checkpoint, seed and backend give
 * the same actions everywhere.
 *
 * Steps: read and validate the checkpoint (ckpt_read, without its replay); its env id is a known
 * one with the checkpoint's dimensions; the checkpoint's config with the backend and the seed of
 * the draws the caller asks for, sized for acting only (a replay of 1, a batch of 1, no recorded
 * noise bundle); the backend created and loaded with the checkpoint's state. The agent acts with
 * its EMA policy (rollout_policy_agent(p->ops, p->b, mode)).
 *
 * defines: Policy policy_open policy_close policy_backend_parse
 */
#ifndef FLAME_POLICY_H
#define FLAME_POLICY_H

#include <stdint.h>

#include "flame/backend.h"
#include "flame/ckpt.h"
#include "flame/config.h"
#include "flame/env.h"

typedef struct {
    /* the checkpoint as read (config as trained, counters); the agent state's arrays are
       released once the backend holds them (ck.st keeps its counters) */
    Checkpoint ck;
    FlameConfig cfg;     /* the checkpoint's config as the backend runs it */
    const EnvSpec *spec; /* its env */
    const BackendOps *ops;
    Backend *b;
} Policy;

/* Opens the checkpoint at `path` as above. backend: a FlameBackendKind, or < 0 for the
   checkpoint's backend.type; seed >= 0 replaces run.seed (p->cfg.run.seed holds the one used).
   The backend keeps a pointer to p->cfg: p must not move until policy_close. Returns FLAME_OK;
   FLAME_EINPUT with a message for an unreadable or invalid checkpoint, an unknown env or
   dimensions that differ from the env's, or a backend that is not available (cuda without a
   device); FLAME_ERUNTIME when the backend cannot be created. On failure nothing is left to
   free. */
int policy_open(Policy *p, const char *path, int backend, int64_t seed);
void policy_close(Policy *p);

/* "auto", "cpu" or "cuda" -> FlameBackendKind; FLAME_EINPUT with a message otherwise. */
int policy_backend_parse(const char *name, int *kind);

#endif
