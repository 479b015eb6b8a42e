"""Pooling ops: max / min / avg pooling and the global pools, forward and backward."""

from __future__ import annotations

from typing import Optional

import numpy as np

from .._array import is_cupy
from .._shapes import pair, pool_output_size, pool_padding
from ._common import (
    IntPair,
    _array,
    _backend,
    _same_dtype,
    _shape4,
    _with_batch,
    _with_batch_all,
    _zeros,
)

# --------------------------------------------------------------------------- pooling

def _pool_args(x_shape, kernel_size, stride, padding, ceil_mode):
    ks = pair(kernel_size, "kernel_size")
    st = ks if stride is None else pair(stride, "stride")
    pad = pool_padding(padding, ks)
    out = pool_output_size(tuple(x_shape[2:]), ks, st, pad, bool(ceil_mode))
    return ks, st, pad, out


def _pool(x, mode, kernel_size, stride, padding, ceil_mode, count_include_pad, backend):
    """(y, indices or None) of a window pooling; unbatched x gives unbatched results."""
    x, unbatched = _with_batch(x, 4)
    x = _array(x, "x", 4, "(N, C, H, W) or (C, H, W)", batch=True)
    on_gpu = _same_dtype({"x": x})
    ks, st, pad, out = _pool_args(x.shape, kernel_size, stride, padding, ceil_mode)
    be = _backend(backend, on_gpu)
    if x.shape[0] == 0:
        shape = x.shape[:2] + out
        return _zeros(x, shape), (None if mode == "avg" else _zeros(x, shape, np.int64))
    y, idx = be.pool2d(x, mode, ks, st, pad, out, bool(count_include_pad))
    if unbatched:
        return y[0], (None if idx is None else idx[0])
    return y, idx


def _pool_backward(dy, x, mode, kernel_size, stride, padding, ceil_mode, count_include_pad,
                   indices, backend, relu_y=None):
    x = x if hasattr(x, "shape") else tuple(x)   # the input array, or its shape
    a, unbatched = _with_batch_all({"dy": dy, "x": x, "indices": indices, "relu_y": relu_y},
                                   {"dy": 4, "x": 4, "indices": 4, "relu_y": 4})
    dy = _array(a["dy"], "dy", 4, "(N, C, OH, OW) or (C, OH, OW)", batch=True)
    x, indices, relu_y = a["x"], a["indices"], a["relu_y"]
    if relu_y is not None:
        relu_y = _array(relu_y, "relu_y", 4, "(N, C, OH, OW) or (C, OH, OW)", batch=True)
        if tuple(relu_y.shape) != tuple(dy.shape):
            raise ValueError(f"relu_y must have the shape of dy {tuple(dy.shape)}, got "
                             f"{tuple(relu_y.shape)}")
    # x is the forward input or only its shape; an input must match dy's dtype and kind
    on_gpu = _same_dtype({"dy": dy, "x": x if hasattr(x, "dtype") else None, "relu_y": relu_y})
    shape = _shape4(x, "x")
    ks, st, pad, out = _pool_args(shape, kernel_size, stride, padding, ceil_mode)
    want = shape[:2] + out
    if tuple(dy.shape) != want:
        cut = 1 if unbatched else 0
        raise ValueError(f"dy must have shape {want[cut:]} for x of shape {shape[cut:]}, got "
                         f"{tuple(dy.shape[cut:])}")
    be = _backend(backend, on_gpu)
    if mode != "avg":
        if indices is None:
            if not hasattr(x, "shape") or not hasattr(x, "dtype"):
                raise ValueError(f"{mode}_pool2d_backward needs indices= or the input array x")
            if shape[0] > 0:
                _, indices = be.pool2d(_array(x, "x", 4, "(N, C, H, W)", batch=True), mode, ks,
                                       st, pad, out, False)
        if indices is not None:
            indices = _indices(indices, want, dy, shape[2] * shape[3], be)
    if shape[0] == 0:
        return _zeros(dy, shape)
    dx = be.pool2d_backward(dy, indices, shape, mode, ks, st, pad, bool(count_include_pad),
                            **({} if relu_y is None else {"relu_y": relu_y}))
    return dx[0] if unbatched else dx


