"""Shared fixtures: the flame binary and libflame.so of the build under test, small real runs.

FLAME_BIN and FLAME_LIB name the binary and the shared library; without them the build directory
`build/` of the repository is used (tools/setup.sh test sets both).
"""
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "python"))


def _build_file(env, name):
    path = os.environ.get(env) or os.path.join(REPO, "build", name)
    return path if os.path.exists(path) else None


@pytest.fixture(scope="session")
def flame_bin():
    path = _build_file("FLAME_BIN", "flame")
    if not path:
        pytest.skip("SKIPPED: no flame binary (build it, or set FLAME_BIN)")
    return path


@pytest.fixture(scope="session")
def repo():
    return REPO


def run_flame(flame_bin, *args, check=True, **kw):
    p = subprocess.run([flame_bin, *map(str, args)], capture_output=True, text=True, **kw)
    if check and p.returncode != 0:
        raise AssertionError(f"flame {' '.join(map(str, args))} exited {p.returncode}:\n"
                             f"{p.stdout}\n{p.stderr}")
    return p


# a few seconds of FLAME-M on InvertedPendulum with small networks: real metrics and checkpoints
SMALL_RUN = ["--quiet", "--set", "run.start_steps=300", "--set", "run.metrics_every=100",
             "--set", "run.eval_every=500", "--set", "run.eval_episodes=2", "--set",
             "net.hidden=16", "--set", "flow.sample_k=4", "--set", "flow.num_particles=4",
             "--set", "update.batch_size=16", "--set", "run.flush_every=200"]


@pytest.fixture(scope="session")
def small_run(flame_bin, repo, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    run_flame(flame_bin, "train", os.path.join(repo, "configs", "inverted_pendulum_small.yaml"),
              "--out", out, "--name", "pendulum", "--set", "run.total_steps=1500", *SMALL_RUN)
    return out / "pendulum"
