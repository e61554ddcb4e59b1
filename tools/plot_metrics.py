#!/usr/bin/env python3
"""plot_metrics.py: learning curves and training diagnostics from FLAME runs' metrics.h5.

Each RUN is a run directory (runs/<name>, holding metrics.h5) or a metrics.h5 file. The first panel
is the learning curve: evaluation return (/eval/return_mean) against env steps (/eval/step, env
transitions including warm-up). Runs that share a label are drawn as their mean with a band of
+- one standard deviation across the runs (seeds), interpolated onto the steps all of them
reached; a label with one run shows that run's evaluation mean with a band of +- its std over the
evaluation episodes. The legend says which band each curve has, and how many runs (seeds) it
averages; it is also printed. Further panels plot /train datasets (default: critic_loss,
actor_loss, alpha, entropy; each row is the mean over its interval of updates) the same way, one
run without a band. Every panel has a title, the x axis "env steps" and the y axis the dataset's
`units` attribute. Missing groups or datasets only drop the panel or the run from a panel; runs
without /eval fall back to /episodes/return.

Labels (--group):
  config  (default) "<algo> <env_id>" from the file's root attributes
  regex   the first capture group (or the whole match) of --regex on the run name,
          e.g. --regex '(.*)_s\\d+$' groups hopper_flame_s1, hopper_flame_s2, ...
  none    every run on its own (its name)

examples:
  tools/plot_metrics.py runs/hopper_* --out hopper.png
  tools/plot_metrics.py runs/*/metrics.h5 --group regex --regex '(.*)_s\\d+' --out all.png \\
      --panels eval,critic_loss,alpha,entropy,q_mean --smooth 20
"""
import argparse
import math
import os
import re
import sys

try:
    import h5py
    import numpy as np
except ImportError as e:  # pragma: no cover - reported to the user
    print(f"plot_metrics.py needs h5py and numpy ({e}); pip install h5py numpy matplotlib",
          file=sys.stderr)
    sys.exit(2)

DEFAULT_PANELS = "eval,critic_loss,actor_loss,alpha,entropy"
LOG_PANELS = {"alpha"}
TITLES = {"eval": "evaluation return", "critic_loss": "critic loss", "actor_loss": "actor loss",
          "alpha": "temperature alpha", "entropy": "entropy estimate", "q_mean": "mean Q",
          "fm_loss": "flow-matching loss", "qterm_loss": "-Q actor term", "ess_mean":
          "weights' effective sample size", "steps_per_s": "env steps / s",
          "updates_per_s": "updates / s", "return": "training episode return", "q_min":
          "lowest Q", "q_max": "highest Q", "ess_min": "lowest effective sample size",
          "target_mean": "mean TD target", "jvp_max": "largest MeanFlow JVP"}
# y-axis units of files written before datasets had a `units` attribute
UNITS = {"eval": "return", "return": "return", "critic_loss": "return^2", "q_mean": "return",
         "q_min": "return", "q_max": "return", "target_mean": "return", "entropy": "nats",
         "alpha": "return/nat", "steps_per_s": "transitions/s", "updates_per_s": "updates/s"}


def _attr(f, name):
    v = f.attrs.get(name)
    if isinstance(v, bytes):
        v = v.decode("utf-8", "replace")
    return v if v is None else str(v)


def _config_value(config, section, key):
    """a value from the resolved-config YAML text without a YAML parser"""
    if not config:
        return None
    if section is None:
        m = re.search(rf"^{key}:\s*(\S+)", config, re.M)
    else:
        m = re.search(rf"^{section}:\s*\n((?:[ \t]+.*\n?)*)", config, re.M)
        m = m and re.search(rf"^\s+{key}:\s*(\S+)", m.group(1), re.M)
    return m.group(1).strip("'\"") if m else None


def _series(f, group, key):
    """(step, value) of /group/key, both trimmed to their common length; None when missing"""
    g = f.get(group)
    if g is None or key not in g or "step" not in g:
        return None
    step = np.asarray(g["step"][:], dtype=np.float64)
    val = np.asarray(g[key][:], dtype=np.float64)
    if val.ndim > 1:  # e.g. one column per critic
        val = val.reshape(val.shape[0], -1).mean(axis=1)
    n = min(len(step), len(val))
    step, val = step[:n], val[:n]
    ok = np.isfinite(step) & np.isfinite(val)
    if not ok.any():
        return None
    return step[ok], val[ok]


