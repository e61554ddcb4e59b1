"""flame_rl.Policy: a checkpoint's actions from Python are `flame eval`'s."""
import os
import re

import numpy as np
import pytest

from conftest import SMALL_RUN, run_flame

flame_rl = pytest.importorskip("flame_rl", reason="SKIPPED: libflame.so not built")
gym = pytest.importorskip("gymnasium", reason="SKIPPED: gymnasium not installed")
from gymnasium.vector import AutoresetMode  # noqa: E402


def latest_ckpt(run_dir):
    ckpts = sorted((run_dir / "ckpt").glob("step_*.h5"),
                   key=lambda p: int(re.search(r"step_(\d+)", p.name).group(1)))
    assert ckpts, f"no checkpoint in {run_dir}"
    return ckpts[-1]


def flame_eval(flame_bin, ckpt, episodes, seed, envs=None, stochastic=False):
    args = ["eval", "--ckpt", ckpt, "--episodes", episodes, "--seed", seed, "--backend", "cpu"]
    args += ["--envs", envs] if envs else []
    out = run_flame(flame_bin, *args, *(["--stochastic"] if stochastic else [])).stdout
    returns = [float(x) for x in re.search(r"^returns:(.*)$", out, re.M).group(1).split()]
    lengths = [int(x) for x in re.search(r"^lengths:(.*)$", out, re.M).group(1).split()]
    return returns, lengths


def python_eval(policy, episodes, seed, envs=16, stochastic=False):
    """`flame eval`'s episode run (include/flame/rollout.h) written with flame_rl: N = min(envs,
    episodes) envs on the rows EVAL_ENV_OFFSET + i with the reset noise of `seed`; env i owes
    episodes // N episodes (the first episodes % N one more); vectorised step k acts on every env
    with call k, in agent units; episodes count in completion order (step, then env index)"""
    N = min(envs, episodes)
    vec = flame_rl.make_vec(policy.env_id, num_envs=N, num_threads=1, seed=seed,
                            env_index_offset=flame_rl.EVAL_ENV_OFFSET, action_units="agent",
                            autoreset_mode=AutoresetMode.SAME_STEP)
    obs, _ = vec.reset()
    owed = [episodes // N + (i < episodes % N) for i in range(N)]
    ret, length = np.zeros(N), np.zeros(N, dtype=int)
    returns, lengths = [], []
    k = 0
    while len(returns) < episodes:
        a = policy.act(obs, deterministic=not stochastic, units="agent", call=k)
        assert a.dtype == np.float32 and a.shape == (N, policy.act_dim)
        obs, rew, term, trunc, _ = vec.step(a)
        k += 1
        ret += rew
        length += 1
        for i in np.flatnonzero(term | trunc):
            if owed[i] > 0:  # a pendulum never goes unstable: every ended episode counts
                returns.append(ret[i])
                lengths.append(int(length[i]))
                owed[i] -= 1
            ret[i], length[i] = 0, 0
    vec.close()
    return returns, lengths


@pytest.mark.parametrize("stochastic", [False, True])
def test_actions_equal_flame_eval(flame_bin, small_run, stochastic):
    """The episodes `flame eval --seed S [--envs N]` prints are the ones Policy.load(ckpt, seed=S)
    plays on flame_rl's vector env: every action enters the returns, so any difference in an action
    shows in them"""
    ckpt = latest_ckpt(small_run)
    for seed, episodes, envs in ((3, 4, None), (12, 7, 3), (5, 3, 1)):
        want_r, want_l = flame_eval(flame_bin, ckpt, episodes, seed, envs, stochastic)
        policy = flame_rl.Policy.load(ckpt, backend="cpu", seed=seed)
        got_r, got_l = python_eval(policy, episodes, seed, envs or 16, stochastic)
        assert got_l == want_l
        assert [f"{r:.2f}" for r in got_r] == [f"{r:.2f}" for r in want_r]
        # a short-lived pendulum policy: the episodes differ, so the comparison is not vacuous
        assert len(set(got_l)) > 1 or len(set(f"{r:.2f}" for r in got_r)) > 1


def test_act_draws_and_units(small_run):
    ckpt = latest_ckpt(small_run)
    p = flame_rl.Policy.load(ckpt, backend="cpu")
    assert (p.env_id, p.algo, p.backend, p.obs_dim, p.act_dim) == ("InvertedPendulum-v5",
                                                                   "flame-m", "cpu", 4, 1)
    assert p.updates > 0 and p.env_steps > 0
    obs = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    a0 = p.act(obs, call=7, units="agent")
    assert np.array_equal(a0, p.act(obs, call=7, units="agent"))  # same address, same draws
    assert p.calls == 8
    assert not np.array_equal(a0, p.act(obs, call=8, units="agent"))  # best-of-N draws move
    assert np.all(np.abs(a0) <= 1)
    # env units: InvertedPendulum's ctrlrange is [-3, 3]
    assert np.allclose(p.act(obs, call=7), 3 * a0, rtol=1e-6, atol=0)
    # one observation, float64 input, a batch row = the same row alone only for the same row index
    single = p.act(obs[0].astype(np.float64), call=7, units="agent")
    assert single.shape == (1,) and single[0] == a0[0, 0]
    explore = p.act(obs, call=7, deterministic=False, units="agent")
    assert not np.array_equal(explore, a0)
    # another seed draws other candidates
    q = flame_rl.Policy.load(ckpt, backend="cpu", seed=999)
    assert not np.array_equal(q.act(obs, call=7, units="agent"), a0)
    p.close()
    with pytest.raises(RuntimeError, match="closed"):
        p.act(obs)


def test_sac_checkpoint(flame_bin, repo, tmp_path):
    out = tmp_path / "runs"
    cfg = os.path.join(repo, "configs", "inverted_pendulum_small_sac.yaml")
    run_flame(flame_bin, "train", cfg, "--out", out, "--name", "sac", "--set",
              "run.total_steps=600", *SMALL_RUN)
    ckpt = latest_ckpt(out / "sac")
    want_r, want_l = flame_eval(flame_bin, ckpt, 5, 5, envs=2)
    p = flame_rl.Policy.load(ckpt, backend="cpu", seed=5)
    assert p.algo == "sac"
    got_r, got_l = python_eval(p, 5, 5, envs=2)
    assert got_l == want_l and [f"{r:.2f}" for r in got_r] == [f"{r:.2f}" for r in want_r]
    obs = np.zeros((2, 4), np.float32)
    assert np.array_equal(p.act(obs, call=0), p.act(obs, call=1))  # tanh(mean): no draws


def test_bad_input(tmp_path, small_run):
    with pytest.raises(flame_rl.FlameInputError, match="nope.h5"):
        flame_rl.Policy.load(tmp_path / "nope.h5")
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    with pytest.raises(flame_rl.FlameInputError):
        flame_rl.Policy.load(bad)
    with pytest.raises(flame_rl.FlameInputError, match="unknown backend 'tpu'"):
        flame_rl.Policy.load(latest_ckpt(small_run), backend="tpu")
    p = flame_rl.Policy.load(latest_ckpt(small_run), backend="cpu")
    with pytest.raises(ValueError, match="shape"):
        p.act(np.zeros((2, 5), np.float32))
    with pytest.raises(ValueError, match="units"):
        p.act(np.zeros(4), units="raw")
