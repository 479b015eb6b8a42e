"""Keras-style layers on channels-first data, each with forward and backward.

Batches are (N, C, H, W) for images and (N, features) after Flatten. Conv and pooling layers
call `convforge.functional` (so they run on the active backend); the rest is plain array code
written against the array module of the input (NumPy or CuPy). backward(dy) returns dx and adds
parameter gradients into `Parameter.grad` while the layer is trainable.
"""

from __future__ import annotations

import math
import weakref
from typing import Optional, Sequence, Union

import numpy as np

from .. import functional as F
from .._array import array_module, positive_int
from .._shapes import conv_output_size, conv_padding, pair, pool_output_size, pool_padding
from . import regularizers
from ._matmul import matmul as _matmul
from .activations import ACTIVATIONS, _activation, _softmax, _softmax_grad
from .base import Layer, _new_seed, check_data_format, layout_hint
from .preprocessing import Rescaling  # re-exported: it lived here before nn/preprocessing.py

__all__ = ["Conv2D", "Dense", "MaxPooling2D", "AveragePooling2D", "MinPooling2D",
           "GlobalAveragePooling2D", "GlobalMaxPooling2D", "Flatten", "Dropout", "Activation",
           "ReLU", "Sigmoid", "Softmax", "Rescaling", "ZeroPadding2D", "BatchNormalization",
           "Add", "ACTIVATIONS"]


# --------------------------------------------------------------------------- helpers

def _need_rank(layer: Layer, input_shape, rank: int, layout: str) -> None:
    if len(input_shape) != rank:
        raise ValueError(f"layer {layer.label} expects inputs {layout}, got per-sample shape "
                         f"{tuple(input_shape)} (batch shape {(None,) + tuple(input_shape)})")


# --------------------------------------------------------------------------- Conv2D

