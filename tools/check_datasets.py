#!/usr/bin/env python3
"""check_datasets.py: load FLAME datasets the way offline-RL code does and check them.

  D4RL file (flame rollout --format d4rl, flame export-replay):
    read with h5py like d4rl's get_dataset(): observations/actions/rewards/next_observations are
    float32 with matching row counts, terminals/timeouts come back as numpy bool (h5py's enum),
    never both true on a row, infos/qpos/qvel/action_log_probs have one row per transition,
    metadata/* are scalars; for rollouts (metadata/source == "rollout") next_observations[i] ==
    observations[i+1] inside episodes and the data ends with an episode end.
  Minari directory (flame rollout --format minari):
    with minari installed: minari.MinariDataset(<dir>/data) (what minari.load_dataset does), every
    episode iterated, spaces and counts checked; always (with or without minari): metadata.json's
    required keys and types, the serialised Box spaces, the supported minari_version, the dataset
    id syntax, the link fields (code_permalink an http(s) URL, author_email addresses), and
    every episode group read with h5py (T+1 observations, bool flags, attributes consistent with
    the data).

usage: check_datasets.py PATH [PATH ...] [--format d4rl|minari] [--no-minari] [-q]
exit status: 0 all good, 1 a check failed, 2 bad usage or unreadable input.
"""
import argparse
import json
import os
import re
import sys

try:
    import h5py
    import numpy as np
except ImportError as e:  # pragma: no cover - reported to the user
    print(f"check_datasets.py needs h5py and numpy ({e}); pip install h5py numpy", file=sys.stderr)
    sys.exit(2)

MINARI_VERSIONS = {"0.4.0", "0.4.1", "0.4.2", "0.4.3", "0.5.0", "0.5.1", "0.5.2", "0.5.3"}
# minari.dataset.minari_dataset.DATASET_ID_RE (the version is required by parse_dataset_id)
DATASET_ID_RE = re.compile(r"^(?:(?P<namespace>[-_\w][-_\w/]*[-_\w]+)\/)?(?:(?P<dataset>[-_\w]+?))"
                           r"(?:-v(?P<version>\d+))$")


class Report:
    def __init__(self, path, quiet):
        self.path, self.quiet, self.problems = path, quiet, []

    def check(self, cond, msg):
        if not cond:
            self.problems.append(msg)
        return bool(cond)

    def info(self, msg):
        if not self.quiet:
            print(f"  {msg}")


def _is_bool(ds):
    return ds.dtype == np.bool_


# ----------------------------------------------------------------------------------- D4RL

