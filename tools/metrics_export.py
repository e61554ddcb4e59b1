#!/usr/bin/env python3
"""metrics_export.py: FLAME runs' metrics.h5 as TensorBoard event files or CSV tables.

Each RUN is a run directory (runs/<name>, holding metrics.h5) or a metrics.h5 file; its output goes
to OUT/<run name>/, so TensorBoard lists the runs side by side (tensorboard --logdir OUT).

  --tensorboard OUT  one event file per run, written with tensorboardX: every column of every group
                     (/train, /episodes, /eval, /timing and any other 1-D group) as the scalar
                     "<group>/<column>" at global step = the row's `step` (env transitions,
                     warm-up included), in double precision, so the values read back are the HDF5
                     values; the wall time of a row is the run's start plus /train's wall_time
                     (interpolated at the row's step); the run's resolved config and its root
                     attributes (version, commit, backend, device, env_id, algo) as text.
  --csv OUT          OUT/<run>/<group>.csv per group (header = dataset names, `step` first, floats
                     written so that they read back exactly), OUT/<run>/config.yaml and
                     OUT/<run>/attributes.json.
  --follow           keep converting as the runs' metrics.h5 grow (the trainer flushes every
                     run.flush_every steps); only new rows are appended. Ends on Ctrl-C, or after
                     --idle-exit S seconds without a new row.

An output that already holds a run's files is refused unless --force (which deletes the files this
tool writes there first). The trainer writes each flush to a copy and renames it over metrics.h5, so
every read opens the complete file of one flush, and each poll of --follow opens the newest (a
reader holding the file open never stops a flush). It is read without an HDF5 file lock (nothing
needs one; some file systems refuse them), and rows are taken up to the shortest column of a group.

examples:
  tools/metrics_export.py runs/hopper_flame-m_s1 runs/hopper_sac_s1 --tensorboard tb/
  tensorboard --logdir tb/
  tools/metrics_export.py runs/* --csv csv/
  tools/metrics_export.py runs/hopper_flame-m_s1 --tensorboard tb/ --follow &

exit status: 0 done, 1 a file could not be read or written, 2 bad usage or input.
"""
import argparse
import json
import os
import signal
import sys
import time

try:
    import h5py
    import numpy as np
except ImportError as e:  # pragma: no cover - reported to the user
    print(f"metrics_export.py needs h5py and numpy ({e}); pip install -r tools/requirements.txt",
          file=sys.stderr)
    sys.exit(2)

ROOT_ATTRS = ("version", "commit", "backend", "device", "env_id", "algo")
GROUP_ORDER = ("train", "eval", "episodes", "timing")


class UsageError(Exception):
    pass


def _text(v):
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return None if v is None else str(v)


def _open(path):
    # the complete file of the trainer's last flush (it renames each flush's copy over the file);
    # the open file stays that version while a later flush replaces the name
    return h5py.File(path, "r", locking=False)


def run_name_and_file(arg):
    if os.path.isdir(arg):
        path = os.path.join(arg, "metrics.h5")
        name = os.path.basename(os.path.normpath(arg))
    else:
        path = arg
        name = os.path.basename(os.path.dirname(os.path.abspath(arg))) or "run"
    if not os.path.isfile(path):
        raise UsageError(f"{arg}: no metrics.h5 there; pass a run directory (runs/<name>) or a "
                         "metrics.h5 file")
    return name, path


