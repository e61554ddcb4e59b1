#!/usr/bin/env bash
# cli_failed_start.sh: a `flame train` that cannot start leaves nothing behind, so the same command
# runs once the cause is fixed, without --force:
#   - a bad env.model_xml (exit 2), into a new directory and into nested missing directories;
#   - a replay buffer larger than the memory available (exit 1, checked before it is allocated):
#     the message names update.replay_size, the bytes needed and the bytes available; an
#     allocation that fails at the start (exit 1) names the keys that size the buffers;
#   - a failure after the run directory was made (config.yaml cannot be written): what the start
#     made goes, what was there stays.
set -u
F=${FLAME_BIN:?FLAME_BIN is not set}
# shellcheck source=tests/cli_common.sh
. "$(dirname "${BASH_SOURCE[0]}")/cli_common.sh"
cli_workdir flame_cli_failed_start

# nothing NAME PATH: PATH does not exist
nothing() { [ ! -e "$2" ] || fail "$1: left behind: $(find "$2" | head -20)"; }

cat > tiny.yaml << 'Y'
env: {id: Hopper-v5, num_envs: 2, threads: 1}
run: {start_steps: 40, total_steps: 20, eval_every: 50, eval_episodes: 1, ckpt_every: 50,
      metrics_every: 20, flush_every: 20}
update: {batch_size: 16, replay_size: 1000}
net: {hidden: 16, layers: 2}
flow: {sample_k: 4, num_particles: 4}
Y
mkdir runs

# a bad model file: exit 2, no directory; then the same run starts
expect_rc "bad env.model_xml" 2 "cannot read model file" \
    "$F" train tiny.yaml --out runs --name a --set env.model_xml=missing.xml --quiet
nothing "bad env.model_xml" runs/a
expect_rc "the same run afterwards" 0 "" "$F" train tiny.yaml --out runs --name a --quiet
[ -f runs/a/metrics.h5 ] || fail "the run after the failed start has no metrics.h5"
[ ! -e runs/a/train.lock ] || fail "a finished run left its lock file"

# the same under missing parent directories: none of them stays
expect_rc "bad env.model_xml, nested --out" 2 "cannot read model file" \
    "$F" train tiny.yaml --out deep/er/runs --name a --set env.model_xml=missing.xml --quiet
nothing "bad env.model_xml, nested --out" deep

# a replay buffer that cannot fit: refused before it is allocated, naming the keys and bytes
# (10^10 Hopper transitions of 105 bytes, twice with the checkpoint copy: 2.1 TB)
expect_rc "replay larger than the memory" 1 \
    "out of memory: the replay buffer needs 2100000000000 bytes .*update\.replay_size = 10000000000 .* bytes \(.* GiB\) are available; lower update\.replay_size \(at most [0-9]+ fit\) or set run\.save_replay=false" \
    "$F" train tiny.yaml --out runs --name big --set update.replay_size=10000000000 --quiet
nothing "replay larger than the memory" runs/big
expect_rc "without the checkpoint copy: half the bytes" 1 \
    "needs 1050000000000 bytes .*; lower update\.replay_size \(at most [0-9]+ fit\)$" \
    "$F" train tiny.yaml --out runs --name big --set update.replay_size=10000000000 \
    --set run.save_replay=false --quiet
nothing "without the checkpoint copy" runs/big
expect_rc "the same run with a replay that fits" 0 "" "$F" train tiny.yaml --out runs --name big --quiet

# an allocation that fails at the start (an address-space limit below the batch workspaces): exit
# 1 naming the keys that size them, nothing left (AddressSanitizer cannot run under such a limit)
if ldd "$F" 2> /dev/null | grep -q libasan; then
    echo "skip a failed allocation under ulimit -v: an AddressSanitizer build"
else
    expect_rc "a failed allocation" 1 \
        "out of memory: could not allocate [0-9]+ bytes; lower update\.replay_size, update\.batch_size, " \
        bash -c 'ulimit -v 1500000 && exec "$@"' limit "$F" train tiny.yaml --out runs --name oom \
        --set update.batch_size=1048576 --set run.start_steps=1048576 \
        --set update.replay_size=1048576 --quiet
    nothing "a failed allocation" runs/oom
fi

# a failure once the run directory is made (config.yaml.tmp is a directory): what the start made
# goes (ckpt/, the lock file), what was there stays; the run starts once the obstacle is gone
mkdir -p runs/c/config.yaml.tmp
echo mine > runs/c/notes.txt
expect_rc "config.yaml cannot be written" 2 "config.yaml" \
    "$F" train tiny.yaml --out runs --name c --quiet
left=$(cd runs/c && find . -mindepth 1 | sort | tr '\n' ' ')
[ "$left" = "./config.yaml.tmp ./notes.txt " ] || fail "after the failed start runs/c holds: $left"
rmdir runs/c/config.yaml.tmp
expect_rc "the same run afterwards" 0 "" "$F" train tiny.yaml --out runs --name c --quiet
[ "$(cat runs/c/notes.txt)" = mine ] || fail "a file of the user's in the run directory changed"

cli_done "failed-start checks"
