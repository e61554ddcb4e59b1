#!/usr/bin/env bash
# run_gpu_checks.sh: the one prepared device check of the CUDA backend, for a GPU machine that has
# the driver and the CUDA runtime but not MuJoCo/HDF5/libcyaml/OpenBLAS. Prepare on the build
# machine with `bash tests/gpu/pack_gpu_carry.sh` (fills .deps/gpu), then on the GPU machine, from
# the repository root:
#   bash tests/gpu/run_gpu_checks.sh [base|new]
# base (default): the checks of the staged kernels; new: those of the new kernel choices
# (backend.small_rows, scoring, backward, entropy, reductions, merge_launches; tests labelled
# gpu_new, their kernel labs, racecheck and memcheck of the cluster engine) -- a run of its own.
# Steps of base, each with its own time cap so the whole run stays within about 8 minutes:
#   1. environment (nvidia-smi, libraries resolved)                        -> env.log
#   2. ctest -L gpu: MLP, stage-op and whole-update parity CPU vs CUDA     -> ctest_gpu.log
#   3. kernel benchmarks (flame bench kernels --quick), bench smoke tests, -> bench.log,
#      whole-update throughput (flame bench update --backend cuda)            bench_kernels.jsonl,
#                                                                              bench_update.jsonl
#   4. compute-sanitizer memcheck on the GPU tests at small sizes          -> memcheck.log
#   5. compute-sanitizer racecheck on the device-MLP test at small sizes   -> racecheck.log
#   summary of every step's exit code and seconds                          -> summary.txt
# Logs go to $OUT (the device tool's output folder) or ./gpu-out. Exit code: 0 when every step
# passed, 1 otherwise.
set -u
MODE="${1:-base}"
case "$MODE" in
    base|new) ;;
    *) echo "usage: $0 [base|new]" >&2; exit 2 ;;
esac
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
OUT="${OUT:-$ROOT/gpu-out}"
mkdir -p "$OUT"
SUMMARY="$OUT/summary.txt"
: > "$SUMMARY"
CARRY="$ROOT/.deps/gpu"
BUILD="$ROOT/build-gpu"
LIBS=/tmp/flame-gpu-libs
FAILED=0

step() { # step NAME CAP_SECONDS LOGFILE COMMAND...
    local name="$1" cap="$2" log="$3"
    shift 3
    local t0=$(date +%s)
    echo "==== $name: $*" >> "$log"
    timeout --kill-after=10 "$cap" "$@" >> "$log" 2>&1
    local rc=$?
    local dt=$(( $(date +%s) - t0 ))
    [ $rc -eq 124 ] && echo "==== $name: TIMED OUT after ${cap}s" >> "$log"
    printf '%-34s rc=%-4s %4ss  (cap %ss, log %s)\n' "$name" "$rc" "$dt" "$cap" "$(basename "$log")" \
        | tee -a "$SUMMARY"
    [ $rc -ne 0 ] && FAILED=1
    return 0
}

# ---- unpack the carried build and libraries
if [ ! -f "$CARRY/build.tar.xz" ] || [ ! -f "$CARRY/libs.tar.xz" ]; then
    echo "missing $CARRY/{build,libs}.tar.xz: run tests/gpu/pack_gpu_carry.sh and carry .deps/gpu" \
        | tee -a "$SUMMARY"
    exit 1
fi
rm -rf "$BUILD" "$LIBS"
mkdir -p "$BUILD" "$LIBS"
tar -C "$BUILD" -xJf "$CARRY/build.tar.xz"
tar -C "$LIBS" -xJf "$CARRY/libs.tar.xz"
OLD_BUILD="$(cat "$BUILD/.flame_build_dir")"
OLD_ROOT="$(dirname "$OLD_BUILD")"
if [ "$OLD_ROOT" != "$ROOT" ]; then
    # CTest files name absolute paths of the machine that built them
    find "$BUILD" -name CTestTestfile.cmake -exec sed -i "s#$OLD_ROOT#$ROOT#g" {} +
fi

# ---- libraries: the carried ones, then CUDA's wherever this machine keeps them
CUDA_DIRS=""
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/cuda-13.0/lib \
         /usr/local/cuda-13.0/lib64 /usr/local/lib /usr/lib/x86_64-linux-gnu; do
    [ -e "$d/libcublas.so.13" ] || [ -e "$d/libcudart.so.13" ] && CUDA_DIRS="$CUDA_DIRS:$d"
done
for d in $(python3 -c 'import nvidia, os; p = nvidia.__path__[0]; print(" ".join(os.path.join(r) for r, _, f in os.walk(p) if any(x.startswith(("libcublas.so", "libcudart.so")) for x in f)))' 2>/dev/null); do
    CUDA_DIRS="$CUDA_DIRS:$d"