class Run:
    """One metrics.h5 and how many rows of each group were exported."""

    def __init__(self, name, path):
        self.name, self.path = name, path
        self.done = {}         # group -> rows exported
        self.columns = {}      # group -> column names (step first), fixed at the first export
        self.t0 = None         # wall-clock time of the run's start (for TensorBoard wall times)
        self.attrs = None

    def read(self):
        """{group: {column: array}} of the rows not exported yet (complete rows only)."""
        new = {}
        with _open(self.path) as f:
            if self.attrs is None:
                self.attrs = {k: _text(f.attrs.get(k)) for k in ("config",) + ROOT_ATTRS}
                self.attrs = {k: v for k, v in self.attrs.items() if v is not None}
            groups = [g for g in GROUP_ORDER if g in f]
            groups += sorted(g for g in f if g not in GROUP_ORDER and isinstance(f[g], h5py.Group))
            for g in groups:
                grp = f[g]
                cols = [c for c in grp if isinstance(grp[c], h5py.Dataset) and grp[c].ndim == 1]
                if "step" not in cols:
                    continue
                cols = ["step"] + sorted(c for c in cols if c != "step")
                if g in self.columns:
                    cols = [c for c in self.columns[g] if c in cols]
                n = min(grp[c].shape[0] for c in cols)
                start = self.done.get(g, 0)
                if n <= start:
                    continue
                new[g] = {c: grp[c][start:n] for c in cols}
                self.columns.setdefault(g, cols)
                self.done[g] = n
            if self.t0 is None:
                wall = f["train/wall_time"][:] if "train/wall_time" in f else np.zeros(0)
                end = os.stat(self.path).st_mtime
                self.t0 = end - (float(wall[-1]) if len(wall) else 0.0)
            self._wall = ((f["train/step"][:], f["train/wall_time"][:])
                          if "train/step" in f and "train/wall_time" in f else None)
        return new

    def wall_times(self, steps):
        if self._wall is None or len(self._wall[0]) == 0:
            return np.full(len(steps), self.t0)
        s, w = self._wall
        n = min(len(s), len(w))
        return self.t0 + np.interp(steps.astype(np.float64), s[:n].astype(np.float64), w[:n])


def clear_output(d, ours, what, force):
    """removes this tool's earlier files in d (those `ours` accepts), only with force"""
    old = sorted(f for f in os.listdir(d) if ours(f)) if os.path.isdir(d) else []
    if old and not force:
        raise UsageError(f"{d} already holds {what} ({', '.join(old[:3])}"
                         f"{', ...' if len(old) > 3 else ''}); pass --force to replace them or "
                         "choose another output directory")
    for f in old:
        os.remove(os.path.join(d, f))


# ----------------------------------------------------------------------------- TensorBoard

TB_PREFIX = "events.out.tfevents."


class TensorBoardSink:
    def __init__(self, out, force):
        try:
            from tensorboardX import FileWriter
            from tensorboardX.proto.summary_pb2 import Summary, SummaryMetadata
            from tensorboardX.proto.tensor_pb2 import TensorProto
            from tensorboardX.proto.tensor_shape_pb2 import TensorShapeProto
            from tensorboardX.summary import text
        except ImportError as e:
            raise UsageError(f"--tensorboard needs tensorboardX ({e}); "
                             "pip install -r tools/requirements.txt")
        self.FileWriter, self.text = FileWriter, text
        self.Summary, self.TensorProto, self.shape = Summary, TensorProto, TensorShapeProto()
        # a scalar summary of TensorBoard's scalars plugin, held as a double tensor
        self.meta = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name="scalars"))
        self.out, self.force, self.writers = out, force, {}

    def prepare(self, run):
        clear_output(os.path.join(self.out, run.name), lambda f: f.startswith(TB_PREFIX),
                     "event files", self.force)

    def _scalar(self, tag, value):
        t = self.TensorProto(dtype=2, tensor_shape=self.shape, double_val=[value])  # 2 = DT_DOUBLE
        return self.Summary(value=[self.Summary.Value(tag=tag, tensor=t, metadata=self.meta)])

    def write(self, run, rows):
        w = self.writers.get(run.name)
        if w is None:
            w = self.writers[run.name] = self.FileWriter(os.path.join(self.out, run.name),
                                                         flush_secs=3600)
            attrs = run.attrs or {}
            table = "| attribute | value |\n|---|---|\n" + "".join(
                f"| {k} | {attrs[k]} |\n" for k in ROOT_ATTRS if k in attrs)
            w.add_summary(self.text("run", table), global_step=0, walltime=run.t0)
            if "config" in attrs:
                code = "".join("    " + line + "\n" for line in attrs["config"].splitlines())
                w.add_summary(self.text("config", code), global_step=0, walltime=run.t0)
        for g, cols in rows.items():
            steps = cols["step"].tolist()
            wall = run.wall_times(cols["step"]).tolist()
            for c, values in cols.items():
                if c == "step":
                    continue
                tag = f"{g}/{c}"
                for s, v, t in zip(steps, values.tolist(), wall):
                    w.add_summary(self._scalar(tag, float(v)), global_step=int(s), walltime=t)
        w.flush()

    def close(self):
        for w in self.writers.values():
            w.close()


# ----------------------------------------------------------------------------- CSV

def _csv_value(v):
    if isinstance(v, float):
        return repr(v)  # the shortest text that reads back as the same double
    return str(v)


