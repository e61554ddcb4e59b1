#!/usr/bin/env bash
# cli_reliability.sh: what flame promises when its inputs and its machine are unkind, through the
# binary:
#   - write errors (a file size limit, `ulimit -f`: every write past it fails with EFBIG, as on a
#     full disk) in a checkpoint, a metrics.h5 flush, a rollout dataset (D4RL and Minari) and a
#     replay export: exit 1, one stderr line naming the file and the errno text, never a crash;
#     the previous checkpoint stays the newest valid one, no temporary file is left, metrics.h5
#     stays readable, a failed dataset leaves nothing (not even the directories made for it);
#   - a closed stdout pipe: `flame ... | head -1` exits 0 and the run finishes its outputs;
#   - paths: a run name is one path component; a path over PATH_MAX or a name over NAME_MAX is
#     refused up front naming the limit, in one line that ends with the fix; config and checkpoint
#     inputs must be regular files (a FIFO or a device is refused at once, never read); rollout
#     --out creates missing directories;
#   - numbers and strings: integers parse exactly, the documented maximum is enforced, junk after
#     a number of any length is rejected, a YAML string with a NUL in it is rejected;
#   - checkpoints are validated before use by eval, rollout, export-replay and --resume (exit 2).
# Needs $FLAME_BIN, $FLAME_CKPT_TEST_BIN (test_ckpt --corrupt) and $FLAME_WRITE_TEST_BIN
# (test_write_errors --check-metrics).
set -u
F=${FLAME_BIN:?FLAME_BIN is not set}
CK=${FLAME_CKPT_TEST_BIN:?FLAME_CKPT_TEST_BIN is not set}
WR=${FLAME_WRITE_TEST_BIN:?FLAME_WRITE_TEST_BIN is not set}
# shellcheck source=tests/cli_common.sh
. "$(dirname "${BASH_SOURCE[0]}")/cli_common.sh"
cli_workdir flame_cli_reliability

# no_tmp NAME DIR: no temporary file anywhere under DIR
no_tmp() {
    local left
    left=$(find "$2" -name '*.tmp*' 2> /dev/null)
    [ -z "$left" ] || fail "$1: temporary files left: $left"
}

cat > hopper.yaml << 'Y'
env: {id: Hopper-v5, num_envs: 2, threads: 1}
run: {start_steps: 40, total_steps: 100, eval_every: 50, eval_episodes: 1, ckpt_every: 50,
      metrics_every: 20, flush_every: 20, keep_ckpts: 0}
update: {batch_size: 16, replay_size: 1000}
net: {hidden: 16, layers: 2}
flow: {sample_k: 4, num_particles: 4}
Y
# Humanoid's 348-float observations make each checkpoint's replay buffer grow by ~280 KB per 100
# steps, so a file size limit between two checkpoints' sizes fails the second one
cat > humanoid.yaml << 'Y'
env: {id: Humanoid-v5, num_envs: 2, threads: 1}
run: {start_steps: 100, total_steps: 300, eval_every: 1000, eval_episodes: 0, ckpt_every: 100,
      metrics_every: 50, flush_every: 50, keep_ckpts: 0}
update: {batch_size: 16, replay_size: 1000}
net: {hidden: 32, layers: 2}
flow: {sample_k: 4, num_particles: 4}
Y

# ------------------------------------------------------------------ write errors (file size limit)
# with_limit BYTES cmd...: runs cmd with a file size limit of BYTES (rounded down to KiB)
with_limit() {
    local kib=$(($1 / 1024))
    shift
    (ulimit -f "$kib" && exec "$@")
}
size_of() { stat -c %s "$1"; }

# the sizes of a run without a limit, then the same run with a limit between two checkpoints
"$F" train humanoid.yaml --out sizes --name h --quiet > /dev/null 2>&1 || fail "humanoid sizing run"
s200=$(size_of sizes/h/ckpt/step_200.h5)
s300=$(size_of sizes/h/ckpt/step_300.h5)
limit=$(((s200 + s300) / 2))
expect_rc "checkpoint past the file size limit" 1 "ckpt/step_300\.h5: cannot write the checkpoint \(File too large\)" \
    with_limit $limit "$F" train humanoid.yaml --out lim --name h --quiet
[ -f lim/h/ckpt/step_200.h5 ] || fail "the previous checkpoint is gone: $(ls lim/h/ckpt)"
[ ! -e lim/h/ckpt/step_300.h5 ] || fail "a failed checkpoint was kept"
newest=$(ls lim/h/ckpt | sed 's/step_\([0-9]*\).h5/\1/' | sort -n | tail -1)
[ "$newest" = 200 ] || fail "the newest checkpoint is step_$newest, expected step_200"
expect_rc "the previous checkpoint is valid" 0 "" "$F" eval --ckpt lim/h/ckpt/step_200.h5 --episodes 1
no_tmp "checkpoint" lim
"$WR" --check-metrics lim/h/metrics.h5 > rows.txt || fail "metrics.h5 unreadable after the failure"
echo "ok   metrics.h5 readable (rows: $(cat rows.txt))"
expect_rc "resume after room was made" 0 "" "$F" train --resume lim/h --quiet