class Run:
    def __init__(self, path):
        self.file = os.path.join(path, "metrics.h5") if os.path.isdir(path) else path
        base = os.path.dirname(os.path.abspath(self.file)) if os.path.isdir(path) or \
            os.path.basename(self.file) == "metrics.h5" else os.path.splitext(self.file)[0]
        self.name = os.path.basename(base)
        with h5py.File(self.file, "r") as f:
            config = _attr(f, "config")
            self.algo = _attr(f, "algo") or _config_value(config, None, "algo") or "?"
            self.env = _attr(f, "env_id") or _config_value(config, "env", "id") or "?"
            self.seed = _config_value(config, "run", "seed")
            self.eval_episodes = _config_value(config, "run", "eval_episodes")
            self.units = {}
            for group in ("train", "eval", "episodes"):
                for key in (f[group] if group in f else []):
                    u = _attr(f[group][key], "units")
                    if u:
                        self.units["eval" if (group, key) == ("eval", "return_mean") else key] = u
            self.eval = None
            ev = _series(f, "eval", "return_mean")
            if ev is not None:
                sd = _series(f, "eval", "return_std")
                std = sd[1] if sd is not None and len(sd[1]) == len(ev[1]) else np.zeros_like(ev[1])
                self.eval = (ev[0], ev[1], std)
            self.episodes = _series(f, "episodes", "return")
            self.train = {}
            if "train" in f:
                for key in f["train"]:
                    if key != "step":
                        s = _series(f, "train", key)
                        if s is not None:
                            self.train[key] = s


def _smooth(y, window):
    if window <= 1 or len(y) < 2:
        return y
    window = min(window, len(y))
    c = np.cumsum(np.insert(y, 0, 0.0))
    out = np.empty_like(y)
    for i in range(len(y)):  # trailing mean over the last `window` points
        lo = max(0, i + 1 - window)
        out[i] = (c[i + 1] - c[lo]) / (i + 1 - lo)
    return out


def _aggregate(curves):
    """mean and std across runs on the steps every run reached (union of their steps there)"""
    lo = max(c[0][0] for c in curves)
    hi = min(c[0][-1] for c in curves)
    grid = np.unique(np.concatenate([c[0][(c[0] >= lo) & (c[0] <= hi)] for c in curves]))
    if len(grid) == 0:
        return None
    ys = np.stack([np.interp(grid, c[0], c[1]) for c in curves])
    return grid, ys.mean(axis=0), ys.std(axis=0)


def label_of(run, args):
    if args.group == "none":
        return run.name
    if args.group == "regex":
        m = re.search(args.regex, run.name)
        if not m:
            return run.name
        return m.group(1) if m.groups() else m.group(0)
    return f"{run.algo} {run.env}"


def band_note(runs, curves, key):
    """what a curve averages and what its band is (legend text)"""
    if len(curves) > 1:
        seeds = {r.seed for r in runs}
        what = "seeds" if None not in seeds and len(seeds) == len(runs) else "runs"
        extra = f" of {len(runs)}" if len(curves) < len(runs) else ""
        return f"mean \u00b1 std over {len(curves)}{extra} {what}"
    single = f"1 of {len(runs)} runs" if len(runs) > 1 else "1 run"
    if key == "eval" and curves[0][2] is not None:
        eps = runs[0].eval_episodes
        return f"{single}, \u00b1 std over its {eps + ' ' if eps else ''}evaluation episodes"
    return f"{single}, no band"


def y_label(key, groups):
    units = {r.units.get(key) for rs in groups.values() for r in rs} - {None}
    unit = units.pop() if len(units) == 1 else UNITS.get(key)
    name = "evaluation return" if key == "eval" else key
    return f"{name} [{unit}]" if unit and unit != "1" else name


