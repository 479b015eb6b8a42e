"""Softmax cross-entropy from logits, written once for any array module (NumPy or CuPy, `xp`):
the cuda backend's implementation (in the input dtype) and the reference's (called on float64
copies). The definitions of csrc/include/convforge/loss.hpp:

    target t: hard labels t_k = (1 - ls) [k == y] + ls / K; soft t_k = (1 - ls) y_k + ls / K
    l_n = sum_k t_k (log S - s_k), s_k = z_k - max z, S = sum_k exp(s_k); t_k = 0 terms are 0
    dlogits = (softmax * sum_k t_k - t) * (1/N for 'mean', else 1)

Hard labels are compared with the class index instead of indexing by them, so an id outside
[0, K) reads nothing: it gives its row a NaN loss and gradient (functional checks NumPy ids; it
does not read CuPy ids, which would synchronise the device on every batch)."""

from __future__ import annotations

import numpy as np

from .._array import array_module


def softmax_cross_entropy(logits, labels, label_smoothing, reduction):
    """(loss, dlogits) for logits (N, K) and labels int64 (N,) or (N, K) of logits' dtype;
    loss 0-d (mean, sum; summed in float64) or (N,) (none), in logits' dtype."""
    # no warnings: 0 * inf in a term the where drops, -inf - -inf in an all -inf row (NaN)
    with np.errstate(invalid="ignore"):
        return _xent(logits, labels, label_smoothing, reduction)


def _xent(logits, labels, label_smoothing, reduction):
    xp = array_module(logits)
    n, k = logits.shape
    dt = logits.dtype.type
    s = logits - logits.max(axis=1, keepdims=True)                     # (N, K)
    e = xp.exp(s)
    S = e.sum(axis=1, keepdims=True)                                   # (N, 1)
    ls, off = dt(label_smoothing), dt(label_smoothing / k)
    hard = labels.ndim == 1
    if hard:
        onehot = xp.arange(k)[None, :] == labels[:, None]               # (N, K) bool
        t = xp.where(onehot, dt(1) - ls + off, off)
        tsum = dt(1)
    else:
        t = (dt(1) - ls) * labels + off
        tsum = t.sum(axis=1, keepdims=True)
    rows = xp.where(t == 0, dt(0), t * (xp.log(S) - s)).sum(axis=1)     # (N,): 0 log 0 = 0
    grad = e / S * tsum - t
    if hard:
        bad = (labels < 0) | (labels >= k)                              # (N,)
        rows = xp.where(bad, dt(np.nan), rows)
        grad = xp.where(bad[:, None], dt(np.nan), grad)
    if reduction == "none":
        return rows.astype(logits.dtype, copy=False), grad.astype(logits.dtype, copy=False)
    total = rows.astype(np.float64).sum()
    if reduction == "mean":
        total = total / n
        grad = grad / dt(n)
    return xp.asarray(total, dtype=logits.dtype), grad.astype(logits.dtype, copy=False)
