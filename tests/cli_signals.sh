#!/usr/bin/env bash
# cli_signals.sh: SIGINT / SIGTERM in every phase of `flame train`, each made long by its config,
# with a real signal to the real process:
#   - the start (creating 1024 envs): exit 130/143 once the start step in progress ends, nothing
#     left behind, the same command then starts a fresh run;
#   - the warm-up, the updates (one loop iteration of 1024 updates), an evaluation (100000
#     episodes): exit 130/143 within STOP_S seconds of the signal, the checkpoint written, and the
#     run resumes (to its end where that is short, else until it is stopped again);
#   - a checkpoint write (the state of 256 Humanoid envs): that write completes, no second one
#     starts, the process exits right after it, and the run resumes to its end.
# STOP_S: the bound on the time from the signal to the exit (default 3 s: "about a second" plus
# the small final checkpoint, with room for a loaded machine; each phase lasts far longer).
set -u
F=${FLAME_BIN:?FLAME_BIN is not set}
STOP_S=${STOP_S:-3}
# shellcheck source=tests/cli_common.sh
. "$(dirname "${BASH_SOURCE[0]}")/cli_common.sh"
cli_workdir flame_cli_signals

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# start NAME ARGS...: flame train in the background ($P its pid)
start() {
    local name=$1
    shift
    "$F" train "$@" > "$name.out" 2> "$name.err" &
    P=$!
    pids+=("$P")
}

# stop_within NAME SIG WANT_RC SECONDS: sends SIG to $P; the exit status must be WANT_RC within
# SECONDS; sets ELAPSED_MS (signal to exit)
stop_within() {
    local name=$1 sig=$2 want=$3 secs=$4
    local t0
    t0=$(now_ms)
    kill -"$sig" "$P"
    if ! wait_for 120 eval '! kill -0 $P 2> /dev/null'; then
        kill -9 "$P"
        fail "$name: still running 120 s after SIG$sig"
    fi
    ELAPSED_MS=$(($(now_ms) - t0))
    wait "$P"
    local rc=$? before=$fails
    [ $rc -eq "$want" ] || fail "$name: exit $rc after SIG$sig, expected $want: $(cat "$name.err")"
    [ "$ELAPSED_MS" -le $((secs * 1000)) ] ||
        fail "$name: exit ${ELAPSED_MS} ms after SIG$sig, more than $secs s"
    [ $fails -ne $before ] || echo "ok   $name: SIG$sig -> exit $rc after $ELAPSED_MS ms"
}

latest() { ls "$1/ckpt" 2> /dev/null | sed -n 's/^step_\([0-9]*\)\.h5$/\1/p' | sort -n | tail -1; }

cat > hopper.yaml << 'Y'
env: {id: Hopper-v5, num_envs: 2, threads: 1}
run: {start_steps: 64, total_steps: 1000000, eval_every: 1000000, eval_episodes: 0,
      ckpt_every: 1000000, metrics_every: 20, flush_every: 20, keep_ckpts: 0}
update: {batch_size: 16, replay_size: 10000}
net: {hidden: 16, layers: 2}
flow: {sample_k: 4, num_particles: 4}
Y
humanoid=(--set env.id=Humanoid-v5 --set env.threads=2 --set net.hidden=16
    --set update.batch_size=16 --set flow.sample_k=4 --set flow.num_particles=4
    --set run.eval_episodes=0 --set update.replay_size=10000)

# --- the start: 1024 envs take seconds to create; the signal lands there
start start --out runs --name start "${humanoid[@]}" --set env.num_envs=1024 \
    --set run.start_steps=1000000
sleep 1
if [ -e runs/start/metrics.h5 ]; then
    fail "start: the run had started within 1 s; the phase is too short for this check"
fi
stop_within start TERM 143 60
[ ! -e runs/start ] || fail "start: a stopped start left $(find runs/start)"
grep -q "nothing was written" start.out || fail "start: no note that nothing was written: $(cat start.out)"
expect_rc "start: the same command afterwards" 0 "" "$F" train hopper.yaml --out runs --name start \
    --set run.total_steps=20 --quiet

# --- the warm-up (a billion warm-up steps)
start warm hopper.yaml --out runs --name warm --set run.start_steps=1000000000
wait_for 60 test -e runs/warm/metrics.h5 || fail "warm-up: the run did not start"
sleep 1
stop_within warm-up TERM 143 "$STOP_S"
step=$(latest runs/warm)
[ -n "$step" ] && [ "$step" -gt 0 ] || fail "warm-up: no checkpoint: $(ls runs/warm/ckpt)"
grep -q "stopped by SIGTERM at step $step; checkpoint written" warm.out ||
    fail "warm-up: stop message: $(cat warm.out)"
