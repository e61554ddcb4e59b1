"""tools/metrics_export.py: TensorBoard event files and CSV tables of real runs' metrics.h5, read
back with TensorBoard's own data provider (what its web UI reads) and with the csv module."""
import csv
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import SMALL_RUN, run_flame

h5py = pytest.importorskip("h5py", reason="SKIPPED: h5py not installed")


def export(repo, *args, check=True):
    p = subprocess.run([sys.executable, os.path.join(repo, "tools", "metrics_export.py"),
                        *map(str, args)], capture_output=True, text=True)
    if check and p.returncode != 0:
        raise AssertionError(f"metrics_export.py exited {p.returncode}:\n{p.stdout}\n{p.stderr}")
    return p


def tensorboard_scalars(logdir):
    """{run: {tag: [(step, wall_time, value)]}} through TensorBoard's data provider"""
    pytest.importorskip("tensorboard", reason="SKIPPED: tensorboard not installed")
    from tensorboard import context
    from tensorboard.backend.event_processing import data_provider
    from tensorboard.backend.event_processing import plugin_event_multiplexer as pem
    m = pem.EventMultiplexer(tensor_size_guidance={"scalars": 0, "text": 0})
    m.AddRunsFromDirectory(str(logdir))
    m.Reload()
    prov = data_provider.MultiplexerDataProvider(m, str(logdir))
    ctx = context.RequestContext()
    data = prov.read_scalars(ctx, experiment_id="", plugin_name="scalars", downsample=10**9,
                             run_tag_filter=None)
    texts = prov.list_tensors(ctx, experiment_id="", plugin_name="text")
    out = {run: {tag: [(d.step, d.wall_time, d.value) for d in series]
                 for tag, series in tags.items()} for run, tags in data.items()}
    return out, {run: set(t) for run, t in texts.items()}, m


def h5_rows(path):
    """{group/column: (steps, values)} of every 1-D dataset but step"""
    rows = {}
    with h5py.File(path, "r") as f:
        for g in f:
            steps = f[g]["step"][:]
            for c in f[g]:
                if c != "step":
                    rows[f"{g}/{c}"] = (steps, f[g][c][:])
    return rows


def test_tensorboard_equals_hdf5(small_run, repo, tmp_path):
    a = tmp_path / "a"
    export(repo, small_run, "--tensorboard", a)
    scalars, texts, mux = tensorboard_scalars(a)
    assert set(scalars) == {"pendulum"}
    want = h5_rows(small_run / "metrics.h5")
    got = scalars["pendulum"]
    assert set(got) == set(want)
    assert {"train/critic_loss", "episodes/return", "eval/return_mean", "timing/env_s"} <= set(got)
    for tag, (steps, values) in want.items():
        assert len(values) > 0, tag
        assert [s for s, _, _ in got[tag]] == steps.tolist(), tag
        # doubles, not float32: exactly the HDF5 values
        assert [v for _, _, v in got[tag]] == values.astype(np.float64).tolist(), tag
    # wall times follow /train/wall_time
    w = [t for _, t, _ in got["train/wall_time"]]
    v = [x for _, _, x in got["train/wall_time"]]
    assert np.allclose(np.diff(w), np.diff(v), atol=1e-3)
    # the config and the run attributes as text
    assert texts["pendulum"] == {"config/text_summary", "run/text_summary"}
    acc = mux.GetAccumulator("pendulum")
    cfg = acc.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    with h5py.File(small_run / "metrics.h5", "r") as f:
        config = f.attrs["config"]
        config = config.decode() if isinstance(config, bytes) else config
    assert cfg == "".join("    " + line + "\n" for line in config.splitlines())
    assert "env:\n" in config and "InvertedPendulum-v5" in cfg


def test_csv_equals_hdf5(small_run, repo, tmp_path):
    out = tmp_path / "csv"
    export(repo, small_run / "metrics.h5", "--csv", out)
    d = out / "pendulum"
    assert sorted(os.listdir(d)) == ["attributes.json", "config.yaml", "episodes.csv", "eval.csv",
                                     "timing.csv", "train.csv"]
    with h5py.File(small_run / "metrics.h5", "r") as f:
        for g in ("train", "episodes", "eval", "timing"):
            with open(d / f"{g}.csv") as fp:
                table = list(csv.reader(fp))
            head, body = table[0], table[1:]
            assert head[0] == "step" and set(head) == set(f[g])
            for j, c in enumerate(head):
                col = f[g][c][:]
                assert len(body) == len(col)
                parsed = [type(col[0].item())(row[j]) for row in body]
                assert parsed == col.tolist(), f"{g}/{c}"
        cfg = f.attrs["config"]
        assert (d / "config.yaml").read_text() == (cfg.decode() if isinstance(cfg, bytes) else cfg)
        attrs = json.loads((d / "attributes.json").read_text())
        assert attrs["env_id"] == "InvertedPendulum-v5" and attrs["algo"] == "flame-m"


def test_existing_output_needs_force(small_run, repo, tmp_path):
    out = tmp_path / "tb"
    export(repo, small_run, "--tensorboard", out)
    p = export(repo, small_run, "--tensorboard", out, check=False)
    assert p.returncode == 2 and "already holds event files (events.out.tfevents" in p.stderr
    assert "pass --force" in p.stderr
    export(repo, small_run, "--tensorboard", out, "--force")
    assert len(os.listdir(out / "pendulum")) == 1  # replaced, not added
    scalars, _, _ = tensorboard_scalars(out)
    assert len(scalars["pendulum"]["train/alpha"]) == len(h5_rows(small_run / "metrics.h5")
                                                           ["train/alpha"][1])
    csv_out = tmp_path / "csv"
    export(repo, small_run, "--csv", csv_out)
    p = export(repo, small_run, "--csv", csv_out, check=False)
    assert p.returncode == 2 and "pass --force" in p.stderr


