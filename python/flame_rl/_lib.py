"""ctypes bindings of libflame.so (include/flame/flame_api.h).

The library is looked up in this order: $FLAME_LIB (a path to libflame.so), next to this package
(flame_rl/libflame.so), the repository's build directories (build/, then build-*/), then the
system's library path (ldconfig).
"""
import ctypes
import ctypes.util
import glob
import os

import numpy as np

API_VERSION = 1
# FLAME_API_EVAL_ENV_OFFSET of flame_api.h: the env rows of `flame eval`, `flame rollout` and
# `flame render` (make_vec(..., env_index_offset=EVAL_ENV_OFFSET) steps the envs they step)
EVAL_ENV_OFFSET = 0x01000000

_c_int, _c_double, _c_float = ctypes.c_int, ctypes.c_double, ctypes.c_float
_P = ctypes.POINTER
_cstr = ctypes.c_char_p


class FlameError(RuntimeError):
    """A failure reported by libflame (the message is the library's)."""


class FlameInputError(FlameError, ValueError):
    """Bad input reported by libflame: a missing or damaged file, an unknown id, a bad size."""


def _candidates():
    env = os.environ.get("FLAME_LIB")
    if env:
        yield env
        return
    here = os.path.dirname(os.path.abspath(__file__))
    yield os.path.join(here, "libflame.so")
    repo = os.path.dirname(os.path.dirname(here))
    yield os.path.join(repo, "build", "libflame.so")
    yield from sorted(glob.glob(os.path.join(repo, "build-*", "libflame.so")))
    found = ctypes.util.find_library("flame")
    if found:
        yield found


def _load():
    tried = []
    for path in _candidates():
        if os.path.sep in path and not os.path.exists(path):
            tried.append(path)
            continue
        try:
            return ctypes.CDLL(path)
        except OSError as e:
            tried.append(f"{path} ({e})")
    raise ImportError("flame_rl cannot find libflame.so: build it (cmake --build build) or set "
                      "FLAME_LIB=/path/to/libflame.so; tried " + ", ".join(tried))


lib = _load()


def _proto(name, restype, *argtypes):
    f = getattr(lib, name)
    f.restype, f.argtypes = restype, list(argtypes)
    return f


_proto("flame_api_version", _c_int, _P(_cstr))
_proto("flame_api_last_error", _cstr)
_proto("flame_env_count", _c_int)
_proto("flame_env_id", _cstr, _c_int)
_proto("flame_env_spec", _c_int, _cstr, _P(_c_int), _P(_c_int), _P(_c_int), _P(_c_double))
_proto("flame_policy_load", _c_int, _cstr, _cstr, ctypes.c_int64, _P(ctypes.c_void_p))
_proto("flame_policy_free", None, ctypes.c_void_p)
_proto("flame_policy_info", _c_int, ctypes.c_void_p, _P(_cstr), _P(_cstr), _P(_cstr), _P(_c_int),
       _P(_c_int), _P(ctypes.c_int64), _P(ctypes.c_int64))
_proto("flame_policy_config", _cstr, ctypes.c_void_p)
_proto("flame_policy_act", _c_int, ctypes.c_void_p, ctypes.c_void_p, _c_int, _c_int,
       ctypes.c_uint32, ctypes.c_void_p)
_proto("flame_policy_to_env_units", _c_int, ctypes.c_void_p, ctypes.c_void_p, _c_int)
_proto("flame_vec_create", _c_int, _cstr, _c_int, _c_int, _c_int, _c_int, ctypes.c_uint64,
       ctypes.c_uint32, _cstr, _P(ctypes.c_void_p))
_proto("flame_vec_free", None, ctypes.c_void_p)
_proto("flame_vec_info", _c_int, ctypes.c_void_p, _P(_cstr), _P(_c_int), _P(_c_int), _P(_c_int),
       _P(_c_int), _P(_c_int), _P(_c_int))
_proto("flame_vec_action_bounds", _c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)
_proto("flame_vec_reset", _c_int, ctypes.c_void_p, _c_int, ctypes.c_uint64, ctypes.c_void_p)
_proto("flame_vec_step", _c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
       ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)
_proto("flame_vec_get_state", _c_int, ctypes.c_void_p, _c_int, ctypes.c_void_p, ctypes.c_void_p)
_proto("flame_vec_set_state", _c_int, ctypes.c_void_p, _c_int, ctypes.c_void_p, ctypes.c_void_p,
       ctypes.c_void_p)

_build = _cstr()
if lib.flame_api_version(ctypes.byref(_build)) != API_VERSION:
    raise ImportError(f"libflame.so speaks API version {lib.flame_api_version(None)}, flame_rl "
                      f"expects {API_VERSION}: rebuild the library or update the package")
BUILD = _build.value.decode()


def check(rc):
    """raises the library's error for a non-zero status"""
    if rc != 0:
        msg = (lib.flame_api_last_error() or b"").decode("utf-8", "replace")
        raise (FlameInputError if rc == 2 else FlameError)(msg or f"libflame error {rc}")


def ptr(a):
    """the data pointer of a C-contiguous numpy array (no copy)"""
    return ctypes.c_void_p(a.ctypes.data)


def as_c(a, dtype, shape, what):
    """a C-contiguous array of dtype and shape: `a` itself when it already is one, else a copy"""
    arr = np.asarray(a)
    if arr.shape != shape:
        raise ValueError(f"{what} has shape {arr.shape}, expected {shape}")
    return np.ascontiguousarray(arr, dtype=dtype)


def env_ids():
    """every env id libflame implements"""
    return [lib.flame_env_id(i).decode() for i in range(lib.flame_env_count())]


def env_spec(env_id):
    """(obs_dim, act_dim, max_episode_steps, reward_threshold or None) of an env id"""
    o, a, t, r = _c_int(), _c_int(), _c_int(), _c_double()
    check(lib.flame_env_spec(env_id.encode(), ctypes.byref(o), ctypes.byref(a), ctypes.byref(t),
                             ctypes.byref(r)))
    return o.value, a.value, t.value, (None if r.value != r.value else r.value)
