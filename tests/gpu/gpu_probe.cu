/*
 * gpu_probe.cu: the device probe of tests/gpu/run_gpu_checks.sh. Prints the driver and runtime
 * versions and every device (name, compute capability, multiprocessors, memory, L2), then runs one
 * small kernel on device 0 and checks every element it wrote.
 *
 *   gpu_probe          exit 0: the kernel ran and its output is right; 77: no CUDA device;
 *                      1: a CUDA call failed or the output is wrong
 *   gpu_probe --oob    the kernel also writes one element past the end of its buffer: a planted
 *                      error that compute-sanitizer memcheck must report (the script checks that
 *                      the sanitizer sees errors in our binaries before it trusts a clean run)
 *
 * Self-contained (CUDA runtime only), so it tells "the device or the tool does not work" apart
 * from a fault in the backend.
 */
#include <cuda_runtime.h>
#include <stdio.h>
#include <string.h>

#define PROBE_N 1000

#define PROBE_CHECK(call)                                                                          \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess) {                                                                   \
            fprintf(stderr, "gpu_probe: %s failed: %s\n", #call, cudaGetErrorString(e_));          \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

__global__ void probe_kernel(int *out, int n, int past_end) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        out[i] = 3 * i + 1;
    }
    if (past_end && i == 0) {
        out[n] = -1; /* the planted out-of-bounds write */
    }
}

int main(int argc, char **argv) {
    int oob = argc > 1 && !strcmp(argv[1], "--oob");
    if (argc > 1 && !oob) {
        fprintf(stderr, "usage: gpu_probe [--oob]\n");
        return 2;
    }
    int drv = 0, rt = 0, n = 0;
    cudaDriverGetVersion(&drv);
    cudaRuntimeGetVersion(&rt);
    cudaError_t e = cudaGetDeviceCount(&n);
    printf("CUDA driver %d.%d, runtime %d.%d\n", drv / 1000, (drv % 1000) / 10, rt / 1000,
           (rt % 1000) / 10);
    if (e != cudaSuccess || n == 0) {
        printf("no CUDA device (%s)\n", e != cudaSuccess ? cudaGetErrorString(e) : "none found");
        return 77;
    }
    for (int d = 0; d < n; d++) {
        cudaDeviceProp p;
        PROBE_CHECK(cudaGetDeviceProperties(&p, d));
        printf("device %d: %s, compute capability %d.%d, %d multiprocessors, %.1f GiB, L2 %d KiB\n",
               d, p.name, p.major, p.minor, p.multiProcessorCount,
               (double)p.totalGlobalMem / (1 << 30), p.l2CacheSize / 1024);
    }
    int *d_out = NULL;
    PROBE_CHECK(cudaMalloc(&d_out, PROBE_N * sizeof(int)));
    PROBE_CHECK(cudaMemset(d_out, 0xff, PROBE_N * sizeof(int)));
    probe_kernel<<<(PROBE_N + 127) / 128, 128>>>(d_out, PROBE_N, oob);
    PROBE_CHECK(cudaGetLastError());
    PROBE_CHECK(cudaDeviceSynchronize());
    static int h[PROBE_N];
    PROBE_CHECK(cudaMemcpy(h, d_out, sizeof h, cudaMemcpyDeviceToHost));
    PROBE_CHECK(cudaFree(d_out));
    int bad = 0;
    for (int i = 0; i < PROBE_N; i++) {
        bad += h[i] != 3 * i + 1;
    }
    if (bad) {
        fprintf(stderr, "gpu_probe: %d of %d elements wrong\n", bad, PROBE_N);
        return 1;
    }
    printf("kernel on device 0: %d elements right%s\n", PROBE_N,
           oob ? " (and one written past the end)" : "");
    return 0;
}
