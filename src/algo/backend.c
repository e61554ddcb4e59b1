/* backend.c: choosing the backend, and the fields both backends share (include/flame/backend.h). */
#include "flame/backend.h"

#include <string.h>

#include "flame/check.h"
#ifdef FLAME_HAVE_CUDA
#include "flame/cuda_api.h"
#endif

const BackendOps *backend_select(const FlameConfig *cfg) {
    switch (cfg->backend.type) {
        case BACKEND_CPU:
            return &backend_cpu_ops;
        case BACKEND_CUDA:
#ifdef FLAME_HAVE_CUDA
            if (flame_cuda_device_count() == 0) {
                flame_errorf(FLAME_EINPUT,
                             "backend.type=cuda but no CUDA device was found; use --backend cpu "
                             "or auto");
                return NULL;
            }
            return &backend_cuda_ops;
#else
            flame_errorf(FLAME_EINPUT,
                         "backend.type=cuda but this flame was built without CUDA; rebuild with "
                         "nvcc installed or use --backend cpu");
            return NULL;
#endif
        default:
#ifdef FLAME_HAVE_CUDA
            if (flame_cuda_device_count() > 0) {
                return &backend_cuda_ops;
            }
#endif
            return &backend_cpu_ops;
    }
}

void backend_base_init(BackendBase *base, const FlameConfig *cfg, int obs_dim, int act_dim) {
    memset(base, 0, sizeof *base);
    base->cfg = cfg;
    base->obs_dim = obs_dim;
    base->act_dim = act_dim;
}

void backend_counters_to_state(const BackendBase *base, AgentState *dst) {
    dst->updates = base->counters.updates;
    dst->actor_steps = base->counters.actor_steps;
    dst->critic_steps = base->counters.critic_steps;
    dst->alpha_steps = base->counters.alpha_steps;
}

void backend_counters_from_state(BackendBase *base, const AgentState *src) {
    base->counters.updates = src->updates;
    base->counters.actor_steps = src->actor_steps;
    base->counters.critic_steps = src->critic_steps;
    base->counters.alpha_steps = src->alpha_steps;
}
