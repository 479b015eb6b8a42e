"""Losses: mean over the batch, with the gradient w.r.t. the model output computed in one pass.

Each loss has `loss(y_true, y_pred) -> scalar` and `forward_backward(y_true, y_pred)
-> (scalar, dy_pred)`, and `link(y_pred)` turning model outputs into predictions (softmax
over (N, classes) logits, sigmoid or identity; used by Model.predict). Scalars are 0-d arrays
of the input's module, so the CuPy path does not synchronise per batch. For the same reason
the sparse cross-entropy checks the range of integer class ids only when they are NumPy
arrays: Model checks labels on the host before moving them to the GPU (`check_targets`), and
labels already on the GPU once per fit/evaluate call, not per batch.

Cross-entropies take logits by default (from_logits=True) and use a stable log-softmax /
log-sigmoid: no exp of a large positive number is ever taken. Class axis: 1 for (N, K). The
categorical ones from float32/float64 logits run convforge.functional.softmax_cross_entropy
(loss and gradient in one pass per row, on the chosen backend); there a class with no target
mass contributes 0 to the loss even at a -inf logit (0 log 0 = 0, where NumPy's 0 * -inf would
give NaN), and a CuPy class id out of range gives a NaN loss instead of a read elsewhere.

An empty batch (N = 0) gives a NaN loss (the mean over zero samples, as in PyTorch), without a
warning, and an empty gradient of y_pred's shape, so it adds nothing to parameter gradients.
"""

from __future__ import annotations

from typing import Union

import numpy as np

from . import functional as F
from ._array import FLOAT_DTYPES, array_module

__all__ = ["Loss", "SparseCategoricalCrossentropy", "CategoricalCrossentropy",
           "BinaryCrossentropy", "MeanSquaredError", "get"]

_EPS = 1e-7   # probability clip when from_logits=False (Keras' epsilon)


def _pred(y_pred, name: str = "y_pred"):
    if not hasattr(y_pred, "dtype") or y_pred.dtype.kind != "f":
        raise TypeError(f"{name} must be a float array, got {type(y_pred).__name__} "
                        f"{getattr(y_pred, 'dtype', '')}")
    return y_pred


def _mean(v, total=None):
    """v.mean() (or total / v.size when `total` is given); NaN for an empty v, without
    NumPy's 'mean of empty slice' warning."""
    xp = array_module(v)
    if v.size == 0:
        return xp.asarray(xp.nan, dtype=v.dtype if v.dtype.kind == "f" else np.float64)
    return v.mean() if total is None else total / v.size


def _log_softmax(z):
    """log softmax over axis 1, stable: z - max - log(sum(exp(z - max)))."""
    xp = array_module(z)
    s = z - z.max(axis=1, keepdims=True)
    return s - xp.log(xp.exp(s).sum(axis=1, keepdims=True))


def _sigmoid(z):
    xp = array_module(z)
    e = xp.exp(-xp.abs(z))
    return xp.where(z >= 0, 1 / (1 + e), e / (1 + e))


class Loss:
    name = "loss"

    def __init__(self, from_logits: bool = True):
        self.from_logits = bool(from_logits)

    def __call__(self, y_true, y_pred):
        return self.forward_backward(y_true, y_pred)[0]

    def forward_backward(self, y_true, y_pred):
        raise NotImplementedError

    def link(self, y_pred):
        return y_pred

    def check_targets(self, y_true, out_shape):
        """y_true checked against outputs of per-sample shape `out_shape` (None: unknown) and
        returned ready for the loss (default: unchanged). NumPy or CuPy; on CuPy a check may
        synchronise the device, so Model calls it on whole label arrays or on host batches."""
        return y_true

    def __repr__(self) -> str:
        return f"{type(self).__name__}(from_logits={self.from_logits})"


def _check_2d(y_pred, y_true_shape, what: str) -> None:
    if y_pred.ndim != 2:
        raise ValueError(f"y_pred must be (N, classes), got shape {tuple(y_pred.shape)}")
    if tuple(y_true_shape) != what:
        raise ValueError(f"y_true must have shape {what} for y_pred {tuple(y_pred.shape)}, got "
                         f"{tuple(y_true_shape)}")


def _flat_labels(y_true):
    """y_true as an array (NumPy unless it already is a CuPy one), (N, 1) flattened to (N,)."""
    y = y_true if hasattr(y_true, "dtype") and hasattr(y_true, "reshape") else np.asarray(y_true)
    if y.ndim == 2 and y.shape[1] == 1:                              # (N, 1) -> (N,)
        y = y.reshape(-1)
    return y


