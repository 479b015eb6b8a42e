"""Numba kernel of dropout (the twin of csrc/elementwise/dropout.cpp; the mask's hash is defined
in csrc/include/convforge/elementwise.hpp and backends/_xp_dropout.py): parallel over blocks of
the flat array; each element's mask depends only on (seed, its index)."""

from __future__ import annotations

import numpy as np
from numba import prange

from ._numba_kernels import _helper, _kernel

BLOCK = 1 << 15


@_helper
def _mix(x):
    x = np.uint32(x ^ (x >> np.uint32(16)))
    x = np.uint32(x * np.uint32(0x7FEB352D))
    x = np.uint32(x ^ (x >> np.uint32(15)))
    x = np.uint32(x * np.uint32(0x846CA68B))
    return np.uint32(x ^ (x >> np.uint32(16)))


@_kernel
def dropout_apply(y, x, seed_lo, seed_hi, threshold, scale):
    # y, x (n,) flat; seed_lo, seed_hi, threshold uint32; scale in x's dtype
    n = x.shape[0]
    for b in prange((n + BLOCK - 1) // BLOCK):
        for i in range(b * BLOCK, min(n, (b + 1) * BLOCK)):
            lo = np.uint32(np.uint64(i) & np.uint64(0xFFFFFFFF))
            hi = np.uint32(np.uint64(i) >> np.uint64(32))
            h = _mix(np.uint32(_mix(np.uint32(lo ^ seed_lo)) ^ seed_hi ^ hi))
            y[i] = x[i] * scale if h >= threshold else 0.0