def check_d4rl(path, rep):
    with h5py.File(path, "r") as f:
        for key in ("observations", "actions", "rewards", "terminals", "timeouts",
                    "next_observations"):
            if not rep.check(key in f and isinstance(f[key], h5py.Dataset), f"missing {key}"):
                return
        obs, act, rew = f["observations"], f["actions"], f["rewards"]
        nxt, term, tout = f["next_observations"], f["terminals"], f["timeouts"]
        n = obs.shape[0]
        rep.check(obs.ndim == 2 and nxt.shape == obs.shape,
                  f"observations {obs.shape} / next_observations {nxt.shape}")
        rep.check(act.ndim == 2 and act.shape[0] == n, f"actions {act.shape} for {n} rows")
        rep.check(rew.shape == (n,), f"rewards {rew.shape} for {n} rows")
        for name, ds in (("observations", obs), ("next_observations", nxt), ("actions", act),
                         ("rewards", rew)):
            rep.check(ds.dtype == np.float32, f"{name} is {ds.dtype}, expected float32")
            rep.check(ds.compression == "gzip" and ds.chunks is not None,
                      f"{name} is not chunked + gzip")
        for name, ds in (("terminals", term), ("timeouts", tout)):
            rep.check(_is_bool(ds), f"{name} reads as {ds.dtype}, expected bool (h5py enum)")
            rep.check(ds.shape == (n,), f"{name} {ds.shape} for {n} rows")
        infos = f.get("infos", {})
        for key in infos:
            ds = infos[key]
            rep.check(ds.shape[0] == n, f"infos/{key} has {ds.shape[0]} rows, expected {n}")
        if "action_log_probs" in infos:
            rep.check(infos["action_log_probs"].shape == (n,), "infos/action_log_probs shape")
        meta = f.get("metadata")
        rep.check(meta is not None, "no metadata group")
        source = None
        if meta is not None:
            for key in ("algorithm", "iteration", "env_id", "seed", "policy", "flame_version"):
                rep.check(key in meta and meta[key].shape == (), f"metadata/{key} missing or "
                          "not a scalar")
            if "source" in meta:
                source = meta["source"][()].decode()
        o, x = obs[:], nxt[:]
        t, to = term[:], tout[:]
        r = rew[:]
        rep.check(np.all(np.isfinite(o)) and np.all(np.isfinite(r)), "non-finite values")
        rep.check(not np.any(t & to), f"{int(np.sum(t & to))} rows are both terminal and timeout")
        ends = np.flatnonzero(t | to)
        if source == "rollout":
            inside = np.ones(n, dtype=bool)
            inside[ends] = False
            inside[-1] = False
            same = np.all(x[:-1][inside[:-1]] == o[1:][inside[:-1]])
            rep.check(same, "next_observations[i] != observations[i+1] inside an episode")
            rep.check(n > 0 and (t[-1] or to[-1]), "the last row does not end an episode")
            lengths = np.diff(np.concatenate([[-1], ends]))
            returns = np.add.reduceat(r.astype(np.float64), np.concatenate([[0], ends[:-1] + 1])) \
                if len(ends) else np.zeros(0)
            if "episodes" in meta:
                rep.check(len(ends) == int(meta["episodes"][()]),
                          f"{len(ends)} episode ends, metadata/episodes = {meta['episodes'][()]}")
            if len(ends):
                rep.info(f"{len(ends)} episodes, length {lengths.mean():.1f}, return "
                         f"{returns.mean():.3f} +- {returns.std():.3f}")
        if source == "replay" and meta is not None and "num_envs" in meta and n > 1:
            # the training loop pushes its N envs side by side: env j's successor is N rows on
            lag = int(meta["num_envs"][()])
            rows = np.flatnonzero(~t[:n - lag]) if n > lag else np.zeros(0, dtype=int)
            same = int(np.sum(np.all(x[rows] == o[rows + lag], axis=1))) if len(rows) else 0
            rep.info(f"replay rows: next_observations[i] == observations[i + {lag}] on {same} of "
                     f"{len(rows)} non-terminal rows")
        rep.info(f"d4rl: {n} rows, obs {o.shape[1]}, act {act.shape[1]}, source {source}, "
                 f"{int(t.sum())} terminals, {int(to.sum())} timeouts")


# ----------------------------------------------------------------------------------- Minari

def _box(rep, text, what):
    if not rep.check(isinstance(text, str), f"{what} is not a JSON string"):
        return None
    try:
        space = json.loads(text)
    except ValueError as e:
        rep.check(False, f"{what} is not valid JSON: {e}")
        return None
    ok = rep.check(space.get("type") == "Box", f"{what} type {space.get('type')}, expected Box")
    shape = space.get("shape", [])
    ok = ok and rep.check(isinstance(shape, list) and len(shape) == 1, f"{what} shape {shape}")
    if ok:
        for bound in ("low", "high"):
            rep.check(len(space.get(bound, [])) == shape[0], f"{what} {bound} has wrong length")
    return space if ok else None