class Conv2D(Layer):
    """2-D convolution (cross-correlation): (N, C, H, W) -> (N, filters, OH, OW).

    kernel: OIHW (filters, C/groups, KH, KW); bias: (filters,). padding: 'valid', 'same'
    (output ceil(H/stride), extra row/column at the bottom/right), an int, (h, w) or
    (top, bottom, left, right). `activation` is applied after the bias. kernel_regularizer:
    see nn.regularizers (the bias is not weight-decayed by default: convforge.optim).
    """

    def __init__(self, filters: int, kernel_size, strides=1, padding: Union[str, int, Sequence]
                 = "valid", dilation_rate=1, groups: int = 1, activation: Optional[str] = None,
                 use_bias: bool = True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", input_shape=None, name=None, dtype=None,
                 trainable: bool = True, data_format: Optional[str] = None,
                 kernel_regularizer=None):
        super().__init__(name, trainable, dtype, input_shape)
        check_data_format(data_format, "Conv2D")
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.filters = positive_int(filters, "filters")
        self.kernel_size = pair(kernel_size, "kernel_size")
        self.strides = pair(strides, "strides")
        self.dilation_rate = pair(dilation_rate, "dilation_rate")
        self.groups = positive_int(groups, "groups")
        if isinstance(padding, str) and padding.lower() not in ("valid", "same"):
            raise ValueError(f"padding must be 'valid', 'same', an int or a tuple, got {padding!r}")
        self.padding = padding.lower() if isinstance(padding, str) else padding
        self.activation = _activation(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer, self.bias_initializer = kernel_initializer, bias_initializer
        if self.filters % self.groups:
            raise ValueError(f"groups={self.groups} must divide filters={self.filters}")

    def build(self, input_shape) -> None:
        _need_rank(self, input_shape, 3, "(N, C, H, W)")
        c = input_shape[0]
        if c % self.groups:
            raise ValueError(f"layer {self.label}: groups={self.groups} must divide the "
                             f"{c} input channels (input shape {(None,) + tuple(input_shape)})")
        kh, kw = self.kernel_size
        # kernel: (K, C/G, KH, KW)
        self.kernel = self.add_weight("kernel", (self.filters, c // self.groups, kh, kw),
                                      self.kernel_initializer, regularizer=self.kernel_regularizer)
        self.bias = self.add_weight("bias", (self.filters,), self.bias_initializer,
                                    decay=False) if self.use_bias else None

    def compute_output_shape(self, input_shape) -> tuple:
        _need_rank(self, input_shape, 3, "(N, C, H, W)")
        hw = tuple(input_shape[1:])
        try:
            pad4 = conv_padding(self.padding, hw, self.kernel_size, self.strides,
                                self.dilation_rate)
            oh, ow = conv_output_size(hw, self.kernel_size, self.strides, pad4,
                                      self.dilation_rate)
        except ValueError as e:
            raise ValueError(f"layer {self.label}: {e}.{layout_hint(input_shape)}") from None
        return (self.filters, oh, ow)

    def flops(self, input_shape) -> int:
        _, oh, ow = self.compute_output_shape(input_shape)
        macs = self.filters * (input_shape[0] // self.groups) * \
            self.kernel_size[0] * self.kernel_size[1] * oh * ow
        return 2 * macs + (self.filters * oh * ow if self.use_bias else 0)

    def _args(self):
        return dict(stride=self.strides, padding=self.padding, dilation=self.dilation_rate,
                    groups=self.groups)

    def _forward(self, x, training):
        # x: (N, C, H, W) -> y: (N, K, OH, OW). A ReLU is the conv's epilogue (y written once).
        relu = self.activation == "relu"
        z = F.conv2d(x, self.kernel.data, self.bias.data if self.use_bias else None,
                     activation="relu" if relu else None, **self._args())
        y = z if relu else ACTIVATIONS[self.activation][0](z)
        self._cache = (x, y)
        return y

    _can_skip_dx = True

    def _backward(self, dy, need_dx: bool = True, relu_done: bool = False):
        x, y = self._cache
        dz = dy if relu_done else ACTIVATIONS[self.activation][1](y, dy)
        dx, dw, db = F.conv2d_backward(dz, x, self.kernel.data, bias=self.use_bias,
                                       need_dx=need_dx, need_dw=self.trainable, **self._args())
        if self.trainable:
            self.kernel.accumulate(dw)
            if self.use_bias:
                self.bias.accumulate(db)
        return dx


# --------------------------------------------------------------------------- Dense

class Dense(Layer):
    """Fully connected: y = x @ kernel + bias over the last axis; kernel (in, units).
    kernel_regularizer: see nn.regularizers."""

    def __init__(self, units: int, activation: Optional[str] = None, use_bias: bool = True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 input_shape=None, name=None, dtype=None, trainable: bool = True,
                 kernel_regularizer=None):
        super().__init__(name, trainable, dtype, input_shape)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.units = positive_int(units, "units")
        self.activation = _activation(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer, self.bias_initializer = kernel_initializer, bias_initializer

    def build(self, input_shape) -> None:
        if len(input_shape) < 1:
            raise ValueError(f"layer {self.label} needs inputs with a feature axis")
        self.kernel = self.add_weight("kernel", (input_shape[-1], self.units),
                                      self.kernel_initializer, regularizer=self.kernel_regularizer)
        self.bias = self.add_weight("bias", (self.units,), self.bias_initializer,
                                    decay=False) if self.use_bias else None

    def compute_output_shape(self, input_shape) -> tuple:
        return tuple(input_shape[:-1]) + (self.units,)

    def flops(self, input_shape) -> int:
        rows = int(np.prod(input_shape[:-1], dtype=np.int64))
        return rows * (2 * input_shape[-1] * self.units + (self.units if self.use_bias else 0))

    def _forward(self, x, training):
        n_in = self.kernel.shape[0]
        if x.shape[-1] != n_in:
            raise ValueError(f"layer {self.label} expects {n_in} input features, got x of shape "
                             f"{tuple(x.shape)}")
        y, self._cache = self._step_forward(x)
        return y

    # The step's arithmetic, shared with the step plans (nn/_plan.py): forward returns
    # (y, what backward needs), backward takes it back.
    def _step_forward(self, x):
        x2 = x.reshape(-1, self.kernel.shape[0])                  # (rows, in)
        z = _matmul(np.ascontiguousarray(x2) if isinstance(x2, np.ndarray) else x2,
                    self.kernel.data)                             # (rows, units)
        if self.use_bias:
            z = z + self.bias.data
        y = ACTIVATIONS[self.activation][0](z)
        return y.reshape(tuple(x.shape[:-1]) + (self.units,)), (x.shape, x2, y)

    _can_skip_dx = True

    def _backward(self, dy, need_dx: bool = True):
        return self._step_backward(dy, self._cache, need_dx)

    def _step_backward(self, dy, cache, need_dx: bool):
        x_shape, x2, y = cache
        dz = ACTIVATIONS[self.activation][1](y, dy.reshape(y.shape))   # (rows, units)
        if self.trainable:
            self.kernel.accumulate(_matmul(x2, dz, trans_a=True))
            if self.use_bias:
                self.bias.accumulate(dz.sum(axis=0))
        return _matmul(dz, self.kernel.data, trans_b=True).reshape(x_shape) if need_dx else None


# --------------------------------------------------------------------------- pooling

def _same_pads(n: int, k: int, s: int) -> tuple[int, int]:
    """TensorFlow 'same' pooling: output ceil(n/s); the extra pad goes after."""
    out = -(-n // s)
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2


class _Pool2D(Layer):
    """Shared code of the windowed pools. padding: 'valid', 'same' (TensorFlow: output
    ceil(H/stride), padded cells never win a max/min and do not count in an average), or an
    int / (h, w) of symmetric padding with PyTorch's semantics (count_include_pad for avg)."""

    mode = "max"

    def __init__(self, pool_size=2, strides=None, padding: Union[str, int, Sequence] = "valid",
                 input_shape=None, name=None, dtype=None, trainable: bool = True,
                 data_format: Optional[str] = None):
        super().__init__(name, trainable, dtype, input_shape)
        check_data_format(data_format, type(self).__name__)
        self.pool_size = pair(pool_size, "pool_size")
        self.strides = self.pool_size if strides is None else pair(strides, "strides")
        if isinstance(padding, str):
            if padding.lower() not in ("valid", "same"):
                raise ValueError(f"padding must be 'valid', 'same' or an int, got {padding!r}")
            self.padding = padding.lower()
        else:
            self.padding = pool_padding(padding, self.pool_size)

    def _pads(self, hw) -> tuple[int, int, int, int]:
        """Explicit (top, bottom, left, right) zero/inf padding for 'same', else zeros."""
        if self.padding != "same":
            return (0, 0, 0, 0)
        (pt, pb), (pl, pr) = (_same_pads(n, k, s) for n, k, s in
                              zip(hw, self.pool_size, self.strides))
        return (pt, pb, pl, pr)

    def _fn_padding(self):
        return (0, 0) if isinstance(self.padding, str) else self.padding

    def compute_output_shape(self, input_shape) -> tuple:
        _need_rank(self, input_shape, 3, "(N, C, H, W)")
        c, h, w = input_shape
        if self.padding == "same":
            return (c, -(-h // self.strides[0]), -(-w // self.strides[1]))
        oh, ow = pool_output_size((h, w), self.pool_size, self.strides, self._fn_padding(),
                                  False)
        return (c, oh, ow)

    def _forward(self, x, training):
        # x: (N, C, H, W) -> y: (N, C, OH, OW)
        xp = array_module(x)
        h, w = x.shape[2:]
        pads = self._pads((h, w))
        if any(pads):
            fill = {"max": -np.inf, "min": np.inf, "avg": 0}[self.mode]
            x = xp.pad(x, ((0, 0), (0, 0), pads[:2], pads[2:]), constant_values=fill)
        args = dict(kernel_size=self.pool_size, stride=self.strides, padding=self._fn_padding())
        scale = None
        if self.mode == "max":
            y, idx = F.max_pool2d(x, return_indices=True, **args)
        elif self.mode == "min":
            y, idx = F.min_pool2d(x, return_indices=True, **args)
        else:
            idx = None
            y = F.avg_pool2d(x, count_include_pad=self.count_include_pad, **args)
            if any(pads):
                # scale: (1, 1, OH, OW) share of real (unpadded) cells in each window
                ones = xp.pad(xp.ones((1, 1, h, w), x.dtype), ((0, 0), (0, 0), pads[:2],
                                                               pads[2:]))
                scale = F.avg_pool2d(ones, **args)
                y = y / scale
        self._cache = (x.shape, pads, idx, scale, y if self.mode == "max" else None)
        return y

    def _backward(self, dy, relu: bool = False):
        # relu (max pooling of a ReLU's output, fused by a Model): the ReLU's backward too
        shape, pads, idx, scale, y = self._cache
        args = dict(kernel_size=self.pool_size, stride=self.strides, padding=self._fn_padding())
        if self.mode == "max":
            dx = F.max_pool2d_backward(dy, shape, indices=idx, relu_y=y if relu else None, **args)
        elif self.mode == "min":
            dx = F.min_pool2d_backward(dy, shape, indices=idx, **args)
        else:
            dx = F.avg_pool2d_backward(dy if scale is None else dy / scale, shape,
                                       count_include_pad=self.count_include_pad, **args)
        if any(pads):
            xp = array_module(dx)
            dx = xp.ascontiguousarray(dx[:, :, pads[0]:shape[2] - pads[1],
                                         pads[2]:shape[3] - pads[3]])
        return dx


class MaxPooling2D(_Pool2D):
    """Max over pool_size windows (stride defaults to pool_size)."""

    mode = "max"


class MinPooling2D(_Pool2D):
    """Min over pool_size windows (stride defaults to pool_size)."""

    mode = "min"


class AveragePooling2D(_Pool2D):
    """Mean over pool_size windows. count_include_pad applies to int padding only ('same'
    always excludes the padding, as TensorFlow does)."""

    mode = "avg"

    def __init__(self, pool_size=2, strides=None, padding="valid", count_include_pad: bool = True,
                 input_shape=None, name=None, dtype=None, trainable: bool = True,
                 data_format: Optional[str] = None):
        super().__init__(pool_size, strides, padding, input_shape, name, dtype, trainable,
                         data_format)
        self.count_include_pad = bool(count_include_pad)


class _GlobalPool2D(Layer):
    mode = "avg"

    def compute_output_shape(self, input_shape) -> tuple:
        _need_rank(self, input_shape, 3, "(N, C, H, W)")
        return (input_shape[0],)

    def _forward(self, x, training):
        # x: (N, C, H, W) -> y: (N, C)
        if self.mode == "avg":
            y, idx = F.global_avg_pool2d(x), None
        else:
            y, idx = F.global_max_pool2d(x, return_indices=True)
        self._cache = (x.shape, idx)
        return y

    def _backward(self, dy):
        shape, idx = self._cache
        if self.mode == "avg":
            return F.global_avg_pool2d_backward(dy, shape)
        return F.global_max_pool2d_backward(dy, shape, indices=idx)


class GlobalAveragePooling2D(_GlobalPool2D):
    """Mean over H and W: (N, C, H, W) -> (N, C)."""

    mode = "avg"


class GlobalMaxPooling2D(_GlobalPool2D):
    """Max over H and W: (N, C, H, W) -> (N, C)."""

    mode = "max"


# --------------------------------------------------------------------------- reshaping

class Flatten(Layer):
    """(N, C, H, W) -> (N, C*H*W) in C, H, W order."""

    def compute_output_shape(self, input_shape) -> tuple:
        return (int(np.prod(input_shape, dtype=np.int64)),)

    def _forward(self, x, training):
        self._cache = x.shape
        # explicit feature count: reshape(0, -1) is ambiguous for an empty batch
        return x.reshape(x.shape[0], math.prod(x.shape[1:]))

    def _backward(self, dy):
        return dy.reshape(self._cache)


class ZeroPadding2D(Layer):
    """Pads H and W with zeros. padding: int, (h, w) or ((top, bottom), (left, right))."""

    def __init__(self, padding=1, input_shape=None, name=None, dtype=None, trainable=True):
        super().__init__(name, trainable, dtype, input_shape)
        if isinstance(padding, (tuple, list)) and len(padding) == 2 and \
                all(isinstance(p, (tuple, list)) for p in padding):
            (t, b), (lf, r) = (pair(p, "padding", 0) for p in padding)
        else:
            (t, lf) = pair(padding, "padding", 0)
            b, r = t, lf
        self.padding = (t, b, lf, r)

    def compute_output_shape(self, input_shape) -> tuple:
        _need_rank(self, input_shape, 3, "(N, C, H, W)")
        c, h, w = input_shape
        t, b, lf, r = self.padding
        return (c, h + t + b, w + lf + r)

    def _forward(self, x, training):
        t, b, lf, r = self.padding
        self._cache = x.shape
        return array_module(x).pad(x, ((0, 0), (0, 0), (t, b), (lf, r)))

    def _backward(self, dy):
        t, _, lf, _ = self.padding
        _, _, h, w = self._cache
        return array_module(dy).ascontiguousarray(dy[:, :, t:t + h, lf:lf + w])


# --------------------------------------------------------------------------- elementwise

class Activation(Layer):
    """Applies 'relu', 'sigmoid', 'tanh', 'softmax' (over axis 1) or 'linear'."""

    def __init__(self, activation: Optional[str], name=None, dtype=None, input_shape=None,
                 trainable: bool = True):
        super().__init__(name, trainable, dtype, input_shape)
        self.activation = _activation(activation)

    def _forward(self, x, training):
        y = ACTIVATIONS[self.activation][0](x)
        self._cache = y
        return y

    def _backward(self, dy):
        return ACTIVATIONS[self.activation][1](self._cache, dy)


class ReLU(Activation):
    @classmethod
    def default_name(cls) -> str:
        return "relu"

    def __init__(self, name=None, dtype=None, input_shape=None, trainable: bool = True):
        super().__init__("relu", name, dtype, input_shape, trainable)


class Sigmoid(Activation):
    def __init__(self, name=None, dtype=None, input_shape=None, trainable: bool = True):
        super().__init__("sigmoid", name, dtype, input_shape, trainable)


class Softmax(Activation):
    """Softmax over `axis` (default 1: classes for (N, K), channels for NCHW)."""

    def __init__(self, axis: int = 1, name=None, dtype=None, input_shape=None,
                 trainable: bool = True):
        super().__init__("softmax", name, dtype, input_shape, trainable)
        self.axis = int(axis)

    def _forward(self, x, training):
        y = _softmax(x, self.axis)
        self._cache = y
        return y

    def _backward(self, dy):
        return _softmax_grad(self._cache, dy, self.axis)


class Dropout(Layer):
    """While training, zeroes each value with probability `rate` and scales the rest by
    1/(1-rate) (F.dropout: a counter-based mask, the same on every backend for the same seed);
    at inference it is the identity."""

    def __init__(self, rate: float, seed: Optional[int] = None, name=None, dtype=None,
                 input_shape=None, trainable: bool = True):
        super().__init__(name, trainable, dtype, input_shape)
        if not 0.0 <= float(rate) < 1.0:
            raise ValueError(f"rate must be in [0, 1), got {rate!r}")
        self.rate = float(rate)
        self._rng = np.random.default_rng(_new_seed() if seed is None else seed)

    def _forward(self, x, training):
        if not training:
            self._cache = None
            return x
        y, self._cache = self._step_forward(x)
        return y

    def _backward(self, dy):
        return self._step_backward(dy, self._cache)

    # The training step's arithmetic, shared with the step plans (nn/_plan.py).
    def _step_forward(self, x):
        """(y, the mask's seed or None)."""
        if self.rate == 0.0:
            return x, None
        # A fresh mask seed per call, from the layer's generator (seeded by convforge.set_seed
        # or seed=); the mask itself is recomputed from it in backward (F.dropout).
        seed = int(self._rng.integers(2**63))
        return F.dropout(x, self.rate, seed), seed

    def _step_backward(self, dy, seed):
        return dy if seed is None else F.dropout(dy, self.rate, seed)


# {BatchNormalization: convforge.distributed.DataParallel}: layers whose batch statistics are
# those of the global batch over MPI ranks (registered by DataParallel.setup)
bn_sync: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class BatchNormalization(Layer):
    """Per-channel normalisation over axis 1 of (N, C, H, W) or (N, C) inputs.

    Training: y = gamma * (x - mean_B) / sqrt(var_B + eps) + beta with the batch mean and
    (biased) variance over N, H, W; the moving statistics follow
    moving = momentum * moving + (1 - momentum) * batch (Keras' rule and defaults).
    Inference, or while the layer is frozen (trainable=False, as in Keras), uses the moving
    statistics; so does an empty batch (N = 0), which leaves them unchanged. The kernels are
    convforge.functional's batch_norm ops; a Model runs a ReLU that directly follows in the
    same pass (forward(..., relu=True)).
    """

    def __init__(self, momentum: float = 0.99, epsilon: float = 1e-3, center: bool = True,
                 scale: bool = True, beta_initializer="zeros", gamma_initializer="ones",
                 moving_mean_initializer="zeros", moving_variance_initializer="ones",
                 name=None, dtype=None, input_shape=None, trainable: bool = True):
        super().__init__(name, trainable, dtype, input_shape)
        if not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must be in [0, 1], got {momentum!r}")
        if epsilon <= 0:
            raise ValueError(f"epsilon must be > 0, got {epsilon!r}")
        self.momentum, self.epsilon = float(momentum), float(epsilon)
        self.center, self.scale = bool(center), bool(scale)
        self._inits = (gamma_initializer, beta_initializer, moving_mean_initializer,
                       moving_variance_initializer)

    def build(self, input_shape) -> None:
        if len(input_shape) not in (1, 3):
            raise ValueError(f"layer {self.label} expects (N, C) or (N, C, H, W) inputs, got "
                             f"per-sample shape {tuple(input_shape)}")
        c = (input_shape[0],)
        g_init, b_init, mm_init, mv_init = self._inits
        self.gamma = self.add_weight("gamma", c, g_init, decay=False) if self.scale else None
        self.beta = self.add_weight("beta", c, b_init, decay=False) if self.center else None
        self.moving_mean = self.add_weight("moving_mean", c, mm_init, trainable=False)
        self.moving_variance = self.add_weight("moving_variance", c, mv_init, trainable=False)

    def flops(self, input_shape) -> int:
        return 2 * int(np.prod(input_shape, dtype=np.int64))

    def _forward(self, x, training, relu: bool = False):
        # x: (N, C, H, W) or (N, C); statistics per channel over every axis but 1 (float64).
        # An empty batch has no statistics: it is normalised with the moving ones, which it
        # leaves unchanged (a mean over zero values would turn them into NaN).
        batch_stats = training and self.trainable and x.shape[0] > 0
        counts = None
        if batch_stats:
            mean, var = F.batch_norm_stats(x)                          # (C,) float64 each
            sync = bn_sync.get(self)
            if sync is not None:   # the global batch's statistics (data-parallel training)
                mean, var, counts = sync.bn_stats(x.shape[0], mean, var)
            m = self.momentum
            self.moving_mean.data[...] = m * self.moving_mean.data + (1 - m) * mean
            self.moving_variance.data[...] = m * self.moving_variance.data + (1 - m) * var
        else:
            mean, var = self.moving_mean.data, self.moving_variance.data
        gamma = self.gamma.data if self.scale else None
        beta = self.beta.data if self.center else None
        self._cache = (x, mean, var, batch_stats, relu, counts)
        return F.batch_norm(x, mean, var, gamma, beta, self.epsilon, relu)

    def _backward(self, dy, relu_done: bool = False):
        x, mean, var, batch_stats, relu, counts = self._cache
        relu = relu and not relu_done     # dy already through the ReLU (a fused max pool)
        gamma = self.gamma.data if self.scale else None
        beta = self.beta.data if self.center else None
        sync = bn_sync.get(self) if counts is not None else None
        if sync is not None:   # statistics of the global batch: its sums span the ranks
            dx, dgamma, dbeta = sync.bn_backward(dy, x, mean, var, gamma, beta, self.epsilon,
                                                 relu, counts)
        else:
            dx, dgamma, dbeta = F.batch_norm_backward(dy, x, mean, var, gamma, beta,
                                                      self.epsilon, relu, batch_stats)
        if self.trainable:
            if self.scale:
                self.gamma.accumulate(dgamma)
            if self.center:
                self.beta.accumulate(dbeta)
        return dx

    def relu_input_grad(self, dy):
        """For a forward run with relu=True: the gradient w.r.t. the normalised values before
        the ReLU, given dy w.r.t. the output (a Model asked for that intermediate)."""
        x, mean, var = self._cache[:3]
        gamma = self.gamma.data if self.scale else None
        beta = self.beta.data if self.center else None
        return dy * (F.batch_norm(x, mean, var, gamma, beta, self.epsilon) > 0)


# --------------------------------------------------------------------------- merging

class Add(Layer):
    """Element-wise sum of a list of same-shape tensors (residual connections)."""

    multi_input = True

    def build(self, input_shape) -> None:
        if len(input_shape) < 2:
            raise ValueError(f"layer {self.label} needs at least two inputs")
        if any(tuple(s) != tuple(input_shape[0]) for s in input_shape):
            raise ValueError(f"layer {self.label} needs inputs of one shape, got "
                             f"{[(None,) + tuple(s) for s in input_shape]}")

    def compute_output_shape(self, input_shape) -> tuple:
        return tuple(input_shape[0])

    def _forward(self, xs, training):
        shapes = [tuple(a.shape) for a in xs]
        if any(s != shapes[0] for s in shapes):
            raise ValueError(f"layer {self.label} needs inputs of one shape, got {shapes}")
        y = xs[0]
        for a in xs[1:]:
            y = y + a
        self._cache = len(xs)
        return y

    def _backward(self, dy):
        return [dy] * self._cache
