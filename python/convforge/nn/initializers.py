"""Weight initialisers: callables `init(shape, dtype, rng) -> numpy array`.

Fans follow the layouts used by the layers: Dense kernels are (in, units), Conv2D kernels are
OIHW (filters, C/groups, KH, KW), so for a conv fan_in = C/groups*KH*KW and
fan_out = filters*KH*KW (Keras' rule); 1-D shapes use fan_in = fan_out = size.

Names (`get(name)`):
  glorot_uniform   U(-l, l), l = sqrt(6 / (fan_in + fan_out))              (Keras and PyTorch)
  glorot_normal    N(0, 2 / (fan_in + fan_out))                          (PyTorch xavier_normal_)
  glorot_truncated_normal  same variance, cut at 2 sigma                 (Keras 'glorot_normal')
  he_uniform       U(-l, l), l = sqrt(6 / fan_in)
  he_normal        N(0, 2 / fan_in)                                      (PyTorch kaiming_normal_)
  he_truncated_normal      same variance, cut at 2 sigma                 (Keras 'he_normal')
  lecun_uniform, lecun_normal (scale 1 on fan_in), truncated_normal (stddev 0.05),
  random_normal (stddev 0.05), random_uniform (+-0.05), zeros, ones.
The truncated forms resample values beyond 2 sigma and divide sigma by 0.8796... so that the
variance after truncation is the requested one (as Keras and TensorFlow do).
"""

from __future__ import annotations

import math
from typing import Callable, Optional, Sequence, Union

import numpy as np

__all__ = ["Initializer", "VarianceScaling", "GlorotUniform", "GlorotNormal", "HeUniform",
           "HeNormal", "RandomNormal", "RandomUniform", "TruncatedNormal", "Zeros", "Ones",
           "Constant", "compute_fans", "get"]

# std of a standard normal truncated to [-2, 2]; dividing sigma by it restores the variance.
_TRUNC_STD = 0.87962566103423978


