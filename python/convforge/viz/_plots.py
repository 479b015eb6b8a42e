"""Plots for training runs: loss/accuracy curves, first-layer filters, activations (the
Grad-CAM functions are in _gradcam.py; convforge.viz re-exports both).

Needs matplotlib (`pip install matplotlib`, or the `viz` extra). Figures are drawn with the Agg
canvas directly (no pyplot, no change to the global matplotlib backend) and written to `path`;
each function returns the path it wrote.
"""

from __future__ import annotations

import inspect
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np

from .._array import is_cupy
from .._io_atomic import atomic_write

__all__ = ["plot_history", "show_activations", "show_filters"]

PathLike = Union[str, "os.PathLike[str]"]


def _figure(width: float, height: float):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as e:
        raise ImportError("convforge.viz needs matplotlib: pip install matplotlib "
                          "(or pip install 'convforge[viz]')") from e
    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: PathLike) -> Path:
    """Writes the figure atomically (temporary file + os.replace: a crash never leaves a
    truncated image); the format comes from the suffix (png when there is none)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = path.suffix[1:].lower() or "png"
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format=fmt, bbox_inches="tight")
    return path


def _host(a) -> np.ndarray:
    """NumPy copy of a NumPy/CuPy array (or anything array-like)."""
    if is_cupy(a):
        a = a.get()
    return np.asarray(a)


def plot_history(history: Mapping[str, Sequence[float]] | Any, path: PathLike) -> Path:
    """Loss (left) and accuracy (right) per epoch, training and validation when present.

    `history` is a dict of per-epoch lists (`loss`, `accuracy`, `val_loss`, `val_accuracy`) or
    an object with such a dict in `.history` (what model.fit returns).
    """
    hist = getattr(history, "history", history)
    if not isinstance(hist, Mapping):
        raise TypeError(f"history must be a dict of lists or have a .history dict, "
                        f"got {type(history).__name__}")
    panels = [("loss", "loss"), ("accuracy", "accuracy")]
    fig = _figure(10, 4)
    from matplotlib.ticker import MaxNLocator

    for k, (key, title) in enumerate(panels):
        ax = fig.add_subplot(1, 2, k + 1)
        drawn = False
        for name, label in ((key, "train"), ("val_" + key, "validation")):
            values = [float(v) for v in hist.get(name, [])]
            if values:
                ax.plot(range(1, len(values) + 1), values, marker="o", label=label)
                drawn = True
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
        if drawn:
            ax.legend()
        else:
            ax.text(0.5, 0.5, f"no '{key}' recorded", ha="center", va="center",
                    transform=ax.transAxes)
    return _save(fig, path)


def _first_kernel(model: Any) -> np.ndarray:
    """The first 4-D weight (K, C, KH, KW) found in model.get_weights() or model.layers."""
    candidates = []
    if hasattr(model, "get_weights"):
        candidates = list(model.get_weights())
    elif hasattr(model, "layers"):
        for layer in model.layers:
            if hasattr(layer, "get_weights"):
                candidates.extend(layer.get_weights())
    for w in candidates:
        w = _host(getattr(w, "data", w))
        if w.ndim == 4:
            return w
    raise TypeError("show_filters: pass the first conv kernel (K, C, KH, KW) as an array; "
                    f"found no 4-D weight in {type(model).__name__}")


def show_filters(weights: Any, path: PathLike, max_filters: int = 64) -> Path:
    """Grid of first-layer conv filters: weights (K, C, KH, KW) array, or a model.

    C == 3 filters are shown in colour, one tile each; otherwise one grey tile per (filter,
    input channel), filters along rows. Each tile is scaled to its own min..max.
    """
    w = _host(weights) if hasattr(weights, "shape") else _first_kernel(weights)
    if w.ndim != 4:
        raise ValueError(f"weights must be 4-D (K, C, KH, KW), got shape {w.shape}")
    w = w[:max_filters].astype(np.float64)
    K, C, KH, KW = w.shape

    def unit(t: np.ndarray) -> np.ndarray:
        lo, hi = t.min(), t.max()
        return (t - lo) / (hi - lo) if hi > lo else np.zeros_like(t)

    if C == 3:
        tiles = [unit(w[k]).transpose(1, 2, 0) for k in range(K)]         # (KH, KW, 3)
        cols = min(K, 8)
    else:
        tiles = [unit(w[k, c]) for k in range(K) for c in range(min(C, 8))]  # (KH, KW)
        cols = min(C, 8) if C > 1 else min(K, 8)
    rows = math.ceil(len(tiles) / cols)
    fig = _figure(cols * 1.0 + 0.5, rows * 1.0 + 0.5)
    for i, tile in enumerate(tiles):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.imshow(tile, cmap=None if tile.ndim == 3 else "gray", interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"first-layer filters ({K} x {C} x {KH} x {KW})")
    return _save(fig, path)


def _layer_index(layers: Sequence[Any], layer: int | str) -> int:
    if isinstance(layer, str):
        names = [getattr(lyr, "name", None) for lyr in layers]
        if layer not in names:
            raise ValueError(f"layer {layer!r} not found; layers are {names}")
        return names.index(layer)
    if not -len(layers) <= layer < len(layers):
        raise ValueError(f"layer index {layer} out of range for {len(layers)} layers")
    return layer % len(layers)


def _run_layer(lyr: Any, x):
    """Inference-mode forward of one layer: forward(x, training=False), forward(x) or lyr(x).
    convforge layers run inside nn's inference(): nothing is cached on them (a fit running on
    another thread is not disturbed)."""
    if hasattr(lyr, "forward"):
        if "training" in inspect.signature(lyr.forward).parameters:
            from ..nn.base import inference

            with inference():
                return lyr.forward(x, training=False)
        return lyr.forward(x)
    if callable(lyr):
        return lyr(x)
    raise TypeError(f"layer {type(lyr).__name__} has no forward(x) to run it")


def show_activations(model: Any, x: Any, layer: int | str, path: PathLike,
                     max_channels: int = 32, dtype: Any | None = np.float32) -> Path:
    """Feature maps of one image after `layer` (index or name) of a sequential model.

    `x` is one image (C, H, W) or a batch whose first image is used, fed as model.fit would
    feed it (cast to `dtype`, no rescaling: the model zoo rescales inside the model). Needs a
    model with a `.layers` list whose layers run with `forward(x)`; other models raise TypeError.
    """
    layers = getattr(model, "layers", None)
    if layers is None:
        raise TypeError(f"show_activations needs a model with a .layers list, "
                        f"got {type(model).__name__}")
    a = x[None] if x.ndim == 3 else x[:1]
    if dtype is not None:
        a = a.astype(dtype)
    stop = _layer_index(layers, layer)
    for lyr in layers[:stop + 1]:
        a = _run_layer(lyr, a)
    a = _host(a)[0]
    name = getattr(layers[stop], "name", type(layers[stop]).__name__)
    if a.ndim == 1:                                                       # dense output (F,)
        fig = _figure(8, 3)
        ax = fig.add_subplot(1, 1, 1)
        ax.bar(np.arange(a.shape[0]), a)
        ax.set_title(f"activations after {name} ({a.shape[0]} units)")
        return _save(fig, path)
    if a.ndim != 3:
        raise ValueError(f"layer {name} output has shape {a.shape}; expected (C, H, W) or (F,)")
    ch = min(a.shape[0], max_channels)
    cols = min(ch, 8)
    rows = math.ceil(ch / cols)
    fig = _figure(cols * 1.2 + 0.5, rows * 1.2 + 0.7)
    for c in range(ch):
        ax = fig.add_subplot(rows, cols, c + 1)
        ax.imshow(a[c], cmap="viridis", interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(str(c), fontsize=7)
    fig.suptitle(f"activations after {name} {tuple(a.shape)}")
    return _save(fig, path)