def test_bad_input(repo, tmp_path):
    p = export(repo, tmp_path / "nope", "--csv", tmp_path / "o", check=False)
    assert p.returncode == 2 and "no metrics.h5 there" in p.stderr
    assert not (tmp_path / "o").exists()
    p = export(repo, tmp_path, check=False)
    assert p.returncode == 2 and "--tensorboard" in p.stderr
    bad = tmp_path / "broken"
    bad.mkdir()
    (bad / "metrics.h5").write_bytes(b"not hdf5")
    p = export(repo, bad, "--csv", tmp_path / "o2", check=False)
    assert p.returncode == 1 and "broken" in p.stderr


def train_rows(metrics):
    try:
        with h5py.File(metrics, "r", locking=False) as f:
            return f["train/step"].shape[0]
    except (OSError, KeyError):
        return 0


def start_training(flame_bin, repo, runs, name, steps=6000):
    """a small training run in the background, paused (SIGSTOP) once its metrics.h5 holds /train
    rows, so a reader gets there before the run has ended; SIGCONT lets it go on"""
    cfg = os.path.join(repo, "configs", "inverted_pendulum_small.yaml")
    train = subprocess.Popen([flame_bin, "train", cfg, "--out", str(runs), "--name", name,
                              "--set", f"run.total_steps={steps}", *SMALL_RUN],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    metrics = runs / name / "metrics.h5"
    deadline = time.monotonic() + 60
    while train_rows(metrics) == 0 and time.monotonic() < deadline and train.poll() is None:
        time.sleep(0.01)
    train.send_signal(signal.SIGSTOP)
    assert train_rows(metrics) > 0, "the run wrote no /train rows"
    assert train.poll() is None, "the run ended before it could be watched"
    return train, metrics


def test_follow_a_live_run(flame_bin, repo, tmp_path):
    """--follow converts a run while it trains; at the end the event files hold every row"""
    runs = tmp_path / "runs"
    train, metrics = start_training(flame_bin, repo, runs, "live")
    first = open(metrics, "rb")  # the file as the follower first sees it
    try:
        follow = subprocess.Popen([sys.executable, os.path.join(repo, "tools", "metrics_export.py"),
                                   str(runs / "live"), "--tensorboard", str(tmp_path / "tb"),
                                   "--follow", "--interval", "0.2"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out = follow.stdout.readline()  # its first conversion, made while the run is paused
        train.send_signal(signal.SIGCONT)
        assert train.wait(timeout=240) == 0, train.stderr.read()
        time.sleep(1.0)  # at least one more poll after the final flush
        follow.send_signal(signal.SIGINT)
        rest, err = follow.communicate(timeout=60)
        out += rest
    finally:
        train.kill() if train.poll() is None else None
    assert follow.returncode == 0, err
    # later flushes replaced metrics.h5 by new files (a copy renamed over it: the first one has
    # no name left), and several conversions happened while the run grew
    assert os.fstat(first.fileno()).st_nlink == 0
    first.close()
    assert sum(1 for line in out.splitlines() if line.startswith("live:")) >= 2, out
    scalars, _, _ = tensorboard_scalars(tmp_path / "tb")
    want = h5_rows(runs / "live" / "metrics.h5")
    got = scalars["live"]
    assert set(got) == set(want)
    for tag, (steps, values) in want.items():
        assert [s for s, _, _ in got[tag]] == steps.tolist(), tag
        assert [v for _, _, v in got[tag]] == values.astype(np.float64).tolist(), tag


def test_a_reader_holding_metrics_open_does_not_stop_training(flame_bin, repo, tmp_path):
    """metrics.h5 is replaced whole at each flush: a reader that keeps it open (with HDF5's file
    lock, as h5py takes it by default) blocks no flush and sees none half-written; it keeps the
    version it opened, and opening the file again gives the newest"""
    train, metrics = start_training(flame_bin, repo, tmp_path / "runs", "held")
    first = open(metrics, "rb")
    try:
        with h5py.File(metrics, "r", locking=True) as held:
            steps = held["train/step"][:]
            train.send_signal(signal.SIGCONT)  # every later flush happens while it is held
            assert train.wait(timeout=240) == 0, train.stderr.read()
            assert np.array_equal(held["train/step"][:], steps)  # the version it opened
            assert all(held[g]["step"].shape == held[g][c].shape for g in held for c in held[g])
    finally:
        train.kill() if train.poll() is None else None
    assert os.fstat(first.fileno()).st_nlink == 0  # replaced, not written in place
    first.close()
    with h5py.File(metrics, "r") as f:
        final = f["train/step"][:]
    # every row up to the end of the run (6000 steps after 300 of warm-up, a row every 100),
    # those the reader held among them
    assert final[-1] == 6300 and np.all(np.diff(final) == 100)
    assert np.array_equal(final[:len(steps)], steps)


def test_follow_idle_exit_csv(small_run, repo, tmp_path):
    t0 = time.monotonic()
    p = export(repo, small_run, "--csv", tmp_path / "c", "--follow", "--interval", "0.1",
               "--idle-exit", "0.5")
    assert time.monotonic() - t0 < 30
    with open(tmp_path / "c" / "pendulum" / "train.csv") as fp:
        assert len(list(csv.reader(fp))) - 1 == len(h5_rows(small_run / "metrics.h5")
                                                    ["train/alpha"][1])
    assert p.stdout.count("pendulum:") == 1  # nothing exported twice
