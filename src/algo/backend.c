/* backend.c: choosing the backend (see include/flame/backend.h). */
#include "flame/backend.h"

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
