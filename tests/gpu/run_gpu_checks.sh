#!/usr/bin/env bash
# run_gpu_checks.sh: the prepared check of the CUDA backend on a GPU machine (one H100/H200, the
# driver and the CUDA runtime, none of MuJoCo/HDF5/libcyaml/OpenBLAS). Prepare on the build
# machine with `bash tests/gpu/pack_gpu_carry.sh` (fills .deps/gpu), then, from the repository root
# of the GPU machine:
#
#   bash tests/gpu/run_gpu_checks.sh              first call: parity tests and memcheck, <= 300 s
#   bash tests/gpu/run_gpu_checks.sh --second     second call: the other sanitizers, benchmarks,
#                                                 env scaling, a training run; <= 300 s
#   bash tests/gpu/run_gpu_checks.sh --new        the new kernel choices (backend.small_rows,
#                                                 scoring, backward, entropy, reductions,
#                                                 merge_launches): parity tests, memcheck and
#                                                 racecheck of the cluster engine; <= 300 s
#   bash tests/gpu/run_gpu_checks.sh --new-bench  their other sanitizer runs, kernel labs and
#                                                 update benchmarks; <= 300 s
# The first and --new calls are the decisive ones; --second follows the first and --new-bench
# follows --new (two calls fit one 15-minute device budget with the machine's start).
#
# Every step runs under its own time cap and the caps of a call (with the kill grace of each)
# sum to at most 300 s: steps of the first (--new) call that do not fit move to the second
# (--new-bench) call, which runs them first; steps of a second call that do not fit are reported
# as not run; a deadline shortens the last caps if the set-up ran long.
# The GPU tests are the CTest tests labelled gpu, read from the manifest that the pack script
# wrote (a new test runs without an edit here): those also labelled gpu_new (the new kernel
# choices) in the --new call, the others in the first call. Each runs as two steps,
# FLAME_GPU_TEST_SIZES=small then real, or as one step at all sizes when this script gives it one
# cap or none. A test that exits 77 on a device because it needs a newer one (it prints
# "SKIPPED: ... compute capability ...") is SKIPPED with that reason. The binaries run
# directly (no ctest), through a wrapper that puts the carried libraries on LD_LIBRARY_PATH for
# them alone: nvidia-smi and compute-sanitizer run with the machine's own environment.
# compute-sanitizer is trusted only after a probe: a trivial kernel must run clean under memcheck
# and a planted out-of-bounds write must be reported; otherwise its steps are SKIPPED.
#
# Output, under $OUT (the device tool's output folder; default ./gpu-out), at most 7 files:
#   summary.txt    one line per step (status, seconds, cap, log) and the overall line
#   env.log        machine, driver, devices, libraries resolved, flame info, tool versions
#   tests.log      the GPU tests' output
#   sanitizer.log  the sanitizer probe and runs
#   bench.log, bench.jsonl    (--second, --new-bench) benchmarks and their JSON lines
#   train.log      (--second) the training run
# Step status: PASS, FAIL, TIMEOUT (killed at its cap), SKIPPED (with the reason), LATER (over
# the call's budget: runs in the call that follows it), NOT-RUN (the deadline came first),
# INTERRUPTED. The overall line is printed whatever happens (also when the script is
# interrupted): PASS (no step failed, at least one test, sanitizer or benchmark step passed),
# SKIPPED (nothing could run: no device, or a device the call's tests do not support), FAIL, or
# INCOMPLETE (timed out or interrupted, nothing failed). Exit code 0 for PASS and SKIPPED, 1
# otherwise, 2 for bad usage.
#
# Environment: OUT; FLAME_GPU_BUILD (use this unpacked build folder instead of the carry);
# FLAME_GPU_WORK (scratch folder, default /tmp/flame-gpu-check); FLAME_GPU_CHECK_TIME_SCALE (a
# factor on every cap and the budget, for the script's own test).
set -u
SELF="run_gpu_checks.sh"
usage() {
    echo "usage: bash tests/gpu/run_gpu_checks.sh [--second | --new | --new-bench]"
}
CALL=first
if [ $# -gt 1 ]; then
    usage >&2
    exit 2
fi
case "${1:-}" in
    "") ;;
    --second) CALL=second ;;
    --new) CALL=new ;;
    --new-bench) CALL=new-bench ;;
    -h | --help) usage; exit 0 ;;
    *) echo "$SELF: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
