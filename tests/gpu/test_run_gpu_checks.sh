#!/usr/bin/env bash
# test_run_gpu_checks.sh: the logic of run_gpu_checks.sh on a machine without a GPU, with a fake
# build (manifest, probe, test binaries, flame) and fake nvidia-smi / compute-sanitizer on PATH:
# no device (every step SKIPPED, exit 0), a sanitizer that refuses the device (SKIPPED, not FAIL),
# a working sanitizer with a planted error it must see, failing, timed-out and misbehaving tests,
# the first call's budget and the second call taking the leftovers, an interrupted run (the
# overall line is still printed and the running test is stopped), the carried libraries on
# LD_LIBRARY_PATH of our binaries only, and at most 8 files two folders deep under $OUT; the
# --new and --new-bench calls of the new kernel choices (the tests of kind gpu_new, their
# sanitizer runs, labs and benchmarks, the leftovers of --new), and a test that skips on a device
# older than it needs (SKIPPED with its reason, not FAIL).
set -u
HERE="$(cd "$(dirname "$0")" && pwd)"
CHECK="$HERE/run_gpu_checks.sh"
T="$(mktemp -d /tmp/flame_gpu_check_test.XXXXXX)"
trap 'rm -rf "$T"' EXIT
FAILS=0
fail() {
    echo "FAIL: $*"
    FAILS=$((FAILS + 1))
}
ok() {
    echo "ok   $*"
}

# ---- the fake build
FB="$T/build"
mkdir -p "$FB/tests" "$FB/libs" "$T/bin"
touch "$FB/libs/libcarried.so"
# a fake test: behaviour from FAKE_<NAME> (pass | fail | skip | oldcc | sleep); checks that it
# sees the carried libraries and the test environment
fake_test() {
    cat >"$FB/tests/$1" <<EOF
#!/bin/bash
case ":\$LD_LIBRARY_PATH:" in *":$FB/libs:"*) ;; *) echo "no carried libraries"; exit 9 ;; esac
[ -n "\${FLAME_SOURCE_DIR:-}" ] && [ -n "\${FLAME_BIN:-}" ] || { echo "no test environment"; exit 9; }
echo "$1 sizes=\$FLAME_GPU_TEST_SIZES"
[ "\${FAKE_DEVICE:-0}" = 1 ] || { echo "skipped: no CUDA device"; exit 77; }
case "\${FAKE_$1:-pass}" in
    pass) exit 0 ;;
    fail) echo "  FAIL something"; exit 1 ;;
    skip) exit 77 ;;
    oldcc) echo "SKIPPED: the cluster kernels need compute capability 9.0 (device fake is 8.0)"; exit 77 ;;
    sleep) echo \$\$ >"$T/sleeper.pid"; exec sleep 600 ;;
esac
EOF
    chmod +x "$FB/tests/$1"
}
for n in test_mlp_cuda test_stages_cuda test_update_cuda test_extra_cuda test_cmlp_cuda \
         test_stages_fast_cuda test_update_fast_cuda test_overlap_cuda; do
    fake_test "$n"
done
cat >"$FB/tests/gpu_probe" <<EOF
#!/bin/bash
case ":\$LD_LIBRARY_PATH:" in *":$FB/libs:"*) ;; *) exit 9 ;; esac
[ "\${FAKE_DEVICE:-0}" = 1 ] || { echo "no CUDA device"; exit 77; }
echo "device 0: fake"
exit 0
EOF
cat >"$FB/flame" <<'EOF'
#!/bin/bash
case "$1" in
    info) echo "flame (fake)" ;;
    train) echo "flame train: done: 4000 env steps, 600 updates in 9.0 s; outputs in x" ;;
    *) echo "flame $*" ;;