start warm2 --resume runs/warm
sleep 2
stop_within "warm-up, resumed" INT 130 "$STOP_S"
[ "$(latest runs/warm)" -gt "$step" ] || fail "warm-up: the resumed run made no progress"

# --- the updates: the loop iteration at the end of the warm-up holds 1024 updates of a 256-wide
# network (a minute on a CPU core); the resumed run continues them and is stopped again
upd=(--set run.start_steps=64 --set update.batch_size=64 --set net.hidden=256
    --set update.updates_per_iter=1024 --set flow.sample_k=16 --set flow.num_particles=16)
start upd hopper.yaml --out runs --name upd "${upd[@]}"
wait_for 60 test -e runs/upd/metrics.h5 || fail "updates: the run did not start"
sleep 2
stop_within updates INT 130 "$STOP_S"
[ "$(latest runs/upd)" = 64 ] || fail "updates: checkpoint at step $(latest runs/upd), expected 64"
inode=$(stat -c %i runs/upd/ckpt/step_64.h5 2> /dev/null)
start upd2 --resume runs/upd
sleep 2
stop_within "updates, resumed" TERM 143 "$STOP_S"
[ "$(latest runs/upd)" = 64 ] && [ "$(stat -c %i runs/upd/ckpt/step_64.h5)" != "$inode" ] ||
    fail "updates: the resumed run wrote no new checkpoint at step 64: $(ls -i runs/upd/ckpt)"

# --- an evaluation of 100000 episodes (minutes) right after the warm-up
start eval hopper.yaml --out runs --name eval --set run.eval_every=10 \
    --set run.eval_episodes=100000 --set env.eval_envs=2
wait_for 60 test -e runs/eval/metrics.h5 || fail "evaluation: the run did not start"
sleep 2
stop_within evaluation TERM 143 "$STOP_S"
step=$(latest runs/eval)
[ "$step" = 74 ] || fail "evaluation: checkpoint at step $step, expected 74 (the first evaluation)"
expect_rc "evaluation: resumed to the end" 0 "" "$F" train --resume runs/eval \
    --set run.eval_episodes=2 --set run.total_steps=40 --quiet
[ -e runs/eval/ckpt/step_104.h5 ] || fail "evaluation: no final checkpoint: $(ls runs/eval/ckpt)"

# --- a checkpoint write: the state of 256 Humanoid envs, written at every loop iteration
start ckpt --out runs --name ckpt "${humanoid[@]}" --set env.num_envs=256 \
    --set run.start_steps=256 --set run.ckpt_every=256 --set run.total_steps=1000000
tmp_up() { ls runs/ckpt/ckpt/*.tmp > /dev/null 2>&1; }
wait_for 120 tmp_up || fail "checkpoint: no checkpoint write began"
t0=$(now_ms)
kill -TERM "$P"
# follow the write: it must end, and no other may begin before the process exits
seen_end=0 second=0 t_end=0
while kill -0 "$P" 2> /dev/null && [ $(($(now_ms) - t0)) -lt 120000 ]; do
    if tmp_up; then
        [ $seen_end -eq 1 ] && second=1
    elif [ $seen_end -eq 0 ]; then
        seen_end=1 t_end=$(now_ms)
    fi
    sleep 0.01
done
t_exit=$(now_ms)
wait "$P"
rc=$?
[ $rc -eq 143 ] || fail "checkpoint: exit $rc after SIGTERM, expected 143: $(cat ckpt.err)"
[ $second -eq 0 ] || fail "checkpoint: a second checkpoint write began after the signal"
[ $seen_end -eq 1 ] && [ $((t_exit - t_end)) -le $((STOP_S * 1000)) ] ||
    fail "checkpoint: exit $((t_exit - t_end)) ms after the write ended"
echo "ok   checkpoint write: SIGTERM -> write ended after $((t_end - t0)) ms, exit $rc" \
    "$((t_exit - t_end)) ms later, no second write"
step=$(latest runs/ckpt)
[ "$step" = 512 ] || fail "checkpoint: newest checkpoint at step $step, expected 512"
expect_rc "checkpoint: resumed to the end" 0 "" "$F" train --resume runs/ckpt \
    --set run.total_steps=512 --quiet
[ -e runs/ckpt/ckpt/step_768.h5 ] || fail "checkpoint: no final checkpoint: $(ls runs/ckpt/ckpt)"

cli_done "signal checks"
