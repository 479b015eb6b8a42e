"""Pieces of Model's training and inference loops: batch sources, devices, progress bars."""

from __future__ import annotations

import math
import textwrap
from typing import Sequence

import numpy as np

from .. import backends as _backends
from .._array import array_module, on_device_of
from .base import to_host
from .callbacks import Callback

POSTFIX_SECONDS = 0.5   # fit's progress bar shows the running logs at most this often


class RunningMeans:
    """Sample-weighted running means of the loss and metrics over the batches of an epoch (or
    of an evaluate call). The sums stay where the batch values are (0-d NumPy or CuPy arrays,
    summed in float64), so adding a batch never waits for the GPU; `means()` brings every sum
    to the host with one to_host call."""

    def __init__(self, names: Sequence[str]):
        self.names = list(names)
        self.sums: list = [0.0] * len(self.names)
        self.count = 0

    def add(self, values: Sequence, n: int) -> None:
        for i, v in enumerate(values):
            v = v.astype(np.float64) if hasattr(v, "astype") else float(v)
            self.sums[i] = self.sums[i] + v * n
        self.count += n

    def means(self) -> dict[str, float]:
        host = to_host(self.sums)
        return {k: float(s) / self.count for k, s in zip(self.names, host)}


def is_batch_source(x) -> bool:
    """An object yielding (xb, yb) batches per epoch, with len() = number of batches."""
    return not hasattr(x, "shape") and hasattr(x, "__iter__") and hasattr(x, "__len__") \
        and not isinstance(x, (list, tuple))


def device_module(a):
    """Where a batch runs: its own module if CuPy; CuPy when the cuda backend is chosen."""
    xp = array_module(a)
    if xp is np and _backends.chosen(on_gpu=False) == "cuda":
        import cupy

        return cupy
    return xp



def wants_batch_logs(cb: Callback) -> bool:
    """Whether a callback overrides on_train_batch_end (it then gets host logs every batch)."""
    return type(cb).on_train_batch_end is not Callback.on_train_batch_end or \
        "on_train_batch_end" in vars(cb)



def progress_class(verbose: int):
    """A progress bar factory (total, desc): tqdm for verbose 1 when it is installed, else none
    (fit prints one summary line per epoch for verbose 1 and 2 either way)."""
    if verbose == 1:
        try:
            from tqdm.auto import tqdm

            return lambda total, desc: tqdm(total=total, desc=desc, unit="batch",
                                            leave=True, dynamic_ncols=True)
        except ImportError:
            pass
    return NoBar


def epoch_line(epoch: int, epochs: int, logs: dict, width: int = 80) -> str:
    """'Epoch 2/5: loss 0.4570, accuracy 0.8780, val_loss 0.3740, val_accuracy 0.8630', folded
    at `width` columns (continuation lines indented), for the end of each epoch."""
    words = [f"{k} {v:.4g}" if k == "learning_rate" else f"{k} {v:.4f}"
             for k, v in logs.items()]
    return textwrap.fill(", ".join(words), width, initial_indent=f"Epoch {epoch}/{epochs}: ",
                         subsequent_indent="    ", break_long_words=False,
                         break_on_hyphens=False)


class NoBar:
    shows_postfix = False   # fit skips computing mid-epoch logs for it

    def __init__(self, total=None, desc=None):
        pass

    def update(self, n=1):
        pass

    def set_postfix(self, logs, refresh=True):
        pass

    def close(self):
        pass


def check_xy(x, y, what: str = "x"):
    if y is None:
        raise ValueError(f"y is required when {what} is an array (only a batch source "
                         "yields its own labels)")
    if not hasattr(x, "shape"):
        x = np.asarray(x)
    if not hasattr(y, "shape"):
        y = np.asarray(y)
    if len(x) != len(y):
        raise ValueError(f"{what} and y must have the same number of samples, got "
                         f"{what} {tuple(x.shape)} and y {tuple(y.shape)}")
    if len(x) == 0:
        raise ValueError(f"{what} is empty: shape {tuple(x.shape)}")
    return x, y

def hold_out(x, y, validation_split: float, validation_data):
    """fit's validation_split: the last fraction of the arrays (before shuffling) becomes the
    validation data. Returns (x, y, validation_data)."""
    if not 0.0 <= validation_split < 1.0:
        raise ValueError(f"validation_split must be in [0, 1), got {validation_split!r}")
    if not validation_split:
        return x, y, validation_data
    split = int(len(x) * (1.0 - validation_split))
    if split < 1 or split == len(x):
        raise ValueError(f"validation_split={validation_split} leaves no training or "
                         f"no validation samples out of {len(x)}")
    return x[:split], y[:split], (x[split:], y[split:])


def batches_and_count(x, y, batch_size: int, order=None):
    """(iterator of (xb, yb), number of batches) over a batch source (y unused) or over the
    arrays x, y in `order` (None: as stored)."""
    if is_batch_source(x):
        return iter(x), len(x)
    return array_batches(x, y, batch_size, order), math.ceil(len(x) / batch_size)


def array_batches(x, y, batch_size: int, order=None):
    n = len(x)
    if order is not None:   # the permutation goes to each array's device once per epoch
        ox, oy = on_device_of(x, order), (None if y is None else on_device_of(y, order))
    for s in range(0, n, batch_size):
        if order is None:
            sl = slice(s, s + batch_size)
            yield x[sl], (None if y is None else y[sl])
        else:
            yield x[ox[s:s + batch_size]], (None if y is None else y[oy[s:s + batch_size]])

