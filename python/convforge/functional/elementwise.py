"""Elementwise ops: dropout (a counter-based mask, the same on every backend)."""

from __future__ import annotations

from typing import Optional

import numpy as np

from .._array import FLOAT_DTYPES, array_module, is_cupy
from ._common import _backend

# --------------------------------------------------------------------------- dropout

def dropout(x, rate: float, seed: int, *, backend: Optional[str] = None):
    """x * keep / (1 - rate): element i (flat, C order) is kept iff a counter-based hash of
    (seed, i) is >= floor(rate * 2^32) (defined in csrc/include/convforge/elementwise.hpp), so
    the mask is the same on every backend for the same seed and nothing needs storing: the
    gradient is dropout(dy, rate, seed). x: any shape, float32/float64; rate in [0, 1); seed an
    int in [0, 2^64)."""
    if not (isinstance(x, np.ndarray) or is_cupy(x)):
        raise TypeError(f"x must be a numpy.ndarray or cupy.ndarray, got {type(x).__name__}")
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"x must have dtype float32 or float64, got {x.dtype} with shape "
                        f"{tuple(x.shape)}")
    if not x.flags.c_contiguous:
        x = array_module(x).ascontiguousarray(x)
    rate = float(rate)
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"rate must be in [0, 1), got {rate!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    seed = int(seed)
    if not 0 <= seed < 2**64:
        raise ValueError(f"seed must be in [0, 2**64), got {seed}")
    be = _backend(backend, is_cupy(x))
    if x.size == 0:
        return x.copy()
    return be.dropout(x, seed, int(rate * 4294967296.0), 1.0 / (1.0 - rate))
