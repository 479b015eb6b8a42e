"""Elementwise ops: activation / activation_backward (linear, relu, sigmoid, tanh) and dropout (a
counter-based mask, the same on every backend)."""

from __future__ import annotations

from typing import Optional

import numpy as np

from .._array import FLOAT_DTYPES, array_module, is_cupy
from ._common import _backend, _same_dtype

# --------------------------------------------------------------------------- dropout

def dropout(x, rate: float, seed: int, *, backend: Optional[str] = None):
    """x * keep / (1 - rate): element i (flat, C order) is kept iff a counter-based hash of
    (seed, i) is >= floor(rate * 2^32) (defined in csrc/include/convforge/elementwise.hpp), so
    the mask is the same on every backend for the same seed and nothing needs storing: the
    gradient is dropout(dy, rate, seed). x: any shape, float32/float64; rate in [0, 1); seed an
    int in [0, 2^64)."""
    x = _float_array(x, "x")
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


ACTIVATIONS = ("linear", "relu", "sigmoid", "tanh")


def _float_array(a, name: str):
    """Any-shape float32/float64 NumPy or CuPy array, C-contiguous (one copy only if needed)."""
    if not (isinstance(a, np.ndarray) or is_cupy(a)):
        raise TypeError(f"{name} must be a numpy.ndarray or cupy.ndarray, got {type(a).__name__}")
    if a.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must have dtype float32 or float64, got {a.dtype} with shape "
                        f"{tuple(a.shape)}")
    return a if a.flags.c_contiguous else array_module(a).ascontiguousarray(a)


def _activation_kind(activation) -> str:
    kind = "linear" if activation is None else activation
    if kind not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {list(ACTIVATIONS)} or None, got "
                         f"{activation!r}")
    return kind


def activation(x, activation: Optional[str] = "relu", *, backend: Optional[str] = None):
    """y = f(x) elementwise, f: 'relu' (max(x, 0); NaN stays NaN), 'sigmoid' (overflow-free
    form), 'tanh', 'linear' or None (identity). Any shape, float32/float64."""
    kind = _activation_kind(activation)
    x = _float_array(x, "x")
    be = _backend(backend, is_cupy(x))
    return x.copy() if x.size == 0 else be.activation(x, kind)


def activation_backward(dy, y, activation: Optional[str] = "relu", *,
                        backend: Optional[str] = None):
    """dx = dy * f'(x), from the forward's output y (relu: y > 0; sigmoid: y (1 - y); tanh:
    1 - y^2); dy and y of one shape and dtype."""
    kind = _activation_kind(activation)
    dy, y = _float_array(dy, "dy"), _float_array(y, "y")
    if tuple(dy.shape) != tuple(y.shape):
        raise ValueError(f"y must have the shape of dy {tuple(dy.shape)}, got {tuple(y.shape)}")
    _same_dtype({"dy": dy, "y": y})
    be = _backend(backend, is_cupy(dy))
    return dy.copy() if dy.size == 0 else be.activation_backward(dy, y, kind)

