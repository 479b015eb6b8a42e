"""The NumPy baseline of the benchmarks: im2col through sliding_window_view + one BLAS matmul per
direction, in the input dtype. This is how most NumPy CNN tutorials implement convolution."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def _cols(x, kh, kw, stride, pad):
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad))) if pad else x
    win = sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::stride, ::stride]
    return win                                                    # (N, C, OH, OW, KH, KW) view


def conv2d(x, w, b, stride, pad):
    win = _cols(x, w.shape[2], w.shape[3], stride, pad)
    y = np.tensordot(win, w, axes=([1, 4, 5], [1, 2, 3]))        # (N, OH, OW, K)
    if b is not None:
        y += b
    return np.ascontiguousarray(y.transpose(0, 3, 1, 2))


def conv2d_backward(dy, x, w, stride, pad):
    n, c, h, wd = x.shape
    k, _, kh, kw = w.shape
    win = _cols(x, kh, kw, stride, pad)
    dw = np.tensordot(dy, win, axes=([0, 2, 3], [0, 2, 3]))      # (K, C, KH, KW)
    db = dy.sum(axis=(0, 2, 3))
    dcols = np.tensordot(dy, w, axes=([1], [0]))                   # (N, OH, OW, C, KH, KW)
    oh, ow = dy.shape[2:]
    dxp = np.zeros((n, c, h + 2 * pad, wd + 2 * pad), x.dtype)
    for i in range(kh):
        for j in range(kw):
            dxp[:, :, i:i + stride * (oh - 1) + 1:stride, j:j + stride * (ow - 1) + 1:stride] += \
                dcols[:, :, :, :, i, j].transpose(0, 3, 1, 2)
    return dxp[:, :, pad:pad + h, pad:pad + wd], dw, db


def max_pool2d(x, k, stride):
    return sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::stride, ::stride].max(axis=(4, 5))
