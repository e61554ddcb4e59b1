#!/usr/bin/env bash
# cli_dataset_errors.sh: bad input to `flame rollout` and `flame export-replay` exits 2 with one
# line on stderr naming the problem, and leaves nothing behind (no output, no temporary file, an
# existing output untouched). Also: --force replaces a D4RL file and a Minari directory.
# Needs $FLAME_BIN and $FLAME_DATASET_TEST_BIN (test_dataset --make-ckpt writes checkpoints).
set -u
: "${FLAME_BIN:?FLAME_BIN must point to the flame binary}"
: "${FLAME_DATASET_TEST_BIN:?FLAME_DATASET_TEST_BIN must point to test_dataset}"

work=$(mktemp -d /tmp/flame_cli_dataset_XXXXXX)
trap 'rm -rf "$work"' EXIT
in="$work/in"   # inputs: checkpoints, run directories
out="$work/out" # outputs only: must hold exactly what each case expects
mkdir -p "$in" "$out"
failures=0
cases=0

fail() {
    echo "FAIL: $*" >&2
    failures=$((failures + 1))
}

"$FLAME_DATASET_TEST_BIN" --make-ckpt "$in/hopper.h5" Hopper-v5 flame-m || exit 1
"$FLAME_DATASET_TEST_BIN" --make-ckpt "$in/hopper_replay.h5" Hopper-v5 sac 16 20 || exit 1
head -c 3000 "$in/hopper.h5" > "$in/corrupt.h5"
echo "not hdf5 at all" > "$in/text.h5"
mkdir -p "$in/run_noreplay/ckpt" "$in/run_replay/ckpt" "$in/run_empty/ckpt"
cp "$in/hopper.h5" "$in/run_noreplay/ckpt/step_100.h5"
cp "$in/hopper_replay.h5" "$in/run_replay/ckpt/step_50.h5"
cp "$in/hopper.h5" "$in/run_replay/ckpt/step_100.h5" # newer, but without a replay buffer

