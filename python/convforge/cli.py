"""The `convforge` command: train a zoo model on a dataset, draw what it learnt, print info,
run benchmarks.

    convforge train lenet5 --dataset mnist --epochs 5 --out runs/lenet5
    convforge train vgg_small --dataset cifar10 --augment flip,crop=4 --backend cuda
    convforge train vgg_fast                      # the fast CIFAR-10 recipe (--recipe fast)
    mpiexec -n 2 convforge train lenet5           # data-parallel (convforge.distributed)
    convforge viz filters activations gradcam --weights runs/lenet5/weights.npz --index 0
    convforge info
    convforge bench [args for bench/compare.py]

`train` writes DIR/metrics.json, DIR/weights.npz and DIR/curves.png (each atomically: a crash
never leaves a truncated file). --seed S (default 0) calls convforge.set_seed(S) and seeds the
data order and augmentation: the same command on the same machine, thread count and backend
gives bit-identical weights and metrics (times aside). `viz` (convforge/_cli_viz.py) writes
PNG figures of a trained model: filters, activations, Grad-CAM.

Errors (bad options, unreadable or corrupt data, an unusable --out) end with one line on
stderr and exit status 2 (usage) or 1. SIGINT (Ctrl-C) or SIGTERM during training stops after
the current batch, writes metrics.json ("interrupted": true, no test metrics), the weights and
the curves of the epochs done, and exits with 130 or 143; a second Ctrl-C aborts at once.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import inspect
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import _transfer, recipes
from .data import DataError

__all__ = ["build_parser", "main"]

DATASETS = ("mnist", "fashion_mnist", "emnist_letters", "cifar10")
MODELS = ("lenet5", "vgg_small", "vgg_fast", "vgg_small_gmp")
DEFAULT_DATASET = {"lenet5": "mnist", "vgg_small": "cifar10", "vgg_fast": "cifar10",
                   "vgg_small_gmp": "cifar10"}
NUM_CLASSES = {"mnist": 10, "fashion_mnist": 10, "emnist_letters": 26, "cifar10": 10}
LR_SCHEDULES = ("constant", "step", "exponential", "cosine", "onecycle")


class CLIError(Exception):
    """A user-facing error: printed without a traceback, exit status 1 (2 for usage)."""

    def __init__(self, message: str, status: int = 1):
        super().__init__(message)
        self.status = status


# --------------------------------------------------------------------------- parser

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="convforge", description="convforge command line")
    sub = p.add_subparsers(dest="command", metavar="{train,viz,info,bench}")

    t = sub.add_parser("train", help="train a model from the zoo and write metrics/weights/curves",
                       description="Train a zoo model (lenet5, vgg_small, vgg_fast, "
                                   "vgg_small_gmp); writes DIR/metrics.json, DIR/weights.npz "
                                   "and DIR/curves.png. Options marked 'recipe' default to "
                                   "the --recipe's value.")
    t.add_argument("model", choices=MODELS)
    t.add_argument("--dataset", choices=DATASETS, default=None,
                   help="default: mnist for lenet5, cifar10 for the VGG nets")
    t.add_argument("--backend", default=None,
                   help="cpu, cuda, numba or reference (default: automatic choice)")
    t.add_argument("--out", default=None, help="output folder (default: runs/MODEL-DATASET)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--limit", type=int, default=None, metavar="N",
                   help="use only N training images (a seeded random subset), for quick runs")
    t.add_argument("--test-limit", type=int, default=None, metavar="N",
                   help="evaluate on only N test images (a seeded random subset), for quick runs")
    t.add_argument("--data", default=None, metavar="PATH",
                   help="dataset location (else $CONVFORGE_DATA, cache, system dirs, download)")
    t.add_argument("--stream", action="store_true",
                   help="cifar10 only: decode JPEGs from disk per batch instead of loading all")
    t.add_argument("--quiet", action="store_true", help="no progress bars or model summary")
    t.add_argument("--init", default=None, metavar="WEIGHTS",
                   help="start from another run's weights.npz: every layer with the same name "
                        "and shapes takes them (a head for another class count stays new)")
    t.add_argument("--freeze", choices=("none", "base", "convs"), default="none",
                   help="freeze layers: base = everything before the Flatten (feature "
                        "extraction), convs = everything before the last Conv2D (fine-tune "
                        "the last conv block; pair it with a lower --lr) (default none)")
    t.add_argument("--per-class", type=int, default=None, metavar="N",
                   help="train on N images of every class (a seeded subset of the training "
                        "set, before the validation split)")
    recipes.add_arguments(t, LR_SCHEDULES)

    from ._cli_viz import add_parser as add_viz_parser  # imports this module: not at the top

    add_viz_parser(sub)

    sub.add_parser("info", help="print convforge.info(): version, backends, CPU ISA, threads")

    b = sub.add_parser("bench", help="run bench/compare.py (the benchmark comparison)",
                       description="Runs bench/compare.py from the source checkout; every "
                                   "argument after `bench` is passed on to it.")
    b.add_argument("args", nargs=argparse.REMAINDER, help="passed on to bench/compare.py")
    return p


# --------------------------------------------------------------------------- info / bench

def _format_value(v: Any) -> str:
    if isinstance(v, (list, tuple)):
        return ", ".join(str(e) for e in v) if v else "(none)"
    return str(v)


def format_info(info: dict[str, Any]) -> str:
    width = max(len(k) for k in info)
    lines = [f"convforge {info.get('version', '?')}"]
    for k, v in info.items():
        if k == "version":
            continue
        if isinstance(v, dict):
            lines.append(f"  {k:<{width}}  " + ("(none)" if not v else ""))
            inner = max((len(str(a)) for a in v), default=0)
            lines += [f"    {a!s:<{inner}}  {_format_value(b)}" for a, b in v.items()]
        else:
            lines.append(f"  {k:<{width}}  {_format_value(v)}")
    return "\n".join(lines)


def cmd_info() -> int:
    import convforge

    print(format_info(convforge.info()))
    return 0


def bench_script_candidates() -> list[Path]:
    repo = Path(__file__).resolve().parents[2]  # python/convforge/cli.py -> repository root
    out = []
    for p in (Path.cwd() / "bench" / "compare.py", repo / "bench" / "compare.py"):
        if p not in out:
            out.append(p)
    return out


def cmd_bench(args: Sequence[str]) -> int:
    for script in bench_script_candidates():
        if script.is_file():
            return subprocess.call([sys.executable, str(script), *args])
    looked = "\n".join(f"  - {p}" for p in bench_script_candidates())
    print("convforge bench runs bench/compare.py from a source checkout (the benchmark suites "
          "are not part of the installed package). Not found here:\n"
          f"{looked}\nRun it from the repository root, or run `pytest bench/` directly.",
          file=sys.stderr)
    return 2


# --------------------------------------------------------------------------- train

def _load_dataset(name: str, path: str | None):
    from . import data

    loaders = {"mnist": data.load_mnist, "fashion_mnist": data.load_fashion_mnist,
               "emnist_letters": data.load_emnist_letters, "cifar10": data.load_cifar10}
    try:
        return loaders[name](path)
    except FileNotFoundError as e:
        hint = "" if "--data" in str(e) else " (give its location with --data PATH)"
        raise CLIError(f"{e}{hint}") from None
    except (ValueError, OSError) as e:   # data.DataError / ChecksumError: corrupt, truncated
        raise CLIError(f"cannot load {name}: {e}") from None


def _to_32(x: np.ndarray) -> np.ndarray:
    """28x28 datasets are zero-padded to 32x32 (LeNet-5's input; vgg_small expects 32 too)."""
    from .data import pad_images

    return pad_images(x, 2) if x.shape[-1] == 28 else x


def make_schedule(name: str, lr: float, epochs: int, steps_per_epoch: int):
    """The learning rate for --lr-schedule NAME (see its --help): lr itself for 'constant',
    else a schedule over epochs * steps_per_epoch optimiser steps."""
    from .optim import schedules

    total = max(1, epochs * steps_per_epoch)
    if name == "constant":
        return lr
    if name == "step":
        return schedules.StepDecay(lr, max(1, steps_per_epoch * math.ceil(epochs / 3)), 0.1)
    if name == "exponential":
        return schedules.ExponentialDecay(lr, total, 0.1)
    if name == "cosine":
        return schedules.CosineDecay(lr, total)
    if name == "onecycle":
        return schedules.OneCycle(lr, total)
    raise ValueError(f"unknown learning-rate schedule {name!r}; choose from {LR_SCHEDULES}")


def _make_optimizer(name: str, lr, weight_decay: float = 0.0, nesterov: bool = False):
    from . import optim

    if name == "sgd":
        return optim.SGD(learning_rate=lr, momentum=0.9, nesterov=nesterov,
                         weight_decay=weight_decay)
    if name == "rmsprop":
        return optim.RMSprop(learning_rate=lr, weight_decay=weight_decay)
    return optim.Adam(learning_rate=lr, weight_decay=weight_decay)


def _build_model(models_mod, name: str, num_classes: int, input_shape: tuple[int, ...],
                 seed: int):
    import convforge

    factory = getattr(models_mod, name)
    convforge.set_seed(seed)  # weights and Dropout masks (fit gets seed= for the rest)
    kwargs: dict[str, Any] = {"num_classes": num_classes, "input_shape": tuple(input_shape)}
    if "seed" in inspect.signature(factory).parameters:  # seeded initialisers when offered
        kwargs["seed"] = seed
    return factory(**kwargs)


def _history_dict(history: Any) -> dict[str, list[float]]:
    hist = getattr(history, "history", history) or {}
    return {k: [float(v) for v in vals] for k, vals in hist.items()}


def _evaluate_stream(model, batches, tta: str) -> dict[str, float]:
    """Sample-weighted mean of recipes.evaluate_tta over streamed batches."""
    total, loss, correct = 0, 0.0, 0.0
    for xb, yb in batches:
        r = recipes.evaluate_tta(model, xb, yb, len(yb), tta)
        loss += r["loss"] * len(yb)
        correct += r["accuracy"] * len(yb)
        total += len(yb)
    return {"loss": loss / total, "accuracy": correct / total}


def cmd_train(a: argparse.Namespace) -> int:
    from . import distributed

    world = distributed.init()   # under mpiexec: data-parallel, --batch-size the global batch
    with world.guard():          # an error on one rank ends them all (no rank left waiting)
        return _cmd_train(a, world)


def _cmd_train(a: argparse.Namespace, world) -> int:
    import convforge

    from . import data

    dataset = a.dataset or DEFAULT_DATASET[a.model]
    recipes.resolve(a, a.model)
    if not 0.0 <= a.label_smoothing < 1.0:
        raise CLIError(f"--label-smoothing must be in [0, 1), got {a.label_smoothing}", 2)
    if a.epochs < 1 or a.batch_size < 1:
        raise CLIError("--epochs and --batch-size must be >= 1", 2)
    if not 0.0 <= a.val_split < 1.0:
        raise CLIError(f"--val-split must be in [0, 1), got {a.val_split}", 2)
    if a.stream and dataset != "cifar10":
        raise CLIError("--stream works with --dataset cifar10 (the JPEG tree or archive)", 2)
    if a.lr is not None and not (math.isfinite(a.lr) and a.lr > 0):
        raise CLIError(f"--lr must be a finite number > 0, got {a.lr}", 2)
    if not (math.isfinite(a.weight_decay) and a.weight_decay >= 0):
        raise CLIError(f"--weight-decay must be a finite number >= 0, got {a.weight_decay}", 2)
    if a.seed < 0:
        raise CLIError(f"--seed must be >= 0, got {a.seed}", 2)
    for opt, v in (("--limit", a.limit), ("--test-limit", a.test_limit)):
        if v is not None and v < 1:
            raise CLIError(f"{opt} must be >= 1, got {v}", 2)
    try:
        augment = data.Augment.from_spec(a.augment) if a.augment else None
    except ValueError as e:
        raise CLIError(str(e), 2) from None
    try:
        models_mod = importlib.import_module("convforge.models")
    except ImportError as e:
        raise CLIError(f"convforge.models is not available ({e}); `train` needs the nn "
                       "package and model zoo") from None
    if a.backend is not None and a.backend not in convforge.available():
        reason = (convforge.backends.unavailable_reason(a.backend)
                  if a.backend in convforge.backends.NAMES else "unknown backend")
        raise CLIError(f"--backend {a.backend} cannot run here ({reason}); available: "
                       f"{convforge.available()}", 2)
    if world.is_root:   # only rank 0 writes
        _check_out_dir(Path(a.out or f"runs/{a.model}-{dataset}"))
    with contextlib.ExitStack() as stack:  # the backend choice ends with the command
        if a.backend:                          # (main() may run in-process)
            stack.enter_context(convforge.use_backend(a.backend))
        if not world.is_root:                  # the other ranks are quiet
            stack.enter_context(contextlib.redirect_stdout(
                stack.enter_context(open(os.devnull, "w"))))
        return _train(a, dataset, augment, models_mod, world)


def _check_out_dir(out: Path) -> None:
    """--out must be a folder we can create files in: checked before any data is loaded (a
    training run must not end in 'cannot write')."""
    created = [p for p in (out, *out.parents) if not p.exists()]   # deepest first
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".convforge-write-test.", dir=out)
        os.close(fd)
        os.unlink(probe)
        for p in created:   # made again when the results are written: no empty folders left
            p.rmdir()       # behind by a run that fails later (missing data, say)
    except OSError as e:
        why = "it is a file, not a folder" if out.exists() and not out.is_dir() else \
            (e.strerror or str(e))
        raise CLIError(f"--out {out}: cannot write there ({why})", 2) from None