def _class_ids(y, k: int, what: str):
    """y (any int dtype, or integer-valued floats) as int64, each in [0, k); TypeError /
    ValueError otherwise. Reads values: on a CuPy array this synchronises the device."""
    if y.dtype.kind != "i" and y.dtype.kind != "u":
        yi = y.astype(np.int64)
        if y.dtype.kind != "f" or bool((yi != y).any()):
            raise TypeError(f"y_true must hold integer class ids, got dtype {y.dtype}")
        y = yi
    y = y.astype(np.int64, copy=False)
    if y.size == 0:                                                  # no ids to check
        return y
    lo, hi = int(y.min()), int(y.max())
    if lo < 0 or hi >= k:
        raise ValueError(f"y_true class ids must lie in [0, {k}) for {what}, got values in "
                         f"[{lo}, {hi}]")
    return y


class _Smoothed(Loss):
    """A cross-entropy with `label_smoothing` in [0, 1): the target (1 - ls) * t + ls / K, as in
    PyTorch's cross_entropy and Keras' CategoricalCrossentropy (from logits only)."""

    def __init__(self, from_logits: bool = True, label_smoothing: float = 0.0):
        super().__init__(from_logits)
        ls = float(label_smoothing)
        if not 0.0 <= ls < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing!r}")
        if ls and not self.from_logits:
            raise ValueError("label_smoothing needs from_logits=True")
        self.label_smoothing = ls

    def _smoothed(self, y_pred, y):
        """The fused loss for float32/float64 logits, or None for the expression paths (which
        support label_smoothing 0 only)."""
        if self.from_logits and y_pred.dtype in FLOAT_DTYPES:
            return F.softmax_cross_entropy(y_pred, y, label_smoothing=self.label_smoothing)
        if self.label_smoothing:
            raise TypeError(f"label_smoothing needs float32 or float64 logits, got "
                            f"{y_pred.dtype}")
        return None

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(from_logits={self.from_logits}, "
                f"label_smoothing={self.label_smoothing:g})")


class SparseCategoricalCrossentropy(_Smoothed):
    """-mean log softmax(y_pred)[n, y_true[n]]; y_true int class ids (N,) or (N, 1),
    y_pred (N, K); label_smoothing=ls spreads ls of the target over the K classes."""

    name = "sparse_categorical_crossentropy"

    def labels(self, y_true, y_pred):
        """int64 class ids (N,) on y_pred's device. NumPy labels (and float labels anywhere) are
        checked here; integer CuPy labels are not (min/max would synchronise every batch): Model
        checks them once per fit/evaluate call, or on the host before moving them."""
        xp = array_module(y_pred)
        y = _flat_labels(y_true)
        _check_2d(y_pred, y.shape, (y_pred.shape[0],))
        if array_module(y) is np or y.dtype.kind not in "iu":
            y = _class_ids(y, y_pred.shape[1], f"y_pred of shape {tuple(y_pred.shape)}")
        return xp.asarray(y).astype(np.int64, copy=False)

    def check_targets(self, y_true, out_shape):
        """Class ids as int64 (N,), checked to be integers in [0, classes)."""
        y = _flat_labels(y_true)
        if out_shape is None or len(out_shape) != 1:
            return y
        return _class_ids(y, int(out_shape[0]), f"outputs of shape {(None,) + tuple(out_shape)}")

    def forward_backward(self, y_true, y_pred):
        xp = array_module(_pred(y_pred))
        y = self.labels(y_true, y_pred)
        fused = self._smoothed(y_pred, y)
        if fused is not None:
            return fused
        n = y_pred.shape[0]
        rows = xp.arange(n)
        if self.from_logits:    # other float dtypes (float16): NumPy / CuPy expressions
            logp = _log_softmax(y_pred)                              # (N, K)
            loss = -_mean(logp[rows, y])
            grad = xp.exp(logp)
            grad[rows, y] -= 1
            return loss, grad / max(n, 1)
        p = xp.clip(y_pred, _EPS, 1 - _EPS)
        loss = -_mean(xp.log(p[rows, y]))
        grad = xp.zeros_like(y_pred)
        grad[rows, y] = -1 / (p[rows, y] * n)
        return loss, grad

    def link(self, y_pred):
        # softmax over the classes of (N, classes) logits only: other shapes pass unchanged
        return xp_softmax(y_pred) if self.from_logits and y_pred.ndim == 2 else y_pred