def plot_panel(ax, key, groups, args, colors, legend):
    """one panel; returns whether anything was drawn; legend: its entries are appended"""
    drawn, fell_back = False, False
    for i, (label, runs) in enumerate(groups.items()):
        color = colors[i % len(colors)]
        curves, band, notes = [], None, []
        if key == "eval":
            # evaluation returns where the label has any; training episodes only where none has
            curves = [r.eval for r in runs if r.eval is not None]
            if not curves:
                curves = [(r.episodes[0], _smooth(r.episodes[1], args.smooth), None)
                          for r in runs if r.episodes is not None]
                notes = ["training episodes"] if curves else []
                fell_back = fell_back or bool(curves)
        else:
            curves = [(r.train[key][0], _smooth(r.train[key][1], args.smooth), None)
                      for r in runs if key in r.train]
        if not curves:
            continue
        order = [np.argsort(c[0], kind="stable") for c in curves]
        curves = [(c[0][o], c[1][o], None if c[2] is None else c[2][o])
                  for c, o in zip(curves, order)]
        if len(curves) == 1:
            x, y, band = curves[0]
        else:
            agg = _aggregate([(c[0], c[1]) for c in curves])
            if agg is None:
                continue
            x, y, band = agg
        notes = [band_note(runs, curves, key)] + notes
        name = f"{label} ({', '.join(notes)})"
        legend.append(name)
        ax.plot(x, y, color=color, label=name, lw=1.5)
        if band is not None and np.any(band > 0):
            ax.fill_between(x, y - band, y + band, color=color, alpha=0.2, lw=0)
        drawn = True
    if drawn:
        title = TITLES.get(key, key)
        if key == "eval" and fell_back:
            title = "return (evaluation; training episodes where a label has none)"
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("env steps")
        ax.set_ylabel(y_label(key, groups))
        if key in LOG_PANELS:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    return drawn


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="run directories or metrics.h5 files")
    ap.add_argument("--out", required=True, help="output image (PNG; any matplotlib format)")
    ap.add_argument("--group", choices=["config", "regex", "none"], default="config",
                    help="how runs share a label (default: config algo and env)")
    ap.add_argument("--regex", help="with --group regex: pattern applied to run names")
    ap.add_argument("--panels", default=DEFAULT_PANELS,
                    help=f"comma-separated: eval and /train dataset names (default {DEFAULT_PANELS})")
    ap.add_argument("--smooth", type=int, default=1,
                    help="trailing moving average over this many points (train panels)")
    ap.add_argument("--title", help="figure title")
    ap.add_argument("--dpi", type=int, default=120)
    args = ap.parse_args(argv)
    if args.group == "regex" and not args.regex:
        ap.error("--group regex needs --regex PATTERN")
    if args.regex:
        try:
            re.compile(args.regex)
        except re.error as e:
            ap.error(f"--regex: {e}")

    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        print(f"plot_metrics.py needs matplotlib ({e}); pip install matplotlib", file=sys.stderr)
        return 2

    runs = []
    for p in args.runs:
        try:
            runs.append(Run(p))
        except (OSError, KeyError, ValueError) as e:
            print(f"warning: skipping {p}: {e}", file=sys.stderr)
    if not runs:
        print("no readable metrics.h5 among the given runs", file=sys.stderr)
        return 1
    groups = {}
    for r in runs:
        groups.setdefault(label_of(r, args), []).append(r)

    no_eval = [r.name for r in runs if r.eval is None]
    if no_eval:
        print(f"note: no /eval in {', '.join(no_eval)}: left out of the return panel, or its "
              "training-episode returns shown when no run of its label has /eval",
              file=sys.stderr)

    keys = [k.strip() for k in args.panels.split(",") if k.strip()]
    available = []
    for k in keys:
        if k == "eval":
            has = any(r.eval is not None or r.episodes is not None for r in runs)
        else:
            has = any(k in r.train for r in runs)
        if has:
            available.append(k)
        else:
            print(f"note: no data for panel '{k}' in any run; skipped", file=sys.stderr)
    if not available:
        print("nothing to plot: none of the panels has data", file=sys.stderr)
        return 1

    ncols = min(3, len(available))
    nrows = math.ceil(len(available) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 3.8 * nrows), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key().get("color", ["C0", "C1", "C2", "C3"])
    legends = []
    for ax, key in zip(axes.flat, available):
        entries = []
        plot_panel(ax, key, groups, args, colors, entries)
        legends.append((key, entries))
    for ax in list(axes.flat)[len(available):]:
        ax.set_visible(False)
    # one legend for the figure, below the panels (the first panel's curves: every label), and
    # what the bands are
    handles, labels = axes.flat[0].get_legend_handles_labels()
    ncol = 1 if len(labels) < 3 else 2
    legend_h = (math.ceil(len(labels) / ncol) * 0.22 + 0.35) / fig.get_figheight()
    if handles:
        fig.legend(handles, labels, loc="lower center", bbox_to_anchor=(0.5, 0.02), ncol=ncol,
                   fontsize=8, frameon=False)
    envs = sorted({r.env for r in runs})
    fig.suptitle(args.title or f"{', '.join(envs)}: {len(runs)} run(s) in {len(groups)} "
                 "group(s)")
    fig.text(0.5, 0.005, "bands: mean \u00b1 one std across the runs (seeds) of a label; a "
             "label with one run: \u00b1 std over its evaluation episodes (return panel), none "
             "elsewhere", ha="center", va="bottom", fontsize=8, color="0.35")
    fig.tight_layout(rect=(0, legend_h, 1, 1))
    fig.savefig(args.out, dpi=args.dpi)
    plt.close(fig)

    for key, entries in legends:
        for e in entries:
            print(f"legend {key}: {e}")
    # summary: the last evaluation of each label
    for label, rs in groups.items():
        finals = [r.eval[1][-1] for r in rs if r.eval is not None and len(r.eval[1])]
        if finals:
            print(f"{label}: {len(rs)} run(s), final eval return {np.mean(finals):.1f} +- "
                  f"{np.std(finals):.1f}")
        else:
            print(f"{label}: {len(rs)} run(s), no evaluation")
    print(f"wrote {args.out} ({', '.join(available)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