class _Interrupt:
    """SIGINT/SIGTERM during training: the handler records the signal and asks the model to
    stop after the current batch (fit checks model.stop_training after each batch); a second
    SIGINT raises KeyboardInterrupt at once. Handlers are installed only on the main thread
    (signal.signal refuses elsewhere) and restored on exit."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)   # both exist on every platform, Windows too

    def __init__(self):
        self.signum: int | None = None
        self.model = None
        self._old: dict[int, Any] = {}

    def _handle(self, signum, frame) -> None:
        if self.signum == signal.SIGINT and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum
        if self.model is not None:
            self.model.stop_training = True

    def __enter__(self) -> _Interrupt:
        import threading

        if threading.current_thread() is threading.main_thread():
            for num in self.SIGNALS:
                self._old[num] = signal.signal(num, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for num, old in self._old.items():
            signal.signal(num, old)
        self._old.clear()

    def callback(self):
        """A fit callback re-raising the stop at train/epoch begin (fit resets stop_training
        when it starts, which would drop a signal that came just before)."""
        from .nn import Callback

        intr = self

        class _StopOnSignal(Callback):
            def on_train_begin(self, logs=None):
                if intr.signum is not None:
                    self.model.stop_training = True

            def on_epoch_begin(self, epoch, logs=None):
                self.on_train_begin(logs)

        return _StopOnSignal()


def _train(a: argparse.Namespace, dataset: str, augment, models_mod, world) -> int:
    import convforge

    from . import data, losses
    from .nn import EpochTimer

    backend = convforge.backends.chosen(False)
    on_gpu = backend == "cuda"
    xp = np
    if on_gpu:
        import cupy as xp  # the cuda backend takes CuPy arrays: data goes to the device once
        world.select_gpu()
    out = Path(a.out or f"runs/{a.model}-{dataset}")
    lr = a.lr
    verbose = 0 if a.quiet else 1

    # ---- data
    if a.stream:
        source = _find_stream_source(a.data)
        try:
            train_src = data.StreamingBatches(source, "train", a.batch_size, shuffle=True,
                                              seed=a.seed, augment=augment, dtype=np.float32,
                                              limit=a.limit)
            test_src = data.StreamingBatches(source, "test", 256, shuffle=False, seed=a.seed,
                                             dtype=np.float32, limit=a.test_limit)
        except ValueError as e:
            raise CLIError(f"--stream: {e}", 2) from None
        n_train, input_shape = train_src.num_samples, train_src.sample_shape
        n_test = test_src.num_samples
        val_data, validation = None, "none (streaming mode: the test set is evaluated at the end)"
    else:
        (x_train, y_train), (x_test, y_test) = _load_dataset(dataset, a.data)
        x_train, x_test = _to_32(x_train), _to_32(x_test)
        if a.limit is not None:
            if not 1 <= a.limit <= len(x_train):
                raise CLIError(f"--limit must be in 1..{len(x_train)}, got {a.limit}", 2)
            x_train, y_train = data.random_subset(x_train, y_train, a.limit, seed=a.seed)
        if a.per_class is not None:
            try:
                x_train, y_train = _transfer.per_class_subset(x_train, y_train, a.per_class,
                                                              a.seed)
            except ValueError as e:
                raise CLIError(f"--per-class: {e}", 2) from None
        if a.test_limit is not None:
            if not 1 <= a.test_limit <= len(x_test):
                raise CLIError(f"--test-limit must be in 1..{len(x_test)}, got {a.test_limit}", 2)
            x_test, y_test = data.random_subset(x_test, y_test, a.test_limit, seed=a.seed)
        n_test = len(x_test)
        if a.val_split > 0:
            (x_train, y_train), (x_val, y_val) = data.train_val_split(
                x_train, y_train, a.val_split, seed=a.seed + 1)
            if len(x_val) == 0 or len(x_train) == 0:
                raise CLIError(f"--val-split {a.val_split:g} of {len(x_val) + len(x_train)} "
                               "images leaves an empty split; change it or use --val-split 0", 2)
            validation = (f"held-out {a.val_split:g} of the training images "
                          f"({len(x_val)} images); test set evaluated once at the end")
        else:
            x_val, y_val = x_test, y_test
            validation = "test set, every epoch (no held-out split: --val-split 0)"
        n_train, input_shape = len(x_train), x_train.shape[1:]
        x_train, y_train = xp.asarray(x_train), xp.asarray(y_train)
        x_test, y_test = xp.asarray(x_test), xp.asarray(y_test)
        val_data = (xp.asarray(x_val), xp.asarray(y_val))
        train_src = data.Batches(x_train, y_train, a.batch_size, shuffle=True, seed=a.seed,
                                 augment=augment, dtype=np.float32)
        test_src = None

    # ---- model
    model = _build_model(models_mod, a.model, NUM_CLASSES[dataset], input_shape, a.seed)
    if a.init is not None:
        try:
            skipped = _transfer.init_from(model, a.init)
        except (OSError, ValueError, TypeError) as e:
            raise CLIError(f"--init {a.init}: {e}", 2) from None
        print(f"initial weights from {a.init}" + (f" (new: {', '.join(skipped)})" if skipped
                                                  else ""))
    frozen = _transfer.freeze(model, a.freeze)
    if frozen:
        print(f"frozen: {', '.join(frozen)}")
    rate = make_schedule(a.lr_schedule, lr, a.epochs, len(train_src))
    model.compile(optimizer=_make_optimizer(a.optimizer, rate, a.weight_decay, a.nesterov),
                  loss=losses.SparseCategoricalCrossentropy(label_smoothing=a.label_smoothing),
                  metrics=["accuracy"])
    if world.size > 1:
        from .distributed import data_parallel

        data_parallel(model, world)
        print(f"data-parallel over {world.size} MPI ranks: {a.batch_size} images per global "
              f"batch, about {a.batch_size // world.size} per rank")
    if verbose:
        model.summary()
    print(f"training {a.model} on {dataset}: {n_train} images, {a.epochs} epoch(s), batch "
          f"{a.batch_size}, backend {backend}, augment {augment.spec() if augment else 'none'}")
    nesterov = " (nesterov)" if a.nesterov and a.optimizer == "sgd" else ""
    print(f"recipe {a.recipe}: optimizer {a.optimizer}{nesterov}, "
          f"learning rate {lr:g} ({'constant' if rate == lr else rate}), weight decay "
          f"{a.weight_decay:g}, label smoothing {a.label_smoothing:g}, test-time "
          f"augmentation {a.tta}")
    print(f"validation: {validation}")

    # ---- train (SIGINT/SIGTERM stop it after the current batch), evaluate
    t0 = time.perf_counter()
    with _Interrupt() as intr:
        intr.model = model
        timer = EpochTimer()
        history = model.fit(train_src, None, epochs=a.epochs, validation_data=val_data,
                            verbose=verbose, seed=a.seed, callbacks=[intr.callback(), timer])
        train_seconds = time.perf_counter() - t0
        interrupted = intr.signum
        if interrupted is not None:   # no test evaluation: stop promptly, as asked
            test = {"accuracy": None, "loss": None}
            print(f"interrupted by {signal.Signals(interrupted).name}: saving the weights of "
                  "the last batch", file=sys.stderr)
        elif test_src is not None:
            test = _evaluate_stream(model, test_src, a.tta)
        else:
            test = recipes.evaluate_tta(model, x_test, y_test, 256, a.tta)
        hist = _history_dict(history)
        epochs_run = len(getattr(history, "epoch", []))

        # ---- write outputs (each file atomically; a signal now waits until they are written)
        metrics = {
            "test_accuracy": None if test["accuracy"] is None else float(test["accuracy"]),
            "test_loss": None if test["loss"] is None else float(test["loss"]),
            "epochs": epochs_run,
            "interrupted": interrupted is not None,
            "train_seconds": train_seconds,
            "epoch_end_seconds": timer.seconds,
            "images_per_second": n_train * epochs_run / train_seconds if epochs_run else None,
            "backend": backend,
            "model": a.model,
            "dataset": dataset,
            "seed": a.seed,
            "history": hist,
            "train_images": n_train,
            "test_images": n_test,
            "validation": validation,
            "batch_size": a.batch_size,
            "optimizer": a.optimizer,
            "learning_rate": lr,
            "lr_schedule": a.lr_schedule,
            "weight_decay": a.weight_decay,
            "recipe": a.recipe, "label_smoothing": a.label_smoothing, "tta": a.tta,
            "augment": augment.spec() if augment else "none",
            "init": a.init, "freeze": a.freeze, "per_class": a.per_class,
            "params": int(model.count_params()),
            "mpi_ranks": world.size,
            "note": "train_seconds is the wall time of model.fit (per-epoch validation "
                    "included); epoch_end_seconds: from its start to each epoch's end",
        }
        if world.is_root:
            _write_outputs(out, model, metrics, hist)
    if interrupted is not None:
        print(f"wrote {out}/metrics.json (interrupted), weights.npz", file=sys.stderr)
        return 128 + int(interrupted)
    print(f"test accuracy {metrics['test_accuracy']:.4f}, test loss {metrics['test_loss']:.4f}, "
          f"{metrics['images_per_second']:.0f} images/s; wrote {out}/metrics.json, "
          "weights.npz, curves.png")
    return 0


def _write_outputs(out: Path, model, metrics: dict[str, Any], hist: dict) -> None:
    from ._io_atomic import write_text

    try:
        out.mkdir(parents=True, exist_ok=True)
        model.save_weights(str(out / "weights.npz"))
        write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    except OSError as e:
        raise CLIError(f"cannot write the results to {out}: {e}") from None
    if not hist.get("loss"):
        return   # interrupted before the first epoch ended: no curve to draw
    try:
        from .viz import plot_history

        plot_history(hist, out / "curves.png")
    except ImportError as e:
        print(f"warning: curves.png not written: {e}", file=sys.stderr)


def _find_stream_source(path: str | None) -> Path:
    from .data import find_cifar10_images

    try:
        return find_cifar10_images(path)
    except FileNotFoundError as e:
        raise CLIError(f"--stream needs the CIFAR-10 JPEG tree or archive: {e}") from None


# --------------------------------------------------------------------------- entry point

def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["bench"]:  # everything after `bench` (options too) goes to compare.py;
        return cmd_bench(argv[1:])  # the parser's `bench` entry only documents it in --help
    parser = build_parser()
    a = parser.parse_args(argv)
    if a.command is None:
        parser.print_help()
        return 2
    try:
        if a.command == "info":
            return cmd_info()
        if a.command == "viz":
            from ._cli_viz import cmd_viz

            return cmd_viz(a)
        return cmd_train(a)
    except CLIError as e:
        print(f"convforge {a.command}: error: {e}", file=sys.stderr)
        return e.status
    except DataError as e:   # a corrupt image met while streaming (training or test)
        print(f"convforge {a.command}: error: bad data: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:   # Ctrl-C outside training, or twice: nothing (more) written
        print(f"convforge {a.command}: interrupted", file=sys.stderr)
        return 128 + int(signal.SIGINT)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
