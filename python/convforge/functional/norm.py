"""Batch normalisation ops: batch_norm_stats, batch_norm (+ fused ReLU), batch_norm_backward."""

from __future__ import annotations

from typing import Optional

import numpy as np

from .._array import array_module, is_cupy
from ._common import _array, _backend, _same_dtype, _zeros

# --------------------------------------------------------------------------- batch normalisation

def _norm_input(x, name: str):
    """x (N, C, H, W) or (N, C), N may be 0 -> (x, its (N, C, HW) view)."""
    if getattr(x, "ndim", None) not in (2, 4):
        x = _array(x, name, 4, "(N, C, H, W) or (N, C)", batch=True)  # raises the type/rank
    x = _array(x, name, x.ndim, "(N, C, H, W) or (N, C)", batch=True)
    hw = int(np.prod(x.shape[2:], dtype=np.int64))
    return x, x.reshape(x.shape[0], x.shape[1], hw)


def _norm_params(x, mean, var, gamma, beta, eps):
    """(mean float64, inv_std float64, gamma, beta) for channels of x; ValueError/TypeError
    naming the argument otherwise."""
    c, xp = x.shape[1], array_module(x)
    eps = float(eps)
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps!r}")
    stats = {}
    for name, v in (("mean", mean), ("var", var)):
        v = _array(v, name, 1, "(C,)")
        if is_cupy(v) != is_cupy(x):
            raise TypeError(f"{name} and x must both be NumPy or both be CuPy arrays")
        if v.shape[0] != c:
            raise ValueError(f"{name} must have shape ({c},) for x {tuple(x.shape)}, got "
                             f"{tuple(v.shape)}")
        stats[name] = xp.asarray(v, dtype=np.float64)
    if bool((stats["var"] < 0).any()):
        raise ValueError("var must be >= 0 everywhere")
    for name, v in (("gamma", gamma), ("beta", beta)):
        if v is not None and (getattr(v, "ndim", None) != 1 or v.shape[0] != c):
            raise ValueError(f"{name} must have shape ({c},) for x {tuple(x.shape)}, got "
                             f"{tuple(getattr(v, 'shape', ()))}")
    gamma = None if gamma is None else _array(gamma, "gamma", 1, "(C,)")
    beta = None if beta is None else _array(beta, "beta", 1, "(C,)")
    _same_dtype({"x": x, "gamma": gamma, "beta": beta})
    return stats["mean"], 1.0 / xp.sqrt(stats["var"] + eps), gamma, beta


def batch_norm_stats(x, *, backend: Optional[str] = None):
    """Per-channel mean and biased variance of x (N, C, H, W) or (N, C) over every axis but 1,
    in float64 (shifted sums: a mean far from 0 cannot cancel the variance away) -> (mean,
    var), float64 (C,) each. N >= 1."""
    x, x3 = _norm_input(x, "x")
    be = _backend(backend, is_cupy(x))
    if x.shape[0] == 0:
        raise ValueError(f"x has no samples (shape {tuple(x.shape)}): a batch of 0 has no "
                         "statistics")
    return be.batch_norm_stats(x3)


def batch_norm(x, mean, var, gamma=None, beta=None, eps: float = 1e-3, relu: bool = False, *,
               backend: Optional[str] = None):
    """y = (x - mean) / sqrt(var + eps) * gamma + beta per channel (axis 1), then max(y, 0)
    when relu (BatchNormalization + ReLU in one pass).

    x (N, C, H, W) or (N, C) (N may be 0); mean, var (C,) float32 or float64 (the batch's from
    batch_norm_stats, or moving statistics); gamma, beta (C,) of x's dtype, or None (1 and 0).
    """
    x, x3 = _norm_input(x, "x")
    mean, inv, gamma, beta = _norm_params(x, mean, var, gamma, beta, eps)
    be = _backend(backend, is_cupy(x))
    if x.shape[0] == 0:
        return _zeros(x, x.shape)
    return be.batch_norm(x3, mean, inv, gamma, beta, bool(relu)).reshape(x.shape)


def batch_norm_backward(dy, x, mean, var, gamma=None, beta=None, eps: float = 1e-3,
                        relu: bool = False, batch_stats: bool = True, *, need_dx: bool = True,
                        backend: Optional[str] = None):
    """Gradients of batch_norm (same x, mean, var, gamma, beta, eps, relu): (dx, dgamma, dbeta),
    dgamma and dbeta of x's dtype (C,) (also without gamma / beta: the gradients they would
    get); dx is None when need_dx=False. batch_stats=True: mean and var were x's own batch
    statistics (training), so dx also flows through them; False: they were constants (moving
    statistics, inference or a frozen layer). With relu, dy is masked where the forward's
    pre-activation was not > 0."""
    x, x3 = _norm_input(x, "x")
    dy, dy3 = _norm_input(dy, "dy")
    if tuple(dy.shape) != tuple(x.shape):
        raise ValueError(f"dy must have the shape of x {tuple(x.shape)}, got {tuple(dy.shape)}")
    _same_dtype({"x": x, "dy": dy})
    mean, inv, gamma, beta = _norm_params(x, mean, var, gamma, beta, eps)
    be = _backend(backend, is_cupy(x))
    if x.shape[0] == 0:
        if batch_stats:
            raise ValueError("batch_stats=True needs a batch with samples (x has N = 0)")
        c = x.shape[1]
        return (_zeros(x, x.shape) if need_dx else None), _zeros(x, (c,)), _zeros(x, (c,))
    dx, dgamma, dbeta = be.batch_norm_backward(dy3, x3, mean, inv, gamma, beta, bool(relu),
                                               bool(batch_stats), bool(need_dx))
    return (None if dx is None else dx.reshape(x.shape), dgamma.astype(x.dtype),
            dbeta.astype(x.dtype))