# expect_error NAME PATTERN CMD...: exit status 2, exactly one stderr line matching PATTERN
# (case-insensitive extended regex), the output directory's listing unchanged
expect_error() {
    local name=$1 pattern=$2
    shift 2
    cases=$((cases + 1))
    local before after
    before=$(ls -A "$out" | sort; md5sum "$out"/* 2>/dev/null)
    "$@" > "$work/stdout" 2> "$work/stderr"
    local rc=$?
    after=$(ls -A "$out" | sort; md5sum "$out"/* 2>/dev/null)
    local lines
    lines=$(wc -l < "$work/stderr")
    if [ "$rc" -ne 2 ]; then
        fail "$name: exit status $rc, expected 2 (stderr: $(cat "$work/stderr"))"
    elif [ "$lines" -ne 1 ]; then
        fail "$name: $lines stderr lines, expected 1: $(cat "$work/stderr")"
    elif ! grep -Eiq -- "$pattern" "$work/stderr"; then
        fail "$name: stderr does not match /$pattern/: $(cat "$work/stderr")"
    elif [ "$before" != "$after" ]; then
        fail "$name: the output directory changed: before [$before] after [$after]"
    else
        echo "ok   $name: $(cat "$work/stderr")"
    fi
}

R=("$FLAME_BIN" rollout)
X=("$FLAME_BIN" export-replay)
ok_args=(--episodes 2 --threads 1)

# ------------------------------------------------------------------ rollout
expect_error "rollout: missing checkpoint" "cannot open the checkpoint.*no such file" \
    "${R[@]}" --ckpt "$in/nope.h5" "${ok_args[@]}" --out "$out/a.hdf5"
expect_error "rollout: truncated checkpoint" "not a readable HDF5 file" \
    "${R[@]}" --ckpt "$in/corrupt.h5" "${ok_args[@]}" --out "$out/a.hdf5"
expect_error "rollout: text file as checkpoint" "not a readable HDF5 file" \
    "${R[@]}" --ckpt "$in/text.h5" "${ok_args[@]}" --out "$out/a.hdf5"
expect_error "rollout: checkpoint of another env" "trained on Hopper-v5, not on --env Walker2d-v5" \
    "${R[@]}" --ckpt "$in/hopper.h5" --env Walker2d-v5 "${ok_args[@]}" --out "$out/a.hdf5"
expect_error "rollout: unknown format" "unknown dataset format 'rlds'.*d4rl or minari" \
    "${R[@]}" --ckpt "$in/hopper.h5" "${ok_args[@]}" --format rlds --out "$out/a.hdf5"
expect_error "rollout: unknown env id" "unknown env id 'Hopper-v9'.*flame envs" \
    "${R[@]}" --policy random --env Hopper-v9 "${ok_args[@]}" --out "$out/a.hdf5"
expect_error "rollout: zero episodes" "--episodes '0' is not valid: expected an integer in \\[1, " \
    "${R[@]}" --policy random --env Hopper-v5 --episodes 0 --out "$out/a.hdf5"
expect_error "rollout: negative episodes" "--episodes '-3' is not valid" \
    "${R[@]}" --policy random --env Hopper-v5 --episodes -3 --out "$out/a.hdf5"
expect_error "rollout: episodes not a number" "--episodes 'two' is not valid" \
    "${R[@]}" --policy random --env Hopper-v5 --episodes two --out "$out/a.hdf5"
expect_error "rollout: no episodes" "--episodes N is required" \
    "${R[@]}" --policy random --env Hopper-v5 --out "$out/a.hdf5"
expect_error "rollout: no output" "--out PATH is required" \
    "${R[@]}" --policy random --env Hopper-v5 --episodes 1
expect_error "rollout: random without env" "needs --env" \
    "${R[@]}" --policy random --episodes 1 --out "$out/a.hdf5"
expect_error "rollout: both policies" "exactly one of --ckpt" \
    "${R[@]}" --policy random --ckpt "$in/hopper.h5" --env Hopper-v5 --episodes 1 --out "$out/a.hdf5"
expect_error "rollout: unknown policy" "unknown --policy 'expert'" \
    "${R[@]}" --policy expert --env Hopper-v5 --episodes 1 --out "$out/a.hdf5"
expect_error "rollout: unknown option" "unknown option '--episode'" \
    "${R[@]}" --policy random --env Hopper-v5 --episode 1 --out "$out/a.hdf5"
touch "$out/plain_file"
expect_error "rollout: directory under a file" "cannot create directory .*plain_file .it exists and is not a directory" \
    "${R[@]}" --policy random --env Hopper-v5 --episodes 1 --out "$out/plain_file/no/a.hdf5"
expect_error "rollout: output under a file" "plain_file. is not a directory" \
    "${R[@]}" --policy random --env Hopper-v5 --episodes 1 --out "$out/plain_file/a.hdf5"
expect_error "rollout: unwritable location" "not writable|cannot create" \
    "${R[@]}" --policy random --env Hopper-v5 --episodes 1 --out /proc/flame_dataset.hdf5
expect_error "rollout: bad minari id" "dataset id 'bad id-v0' is malformed" \
    "${R[@]}" --policy random --env Hopper-v5 --episodes 1 --format minari \
    --dataset-id "bad id-v0" --out "$out/m"
expect_error "rollout: permalink that is no link" "--code-permalink 'flame 0.1' is not a link" \
    "${R[@]}" --policy random --env Hopper-v5 --episodes 1 --format minari \
    --code-permalink "flame 0.1" --out "$out/m"
expect_error "rollout: author e-mail that is no address" "--author-email 'jane' is not an e-mail" \
    "${R[@]}" --policy random --env Hopper-v5 --episodes 1 --format minari \
    --author-email jane --out "$out/m"
expect_error "rollout: unknown backend" "unknown --backend 'tpu'" \
    "${R[@]}" --ckpt "$in/hopper.h5" "${ok_args[@]}" --backend tpu --out "$out/a.hdf5"

# existing outputs: refused without --force, byte for byte untouched
echo "precious" > "$out/exists.hdf5"
expect_error "rollout: existing file" "already exists; pass --force" \
    "${R[@]}" --policy random --env Hopper-v5 --episodes 1 --out "$out/exists.hdf5"
mkdir -p "$out/notes"
echo "keep me" > "$out/notes/readme.txt"
expect_error "rollout: existing directory (minari)" "already exists; pass --force" \
    "${R[@]}" --policy random --env Hopper-v5 --episodes 1 --format minari --out "$out/notes"
expect_error "rollout: --force on a non-dataset directory" "not a Minari dataset directory" \
    "${R[@]}" --policy random --env Hopper-v5 --episodes 1 --format minari --force \
    --out "$out/notes"
[ "$(cat "$out/notes/readme.txt")" = "keep me" ] || fail "--force touched a non-dataset directory"
expect_error "rollout: --force d4rl onto a directory" "is a directory" \
    "${R[@]}" --policy random --env Hopper-v5 --episodes 1 --force --out "$out/notes"

# --force replaces: a D4RL file, and a Minari directory (which must not keep old files)
cases=$((cases + 1))
if "${R[@]}" --policy random --env Hopper-v5 --episodes 2 --force --out "$out/exists.hdf5" \
    > "$work/stdout" 2>&1 && [ "$(head -c 4 "$out/exists.hdf5" | tail -c 3)" = "HDF" ]; then
    echo "ok   rollout --force replaces a D4RL file"
else
    fail "rollout --force d4rl: $(cat "$work/stdout")"
fi
cases=$((cases + 1))
"${R[@]}" --policy random --env Hopper-v5 --episodes 3 --format minari --out "$out/ds-v0" \
    > /dev/null 2>&1 || fail "minari rollout failed"
"${R[@]}" --policy random --env Hopper-v5 --episodes 2 --format minari --force --out "$out/ds-v0" \
    > "$work/stdout" 2>&1 || fail "minari --force failed: $(cat "$work/stdout")"
if grep -q '"total_episodes": 2,' "$out/ds-v0/data/metadata.json" &&
    [ "$(ls -A "$out/ds-v0")" = "data" ] &&
    [ "$(ls -A "$out/ds-v0/data" | sort | tr '\n' ' ')" = "main_data.hdf5 metadata.json " ]; then
    echo "ok   rollout --force replaces a Minari dataset directory"
else
    fail "minari --force: $(ls -AR "$out/ds-v0")"
fi

# ------------------------------------------------------------------ export-replay
expect_error "export: missing checkpoint" "cannot open the checkpoint" \
    "${X[@]}" --ckpt "$in/nope.h5" --out "$out/r.hdf5"
expect_error "export: truncated checkpoint" "not a readable HDF5 file" \
    "${X[@]}" --ckpt "$in/corrupt.h5" --out "$out/r.hdf5"
expect_error "export: checkpoint without replay" "holds no replay buffer.*save_replay=true" \
    "${X[@]}" --ckpt "$in/hopper.h5" --out "$out/r.hdf5"
expect_error "export: run without replay" "none of the 1 checkpoints.*replay buffer" \
    "${X[@]}" --run "$in/run_noreplay" --out "$out/r.hdf5"
expect_error "export: run without checkpoints" "no step_<N>.h5 checkpoint" \
    "${X[@]}" --run "$in/run_empty" --out "$out/r.hdf5"
expect_error "export: not a run directory" "no checkpoint directory" \
    "${X[@]}" --run "$in/nope" --out "$out/r.hdf5"
expect_error "export: checkpoint of another env" "trained on Hopper-v5, not on --env Ant-v5" \
    "${X[@]}" --ckpt "$in/hopper_replay.h5" --env Ant-v5 --out "$out/r.hdf5"
expect_error "export: unknown env id" "unknown env id 'Ant-v1'" \
    "${X[@]}" --ckpt "$in/hopper_replay.h5" --env Ant-v1 --out "$out/r.hdf5"
expect_error "export: minari format" "--format minari is not available.*use --format d4rl" \
    "${X[@]}" --ckpt "$in/hopper_replay.h5" --format minari --out "$out/r.hdf5"
expect_error "export: unknown format" "unknown dataset format 'csv'" \
    "${X[@]}" --ckpt "$in/hopper_replay.h5" --format csv --out "$out/r.hdf5"
expect_error "export: existing file" "already exists; pass --force" \
    "${X[@]}" --ckpt "$in/hopper_replay.h5" --out "$out/exists.hdf5"
expect_error "export: directory under a file" "cannot create directory" \
    "${X[@]}" --ckpt "$in/hopper_replay.h5" --out "$out/plain_file/no/r.hdf5"
expect_error "export: unwritable location" "not writable|cannot create" \
    "${X[@]}" --ckpt "$in/hopper_replay.h5" --out /proc/flame_replay.hdf5
expect_error "export: both sources" "exactly one of --run" \
    "${X[@]}" --ckpt "$in/hopper_replay.h5" --run "$in/run_replay" --out "$out/r.hdf5"

# --run picks the newest checkpoint that holds a replay buffer (step_50, not step_100)
cases=$((cases + 1))
if "${X[@]}" --run "$in/run_replay" --out "$out/r.hdf5" > "$work/stdout" 2>&1 &&
    grep -q "16 transitions.*step_50.h5" "$work/stdout"; then
    echo "ok   export-replay --run picks the latest checkpoint with a replay buffer"
else
    fail "export --run: $(cat "$work/stdout")"
fi

# nothing temporary anywhere
leftovers=$(find "$out" -name '.*tmp*' | wc -l)
[ "$leftovers" -eq 0 ] || fail "temporary files left: $(find "$out" -name '.*tmp*')"

echo "$((cases - failures)) passed, $failures failed"
[ "$failures" -eq 0 ]
