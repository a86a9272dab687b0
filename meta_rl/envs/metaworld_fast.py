"""Faster Meta-World envs with bit-identical results.

Profiling a Sawyer env's ``step`` (``docs/throughput.md``) shows MuJoCo's ``mj_step`` at only
11–27% of its time; pieces of Python take most of the rest:

* ``SawyerXYZEnv.touching_object`` (the grasp test of the push, pick-place, sweep,
  shelf-place and sweep-into rewards) builds a Python object for every contact of the
  scene, twice per step. :func:`touching_object` selects the same contacts with numpy
  masks over the contact arrays and sums their forces in the same order.
* ``Rotation.from_matrix(xmat).as_quat()`` (the object quaternion of the observation, in 22
  of the 50 task classes) spends ~60 µs per call in scipy's input checks.
  :func:`quat_from_matrix` applies a stricter orthogonality test than scipy's and, when a
  matrix passes it, calls the conversion scipy itself would call; anything else goes
  through scipy unchanged.
* ``reward_utils.tolerance`` (1–6 calls per step in most rewards) builds numpy arrays for
  ``np.where`` around one scalar, ~17 µs a call. :func:`tolerance` does the same float64
  operations on the scalar (~3 µs).
* ``_get_curr_obs_combined_no_goal`` assembles the observation through ``np.split`` and three
  ``np.hstack``; :func:`_get_curr_obs_combined_no_goal` copies the same values into one array.

:func:`fast_class` returns a subclass of a Meta-World env class with these replacements
(only for instances of that subclass: nothing in Meta-World or scipy is patched). Its
observations, rewards and infos are bit-identical to the original class's
(``tests/test_metaworld_fast.py``: full episodes of all ML10 classes with Meta-World's
scripted policies, which grasp the objects, and random actions in all 50 classes).
"""

from __future__ import annotations

import functools
import inspect
import types

import numpy as np
from metaworld.sawyer_xyz_env import SawyerXYZEnv
from metaworld.utils import reward_utils
from scipy.spatial.transform import Rotation

try:  # scipy's conversion of an orthogonal matrix (private; requirements.txt pins scipy)
    from scipy.spatial.transform._rotation_cy import _from_matrix_orthogonal
except ImportError:  # another scipy: always its public path (the same result, not faster)
    _from_matrix_orthogonal = None


def quat_from_matrix(matrix: np.ndarray) -> np.ndarray:
    """``Rotation.from_matrix(matrix).as_quat()`` for one 3×3 matrix, bit for bit.

    scipy converts a matrix whose Gram matrix is within ``atol=1e-12`` (plus ``rtol=1e-5``)
    of the identity with ``_from_matrix_orthogonal`` and orthogonalises any other first.
    A matrix within 1e-12 everywhere (no rtol) with a positive determinant passes scipy's
    test too, so it takes the same conversion here; everything else is handed to scipy.
    The test is done on Python floats (a numpy call per 3×3 operation costs more than the
    arithmetic): the Gram matrix's six distinct entries, and the determinant's sign from the
    triple product, which for a matrix that passed the Gram test is ±1 within ~1e-11, so any
    rounding gives the sign ``np.linalg.det`` gives.
    """
    if _from_matrix_orthogonal is not None and matrix.shape == (3, 3):
        (a, b, c), (d, e, f), (g, h, i) = matrix.tolist()
        if (abs(a * a + b * b + c * c - 1.0) <= 1e-12 and abs(d * d + e * e + f * f - 1.0) <= 1e-12
                and abs(g * g + h * h + i * i - 1.0) <= 1e-12 and abs(a * d + b * e + c * f) <= 1e-12
                and abs(a * g + b * h + c * i) <= 1e-12 and abs(d * g + e * h + f * i) <= 1e-12
                and a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g) > 0):
            return _from_matrix_orthogonal(matrix)
    return Rotation.from_matrix(matrix).as_quat()


class _Quat:
    __slots__ = ("quat",)

    def __init__(self, quat: np.ndarray) -> None:
        self.quat = quat

    def as_quat(self) -> np.ndarray:
        return self.quat


class _FastRotation:
    """Stands in for scipy's ``Rotation`` in Meta-World's ``Rotation.from_matrix(m).as_quat()``
    (the only way Meta-World's envs use it)."""

    @staticmethod
    def from_matrix(matrix: np.ndarray) -> _Quat:
        return _Quat(quat_from_matrix(matrix))


def touching_object(self, object_geom_id: int) -> bool:
    """``SawyerXYZEnv.touching_object`` without a Python object per contact: the same
    contacts (left or right pad against the object), their forces summed in the same order."""
    data = self.data
    ids = self.__dict__.get("_pad_geom_ids")
    if ids is None:
        ids = self._pad_geom_ids = (data.geom("leftpad_geom").id, data.geom("rightpad_geom").id)
    contact = data.contact
    g1, g2, address = contact.geom1, contact.geom2, contact.efc_address
    with_object = (g1 == object_geom_id) | (g2 == object_geom_id)
    force = data.efc_force
    left, right = (sum(force[a] for a in address[with_object & ((g1 == pad) | (g2 == pad))]) for pad in ids)
    return 0 < left and 0 < right


