#!/usr/bin/env bash
# One command sets up a fresh Debian 12 machine and runs the project:
#   tools/setup.sh train [flame train args]   install what is missing, build, run the main job
#                                             (default: FLAME-M on HalfCheetah-v5, configs/halfcheetah.yaml)
#   tools/setup.sh test                       install what is missing, build, run the whole test suite
# Idempotent: packages already installed are not reinstalled; the build directory is reused.
# Environment: BUILD_DIR (default build), FLAME_CUDA (AUTO|ON|OFF, default AUTO), JOBS.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
mode=${1:-}
[ $# -gt 0 ] && shift
BUILD_DIR=${BUILD_DIR:-build}
JOBS=${JOBS:-$(nproc)}

packages=(build-essential cmake pkg-config libmujoco-dev libhdf5-dev libcyaml-dev libyaml-dev libopenblas-dev)

install_missing() {
    local missing=()
    for p in "${packages[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2> /dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -eq 0 ]; then
        echo "setup: all packages present"
        return
    fi
    echo "setup: installing ${missing[*]}"
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo > /dev/null || { echo "setup: need root or sudo to install ${missing[*]}" >&2; exit 1; }
        sudo=sudo
    fi
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

build() {
    cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DFLAME_WERROR=ON \
        -DFLAME_CUDA="${FLAME_CUDA:-AUTO}"
    cmake --build "$BUILD_DIR" -j "$JOBS"
}

case "$mode" in
    train)
        install_missing
        build
        if [ $# -eq 0 ]; then
            set -- configs/halfcheetah.yaml
        fi
        exec "$BUILD_DIR/flame" train "$@"
        ;;
    test)
        install_missing
        build
        # every label: unit, slow (learning runs), bench smoke tests; gpu tests skip without a GPU
        cd "$BUILD_DIR"
        exec ctest --output-on-failure -j "$JOBS"
        ;;
    *)
        echo "usage: tools/setup.sh train [flame train args] | tools/setup.sh test" >&2
        exit 2
        ;;
esac