esac
# the call a second call follows (its leftovers run first), and the one that follows a first call
case "$CALL" in
    second) PRIMARY=first NEXT="" ;;
    new-bench) PRIMARY=new NEXT="" ;;
    first) PRIMARY="" NEXT=second ;;
    new) PRIMARY="" NEXT=new-bench ;;
esac

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
OUT="${OUT:-$ROOT/gpu-out}"
WORK="${FLAME_GPU_WORK:-/tmp/flame-gpu-check}"
CARRY="$ROOT/.deps/gpu"
SCALE="${FLAME_GPU_CHECK_TIME_SCALE:-1}"
if ! awk -v s="$SCALE" 'BEGIN { exit !(s > 0 && s <= 10) }'; then
    echo "$SELF: FLAME_GPU_CHECK_TIME_SCALE='$SCALE': give a number in (0, 10]" >&2
    exit 2
fi
BUDGET=300 # seconds per call, the caps and their kill grace included
GRACE=2    # seconds between the TERM at a cap and the KILL

mkdir -p "$OUT" "$WORK" || { echo "$SELF: cannot create $OUT and $WORK" >&2; exit 1; }
SUMMARY="$OUT/summary.txt"
: >"$SUMMARY"
T_START=$(date +%s%N)
N_PASS=0 N_FAIL=0 N_SKIP=0 N_TIMEOUT=0 N_LATER=0
N_CHECKED=0 # passed steps other than the probes
CUR_PID="" CUR_STEP="" FINISHED=0

# ------------------------------------------------------------------ time
secs() { # seconds (scaled), printed with two decimals
    awk -v c="$1" -v s="$SCALE" 'BEGIN { printf "%.2f", c * s }'
}
elapsed() { # seconds since the start, two decimals
    awk -v a="$T_START" -v b="$(date +%s%N)" 'BEGIN { printf "%.2f", (b - a) / 1e9 }'
}

# ------------------------------------------------------------------ summary lines
say() { # one line to stdout and summary.txt
    echo "$*" | tee -a "$SUMMARY"
}
record() { # record STATUS NAME SECONDS CAP LOG NOTE
    local st="$1" name="$2" dt="$3" cap="$4" log="$5" note="${6:-}"
    case "$st" in
        PASS) N_PASS=$((N_PASS + 1)) ;;
        FAIL) N_FAIL=$((N_FAIL + 1)) ;;
        TIMEOUT | INTERRUPTED | NOT-RUN) N_TIMEOUT=$((N_TIMEOUT + 1)) ;;
        SKIPPED) N_SKIP=$((N_SKIP + 1)) ;;
        LATER) N_LATER=$((N_LATER + 1)) ;;
    esac
    say "$(printf '%-11s %-44s %7ss  cap %6ss  %-13s %s' "$st" "$name" "$dt" "$cap" "$log" \
        "$note")"
}
finish() { # prints the overall line once; exit code
    [ "$FINISHED" = 1 ] && return
    FINISHED=1
    local overall
    if [ "$N_FAIL" -gt 0 ]; then
        overall=FAIL
    elif [ "$N_TIMEOUT" -gt 0 ] || [ "${INTERRUPTED:-0}" = 1 ]; then
        overall=INCOMPLETE
    elif [ "$N_CHECKED" -gt 0 ]; then
        overall=PASS
    else
        overall=SKIPPED
    fi
    limit_out_files
    say "overall: $overall ($CALL call: $N_PASS passed, $N_FAIL failed, $N_TIMEOUT timed out," \
        "$N_SKIP skipped, $N_LATER for the ${NEXT:-next} call; $(elapsed) s of $(secs $BUDGET))"
    case "$overall" in
        PASS | SKIPPED) EXIT_CODE=0 ;;
        *) EXIT_CODE=1 ;;
    esac
}
on_signal() {
    INTERRUPTED=1
    if [ -n "$CUR_PID" ]; then
        kill -TERM "$CUR_PID" 2>/dev/null
        wait "$CUR_PID" 2>/dev/null
        record INTERRUPTED "$CUR_STEP" "?" "-" "-" "the check was stopped during this step"
        CUR_PID=""
    fi
    exit 1
}
on_exit() {
    finish
    exit "${EXIT_CODE:-1}"
}
trap on_signal TERM INT HUP
trap on_exit EXIT