esac
EOF
chmod +x "$FB/tests/gpu_probe" "$FB/flame"
write_manifest() { # the test names, in order; NAME:gpu_new for a test of the --new call
    : >"$FB/gpu_manifest.tsv"
    local n kind
    for n in "$@"; do
        kind=gpu
        case "$n" in *:gpu_new) kind=gpu_new n="${n%:gpu_new}" ;; esac
        printf '%s\t%s\ttests/%s\t\n' "$kind" "$n" "$n" >>"$FB/gpu_manifest.tsv"
    done
}
NEW_TESTS=(test_cmlp_cuda:gpu_new test_stages_fast_cuda:gpu_new test_update_fast_cuda:gpu_new
           test_overlap_cuda:gpu_new)
# fake tools: record a call that sees the carried libraries
cat >"$T/bin/nvidia-smi" <<EOF
#!/bin/bash
case ":\${LD_LIBRARY_PATH:-}:" in *":$FB/libs:"*) echo nvidia-smi >>"$T/leaks" ;; esac
echo "NVIDIA H200 (fake)"
EOF
# compute-sanitizer: FAKE_SAN = refuse | work; runs the program after its options
cat >"$T/bin/compute-sanitizer" <<EOF
#!/bin/bash
case ":\${LD_LIBRARY_PATH:-}:" in *":$FB/libs:"*) echo compute-sanitizer >>"$T/leaks" ;; esac
[ "\$1" = --version ] && { echo "compute-sanitizer (fake)"; exit 0; }
echo "\$@" >>"$T/sanitizer_args"
if [ "\${FAKE_SAN:-work}" = refuse ]; then
    echo "========= COMPUTE-SANITIZER"
    echo "========= Error: Device not supported. Please refer to the documentation."
    echo "========= Program hit error 999 on CUDA API call to cudaMalloc"
    exit 255
fi
while [ \$# -gt 0 ] && [ "\${1#-}" != "\$1" ]; do
    case "\$1" in --tool | --target-processes | --error-exitcode | --leak-check | --racecheck-report | --kernel-regex) shift 2 ;; *) shift ;; esac
done
echo "\$@" >>"$T/sanitized"
case " \$* " in *" --oob "*) echo "========= Invalid __global__ write of size 4"; echo "========= ERROR SUMMARY: 1 error"; exit 3 ;; esac
"\$@"
rc=\$?
echo "========= ERROR SUMMARY: 0 errors"
exit \$rc
EOF
chmod +x "$T/bin/nvidia-smi" "$T/bin/compute-sanitizer"

# run_check NAME [ARGS...]: the check with the fakes; its exit code in RC, its output in $T/NAME.out
run_check() {
    local name="$1"
    shift
    rm -rf "$T/out_$name" "$T/leaks" "$T/sanitized"
    mkdir -p "$T/out_$name"
    OUT="$T/out_$name" FLAME_GPU_BUILD="$FB" FLAME_GPU_WORK="$T/work" PATH="$T/bin:$PATH" \
        bash "$CHECK" "$@" >"$T/$name.out" 2>&1
    RC=$?
}
summary_has() { # summary_has NAME REGEX: a line of the run's summary.txt matches
    grep -qE "$2" "$T/out_$1/summary.txt"
}
missing_leftovers() { # missing_leftovers FIRST SECOND: LATER steps of run FIRST that run SECOND
    #                   did not pass (their count)
    local step missing=0
    while read -r step; do
        grep -qE "^PASS +$(printf '%s' "$step" | sed 's/[()]/\\&/g') " "$T/out_$2/summary.txt" \
            || missing=$((missing + 1))
    done < <(grep '^LATER' "$T/out_$1/summary.txt" | cut -c13-56 | sed 's/ *$//')
    echo "$missing"
}
expect() { # expect WHAT CONDITION...
    local what="$1"
    shift
    if "$@"; then ok "$what"; else fail "$what"; sed 's/^/    | /' "$T/${LAST}.out"; fi
}

write_manifest test_mlp_cuda test_stages_cuda test_update_cuda "${NEW_TESTS[@]}"

