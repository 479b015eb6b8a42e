"""The one place for array-module, dtype and integer checks.

Every module of the package asks here whether an array is a CuPy array, which array module
(numpy or cupy) goes with it, and whether a Python argument is a usable int. CuPy is never
imported to answer: an array is a CuPy array when its type comes from the cupy package, so
NumPy-only installs pay nothing.
"""

from __future__ import annotations

import math
import numbers
from types import ModuleType

import numpy as np

__all__ = ["FLOAT_DTYPES", "INT64_MAX", "array_module", "int64", "int_at_least", "is_cupy",
           "is_int", "nonneg_float", "on_device_of", "positive_int", "xp_of"]

# The float dtypes every op takes (no silent conversion between them).
FLOAT_DTYPES = (np.float32, np.float64)

# The kernels index with int64. Every size, coordinate and size product they compute must fit
# (Python ints never overflow, so this is where the exact test is cheap).
INT64_MAX = 2**63 - 1


def is_cupy(a) -> bool:
    """Whether `a` is a CuPy array (or another object of the cupy package)."""
    if type(a) is np.ndarray:  # the common case, without the module-name test
        return False
    return type(a).__module__.split(".")[0] == "cupy"


def array_module(a) -> ModuleType:
    """numpy, or cupy when `a` is a CuPy array."""
    if type(a) is not np.ndarray and is_cupy(a):
        import cupy

        return cupy
    return np


def on_device_of(a, host):
    """The NumPy array `host` (e.g. a shuffling order) moved to `a`'s device when `a` is a CuPy
    array, else `host` itself: move it once, not once per batch."""
    return host if not is_cupy(a) else array_module(a).asarray(host)


def xp_of(*arrays) -> ModuleType:
    """The array module of the first CuPy array among `arrays` (None and numbers allowed), else
    numpy."""
    for a in arrays:
        if is_cupy(a):
            return array_module(a)
    return np


def is_int(v) -> bool:
    """Whether v is a Python or NumPy integer (a bool is not)."""
    return not isinstance(v, bool) and isinstance(v, (int, np.integer))


def positive_int(v, name: str) -> int:
    """v as an int >= 1 (see is_int); ValueError naming `name`."""
    if not is_int(v) or v < 1:
        raise ValueError(f"{name} must be a positive int, got {v!r}")
    return int(v)


def int_at_least(v, name: str, minimum: int) -> int:
    """v as an int >= minimum (see is_int); ValueError naming `name`."""
    if not is_int(v) or v < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {v!r}")
    return int(v)


def nonneg_float(v, name: str) -> float:
    """v (a Python or NumPy real number, not a bool) as a finite float >= 0."""
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(v).__name__}")
    v = float(v)
    if not (math.isfinite(v) and v >= 0.0):
        raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
    return v


def int64(v, name: str) -> int:
    """v as an int that fits in int64 (any integral type but bool): TypeError for a non-integer,
    ValueError when it does not fit, each naming `name`."""
    if type(v) is not int:  # the common case skips the abstract-class check below
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise TypeError(f"{name} must be an int, got {type(v).__name__} {v!r}")
        v = int(v)
    if not -INT64_MAX <= v <= INT64_MAX:
        raise ValueError(f"{name} must fit in a 64-bit integer, got {v!r}")
    return v
