#!/usr/bin/env bash
# fetch_runtime_libs.sh: collects the shared libraries that the built flame binaries need and a
# GPU machine lacks (MuJoCo, HDF5, libcyaml, OpenBLAS and their dependencies), as Debian packages
# fetched with `apt-get download` and unpacked with `dpkg -x` (nothing is installed), into
#   .deps/lib/              the .so files, flat (LD_LIBRARY_PATH=.deps/lib)
#   .deps/gpu/libs.tar.xz   the same, compressed, for carrying to a GPU machine
# The packages are found from `ldd` of the binaries given (default: build-cuda/flame): every
# resolved library that belongs to a Debian package, except the C/C++ runtime and zlib that every
# machine has. CUDA's own libraries (cudart, cuBLAS) are not packed: the GPU machine has the toolkit.
#
# usage: tools/fetch_runtime_libs.sh [BINARY ...]      (run from anywhere; writes under the repo)
# prints the LD_LIBRARY_PATH to use.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DEPS="$ROOT/.deps"
BINS=("$@")
if [ ${#BINS[@]} -eq 0 ]; then
    BINS=("$ROOT/build-cuda/flame")
fi
for i in "${!BINS[@]}"; do
    b="${BINS[$i]}"
    [ -x "$b" ] || { echo "fetch_runtime_libs: $b is not an executable (build first)" >&2; exit 2; }
    BINS[$i]="$(readlink -f "$b")"
done

# the package owning a library path (dpkg records /lib or /usr/lib depending on usrmerge)
owner() {
    local p
    for p in "$1" "/usr$1" "${1#/usr}"; do
        dpkg -S "$p" 2>/dev/null | head -1 | cut -d: -f1 && return 0
    done
    return 0
}

# packages every target machine has (C runtime, C++ runtime, zlib)
SKIP_RE='^(libc6|libstdc\+\+6|libgcc-s1|zlib1g|libcrypt1)$'

rm -rf "$DEPS/debs" "$DEPS/root" "$DEPS/lib"
mkdir -p "$DEPS/debs" "$DEPS/root" "$DEPS/lib" "$DEPS/gpu"
declare -A PKGS=()
for b in "${BINS[@]}"; do
    while read -r path; do
        [ -n "$path" ] || continue
        case "$path" in */cuda*|*/libcuda*|*/libcublas*|*/libcudart*|*/libcurand*) continue ;; esac
        real="$(readlink -f "$path")"
        pkg="$(owner "$real")"
        if [ -z "$pkg" ]; then
            pkg="$(owner "$path")"
        fi
        if [ -z "$pkg" ]; then
            echo "fetch_runtime_libs: no package owns $path (skipped)" >&2
            continue
        fi
        [[ "$pkg" =~ $SKIP_RE ]] && continue
        PKGS["$pkg"]=1
    done < <(ldd "$b" | awk '/=> \// {print $3}')
done
echo "packages: ${!PKGS[*]}"

cd "$DEPS/debs"
if ! apt-get download "${!PKGS[@]}" >/dev/null 2>&1; then
    apt-get update >/dev/null
    apt-get download "${!PKGS[@]}"
fi
for deb in "$DEPS"/debs/*.deb; do
    dpkg -x "$deb" "$DEPS/root"
done

# flat library folder: every shared object of the unpacked packages, links kept as links (OpenBLAS's
# variant folder included: libopenblas.so.0 there links to the library beside it, which the system
# normally selects through an alternatives link)
find "$DEPS/root" \( -type f -o -type l \) -name '*.so*' | while read -r f; do
    cp -a "$f" "$DEPS/lib/"
done

# check: every library of the binaries resolves with only .deps/lib added (on this machine the
# system copies would also satisfy them, so this checks names, not absence)
missing=0
for b in "${BINS[@]}"; do
    while read -r lib path; do
        case "$lib" in libcuda*|libcublas*|libcudart*|libcurand*) continue ;; esac
        if [ ! -e "$DEPS/lib/$lib" ] && ! owner "$(readlink -f "$path")" | grep -Eq "$SKIP_RE"; then
            echo "fetch_runtime_libs: $lib of $(basename "$b") is not in .deps/lib" >&2
            missing=1
        fi
    done < <(ldd "$b" | awk '/=> \// {print $1, $3}')
done

tar -C "$DEPS/lib" -cJf "$DEPS/gpu/libs.tar.xz" .
echo "packed $(du -sh "$DEPS/gpu/libs.tar.xz" | cut -f1) into .deps/gpu/libs.tar.xz ($(ls "$DEPS/lib" | wc -l) files)"
echo "LD_LIBRARY_PATH=$DEPS/lib:\${LD_LIBRARY_PATH:-}"
exit $missing
