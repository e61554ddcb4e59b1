"""flame_rl: FLAME's checkpoints and environments from Python, over libflame.so.

    import flame_rl
    policy = flame_rl.Policy.load("runs/hopper_flame-m_s1/ckpt/step_1000000.h5")
    envs = flame_rl.make_vec("Hopper-v5", num_envs=8, seed=0)   # a gymnasium.vector.VectorEnv
    obs, info = envs.reset(seed=0)
    obs, reward, terminated, truncated, info = envs.step(policy.act(obs))

Also: flame_rl.make(id) (a gymnasium.Env), flame_rl.env_ids(), flame_rl.env_spec(id), and, once
imported, the ids "flame_rl/<id>" in Gymnasium's registry (gymnasium.make / gymnasium.make_vec
with vectorization_mode="vector_entry_point"). Policy needs only numpy; the envs need gymnasium.
"""
from ._lib import BUILD, EVAL_ENV_OFFSET, FlameError, FlameInputError, env_ids, env_spec
from .policy import Policy

__all__ = ["BUILD", "EVAL_ENV_OFFSET", "FlameError", "FlameInputError", "Policy", "env_ids",
           "env_spec", "make", "make_vec", "FlameEnv", "FlameVectorEnv"]

try:
    import gymnasium
except ImportError:  # Policy works without gymnasium; the envs say what is missing
    gymnasium = None

if gymnasium is not None:
    from .env import FlameEnv, make
    from .vector import FlameVectorEnv, make_vec

    for _id in env_ids():
        if f"flame_rl/{_id}" not in gymnasium.registry:
            gymnasium.register(f"flame_rl/{_id}", entry_point="flame_rl.env:FlameEnv",
                               vector_entry_point="flame_rl.vector:FlameVectorEnv",
                               kwargs={"env_id": _id})
else:
    def _needs_gymnasium(*args, **kwargs):
        raise ImportError("flame_rl's envs need gymnasium: pip install gymnasium")

    make = make_vec = FlameEnv = FlameVectorEnv = _needs_gymnasium
