"""Numba kernel of the losses (twin of csrc/loss/softmax_xent.cpp, contract in
csrc/include/convforge/loss.hpp): softmax cross-entropy from logits, the loss and dlogits of a
row in one pass over it. Parallel over rows; each row's loss is stored in float64 and the rows
are added serially in row order after the parallel loop, so results do not depend on the thread
count."""

from __future__ import annotations

import numpy as np
from numba import prange

from ._numba_kernels import _kernel


@_kernel
def softmax_xent(rows, total, dlogits, logits, labels, target, hard, ls, scale):
    # rows float64 (N,): the per-row losses; total float64 (1,): their sum in row order;
    # dlogits, logits (N, K); hard: labels int64 (N,) are the targets (target unused, may be
    # (0, 0)), else target (N, K) of logits' dtype (labels unused, may be (0,)); ls: label
    # smoothing; scale: dlogits' factor (1/N for 'mean'). A class id outside [0, K) (functional
    # checks them; this keeps a direct call from reading outside the row) makes its row NaN.
    n_rows, k_cls = logits.shape
    off = ls / k_cls                           # target mass of every class
    on = 1.0 - ls
    for n in prange(n_rows):
        z, g = logits[n], dlogits[n]           # (K,) each
        m = z[0]
        for k in range(1, k_cls):
            if z[k] > m:                       # a NaN reaches s below
                m = z[k]
        s = 0.0
        for k in range(k_cls):
            e = np.exp(z[k] - m)
            g[k] = e
            s += e
        log_s = np.log(s)
        inv_s = 1.0 / s
        if hard:
            y = labels[n]
            if y < 0 or y >= k_cls:
                rows[n] = np.nan
                g[:] = np.nan
            else:
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
                rows[n] = loss
        else:
            tg = target[n]
            tsum = 0.0
            loss = 0.0
            for k in range(k_cls):
                t = on * np.float64(tg[k]) + off
                tsum += t
                if t != 0:                     # 0 log 0 = 0
                    loss += t * (log_s - np.float64(z[k] - m))
            for k in range(k_cls):
                t = on * np.float64(tg[k]) + off
                g[k] = (g[k] * inv_s * tsum - t) * scale
            rows[n] = loss
    acc_rows = 0.0
    for n in range(n_rows):
        acc_rows += rows[n]
    total[0] = acc_rows
