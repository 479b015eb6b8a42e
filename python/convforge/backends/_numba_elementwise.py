"""Numba kernels of the elementwise layers (twins of csrc/elementwise): dropout (the mask's hash is
defined in csrc/include/convforge/elementwise.hpp and backends/_xp_dropout.py; each element's mask
depends only on (seed, its index)) and the activations (codes: ACTIVATION_CODES). Parallel over
blocks of the flat arrays."""

from __future__ import annotations

import numpy as np
from numba import prange

from ._numba_kernels import _helper, _kernel

BLOCK = 1 << 15
ACTIVATION_CODES = {"linear": 0, "relu": 1, "sigmoid": 2, "tanh": 3}


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
    zero = scale * 0          # 0 in x's dtype: both sides of the select of one type
    for b in prange((n + BLOCK - 1) // BLOCK):
        i0 = b * BLOCK
        hi = np.uint32(np.uint64(i0) >> np.uint64(32))
        lo0 = np.uint32(np.uint64(i0) & np.uint64(0xFFFFFFFF))
        xb, yb = x[i0:min(n, i0 + BLOCK)], y[i0:min(n, i0 + BLOCK)]
        for j in range(xb.shape[0]):
            h = _mix(np.uint32(_mix(np.uint32(np.uint32(lo0 + np.uint32(j)) ^ seed_lo))
                               ^ seed_hi ^ hi))
            v = xb[j] * scale
            yb[j] = v if h >= threshold else zero


@_kernel
def activation_forward(y, x, code, one):
    # y, x (n,) flat; code: ACTIVATION_CODES; one: 1 in x's dtype (constants of one type keep
    # the loops in that type). The code is tested once per block, outside the element loops (a
    # test per element keeps LLVM from vectorising them).
    n = x.shape[0]
    zero = one - one
    for b in prange((n + BLOCK - 1) // BLOCK):
        xb, yb = x[b * BLOCK:min(n, (b + 1) * BLOCK)], y[b * BLOCK:min(n, (b + 1) * BLOCK)]
        if code == 1:
            for i in range(xb.shape[0]):
                v = xb[i]
                yb[i] = zero if v < zero else v            # max(v, 0), NaN stays NaN
        elif code == 2:
            for i in range(xb.shape[0]):
                e = np.exp(-np.abs(xb[i]))
                r = one / (one + e)
                yb[i] = r if xb[i] >= zero else e * r
        elif code == 3:
            for i in range(xb.shape[0]):
                yb[i] = np.tanh(xb[i])
        else:
            yb[:] = xb


@_kernel
def activation_backward(dx, dy, y, code, one):
    # dx, dy, y (n,) flat: dx = dy * f'(y); one and the code as in activation_forward
    n = dy.shape[0]
    zero = one - one
    for b in prange((n + BLOCK - 1) // BLOCK):
        lo, hi = b * BLOCK, min(n, (b + 1) * BLOCK)
        gb, yb, db = dy[lo:hi], y[lo:hi], dx[lo:hi]
        if code == 1:
            for i in range(gb.shape[0]):
                g = gb[i]
                db[i] = g if yb[i] > zero else zero
        elif code == 2:
            for i in range(gb.shape[0]):
                db[i] = gb[i] * yb[i] * (one - yb[i])
        elif code == 3:
            for i in range(gb.shape[0]):
                db[i] = gb[i] * (one - yb[i] * yb[i])
        else:
            db[:] = gb
