"""Batch normalisation written once for any array module (NumPy or CuPy: `xp`, the module of
the arguments): the cuda backend's implementation, as array expressions that CuPy runs as its
own elementwise and reduction kernels (statistics in float64, shifted by x[0, c, 0] like the C++
kernels; the same formulas as csrc/norm/batch_norm.cpp). Tested on NumPy arrays in CI
(tests/api/test_batch_norm.py), where no GPU is needed.

Layout and signatures: the backend registry's (convforge.backends): x, dy (N, C, HW); mean,
inv_std float64 (C,); gamma, beta (C,) of x's dtype or None.
"""

from __future__ import annotations

from .._array import array_module


def batch_norm_stats(x):
    xp = array_module(x)
    x64 = x.astype(xp.float64)
    d = x64 - x64[0, :, 0][None, :, None]                  # shifted by K = x[0, c, 0]
    m = x.shape[0] * x.shape[2]
    dm = d.sum(axis=(0, 2)) / m
    var = xp.maximum((d * d).sum(axis=(0, 2)) / m - dm * dm, 0.0)
    return x64[0, :, 0] + dm, var


def _affine(x, mean, inv_std, gamma, beta):
    """The forward's per-channel (m, s, b) in x's dtype, shaped (1, C, 1): pre = (x - m) s + b."""
    xp = array_module(x)
    s = inv_std if gamma is None else gamma.astype(xp.float64) * inv_std
    b = xp.zeros(x.shape[1], x.dtype) if beta is None else beta
    return tuple(v.astype(x.dtype)[None, :, None] for v in (mean, s, b))


def batch_norm(x, mean, inv_std, gamma, beta, relu):
    m, s, b = _affine(x, mean, inv_std, gamma, beta)
    y = (x - m) * s + b
    return array_module(x).maximum(y, 0) if relu else y     # maximum keeps NaN


def batch_norm_backward(dy, x, mean, inv_std, gamma, beta, relu, batch_stats, need_dx):
    xp = array_module(x)
    m, s, b = _affine(x, mean, inv_std, gamma, beta)
    g = xp.where((x - m) * s + b > 0, dy, 0).astype(x.dtype) if relu else dy
    g64 = g.astype(xp.float64)
    sb = g64.sum(axis=(0, 2))
    sg = (g64 * (x.astype(xp.float64) - mean[None, :, None])).sum(axis=(0, 2))
    if not need_dx:
        return None, sg * inv_std, sb
    k1 = s                                                  # gamma * inv_std in x's dtype
    if not batch_stats:
        return g * k1, sg * inv_std, sb
    n = x.shape[0] * x.shape[2]
    k2 = (inv_std * inv_std * sg / n).astype(x.dtype)[None, :, None]
    k3 = (sb / n).astype(x.dtype)[None, :, None]
    return (g - k3 - (x - m) * k2) * k1, sg * inv_std, sb
