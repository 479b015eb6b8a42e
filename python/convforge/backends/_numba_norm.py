"""Numba kernels of batch normalisation (the numba backend's twin of csrc/norm/batch_norm.cpp).

Layout: x, y, dy, dx (N, C, HW) C-contiguous, float32 or float64; per-channel vectors (C,).
Parallel over blocks of the N*C planes; each plane is summed by one iteration in LANES
interleaved float64 accumulators (element i in lane i % LANES, the lanes then added by a fixed
tree: the order of csrc/norm's kernels), and the caller adds the planes of a channel in n order:
results do not depend on the thread count. The lanes are a fixed-size inner loop LLVM
vectorises (an accumulator picked by i % LANES per element stayed scalar), held in one scratch
row per block of planes (an allocation per plane cost more than a small plane's sums). The ReLU
mask of the backward is the forward's own test, pre = (x - m) * s + b > 0, in the input dtype.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ._numba_kernels import _helper, _kernel

LANES = 32
BLOCK = 16   # planes per parallel iteration (one scratch allocation)


@_helper
def _tree(acc):
    """acc[0] after lane l += lane l + h for h = LANES/2, ..., 1 (the C++ kernels' tree)."""
    h = LANES // 2
    while h > 0:
        for lane in range(h):
            acc[lane] += acc[lane + h]
        h //= 2
    return acc[0]


@_helper
def _plane_sums(a, b, ka, kb, pre, relu, acc):
    """(sum a'_i, sum a'_i (b_i - kb)) in float64 by lanes, a'_i = a_i - ka, or 0 where relu and
    not pre_i > 0; acc: scratch (2, LANES)."""
    n = a.shape[0]
    full = n - n % LANES
    acc[:] = 0.0
    for i0 in range(0, full, LANES):
        for lane in range(LANES):
            v = np.float64(a[i0 + lane]) - ka
            if relu and not pre[i0 + lane] > 0:
                v = 0.0
            acc[0, lane] += v
            acc[1, lane] += v * (np.float64(b[i0 + lane]) - kb)
    for i in range(full, n):
        v = np.float64(a[i]) - ka
        if relu and not pre[i] > 0:
            v = 0.0
        acc[0, i - full] += v
        acc[1, i - full] += v * (np.float64(b[i]) - kb)
    return _tree(acc[0]), _tree(acc[1])


@_kernel
def bn_stats_sums(s1, s2, x):
    # s1, s2 (N, C) out: sums of x - K and (x - K)^2 per plane, K = x[0, c, 0]
    N, C, HW = x.shape
    P = N * C
    for q in prange((P + BLOCK - 1) // BLOCK):
        acc = np.empty((2, LANES))
        for p in range(q * BLOCK, min(P, (q + 1) * BLOCK)):
            n, c = p // C, p % C
            k = np.float64(x[0, c, 0])
            s1[n, c], s2[n, c] = _plane_sums(x[n, c], x[n, c], k, k, x[n, c], False, acc)


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
    P = N * C
    for q in prange((P + BLOCK - 1) // BLOCK):
        acc = np.empty((2, LANES))
        pre = np.empty(HW, x.dtype)
        for p in range(q * BLOCK, min(P, (q + 1) * BLOCK)):
            n, c = p // C, p % C
            if relu:
                for i in range(HW):
                    pre[i] = (x[n, c, i] - m[c]) * s[c] + b[c]
            pb[n, c], pg[n, c] = _plane_sums(dy[n, c], x[n, c], 0.0, mean[c], pre, relu, acc)


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
