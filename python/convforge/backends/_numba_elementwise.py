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
    for b in prange((n + BLOCK - 1) // BLOCK):
        i0 = b * BLOCK
        hi = np.uint32(np.uint64(i0) >> np.uint64(32))
        lo0 = np.uint32(np.uint64(i0) & np.uint64(0xFFFFFFFF))
        for j in range(min(BLOCK, n - i0)):
            h = _mix(np.uint32(_mix(np.uint32(np.uint32(lo0 + np.uint32(j)) ^ seed_lo))
                               ^ seed_hi ^ hi))
            v = x[i0 + j] * scale
            y[i0 + j] = v if h >= threshold else 0.0


@_kernel
def activation_forward(y, x, code):
    # y, x (n,) flat; code: ACTIVATION_CODES
    n = x.shape[0]
    for b in prange((n + BLOCK - 1) // BLOCK):
        for i in range(b * BLOCK, min(n, (b + 1) * BLOCK)):
            v = x[i]
            if code == 1:
                y[i] = v if not v < 0 else 0.0            # max(v, 0), NaN stays NaN
            elif code == 2:
                if v >= 0:
                    y[i] = 1.0 / (1.0 + np.exp(-v))
                else:
                    e = np.exp(v)
                    y[i] = e / (1.0 + e)
            elif code == 3:
                y[i] = np.tanh(v)
            else:
                y[i] = v


@_kernel
def activation_backward(dx, dy, y, code):
    # dx, dy, y (n,) flat: dx = dy * f'(y)
    n = dy.shape[0]
    for b in prange((n + BLOCK - 1) // BLOCK):
        for i in range(b * BLOCK, min(n, (b + 1) * BLOCK)):
            g = dy[i]
            if code == 1:
                dx[i] = g if y[i] > 0 else 0.0
            elif code == 2:
                dx[i] = g * y[i] * (1.0 - y[i])
            elif code == 3:
                dx[i] = g * (1.0 - y[i] * y[i])
            else:
                dx[i] = g