done
export LD_LIBRARY_PATH="$LIBS${CUDA_DIRS}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export OPENBLAS_NUM_THREADS=8

# ---- 1. environment
ENVLOG="$OUT/env.log"
{
    date -u
    uname -a
    nvidia-smi || true
    echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
    echo "built at $OLD_ROOT, running at $ROOT"
    for b in "$BUILD/flame" "$BUILD"/tests/test_*_cuda "$BUILD"/bench/bench_mlp_*; do
        echo "--- ldd $b"
        ldd "$b" | grep -E "not found|cublas|cudart|mujoco|hdf5|cyaml|openblas"
    done
    "$BUILD/flame" info || true
    command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer
} > "$ENVLOG" 2>&1
if grep -q "=> not found" "$ENVLOG"; then
    echo "environment: unresolved libraries (see env.log)" | tee -a "$SUMMARY"
    FAILED=1
fi
SAN="$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)"

if [ "$MODE" = new ]; then
    # ---- new kernel choices: parity, labs, sanitizers (about 7 minutes at most)
    step "ctest -L gpu_new" 240 "$OUT/ctest_gpu_new.log" \
        ctest --test-dir "$BUILD" -L gpu_new --output-on-failure --timeout 230 -V
    for lab in small_rows backward qscore entropy; do
        step "flame bench kernels --lab $lab" 45 "$OUT/bench_new.log" \
            "$BUILD/flame" bench kernels --quick --lab "$lab" --json "$OUT/bench_kernels_new.jsonl"
    done
    step "flame bench update (new choices)" 60 "$OUT/bench_new.log" \
        "$BUILD/flame" bench update --backend cuda --no-stages --set backend.small_rows=cluster \
        --set backend.scoring=fused --set backend.backward=fused --set backend.entropy=fused \
        --set backend.reductions=grid --set backend.merge_launches=true \
        --json "$OUT/bench_update_new.jsonl"
    export FLAME_GPU_TEST_SMALL=1
    step "racecheck test_cmlp_cuda" 60 "$OUT/racecheck_new.log" \
        "$SAN" --tool racecheck --racecheck-report all --error-exitcode 3 \
        "$BUILD/tests/test_cmlp_cuda"
    step "memcheck test_cmlp_cuda" 40 "$OUT/memcheck_new.log" \
        "$SAN" --tool memcheck --leak-check no --error-exitcode 3 "$BUILD/tests/test_cmlp_cuda"
    step "memcheck test_stages_fast_cuda" 90 "$OUT/memcheck_new.log" \
        "$SAN" --tool memcheck --leak-check no --error-exitcode 3 \
        "$BUILD/tests/test_stages_fast_cuda"
    echo "overall: $([ $FAILED -eq 0 ] && echo PASS || echo FAIL)" | tee -a "$SUMMARY"
    exit $FAILED
fi

# ---- 2. parity tests
step "ctest -L gpu" 210 "$OUT/ctest_gpu.log" \
    ctest --test-dir "$BUILD" -L gpu -LE gpu_new --output-on-failure --timeout 200 -V

# ---- 3. benchmarks
for lab in mlp_fwd mlp_jvp; do
    step "flame bench kernels --lab $lab" 40 "$OUT/bench.log" \
        "$BUILD/flame" bench kernels --quick --lab "$lab" --json "$OUT/bench_kernels.jsonl"
done
step "ctest -L bench (lab smoke runs)" 60 "$OUT/bench.log" \
    ctest --test-dir "$BUILD" -L bench -R "_smoke$" --output-on-failure --timeout 20
step "flame bench update --backend cuda" 75 "$OUT/bench.log" \
    "$BUILD/flame" bench update --backend cuda --json "$OUT/bench_update.jsonl"

# ---- 4. memcheck (small sizes)
export FLAME_GPU_TEST_SMALL=1
step "memcheck test_mlp_cuda" 30 "$OUT/memcheck.log" \
    "$SAN" --tool memcheck --leak-check no --error-exitcode 3 "$BUILD/tests/test_mlp_cuda"
step "memcheck test_stages_cuda" 70 "$OUT/memcheck.log" \
    "$SAN" --tool memcheck --leak-check no --error-exitcode 3 "$BUILD/tests/test_stages_cuda"

# ---- 5. racecheck (small sizes: every fused-kernel tile)
step "racecheck test_mlp_cuda" 45 "$OUT/racecheck.log" \
    "$SAN" --tool racecheck --racecheck-report all --error-exitcode 3 "$BUILD/tests/test_mlp_cuda"

echo "overall: $([ $FAILED -eq 0 ] && echo PASS || echo FAIL)" | tee -a "$SUMMARY"
exit $FAILED