def _indices(indices, want, like, plane: int, be):
    """Checks user-supplied pooling indices: int64, right shape, each in [0, H*W).

    The value range is checked here for NumPy indices only, and only for backends that do not
    check it themselves (`CHECKS_INDICES`), so that it is checked once: the cpu backend checks
    each index inside the scatter that uses it (no extra pass), the numba backend with its own
    NumPy min/max pass before its kernel (it needs the check for memory safety when called
    directly too). The CUDA kernels need none (each dx element gathers the windows whose index
    equals its own position, so an out-of-range index is never matched), and reading CuPy
    values here would synchronise the device on every pooling backward, i.e. per layer per
    training batch."""
    if type(indices) is not type(like) or indices.dtype != np.int64:
        raise TypeError(f"indices must be an int64 array of the same kind as dy, got "
                        f"{type(indices).__name__} {getattr(indices, 'dtype', '')}")
    if tuple(indices.shape) != tuple(want):
        raise ValueError(f"indices must have shape {tuple(want)}, got {tuple(indices.shape)}")
    if is_cupy(indices) or getattr(be, "CHECKS_INDICES", False) or indices.size == 0:
        return indices if indices.flags.c_contiguous else indices.copy()
    lo, hi = int(indices.min()), int(indices.max())
    if lo < 0 or hi >= plane:
        raise ValueError(f"indices must lie in [0, H*W) = [0, {plane}), got values in "
                         f"[{lo}, {hi}]")
    return indices if indices.flags.c_contiguous else indices.copy()


def max_pool2d(x, kernel_size: IntPair, stride: Optional[IntPair] = None, padding: IntPair = 0,
               ceil_mode: bool = False, return_indices: bool = False, *,
               backend: Optional[str] = None):
    """Max over each window; NaN propagates. With return_indices, also the flat index
    ih*W + iw of each maximum (first occurrence), as int64 (N, C, OH, OW).
    x (N, C, H, W) (N may be 0) or unbatched (C, H, W)."""
    y, idx = _pool(x, "max", kernel_size, stride, padding, ceil_mode, False, backend)
    return (y, idx) if return_indices else y


def max_pool2d_backward(dy, x, kernel_size: IntPair, stride: Optional[IntPair] = None,
                        padding: IntPair = 0, ceil_mode: bool = False, indices=None, *,
                        relu_y=None, backend: Optional[str] = None):
    """dx of max_pool2d: dy goes to each window's maximum. x: the forward input or its shape
    (then indices= is required). relu_y: the forward's output y when the pooled x is a ReLU's
    output relu(z): dy then passes only where y > 0 and the result is the gradient w.r.t. z
    (the ReLU's backward, fused; the same values as activation_backward(dx, x, 'relu'))."""
    return _pool_backward(dy, x, "max", kernel_size, stride, padding, ceil_mode, False, indices,
                          backend, relu_y)


def min_pool2d(x, kernel_size: IntPair, stride: Optional[IntPair] = None, padding: IntPair = 0,
               ceil_mode: bool = False, return_indices: bool = False, *,
               backend: Optional[str] = None):
    """Min over each window (same arguments and index convention as max_pool2d)."""
    y, idx = _pool(x, "min", kernel_size, stride, padding, ceil_mode, False, backend)
    return (y, idx) if return_indices else y


def min_pool2d_backward(dy, x, kernel_size: IntPair, stride: Optional[IntPair] = None,
                        padding: IntPair = 0, ceil_mode: bool = False, indices=None, *,
                        backend: Optional[str] = None):
    return _pool_backward(dy, x, "min", kernel_size, stride, padding, ceil_mode, False, indices,
                          backend)


