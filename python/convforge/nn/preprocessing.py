"""Preprocessing layers: Rescaling and Normalization (constants, no weights).

Both act on channels-first batches, (N, C, H, W) or (N, C); their constants are not parameters,
so they add nothing to save_weights files or to the names pretrained-weight loaders pair.
"""

from __future__ import annotations

from typing import Sequence, Union

import numpy as np

from .._array import array_module
from .base import Layer

__all__ = ["Rescaling", "Normalization"]


class Rescaling(Layer):
    """y = x * scale + offset (e.g. Rescaling(1/255) turns uint8 pixels into [0, 1])."""

    def __init__(self, scale: float, offset: float = 0.0, name=None, dtype=None,
                 input_shape=None, trainable: bool = True):
        super().__init__(name, trainable, dtype, input_shape)
        self.scale, self.offset = float(scale), float(offset)

    def _forward(self, x, training):
        self._cache = None
        return x * self.scale + self.offset

    def _backward(self, dy):
        return dy * self.scale


def _per_channel(v, name: str) -> np.ndarray:
    a = np.asarray(v, dtype=np.float64)
    if a.ndim > 1 or a.size == 0 or not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be a finite number or a non-empty 1-D sequence (one "
                         f"value per channel), got {v!r}")
    return a.reshape(-1)


class Normalization(Layer):
    """Per-channel normalisation over axis 1: y = (x' - mean) / std, where x' is x with its
    channels reversed when `bgr` (RGB -> BGR, as Caffe-trained models expect) and x otherwise.

    `mean` and `std`: a number (every channel) or one value per channel, in the order of the
    channels after any reversal. The ImageNet presets of convforge.models.vgg16:
      preprocess="torch": Rescaling(1/255), then Normalization((0.485, 0.456, 0.406),
                          (0.229, 0.224, 0.225))  (torchvision's transforms.Normalize)
      preprocess="caffe": Normalization((103.939, 116.779, 123.68), 1, bgr=True) on 0..255
                          pixels (Keras' imagenet_utils.preprocess_input, mode "caffe")
    """

    def __init__(self, mean: Union[float, Sequence[float]] = 0.0,
                 std: Union[float, Sequence[float]] = 1.0, bgr: bool = False, name=None,
                 dtype=None, input_shape=None, trainable: bool = True):
        super().__init__(name, trainable, dtype, input_shape)
        self.mean = _per_channel(mean, "mean")
        self.std = _per_channel(std, "std")
        if np.any(self.std == 0):
            raise ValueError(f"std must be non-zero, got {std!r}")
        self.bgr = bool(bgr)

    def build(self, input_shape) -> None:
        if len(input_shape) < 1:
            raise ValueError(f"layer {self.label} needs a channel axis, got per-sample shape "
                             f"{tuple(input_shape)}")
        c = input_shape[0]
        for what, v in (("mean", self.mean), ("std", self.std)):
            if v.size not in (1, c):
                raise ValueError(f"layer {self.label}: {what} has {v.size} values but the input "
                                 f"has {c} channels (per-sample shape {tuple(input_shape)})")
        if self.bgr and c != 3:
            raise ValueError(f"layer {self.label}: bgr=True needs 3 channels, got per-sample "
                             f"shape {tuple(input_shape)}")

    def _constants(self, x):
        # (C,) -> (C, 1, ...) so it broadcasts over (N, C, ...)
        xp = array_module(x)
        shape = (-1,) + (1,) * (x.ndim - 2)
        return (xp.asarray(self.mean.reshape(shape), dtype=x.dtype),
                xp.asarray(self.std.reshape(shape), dtype=x.dtype))

    def _forward(self, x, training):
        self._cache = None
        if self.bgr:
            x = x[:, ::-1]
        mean, std = self._constants(x)
        return (x - mean) / std

    def _backward(self, dy):
        _, std = self._constants(dy)
        dx = dy / std
        return array_module(dx).ascontiguousarray(dx[:, ::-1]) if self.bgr else dx