# a metrics flush past the limit: checkpoints of this run are smaller than its metrics file
"$F" train hopper.yaml --out sizes --name m --quiet > /dev/null 2>&1 || fail "hopper sizing run"
ck=$(size_of sizes/m/ckpt/step_140.h5)
me=$(size_of sizes/m/metrics.h5)
[ "$ck" -lt "$me" ] || fail "sizing: checkpoint $ck >= metrics $me"
expect_rc "metrics flush past the file size limit" 1 "metrics\.h5: cannot append the new rows \(File too large\); the file keeps every row" \
    with_limit $(((ck + me) / 2)) "$F" train hopper.yaml --out lim --name m --quiet
"$WR" --check-metrics lim/m/metrics.h5 > rows.txt || fail "metrics.h5 unreadable after a failed flush"
echo "ok   metrics.h5 readable after a failed flush (rows: $(cat rows.txt))"
no_tmp "metrics" lim

# datasets: nothing is left, not even the directories created for the output
mkdir ds
expect_rc "d4rl rollout past the file size limit" 1 "--out ds/new/sub/r\.hdf5: cannot write the dataset \(File too large\); nothing was written" \
    with_limit 65536 "$F" rollout --policy random --env Hopper-v5 --episodes 20 --threads 1 --out ds/new/sub/r.hdf5
expect_rc "minari rollout past the file size limit" 1 "--out ds/m-v0: cannot write the dataset \(File too large\)" \
    with_limit 65536 "$F" rollout --policy random --env Hopper-v5 --episodes 20 --threads 1 --format minari --out ds/m-v0
"$CK" --corrupt none replay_ckpt.h5 || fail "test_ckpt --corrupt none"
expect_rc "replay export past the file size limit" 1 "--out ds/x/replay\.hdf5: cannot write the dataset \(File too large\)" \
    with_limit 4096 "$F" export-replay --ckpt replay_ckpt.h5 --out ds/x/replay.hdf5
[ -z "$(ls -A ds)" ] || fail "failed datasets left: $(ls -AR ds)"

# ------------------------------------------------------------------ a closed stdout pipe
# `true` reads nothing and exits at once: every write of flame meets a closed pipe
"$F" train --help-config | true
rc=${PIPESTATUS[0]}
[ "$rc" -eq 0 ] && echo "ok   --help-config | true (0)" || fail "--help-config | true: exit $rc"
"$F" train hopper.yaml --out pipe --name p | head -1 > /dev/null
rc=${PIPESTATUS[0]}
[ "$rc" -eq 0 ] && echo "ok   train | head -1 (0)" || fail "train | head -1: exit $rc"
[ -f pipe/p/ckpt/step_140.h5 ] || fail "train | head -1 did not finish: $(ls -R pipe)"

# ------------------------------------------------------------------ paths
mkdir -p outs/inner
for n in .. ../../x a/b . "" /abs; do
    expect_rc "--name '$n'" 2 "not a single directory name" \
        "$F" train hopper.yaml --out outs/inner --name "$n" --quiet
done
expect_rc "run.name=../x" 2 "run.name '../x' is not a single directory name" \
    "$F" train hopper.yaml --out outs/inner --set run.name=../x --quiet
[ -z "$(ls -A outs/inner)" ] && [ "$(ls -A outs)" = inner ] || fail "a bad name wrote: $(ls -AR outs)"
[ ! -e x ] || fail "--name ../../x wrote outside --out"

# the documented 511 bytes per key, and the file system's limits
long_dir=$T/$(printf 'd%.0s' $(seq 1 200))/$(printf 'e%.0s' $(seq 1 200))
long_dir=${long_dir:0:511}
name511=$(printf 'n%.0s' $(seq 1 511))
expect_rc "name over NAME_MAX" 2 "the name 'nnn.*' is 511 bytes, over the limit of 255 bytes of one name in a path \(NAME_MAX\); use a shorter name$" \
    "$F" train hopper.yaml --out "$long_dir" --name "$name511" --quiet
[ ! -e "$T/ddd" ] && [ -z "$(ls -d "$T"/dd* 2> /dev/null)" ] || fail "a refused run created directories"
expect_rc "--name over 511 bytes" 2 "--name is 512 bytes; at most 511 bytes are allowed" \
    "$F" train hopper.yaml --name "${name511}n" --quiet
deep=$(printf 'abcdefghi/%.0s' $(seq 1 420))
expect_rc "--resume over PATH_MAX" 2 "--resume '.*' is 4200 bytes; with the 40 bytes flame appends to it, it exceeds the limit of 4095 bytes of a path \(PATH_MAX\)" \
    "$F" train --resume "$deep"

# inputs that are not regular files are refused at once (timeout: the old behaviour blocks)
mkfifo fifo.yaml
expect_rc "config FIFO" 2 "fifo\.yaml: is a FIFO \(named pipe\), not a regular file" \
    timeout 20 "$F" train fifo.yaml --print-config
expect_rc "config /dev/null" 2 "/dev/null: is a character device, not a regular file" \
    timeout 20 "$F" train /dev/null --print-config