def check_minari_h5py(data, rep):
    with open(os.path.join(data, "metadata.json")) as fp:
        meta = json.load(fp)
    required = {"dataset_id": str, "total_episodes": int, "total_steps": int, "data_format": str,
                "observation_space": str, "action_space": str, "minari_version": str}
    for key, typ in required.items():
        rep.check(isinstance(meta.get(key), typ), f"metadata.json: {key} missing or not {typ}")
    rep.check(meta.get("data_format") == "hdf5", "data_format is not hdf5")
    rep.check(meta.get("minari_version") in MINARI_VERSIONS,
              f"minari_version {meta.get('minari_version')} unsupported by minari 0.5.3")
    rep.check(bool(DATASET_ID_RE.fullmatch(str(meta.get("dataset_id", "")))),
              f"dataset_id {meta.get('dataset_id')} does not parse as (namespace/)name-vN")
    for key in ("author", "author_email", "requirements"):
        if key in meta:
            rep.check(isinstance(meta[key], list), f"{key} is not a list")
    # fields that dataset pages show as links must lead somewhere
    if "code_permalink" in meta:
        rep.check(isinstance(meta["code_permalink"], str) and
                  re.fullmatch(r"https?://[^/\s<>\"]+[^\s<>\"]*", meta["code_permalink"]),
                  f"code_permalink {meta['code_permalink']!r} is not an http(s) URL")
    for mail in meta.get("author_email", []) if isinstance(meta.get("author_email"), list) else []:
        rep.check(isinstance(mail, str) and re.fullmatch(r"[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+", mail),
                  f"author_email {mail!r} is not an e-mail address")
    if "env_spec" in meta:
        try:
            spec = json.loads(meta["env_spec"])
            rep.check(isinstance(spec.get("id"), str) and ":" in spec.get("entry_point", ""),
                      "env_spec lacks id / entry_point")
        except (TypeError, ValueError) as e:
            rep.check(False, f"env_spec is not a JSON string: {e}")
    obs_space = _box(rep, meta.get("observation_space"), "observation_space")
    act_space = _box(rep, meta.get("action_space"), "action_space")
    S = obs_space["shape"][0] if obs_space else None
    D = act_space["shape"][0] if act_space else None
    steps = 0
    with h5py.File(os.path.join(data, "main_data.hdf5"), "r") as f:
        n_ep = len(f.keys())
        rep.check(n_ep == meta.get("total_episodes"),
                  f"{n_ep} episode groups, total_episodes = {meta.get('total_episodes')}")
        for k in range(n_ep):
            name = f"episode_{k}"
            if not rep.check(name in f, f"{name} missing (ids must be sequential)"):
                continue
            g = f[name]
            for key in ("observations", "actions", "rewards", "terminations", "truncations"):
                if not rep.check(key in g, f"{name}/{key} missing"):
                    break
            else:
                T = g["rewards"].shape[0]
                steps += T
                rep.check(int(g.attrs.get("id", -1)) == k, f"{name}: id attribute")
                rep.check(int(g.attrs.get("total_steps", -1)) == T, f"{name}: total_steps")
                rep.check("seed" in g.attrs, f"{name}: seed attribute missing")
                ob, ac, rw = g["observations"], g["actions"], g["rewards"][:]
                rep.check(ob.shape == (T + 1, S), f"{name}: observations {ob.shape}, "
                          f"expected {(T + 1, S)}")
                rep.check(ac.shape == (T, D), f"{name}: actions {ac.shape}")
                rep.check(ob.dtype == np.dtype(obs_space["dtype"]) if obs_space else True,
                          f"{name}: observations dtype {ob.dtype}")
                rep.check(ac.dtype == np.dtype(act_space["dtype"]) if act_space else True,
                          f"{name}: actions dtype {ac.dtype}")
                rep.check(rw.dtype == np.float64, f"{name}: rewards dtype {rw.dtype}")
                te, tr = g["terminations"], g["truncations"]
                rep.check(_is_bool(te) and _is_bool(tr), f"{name}: flags are not bool")
                te, tr = te[:], tr[:]
                rep.check(te.shape == (T,) and tr.shape == (T,), f"{name}: flag shapes")
                rep.check(T > 0 and (te[-1] or tr[-1]) and not np.any((te | tr)[:-1]),
                          f"{name}: exactly the last step must end the episode")
                for attr, fn in (("rewards_sum", np.sum), ("rewards_mean", np.mean),
                                 ("rewards_std", np.std), ("rewards_max", np.max),
                                 ("rewards_min", np.min)):
                    if rep.check(attr in g.attrs, f"{name}: {attr} missing"):
                        rep.check(np.isclose(g.attrs[attr], fn(rw), rtol=1e-12, atol=1e-12),
                                  f"{name}: {attr} = {g.attrs[attr]}, rewards give {fn(rw)}")
    rep.check(steps == meta.get("total_steps"),
              f"{steps} steps in the episodes, total_steps = {meta.get('total_steps')}")
    rep.info(f"minari (h5py): {meta.get('dataset_id')}, {n_ep} episodes, {steps} steps")