@functools.cache
def _sigmoid_scale(sigmoid: str, value_at_margin: float) -> np.float64:
    """The scale ``reward_utils._sigmoids`` computes for ``sigmoid`` at every call."""
    if sigmoid == "long_tail":
        return np.sqrt(1 / value_at_margin - 1)
    return np.sqrt(-2 * np.log(value_at_margin))


def tolerance(x, bounds=(0.0, 0.0), margin=0.0, sigmoid="gaussian", value_at_margin=0.1):
    """``reward_utils.tolerance`` for a scalar ``x`` (a float or a numpy float64) and the two
    sigmoids Meta-World's rewards use (``long_tail``, ``gaussian``), bit for bit: the same float64
    operations on the one value, without building arrays for ``np.where``. Anything else
    (arrays, other sigmoids, a value at margin outside (0, 1)) goes to Meta-World's function."""
    kind = type(x)
    if (kind is not float and kind is not np.float64) or sigmoid not in ("long_tail", "gaussian") or not 0 < value_at_margin < 1:
        return reward_utils.tolerance(x, bounds, margin, sigmoid, value_at_margin)
    lower, upper = bounds
    if lower > upper:
        raise ValueError("Lower bound must be <= upper bound.")
    if margin < 0:
        raise ValueError(f"`margin` must be non-negative. Current value: {margin}")
    if lower <= x <= upper:
        return 1.0
    if margin == 0:
        return 0.0
    d = np.float64(lower - x if x < lower else x - upper) / margin
    scale = _sigmoid_scale(sigmoid, value_at_margin)
    if sigmoid == "long_tail":
        return float(1 / ((d * scale) ** 2 + 1))
    return float(np.exp(-0.5 * (d * scale) ** 2))


# Stands in for the ``reward_utils`` module in Meta-World's reward code: :func:`tolerance`,
# everything else the module's own (plain attributes: no lookup cost for hamacher_product & co.).
_REWARD_UTILS = types.SimpleNamespace(**{**vars(reward_utils), "tolerance": tolerance})


def _get_curr_obs_combined_no_goal(self) -> np.ndarray:
    """``SawyerXYZEnv._get_curr_obs_combined_no_goal`` (hand position, gripper opening, each
    object's position and quaternion, zero-padded) written into one array instead of through
    ``np.split`` and three ``np.hstack``: the same values, copied, not computed differently."""
    pos_hand = self.get_endeff_pos()
    data = self.data
    gripper = np.linalg.norm(data.body("rightclaw").xpos - data.body("leftclaw").xpos)
    gripper = np.clip(gripper / 0.1, 0.0, 1.0)
    obj_pos, obj_quat = self._get_pos_objects(), self._get_quat_objects()
    n = len(obj_pos) // 3
    if len(obj_pos) % 3 or len(obj_quat) != 4 * n:  # Meta-World's assertions and shape check
        return SawyerXYZEnv._get_curr_obs_combined_no_goal(self)
    out = np.zeros(4 + self._obs_obj_max_len)
    out[:3] = pos_hand
    out[3] = gripper
    for i in range(n):
        out[4 + 7 * i : 7 + 7 * i] = obj_pos[3 * i : 3 * i + 3]
        out[7 + 7 * i : 11 + 7 * i] = obj_quat[4 * i : 4 * i + 4]
    return out


# Names in Meta-World's methods that are read from their module's globals, and what reads them instead.
_FAST_GLOBALS = {"Rotation": (Rotation, _FastRotation), "reward_utils": (reward_utils, _REWARD_UTILS),
                 "tolerance": (reward_utils.tolerance, tolerance)}


def _with_fast_globals(func: types.FunctionType) -> types.FunctionType | None:
    """``func`` reading the stand-ins of :data:`_FAST_GLOBALS` from a copy of its module's
    globals, or None if it reads none of them."""
    names = [name for name, (original, _) in _FAST_GLOBALS.items()
             if name in func.__code__.co_names and func.__globals__.get(name) is original]
    if not names:
        return None
    module_globals = {**func.__globals__, **{name: _FAST_GLOBALS[name][1] for name in names}}
    fast = types.FunctionType(func.__code__, module_globals, func.__name__, func.__defaults__, func.__closure__)
    fast.__kwdefaults__, fast.__qualname__ = func.__kwdefaults__, func.__qualname__
    return fast


@functools.cache
def fast_class(cls: type) -> type:
    """A subclass of the Meta-World env class ``cls`` with :func:`touching_object`, Meta-World's
    observation layout through :func:`_get_curr_obs_combined_no_goal` (unless ``cls`` has its
    own), and every method that calls scipy's ``Rotation`` or ``reward_utils.tolerance`` reading
    :class:`_FastRotation` and :func:`tolerance` instead."""
    namespace = {"touching_object": touching_object, "__module__": __name__}
    if inspect.getattr_static(cls, "_get_curr_obs_combined_no_goal") is SawyerXYZEnv._get_curr_obs_combined_no_goal:
        namespace["_get_curr_obs_combined_no_goal"] = _get_curr_obs_combined_no_goal
    for name in dir(cls):
        attr = inspect.getattr_static(cls, name)  # a plain function for a method (not static)
        if isinstance(attr, types.FunctionType) and name not in namespace:
            fast = _with_fast_globals(attr)
            if fast is not None:
                namespace[name] = fast
    return type(cls.__name__, (cls,), namespace)
