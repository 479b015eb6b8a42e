"""Losses: softmax_cross_entropy, the softmax cross-entropy from logits and its gradient w.r.t.
the logits in one pass per row (what the cross-entropy losses of convforge.losses call)."""

from __future__ import annotations

import numbers
from typing import Optional

import numpy as np

from .._array import FLOAT_DTYPES, array_module, is_cupy
from ._common import _array, _backend, _same_dtype, _zeros

REDUCTIONS = ("mean", "sum", "none")


def softmax_cross_entropy(logits, labels, *, label_smoothing: float = 0.0,
                          reduction: str = "mean", backend: Optional[str] = None):
    """(loss, dlogits) of the softmax cross-entropy from logits (PyTorch's cross_entropy, with
    the gradient computed in the same pass).

    logits (N, K) float32/float64 (N may be 0). labels: integer class ids (N,) (any integer
    dtype; each in [0, K), ValueError otherwise: checked for NumPy labels; CuPy labels are not
    read, as that would synchronise the device, and an id out of range gives its row NaN), or
    probabilities / one-hot rows (N, K) of logits' dtype. label_smoothing in [0, 1): the target
    becomes (1 - ls) * target + ls / K. Per row l_n = -sum_k t_k log softmax(z_n)_k (terms with
    t_k = 0 count 0, so a -inf logit of a class without target mass gives a finite loss), and
    dlogits = softmax * sum_k t_k - t (softmax - t for class ids and one-hot rows).
    reduction 'mean': loss = mean of l_n (NaN for N = 0), dlogits / N; 'sum': sum of l_n,
    dlogits unscaled; 'none': loss (N,) = l_n, dlogits unscaled. mean and sum come back as 0-d
    arrays of logits' dtype, accumulated in float64 in row order (the same bits for any thread
    count on the cpu and numba backends). Stable for any finite logits (the row max is
    subtracted first); a NaN in a row makes its loss and gradient NaN.
    """
    logits = _array(logits, "logits", 2, "(N, K)", batch=True)
    gpu = is_cupy(logits)
    labels, hard = _labels(labels, logits)
    ls = _label_smoothing(label_smoothing)
    if not isinstance(reduction, str) or reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {list(REDUCTIONS)}, got {reduction!r}")
    be = _backend(backend, gpu)
    n, k = logits.shape
    if hard and not gpu and n > 0 and (labels.dtype == np.uint64
                                       or not getattr(be, "CHECKS_LABELS", False)):
        lo, hi = int(labels.min()), int(labels.max())
        if lo < 0 or hi >= k:
            raise ValueError(f"labels must hold class ids in [0, K) = [0, {k}), got values in "
                             f"[{lo}, {hi}]")
    if hard:
        labels = labels.astype(np.int64, order="C", copy=False)
    if n == 0:
        value = {"mean": np.nan, "sum": 0.0}.get(reduction)
        xp = array_module(logits)
        loss = _zeros(logits, (0,)) if value is None else xp.full((), value, logits.dtype)
        return loss, _zeros(logits, (0, k))
    return be.softmax_cross_entropy(logits, labels, ls, reduction)


def _labels(labels, logits):
    """(labels, hard): integer class ids (N,) as given (hard), or float labels (N, K) of
    logits' dtype, C-contiguous; TypeError / ValueError naming labels and the shapes."""
    if not (isinstance(labels, np.ndarray) or is_cupy(labels)):
        raise TypeError(f"labels must be a numpy.ndarray or cupy.ndarray, got "
                        f"{type(labels).__name__}")
    n, k = logits.shape
    shape = tuple(labels.shape)
    if labels.dtype.kind in "iu":
        if is_cupy(labels) != is_cupy(logits):
            raise TypeError("labels and logits must both be NumPy or both be CuPy arrays")
        if shape != (n,):
            raise ValueError(f"labels of class ids must have shape (N,) = ({n},) for logits of "
                             f"shape {tuple(logits.shape)}, got {shape}")
        return labels, True
    if labels.dtype not in FLOAT_DTYPES:
        raise TypeError(f"labels must be integer class ids (N,) or float32/float64 "
                        f"probabilities (N, K), got dtype {labels.dtype} with shape {shape}")
    if shape != (n, k):
        raise ValueError(f"labels of probabilities must have the shape of logits {(n, k)}, got "
                         f"{shape} (class ids need an integer dtype)")
    _same_dtype({"logits": logits, "labels": labels})
    if not labels.flags.c_contiguous:
        labels = labels.copy(order="C")
    return labels, False


def _label_smoothing(ls) -> float:
    if isinstance(ls, bool) or not isinstance(ls, numbers.Real):
        raise TypeError(f"label_smoothing must be a float in [0, 1), got {type(ls).__name__}")
    if not 0.0 <= float(ls) < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {ls!r}")
    return float(ls)
