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
    # y, x (n,) flat; seed_lo, seed_hi, threshold uint32; scale in x's dtype. Blocks of BLOCK
    # (a divisor of 2^32): the index's high half is the block's constant, 32-bit lanes inside.
    n = x.shape[0]
    for b in prange((n + BLOCK - 1) // BLOCK):
        i0 = b * BLOCK
        hi = np.uint32(np.uint64(i0) >> np.uint64(32))
        lo0 = np.uint32(np.uint64(i0) & np.uint64(0xFFFFFFFF))
        for j in range(min(BLOCK, n - i0)):
            h = _mix(np.uint32(_mix(np.uint32(np.uint32(lo0 + np.uint32(j)) ^ seed_lo))
                               ^ seed_hi ^ hi))
            v = x[i0 + j] * scale
            y[i0 + j] = v if h >= threshold else 0.0
