"""Faster Meta-World envs with bit-identical results.

Profiling a Sawyer env's ``step`` (``docs/throughput.md``) shows MuJoCo's ``mj_step`` at only
11–27% of its time; two pieces of Python dominate the rest on half of ML10:

* ``SawyerXYZEnv.touching_object`` (the grasp test of the push, pick-place, sweep,
  shelf-place and sweep-into rewards) builds a Python object for every contact of the
  scene, twice per step. :func:`touching_object` selects the same contacts with numpy
  masks over the contact arrays and sums their forces in the same order.
* ``Rotation.from_matrix(xmat).as_quat()`` (the object quaternion of the observation, in 22
  of the 50 task classes) spends ~60 µs per call in scipy's input checks.
  :func:`quat_from_matrix` applies a stricter orthogonality test than scipy's and, when a
  matrix passes it, calls the conversion scipy itself would call; anything else goes
  through scipy unchanged.

:func:`fast_class` returns a subclass of a Meta-World env class with these two replacements
(only for instances of that subclass: nothing in Meta-World or scipy is patched). Its
observations, rewards and infos are bit-identical to the original class's
(``tests/test_metaworld_fast.py``, over full episodes of all ML10 classes with Meta-World's
scripted policies, which grasp the objects).
"""

from __future__ import annotations

import functools
import inspect
import types

import numpy as np
from scipy.spatial.transform import Rotation

try:  # scipy's conversion of an orthogonal matrix (private; requirements.txt pins scipy)
    from scipy.spatial.transform._rotation_cy import _from_matrix_orthogonal
except ImportError:  # another scipy: always its public path (the same result, not faster)
    _from_matrix_orthogonal = None

_EYE = np.eye(3)


def quat_from_matrix(matrix: np.ndarray) -> np.ndarray:
    """``Rotation.from_matrix(matrix).as_quat()`` for one 3×3 matrix, bit for bit.

    scipy converts a matrix whose Gram matrix is within ``atol=1e-12`` (plus ``rtol=1e-5``)
    of the identity with ``_from_matrix_orthogonal`` and orthogonalises any other first.
    A matrix within 1e-12 everywhere (no rtol) with a positive determinant passes scipy's
    test too, so it takes the same conversion here; everything else is handed to scipy.
    """
    if (_from_matrix_orthogonal is not None and (np.abs(matrix @ matrix.T - _EYE) <= 1e-12).all()
            and np.linalg.det(matrix) > 0):
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


def _with_fast_rotation(func: types.FunctionType) -> types.FunctionType:
    """``func`` reading ``Rotation`` from a copy of its module's globals holding _FastRotation."""
    module_globals = {**func.__globals__, "Rotation": _FastRotation}
    fast = types.FunctionType(func.__code__, module_globals, func.__name__, func.__defaults__, func.__closure__)
    fast.__kwdefaults__, fast.__qualname__ = func.__kwdefaults__, func.__qualname__
    return fast


@functools.cache
def fast_class(cls: type) -> type:
    """A subclass of the Meta-World env class ``cls`` with :func:`touching_object` and every
    method that calls scipy's ``Rotation`` reading :class:`_FastRotation` instead."""
    namespace = {"touching_object": touching_object, "__module__": __name__}
    for name in dir(cls):
        attr = inspect.getattr_static(cls, name)  # a plain function for a method (not static)
        if (isinstance(attr, types.FunctionType) and "Rotation" in attr.__code__.co_names
                and attr.__globals__.get("Rotation") is Rotation):
            namespace[name] = _with_fast_rotation(attr)
    return type(cls.__name__, (cls,), namespace)
