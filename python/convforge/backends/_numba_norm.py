"""Numba kernels of batch normalisation (the numba backend's twin of csrc/norm/batch_norm.cpp).

Layout: x, y, dy, dx (N, C, HW) C-contiguous, float32 or float64; per-channel vectors (C,).
Parallel over the N*C planes; each plane is summed by one iteration in LANES interleaved
float64 accumulators (element i in lane i % LANES, lanes added in order), and the caller adds
the planes of a channel in n order: results do not depend on the thread count. The ReLU mask
of the backward is the forward's own test, pre = (x - m) * s + b > 0, in the input dtype.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ._numba_kernels import _helper, _kernel

LANES = 8


@_helper
def _pair_sums(a, b, relu_pre, relu):
    """(sum a_i, sum a_i * b_i) in float64 by lanes; a_i is 0 where relu and relu_pre_i <= 0."""
    acc_a = np.zeros(LANES)
    acc_ab = np.zeros(LANES)
    for i in range(a.shape[0]):
        v = np.float64(a[i])
        if relu and not relu_pre[i] > 0:
            v = 0.0
        acc_a[i % LANES] += v
        acc_ab[i % LANES] += v * b[i]
    ta = 0.0
    tab = 0.0
    for lane in range(LANES):
        ta += acc_a[lane]
        tab += acc_ab[lane]
    return ta, tab


@_kernel
def bn_stats_sums(s1, s2, x):
    # s1, s2 (N, C) out: sums of x - K and (x - K)^2 per plane, K = x[0, c, 0]
    N, C, HW = x.shape
    for p in prange(N * C):
        n, c = p // C, p % C
        d = x[n, c].astype(np.float64) - np.float64(x[0, c, 0])   # (HW,)
        s1[n, c], s2[n, c] = _pair_sums(d, d, d, False)


@_kernel
def bn_forward(y, x, m, s, b, relu):
    # y (N, C, HW) out = act((x - m[c]) * s[c] + b[c]); m, s, b (C,) in x's dtype
    N, C, HW = x.shape
    for p in prange(N * C):
        n, c = p // C, p % C
        for i in range(HW):
            v = (x[n, c, i] - m[c]) * s[c] + b[c]
            y[n, c, i] = max(v, 0.0) if relu and not np.isnan(v) else v


@_kernel
def bn_backward_sums(pg, pb, dy, x, mean, m, s, b, relu):
    # pg, pb (N, C) out: per plane sum dy' (x - mean) and sum dy' (dy' = dy masked by ReLU)
    N, C, HW = x.shape
    for p in prange(N * C):
        n, c = p // C, p % C
        pre = (x[n, c] - m[c]) * s[c] + b[c]                             # (HW,)
        xc = x[n, c].astype(np.float64) - mean[c]
        pb[n, c], pg[n, c] = _pair_sums(dy[n, c], xc, pre, relu)


@_kernel
def bn_backward_dx(dx, dy, x, m, s, b, k1, k2, k3, relu, batch_stats):
    # dx (N, C, HW) out = (dy' - k3[c] - (x - m[c]) k2[c]) k1[c] with batch statistics, else
    # dy' k1[c] (see csrc/norm/batch_norm.cpp)
    N, C, HW = x.shape
    for p in prange(N * C):
        n, c = p // C, p % C
        for i in range(HW):
            g = dy[n, c, i]
            if relu and not (x[n, c, i] - m[c]) * s[c] + b[c] > 0:
                g = 0.0
            if batch_stats:
                dx[n, c, i] = (g - k3[c] - (x[n, c, i] - m[c]) * k2[c]) * k1[c]
            else:
                dx[n, c, i] = g * k1[c]
