#!/usr/bin/env python3
"""bench_vector_env.py: env steps per second of flame_rl's vector env against Gymnasium's own
vector envs of the same id, measured in the same run on the same machine.

For each env id and each N in --num-envs: the same number of vectorised steps with uniform random
actions (drawn before timing; next-step autoreset on both sides, as Gymnasium 1.x defaults) through
  flame_rl      flame_rl.make_vec(id, N, num_threads=T) for each T in --threads
  gym-sync      gymnasium.vector.SyncVectorEnv of gymnasium.make(id) (one process)
  gym-async     gymnasium.vector.AsyncVectorEnv (one process per env; with --async)
and prints steps/s (N x vectorised steps / seconds, best of --repeats, the implementations timed
in turn) and the ratio to gym-sync. --json FILE writes every row. Run it on a quiet machine: the
numbers are only comparable within a run.

example: python3 tools/bench_vector_env.py --envs HalfCheetah-v5,Hopper-v5 --num-envs 1,8
"""
import argparse
import json
import os
import platform
import sys
import time

import numpy as np


def timed(envs, actions, repeats):
    best = float("inf")
    for _ in range(repeats):
        envs.reset(seed=0)
        t0 = time.perf_counter()
        for a in actions:
            envs.step(a)
        best = min(best, time.perf_counter() - t0)
    return best


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--envs", default="HalfCheetah-v5,Hopper-v5,Ant-v5,Humanoid-v5")
    ap.add_argument("--num-envs", default="1,8", help="comma-separated N")
    ap.add_argument("--threads", default="1,0", help="flame_rl threads (0: all cores but one)")
    ap.add_argument("--steps", type=int, default=2000, help="vectorised steps per measurement")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--async", dest="use_async", action="store_true",
                    help="also Gymnasium's AsyncVectorEnv")
    ap.add_argument("--json", metavar="FILE")
    a = ap.parse_args()
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                    "python"))
    import gymnasium as gym
    import mujoco
    import flame_rl

    rows = []
    print(f"machine: {cpu_name()}, {os.cpu_count()} cores; flame_rl over {flame_rl.BUILD}; "
          f"gymnasium {gym.__version__}, mujoco {mujoco.__version__} (Python)")
    print(f"{'env':<16} {'N':>3} {'implementation':<22} {'steps/s':>10} {'x gym-sync':>10}")
    for env_id in a.envs.split(","):
        for n in (int(x) for x in a.num_envs.split(",")):
            space = flame_rl.make_vec(env_id, n).action_space
            rng = np.random.default_rng(0)
            actions = [rng.uniform(space.low, space.high).astype(np.float32)
                       for _ in range(a.steps)]
            impls = [("gym-sync", lambda: gym.vector.SyncVectorEnv(
                [lambda: gym.make(env_id)] * n))]
            if a.use_async:
                impls.append(("gym-async", lambda: gym.vector.AsyncVectorEnv(
                    [lambda: gym.make(env_id)] * n)))
            for t in (int(x) for x in a.threads.split(",")):
                if t == 0 or t <= n:
                    impls.append((f"flame_rl ({t or 'auto'} thr)",
                                  lambda t=t: flame_rl.make_vec(env_id, n, num_threads=t)))
            # every implementation is timed in turn, repeat after repeat, so a change of the
            # machine's load during the run reaches all of them alike; the best repeat counts
            made = [(name, make()) for name, make in impls]
            best = {name: float("inf") for name, _ in made}
            for _ in range(a.repeats):
                for name, envs in made:
                    best[name] = min(best[name], timed(envs, actions, 1))
            for _, envs in made:
                envs.close()
            base = n * a.steps / best["gym-sync"]
            for name, _ in made:
                sps = n * a.steps / best[name]
                rows.append({"env": env_id, "num_envs": n, "impl": name, "steps_per_s": sps,
                             "ratio_to_gym_sync": sps / base, "steps": a.steps,
                             "repeats": a.repeats})
                print(f"{env_id:<16} {n:>3} {name:<22} {sps:>10.0f} {sps / base:>9.1f}x",
                      flush=True)
    if a.json:
        with open(a.json, "w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
