/*
 * cuda_api.h: the C interface of the CUDA backend (kernels/), callable from src/ without any CUDA
 * header. When the project is built without CUDA these functions do not exist; callers guard with
 * FLAME_HAVE_CUDA.
 *
 * defines: FlameCudaDevice flame_cuda_device_count flame_cuda_device_info flame_cuda_driver_version
 *          flame_cuda_bench_kernels
 */
#ifndef FLAME_CUDA_API_H
#define FLAME_CUDA_API_H

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    char name[256];
    int major, minor;        /* compute capability */
    int sm_count;
    double mem_gib;          /* global memory */
    double mem_bandwidth_gbs; /* theoretical, from clock and bus width (0 when unknown) */
} FlameCudaDevice;

/* Number of usable CUDA devices; 0 when there is no driver or no device (never fails). */
int flame_cuda_device_count(void);

/* Fills `out` for device `index`; returns 0 on success. */
int flame_cuda_device_info(int index, FlameCudaDevice *out);

/* CUDA driver version as reported by the driver API (e.g. 12040), 0 when none. */
int flame_cuda_driver_version(void);

/* `flame bench kernels`: the kernel benchmarks of the CUDA backend (bench/bench_*.cu labs):
   argv holds the arguments after `kernels` (argv[0] is the first of them; argc may be 0), e.g.
   --json FILE (JSON lines appended), --quick (tiny sizes, few repeats), --lab NAME, --version N,
   --help. Returns 0 when every validation passed, 1 when one failed, 2 on bad usage, 77 when
   there is no CUDA device. */
int flame_cuda_bench_kernels(int argc, char **argv);

#ifdef __cplusplus
}
#endif

#endif