# 1. no device: every step SKIPPED, overall SKIPPED, exit 0; the tests still ran (exit 77)
LAST=nodev
run_check nodev
expect "no device: exit 0" [ "$RC" = 0 ]
expect "no device: overall SKIPPED" summary_has nodev '^overall: SKIPPED'
expect "no device: no step other than SKIPPED" \
    bash -c "! grep -vE '^(SKIPPED|overall|==)' '$T/out_nodev/summary.txt'"
expect "no device: 9 steps reported" [ "$(grep -c '^SKIPPED' "$T/out_nodev/summary.txt")" = 9 ]
expect "no device: the tests ran and skipped" grep -q "test_update_cuda sizes=real" "$T/out_nodev/tests.log"
expect "no device: the tests of the --new call wait for it" \
    bash -c "! grep -qE 'fast|cmlp|overlap' '$T/out_nodev/summary.txt' '$T/out_nodev/tests.log'"
expect "no device: caps within 300 s" \
    bash -c "grep -oE '= [0-9]+ s of 300 s' '$T/out_nodev/summary.txt' | awk '{exit !(\$2 <= 300)}'"
expect "nvidia-smi and compute-sanitizer never see the carried libraries" [ ! -e "$T/leaks" ]

# 2. a device, a sanitizer that refuses it: sanitizer steps SKIPPED with the reason, tests PASS
LAST=refuse
FAKE_DEVICE=1 FAKE_SAN=refuse run_check refuse
expect "refusing sanitizer: exit 0" [ "$RC" = 0 ]
expect "refusing sanitizer: overall PASS" summary_has refuse '^overall: PASS'
expect "refusing sanitizer: probe SKIPPED with the reason" \
    summary_has refuse '^SKIPPED +sanitizer probe .*(not supported|Device not supported|rc 255)'
expect "refusing sanitizer: memcheck SKIPPED" summary_has refuse '^SKIPPED +memcheck test_update_cuda'
expect "refusing sanitizer: 6 test steps PASS" [ "$(grep -c '^PASS .*sizes' "$T/out_refuse/summary.txt")" = 6 ]

# 3. a working sanitizer (it must see the planted error), a failing test: FAIL, exit 1
LAST=fail
FAKE_DEVICE=1 FAKE_test_stages_cuda=fail run_check fail
expect "failing test: exit 1" [ "$RC" = 1 ]
expect "failing test: overall FAIL" summary_has fail '^overall: FAIL'
expect "failing test: its steps FAIL" summary_has fail '^FAIL +test_stages_cuda small sizes'
expect "working sanitizer: probe PASS" summary_has fail '^PASS +sanitizer probe'
expect "working sanitizer: memcheck PASS on the min subset" summary_has fail '^PASS +memcheck test_update_cuda \(min\)'
expect "sanitizer runs our binary through the wrapper" grep -q "with-libs .*test_update_cuda" "$T/sanitized"
expect "nothing else sees the carried libraries" [ ! -e "$T/leaks" ]

# 4. a sanitizer that misses the planted error is not trusted
cat >"$T/bin/compute-sanitizer.blind" <<'EOF'
#!/bin/bash
[ "$1" = --version ] && exit 0
echo "========= ERROR SUMMARY: 0 errors"
exit 0
EOF
mkdir -p "$T/blind"
cp "$T/bin/nvidia-smi" "$T/blind/"
cp "$T/bin/compute-sanitizer.blind" "$T/blind/compute-sanitizer"
chmod +x "$T/blind/compute-sanitizer"
LAST=blind
rm -rf "$T/out_blind"
mkdir -p "$T/out_blind"
FAKE_DEVICE=1 OUT="$T/out_blind" FLAME_GPU_BUILD="$FB" FLAME_GPU_WORK="$T/work" PATH="$T/blind:$PATH" \
    bash "$CHECK" >"$T/blind.out" 2>&1
expect "blind sanitizer: probe SKIPPED" summary_has blind '^SKIPPED +sanitizer probe .*planted'

