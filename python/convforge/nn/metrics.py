"""Metrics for compile(metrics=[...]): functions (y_true, y_pred) -> batch mean (0-d array).

y_pred is the raw model output (logits for the cross-entropy losses). "accuracy" picks its
form from the loss, as Keras does: sparse (argmax vs class id), categorical (argmax vs argmax
of the one-hot target) or binary (threshold 0 on logits, 0.5 on probabilities).
"""

from __future__ import annotations

from typing import Callable, Union

from .. import losses as L
from .._array import array_module

# An empty batch (N = 0) gives NaN (a mean over zero samples) without NumPy's warning.
_mean = L._mean

__all__ = ["sparse_categorical_accuracy", "categorical_accuracy", "binary_accuracy", "get"]


def sparse_categorical_accuracy(y_true, y_pred):
    xp = array_module(y_pred)
    y = xp.asarray(y_true).reshape(-1)
    return _mean(y_pred.argmax(axis=1) == y)


def categorical_accuracy(y_true, y_pred):
    xp = array_module(y_pred)
    return _mean(y_pred.argmax(axis=1) == xp.asarray(y_true).argmax(axis=1))


def binary_accuracy(y_true, y_pred, threshold: float = 0.5):
    xp = array_module(y_pred)
    y = xp.asarray(y_true).reshape(y_pred.shape)
    return _mean((y_pred > threshold) == (y > 0.5))


def _binary_logits_accuracy(y_true, y_pred):
    return binary_accuracy(y_true, y_pred, threshold=0.0)


def _accuracy_for(loss: L.Loss) -> Callable:
    if isinstance(loss, L.SparseCategoricalCrossentropy):
        return sparse_categorical_accuracy
    if isinstance(loss, L.CategoricalCrossentropy):
        return categorical_accuracy
    if isinstance(loss, L.BinaryCrossentropy):
        return _binary_logits_accuracy if loss.from_logits else binary_accuracy

    def accuracy(y_true, y_pred):   # other losses: decide from the target's shape
        if y_pred.ndim == 2 and y_pred.shape[1] > 1:
            if getattr(y_true, "ndim", 1) == 1:
                return sparse_categorical_accuracy(y_true, y_pred)
            return categorical_accuracy(y_true, y_pred)
        return binary_accuracy(y_true, y_pred)

    return accuracy


def get(metric: Union[str, Callable], loss: L.Loss) -> tuple[str, Callable]:
    """(log name, function) for a metric name or a callable (named after its __name__)."""
    if isinstance(metric, str):
        if metric.lower() in ("accuracy", "acc"):
            return "accuracy", _accuracy_for(loss)
        table = {"sparse_categorical_accuracy": sparse_categorical_accuracy,
                 "categorical_accuracy": categorical_accuracy,
                 "binary_accuracy": binary_accuracy}
        if metric.lower() in table:
            return metric.lower(), table[metric.lower()]
        raise ValueError(f"unknown metric {metric!r}; use 'accuracy', one of {sorted(table)}, or "
                         "a callable (y_true, y_pred) -> batch mean")
    if callable(metric):
        return getattr(metric, "__name__", "metric"), metric
    raise TypeError(f"metric must be a name or a callable, got {type(metric).__name__}")
