"""Numba kernels of the losses (twin of csrc/loss/softmax_xent.cpp, contract in
csrc/include/convforge/loss.hpp): softmax cross-entropy from logits, the loss and dlogits of a
row in one pass over it (_xent_row). softmax_xent runs the rows in parallel; softmax_xent_serial
runs the same rows in turn, for small batches, where starting numba's parallel loop costs more
than the work. Each row's loss is stored in float64 and the rows are added serially in row order
afterwards, so both give the same bits, for any thread count."""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from ._numba_kernels import _FLAGS, CACHE, _helper, _kernel


@_helper
def _xent_row(g, z, y, tg, hard, ls, scale):
    # One row: writes g (K,) and returns its loss. z: logits[n] (K,); hard: y is the class id
    # (tg unused), else tg: target[n] (K,). A class id outside [0, K) (functional checks them;
    # this keeps a direct call from reading outside the row) makes the row NaN.
    k_cls = z.shape[0]
    off = ls / k_cls                           # target mass of every class
    on = 1.0 - ls
    m = z[0]
    for k in range(1, k_cls):
        if z[k] > m:                           # a NaN reaches s below
            m = z[k]
    s = 0.0
    for k in range(k_cls):
        e = np.exp(z[k] - m)
        g[k] = e
        s += e
    log_s = np.log(s)
    inv_s = 1.0 / s
    if hard:
        if y < 0 or y >= k_cls:
            g[:] = np.nan
            return np.nan
        # t_k = off + on [k == y]: l = on (log S - s_y) + off sum_k (log S - s_k)
        loss = on * (log_s - np.float64(z[y] - m))
        if ls > 0:
            acc = 0.0
            for k in range(k_cls):
                acc += log_s - np.float64(z[k] - m)
            loss += off * acc
        e_y = np.float64(g[y])
        for k in range(k_cls):
            g[k] = (g[k] * inv_s - off) * scale
        g[y] = (e_y * inv_s - off - on) * scale
        return loss
    tsum = 0.0
    loss = 0.0
    for k in range(k_cls):
        t = on * np.float64(tg[k]) + off
        tsum += t
        if t != 0:                             # 0 log 0 = 0
            loss += t * (log_s - np.float64(z[k] - m))
    for k in range(k_cls):
        t = on * np.float64(tg[k]) + off
        g[k] = (g[k] * inv_s * tsum - t) * scale
    return loss


@numba.njit(cache=CACHE, **_FLAGS)
def _sum_rows(rows, total):
    # total[0] = sum of the per-row losses in row order (fixed whatever the threads)
    acc = 0.0
    for n in range(rows.shape[0]):
        acc += rows[n]
    total[0] = acc


@_kernel
def softmax_xent(rows, total, dlogits, logits, labels, target, hard, ls, scale):
    # rows float64 (N,): the per-row losses; total float64 (1,): their sum in row order;
    # dlogits, logits (N, K); hard: labels int64 (N,) are the targets (target unused, may be
    # (0, 0)), else target (N, K) of logits' dtype (labels unused, may be (0,)); ls: label
    # smoothing; scale: dlogits' factor (1/N for 'mean').
    for n in prange(logits.shape[0]):
        rows[n] = _xent_row(dlogits[n], logits[n], labels[n] if hard else 0,
                            logits[n] if hard else target[n], hard, ls, scale)
    _sum_rows(rows, total)


@numba.njit(cache=CACHE, **_FLAGS)
def softmax_xent_serial(rows, total, dlogits, logits, labels, target, hard, ls, scale):
    # softmax_xent's arguments and results, the rows in turn
    for n in range(logits.shape[0]):
        rows[n] = _xent_row(dlogits[n], logits[n], labels[n] if hard else 0,
                            logits[n] if hard else target[n], hard, ls, scale)
    _sum_rows(rows, total)