def avg_pool2d(x, kernel_size: IntPair, stride: Optional[IntPair] = None, padding: IntPair = 0,
               ceil_mode: bool = False, count_include_pad: bool = True, *,
               backend: Optional[str] = None):
    """Mean over each window; count_include_pad decides whether padded zeros count."""
    y, _ = _pool(x, "avg", kernel_size, stride, padding, ceil_mode, count_include_pad, backend)
    return y


def avg_pool2d_backward(dy, x, kernel_size: IntPair, stride: Optional[IntPair] = None,
                        padding: IntPair = 0, ceil_mode: bool = False,
                        count_include_pad: bool = True, *, backend: Optional[str] = None):
    return _pool_backward(dy, x, "avg", kernel_size, stride, padding, ceil_mode,
                          count_include_pad, None, backend)


def _global(x, mode, backend):
    """(y, indices) of a global pooling: (N, C, H, W) -> (N, C), (C, H, W) -> (C,)."""
    x, unbatched = _with_batch(x, 4)
    x = _array(x, "x", 4, "(N, C, H, W) or (C, H, W)", batch=True)
    be = _backend(backend, _same_dtype({"x": x}))
    if x.shape[0] == 0:
        return _zeros(x, x.shape[:2]), (None if mode == "avg" else _zeros(x, x.shape[:2],
                                                                           np.int64))
    y, idx = be.global_pool2d(x, mode)
    if unbatched:
        return y[0], (None if idx is None else idx[0])
    return y, idx


def global_avg_pool2d(x, *, backend: Optional[str] = None):
    """Mean over H and W: (N, C, H, W) -> (N, C); unbatched (C, H, W) -> (C,)."""
    return _global(x, "avg", backend)[0]


def global_max_pool2d(x, return_indices: bool = False, *, backend: Optional[str] = None):
    """Max over H and W: (N, C, H, W) -> (N, C) (and flat indices h*W + w)."""
    y, idx = _global(x, "max", backend)
    return (y, idx) if return_indices else y


def _global_backward(dy, x, mode, indices, backend):
    x = x if hasattr(x, "shape") else tuple(x)   # the input array, or its shape
    a, unbatched = _with_batch_all({"dy": dy, "x": x, "indices": indices},
                                   {"dy": 2, "x": 4, "indices": 2})
    dy = _array(a["dy"], "dy", 2, "(N, C) or (C,)", batch=True)
    x, indices = a["x"], a["indices"]
    shape = _shape4(x, "x")
    if tuple(dy.shape) != shape[:2]:
        cut = 1 if unbatched else 0
        raise ValueError(f"dy must have shape {shape[cut:2]} for x of shape {shape[cut:]}, got "
                         f"{tuple(dy.shape[cut:])}")
    be = _backend(backend, _same_dtype({"dy": dy, "x": x if hasattr(x, "dtype") else None}))
    if mode == "max":
        if indices is None:
            if not hasattr(x, "dtype"):
                raise ValueError("global_max_pool2d_backward needs indices= or the input array x")
            if shape[0] > 0:
                indices = be.global_pool2d(_array(x, "x", 4, "(N, C, H, W)", batch=True),
                                           "max")[1]
        if indices is not None:
            indices = _indices(indices, shape[:2], dy, shape[2] * shape[3], be)
    if shape[0] == 0:
        return _zeros(dy, shape)
    dx = be.global_pool2d_backward(dy, indices, shape, mode)
    return dx[0] if unbatched else dx


def global_avg_pool2d_backward(dy, x, *, backend: Optional[str] = None):
    """dx of global_avg_pool2d: dy / (H*W) everywhere. x: the forward input or its shape."""
    return _global_backward(dy, x, "avg", None, backend)


def global_max_pool2d_backward(dy, x, indices=None, *, backend: Optional[str] = None):
    """dx of global_max_pool2d: dy at each plane's maximum."""
    return _global_backward(dy, x, "max", indices, backend)
