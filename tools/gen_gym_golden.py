#!/usr/bin/env python3
"""Record one-step reference data from Gymnasium's MuJoCo environments for FLAME's C tests.

For every env id (v4 and v5) this script:
  1. runs a random-action rollout with Gymnasium (resetting on termination and at the time limit)
     and keeps the (qpos, qvel) before each step; this visits free flight, contacts, joint limits
     and states right before termination;
  2. picks a few dozen of those states: the steps that terminated (with the action that made them
     terminate) and states spread evenly over the rest (with a fresh random float32 action);
  3. for each picked state runs the documented validation sequence:
     reset(seed), mj_resetData, set_state(qpos, qvel) (which runs mj_forward), step(action), and
     records obs, reward and terminated. The extra mj_resetData makes the reference start from the
     exact sequence the C side runs (mj_resetData, write state, mj_forward): without it the
     solver's warm start would carry over from the reset state, which only matters for Humanoid's
     unconverged PGS solver.
The observation right after set_state is kept for the first few states (checks the observation
function without stepping).

Output: one HDF5 file, one group per env id with datasets qpos (n, nq), qvel (n, nv), action
(n, act_dim, float32), obs (n, obs_dim), reward (n), terminated (n, int8), obs_set (k, obs_dim) and
attributes mujoco_version, gymnasium_version, numpy_version, seed. The C tests read it with the
HDF5 C API and never need Python.

Usage (the versions matter: MuJoCo >= 3.3.6 moved the warm-start update and >= 3.5 sums contact
margins, both change the physics; use a 3.3.x release below 3.3.6):
    pip install "gymnasium[mujoco]" mujoco==3.3.5 h5py
    python tools/gen_gym_golden.py --out tests/data/gym_golden.h5
Gymnasium refuses Pusher-v4 on mujoco >= 3, so a second run under mujoco 2.3.x records that id:
    pip install "gymnasium[mujoco]" mujoco==2.3.7 h5py      (in another virtual environment)
    python tools/gen_gym_golden.py --out tests/data/gym_golden.h5 --ids Pusher-v4 --append
"""

import argparse
import sys

import numpy as np

try:
    import gymnasium as gym
    import h5py
    import mujoco
except ImportError as exc:  # pragma: no cover - a usage error, not a test
    sys.exit(f"gen_gym_golden.py needs gymnasium, mujoco and h5py: {exc}")

ALL_IDS = [
    f"{name}-v{v}"
    for name in ("HalfCheetah", "Hopper", "Walker2d", "Ant", "Humanoid", "Swimmer",
                 "InvertedPendulum", "InvertedDoublePendulum", "Reacher", "Pusher")
    for v in (4, 5)
]

FORMAT_VERSION = 1


def rollout_states(env, limit, steps, seed):
    """Random-action rollout: lists of qpos, qvel, action and whether each step terminated."""
    qpos, qvel, acts, terms = [], [], [], []
    env.action_space.seed(seed)
    env.reset(seed=seed)
    t_episode = 0
    for _ in range(steps):
        a = env.action_space.sample()
        qpos.append(env.data.qpos.copy())
        qvel.append(env.data.qvel.copy())
        acts.append(a.copy())
        _, _, terminated, _, _ = env.step(a)
        terms.append(bool(terminated))
        t_episode += 1
        if terminated or t_episode >= limit:
            env.reset()
            t_episode = 0
    return qpos, qvel, acts, terms


