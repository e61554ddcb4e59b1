"""FlameEnv: one of FLAME's MuJoCo envs as a Gymnasium Env (a one-env pool)."""
import gymnasium
import numpy as np

from .vector import FlameVectorEnv


class FlameEnv(gymnasium.Env):
    """A single env with Gymnasium's Env API: reset(seed=None, options=None) -> (obs, info),
    step(action) -> (obs, reward, terminated, truncated, info). The episode ends at termination,
    at the time limit (truncated) or on MuJoCo instability (truncated); step() after that raises
    until reset() is called. Seeds as in FlameVectorEnv."""

    metadata = {"render_modes": []}

    def __init__(self, env_id, *, seed=None, action_units="env", model_xml=None):
        self._vec = FlameVectorEnv(env_id, 1, seed=seed, num_threads=1,
                                   action_units=action_units, model_xml=model_xml)
        self.env_id = env_id
        self.observation_space = self._vec.single_observation_space
        self.action_space = self._vec.single_action_space
        self.render_mode = None
        self._done = True

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        obs, _ = self._vec.reset(seed=seed)
        self._done = False
        return obs[0], {}

    def step(self, action):
        if self._done:
            raise RuntimeError("the episode has ended (or never started): call reset() first")
        a = np.asarray(action, dtype=np.float32).reshape(1, -1)
        obs, rew, term, trunc, _ = self._vec.step(a)
        self._done = bool(term[0] or trunc[0])
        return obs[0], float(rew[0]), bool(term[0]), bool(trunc[0]), {}

    def get_state(self):
        return self._vec.get_state(0)

    def set_state(self, qpos, qvel):
        return self._vec.set_state(0, qpos, qvel)

    def close(self):
        self._vec.close()


def make(env_id, **kwargs):
    """FlameEnv(env_id, **kwargs)"""
    return FlameEnv(env_id, **kwargs)
