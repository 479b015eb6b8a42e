"""Activations written once for any array module (NumPy or CuPy, `xp`): the reference (in
float64) and the cuda backend's implementation, the same definitions as
csrc/elementwise/activation.cpp. forward(x) -> y; backward(dy, y) -> dx needs only the output."""

from __future__ import annotations

from .._array import array_module


def _sigmoid(x):
    xp = array_module(x)
    e = xp.exp(-xp.abs(x))                       # in (0, 1]: no overflow for any x
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


FORWARD = {
    "linear": lambda x: x.copy(),
    "relu": lambda x: array_module(x).maximum(x, x.dtype.type(0)),    # NaN stays NaN
    "sigmoid": _sigmoid,
    "tanh": lambda x: array_module(x).tanh(x),
}
BACKWARD = {
    "linear": lambda dy, y: dy.copy(),
    "relu": lambda dy, y: array_module(dy).where(y > 0, dy, dy.dtype.type(0)),
    "sigmoid": lambda dy, y: dy * y * (1 - y),
    "tanh": lambda dy, y: dy * (1 - y * y),
}


def activation(x, kind):
    return FORWARD[kind](x)


def activation_backward(dy, y, kind):
    return BACKWARD[kind](dy, y)
