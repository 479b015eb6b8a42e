"""Small helpers Keras users look for: to_categorical."""

from __future__ import annotations

from typing import Optional

import numpy as np

__all__ = ["to_categorical"]


def to_categorical(y, num_classes: Optional[int] = None, dtype="float32") -> np.ndarray:
    """One-hot rows (N, num_classes) from integer class ids of any shape (flattened, as Keras
    does for (N, 1)); num_classes defaults to max(y) + 1. Ids must lie in [0, num_classes)."""
    y = np.asarray(y)
    if y.dtype.kind not in "iub" and not (y.dtype.kind == "f" and np.all(np.mod(y, 1) == 0)):
        raise TypeError(f"y must hold integer class ids, got dtype {y.dtype}")
    y = y.astype(np.int64).reshape(-1)
    n = int(y.max()) + 1 if num_classes is None and y.size else int(num_classes or 0)
    if y.size and (y.min() < 0 or y.max() >= n):
        raise ValueError(f"class ids must lie in [0, {n}), got values in [{y.min()}, {y.max()}]")
    out = np.zeros((y.size, n), dtype)
    out[np.arange(y.size), y] = 1
    return out