mkfifo fifo.h5
expect_rc "eval of a FIFO" 2 "fifo\.h5: is a FIFO \(named pipe\), not a regular file" \
    timeout 20 "$F" eval --ckpt fifo.h5
expect_rc "rollout of /dev/zero" 2 "/dev/zero: is a character device" \
    timeout 20 "$F" rollout --ckpt /dev/zero --episodes 1 --out ds/z.hdf5
mkdir -p fiforun/ckpt && mkfifo fiforun/ckpt/step_10.h5
expect_rc "resume of a FIFO checkpoint" 2 "step_10\.h5: is a FIFO" \
    timeout 20 "$F" train --resume fiforun
expect_rc "export of a run with a FIFO checkpoint" 2 "none of the 1 checkpoints" \
    timeout 20 "$F" export-replay --run fiforun --out ds/f.hdf5
expect_rc "model_xml FIFO" 2 "fifo\.yaml: is a FIFO" \
    timeout 20 "$F" train hopper.yaml --set env.model_xml=fifo.yaml --out outs --name fx --quiet

# a dataset name that leaves no room for the temporary name beside it
long_out=ds/$(printf 'r%.0s' $(seq 1 245)).hdf5
expect_rc "rollout --out name near NAME_MAX" 2 "the name 'rrr.*' is 250 bytes; the temporary name flame writes first needs [0-9]+ more and one name is at most 255 bytes \\(NAME_MAX\\)" \
    "$F" rollout --policy random --env Hopper-v5 --episodes 1 --out "$long_out"

# rollout --out into missing directories creates them
expect_rc "rollout into a missing directory" 0 "" \
    "$F" rollout --policy random --env Hopper-v5 --episodes 2 --threads 1 --out made/a/b/r.hdf5
[ -f made/a/b/r.hdf5 ] || fail "rollout --out made/a/b/r.hdf5 wrote nothing"
rm -rf made ds/*

# ------------------------------------------------------------------ numbers and strings
"$F" train --set run.seed=1e18 --set run.total_steps=1_000_000_000_000 --print-config > cfg.txt 2>&1
grep -q "^  seed: 1000000000000000000$" cfg.txt && grep -q "^  total_steps: 1000000000000$" cfg.txt &&
    echo "ok   integers are exact" || fail "exact integers: $(grep -E 'seed|total_steps' cfg.txt)"
expect_rc "above the documented maximum" 2 "run.seed = '9200000000000000001' is not valid: expected an integer in \[0, 9200000000000000000\]" \
    "$F" train --set run.seed=9200000000000000001 --print-config
expect_rc "not an integer" 2 "run.total_steps = '1.5e0' is not valid" \
    "$F" train --set run.total_steps=1.5e0 --print-config
junk="0.5$(printf '0%.0s' $(seq 1 130))junk"
expect_rc "junk after 130 zeros" 2 "flow.base_std = '0.5000.*\(13[0-9] bytes\).*0junk' is not valid" \
    "$F" train --set "flow.base_std=$junk" --print-config
printf 'env:\n  model_xml: "models/a\\0.xml"\n' > nul.yaml
expect_rc "YAML string with a NUL" 2 "nul\.yaml:2: the value 'models/a' is followed by a NUL character" \
    "$F" train nul.yaml --print-config
expect_rc "eval --seed above the maximum" 2 "--seed '99999999999999999999' is not valid: expected an integer in \[0, 9200000000000000000\]" \
    "$F" eval --ckpt x.h5 --seed 99999999999999999999
expect_rc "eval --episodes junk" 2 "--episodes '3x' is not valid" \
    "$F" eval --ckpt x.h5 --episodes 3x

# ------------------------------------------------------------------ damaged checkpoints
for kind in nan_param neg_obs_dim config_other_env neg_updates replay_nan; do
    "$CK" --corrupt $kind bad_$kind.h5 || fail "test_ckpt --corrupt $kind"
done
expect_rc "eval of NaN parameters" 2 "policy/params holds NaN in tensor 'pol\.trunk\.w1' at \[1, 2\]" \
    "$F" eval --ckpt bad_nan_param.h5 --episodes 1
expect_rc "eval of a negative dimension" 2 "stored obs_dim = -3 is not a valid dimension" \
    "$F" eval --ckpt bad_neg_obs_dim.h5 --episodes 1
expect_rc "rollout of weights shaped for another env" 2 "shaped for obs_dim 11, act_dim 3 but the stored config's env Walker2d-v5" \
    "$F" rollout --ckpt bad_config_other_env.h5 --episodes 1 --out ds/o.hdf5
expect_rc "export of NaN replay contents" 2 "replay/next_obs holds NaN" \
    "$F" export-replay --ckpt bad_replay_nan.h5 --out ds/o.hdf5
mkdir -p badrun/ckpt && cp bad_neg_updates.h5 badrun/ckpt/step_300.h5
expect_rc "resume of negative counters" 2 "counter updates = -5 is out of range" \
    "$F" train --resume badrun
[ -z "$(ls -A ds)" ] || fail "refused checkpoints wrote: $(ls -A ds)"

cli_done "reliability checks"
