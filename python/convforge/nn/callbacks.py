"""Training callbacks (Keras semantics): History, EarlyStopping, ModelCheckpoint, CSVLogger,
LearningRateScheduler, ReduceLROnPlateau, TerminateOnNaN; and EpochTimer.

fit calls on_train_begin, then per epoch on_epoch_begin, on_train_batch_end (per batch) and
on_epoch_end(epoch, logs) with logs such as {"loss", "accuracy", "val_loss", "val_accuracy",
"learning_rate"} (epoch counts from 0; learning_rate is the rate of the epoch's last optimiser
step, Keras 3's key), and on_train_end. A callback stops training by setting
`model.stop_training = True`. Batch logs (on_train_batch_end) hold the running means of the
epoch so far; asking for them costs a GPU synchronisation per batch on the cuda backend.
"""

from __future__ import annotations

import csv
import inspect
import math
import os
import time
import warnings
from typing import Callable, Optional

__all__ = ["Callback", "History", "EarlyStopping", "ModelCheckpoint", "CSVLogger",
           "LearningRateScheduler", "ReduceLROnPlateau", "TerminateOnNaN", "EpochTimer"]


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


class EpochTimer(Callback):
    """Wall seconds from the start of fit to the end of each epoch, its validation included:
    the time axis of a time-to-accuracy curve. `.seconds` holds one value per epoch run."""

    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []
        self._start = 0.0

    def on_train_begin(self, logs=None):
        self.seconds, self._start = [], time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


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


def _set_rate(model, value, who: str) -> float:
    """model.optimizer.learning_rate = value (a finite float >= 0); returns it."""
    try:
        rate = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{who}: the new learning rate must be a number, got {value!r}") \
            from None
    if not (math.isfinite(rate) and rate >= 0.0):
        raise ValueError(f"{who}: the new learning rate must be finite and >= 0, got {rate!r}")
    model.optimizer.learning_rate = rate   # TypeError when a schedule drives the rate
    return rate


def _takes_two(fn: Callable) -> bool:
    """Whether fn accepts two positional arguments (schedule(epoch, lr)) or only one."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):   # some builtins: assume Keras' two-argument form
        return True
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return True
    return sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params) >= 2


class LearningRateScheduler(Callback):
    """Sets the optimiser's learning rate at the start of each epoch to schedule(epoch, lr)
    (epoch from 0, lr the current rate; a one-argument schedule(epoch) works too), as Keras'
    LearningRateScheduler. For a rate that changes every optimiser step give the optimiser a
    schedule from convforge.optim.schedules instead (the two do not combine: an optimiser
    driven by a schedule refuses a float rate, TypeError)."""

    def __init__(self, schedule: Callable, verbose: int = 0):
        super().__init__()
        if not callable(schedule):
            raise TypeError(f"schedule must be callable, got {type(schedule).__name__}")
        self.schedule, self.verbose = schedule, verbose
        self._two = _takes_two(schedule)

    def on_epoch_begin(self, epoch, logs=None):
        lr = float(self.model.optimizer.learning_rate)
        new = self.schedule(epoch, lr) if self._two else self.schedule(epoch)
        new = _set_rate(self.model, new, "LearningRateScheduler")
        if self.verbose:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {new}.")


class ReduceLROnPlateau(_Monitor):
    """Multiplies the learning rate by `factor` (not below min_lr) once `monitor` has not
    improved by more than min_delta for `patience` epochs; then waits `cooldown` epochs
    before counting again (Keras' ReduceLROnPlateau, same arguments and defaults)."""

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10,
                 verbose: int = 0, mode: str = "auto", min_delta: float = 1e-4,
                 cooldown: int = 0, min_lr: float = 0.0):
        super().__init__(monitor, mode, min_delta)
        if not 0.0 <= float(factor) < 1.0:
            raise ValueError(f"factor must be in [0, 1) (it reduces the rate), got {factor!r}")
        for name, v in (("patience", patience), ("cooldown", cooldown)):
            if int(v) < 0:
                raise ValueError(f"{name} must be >= 0, got {v!r}")
        if not float(min_lr) >= 0.0:
            raise ValueError(f"min_lr must be >= 0, got {min_lr!r}")
        self.factor, self.patience, self.cooldown = float(factor), int(patience), int(cooldown)
        self.min_lr, self.verbose = float(min_lr), verbose

    def on_train_begin(self, logs=None):
        self.wait, self.cooldown_counter = 0, 0
        self.best = math.inf if self.mode == "min" else -math.inf

    def on_epoch_end(self, epoch, logs=None):
        value = self._current(logs)
        if value is None:
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._improved(value):
            self.best, self.wait = value, 0
            return
        if self.cooldown_counter > 0:
            return
        self.wait += 1
        if self.wait < self.patience:
            return
        old = float(self.model.optimizer.learning_rate)
        if old > self.min_lr:
            new = _set_rate(self.model, max(old * self.factor, self.min_lr), "ReduceLROnPlateau")
            if self.verbose:
                print(f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate to {new}.")
            self.cooldown_counter, self.wait = self.cooldown, 0


class TerminateOnNaN(Callback):
    """Stops training as soon as the loss is NaN or infinite: checked after every batch on the
    epoch's running mean loss (which a single bad batch makes NaN/inf); the epoch ends there,
    without validation, and fit returns (Keras' TerminateOnNaN)."""

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            print(f"Batch {batch}: invalid loss, terminating training")
            self.model.stop_training = True
