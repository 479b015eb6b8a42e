"""Training callbacks (Keras semantics): History, EarlyStopping, ModelCheckpoint, CSVLogger.

fit calls on_train_begin, then per epoch on_epoch_begin, on_train_batch_end (per batch) and
on_epoch_end(epoch, logs) with logs such as {"loss", "accuracy", "val_loss", "val_accuracy"}
(epoch counts from 0), and on_train_end. A callback stops training by setting
`model.stop_training = True`.
"""

from __future__ import annotations

import csv
import math
import os
import warnings
from typing import Optional

__all__ = ["Callback", "History", "EarlyStopping", "ModelCheckpoint", "CSVLogger"]


class Callback:
    def __init__(self):
        self.model = None

    def set_model(self, model) -> None:
        self.model = model

    def on_train_begin(self, logs: Optional[dict] = None) -> None: ...

    def on_train_end(self, logs: Optional[dict] = None) -> None: ...

    def on_epoch_begin(self, epoch: int, logs: Optional[dict] = None) -> None: ...

    def on_epoch_end(self, epoch: int, logs: Optional[dict] = None) -> None: ...

    def on_train_batch_end(self, batch: int, logs: Optional[dict] = None) -> None: ...


class History(Callback):
    """What fit returns: `.history` maps each log key to its per-epoch list; `.epoch` lists the
    epochs run."""

    def __init__(self):
        super().__init__()
        self.history: dict[str, list] = {}
        self.epoch: list[int] = []

    def on_train_begin(self, logs=None):
        self.history, self.epoch = {}, []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)


def _mode(monitor: str, mode: str) -> str:
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode != "auto":
        return mode
    return "max" if ("acc" in monitor or monitor.endswith("auc")) else "min"


class _Monitor(Callback):
    """Tracks the best value of logs[monitor] (min or max)."""

    def __init__(self, monitor: str, mode: str, min_delta: float = 0.0):
        super().__init__()
        self.monitor = monitor
        self.mode = _mode(monitor, mode)
        self.min_delta = abs(float(min_delta))
        self.best = math.inf if self.mode == "min" else -math.inf

    def _current(self, logs) -> Optional[float]:
        value = (logs or {}).get(self.monitor)
        if value is None:
            warnings.warn(f"{type(self).__name__}: metric {self.monitor!r} is not in the logs "
                          f"(available: {sorted(logs or {})}); skipping", stacklevel=3)
        return value

    def _improved(self, value: float) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta


class EarlyStopping(_Monitor):
    """Stops when `monitor` has not improved (by more than min_delta) for `patience` epochs.
    With restore_best_weights, the weights of the best epoch are put back when training ends
    (Keras 3 behaviour: also when it ran to the last epoch)."""

    def __init__(self, monitor: str = "val_loss", patience: int = 0, min_delta: float = 0.0,
                 mode: str = "auto", restore_best_weights: bool = False, verbose: int = 0):
        super().__init__(monitor, mode, min_delta)
        if int(patience) < 0:
            raise ValueError(f"patience must be >= 0, got {patience!r}")
        self.patience = int(patience)
        self.restore_best_weights = bool(restore_best_weights)
        self.verbose = verbose

    def on_train_begin(self, logs=None):
        self.wait, self.stopped_epoch, self.best_epoch = 0, 0, 0
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_weights = None

    def on_epoch_end(self, epoch, logs=None):
        value = self._current(logs)
        if value is None:
            return
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch and self.verbose:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose:
                print(f"Restoring model weights from the end of the best epoch "
                      f"({self.best_epoch + 1})")
            self.model.set_weights(self.best_weights)


class ModelCheckpoint(_Monitor):
    """Saves the weights after each epoch (.npz or .safetensors, via model.save_weights).
    filepath may hold format fields: "{epoch:02d}" (counting from 1) and log keys such as
    "{val_loss:.3f}". With save_best_only, saves only when `monitor` improves."""

    def __init__(self, filepath: str, monitor: str = "val_loss", save_best_only: bool = False,
                 mode: str = "auto", verbose: int = 0):
        super().__init__(monitor, mode)
        self.filepath = os.fspath(filepath)
        self.save_best_only = bool(save_best_only)
        self.verbose = verbose

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        path = self.filepath.format(epoch=epoch + 1, **logs)
        if self.save_best_only:
            value = self._current(logs)
            if value is None or not self._improved(value):
                return
            if self.verbose:
                print(f"Epoch {epoch + 1}: {self.monitor} improved from {self.best:.5f} to "
                      f"{value:.5f}, saving weights to {path}")
            self.best = value
        folder = os.path.dirname(path)
        if folder:
            os.makedirs(folder, exist_ok=True)
        self.model.save_weights(path)


class CSVLogger(Callback):
    """Writes one row per epoch: epoch, then the log keys in sorted order."""

    def __init__(self, filename: str, separator: str = ",", append: bool = False):
        super().__init__()
        self.filename = os.fspath(filename)
        self.separator, self.append = separator, bool(append)
        self._file = None
        self._writer = None
        self._keys = None

    def on_train_begin(self, logs=None):
        exists = self.append and os.path.exists(self.filename) and \
            os.path.getsize(self.filename) > 0
        # kept open across epochs (closed in on_train_end) so every row is flushed as written
        self._file = open(self.filename, "a" if self.append else "w", newline="")  # noqa: SIM115
        self._writer, self._keys, self._header_done = None, None, exists

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self._keys is None:
            self._keys = sorted(logs)
            self._writer = csv.DictWriter(self._file, ["epoch"] + self._keys,
                                          delimiter=self.separator, extrasaction="ignore")
            if not self._header_done:
                self._writer.writeheader()
        row = {"epoch": epoch}
        row.update({k: logs.get(k, "NA") for k in self._keys})
        self._writer.writerow(row)
        self._file.flush()

    def on_train_end(self, logs=None):
        if self._file is not None:
            self._file.close()
            self._file = None
