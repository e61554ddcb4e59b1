#!/usr/bin/env bash
# flame train / eval through the binary: a tiny run, its outputs, eval of its checkpoint; bad input
# (unwritable run directory, existing run without --force, --resume of a missing or corrupt
# checkpoint or with another env's config) -> exit 2 and nothing overwritten; SIGINT / SIGTERM ->
# checkpoint written, exit 130 / 143, and the run resumes to its end.
set -u
F=${FLAME_BIN:?FLAME_BIN is not set}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
cd "$T"
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
expect_rc() { # expect_rc NAME RC PATTERN cmd...
    local name=$1 want=$2 pat=$3; shift 3
    "$@" > out.txt 2> err.txt; local rc=$?
    [ $rc -eq $want ] || fail "$name: exit $rc, expected $want: $(cat err.txt)"
    [ -z "$pat" ] || grep -q -- "$pat" err.txt || fail "$name: stderr lacks '$pat': $(cat err.txt)"
    echo "ok   $name ($rc) $(head -c 300 err.txt)"
}
cat > tiny.yaml <<'Y'
env: {id: Hopper-v5, num_envs: 2, threads: 1}
run: {start_steps: 40, total_steps: 100, eval_every: 50, eval_episodes: 2, ckpt_every: 50,
      metrics_every: 20, flush_every: 20, log_every: 0.05}
update: {batch_size: 16, replay_size: 1000}
net: {hidden: 16, layers: 2}
flow: {sample_k: 4, num_particles: 4}
Y

# a run and its outputs
expect_rc "tiny run" 0 "" "$F" train tiny.yaml --out runs --name a
[ -f runs/a/metrics.h5 ] && [ -f runs/a/config.yaml ] && [ -f runs/a/ckpt/step_140.h5 ] || fail "outputs of the tiny run: $(ls -R runs)"
grep -q "step 140/140 elapsed .* train_return .* critic_loss .* eta 0:00:00$" out.txt || fail "progress lines: $(cat out.txt)"
for key in backend blas networks replay estimate; do
    grep -q "^  $key: " out.txt || fail "start block lacks '$key': $(cat out.txt)"
done
expect_rc "eval of the checkpoint" 0 "" "$F" eval --ckpt runs/a/ckpt/step_140.h5 --episodes 3
grep -q "return .* +- " out.txt || fail "eval prints mean +- std: $(cat out.txt)"
grep -q "^lengths:" out.txt || fail "eval prints lengths"
cp out.txt eval_plain.txt
expect_rc "eval --json" 0 "" "$F" eval --ckpt runs/a/ckpt/step_140.h5 --episodes 3 --json
# one JSON object, the same episodes as the plain output, statistics that agree with its arrays
python3 - out.txt eval_plain.txt <<'PY' || fail "eval --json: $(cat out.txt)"
import json, math, sys
text = open(sys.argv[1]).read()
assert text.count("\n") == 1 and text.endswith("\n"), "not one line"
d = json.loads(text)
plain = open(sys.argv[2]).read().split("\n")
rets = [float(x) for x in next(l for l in plain if l.startswith("returns:")).split()[1:]]
lens = [int(x) for x in next(l for l in plain if l.startswith("lengths:")).split()[1:]]
assert d["env"] == "Hopper-v5" and d["algo"] == "flame-m" and d["policy"] == "deterministic"
assert d["ckpt"] == "runs/a/ckpt/step_140.h5" and d["step"] == 140 and d["seed"] == 1
assert d["episodes"] == 3 and d["envs"] == 3 and d["unstable"] == 0
assert d["lengths"] == lens, (d["lengths"], lens)
assert [round(r, 2) for r in d["returns"]] == rets, (d["returns"], rets)
n, r = len(d["returns"]), d["returns"]
mean = sum(r) / n
assert math.isclose(d["return_mean"], mean, rel_tol=1e-12)
assert math.isclose(d["return_std"], math.sqrt(sum((x - mean) ** 2 for x in r) / n), rel_tol=1e-9)
assert d["return_min"] == min(r) and d["return_max"] == max(r)
assert math.isclose(d["length_mean"], sum(lens) / n, rel_tol=1e-12)
PY
expect_rc "eval with --envs and --threads" 0 "" "$F" eval --ckpt runs/a/ckpt/step_140.h5 --episodes 3 --envs 2 --threads 1
expect_rc "eval of a missing checkpoint" 2 "cannot open the checkpoint" "$F" eval --ckpt runs/a/ckpt/none.h5
expect_rc "eval with zero envs" 2 "--envs '0' is not valid" "$F" eval --ckpt runs/a/ckpt/step_140.h5 --envs 0
expect_rc "eval without a checkpoint" 2 "--ckpt FILE is required" "$F" eval --episodes 3

# an existing run is never overwritten without --force
cp runs/a/metrics.h5 keep.h5
expect_rc "existing run without --force" 2 "already holds a run" "$F" train tiny.yaml --out runs --name a
cmp -s keep.h5 runs/a/metrics.h5 || fail "existing metrics.h5 was modified"
expect_rc "existing run with --force" 0 "" "$F" train tiny.yaml --out runs --name a --force --quiet

