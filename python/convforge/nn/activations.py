"""Activation functions of the layers: each is (forward(x) -> y, backward(y, dy) -> dx), so
backward needs only the output. NumPy or CuPy arrays (the module comes from the input)."""

from __future__ import annotations

from typing import Callable, Optional

from .._array import array_module

__all__ = ["ACTIVATIONS"]


def _relu(x):
    return array_module(x).maximum(x, 0)


def _relu_grad(y, dy):
    return dy * (y > 0)


def _sigmoid(x):
    xp = array_module(x)
    e = xp.exp(-xp.abs(x))                       # in (0, 1]: no overflow for any x
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _sigmoid_grad(y, dy):
    return dy * y * (1 - y)


def _tanh(x):
    return array_module(x).tanh(x)


def _tanh_grad(y, dy):
    return dy * (1 - y * y)


def _softmax(x, axis: int = 1):
    xp = array_module(x)
    e = xp.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _softmax_grad(y, dy, axis: int = 1):
    return y * (dy - (dy * y).sum(axis=axis, keepdims=True))


def _linear(x):
    return x


def _linear_grad(y, dy):
    return dy


ACTIVATIONS: dict[str, tuple[Callable, Callable]] = {
    "linear": (_linear, _linear_grad),
    "relu": (_relu, _relu_grad),
    "sigmoid": (_sigmoid, _sigmoid_grad),
    "tanh": (_tanh, _tanh_grad),
    "softmax": (_softmax, _softmax_grad),   # over axis 1 (classes / channels)
}


def _activation(name: Optional[str]) -> str:
    if name is None:
        return "linear"
    if not isinstance(name, str) or name.lower() not in ACTIVATIONS:
        raise ValueError(f"activation must be None or one of {sorted(ACTIVATIONS)}, got {name!r}")
    return name.lower()
