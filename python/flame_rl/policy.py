"""Policy: a FLAME checkpoint's policy acting on numpy observations through libflame."""
import ctypes

import numpy as np

from ._lib import as_c, check, lib, ptr


class Policy:
    """The policy of a checkpoint (runs/<name>/ckpt/step_<N>.h5): its EMA policy, as `flame eval`
    and `flame rollout` run it, on the backend the checkpoint names unless `backend` says
    otherwise ("auto", "cpu" or "cuda").

    act(obs) takes one observation (obs_dim,) or a batch (n, obs_dim) and returns float32 actions
    (act_dim,) or (n, act_dim), in env units (what the env's step() receives) or, with
    units="agent", in the networks' [-1, 1] units. deterministic=True is the evaluation action;
    False the exploring action of training. The random draws behind an action are addressed by
    (seed, call, row): `call` counts act() calls from 0 unless given, exactly as `flame eval`
    numbers its steps, so the same seed, calls and batch rows give the same actions.
    """

    def __init__(self, handle):
        self._h = handle
        env, algo, backend = ctypes.c_char_p(), ctypes.c_char_p(), ctypes.c_char_p()
        o, a = ctypes.c_int(), ctypes.c_int()
        u, s = ctypes.c_int64(), ctypes.c_int64()
        check(lib.flame_policy_info(handle, ctypes.byref(env), ctypes.byref(algo),
                                    ctypes.byref(backend), ctypes.byref(o), ctypes.byref(a),
                                    ctypes.byref(u), ctypes.byref(s)))
        self.env_id, self.algo, self.backend = (env.value.decode(), algo.value.decode(),
                                                backend.value.decode())
        self.obs_dim, self.act_dim = o.value, a.value
        self.updates, self.env_steps = u.value, s.value
        self.config = lib.flame_policy_config(handle).decode()  # the resolved YAML
        self.calls = 0

    @classmethod
    def load(cls, ckpt, backend="auto", seed=None):
        """loads a checkpoint; seed=None keeps its run.seed (like `flame eval` without --seed)"""
        h = ctypes.c_void_p()
        check(lib.flame_policy_load(str(ckpt).encode(), backend.encode() if backend else None,
                                    -1 if seed is None else int(seed), ctypes.byref(h)))
        return cls(h)

    def act(self, obs, deterministic=True, units="env", call=None):
        if self._h is None:
            raise RuntimeError("the policy is closed")
        if units not in ("env", "agent"):
            raise ValueError(f"units must be 'env' or 'agent', got {units!r}")
        arr = np.asarray(obs)
        if arr.ndim not in (1, 2):
            raise ValueError(f"obs must be (obs_dim,) or (n, obs_dim), got shape {arr.shape}")
        single = arr.ndim == 1
        batch = arr[None] if single else arr
        n = batch.shape[0]
        # float32 C-contiguous input is passed as it is; anything else is converted once
        x = as_c(batch, np.float32, (n, self.obs_dim), "obs")
        out = np.empty((n, self.act_dim), dtype=np.float32)
        if call is None:
            call = self.calls
        self.calls = int(call) + 1
        check(lib.flame_policy_act(self._h, ptr(x), n, 1 if deterministic else 0,
                                   int(call) & 0xFFFFFFFF, ptr(out)))
        if units == "env":
            check(lib.flame_policy_to_env_units(self._h, ptr(out), n))
        return out[0] if single else out

    __call__ = act

    def close(self):
        if self._h is not None:
            lib.flame_policy_free(self._h)
            self._h = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass

    def __repr__(self):
        return (f"Policy({self.algo} on {self.env_id}, obs {self.obs_dim}, act {self.act_dim}, "
                f"{self.updates} updates, backend {self.backend})")