# unwritable run directory
mkdir ro && touch ro/file
expect_rc "run directory under a file" 2 "cannot create directory" "$F" train tiny.yaml --out ro/file/sub --name x
expect_rc "run directory in /proc" 2 "cannot create directory" "$F" train tiny.yaml --out /proc/flame_runs --name x

# resume: missing, corrupt, other env
expect_rc "resume of a missing run" 2 "no checkpoint directory" "$F" train --resume runs/none
mkdir -p runs/bad/ckpt && echo garbage > runs/bad/ckpt/step_10.h5
expect_rc "resume of a corrupt checkpoint" 2 "not a readable HDF5 file" "$F" train --resume runs/bad
sed 's/Hopper-v5/Walker2d-v5/' tiny.yaml > walker.yaml
expect_rc "resume with another env's config" 2 "was trained as flame-m on Hopper-v5" "$F" train walker.yaml --resume runs/a
expect_rc "resume changing the network" 2 "cannot change a resumed run" "$F" train --resume runs/a --set net.hidden=32
ls runs/a/ckpt | grep -q step_140.h5 || fail "checkpoint of run a disappeared"

# backend availability
if "$F" info | grep -q "built without CUDA"; then
    expect_rc "cuda backend without CUDA" 2 "built without CUDA" "$F" train tiny.yaml --backend cuda --out runs --name c
elif "$F" info | grep -q "no CUDA device"; then
    expect_rc "cuda backend without a device" 2 "no CUDA device" "$F" train tiny.yaml --backend cuda --out runs --name c
fi

# signals: a long run interrupted, checkpointed, resumed to its end
for sig in INT TERM; do
    want=$([ $sig = INT ] && echo 130 || echo 143)
    "$F" train tiny.yaml --out runs --name sig$sig --set run.total_steps=100000 --quiet > sig.out 2>&1 &
    pid=$!
    for i in $(seq 1 300); do [ -f runs/sig$sig/metrics.h5 ] && break; sleep 0.1; done
    sleep 1
    kill -$sig $pid
    wait $pid; rc=$?
    [ $rc -eq $want ] || fail "SIG$sig: exit $rc, expected $want: $(cat sig.out)"
    ls runs/sig$sig/ckpt/step_*.h5 > /dev/null 2>&1 || fail "SIG$sig: no checkpoint written"
    last=$(ls runs/sig$sig/ckpt | sed 's/step_\([0-9]*\).h5/\1/' | sort -n | tail -1)
    echo "ok   SIG$sig -> exit $rc, checkpoint at step $last"
    expect_rc "resume after SIG$sig" 0 "" "$F" train --resume runs/sig$sig --set run.total_steps=$((last + 60)) --quiet
done

# flame configs: the source tree's configs from the build directory, an installed tree beside the
# binary, $FLAME_CONFIG_DIR and --dir; a config that does not load; a missing directory
SRC=${FLAME_SOURCE_DIR:?FLAME_SOURCE_DIR is not set}
expect_rc "configs of the source tree" 0 "" "$F" configs
grep -q "^configs in $SRC/configs (the source tree" out.txt || fail "configs: $(head -1 out.txt)"
for f in "$SRC"/configs/*.yaml; do
    name=$(basename "$f" .yaml)
    grep -q "^$name " out.txt || fail "configs does not list $name"
done
grep -Eq "^halfcheetah +HalfCheetah-v5 +flame-m +1000000 +30000 +5  3x256$" out.txt || fail "configs row of halfcheetah: $(grep '^halfcheetah ' out.txt)"
grep -Eq "^inverted_pendulum_small_sac +InvertedPendulum-v5 +sac +60000 +1000 +1  2x64$" out.txt || fail "configs row of inverted_pendulum_small_sac"
mkdir -p inst/bin inst/share/flame/configs
cp "$F" inst/bin/flame && cp tiny.yaml inst/share/flame/configs/
expect_rc "configs of an installed tree" 0 "" inst/bin/flame configs
grep -q "installed beside this binary" out.txt && grep -Eq "^tiny +Hopper-v5 +flame-m +100 +40 +2  2x16$" out.txt && [ $(grep -c "Hopper-v5" out.txt) -eq 1 ] || fail "installed configs: $(cat out.txt)"
mkdir -p mine && cp tiny.yaml mine/a.yaml && echo "net: {hidden: -3}" > mine/broken.yaml
FLAME_CONFIG_DIR=mine expect_rc "configs with a config that does not load" 1 "1 of the 2 configs in mine do not load" "$F" configs
grep -q "^broken .*does not load" out.txt && grep -q "^a  " out.txt || fail "configs of \$FLAME_CONFIG_DIR: $(cat out.txt)"
expect_rc "configs --dir" 0 "" "$F" configs --dir inst/share/flame/configs
grep -q "^tiny " out.txt || fail "configs --dir: $(cat out.txt)"
expect_rc "configs of a missing directory" 2 "'none' is not a directory" "$F" configs --dir none

if [ $fails -ne 0 ]; then echo "$fails failure(s)"; exit 1; fi
echo "all CLI train checks passed"
