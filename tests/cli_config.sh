#!/usr/bin/env bash
# Bad input to the CLI and the config loader: exit status 2, one line on stderr naming the problem,
# nothing written. Also: --help everywhere, info, envs, --print-config round trip.
set -u
F=${FLAME_BIN:?FLAME_BIN is not set}
T=$(mktemp -d)
E=$(mktemp -d) # captured output lives outside $T, whose file list is compared
trap 'rm -rf "$T" "$E"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# expect_error NAME PATTERN cmd...: exit 2, exactly one stderr line matching PATTERN, no new files
expect_error() {
    local name=$1 pat=$2; shift 2
    local before after rc
    before=$(find "$T" | sort)
    "$@" > "$E/out" 2> "$E/err"; rc=$?
    after=$(find "$T" | sort)
    if [ $rc -ne 2 ]; then fail "$name: exit $rc, expected 2 ($(cat "$E/err"))"; fi
    if [ "$(wc -l < "$E/err")" -ne 1 ]; then fail "$name: stderr is not one line: $(cat "$E/err")"; fi
    if ! grep -q -- "$pat" "$E/err"; then fail "$name: stderr lacks '$pat': $(cat "$E/err")"; fi
    if [ "$before" != "$after" ]; then fail "$name: files were written"; fi
    echo "ok   $name: $(cat "$E/err")"
}

cat > "$T/good.yaml" <<'Y'
env:
  id: Hopper-v5
Y
printf 'update:\n  batch_size: "256\n  gamma: 0.9\n' > "$T/malformed.yaml"
printf 'update:\n  batch_size: [1, 2]\n' > "$T/list.yaml"
printf 'update:\n  batch_sise: 12\n' > "$T/unknown.yaml"
printf 'update:\n  batch_size: lots\n' > "$T/type.yaml"
printf 'update:\n  gamma: 1.5\n' > "$T/range.yaml"
printf 'bogus_section:\n  x: 1\n' > "$T/section.yaml"
printf 'update: 3\n' > "$T/shape.yaml"
printf 'algo: sac\nentropy:\n  estimator: exact\n' > "$T/cross.yaml"
mkdir "$T/adir.yaml"
cd "$T"

expect_error "missing config" "cannot open the config file" "$F" train "$T/nope.yaml" --out "$T/runs"
expect_error "unreadable config (a directory)" "adir.yaml: is a directory" "$F" train "$T/adir.yaml" --out "$T/runs"
expect_error "malformed YAML" "malformed.yaml: malformed YAML near line" "$F" train "$T/malformed.yaml" --out "$T/runs"
expect_error "list where a value belongs" "list.yaml:2: 'batch_size' must be a single value" "$F" train "$T/list.yaml" --out "$T/runs"
expect_error "unknown key" "unknown key 'batch_sise' in section 'update'" "$F" train "$T/unknown.yaml" --out "$T/runs"
expect_error "unknown section" "unknown key 'bogus_section'" "$F" train "$T/section.yaml" --out "$T/runs"
expect_error "wrong type" "update.batch_size = 'lots' is not valid: expected an integer in \[1, 1048576\]" "$F" train "$T/type.yaml" --out "$T/runs"
expect_error "out of range" "update.gamma = '1.5' is not valid: expected a number in \[0, 1\]" "$F" train "$T/range.yaml" --out "$T/runs"
expect_error "section given a value" "'update' must be a section" "$F" train "$T/shape.yaml" --out "$T/runs"
expect_error "cross-field rule" "entropy.estimator 'exact' does not apply to algo sac" "$F" train "$T/cross.yaml" --out "$T/runs"
expect_error "unknown subcommand" "unknown command 'trian'" "$F" trian
expect_error "unknown --set key" "unknown key 'update.batchsize'" "$F" train --set update.batchsize=3 --out "$T/runs"
expect_error "--set without =" "expected key=value" "$F" train --set update.batch_size --out "$T/runs"
expect_error "--set bad value" "run.seed = '-4'" "$F" train --set run.seed=-4 --out "$T/runs"
expect_error "unknown option" "unknown or incomplete option '--frobnicate'" "$F" train --frobnicate
expect_error "two config files" "unexpected argument" "$F" train "$T/good.yaml" "$T/good.yaml"
expect_error "unknown env id" "unknown env id 'Hoper-v5'" "$F" train --set env.id=Hoper-v5 --out "$T/runs" --quiet
expect_error "eval without --ckpt" "--ckpt FILE is required" "$F" eval
expect_error "eval missing ckpt" "cannot open the checkpoint" "$F" eval --ckpt "$T/none.h5"
echo "not hdf5" > "$T/corrupt.h5"
expect_error "eval corrupt ckpt" "not a readable HDF5 file" "$F" eval --ckpt "$T/corrupt.h5"
rm -f "$T/corrupt.h5"
expect_error "eval bad --episodes" "--episodes '0' is not valid" "$F" eval --ckpt x --episodes 0
expect_error "info takes no options" "unexpected argument" "$F" info --foo

# --help works everywhere and exits 0
for c in "" train eval rollout export-replay bench envs info; do
    if ! "$F" $c --help > /dev/null 2>&1; then fail "flame $c --help"; fi
done
"$F" --help | grep -q "train" || fail "flame --help lists the commands"
"$F" info | grep -q "^blas:" || fail "flame info prints the BLAS"
"$F" info | grep -Eq "^cuda: +(no CUDA device|[0-9]+ device)" || fail "flame info prints CUDA devices"
"$F" envs | grep -q "Humanoid-v5 *348 *17" || fail "flame envs lists Humanoid-v5 348 17"
"$F" train --help-config | grep -q "flow.sample_k" || fail "--help-config lists keys"

# --print-config: the resolved YAML loads back to the same config (printing it again is identical)
"$F" train "$T/good.yaml" --set flow.sample_k=7 --print-config > "$T/resolved.yaml" || fail "print-config"
"$F" train "$T/resolved.yaml" --print-config > "$T/resolved2.yaml" || fail "print-config reload"
cmp -s "$T/resolved.yaml" "$T/resolved2.yaml" || fail "resolved config does not round-trip"
grep -q "sample_k: 7" "$T/resolved.yaml" || fail "--set applied"

if [ $fails -ne 0 ]; then echo "$fails failure(s)"; exit 1; fi
echo "all CLI config checks passed"
