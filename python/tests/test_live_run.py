"""A run that is still training: the Python readers (flame_rl.Policy, tools/metrics_export.py,
tools/plot_metrics.py) work on it, its train.lock names the trainer, and a second writer is
refused naming it; a SIGTERM ends the run with its lock file removed."""
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import SMALL_RUN, run_flame

flame_rl = pytest.importorskip("flame_rl", reason="SKIPPED: libflame.so not built")
pytest.importorskip("h5py", reason="SKIPPED: h5py not installed (tools/requirements.txt)")
pytest.importorskip("matplotlib", reason="SKIPPED: matplotlib not installed (tools/requirements.txt)")


def checkpoints(run_dir):
    return sorted((run_dir / "ckpt").glob("step_*.h5"),
                  key=lambda p: int(re.search(r"step_(\d+)", p.name).group(1)))


def test_readers_of_a_live_run(flame_bin, repo, tmp_path):
    runs = tmp_path / "runs"
    live = runs / "live"
    cfg = os.path.join(repo, "configs", "inverted_pendulum_small.yaml")
    train = subprocess.Popen([flame_bin, "train", cfg, "--out", str(runs), "--name", "live",
                              "--set", "run.total_steps=100000000", "--set", "run.ckpt_every=400",
                              *SMALL_RUN],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not checkpoints(live) and time.monotonic() < deadline and train.poll() is None:
            time.sleep(0.05)
        assert checkpoints(live), "the run wrote no checkpoint"
        assert (live / "train.lock").read_text().split() == [str(train.pid), os.uname().nodename]

        # the policy of its newest checkpoint, from Python
        with flame_rl.Policy.load(str(checkpoints(live)[-1]), backend="cpu") as policy:
            assert policy.env_id == "InvertedPendulum-v5"
            a = policy.act(np.zeros((3, policy.obs_dim), dtype=np.float32))
            assert a.shape == (3, policy.act_dim) and np.isfinite(a).all()

        # its metrics, through the tools
        tools = os.path.join(repo, "tools")
        p = subprocess.run([sys.executable, os.path.join(tools, "metrics_export.py"), str(live),
                            "--csv", str(tmp_path / "csv")], capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        with open(tmp_path / "csv" / "live" / "train.csv") as f:
            assert len(f.readlines()) >= 2  # the header and rows
        p = subprocess.run([sys.executable, os.path.join(tools, "plot_metrics.py"), str(live),
                            "--out", str(tmp_path / "curves.png")], capture_output=True,
                           text=True, env={**os.environ, "MPLBACKEND": "Agg"})
        assert p.returncode == 0, p.stderr
        assert (tmp_path / "curves.png").stat().st_size > 0

        # a second writer is refused, naming the holder; the run goes on
        p = run_flame(flame_bin, "train", "--resume", live, check=False, timeout=120)
        assert p.returncode == 2, p.stderr
        assert f"is in use by process {train.pid} on host {os.uname().nodename}" in p.stderr
        assert train.poll() is None, train.stderr.read()
    finally:
        if train.poll() is None:
            train.send_signal(signal.SIGTERM)
        rc = train.wait(timeout=120)
    assert rc == 143, train.stderr.read()
    assert not (live / "train.lock").exists()