# 5. a test that skips (77) on a machine with a device, or passes without one: FAIL
LAST=skip
FAKE_DEVICE=1 FAKE_test_mlp_cuda=skip run_check skip
expect "77 with a device: FAIL" summary_has skip '^FAIL +test_mlp_cuda small sizes .*although'
cat >"$FB/tests/test_update_cuda" <<'EOF'
#!/bin/bash
exit 0
EOF
LAST=nodevpass
run_check nodevpass
expect "a pass without a device: FAIL" summary_has nodevpass '^FAIL +test_update_cuda small sizes .*without a device'
fake_test test_update_cuda

# 6. a test over its cap: TIMEOUT, overall INCOMPLETE, exit 1 (time scale 0.05: caps of 1-2 s)
LAST=timeout
FAKE_DEVICE=1 FAKE_test_mlp_cuda=sleep FLAME_GPU_CHECK_TIME_SCALE=0.05 run_check timeout
expect "over its cap: TIMEOUT" summary_has timeout '^TIMEOUT +test_mlp_cuda small sizes'
expect "over its cap: overall INCOMPLETE, exit 1" bash -c "[ $RC = 1 ] && grep -q '^overall: INCOMPLETE' '$T/out_timeout/summary.txt'"
expect "over its cap: the sleeper is gone" bash -c "! kill -0 \$(cat '$T/sleeper.pid') 2>/dev/null"

# 7. interrupted: the overall line is printed and the running test stopped
LAST=term
rm -rf "$T/out_term" "$T/sleeper.pid"
mkdir -p "$T/out_term"
FAKE_DEVICE=1 FAKE_test_stages_cuda=sleep OUT="$T/out_term" FLAME_GPU_BUILD="$FB" \
    FLAME_GPU_WORK="$T/work" PATH="$T/bin:$PATH" bash "$CHECK" >"$T/term.out" 2>&1 &
pid=$!
for _ in $(seq 100); do
    [ -s "$T/sleeper.pid" ] && break
    sleep 0.1
done
kill -TERM "$pid"
wait "$pid"
RC=$?
sleep 0.2
expect "interrupted: exit 1" [ "$RC" = 1 ]
expect "interrupted: the step is reported" summary_has term '^INTERRUPTED +test_stages_cuda small sizes'
expect "interrupted: overall INCOMPLETE printed" grep -q '^overall: INCOMPLETE' "$T/term.out"
expect "interrupted: the running test was stopped" bash -c "! kill -0 \$(cat '$T/sleeper.pid') 2>/dev/null"

# 8. the budget: with many tests the first call keeps to 300 s and hands the rest to the second
#    call, which runs them first
for k in 1 2 3 4 5 6; do
    fake_test "test_more${k}_cuda"
done
write_manifest test_mlp_cuda test_stages_cuda test_update_cuda test_extra_cuda \
    test_more1_cuda test_more2_cuda test_more3_cuda test_more4_cuda test_more5_cuda test_more6_cuda
LAST=budget
FAKE_DEVICE=1 run_check budget
expect "budget: steps for the second call" summary_has budget '^LATER '
expect "budget: planned caps within 300 s" \
    bash -c "grep -oE '= [0-9]+ s of 300 s' '$T/out_budget/summary.txt' | awk '{exit !(\$2 <= 300)}'"
expect "budget: LATER is not a failure" summary_has budget '^overall: PASS'
LAST=leftovers
FAKE_DEVICE=1 run_check leftovers --second
expect "second call: every leftover of the first call passes" \
    [ "$(missing_leftovers budget leftovers)" = 0 ]
expect "second call: planned caps within 300 s" \
    bash -c "grep -oE '= [0-9]+ s of 300 s' '$T/out_leftovers/summary.txt' | awk '{exit !(\$2 <= 300)}'"

write_manifest test_mlp_cuda test_stages_cuda test_update_cuda "${NEW_TESTS[@]}"
LAST=second
FAKE_DEVICE=1 run_check second --second
expect "second call: sanitizers, benchmarks, env scaling run" \
    bash -c "[ \$(grep -cE '^PASS +(racecheck|initcheck|synccheck|flame bench)' '$T/out_second/summary.txt') = 6 ]"