def pick_states(terms, n_states, rng):
    """Indices: up to a quarter at terminating steps, the rest spread evenly, always index 0."""
    term_idx = [i for i, t in enumerate(terms) if t]
    n_term = min(len(term_idx), n_states // 4)
    chosen_term = []
    if n_term:
        chosen_term = sorted(rng.choice(term_idx, size=n_term, replace=False).tolist())
    rest = [i for i in range(len(terms)) if i not in set(chosen_term)]
    n_rest = n_states - n_term
    spread = [rest[int(round(k * (len(rest) - 1) / max(n_rest - 1, 1)))] for k in range(n_rest)]
    return sorted(set(spread)), set(chosen_term)


def record(env_id, n_states, n_obs_set, seed):
    env = gym.make(env_id, disable_env_checker=True)
    limit = env.spec.max_episode_steps
    u = env.unwrapped
    rng = np.random.default_rng(seed)
    qpos, qvel, acts, terms = rollout_states(u, limit, 12 * n_states, seed)
    spread, term_set = pick_states(terms, n_states, rng)
    idx = sorted(set(spread) | term_set)

    low = u.action_space.low.astype(np.float64)
    high = u.action_space.high.astype(np.float64)
    out = {k: [] for k in ("qpos", "qvel", "action", "obs", "reward", "terminated", "obs_set")}
    for j, i in enumerate(idx):
        if i in term_set:
            a = acts[i].astype(np.float32)  # the action that made the rollout terminate
        else:
            a = rng.uniform(low, high).astype(np.float32)
        u.reset(seed=seed + j)
        mujoco.mj_resetData(u.model, u.data)
        u.set_state(qpos[i], qvel[i])
        if j < n_obs_set:
            out["obs_set"].append(np.asarray(u._get_obs(), dtype=np.float64).copy())
        obs, reward, terminated, _, _ = u.step(a)
        out["qpos"].append(qpos[i])
        out["qvel"].append(qvel[i])
        out["action"].append(a)
        out["obs"].append(np.asarray(obs, dtype=np.float64))
        out["reward"].append(float(reward))
        out["terminated"].append(int(bool(terminated)))
    env.close()
    arrays = {
        "qpos": np.array(out["qpos"], dtype=np.float64),
        "qvel": np.array(out["qvel"], dtype=np.float64),
        "action": np.array(out["action"], dtype=np.float32),
        "obs": np.array(out["obs"], dtype=np.float64),
        "reward": np.array(out["reward"], dtype=np.float64),
        "terminated": np.array(out["terminated"], dtype=np.int8),
        "obs_set": np.array(out["obs_set"], dtype=np.float64),
    }
    return arrays


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="tests/data/gym_golden.h5")
    ap.add_argument("--ids", nargs="*", default=None,
                    help="env ids (default: all, less Pusher-v4 under mujoco >= 3)")
    ap.add_argument("--states", type=int, default=24, help="states per id (Humanoid: 2/3 of it)")
    ap.add_argument("--obs-set", type=int, default=4, help="states whose set_state obs is kept")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--append", action="store_true", help="add/replace groups in an existing file")
    args = ap.parse_args()

    mj_major = int(mujoco.__version__.split(".")[0])
    ids = args.ids if args.ids else [i for i in ALL_IDS if not (i == "Pusher-v4" and mj_major >= 3)]
    with h5py.File(args.out, "a" if args.append else "w") as f:
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["description"] = ("Gymnasium one-step reference: reset, mj_resetData, set_state, "
                                  "step; written by tools/gen_gym_golden.py")
        for k, env_id in enumerate(ids):
            n = args.states * 2 // 3 if env_id.startswith("Humanoid") else args.states
            arrays = record(env_id, n, args.obs_set, args.seed + 1000 * k)
            if env_id in f:
                del f[env_id]
            g = f.create_group(env_id)
            for name, arr in arrays.items():
                # small arrays stay contiguous: chunk indexes would outweigh what gzip saves
                opts = dict(compression="gzip", compression_opts=9, shuffle=True)
                g.create_dataset(name, data=arr, **(opts if arr.nbytes > 16384 else {}))
            g.attrs["mujoco_version"] = mujoco.__version__
            g.attrs["gymnasium_version"] = gym.__version__
            g.attrs["numpy_version"] = np.__version__
            g.attrs["seed"] = args.seed + 1000 * k
            print(f"{env_id:27s} {len(arrays['reward']):3d} states, "
                  f"{int(arrays['terminated'].sum()):2d} terminated, mujoco {mujoco.__version__}")


if __name__ == "__main__":
    main()