class CsvSink:
    def __init__(self, out, force):
        self.out, self.force = out, force

    def prepare(self, run):
        clear_output(os.path.join(self.out, run.name),
                     lambda f: f.endswith(".csv") or f in ("config.yaml", "attributes.json"),
                     "CSV tables", self.force)

    def write(self, run, rows):
        d = os.path.join(self.out, run.name)
        os.makedirs(d, exist_ok=True)
        attrs = run.attrs or {}
        cfg = os.path.join(d, "config.yaml")
        if "config" in attrs and not os.path.exists(cfg):
            with open(cfg, "w") as fp:
                fp.write(attrs["config"])
            with open(os.path.join(d, "attributes.json"), "w") as fp:
                json.dump({k: attrs[k] for k in ROOT_ATTRS if k in attrs}, fp, indent=1)
                fp.write("\n")
        for g, cols in rows.items():
            path = os.path.join(d, f"{g}.csv")
            names = run.columns[g]
            new = not os.path.exists(path)
            with open(path, "a") as fp:
                if new:
                    fp.write(",".join(names) + "\n")
                lists = [cols[c].tolist() for c in names]
                for row in zip(*lists):
                    fp.write(",".join(_csv_value(v) for v in row) + "\n")

    def close(self):
        pass


# ----------------------------------------------------------------------------- main

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("runs", nargs="+", metavar="RUN", help="run directory or metrics.h5")
    out = ap.add_mutually_exclusive_group(required=True)
    out.add_argument("--tensorboard", metavar="DIR", help="write TensorBoard event files here")
    out.add_argument("--csv", metavar="DIR", help="write CSV tables here")
    ap.add_argument("--follow", action="store_true", help="keep converting as the runs grow")
    ap.add_argument("--interval", type=float, default=5.0, metavar="S",
                    help="seconds between checks with --follow (default 5)")
    ap.add_argument("--idle-exit", type=float, default=0.0, metavar="S",
                    help="with --follow: stop after S seconds without a new row (0: never)")
    ap.add_argument("--force", action="store_true", help="replace this tool's earlier output")
    ap.add_argument("-q", "--quiet", action="store_true")
    a = ap.parse_args(argv)
    if a.interval <= 0 or a.idle_exit < 0:
        ap.error("--interval must be > 0 and --idle-exit >= 0")

    try:
        runs, names = [], {}
        for r in a.runs:
            name, path = run_name_and_file(r)
            if name in names:
                raise UsageError(f"{r} and {names[name]} are both named '{name}'; export them "
                                 "into different output directories")
            names[name] = r
            runs.append(Run(name, path))
        dest = a.tensorboard or a.csv
        if os.path.exists(dest) and not os.path.isdir(dest):
            raise UsageError(f"{dest} exists and is not a directory")
        sink = TensorBoardSink(dest, a.force) if a.tensorboard else CsvSink(dest, a.force)
        for r in runs:
            sink.prepare(r)
        os.makedirs(dest, exist_ok=True)
    except UsageError as e:
        print(f"metrics_export.py: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"metrics_export.py: {e}", file=sys.stderr)
        return 2

    stop = []
    if a.follow:
        signal.signal(signal.SIGINT, lambda *_: stop.append(1))
        signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    rc, last_new = 0, time.monotonic()
    try:
        while True:
            for r in runs:
                try:
                    rows = r.read()
                except (OSError, KeyError, RuntimeError, ValueError) as e:
                    if not a.follow:
                        print(f"metrics_export.py: {r.path}: {e}", file=sys.stderr)
                        rc = 1
                    continue
                if rows:
                    sink.write(r, rows)
                    last_new = time.monotonic()
                    if not a.quiet:
                        what = ", ".join(f"{len(c['step'])} {g}" for g, c in rows.items())
                        print(f"{r.name}: {what} rows", flush=True)
            if not a.follow or stop:
                break
            if a.idle_exit and time.monotonic() - last_new >= a.idle_exit:
                break
            t_end = time.monotonic() + a.interval
            while not stop and time.monotonic() < t_end:
                time.sleep(min(0.1, a.interval))
            if stop:
                continue  # one last pass picks up the final flush
    except OSError as e:
        print(f"metrics_export.py: {e}", file=sys.stderr)
        rc = 1
    finally:
        sink.close()
    if not a.quiet:
        print(f"wrote {a.tensorboard or a.csv} ({'tensorboard' if a.tensorboard else 'csv'}, "
              f"{len(runs)} run{'s' if len(runs) != 1 else ''})")
    return rc


if __name__ == "__main__":
    sys.exit(main())