def check_minari_library(data, rep):
    import minari  # noqa: F401 (import error handled by the caller)
    from minari import MinariDataset
    ds = MinariDataset(data)
    rep.check(ds.total_episodes == len(list(ds.episode_indices)), "episode indices")
    steps = 0
    for ep in ds.iterate_episodes():
        T = len(ep)
        steps += T
        rep.check(ep.observations.shape == (T + 1,) + ds.observation_space.shape,
                  f"episode {ep.id}: observations {ep.observations.shape}")
        rep.check(ep.actions.shape == (T,) + ds.action_space.shape,
                  f"episode {ep.id}: actions {ep.actions.shape}")
        rep.check(ep.terminations.dtype == np.bool_ and ep.truncations.dtype == np.bool_,
                  f"episode {ep.id}: flags are not bool")
        rep.check(ds.observation_space.contains(ep.observations[0]),
                  f"episode {ep.id}: reset observation outside the observation space")
        rep.check(isinstance(ep.infos, dict), f"episode {ep.id}: infos is not a dict")
        repr(ep)  # EpisodeData's repr reads every field
    rep.check(steps == ds.total_steps, f"{steps} steps iterated, total_steps {ds.total_steps}")
    ep_meta = list(ds.storage.get_episode_metadata(range(min(ds.total_episodes, 3))))
    rep.check(all("seed" in m for m in ep_meta), "episode metadata without seed")
    env_spec = ds.spec.env_spec
    rep.info(f"minari {minari.__version__}: loaded {ds.spec.dataset_id}, {ds.total_episodes} "
             f"episodes, {ds.total_steps} steps, env_spec {env_spec.id if env_spec else None}")


def check_minari(path, rep, use_library):
    data = os.path.join(path, "data")
    if not rep.check(os.path.isfile(os.path.join(data, "metadata.json")),
                     "no data/metadata.json: not a Minari dataset directory"):
        return
    check_minari_h5py(data, rep)
    if use_library:
        try:
            import minari  # noqa: F401
        except ImportError:
            rep.info("minari not installed: checked with h5py + json only")
            return
        try:
            check_minari_library(data, rep)
        except Exception as e:  # everything minari raises is a failed load
            rep.check(False, f"minari could not load the dataset: {type(e).__name__}: {e}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("paths", nargs="+", help="D4RL .hdf5 files and/or Minari dataset directories")
    ap.add_argument("--format", choices=["d4rl", "minari"],
                    help="layout (default: a directory is Minari, a file D4RL)")
    ap.add_argument("--no-minari", action="store_true",
                    help="do not use the minari package even when it is installed")
    ap.add_argument("-q", "--quiet", action="store_true", help="print failures only")
    args = ap.parse_args(argv)
    failed = 0
    for path in args.paths:
        rep = Report(path, args.quiet)
        fmt = args.format or ("minari" if os.path.isdir(path) else "d4rl")
        if not os.path.exists(path):
            print(f"{path}: does not exist", file=sys.stderr)
            return 2
        if not args.quiet:
            print(f"{path} ({fmt})")
        try:
            if fmt == "minari":
                check_minari(path, rep, not args.no_minari)
            else:
                check_d4rl(path, rep)
        except (OSError, KeyError, ValueError) as e:
            rep.check(False, f"cannot read: {type(e).__name__}: {e}")
        for p in rep.problems:
            print(f"{path}: FAIL {p}", file=sys.stderr)
        failed += bool(rep.problems)
        if not rep.problems and not args.quiet:
            print("  ok")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
