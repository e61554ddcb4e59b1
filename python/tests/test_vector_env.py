"""flame_rl.make_vec / flame_rl.make: Gymnasium's vector-env conventions, transitions against
Gymnasium's own MuJoCo envs, Gymnasium's env checker."""
import warnings

import numpy as np
import pytest

gym = pytest.importorskip("gymnasium", reason="SKIPPED: gymnasium not installed")
flame_rl = pytest.importorskip("flame_rl", reason="SKIPPED: libflame.so not built")
from gymnasium.vector import AutoresetMode  # noqa: E402

# tests/test_env_golden.c's tolerance for one step from the same state: round-off
ATOL = RTOL = 1e-6


def gym_env(env_id):
    pytest.importorskip("mujoco", reason="SKIPPED: mujoco (Python) not installed")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return gym.make(env_id).unwrapped
    except (gym.error.Error, ImportError) as e:
        if env_id == "Pusher-v4":  # Gymnasium refuses it on MuJoCo >= 3 (tools/ENVS.md)
            pytest.skip(f"SKIPPED: Gymnasium cannot make {env_id} here ({e})")
        raise


@pytest.mark.parametrize("env_id", flame_rl.env_ids())
def test_transitions_equal_gymnasium(env_id):
    """From the same state with the same action, one step of our vector env and of Gymnasium's env
    give the same observation, reward and termination. States come from our own rollout with
    random actions, episode ends and next-step resets included; both sides start every step from
    a freshly reset mjData holding that state (as tools/gen_gym_golden.py records), so solver warm
    starts cannot differ."""
    import mujoco
    n, steps = 2, 120 if "Humanoid" in env_id else 250
    envs = flame_rl.make_vec(env_id, num_envs=n, seed=11)
    ref = [gym_env(env_id) for _ in range(n)]
    space = envs.single_action_space
    assert np.array_equal(space.low, ref[0].action_space.low)
    assert np.array_equal(space.high, ref[0].action_space.high)
    assert envs.single_observation_space.shape == ref[0].observation_space.shape
    rng = np.random.default_rng(5)
    # wide actions visit the box's faces and beyond (MuJoCo clamps, the control cost does not)
    lo, hi = space.low * 1.2, space.high * 1.2
    obs, _ = envs.reset(seed=3)
    pending = np.zeros(n, dtype=bool)
    compared = ends = 0
    for t in range(steps):
        for i in range(n):
            qpos, qvel = envs.get_state(i)
            envs.set_state(i, qpos, qvel)
            d = ref[i].data
            mujoco.mj_resetData(ref[i].model, d)
            ref[i].set_state(qpos, qvel)
        a = rng.uniform(lo, hi, size=(n, space.shape[0])).astype(np.float32)
        obs, rew, term, trunc, info = envs.step(a)
        assert info == {}
        for i in range(n):
            if pending[i]:  # next-step autoreset: this step reset env i and ignored its action
                assert rew[i] == 0 and not term[i] and not trunc[i]
                continue
            o, r, te, _, _ = ref[i].step(a[i])
            what = f"{env_id} t={t} env {i}"
            np.testing.assert_allclose(obs[i], o, atol=ATOL, rtol=RTOL, err_msg=what)
            np.testing.assert_allclose(rew[i], r, atol=ATOL, rtol=RTOL, err_msg=what)
            assert bool(term[i]) == bool(te), what
            compared += 1
        pending = term | trunc
        ends += int(pending.sum())
    assert compared > steps  # most steps of both envs were compared
    envs.close()


def run(envs, actions, seed):
    obs, _ = envs.reset(seed=seed)
    out = [obs]
    for a in actions:
        out.append(envs.step(a))
    return out


