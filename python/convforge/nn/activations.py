"""Activation functions of the layers: each is (forward(x) -> y, backward(y, dy) -> dx), so
backward needs only the output. relu, sigmoid and tanh are convforge.functional's activation
ops (every backend); softmax is here. NumPy or CuPy arrays (the module comes from the input)."""

from __future__ import annotations

from typing import Callable, Optional

from .. import functional as F
from .._array import array_module

__all__ = ["ACTIVATIONS"]


def _elementwise(kind: str):
    """(forward, backward) of convforge.functional's activation `kind` (every backend)."""
    return (lambda x: F.activation(x, kind),
            lambda y, dy: F.activation_backward(dy, y, kind))


def _softmax(x, axis: int = 1):
    xp = array_module(x)
    e = xp.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _softmax_grad(y, dy, axis: int = 1):
    return y * (dy - (dy * y).sum(axis=axis, keepdims=True))


ACTIVATIONS: dict[str, tuple[Callable, Callable]] = {
    "linear": (lambda x: x, lambda y, dy: dy),
    "relu": _elementwise("relu"),
    "sigmoid": _elementwise("sigmoid"),
    "tanh": _elementwise("tanh"),
    "softmax": (_softmax, _softmax_grad),   # over axis 1 (classes / channels)
}


def _activation(name: Optional[str]) -> str:
    if name is None:
        return "linear"
    if not isinstance(name, str) or name.lower() not in ACTIVATIONS:
        raise ValueError(f"activation must be None or one of {sorted(ACTIVATIONS)}, got {name!r}")
    return name.lower()
