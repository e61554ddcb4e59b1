#!/usr/bin/env bash
# cli_dataset_python.sh: the datasets as Python readers see them. tools/check_datasets.py (h5py,
# and minari when installed) must accept every kind of dataset flame writes and reject damaged
# copies; tools/plot_metrics.py must draw runs that follow the metrics.h5 schema, including runs
# with missing groups. Skips (77) without python3 + h5py + numpy.
set -u
: "${FLAME_BIN:?FLAME_BIN must point to the flame binary}"
: "${FLAME_DATASET_TEST_BIN:?FLAME_DATASET_TEST_BIN must point to test_dataset}"
src=${FLAME_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
if ! python3 -c "import h5py, numpy" 2> /dev/null; then
    echo "python3 with h5py and numpy not available: skipped"
    exit 77
fi
work=$(mktemp -d /tmp/flame_py_dataset_XXXXXX)
trap 'rm -rf "$work"' EXIT
failures=0
passed=0
check() { # check NAME EXPECTED_STATUS CMD...
    local name=$1 want=$2
    shift 2
    "$@" > "$work/log" 2>&1
    local rc=$?
    if [ "$rc" -eq "$want" ]; then
        passed=$((passed + 1))
        echo "ok   $name"
    else
        failures=$((failures + 1))
        echo "FAIL $name: exit $rc, expected $want" >&2
        cat "$work/log" >&2
    fi
}
CHECK=(python3 "$src/tools/check_datasets.py")

# datasets of every kind
"$FLAME_DATASET_TEST_BIN" --make-ckpt "$work/reacher.h5" Reacher-v5 flame-m || exit 1
"$FLAME_DATASET_TEST_BIN" --make-ckpt "$work/walker.h5" Walker2d-v5 sac 32 50 || exit 1
run() { "$FLAME_BIN" "$@" > "$work/log" 2>&1 || { cat "$work/log" >&2; exit 1; }; }
run rollout --policy random --env Hopper-v5 --episodes 6 --envs 3 --out "$work/hopper_random.hdf5"
run rollout --ckpt "$work/reacher.h5" --episodes 3 --out "$work/reacher.hdf5"
run rollout --ckpt "$work/reacher.h5" --episodes 3 --stochastic --format minari \
    --out "$work/reacher-v0"
run rollout --ckpt "$work/walker.h5" --episodes 4 --format minari --dataset-id flame/walker/sac-v1 \
    --author "FLAME tests" --author-email tests@example.org \
    --code-permalink https://example.org/flame/tree/v0.1 --out "$work/walker"
MINARI_DATASETS_PATH="$work/elsewhere" run rollout --policy random --env Ant-v5 --episodes 2 \
    --format minari --out "$work/ant-v3"
run export-replay --ckpt "$work/walker.h5" --out "$work/walker_replay.hdf5"

all=(hopper_random.hdf5 reacher.hdf5 walker_replay.hdf5 reacher-v0 walker ant-v3)
check "check_datasets.py accepts ${all[*]}" 0 "${CHECK[@]}" "${all[@]/#/$work/}"
grep -q "minari 0.5" "$work/log" && echo "     (loaded with the minari package)"
check "check_datasets.py --no-minari accepts the Minari directories" 0 "${CHECK[@]}" --no-minari \
    "$work/reacher-v0" "$work/walker" "$work/ant-v3"

# damaged copies must be rejected: the checker can fail
python3 - "$work" << 'EOF' || exit 1
import json, shutil, sys, h5py, numpy as np
w = sys.argv[1]
shutil.copy(f"{w}/hopper_random.hdf5", f"{w}/int_flags.hdf5")
with h5py.File(f"{w}/int_flags.hdf5", "a") as f:  # terminals stored as int8, not the bool enum
    t = f["terminals"][:].astype(np.int8)
    del f["terminals"]
    f.create_dataset("terminals", data=t)
shutil.copy(f"{w}/hopper_random.hdf5", f"{w}/both_flags.hdf5")
with h5py.File(f"{w}/both_flags.hdf5", "a") as f:  # a row that is terminal and timeout
    i = int(np.flatnonzero(f["terminals"][:])[0])
    f["timeouts"][i] = True
shutil.copytree(f"{w}/walker", f"{w}/walker_bad_steps")
with open(f"{w}/walker_bad_steps/data/metadata.json") as fp:
    m = json.load(fp)
m["total_steps"] += 1
with open(f"{w}/walker_bad_steps/data/metadata.json", "w") as fp:
    json.dump(m, fp)
shutil.copytree(f"{w}/walker", f"{w}/walker_bad_link")
with open(f"{w}/walker_bad_link/data/metadata.json") as fp:
    m = json.load(fp)
m["code_permalink"] = "flame 0.1.0 (commit abc)"  # shown as a link by dataset pages
with open(f"{w}/walker_bad_link/data/metadata.json", "w") as fp:
    json.dump(m, fp)
shutil.copytree(f"{w}/walker", f"{w}/walker_short_obs")
with h5py.File(f"{w}/walker_short_obs/data/main_data.hdf5", "a") as f:  # T observations, not T+1
    o = f["episode_1/observations"][:-1]
    del f["episode_1/observations"]
    f.create_dataset("episode_1/observations", data=o, maxshape=(None, o.shape[1]))
EOF
check "check_datasets.py rejects int8 terminals" 1 "${CHECK[@]}" "$work/int_flags.hdf5"
check "check_datasets.py rejects terminal+timeout rows" 1 "${CHECK[@]}" "$work/both_flags.hdf5"
check "check_datasets.py rejects a wrong total_steps" 1 "${CHECK[@]}" "$work/walker_bad_steps"
check "check_datasets.py rejects a code_permalink that is no link" 1 "${CHECK[@]}" --no-minari \
    "$work/walker_bad_link"
check "check_datasets.py rejects T observation rows" 1 "${CHECK[@]}" --no-minari \
    "$work/walker_short_obs"

# the default ids come from the env and the policy, never from the path or the environment
for d in "reacher-v0:flame/reacher-v5/flame-m-stochastic-v0" "ant-v3:flame/ant-v5/random-v0" \
    "walker:flame/walker/sac-v1"; do
    check "${d%%:*} has the dataset id ${d#*:}" 0 grep -q "\"dataset_id\": \"${d#*:}\"" \
        "$work/${d%%:*}/data/metadata.json"
done
check "no code_permalink without --code-permalink" 1 grep -q code_permalink \
    "$work/ant-v3/data/metadata.json"
check "the given code_permalink is kept" 0 grep -q \
    '"code_permalink": "https://example.org/flame/tree/v0.1"' "$work/walker/data/metadata.json"

# the Minari id and where minari.load_dataset finds the dataset
if python3 -c "import minari" 2> /dev/null; then
    mkdir -p "$work/minari_root/flame/walker" "$work/minari_root/flame/reacher-v5"
    mv "$work/walker" "$work/minari_root/flame/walker/sac-v1"
    cp -r "$work/reacher-v0" "$work/minari_root/flame/reacher-v5/flame-m-stochastic-v0"
    check "minari.load_dataset finds the default id flame/reacher-v5/flame-m-stochastic-v0" 0 \
        env MINARI_DATASETS_PATH="$work/minari_root" python3 -c "
import minari
ds = minari.load_dataset('flame/reacher-v5/flame-m-stochastic-v0')
assert ds.total_episodes == 3, ds.total_episodes
assert ds.spec.env_spec.id == 'Reacher-v5'
assert 'flame/reacher-v5/flame-m-stochastic-v0' in minari.list_local_datasets()
"
    check "minari.load_dataset finds flame/walker/sac-v1" 0 env MINARI_DATASETS_PATH="$work/minari_root" \
        python3 -c "
import minari
ds = minari.load_dataset('flame/walker/sac-v1')
assert ds.total_episodes == 4, ds.total_episodes
assert ds.spec.env_spec.id == 'Walker2d-v5'
assert ds.storage.metadata['author'] == {'FLAME tests'}
eps = list(ds.iterate_episodes())
assert all(len(e.observations) == len(e) + 1 for e in eps)
"
else
    echo "minari not installed: load_dataset check skipped"
fi

# plot_metrics.py on synthetic runs that follow the metrics.h5 schema
if python3 -c "import matplotlib" 2> /dev/null; then
    python3 - "$work" << 'EOF' || exit 1
import sys, h5py, numpy as np
w = sys.argv[1]
def run(name, algo, seed, groups=("train", "episodes", "eval", "timing"), n_eval=8):
    import os
    os.makedirs(f"{w}/runs/{name}", exist_ok=True)
    rng = np.random.default_rng(seed)
    with h5py.File(f"{w}/runs/{name}/metrics.h5", "w") as f:
        f.attrs["config"] = (f"algo: {algo}\nrun:\n  seed: {seed}\n  eval_episodes: 10\n"
                             "env:\n  id: Hopper-v5\n  num_envs: 5\n")
        f.attrs["version"], f.attrs["commit"], f.attrs["backend"] = "0.1.0", "abc", "cpu"
        f.attrs["device"], f.attrs["env_id"], f.attrs["algo"] = "cpu", "Hopper-v5", algo
        def ext(g, key, data, dtype):
            g.create_dataset(key, data=np.asarray(data, dtype=dtype), maxshape=(None,), chunks=True)
        if "train" in groups:
            g = f.create_group("train")
            s = np.arange(30000, 30000 + 50 * 200, 200)
            ext(g, "step", s, np.int64)
            for k in ("critic_loss", "actor_loss", "entropy", "q_mean"):
                ext(g, k, rng.normal(size=len(s)), np.float64)
            ext(g, "alpha", np.exp(-np.linspace(0, 3, len(s))), np.float64)
        if "episodes" in groups:
            g = f.create_group("episodes")
            s = np.arange(1000, 40000, 1000)
            ext(g, "step", s, np.int64)
            ext(g, "return", s / 100 + rng.normal(size=len(s)), np.float64)
            ext(g, "length", np.full(len(s), 1000), np.int64)
            ext(g, "truncated", np.ones(len(s)), np.int8)
        if "eval" in groups:
            g = f.create_group("eval")
            s = np.arange(1, n_eval + 1) * 5000 + seed * 10  # seeds evaluate at slightly different steps
            ext(g, "step", s, np.int64)
            ext(g, "return_mean", s / 50 + rng.normal(size=len(s)), np.float64)
            ext(g, "return_std", np.full(len(s), 5.0), np.float64)
            for k in ("return_min", "return_max", "length_mean"):
                ext(g, k, s / 60, np.float64)
for seed in (1, 2, 3):
    run(f"hopper_flame_s{seed}", "flame-m", seed, n_eval=8 - seed)
run("hopper_sac_s1", "sac", 4)
run("hopper_sac_s2", "sac", 5, groups=("episodes",))  # killed early: no train, no eval
EOF
    PLOT=(python3 "$src/tools/plot_metrics.py")
    check "plot_metrics.py groups by config" 0 "${PLOT[@]}" "$work"/runs/* --out "$work/a.png"
    check "plot_metrics.py groups by regex" 0 "${PLOT[@]}" "$work"/runs/*/metrics.h5 \
        --group regex --regex '(.*)_s\d+$' --panels eval,q_mean,alpha,missing_key --smooth 5 \
        --out "$work/b.png"
    check "plot_metrics.py draws a run without /eval or /train" 0 "${PLOT[@]}" \
        "$work/runs/hopper_sac_s2" --group none --out "$work/c.png"
    check "plot_metrics.py fails when no panel has data" 1 "${PLOT[@]}" \
        "$work/runs/hopper_sac_s2" --panels alpha --out "$work/d.png"
    for png in a b c; do
        if python3 -c "import sys; d=open(sys.argv[1],'rb').read(); sys.exit(not (d[:8]==b'\x89PNG\r\n\x1a\n' and len(d) > 10000))" "$work/$png.png"; then
            passed=$((passed + 1)); echo "ok   $png.png is a PNG image"
        else
            failures=$((failures + 1)); echo "FAIL $png.png is not a PNG image" >&2
        fi
    done
    "${PLOT[@]}" "$work"/runs/* --out "$work/a.png" > "$work/plot.txt"
    grep -q "flame-m Hopper-v5: 3 run(s)" "$work/plot.txt" &&
        { passed=$((passed + 1)); echo "ok   three seeds share the label 'flame-m Hopper-v5'"; } ||
        { failures=$((failures + 1)); echo "FAIL grouping by config" >&2; }
    # the legend names each curve's band: across the 3 seeds; one run's evaluation episodes
    grep -q "^legend eval: flame-m Hopper-v5 (mean ± std over 3 seeds)$" "$work/plot.txt" &&
        grep -q "^legend eval: sac Hopper-v5 (1 of 2 runs, ± std over its 10 evaluation episodes)$" "$work/plot.txt" &&
        grep -q "^legend critic_loss: flame-m Hopper-v5 (mean ± std over 3 seeds)$" "$work/plot.txt" &&
        grep -q "^legend critic_loss: sac Hopper-v5 (1 of 2 runs, no band)$" "$work/plot.txt" &&
        { passed=$((passed + 1)); echo "ok   the legend says what each band is"; } ||
        { failures=$((failures + 1)); echo "FAIL legend: $(grep legend "$work/plot.txt")" >&2; }
else
    echo "matplotlib not installed: plot_metrics.py checks skipped"
fi

echo "$passed passed, $failures failed"
[ "$failures" -eq 0 ]
