#!/usr/bin/env bash
# One command sets up a fresh Debian 12 machine and runs the project:
#   tools/setup.sh train [flame train args]   install what is missing, build, run the main job
#                                             (default: FLAME-M on HalfCheetah-v5, configs/halfcheetah.yaml)
#   tools/setup.sh test                       install what is missing, build, run the whole test suite:
#                                             the C tests (ctest), then the Python tests (pytest) in a
#                                             virtual environment, $BUILD_DIR/venv, made and filled
#                                             from python/requirements-test.txt here
# Idempotent: packages already installed are not reinstalled; the build directory and the virtual
# environment are reused (pip runs again only when a requirements file changed).
# Environment: BUILD_DIR (default build), FLAME_CUDA (AUTO|ON|OFF, default AUTO), JOBS.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
mode=${1:-}
[ $# -gt 0 ] && shift
BUILD_DIR=${BUILD_DIR:-build}
JOBS=${JOBS:-$(nproc)}

packages=(build-essential cmake pkg-config libmujoco-dev libhdf5-dev libcyaml-dev libyaml-dev
          libopenblas-dev zlib1g-dev
          # flame render: OpenGL without a GPU (Mesa's OSMesa) and the video encoder
          libosmesa6 ffmpeg
          # the Python tools and tests run in a virtual environment
          python3-venv)

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

# $BUILD_DIR/venv with tools/requirements.txt and what the Python tests need
python_env() {
    venv="$(cd "$BUILD_DIR" && pwd)/venv"
    local stamp="$venv/.requirements" want
    want=$(cat python/requirements-test.txt tools/requirements.txt | sha256sum | cut -c1-64)
    if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2> /dev/null)" = "$want" ]; then
        echo "setup: Python environment $venv up to date"
        return
    fi
    echo "setup: Python environment $venv (python/requirements-test.txt)"
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv" || return 1
    "$venv/bin/python" -m pip install -q --disable-pip-version-check \
        -r python/requirements-test.txt || return 1
    echo "$want" > "$stamp"
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
        status=0
        python_ok=1
        if ! python_env; then
            echo "setup: cannot make the Python environment; the C tests run, the Python tests" \
                "cannot, and the test command fails" >&2
            python_ok=0
            status=1
        fi
        # every label: unit, slow (learning runs), bench smoke tests; gpu tests skip without a GPU.
        # The venv comes first on PATH, so the tests that use python3 (datasets, plots) find
        # h5py and minari; they skip, never fail, where Python lacks them.
        (cd "$BUILD_DIR" && PATH="$venv/bin:$PATH" ctest --output-on-failure -j "$JOBS") || status=1
        if [ $python_ok -eq 1 ]; then
            build_abs=$(cd "$BUILD_DIR" && pwd)
            FLAME_BIN="$build_abs/flame" FLAME_LIB="$build_abs/libflame.so" \
                "$venv/bin/python" -m pytest -q -ra python/tests || status=1
        fi
        exit $status
        ;;
    *)
        echo "usage: tools/setup.sh train [flame train args] | tools/setup.sh test" >&2
        exit 2
        ;;
esac