class CategoricalCrossentropy(_Smoothed):
    """-mean sum_k y_true[n, k] log softmax(y_pred)[n, k]; y_true one-hot/probabilities (N, K);
    label_smoothing as in Keras."""

    name = "categorical_crossentropy"

    def forward_backward(self, y_true, y_pred):
        xp = array_module(_pred(y_pred))
        y = xp.asarray(y_true).astype(y_pred.dtype, copy=False)
        _check_2d(y_pred, y.shape, tuple(y_pred.shape))
        fused = self._smoothed(y_pred, y)
        if fused is not None:
            return fused
        n = y_pred.shape[0]
        rows = y_pred[:, 0]                                          # (N,): for _mean's size
        if self.from_logits:    # other float dtypes (float16): NumPy / CuPy expressions
            logp = _log_softmax(y_pred)
            loss = -_mean(rows, (y * logp).sum())
            grad = xp.exp(logp) * y.sum(axis=1, keepdims=True) - y
            return loss, grad / max(n, 1)
        p = xp.clip(y_pred, _EPS, 1 - _EPS)
        loss = -_mean(rows, (y * xp.log(p)).sum())
        return loss, -y / (p * max(n, 1))

    def link(self, y_pred):
        # softmax over the classes of (N, classes) logits only: other shapes pass unchanged
        return xp_softmax(y_pred) if self.from_logits and y_pred.ndim == 2 else y_pred


class BinaryCrossentropy(Loss):
    """-mean [y log s(z) + (1-y) log(1-s(z))] over every element; y_true in [0, 1], same shape
    as y_pred (a (N,) y_true is accepted for a (N, 1) y_pred)."""

    name = "binary_crossentropy"

    def forward_backward(self, y_true, y_pred):
        xp = array_module(_pred(y_pred))
        y = xp.asarray(y_true).astype(y_pred.dtype, copy=False)
        if y.shape != y_pred.shape and y.size == y_pred.size and y_pred.ndim == 2 \
                and y_pred.shape[1] == 1:
            y = y.reshape(y_pred.shape)
        if y.shape != y_pred.shape:
            raise ValueError(f"y_true must have the shape of y_pred {tuple(y_pred.shape)}, got "
                             f"{tuple(y.shape)}")
        m = y_pred.size
        if self.from_logits:
            z = y_pred
            # max(z, 0) - z*y + log(1 + exp(-|z|)) == -[y log s(z) + (1-y) log(1-s(z))]
            loss = _mean(xp.maximum(z, 0) - z * y + xp.log1p(xp.exp(-xp.abs(z))))
            return loss, (_sigmoid(z) - y) / max(m, 1)
        p = xp.clip(y_pred, _EPS, 1 - _EPS)
        loss = -_mean(y * xp.log(p) + (1 - y) * xp.log(1 - p))
        return loss, (p - y) / (p * (1 - p) * max(m, 1))

    def link(self, y_pred):
        return _sigmoid(y_pred) if self.from_logits else y_pred


class MeanSquaredError(Loss):
    """mean (y_pred - y_true)^2 over every element."""

    name = "mse"

    def __init__(self):
        super().__init__(from_logits=False)

    def forward_backward(self, y_true, y_pred):
        xp = array_module(_pred(y_pred))
        y = xp.asarray(y_true).astype(y_pred.dtype, copy=False)
        if y.shape != y_pred.shape and y.size == y_pred.size:
            y = y.reshape(y_pred.shape)
        if y.shape != y_pred.shape:
            raise ValueError(f"y_true must have the shape of y_pred {tuple(y_pred.shape)}, got "
                             f"{tuple(y.shape)}")
        d = y_pred - y
        return _mean(d * d), d * (2.0 / max(y_pred.size, 1))

    def __repr__(self) -> str:
        return "MeanSquaredError()"


def xp_softmax(z):
    """softmax over axis 1 (for NumPy or CuPy arrays)."""
    return array_module(z).exp(_log_softmax(z))


_NAMES = {
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "binary_crossentropy": BinaryCrossentropy,
    "mse": MeanSquaredError,
    "mean_squared_error": MeanSquaredError,
}


def for_output(loss: Loss, activation, by_name: bool, model: str) -> Loss:
    """The loss to use on a model whose last layer has this activation. A cross-entropy from
    logits on an output that is already a softmax (sigmoid) would apply it twice: a loss given by
    name takes probabilities instead (Keras' default), a Loss object is an error."""
    if (activation not in ("softmax", "sigmoid") or not loss.from_logits
            or not type(loss).__name__.endswith("Crossentropy")):
        return loss
    if not by_name:
        raise ValueError(f"model {model!r} ends with a {activation}, so its outputs are "
                         f"probabilities, but the loss {loss!r} takes logits: use "
                         "from_logits=False, or drop the final activation")
    return type(loss)(from_logits=False)


def get(loss: Union[str, Loss]) -> Loss:
    """A loss from its name (cross-entropies then take logits) or the given Loss object."""
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, str) and loss.lower() in _NAMES:
        return _NAMES[loss.lower()]()
    raise ValueError(f"loss must be a Loss or one of {sorted(_NAMES)}, got {loss!r}")