def test_next_step_autoreset():
    """NEXT_STEP (Gymnasium 1.x's default): the ending step returns the final observation; the
    next step resets (its action is ignored): the reset observation, reward 0, no flags. The
    episodes are those of SAME_STEP, whose ending step returns the reset observation and puts the
    final one in infos["final_obs"] (mask "_final_obs"), with infos["final_info"]."""
    nxt = flame_rl.make_vec("InvertedPendulum-v5", num_envs=1, seed=1)
    same = flame_rl.make_vec("InvertedPendulum-v5", num_envs=1, seed=1,
                             autoreset_mode=AutoresetMode.SAME_STEP)
    assert nxt.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    assert same.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    rng = np.random.default_rng(0)
    o_n, _ = nxt.reset(seed=4)
    o_s, _ = same.reset(seed=4)
    assert np.array_equal(o_n, o_s)
    reset_obs, ends, resets = None, 0, 0
    for t in range(600):
        a = rng.uniform(-3, 3, size=(1, 1)).astype(np.float32)
        if reset_obs is not None:  # the step after an end: NEXT_STEP resets, SAME_STEP waits
            obs, rew, term, trunc, info = nxt.step(a)
            assert np.array_equal(obs, reset_obs) and rew[0] == 0 and not term[0] and not trunc[0]
            assert info == {}
            reset_obs, resets = None, resets + 1
            continue
        obs, rew, term, trunc, info = nxt.step(a)
        s_obs, s_rew, s_term, s_trunc, s_info = same.step(a)
        assert np.array_equal(rew, s_rew) and np.array_equal(term, s_term)
        assert np.array_equal(trunc, s_trunc) and info == {}
        if term[0] or trunc[0]:
            ends += 1
            assert set(s_info) == {"final_obs", "_final_obs", "final_info", "_final_info"}
            assert s_info["_final_obs"].tolist() == [True]
            assert s_info["final_obs"].dtype == object
            assert np.array_equal(s_info["final_obs"][0], obs[0])  # NEXT_STEP's obs is final
            assert not np.array_equal(s_obs, obs)
            reset_obs = s_obs
        else:
            assert s_info == {} and np.array_equal(obs, s_obs)
    assert ends >= 5 and resets >= ends - 1


def test_autoreset_modes_follow_gymnasium_sync_vector_env():
    """Our pool and Gymnasium's SyncVectorEnv over Gymnasium's own env give the same pattern of
    flags, zero rewards and info keys around an episode end, in both autoreset modes."""
    pytest.importorskip("mujoco", reason="SKIPPED: mujoco (Python) not installed")
    for mode in (AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP):
        ours = flame_rl.make_vec("InvertedPendulum-v5", num_envs=1, seed=0, autoreset_mode=mode)
        theirs = gym.vector.SyncVectorEnv([lambda: gym.make("InvertedPendulum-v5")],
                                          autoreset_mode=mode)
        patterns = []
        for envs in (ours, theirs):
            envs.reset(seed=0)
            a = np.full((1, 1), 3.0, dtype=np.float32)  # full push: the pole falls within steps
            seq = []
            for _ in range(40):
                _, rew, term, trunc, info = envs.step(a)
                # Gymnasium's env adds its own info keys (reward terms); ours has none
                keys = tuple(sorted(k for k in info if k.lstrip("_").startswith("final_")))
                seq.append((bool(term[0]), bool(trunc[0]), bool(rew[0] == 0), keys))
                if len([s for s in seq if s[0]]) == 2:
                    break
            # from the first episode end on: the same flags, zero rewards and info keys
            first = next(k for k, s in enumerate(seq) if s[0])
            patterns.append(seq[first:first + 3])
            envs.close()
        assert patterns[0] == patterns[1], (mode, patterns)


def test_time_limit_and_threads():
    """Swimmer never terminates: every env is truncated at step 1000 exactly; the results do not
    depend on the number of threads."""
    out = {}
    for threads in (1, 3):
        envs = flame_rl.make_vec("Swimmer-v5", num_envs=4, seed=9, num_threads=threads)
        rng = np.random.default_rng(1)
        obs, _ = envs.reset(seed=2)
        trace = [obs]
        for t in range(1, 1003):
            obs, rew, term, trunc, _ = envs.step(rng.uniform(-1, 1, (4, 2)).astype(np.float32))
            trace += [obs, rew]
            assert not term.any()
            assert trunc.all() == (t == 1000) and trunc.any() == (t == 1000), t
            if t == 1001:
                assert (rew == 0).all()
        out[threads] = trace
        envs.close()
    assert all(np.array_equal(a, b) for a, b in zip(out[1], out[3]))


def test_seeds():
    envs = flame_rl.make_vec("Hopper-v5", num_envs=3, seed=5)
    a, _ = envs.reset(seed=7)
    b, _ = envs.reset()
    c, _ = envs.reset(seed=7)
    d, _ = envs.reset(seed=[7, 8, 9])  # SyncVectorEnv's expansion of seed=7
    e, _ = envs.reset(seed=8)
    assert np.array_equal(a, c) and np.array_equal(a, d)
    assert not np.array_equal(a, b) and not np.array_equal(a, e)
    assert len({tuple(r) for r in a}) == 3  # each env draws its own noise
    with pytest.raises(ValueError, match="per-env seeds"):
        envs.reset(seed=[1, 5, 2])
    first = flame_rl.make_vec("Hopper-v5", num_envs=3, seed=5).reset()[0]
    again = flame_rl.make_vec("Hopper-v5", num_envs=3, seed=5).reset()[0]
    assert np.array_equal(first, again)


