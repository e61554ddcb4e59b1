#!/usr/bin/env bash
# pack_gpu_carry.sh: prepares, on a machine without a GPU, everything run_gpu_checks.sh needs on
# the GPU machine, in the ignored folder .deps/gpu (the one path to carry):
#   build.tar.xz  a build for sm_90 (H100/H200) of flame, the GPU tests and the kernel labs, with
#                 its CTest files (the build folder build-gpu, binaries and CTestTestfile.cmake only)
#   libs.tar.xz   the runtime libraries the GPU machine lacks (tools/fetch_runtime_libs.sh)
# usage: bash tests/gpu/pack_gpu_carry.sh [ARCHS]     (ARCHS default 90; e.g. "80;90")
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
ARCHS="${1:-90}"
BUILD="$ROOT/build-gpu"
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DFLAME_CUDA=ON \
      -DFLAME_CUDA_ARCHITECTURES="$ARCHS" -DFLAME_BUILD_TESTS=ON -DFLAME_BUILD_BENCH=ON >/dev/null
TESTS=(test_mlp_cuda test_stages_cuda test_update_cuda test_cmlp_cuda test_stages_fast_cuda
       test_update_fast_cuda test_overlap_cuda)
LABS=(bench_mlp_fwd bench_mlp_jvp bench_small_rows bench_backward bench_qscore bench_entropy)
cmake --build "$BUILD" -j"$(nproc)" --target flame "${TESTS[@]}" "${LABS[@]}"
BINS=("$BUILD/flame")
for t in "${TESTS[@]}"; do BINS+=("$BUILD/tests/$t"); done
for l in "${LABS[@]}"; do BINS+=("$BUILD/bench/$l"); done
mkdir -p "$ROOT/.deps/gpu"
echo "$BUILD" > "$BUILD/.flame_build_dir"
(cd "$BUILD" && strip --strip-unneeded "${BINS[@]}" 2>/dev/null || true)
(cd "$BUILD" && tar -cJf "$ROOT/.deps/gpu/build.tar.xz" .flame_build_dir \
    $(find . -name CTestTestfile.cmake) \
    $(for b in "${BINS[@]}"; do echo ".${b#$BUILD}"; done))
bash "$ROOT/tools/fetch_runtime_libs.sh" "${BINS[@]}"
echo "carry: .deps/gpu ($(du -sh "$ROOT/.deps/gpu" | cut -f1)); device command:"
echo '  run(command="bash tests/gpu/run_gpu_checks.sh", carry=[".deps/gpu"], timeout_s=600)'
echo '  (the new kernel choices: run(command="bash tests/gpu/run_gpu_checks.sh new", ...))'
