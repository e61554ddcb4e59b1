#!/usr/bin/env bash
# cli_run_lock.sh: two processes on one run, through the binary. While a run trains, it holds
# <run>/train.lock ("pid host"); a second writer (--resume, --force, a fresh run of the same
# directory) exits 2 naming the holder and changes nothing; the readers (eval, rollout,
# export-replay, render where OpenGL exists) work on the live run. A lock left by a killed
# process is taken over (and named); a run that ends removes its lock file.
set -u
F=${FLAME_BIN:?FLAME_BIN is not set}
# shellcheck source=tests/cli_common.sh
. "$(dirname "${BASH_SOURCE[0]}")/cli_common.sh"
cli_workdir flame_cli_run_lock

has_ckpt() { ls runs/a/ckpt/step_*.h5 > /dev/null 2>&1; }
latest() { ls runs/a/ckpt | sed -n 's/^step_\([0-9]*\)\.h5$/\1/p' | sort -n | tail -1; }

cat > tiny.yaml << 'Y'
env: {id: Hopper-v5, num_envs: 2, threads: 1}
run: {start_steps: 40, total_steps: 100000000, eval_every: 200, eval_episodes: 1, ckpt_every: 100,
      metrics_every: 20, flush_every: 20, keep_ckpts: 0}
update: {batch_size: 16, replay_size: 1000}
net: {hidden: 16, layers: 2}
flow: {sample_k: 4, num_particles: 4}
Y
host=$(uname -n)

# the first process: a long run
"$F" train tiny.yaml --out runs --name a > a.out 2> a.err &
A=$!
pids+=("$A")
wait_for 120 has_ckpt || {
    fail "no checkpoint of the live run within 120 s: $(cat a.err)"
    cli_done "run lock checks"
}
[ -f runs/a/train.lock ] || fail "no runs/a/train.lock while the run trains: $(ls runs/a)"
grep -q "^$A $host\$" runs/a/train.lock 2> /dev/null ||
    fail "train.lock does not name '$A $host': $(cat runs/a/train.lock 2> /dev/null)"

# second writers: exit 2 at once, naming the holder; the live run's files stay
held="run directory runs/a is in use by process $A on host $host"
before=$(cd runs/a/ckpt && for c in step_*.h5; do echo "$c"; done)
expect_rc "--resume of a live run" 2 "$held" timeout 60 "$F" train --resume runs/a
expect_rc "--force over a live run" 2 "$held" timeout 60 "$F" train tiny.yaml --out runs --name a --force
expect_rc "fresh run into a live run's directory" 2 "$held" \
    timeout 60 "$F" train tiny.yaml --out runs --name a
expect_rc "--resume of a live run with --set" 2 "$held" \
    timeout 60 "$F" train --resume runs/a --set run.total_steps=1000
for c in $before; do
    [ -f "runs/a/ckpt/$c" ] || fail "checkpoint $c of the live run disappeared"
done
[ -f runs/a/metrics.h5 ] && [ -f runs/a/config.yaml ] || fail "outputs of the live run: $(ls runs/a)"
kill -0 "$A" 2> /dev/null || fail "the live run ended: $(cat a.err)"

# readers keep working on the live run
ck=runs/a/ckpt/step_$(latest).h5
expect_rc "eval of a live run's checkpoint" 0 "" "$F" eval --ckpt "$ck" --episodes 2 --envs 2
expect_rc "rollout of a live run's checkpoint" 0 "" \
    "$F" rollout --ckpt "$ck" --episodes 2 --out data/a.hdf5
expect_rc "export-replay of a live run" 0 "" "$F" export-replay --run runs/a --out data/replay.hdf5
"$F" render --ckpt "$ck" --out frames --width 32 --height 24 > out.txt 2> err.txt
rc=$?
if grep -q "no OpenGL" err.txt; then
    echo "skip render of a live run's checkpoint: no OpenGL library"
elif [ $rc -ne 0 ] || ! ls frames/*.png > /dev/null 2>&1; then
    fail "render of a live run's checkpoint: exit $rc: $(cat err.txt)"
else
    echo "ok   render of a live run's checkpoint ($rc)"
fi
kill -0 "$A" 2> /dev/null || fail "the live run ended while read: $(cat a.err)"

# the holder is killed: its lock file stays, naming it; the next writer takes it over
{
    kill -9 "$A"
    wait "$A"
} 2> /dev/null
grep -q "^$A " runs/a/train.lock 2> /dev/null || fail "the killed run's lock file is gone"
step=$(latest)
expect_rc "--resume after the holder was killed" 0 "" \
    timeout 120 "$F" train --resume runs/a --set run.total_steps=$((step + 60))
grep -q "process $A on host $host.*no longer runs" out.txt ||
    fail "the takeover of the killed run's lock is not reported: $(cat out.txt)"
[ ! -e runs/a/train.lock ] || fail "the lock file stays after the run ended"
[ -f "runs/a/ckpt/step_$((step + 100)).h5" ] ||
    fail "the resumed run did not reach step $((step + 100)): $(ls runs/a/ckpt | tail -3)"

# a run that ended leaves no lock: the next writer starts at once and reports no takeover
expect_rc "--resume of an ended run" 0 "" \
    timeout 120 "$F" train --resume runs/a --set run.total_steps=$((step + 120))
grep -q "no longer runs" out.txt && fail "a takeover reported after a clean end: $(cat out.txt)"

cli_done "run lock checks"
