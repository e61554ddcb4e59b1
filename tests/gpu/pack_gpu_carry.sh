#!/usr/bin/env bash
# pack_gpu_carry.sh: prepares, on a machine without a GPU, everything run_gpu_checks.sh needs on
# the GPU machine, in the ignored folder .deps/gpu (the one path to carry):
#   build.tar.xz  from a build for sm_90 (H100/H200): flame (its `bench kernels` runs the kernel
#                 labs), gpu_probe and every CTest test labelled gpu, stripped, plus
#                 gpu_manifest.tsv (which test binaries the check runs and in which call: kind
#                 gpu_new for the tests also labelled gpu_new, read from the CTest registration,
#                 so a new GPU test needs no edit of the check) and a copy of
#                 ../shared/reference when it exists (FLAME_REFERENCE_DIR of the tests)
#   libs.tar.xz   the runtime libraries the GPU machine lacks (tools/fetch_runtime_libs.sh)
# and checks that the carry plus the working tree stay under the 64 MiB a device call takes.
# usage: bash tests/gpu/pack_gpu_carry.sh [ARCHS]     (ARCHS default 90; e.g. "80;90")
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
ARCHS="${1:-90}"
BUILD="$ROOT/build-gpu"
CARRY="$ROOT/.deps/gpu"
LIMIT_MIB=60 # of the 64 MiB a device call carries: room for the files the tree gains meanwhile

cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DFLAME_CUDA=ON -DFLAME_WERROR=ON \
      -DFLAME_CUDA_ARCHITECTURES="$ARCHS" -DFLAME_BUILD_TESTS=ON -DFLAME_BUILD_BENCH=ON >/dev/null

# everything (CTest names a test's binary only once it exists), then the tests the check runs,
# from the CTest registration: kind (gpu, or gpu_new: the --new call's), name, path under the
# build, arguments
cmake --build "$BUILD" -j"$(nproc)"
MANIFEST="$BUILD/gpu_manifest.tsv"
ctest --test-dir "$BUILD" --show-only=json-v1 | python3 -c '
import json, os, sys
build = os.path.realpath(sys.argv[1])
rows = []
for t in json.load(sys.stdin)["tests"]:
    props = {p["name"]: p["value"] for p in t.get("properties", [])}
    labels = props.get("LABELS", [])
    cmd = t.get("command") or []
    if not cmd:
        continue
    if "gpu" not in labels:
        continue
    path = os.path.relpath(os.path.realpath(cmd[0]), build)
    if path.startswith(".."):
        sys.exit("pack_gpu_carry: %s runs %s, outside the build folder" % (t["name"], cmd[0]))
    kind = "gpu_new" if "gpu_new" in labels else "gpu"
    rows.append("\t".join([kind, t["name"], path, " ".join(cmd[1:])]))
if not rows:
    sys.exit("pack_gpu_carry: no CTest test labelled gpu (is CUDA enabled in the build?)")
print("\n".join(rows))
' "$BUILD" > "$MANIFEST"
echo "GPU tests (from CTest):"
sed 's/^/  /' "$MANIFEST"

mapfile -t REL < <(cut -f3 "$MANIFEST" | sort -u)
BINS=(flame tests/gpu_probe "${REL[@]}")
for b in "${BINS[@]}"; do
    [ -x "$BUILD/$b" ] || { echo "pack_gpu_carry: $BUILD/$b was not built" >&2; exit 1; }
done
(cd "$BUILD" && strip --strip-unneeded "${BINS[@]}")
echo "$BUILD" > "$BUILD/.flame_build_dir"
PACK=(.flame_build_dir gpu_manifest.tsv "${BINS[@]}")
rm -rf "$BUILD/reference"
if [ -d "$ROOT/../shared/reference" ]; then
    cp -r "$ROOT/../shared/reference" "$BUILD/reference"
    PACK+=(reference)
fi
mkdir -p "$CARRY"
rm -f "$CARRY/build.tar.xz" "$CARRY/libs.tar.xz"
(cd "$BUILD" && tar -cJf "$CARRY/build.tar.xz" "${PACK[@]}")
ABS=()
for b in "${BINS[@]}"; do
    ABS+=("$BUILD/$b")
done
bash "$ROOT/tools/fetch_runtime_libs.sh" "${ABS[@]}"

# what a device call carries: the working tree (tracked and untracked files git does not ignore)
# and .deps/gpu
tree_bytes=$(cd "$ROOT" && git ls-files -z --cached --others --exclude-standard \
    | xargs -0 -r stat -c %s 2>/dev/null | awk '{s += $1} END {print s + 0}')
carry_bytes=$(du -sb "$CARRY" | cut -f1)
total_mib=$(( (tree_bytes + carry_bytes) / 1048576 ))
awk -v c="$carry_bytes" -v t="$tree_bytes" -v l="$LIMIT_MIB" 'BEGIN {
    printf "carry: .deps/gpu %.1f MiB, working tree %.1f MiB, together %.1f MiB (limit %d)\n",
           c / 1048576, t / 1048576, (c + t) / 1048576, l }'
if [ "$total_mib" -ge "$LIMIT_MIB" ]; then
    echo "pack_gpu_carry: the carry and the working tree exceed $LIMIT_MIB MiB" >&2
    exit 1
fi
echo "device commands (each call <= 300 s by its caps; the first and --new calls decide, the"
echo "others follow them, two calls to a 15-minute device budget):"
for call in "" " --second" " --new" " --new-bench"; do
    echo "  run(command=\"bash tests/gpu/run_gpu_checks.sh$call\", carry=[\".deps/gpu\"], timeout_s=360)"
done