def compute_fans(shape: Sequence[int]) -> tuple[int, int]:
    """(fan_in, fan_out) for a kernel of this shape: (in, out) for 2-D, OIHW for 4-D."""
    shape = tuple(int(s) for s in shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = int(np.prod(shape[2:]))
    return shape[1] * receptive, shape[0] * receptive


def _truncated_normal(rng: np.random.Generator, shape, mean: float, stddev: float):
    """N(mean, stddev^2) with every value beyond 2 stddev redrawn."""
    out = rng.standard_normal(shape)
    bad = np.abs(out) > 2.0
    while bad.any():
        out[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(out) > 2.0
    return mean + stddev * out


class Initializer:
    """Base class: `init(shape, dtype, rng)` returns a new NumPy array of that shape and dtype."""

    def __call__(self, shape: Sequence[int], dtype="float32",
                 rng: Optional[np.random.Generator] = None) -> np.ndarray:
        if rng is None:   # a seed from the generator convforge.set_seed seeds
            from .base import _new_seed

            rng = np.random.default_rng(_new_seed())
        return np.asarray(self.sample(tuple(int(s) for s in shape), rng), dtype=dtype)

    def sample(self, shape: tuple, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class VarianceScaling(Initializer):
    """Variance scale / n with n = fan_in, fan_out or their mean ('fan_avg');
    distribution 'uniform', 'normal' or 'truncated_normal'."""

    def __init__(self, scale: float = 1.0, mode: str = "fan_in",
                 distribution: str = "truncated_normal"):
        if scale <= 0:
            raise ValueError(f"scale must be > 0, got {scale!r}")
        if mode not in ("fan_in", "fan_out", "fan_avg"):
            raise ValueError(f"mode must be 'fan_in', 'fan_out' or 'fan_avg', got {mode!r}")
        if distribution not in ("uniform", "normal", "truncated_normal"):
            raise ValueError("distribution must be 'uniform', 'normal' or 'truncated_normal', "
                             f"got {distribution!r}")
        self.scale, self.mode, self.distribution = float(scale), mode, distribution

    def sample(self, shape, rng):
        fan_in, fan_out = compute_fans(shape)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        var = self.scale / max(1.0, n)
        if self.distribution == "uniform":
            limit = math.sqrt(3.0 * var)
            return rng.uniform(-limit, limit, shape)
        if self.distribution == "normal":
            return rng.normal(0.0, math.sqrt(var), shape)
        return _truncated_normal(rng, shape, 0.0, math.sqrt(var) / _TRUNC_STD)


class GlorotUniform(VarianceScaling):
    def __init__(self):
        super().__init__(1.0, "fan_avg", "uniform")


class GlorotNormal(VarianceScaling):
    def __init__(self, truncated: bool = False):
        super().__init__(1.0, "fan_avg", "truncated_normal" if truncated else "normal")


class HeUniform(VarianceScaling):
    def __init__(self):
        super().__init__(2.0, "fan_in", "uniform")


class HeNormal(VarianceScaling):
    def __init__(self, truncated: bool = False):
        super().__init__(2.0, "fan_in", "truncated_normal" if truncated else "normal")


class RandomNormal(Initializer):
    def __init__(self, mean: float = 0.0, stddev: float = 0.05):
        self.mean, self.stddev = float(mean), float(stddev)

    def sample(self, shape, rng):
        return rng.normal(self.mean, self.stddev, shape)


class TruncatedNormal(Initializer):
    """N(mean, stddev^2) cut at 2 stddev (values outside are redrawn; stddev not rescaled)."""

    def __init__(self, mean: float = 0.0, stddev: float = 0.05):
        self.mean, self.stddev = float(mean), float(stddev)

    def sample(self, shape, rng):
        return _truncated_normal(rng, shape, self.mean, self.stddev)


class RandomUniform(Initializer):
    def __init__(self, minval: float = -0.05, maxval: float = 0.05):
        self.minval, self.maxval = float(minval), float(maxval)

    def sample(self, shape, rng):
        return rng.uniform(self.minval, self.maxval, shape)


class Constant(Initializer):
    def __init__(self, value: float = 0.0):
        self.value = float(value)

    def sample(self, shape, rng):
        return np.full(shape, self.value)


class Zeros(Constant):
    def __init__(self):
        super().__init__(0.0)


class Ones(Constant):
    def __init__(self):
        super().__init__(1.0)


_NAMES: dict[str, Callable[[], Initializer]] = {
    "glorot_uniform": GlorotUniform,
    "glorot_normal": GlorotNormal,
    "glorot_truncated_normal": lambda: GlorotNormal(truncated=True),
    "xavier_uniform": GlorotUniform,
    "xavier_normal": GlorotNormal,
    "he_uniform": HeUniform,
    "he_normal": HeNormal,
    "he_truncated_normal": lambda: HeNormal(truncated=True),
    "kaiming_uniform": HeUniform,
    "kaiming_normal": HeNormal,
    "lecun_uniform": lambda: VarianceScaling(1.0, "fan_in", "uniform"),
    "lecun_normal": lambda: VarianceScaling(1.0, "fan_in", "truncated_normal"),
    "truncated_normal": TruncatedNormal,
    "random_normal": RandomNormal,
    "random_uniform": RandomUniform,
    "zeros": Zeros,
    "ones": Ones,
}


def get(init: Union[str, Initializer, Callable]) -> Callable:
    """An initialiser from its name, or the given initialiser/callable unchanged."""
    if isinstance(init, str):
        key = init.lower()
        if key not in _NAMES:
            raise ValueError(f"unknown initializer {init!r}; choose one of {sorted(_NAMES)}")
        return _NAMES[key]()
    if callable(init):
        return init
    raise TypeError(f"initializer must be a name or a callable, got {type(init).__name__}")
