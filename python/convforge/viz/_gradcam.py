"""Grad-CAM (Selvaraju et al., 2017): where in the image a convforge model finds the evidence
for a class, and the figure that lays the heatmap over the image.

For a feature map A (N, K, h, w) of one layer and the score y_c of class c:
    alpha[n, k] = mean over (h, w) of d y_c[n] / d A[n, k]         (channel weights)
    cam[n]      = ReLU(sum_k alpha[n, k] * A[n, k])                 (h, w)
then cam is resized bilinearly to the input's (H, W) and divided by its maximum (a map that is
zero everywhere stays zero). The gradients come from the model's own backward pass.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from .._array import array_module, is_int
from ._plots import _figure, _host, _layer_index, _save

__all__ = ["grad_cam", "resize_bilinear", "show_grad_cam"]

PathLike = Union[str, "os.PathLike[str]"]


# --------------------------------------------------------------------------- resizing

def _axis_weights(n_in: int, n_out: int):
    """Source rows i0, i1 and the weight of i1 for each of n_out output rows: half-pixel
    centres, src = (dst + 0.5) * n_in / n_out - 0.5, clamped at 0 (align_corners=False)."""
    src = np.maximum((np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, src - i0


def resize_bilinear(a: Any, size: Sequence[int]) -> np.ndarray:
    """Bilinear resize of the last two axes of `a` (..., h, w) to `size` (H, W), in float64.

    The align_corners=False convention: output pixel centres are mapped onto the input grid
    (src = (dst + 0.5) * in / out - 0.5, clamped at 0; the last row/column repeats past the
    edge), as torch.nn.functional.interpolate(mode="bilinear", align_corners=False) does
    (without antialias) and as OpenCV's INTER_LINEAR does when enlarging. NumPy in, NumPy out.
    """
    a = np.asarray(_host(a), dtype=np.float64)
    if a.ndim < 2 or 0 in a.shape[-2:]:
        raise ValueError(f"resize_bilinear needs an array (..., h, w) with h, w >= 1, got "
                         f"shape {a.shape}")
    if len(size) != 2 or not all(is_int(s) and s >= 1 for s in size):
        raise ValueError(f"size must be (H, W) of ints >= 1, got {size!r}")
    i0, i1, wy = _axis_weights(a.shape[-2], int(size[0]))
    a = a[..., i0, :] * (1.0 - wy)[:, None] + a[..., i1, :] * wy[:, None]     # (..., H, w)
    j0, j1, wx = _axis_weights(a.shape[-1], int(size[1]))
    return a[..., j0] * (1.0 - wx) + a[..., j1] * wx                          # (..., H, W)


# --------------------------------------------------------------------------- Grad-CAM

def _score_tensor(model):
    """The tensor whose entries are the class scores: the model's output, or the input of a
    final softmax layer (the logits, as the Grad-CAM paper uses)."""
    from ..nn.layers import Activation

    out = model.outputs[0]
    node = out.node
    if node is not None and isinstance(node.layer, Activation) and \
            node.layer.activation == "softmax":
        return node.inputs[0]
    return out


def _class_indices(class_index, scores: np.ndarray) -> np.ndarray:
    """(N,) int64 class per sample from None (the top score), an int, or a sequence."""
    n, classes = scores.shape
    if class_index is None:
        return scores.argmax(axis=1).astype(np.int64)
    if is_int(class_index):
        idx = np.full(n, int(class_index), dtype=np.int64)
    else:
        idx = np.asarray(_host(class_index))
        if idx.ndim != 1 or len(idx) != n or (idx.size and idx.dtype.kind not in "iu"):
            raise ValueError(f"class_index must be None, an int or a sequence of {n} ints "
                             f"(one per sample), got {class_index!r}")
        idx = idx.astype(np.int64)
    bad = (idx < 0) | (idx >= classes)
    if bad.any():
        raise ValueError(f"class_index {int(idx[bad][0])} is out of range for a model with "
                         f"{classes} classes (0..{classes - 1})")
    return idx


def grad_cam(model: Any, x: Any, layer: Union[int, str],
             class_index: Union[None, int, Sequence[int]] = None) -> np.ndarray:
    """Grad-CAM heatmaps of `model` (a convforge nn Model or Sequential) for images x.

    x: a batch (N, C, H, W) -> (N, H, W), or one image (C, H, W) -> (H, W); fed as model.fit
    feeds it (cast to the model dtype, no rescaling). NumPy or CuPy arrays; the maps are
    always NumPy float32, each in [0, 1] (divided by its maximum; all zero when the ReLU
    leaves nothing, e.g. when no location of that layer raises the class score).
    layer: name or index (as in model.layers) of a layer with a feature-map output
    (N, K, h, w), usually the last convolution block; its output after its activation.
    class_index: None (each sample's top-scoring class), one int for all samples, or one int
    per sample; ValueError when out of range.

    The class score is the model's output, or the input of a final softmax layer
    (Softmax / Activation('softmax')), i.e. the pre-softmax logits as in the paper; the zoo
    models end in Dense without activation, so their output is the logits. A
    Dense(activation='softmax') output has no logits tensor: the probability is used.

    Runs model forward in inference mode (BatchNormalization uses its moving statistics,
    Dropout is off) and backward on this thread; the moving statistics, the weights and the
    parameters' `.grad` (saved and put back) are left as they were. Do not call it on a model
    that a fit is training on another thread (the `.grad` swap would race with it).
    """
    from ..nn.base import to_host
    from ..nn.model import Model

    if not isinstance(model, Model):
        raise TypeError(f"grad_cam needs a convforge.nn Model or Sequential, got "
                        f"{type(model).__name__}")
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        x = np.asarray(x)
    single = x.ndim == 3
    if single:
        x = x[None]
    if x.ndim != 4:
        raise ValueError(f"x must be one image (C, H, W) or a batch (N, C, H, W), got shape "
                         f"{tuple(x.shape)}")
    model._ensure_built_for(x)
    if len(model.outputs) != 1:
        raise ValueError(f"grad_cam needs a model with one output; {model.name!r} has "
                         f"{len(model.outputs)}")
    layers = model.layers
    target = layers[_layer_index(layers, layer)]
    feature = next(n.output for n in model._nodes if n.layer is target)
    score = _score_tensor(model)
    if len(feature.shape) != 3:
        raise ValueError(f"layer {target.name!r} outputs shape {(None,) + feature.shape}; "
                         "Grad-CAM needs a feature map (N, K, h, w): pick a conv/pool layer")
    if len(score.shape) != 1:
        raise ValueError(f"grad_cam needs class scores (N, classes); model {model.name!r} "
                         f"outputs {(None,) + score.shape}")
    if x.shape[0] == 0:
        return np.zeros(tuple(x.shape[2:]) if single else (0,) + tuple(x.shape[2:]),
                        np.float32)

    # A model on the same layers with the feature map as an output too: its forward keeps
    # that map, and no fusion runs across it (a BatchNormalization output is the value
    # before the ReLU that follows; see nn/_graph.py find_fusions / find_pool_relu).
    sub = Model(model.input, [feature, score], name=model.name)
    params = sub.params
    saved = [p.grad for p in params]
    for p in params:       # backward adds parameter gradients: give it fresh ones
        p.grad = None
    try:
        a, scores = sub.forward(x, training=False)
        idx = _class_indices(class_index, to_host(scores))
        xp = array_module(scores)
        onehot = xp.zeros(scores.shape, scores.dtype)
        onehot[xp.arange(len(idx)), xp.asarray(idx)] = 1
        (da,) = sub.backward([None, onehot], wrt=[feature])
    finally:
        for p, g in zip(params, saved):
            p.grad = g
    if da is None:         # the score does not depend on the layer (cannot happen in a chain)
        da = xp.zeros_like(a)
    weights = da.astype(np.float64).mean(axis=(2, 3))                         # (N, K)
    cam = xp.einsum("nk,nkhw->nhw", weights, a.astype(np.float64))            # (N, h, w)
    cam = to_host(xp.maximum(cam, 0.0))
    up = resize_bilinear(cam, tuple(x.shape[2:]))                             # (N, H, W)
    peak = up.max(axis=(1, 2), keepdims=True)
    maps = np.divide(up, peak, out=np.zeros_like(up), where=peak > 0).astype(np.float32)
    return maps[0] if single else maps


# --------------------------------------------------------------------------- figure

def _image_01(image: Any) -> np.ndarray:
    """(H, W) grey or (H, W, 3) colour float64 in [0, 1] from (C, H, W) / (H, W) pixels:
    integer arrays and anything with a value above 1 are taken as 0..255."""
    img = _host(image)
    if img.ndim == 3:
        if img.shape[0] not in (1, 3):
            raise ValueError(f"image must be (H, W), (1, H, W) or (3, H, W), got shape "
                             f"{img.shape}")
        img = img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0)
    elif img.ndim != 2:
        raise ValueError(f"image must be (H, W), (1, H, W) or (3, H, W), got shape {img.shape}")
    as_255 = img.dtype.kind in "iub" or (img.size and float(np.nanmax(img)) > 1.0)
    img = img.astype(np.float64) / (255.0 if as_255 else 1.0)
    return np.clip(np.nan_to_num(img), 0.0, 1.0)


def show_grad_cam(image: Any, heatmap: Any, path: PathLike, alpha: float = 0.4,
                  title: Optional[str] = None) -> Path:
    """Writes a PNG (format from the suffix) with the image and the heatmap laid over it.

    image: (C, H, W) with C = 1 or 3, or (H, W); pixels 0..255 (integer arrays, or any value
    above 1) or 0..1. heatmap: (H, W) in [0, 1] (what grad_cam returns; values outside are
    clipped). The overlay is (1 - alpha) * image + alpha * jet(heatmap); left panel the image,
    right panel the overlay with the colour scale. Returns the Path written (atomically).
    """
    if not (isinstance(alpha, (int, float)) and 0.0 <= float(alpha) <= 1.0):
        raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}")
    img = _image_01(image)
    heat = np.asarray(_host(heatmap), dtype=np.float64)
    if heat.shape != img.shape[:2]:
        raise ValueError(f"heatmap must have the image's (H, W) = {img.shape[:2]}, got shape "
                         f"{heat.shape}")
    if not np.isfinite(heat).all():
        raise ValueError("heatmap holds NaN or infinite values")
    heat = np.clip(heat, 0.0, 1.0)
    fig = _figure(7.5, 3.6)
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    jet = colormaps["jet"]
    rgb = img if img.ndim == 3 else np.repeat(img[:, :, None], 3, axis=2)
    overlay = (1.0 - alpha) * rgb + alpha * jet(heat)[:, :, :3]
    panels = ((img, "image"), (overlay, f"Grad-CAM (alpha {float(alpha):g})"))
    for k, (tile, name) in enumerate(panels):
        ax = fig.add_subplot(1, 2, k + 1)
        ax.imshow(tile, cmap="gray" if tile.ndim == 2 else None, vmin=0.0, vmax=1.0,
                  interpolation="nearest")
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(ScalarMappable(Normalize(0.0, 1.0), jet), ax=ax, fraction=0.046, pad=0.04)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def default_layer(model: Any) -> str:
    """Name of the layer Grad-CAM usually looks at: the last layer with a feature-map output
    (N, K, h, w) that is not a pooling or Dropout layer (the last convolution block's
    activation: conv2d_1 in lenet5, the last ReLU in vgg_small)."""
    from ..nn.layers import Dropout, _GlobalPool2D, _Pool2D

    pick = None
    for node in model._nodes:
        if len(node.output.shape) == 3 and \
                not isinstance(node.layer, (_Pool2D, _GlobalPool2D, Dropout)):
            pick = node.layer.name
    if pick is None:
        raise ValueError(f"model {model.name!r} has no layer with a feature-map output")
    return pick