def test_action_units():
    """env units (the default, as Gymnasium's envs take them) and agent units in [-1, 1] give the
    same transitions: InvertedPendulum's ctrlrange is [-3, 3]"""
    env_u = flame_rl.make_vec("InvertedPendulum-v5", num_envs=2, seed=1)
    agent_u = flame_rl.make_vec("InvertedPendulum-v5", num_envs=2, seed=1, action_units="agent")
    assert env_u.single_action_space.high[0] == 3.0
    assert agent_u.single_action_space.high[0] == 1.0
    env_u.reset(seed=0)
    agent_u.reset(seed=0)
    for a in (0.5, -0.25, 1.0):
        o1 = env_u.step(np.full((2, 1), 3 * a, dtype=np.float32))[0]
        o2 = agent_u.step(np.full((2, 1), a, dtype=np.float32))[0]
        assert np.array_equal(o1, o2)


def test_copy_false_reuses_buffers():
    envs = flame_rl.make_vec("Hopper-v5", num_envs=2, seed=1, copy=False)
    envs.reset(seed=0)
    a = envs.step(np.zeros((2, 3), np.float32))[0]
    b = envs.step(np.zeros((2, 3), np.float32))[0]
    assert a is b
    envs = flame_rl.make_vec("Hopper-v5", num_envs=2, seed=1)
    envs.reset(seed=0)
    a = envs.step(np.zeros((2, 3), np.float32))[0]
    b = envs.step(np.zeros((2, 3), np.float32))[0]
    assert a is not b and not np.array_equal(a, b)


def test_bad_input():
    with pytest.raises(flame_rl.FlameInputError, match="unknown env id 'Hoper-v5'"):
        flame_rl.make_vec("Hoper-v5", num_envs=2)
    with pytest.raises(flame_rl.FlameInputError, match="num_envs"):
        flame_rl.make_vec("Hopper-v5", num_envs=0)
    envs = flame_rl.make_vec("Hopper-v5", num_envs=2)
    with pytest.raises(flame_rl.FlameInputError, match="before the first reset"):
        envs.step(np.zeros((2, 3), np.float32))
    envs.reset(seed=0)
    with pytest.raises(ValueError, match="shape"):
        envs.step(np.zeros((3, 3), np.float32))
    with pytest.raises(flame_rl.FlameInputError, match="out of range"):
        envs.get_state(2)
    with pytest.raises(ValueError, match="reset_mask"):
        envs.reset(options={"reset_mask": np.array([True, False])})
    with pytest.raises(ValueError, match="autoreset_mode"):
        flame_rl.make_vec("Hopper-v5", autoreset_mode=AutoresetMode.DISABLED)
    envs.close()
    envs.close()  # closing twice is allowed
    with pytest.raises(RuntimeError, match="closed"):
        envs.reset()


def test_gymnasium_env_checker():
    """Gymnasium's own checker on the single env, directly and through gymnasium.make"""
    from gymnasium.utils.env_checker import check_env
    for env_id in ("HalfCheetah-v5", "Hopper-v5", "Ant-v5", "Reacher-v5"):
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            env = flame_rl.make(env_id)
            check_env(env, skip_render_check=True)
            env.close()
            env = gym.make(f"flame_rl/{env_id}")
            check_env(env.unwrapped, skip_render_check=True)
            env.close()
        # the checker warns about unbounded observation boxes, as for Gymnasium's own envs;
        # nothing else
        other = [str(x.message) for x in w if "infinity" not in str(x.message)]
        assert other == [], other


def test_single_env_episode_end():
    env = flame_rl.make("InvertedPendulum-v5")
    env.reset(seed=0)
    for _ in range(200):
        _, r, te, tr, _ = env.step(np.array([3.0], np.float32))
        if te or tr:
            break
    assert te
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.array([0.0], np.float32))
    env.reset()
    env.step(np.array([0.0], np.float32))


def test_gymnasium_make_vec_entry_point():
    envs = gym.make_vec("flame_rl/Walker2d-v5", num_envs=3, vectorization_mode="vector_entry_point")
    obs, _ = envs.reset(seed=1)
    assert obs.shape == (3, 17) and obs.dtype == np.float64
    obs, rew, term, trunc, _ = envs.step(envs.action_space.sample())
    assert rew.shape == (3,) and term.dtype == np.bool_
    envs.close()