# at most 8 files of at most 16 MiB come back from $OUT: cut a log that grew past 15 MiB to its
# first 5 and last 9 MiB
limit_out_files() {
    local f
    for f in "$OUT"/*; do
        [ -f "$f" ] || continue
        if [ "$(stat -c %s "$f")" -gt $((15 << 20)) ]; then
            { head -c $((5 << 20)) "$f"; printf '\n[... cut to fit the 16 MiB limit ...]\n'
              tail -c $((9 << 20)) "$f"; } >"$f.cut" && mv "$f.cut" "$f"
        fi
    done
}

# ------------------------------------------------------------------ running one command
# run_capped CAP LOG COMMAND...: the command under `timeout` with the log appended; returns its
# exit status (124 / 137: killed at the cap). Runs in the background so that a signal to this
# script is handled at once.
run_capped() {
    local cap="$1" log="$2"
    shift 2
    timeout --kill-after="$(secs $GRACE)" "$cap" "$@" >>"$log" 2>&1 &
    CUR_PID=$!
    wait "$CUR_PID"
    local rc=$?
    CUR_PID=""
    return $rc
}

# ------------------------------------------------------------------ the build and the libraries
ENVLOG="$OUT/env.log"
{
    echo "== $SELF ($CALL call) $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    uname -a
    echo "cores: $(nproc), memory: $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo)"
    echo "repository: $ROOT ($(git -C "$ROOT" rev-parse --short=12 HEAD 2>/dev/null || echo '?'))"
} >"$ENVLOG" 2>&1
prep_fail() {
    echo "$SELF: $*" >>"$ENVLOG"
    record FAIL "prepare" "$(elapsed)" "-" "env.log" "$*"
    exit 1
}
if [ -n "${FLAME_GPU_BUILD:-}" ]; then
    BUILD="$(cd "$FLAME_GPU_BUILD" 2>/dev/null && pwd)" || prep_fail "FLAME_GPU_BUILD=$FLAME_GPU_BUILD is not a folder"
    LIBS="$BUILD/libs"
else
    if [ ! -f "$CARRY/build.tar.xz" ] || [ ! -f "$CARRY/libs.tar.xz" ]; then
        prep_fail "missing $CARRY/{build,libs}.tar.xz: run tests/gpu/pack_gpu_carry.sh and carry .deps/gpu"
    fi
    BUILD="$WORK/build"
    LIBS="$WORK/libs"
    rm -rf "$BUILD" "$LIBS"
    mkdir -p "$BUILD" "$LIBS"
    tar -C "$BUILD" -xJf "$CARRY/build.tar.xz" >>"$ENVLOG" 2>&1 || prep_fail "cannot unpack build.tar.xz"
    tar -C "$LIBS" -xJf "$CARRY/libs.tar.xz" >>"$ENVLOG" 2>&1 || prep_fail "cannot unpack libs.tar.xz"
    echo "unpacked the build (made at $(cat "$BUILD/.flame_build_dir" 2>/dev/null)) into $BUILD" >>"$ENVLOG"
fi
MANIFEST="$BUILD/gpu_manifest.tsv"
[ -f "$MANIFEST" ] || prep_fail "$MANIFEST is missing: pack with tests/gpu/pack_gpu_carry.sh"

# CUDA's libraries wherever this machine keeps them (toolkit folders, Python wheels)
CUDA_DIRS=""
for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/cuda-13.0/lib64 \
         /usr/local/cuda-13.0/targets/x86_64-linux/lib /usr/local/lib /usr/lib/x86_64-linux-gnu; do
    if [ -e "$d/libcublas.so.13" ] || [ -e "$d/libcudart.so.13" ]; then
        CUDA_DIRS="$CUDA_DIRS:$d"
    fi
done
for d in $(timeout 10 python3 -c 'import nvidia, os
for p in nvidia.__path__:
    for r, _, f in os.walk(p):
        if any(x.startswith(("libcublas.so", "libcudart.so", "libcurand.so")) for x in f):
            print(r)' 2>/dev/null); do
    CUDA_DIRS="$CUDA_DIRS:$d"
done
# the wrapper: our binaries, and only they, see the carried libraries
WRAP="$WORK/with-libs"
cat >"$WRAP" <<EOF
#!/bin/sh
# runs a flame binary with the carried libraries (written by $SELF)
LD_LIBRARY_PATH="$LIBS$CUDA_DIRS\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
OPENBLAS_NUM_THREADS=8
FLAME_SOURCE_DIR="$ROOT"
FLAME_BIN="$BUILD/flame"
FLAME_REFERENCE_DIR="$( [ -d "$BUILD/reference" ] && echo "$BUILD/reference" || echo "$ROOT/../shared/reference")"
export LD_LIBRARY_PATH OPENBLAS_NUM_THREADS FLAME_SOURCE_DIR FLAME_BIN FLAME_REFERENCE_DIR
exec "\$@"
EOF
chmod +x "$WRAP"

# the steps' binaries: the GPU tests of the manifest (kind gpu: the first call's, gpu_new: the
# --new call's), flame, the probe
GPU_NAMES=() GPU_BINS=() GPU_KINDS=()
while IFS=$'\t' read -r kind name path _; do
    if [ "$kind" = gpu ] || [ "$kind" = gpu_new ]; then
        GPU_NAMES+=("$name")
        GPU_BINS+=("$BUILD/$path")
        GPU_KINDS+=("$kind")
    fi
done <"$MANIFEST"
FLAME="$BUILD/flame"
PROBE="$BUILD/tests/gpu_probe"

{
    echo "== nvidia-smi (the machine's environment)"
    timeout 15 nvidia-smi 2>&1 || echo "(nvidia-smi failed or is missing)"
    echo "== libraries of our binaries (through $WRAP)"
    for b in "$FLAME" "$PROBE" "${GPU_BINS[@]}"; do
        echo "-- $b"
        timeout 10 "$WRAP" ldd "$b" 2>&1 | grep -E "not found|cublas|cudart|curand|mujoco|hdf5|cyaml|openblas"
    done
    echo "== flame info"
    timeout 15 "$WRAP" "$FLAME" info 2>&1
    echo "== tools"
    for t in compute-sanitizer ctest cmake nvcc python3; do
        printf '%-18s %s\n' "$t" "$(command -v "$t" || echo -)"
    done
} >>"$ENVLOG" 2>&1
if grep -q "=> not found" "$ENVLOG"; then
    prep_fail "unresolved libraries (see env.log)"
fi
for b in "$FLAME" "$PROBE" "${GPU_BINS[@]}"; do
    [ -x "$b" ] || prep_fail "$b is missing from the build"
done

# ------------------------------------------------------------------ the plan
# caps (seconds) of the known GPU tests: "small real" (two steps) or one cap (one step at all
# sizes); a test without an entry runs once at all sizes under CAP_OTHER
declare -A CAPS=([test_mlp_cuda]="10 10" [test_stages_cuda]="25 45" [test_update_cuda]="25 55"
                 [test_stages_fast_cuda]="25 45" [test_update_fast_cuda]="20 45"
                 [test_cmlp_cuda]="20" [test_overlap_cuda]="15")
CAP_OTHER=20
PREP_CAP=15 # unpacking, env.log: counted before the first step

P_KIND=() P_NAME=() P_CAP=() P_LOG=() P_CMD=() P_CALL=()
add() { # add CALL KIND NAME CAP LOG COMMAND...
    P_CALL+=("$1") P_KIND+=("$2") P_NAME+=("$3") P_CAP+=("$4") P_LOG+=("$5")
    shift 5
    P_CMD+=("$(printf '%q ' "$@")")
}
SAN="$(command -v compute-sanitizer || true)"
if [ -z "$SAN" ] && [ -x /usr/local/cuda/bin/compute-sanitizer ]; then
    SAN=/usr/local/cuda/bin/compute-sanitizer
fi

add_tests() { # add_tests CALL KIND: the manifest's tests of KIND, small sizes (and the tests of
    #           one step) first, then the real sizes
    local i n b c
    for i in "${!GPU_NAMES[@]}"; do
        [ "${GPU_KINDS[$i]}" = "$2" ] || continue
        n="${GPU_NAMES[$i]}" b="${GPU_BINS[$i]}" c="${CAPS[${GPU_NAMES[$i]}]:-$CAP_OTHER}"
        if [ "$c" != "${c#* }" ]; then
            add "$1" test "$n small sizes" "${c% *}" tests.log env FLAME_GPU_TEST_SIZES=small "$WRAP" "$b"
        else
            add "$1" test "$n all sizes" "$c" tests.log env FLAME_GPU_TEST_SIZES=all "$WRAP" "$b"
        fi
    done
    for i in "${!GPU_NAMES[@]}"; do
        [ "${GPU_KINDS[$i]}" = "$2" ] || continue
        n="${GPU_NAMES[$i]}" b="${GPU_BINS[$i]}" c="${CAPS[${GPU_NAMES[$i]}]:-$CAP_OTHER}"
        if [ "$c" != "${c#* }" ]; then
            add "$1" test "$n real sizes" "${c#* }" tests.log env FLAME_GPU_TEST_SIZES=real "$WRAP" "$b"
        fi
    done
}
add first probe "device probe" 5 tests.log "$WRAP" "$PROBE"
add first sanprobe "sanitizer probe" 12 sanitizer.log -
add_tests first gpu
add_san() { # add_san CALL TOOL TEST CAP: TOOL on the test's sanitizer subset, if the test exists
    local i
    for i in "${!GPU_NAMES[@]}"; do
        if [ "${GPU_NAMES[$i]}" = "$3" ]; then
            add "$1" san "$2 $3 (min)" "$4" sanitizer.log "$2" min "${GPU_BINS[$i]}"
        fi
    done
}
add_san first memcheck test_update_cuda 35
add second probe "device probe" 5 tests.log "$WRAP" "$PROBE"
add second sanprobe "sanitizer probe" 20 sanitizer.log -
add_san second racecheck test_stages_cuda 40
add_san second initcheck test_update_cuda 30
add_san second synccheck test_mlp_cuda 15
add second device "flame bench kernels --quick (staged labs)" 30 bench.log \
    "$WRAP" "$FLAME" bench kernels --quick --lab mlp_fwd,mlp_jvp --json "$OUT/bench.jsonl"
add second device "flame bench update --backend cuda" 40 bench.log \
    "$WRAP" "$FLAME" bench update --backend cuda --repeats 3 --json "$OUT/bench.jsonl"
add second train "flame train --backend cuda (4000 steps)" 35 train.log \
    "$WRAP" "$FLAME" train --backend cuda --set env.id=HalfCheetah-v5 --set run.start_steps=1000 \
    --set run.total_steps=3000 --set run.eval_episodes=0 --set run.ckpt_every=1000000 \
    --out "$WORK/runs" --name cuda_smoke --force
add second device "flame bench env --threads 1,2,4,8,16" 45 bench.log \
    "$WRAP" "$FLAME" bench env --threads 1,2,4,8,16 --seconds 0.5 --json "$OUT/bench.jsonl"
# the new kernel choices: their tests (label gpu_new), memcheck of whole updates with them
# (graphs, the grid reductions' counters, cluster launches) and racecheck of the cluster engine
# (shared and distributed shared memory)
NEW_SET=(--set backend.small_rows=cluster --set backend.scoring=fused --set backend.backward=fused
         --set backend.entropy=fused --set backend.reductions=grid --set backend.merge_launches=true)
add new probe "device probe" 5 tests.log "$WRAP" "$PROBE"
add new sanprobe "sanitizer probe" 12 sanitizer.log -
add_tests new gpu_new
add_san new memcheck test_update_fast_cuda 30
add_san new racecheck test_cmlp_cuda 25
add new-bench probe "device probe" 5 tests.log "$WRAP" "$PROBE"
add new-bench sanprobe "sanitizer probe" 20 sanitizer.log -
add_san new-bench memcheck test_stages_fast_cuda 40
add_san new-bench racecheck test_stages_fast_cuda 40
add new-bench device "flame bench kernels --quick (new labs)" 60 bench.log \
    "$WRAP" "$FLAME" bench kernels --quick --lab small_rows,backward,qscore,entropy \
    --json "$OUT/bench.jsonl"
add new-bench device "flame bench update --backend cuda (new choices)" 45 bench.log \
    "$WRAP" "$FLAME" bench update --backend cuda --repeats 3 "${NEW_SET[@]}" \
    --json "$OUT/bench.jsonl"
add new-bench device "flame bench update B=4096 (new choices)" 40 bench.log \
    "$WRAP" "$FLAME" bench update --backend cuda --config "$ROOT/configs/halfcheetah_b4096.yaml" \
    --repeats 3 --no-stages "${NEW_SET[@]}" --json "$OUT/bench.jsonl"

# admission in order while the caps (each with its grace) and the set-up fit the budget. A
# second call (--second, --new-bench) plans its first call's admission again to find its
# leftovers: it runs its probes, then those, then its own steps.
ORDER=() LATER=()
used=$PREP_CAP
admit() { # admit INDEX: into ORDER if it fits, else into LATER
    local c=$((P_CAP[$1] + GRACE))
    if [ $((used + c)) -le $BUDGET ]; then
        ORDER+=("$1")
        used=$((used + c))
    else
        LATER+=("$1")
    fi
}
FIRST=() SECOND=() PROBES=()
for i in "${!P_NAME[@]}"; do
    if [ "${P_CALL[$i]}" = "${PRIMARY:-$CALL}" ]; then
        FIRST+=("$i")
    elif [ "${P_CALL[$i]}" != "$CALL" ]; then
        continue
    elif [ "${P_KIND[$i]}" = probe ] || [ "${P_KIND[$i]}" = sanprobe ]; then
        PROBES+=("$i")
    else
        SECOND+=("$i")
    fi
done
for i in "${FIRST[@]}"; do
    admit "$i"
done
if [ -n "$PRIMARY" ]; then
    LEFT=("${LATER[@]}")
    ORDER=() LATER=()
    used=$PREP_CAP
    for i in "${PROBES[@]}" "${LEFT[@]}" "${SECOND[@]}"; do
        admit "$i"
    done
fi

say "== $SELF, $CALL call: ${#ORDER[@]} steps, caps + ${GRACE} s grace each + ${PREP_CAP} s set-up" \
    "= ${used} s of ${BUDGET} s (time scale $SCALE); set-up took $(elapsed) s"

# ------------------------------------------------------------------ the sanitizer probe
SAN_OK=0 SAN_WHY="" SAN_TP=(--target-processes all) SAN_FILTER=0
sanitizer_probe() { # CAP: sets SAN_OK / SAN_WHY / SAN_FILTER; returns 0 when usable
    local cap="$1" log="$OUT/sanitizer.log" tmp="$WORK/san_probe.out" rc sub
    sub=$(awk -v c="$cap" 'BEGIN { printf "%.2f", c / 3 }')
    if [ -z "$SAN" ]; then
        SAN_WHY="compute-sanitizer not found"
        return 1
    fi
    echo "== sanitizer probe: $SAN" >>"$log"
    run_capped "$sub" "$log" "$SAN" --version
    : >"$tmp"
    run_capped "$sub" "$tmp" "$SAN" --tool memcheck "${SAN_TP[@]}" --error-exitcode 3 "$WRAP" "$PROBE"
    rc=$?
    if grep -qiE "unknown option|unrecognized option|unrecognised option" "$tmp"; then
        SAN_TP=()
        : >"$tmp"
        run_capped "$sub" "$tmp" "$SAN" --tool memcheck --error-exitcode 3 "$WRAP" "$PROBE"
        rc=$?
    fi
    cat "$tmp" >>"$log"
    if [ $rc -ne 0 ] || ! grep -q "ERROR SUMMARY: 0 errors" "$tmp"; then
        local why
        why="$(grep -m1 -iE "not supported|error|fail" "$tmp" | tr -s ' ' | cut -c1-90)"
        SAN_WHY="memcheck cannot run a trivial kernel (rc $rc${why:+: $why})"
        return 1
    fi
    : >"$tmp"
    run_capped "$sub" "$tmp" "$SAN" --tool memcheck "${SAN_TP[@]}" --error-exitcode 3 "$WRAP" "$PROBE" --oob
    rc=$?
    cat "$tmp" >>"$log"
    if [ $rc -ne 3 ] && ! grep -qE "ERROR SUMMARY: [1-9]" "$tmp"; then
        SAN_WHY="memcheck did not report a planted out-of-bounds write (rc $rc)"
        return 1
    fi
    SAN_OK=1
    if [ -n "$PRIMARY" ]; then
        : >"$tmp"
        run_capped "$sub" "$tmp" "$SAN" --tool racecheck "${SAN_TP[@]}" --kernel-regex kns=probe_kernel \
            --error-exitcode 3 "$WRAP" "$PROBE"
        rc=$?
        cat "$tmp" >>"$log"
        [ $rc -eq 0 ] && grep -q "ERROR SUMMARY: 0" "$tmp" && SAN_FILTER=1
    fi
    return 0
}

# the kernels racecheck watches when it can filter (shared memory: the block reductions, the
# candidate softmax, the fused MLP kernel; the others are cuBLAS and element-wise kernels); in
# --new-bench the new kernels: the cluster engine, the fused backward, the tensor-core scoring,
# the fused entropy estimator, the time features and the grid reductions
RACE_KERNELS='softmax_vbar|critic_loss|td_target|ess_metrics|fm_collapsed|fm_bk|rect_kernel'
RACE_KERNELS+='|choose_kernel|sac_actor_prep|colsum|fmlp'
if [ "$CALL" = new-bench ]; then
    RACE_KERNELS='cm_pass|cm_chain|bw_wgrad|qscore|qs_proj|ent_fused|time_features|alpha_kernel'
    RACE_KERNELS+='|critic_loss|td_target|ess_metrics|fm_collapsed|fm_bk|rect_kernel|choose_kernel'
    RACE_KERNELS+='|sac_actor_prep'
fi

# ------------------------------------------------------------------ run
NO_DEVICE=0 PROBE_FAILED=0
for i in "${ORDER[@]}"; do
    kind="${P_KIND[$i]}" name="${P_NAME[$i]}" log="${P_LOG[$i]}"
    cap=$(secs "${P_CAP[$i]}")
    left=$(awk -v b="$(secs $BUDGET)" -v e="$(elapsed)" -v g="$(secs $GRACE)" 'BEGIN { printf "%.2f", b - e - g }')
    why=""
    if [ "$kind" != probe ] && [ "$NO_DEVICE" = 1 ] && [ "$kind" != test ]; then
        why="no CUDA device"
    elif [ "$kind" != probe ] && [ "$PROBE_FAILED" = 1 ]; then
        why="the device probe failed"
    elif [ "$kind" = san ] && [ "$SAN_OK" != 1 ]; then
        why="${SAN_WHY:-compute-sanitizer unusable}"
    fi
    if [ -n "$why" ]; then
        record SKIPPED "$name" 0 "$cap" "$log" "$why"
        continue
    fi
    if awk -v l="$left" -v m="$(secs 1)" 'BEGIN { exit !(l < m) }'; then
        record NOT-RUN "$name" 0 "$cap" "$log" "the call's ${BUDGET} s are used up"
        continue
    elif awk -v l="$left" -v c="$cap" 'BEGIN { exit !(l < c) }'; then
        cap="$left" # the deadline: the set-up or earlier steps ran long
    fi
    echo "==== $name (cap ${cap} s) $(date -u +%H:%M:%S)" >>"$OUT/$log"
    log_at=$(stat -c %s "$OUT/$log")
    CUR_STEP="$name"
    t0=$(elapsed)
    note=""
    case "$kind" in
        sanprobe)
            if [ "$NO_DEVICE" = 1 ]; then
                rc=77 note="no CUDA device"
            elif sanitizer_probe "$cap"; then
                rc=0
                [ -n "$PRIMARY" ] && note="kernel filter: $([ $SAN_FILTER = 1 ] && echo yes || echo no)"
            else
                rc=77 note="$SAN_WHY"
            fi
            ;;
        san)
            eval "set -- ${P_CMD[$i]}"
            tool="$1" sizes="$2" bin="$3"
            extra=()
            [ "$tool" = memcheck ] && extra=(--leak-check no)
            [ "$tool" = racecheck ] && extra=(--racecheck-report analysis)
            [ "$tool" = racecheck ] && [ "$SAN_FILTER" = 1 ] && extra+=(--kernel-regex "kns=$RACE_KERNELS")
            run_capped "$cap" "$OUT/$log" env FLAME_GPU_TEST_SIZES="$sizes" "$SAN" --tool "$tool" \
                "${SAN_TP[@]}" "${extra[@]}" --error-exitcode 3 "$WRAP" "$bin"
            rc=$?
            [ $rc -eq 3 ] && note="the sanitizer reported errors"
            ;;
        *)
            eval "run_capped \"\$cap\" \"\$OUT/\$log\" ${P_CMD[$i]}"
            rc=$?
            ;;
    esac
    dt=$(awk -v a="$t0" -v b="$(elapsed)" 'BEGIN { printf "%.1f", b - a }')
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
        st=TIMEOUT note="killed at its cap"
    elif [ $rc -eq 77 ]; then
        st=SKIPPED
        # a test that needs a newer device says so: "SKIPPED: ... compute capability ..."
        cc_skip="$(tail -c +$((log_at + 1)) "$OUT/$log" | grep -m1 -E "SKIPPED: .*compute capability" \
            | sed 's/.*SKIPPED: //' | cut -c1-90)"
        if [ "$kind" = probe ]; then
            NO_DEVICE=1 note="no CUDA device"
        elif [ "$NO_DEVICE" != 1 ] && [ -n "$cc_skip" ]; then
            note="$cc_skip"
        elif [ "$kind" = test ] && [ "$NO_DEVICE" != 1 ]; then
            st=FAIL note="skipped (77) although the probe found a device"
        elif [ -z "$note" ]; then
            note="no CUDA device"
        fi
    elif [ $rc -eq 0 ]; then
        st=PASS
        if [ "$kind" = test ] && [ "$NO_DEVICE" = 1 ]; then
            st=FAIL note="passed without a device: it checked nothing"
        fi
    else
        st=FAIL
        [ -z "$note" ] && note="exit code $rc"
        [ "$kind" = probe ] && PROBE_FAILED=1
    fi
    if [ "$kind" = train ] && [ $rc -eq 0 ]; then
        note="$(grep -m1 "flame train: done" "$OUT/$log" | sed 's/; outputs in.*//')"
    fi
    CUR_STEP=""
    if [ "$st" = PASS ] && [ "$kind" != probe ] && [ "$kind" != sanprobe ]; then
        N_CHECKED=$((N_CHECKED + 1))
    fi
    record "$st" "$name" "$dt" "$cap" "$log" "$note"
done
for i in "${LATER[@]}"; do
    if [ -n "$NEXT" ]; then
        record LATER "${P_NAME[$i]}" 0 "$(secs "${P_CAP[$i]}")" "-" \
            "over the $CALL call's budget: runs in the $NEXT call"
    else
        record SKIPPED "${P_NAME[$i]}" 0 "$(secs "${P_CAP[$i]}")" "-" \
            "over the $CALL call's budget: not run"
    fi
done
exit 0 # the EXIT trap prints the overall line and sets the exit code