expect "second call: the training run's rates are in the summary" summary_has second 'flame train: done'
expect "second call: racecheck filtered to the shared-memory kernels" grep -q "kns=softmax_vbar" "$T/sanitizer_args"
expect "second call: at most 8 files, at most two folders deep" \
    bash -c "[ \$(find '$T/out_second' -type f | wc -l) -le 8 ] && [ -z \"\$(find '$T/out_second' -mindepth 3)\" ]"
expect "second call: nothing but our binaries sees the carried libraries" [ ! -e "$T/leaks" ]
expect "second call: the staged kernel labs only" \
    grep -q "bench kernels --quick --lab mlp_fwd,mlp_jvp" "$T/out_second/bench.log"

# 9. the --new call: the gpu_new tests at small then real sizes (or one step), memcheck of whole
#    updates and racecheck of the cluster engine; nothing of the first call
LAST=newnodev
run_check newnodev --new
expect "--new, no device: exit 0, overall SKIPPED" \
    bash -c "[ $RC = 0 ] && grep -q '^overall: SKIPPED' '$T/out_newnodev/summary.txt'"
expect "--new, no device: no step other than SKIPPED" \
    bash -c "! grep -vE '^(SKIPPED|overall|==)' '$T/out_newnodev/summary.txt'"
expect "--new, no device: caps within 300 s" \
    bash -c "grep -oE '= [0-9]+ s of 300 s' '$T/out_newnodev/summary.txt' | awk '{exit !(\$2 <= 300)}'"
LAST=new
FAKE_DEVICE=1 run_check new --new
expect "--new: exit 0, overall PASS" bash -c "[ $RC = 0 ] && grep -q '^overall: PASS' '$T/out_new/summary.txt'"
expect "--new: the fast stage test at small, then real sizes" \
    bash -c "grep -E '^PASS +test_stages_fast_cuda (small|real) sizes' '$T/out_new/summary.txt' \
             | cut -c13-56 | tr -s ' ' | paste -sd'|' \
             | grep -qx 'test_stages_fast_cuda small sizes |test_stages_fast_cuda real sizes '"
expect "--new: the cluster engine test in one step" summary_has new '^PASS +test_cmlp_cuda all sizes'
expect "--new: memcheck of whole updates with the new choices" \
    summary_has new '^PASS +memcheck test_update_fast_cuda \(min\)'
expect "--new: racecheck of the cluster engine" summary_has new '^PASS +racecheck test_cmlp_cuda \(min\)'
expect "--new: none of the first call's tests" \
    bash -c "! grep -qE 'test_(mlp|stages|update)_cuda' '$T/out_new/summary.txt'"
expect "--new: nothing left for --new-bench" bash -c "! grep -q '^LATER' '$T/out_new/summary.txt'"
expect "--new: nothing but our binaries sees the carried libraries" [ ! -e "$T/leaks" ]

# 10. a device older than the new tests need: SKIPPED with the reason, not FAIL; nothing passed
LAST=oldcc
FAKE_DEVICE=1 FAKE_test_cmlp_cuda=oldcc FAKE_test_stages_fast_cuda=oldcc \
    FAKE_test_update_fast_cuda=oldcc FAKE_test_overlap_cuda=oldcc run_check oldcc --new
expect "older device: exit 0, overall SKIPPED" \
    bash -c "[ $RC = 0 ] && grep -q '^overall: SKIPPED' '$T/out_oldcc/summary.txt'"
expect "older device: the steps name the capability" \
    summary_has oldcc '^SKIPPED +test_cmlp_cuda all sizes .*compute capability 9.0'
expect "older device: the sanitizer runs of those tests are SKIPPED too" \
    summary_has oldcc '^SKIPPED +memcheck test_update_fast_cuda \(min\) .*compute capability'
