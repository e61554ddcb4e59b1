"""FlameVectorEnv: libflame's env pool as a Gymnasium VectorEnv."""
import ctypes
import os

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from ._lib import as_c, check, lib, ptr

_AUTORESET = {AutoresetMode.NEXT_STEP: 0, AutoresetMode.SAME_STEP: 1}


class FlameVectorEnv(VectorEnv):
    """num_envs copies of one of FLAME's MuJoCo envs (the trainer's C implementation of
    Gymnasium's, `flame envs` lists the ids), stepped in C by num_threads threads (0: all cores
    but one); results never depend on the number of threads.

    Gymnasium's conventions:
      - autoreset_mode=NEXT_STEP (Gymnasium 1.x's default): the step that ends an episode returns
        its final observation; the env's next step resets it (its action is ignored) and returns
        the reset observation, reward 0, terminated and truncated False. SAME_STEP: the step that
        ends an episode returns the reset observation, and infos["final_obs"] / infos["final_info"]
        (with the masks "_final_obs" / "_final_info") hold the final observation and info.
        DISABLED is not offered.
      - truncated is the time limit (max_episode_steps of the registered id) or MuJoCo
        instability; observations are float64, actions float32 in env units (the actuators'
        ctrlrange, what Gymnasium's MuJoCo envs take) or, with action_units="agent", in [-1, 1]
        (ctrl = center + a * half_range).
      - reset(seed=s) starts episode 0 of every env from the reset noise of seed s (env i draws
        its own noise); reset() without a seed starts every env's next episode; the first reset
        without a seed uses `seed` given here (random when None); env_index_offset shifts every
        env's row of the reset-noise address (flame_rl.EVAL_ENV_OFFSET: the envs `flame eval`,
        `flame rollout` and `flame render` step).
    Arrays are written by the C code straight into fresh numpy arrays (copy=False reuses them).
    """

    def __init__(self, env_id, num_envs=1, *, seed=None, num_threads=0,
                 autoreset_mode=AutoresetMode.NEXT_STEP, action_units="env", copy=True,
                 env_index_offset=0, model_xml=None):
        self._h = None
        if isinstance(autoreset_mode, str):
            autoreset_mode = AutoresetMode(autoreset_mode)
        if autoreset_mode not in _AUTORESET:
            raise ValueError(f"autoreset_mode {autoreset_mode} is not offered; use "
                             "AutoresetMode.NEXT_STEP or AutoresetMode.SAME_STEP")
        if action_units not in ("env", "agent"):
            raise ValueError(f"action_units must be 'env' or 'agent', got {action_units!r}")
        if seed is None:
            seed = int.from_bytes(os.urandom(8), "little") >> 1
        h = ctypes.c_void_p()
        check(lib.flame_vec_create(str(env_id).encode(), int(num_envs), int(num_threads),
                                   _AUTORESET[autoreset_mode], 0 if action_units == "env" else 1,
                                   int(seed) & (2**64 - 1), int(env_index_offset),
                                   model_xml.encode() if model_xml else None, ctypes.byref(h)))
        self._h = h
        c_id = ctypes.c_char_p()
        ints = [ctypes.c_int() for _ in range(6)]
        check(lib.flame_vec_info(h, ctypes.byref(c_id), *map(ctypes.byref, ints)))
        self.env_id = c_id.value.decode()
        self.num_envs, self.obs_dim, self.act_dim, self.nq, self.nv, self.max_episode_steps = (
            i.value for i in ints)
        low = np.empty(self.act_dim)
        high = np.empty(self.act_dim)
        check(lib.flame_vec_action_bounds(h, ptr(low), ptr(high)))
        self.action_units = action_units
        self.autoreset_mode = autoreset_mode
        self.copy = copy
        self.metadata = {"autoreset_mode": autoreset_mode, "render_modes": []}
        self.render_mode = None
        self.single_observation_space = spaces.Box(-np.inf, np.inf, (self.obs_dim,), np.float64)
        if action_units == "env":
            self.single_action_space = spaces.Box(low.astype(np.float32), high.astype(np.float32),
                                                  (self.act_dim,), np.float32)
        else:
            self.single_action_space = spaces.Box(-1.0, 1.0, (self.act_dim,), np.float32)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._bufs = None

    def _arrays(self):
        if not self.copy and self._bufs is not None:
            return self._bufs
        n, s = self.num_envs, self.obs_dim
        bufs = (np.empty((n, s)), np.empty(n), np.empty(n, dtype=np.bool_),
                np.empty(n, dtype=np.bool_),
                np.empty((n, s)) if self.autoreset_mode == AutoresetMode.SAME_STEP else None)
        if not self.copy:
            self._bufs = bufs
        return bufs

    def _handle(self):
        if self._h is None:
            raise RuntimeError("the vector env is closed")
        return self._h

    def reset(self, *, seed=None, options=None):
        if isinstance(seed, (list, tuple)):
            # SyncVectorEnv's expansion of an int seed s is [s, s + 1, ...]; all None is None
            n = self.num_envs
            if len(seed) == n and all(x is None for x in seed):
                seed = None
            elif len(seed) == n and seed[0] is not None and list(seed) == [seed[0] + i
                                                                          for i in range(n)]:
                seed = seed[0]
            else:
                raise ValueError("per-env seeds are not supported: pass one int s (or the list "
                                 "[s, s + 1, ..., s + num_envs - 1]) or None")
        if options and "reset_mask" in options:
            raise ValueError("partial resets (options['reset_mask']) are not supported: the "
                             "autoreset modes reset ended episodes")
        super().reset(seed=seed)
        obs = np.empty((self.num_envs, self.obs_dim))
        check(lib.flame_vec_reset(self._handle(), 0 if seed is None else 1,
                                  0 if seed is None else int(seed) & (2**64 - 1), ptr(obs)))
        return obs, {}

    def step(self, actions):
        a = as_c(actions, np.float32, (self.num_envs, self.act_dim), "actions")
        obs, rew, term, trunc, final = self._arrays()
        check(lib.flame_vec_step(self._handle(), ptr(a), ptr(obs), ptr(rew), ptr(term),
                                 ptr(trunc), ptr(final) if final is not None else None))
        infos = {}
        if final is not None:
            for i in np.flatnonzero(term | trunc):
                infos = self._add_info(infos, {"final_obs": final[i].copy(), "final_info": {}},
                                       int(i))
        return obs, rew, term, trunc, infos

    def get_state(self, i):
        """(qpos, qvel) of env i (MuJoCo's state, as Gymnasium's data.qpos / data.qvel)"""
        qpos, qvel = np.empty(self.nq), np.empty(self.nv)
        check(lib.flame_vec_get_state(self._handle(), int(i), ptr(qpos), ptr(qvel)))
        return qpos, qvel

    def set_state(self, i, qpos, qvel):
        """Gymnasium's set_state on env i; returns that state's observation"""
        qp = as_c(qpos, np.float64, (self.nq,), "qpos")
        qv = as_c(qvel, np.float64, (self.nv,), "qvel")
        obs = np.empty(self.obs_dim)
        check(lib.flame_vec_set_state(self._handle(), int(i), ptr(qp), ptr(qv), ptr(obs)))
        return obs

    def close_extras(self, **kwargs):
        if self._h is not None:
            lib.flame_vec_free(self._h)
            self._h = None

    def __repr__(self):
        return f"FlameVectorEnv({self.env_id}, num_envs={self.num_envs})"


def make_vec(env_id, num_envs=1, **kwargs):
    """FlameVectorEnv(env_id, num_envs, **kwargs), e.g. make_vec("HalfCheetah-v5", num_envs=8)"""
    return FlameVectorEnv(env_id, num_envs, **kwargs)

