#!/usr/bin/env bash
# cli_disk_full.sh: training and a rollout on a really full file system (a small tmpfs): exit 1
# with one stderr line naming the file and "No space left on device", never a crash; the newest
# checkpoint left is valid, no temporary file is left, metrics.h5 stays readable; a rollout that
# does not fit leaves nothing. Mounting needs privileges: without them the test is SKIPPED (77);
# cli_reliability.sh covers the same paths with a file size limit, which needs none.
# Needs $FLAME_BIN and $FLAME_WRITE_TEST_BIN (test_write_errors --check-metrics).
set -u
F=${FLAME_BIN:?FLAME_BIN is not set}
WR=${FLAME_WRITE_TEST_BIN:?FLAME_WRITE_TEST_BIN is not set}
T=$(mktemp -d /tmp/flame_cli_disk_full_XXXXXX)
mnt=$T/mnt
mkdir "$mnt"
if ! mount -t tmpfs -o size=3m flame_test "$mnt" 2> /dev/null; then
    rm -rf "$T"
    echo "SKIPPED: cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN)"
    exit 77
fi
trap 'umount "$mnt" 2> /dev/null; rm -rf "$T"' EXIT
cd "$T"
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# checkpoints of ~1.5-2 MB each (Humanoid's replay buffer), kept: the third cannot fit in 3 MB
cat > humanoid.yaml << 'Y'
env: {id: Humanoid-v5, num_envs: 2, threads: 1}
run: {start_steps: 100, total_steps: 2000, eval_every: 10000, eval_episodes: 0, ckpt_every: 100,
      metrics_every: 50, flush_every: 50, keep_ckpts: 0}
update: {batch_size: 16, replay_size: 2000}
net: {hidden: 32, layers: 2}
flow: {sample_k: 4, num_particles: 4}
Y
"$F" train humanoid.yaml --out "$mnt" --name h --quiet > out.txt 2> err.txt
rc=$?
if [ $rc -ne 1 ]; then
    fail "training on a full disk: exit $rc, expected 1: $(cat err.txt)"
elif [ "$(wc -l < err.txt)" -ne 1 ] || ! grep -Eq "$mnt/h/.*(No space left on device)" err.txt; then
    fail "training on a full disk: stderr: $(cat err.txt)"
else
    echo "ok   training on a full disk (1) $(cat err.txt)"
fi
left=$(find "$mnt" -name '*.tmp*')
[ -z "$left" ] || fail "temporary files left: $left"
newest=$(ls "$mnt/h/ckpt" | sed -n 's/^step_\([0-9]*\)\.h5$/\1/p' | sort -n | tail -1)
if [ -n "$newest" ]; then
    "$F" eval --ckpt "$mnt/h/ckpt/step_$newest.h5" --episodes 1 > /dev/null 2> err.txt &&
        echo "ok   the newest checkpoint (step_$newest) is valid" ||
        fail "the newest checkpoint step_$newest is not valid: $(cat err.txt)"
else
    fail "no checkpoint was written before the disk filled: $(ls -R "$mnt")"
fi
"$WR" --check-metrics "$mnt/h/metrics.h5" > rows.txt &&
    echo "ok   metrics.h5 readable (rows: $(cat rows.txt))" || fail "metrics.h5 is not readable"

# a rollout on the full disk leaves nothing
"$F" rollout --policy random --env Humanoid-v5 --episodes 50 --threads 1 --out "$mnt/ds/r.hdf5" \
    > out.txt 2> err.txt
rc=$?
[ $rc -eq 1 ] && grep -q "cannot write the dataset (No space left on device)" err.txt &&
    echo "ok   rollout on a full disk (1) $(cat err.txt)" ||
    fail "rollout on a full disk: exit $rc: $(cat err.txt)"
[ ! -e "$mnt/ds" ] || fail "a failed rollout left $(ls -AR "$mnt/ds")"

if [ $fails -ne 0 ]; then
    echo "$fails failure(s)"
    exit 1
fi
echo "all full-disk checks passed"