LAST=oldcc1
FAKE_DEVICE=1 FAKE_test_overlap_cuda=oldcc run_check oldcc1 --new
expect "older device, one test: that step SKIPPED, the call passes" \
    bash -c "grep -qE '^SKIPPED +test_overlap_cuda' '$T/out_oldcc1/summary.txt' && grep -q '^overall: PASS' '$T/out_oldcc1/summary.txt'"

# 11. --new-bench: its sanitizer runs (racecheck filtered to the new kernels), the new labs, the
#     update benchmarks with every new choice (also at B = 4096)
LAST=newbench
rm -f "$T/sanitizer_args"
FAKE_DEVICE=1 run_check newbench --new-bench
expect "--new-bench: exit 0, overall PASS" \
    bash -c "[ $RC = 0 ] && grep -q '^overall: PASS' '$T/out_newbench/summary.txt'"
expect "--new-bench: memcheck and racecheck of the fast stages" \
    bash -c "[ \$(grep -cE '^PASS +(memcheck|racecheck) test_stages_fast_cuda' '$T/out_newbench/summary.txt') = 2 ]"
expect "--new-bench: racecheck filtered to the new kernels" grep -q "kns=cm_pass|" "$T/sanitizer_args"
expect "--new-bench: the new labs" \
    grep -q "bench kernels --quick --lab small_rows,backward,qscore,entropy" "$T/out_newbench/bench.log"
expect "--new-bench: update benchmarks with every new choice" \
    bash -c "[ \$(grep -c 'bench update .*backend.small_rows=cluster .*backend.merge_launches=true' '$T/out_newbench/bench.log') = 2 ]"
expect "--new-bench: the large-batch config" grep -q "configs/halfcheetah_b4096.yaml" "$T/out_newbench/bench.log"
expect "--new-bench: caps within 300 s" \
    bash -c "grep -oE '= [0-9]+ s of 300 s' '$T/out_newbench/summary.txt' | awk '{exit !(\$2 <= 300)}'"
expect "--new-bench: at most 8 files, at most two folders deep" \
    bash -c "[ \$(find '$T/out_newbench' -type f | wc -l) -le 8 ] && [ -z \"\$(find '$T/out_newbench' -mindepth 3)\" ]"

# 12. many new tests: --new keeps to 300 s and --new-bench runs the rest first
for k in 1 2 3 4; do
    fake_test "test_newer${k}_cuda"
done
write_manifest test_mlp_cuda "${NEW_TESTS[@]}" test_newer1_cuda:gpu_new test_newer2_cuda:gpu_new \
    test_newer3_cuda:gpu_new test_newer4_cuda:gpu_new
LAST=newbudget
FAKE_DEVICE=1 run_check newbudget --new
expect "--new budget: steps for --new-bench" summary_has newbudget '^LATER .*runs in the new-bench call'
expect "--new budget: planned caps within 300 s" \
    bash -c "grep -oE '= [0-9]+ s of 300 s' '$T/out_newbudget/summary.txt' | awk '{exit !(\$2 <= 300)}'"
LAST=newleft
FAKE_DEVICE=1 run_check newleft --new-bench
expect "--new-bench: every leftover of --new passes" [ "$(missing_leftovers newbudget newleft)" = 0 ]
expect "--new-bench: the leftovers right after its probes" \
    bash -c "grep -vE '^(==|overall)' '$T/out_newleft/summary.txt' | sed -n 3p \
             | grep -qE '^PASS +($(grep '^LATER' "$T/out_newbudget/summary.txt" | head -1 | cut -c13-56 | sed 's/ *$//; s/[()]/\\\\&/g'))'"

# 13. bad usage
LAST=usage
run_check usage --bogus
expect "bad argument: exit 2" [ "$RC" = 2 ]
LAST=usage2
run_check usage2 --new --second
expect "two calls at once: exit 2" [ "$RC" = 2 ]

echo "$FAILS failure(s)"
[ "$FAILS" = 0 ]
