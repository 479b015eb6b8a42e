"""Dropout's counter-based mask written once for any array module (NumPy or CuPy, `xp`): the
reference and the cuda backend's implementation. The hash is csrc/include/convforge/
elementwise.hpp's, in uint32 arithmetic (products wrap modulo 2^32 as in C++):
    h(x) = x ^ x>>16; x *= 0x7feb352d; x ^= x>>15; x *= 0x846ca68b; x ^= x>>16
    hash(seed, i) = h(h(lo32(i) ^ lo32(seed)) ^ hi32(seed) ^ hi32(i))
element i (flat, C order) kept iff hash(seed, i) >= threshold = floor(rate * 2^32).
"""

from __future__ import annotations

import numpy as np

from .._array import array_module


def _mix(x):
    x = x ^ (x >> 16)
    x = x * np.uint32(0x7FEB352D)
    x = x ^ (x >> 15)
    x = x * np.uint32(0x846CA68B)
    return x ^ (x >> 16)


def dropout_hash(xp, seed: int, n: int):
    """hash(seed, i) for i < n, uint32 (n,)."""
    i = xp.arange(n, dtype=xp.uint64)
    lo = (i & np.uint64(0xFFFFFFFF)).astype(xp.uint32)
    hi = (i >> np.uint64(32)).astype(xp.uint32)
    s_lo, s_hi = np.uint32(seed & 0xFFFFFFFF), np.uint32(seed >> 32)
    return _mix(_mix(lo ^ s_lo) ^ s_hi ^ hi)


def dropout(x, seed, threshold, scale):
    xp = array_module(x)
    keep = dropout_hash(xp, seed, x.size).reshape(x.shape) >= np.uint32(threshold)
    return xp.where(keep, x * x.dtype.type(scale), x.dtype.type(0))
