"""Public ops: normalise arguments once, check shapes, pick a backend, call it.

Arrays: NCHW activations, OIHW weights (K, C/groups, KH, KW), float32 or float64.
NumPy in -> NumPy out (cpu, numba, reference backends); CuPy in -> CuPy out (cuda backend).
Inputs are never modified. Non-contiguous, Fortran-order or read-only inputs are copied once,
here, into C order (no dtype conversion ever happens silently: mixed dtypes raise).

Validation contract (one layer validates, the others trust it):
- This module normalises and validates every argument once, with the messages users see:
  array kind (all NumPy or all CuPy), float32/float64 and one dtype for all, ranks and shapes
  that agree with each other, ints (via convforge._array and convforge._shapes), sizes that fit
  in int64, and the backend that takes this kind of array. Calls with N = 0 return here.
- Backends (convforge.backends) receive only such normalised arguments and do not check them
  again. A backend checks only what its kernels' memory safety needs and nothing upstream
  covers: the max/min pool backward's index range, data that no shape check sees (a backend
  whose kernels check it in their own pass sets CHECKS_INDICES; see _indices).
- The compiled bindings (convforge._core), which tests and benchmarks also call directly,
  check shapes against buffer sizes and dtypes: what memory safety needs.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import numpy as np

from . import backends as _backends
from ._array import FLOAT_DTYPES, array_module, int64, is_cupy, positive_int
from ._shapes import (
    checked_size,
    conv_output_size,
    conv_padding,
    pair,
    pool_output_size,
    pool_padding,
)

IntPair = Union[int, Sequence[int]]
Padding = Union[int, str, Sequence[int]]

__all__ = [
    "conv2d", "conv2d_backward", "im2col", "col2im",
    "max_pool2d", "max_pool2d_backward", "min_pool2d", "min_pool2d_backward",
    "avg_pool2d", "avg_pool2d_backward",
    "global_avg_pool2d", "global_avg_pool2d_backward",
    "global_max_pool2d", "global_max_pool2d_backward",
    "batch_norm_stats", "batch_norm", "batch_norm_backward", "dropout",
    "conv_output_size", "pool_output_size",
]


# --------------------------------------------------------------------------- array checks

def _array(a, name: str, ndim: int, layout: str, batch: bool = False):
    """Checks type, dtype and rank; returns a C-contiguous array (one copy only if needed).
    batch: axis 0 is the batch axis, which may be empty (N = 0); other axes may not."""
    if not (isinstance(a, np.ndarray) or is_cupy(a)):
        raise TypeError(f"{name} must be a numpy.ndarray or cupy.ndarray, got {type(a).__name__}")
    if a.dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"{name} must have dtype float32 or float64, got {a.dtype} with shape {tuple(a.shape)}"
        )
    if a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D {layout}, got shape {tuple(a.shape)}")
    if 0 in a.shape[1 if batch else 0:]:
        raise ValueError(f"{name} has a zero-size dimension: shape {tuple(a.shape)}")
    return a if a.flags.c_contiguous else array_module(a).ascontiguousarray(a)


def _same_dtype(named: dict):
    """All given arrays share one dtype and one device kind; returns whether they are CuPy."""
    items = [(k, v) for k, v in named.items() if v is not None]
    k0, v0 = items[0]
    gpu0 = is_cupy(v0)
    for k, v in items[1:]:
        if v.dtype != v0.dtype:
            raise TypeError(f"{k} has dtype {v.dtype} but {k0} has dtype {v0.dtype}; "
                            "cast one of them explicitly")
        if is_cupy(v) != gpu0:
            raise TypeError(f"{k} and {k0} must both be NumPy or both be CuPy arrays")
    return gpu0


def _backend(name: Optional[str], on_gpu: bool):
    """The backend module for this call; checks it takes this kind of array."""
    chosen = _backends.chosen(on_gpu) if name is None else name
    mod = _backends.get(chosen)
    if (chosen == "cuda") != on_gpu:
        kind = "CuPy" if on_gpu else "NumPy"
        raise TypeError(
            f"backend {chosen!r} cannot take {kind} arrays: the cuda backend takes CuPy arrays, "
            "the others NumPy arrays"
        )
    return mod


def _zeros(like, shape, dtype=None):
    """Zeros of `shape` on the device of `like` (the results of ops on an empty batch)."""
    return array_module(like).zeros(shape, like.dtype if dtype is None else dtype)


def _with_batch(a, ndim: int):
    """(a, False), or (a with a leading batch axis of 1, True) when a is given without it: an
    array (or, for the arguments that take one, a shape tuple) one axis short of ndim, PyTorch's
    unbatched (C, H, W) convention. None passes through."""
    if isinstance(a, tuple):
        return ((1,) + a, True) if len(a) == ndim - 1 else (a, False)
    if getattr(a, "ndim", None) == ndim - 1:
        return a[None], True
    return a, False


def _with_batch_all(named: dict, ndim: dict):
    """_with_batch of each argument ({name: value}, None skipped); they must all agree.
    Returns ({name: value with the batch axis}, whether they were unbatched)."""
    out, flags = {}, set()
    for k, v in named.items():
        out[k], unbatched = _with_batch(v, ndim[k])
        if v is not None:
            flags.add(unbatched)
    if len(flags) > 1:
        shapes = ", ".join(f"{k} {tuple(getattr(v, 'shape', v))}" for k, v in named.items()
                           if v is not None)
        raise ValueError(f"either every argument has the batch axis or none has: got {shapes}")
    return out, True in flags


def _shape4(x, name: str) -> Tuple[int, int, int, int]:
    """A forward input given as an array or as its shape (for backward ops); N may be 0."""
    if hasattr(x, "shape"):
        shape = tuple(int(s) for s in x.shape)
    else:
        shape = tuple(int64(s, name) for s in x)
    if len(shape) != 4 or min(shape[1:]) < 1 or shape[0] < 0:
        raise ValueError(f"{name} must be 4-D (N, C, H, W), got shape {shape}")
    checked_size(shape, name)
    return shape  # type: ignore[return-value]


# --------------------------------------------------------------------------- convolution

def _conv_args(x_shape, w_shape, stride, padding, dilation, groups):
    """Normalised (stride, padding4, dilation, groups, out_hw) for a conv of these shapes."""
    n, c, h, w_ = x_shape
    k, cg, kh, kw = w_shape
    stride, dilation = pair(stride, "stride"), pair(dilation, "dilation")
    groups = positive_int(groups, "groups")
    if c % groups or k % groups:
        raise ValueError(f"groups={groups} must divide in_channels={c} and out_channels={k} "
                         f"(x {tuple(x_shape)}, w {tuple(w_shape)})")
    if cg * groups != c:
        raise ValueError(
            f"w expects {cg} input channels per group (groups={groups}) but x has {c} channels: "
            f"x {tuple(x_shape)}, w {tuple(w_shape)}"
        )
    pad4 = conv_padding(padding, (h, w_), (kh, kw), stride, dilation)
    out_hw = conv_output_size((h, w_), (kh, kw), stride, pad4, dilation)
    return stride, pad4, dilation, groups, out_hw


def conv2d(x, w, b=None, stride: IntPair = 1, padding: Padding = 0, dilation: IntPair = 1,
           groups: int = 1, *, backend: Optional[str] = None):
    """2-D cross-correlation: y[n,k] = b[k] + sum_c,i,j x[n,c,oh*s+i*d-p, ow*s+j*d-p] w[k,c,i,j].

    x (N, C, H, W) or unbatched (C, H, W), w (K, C/groups, KH, KW), b (K,) or None
    -> y (N, K, OH, OW) (or (K, OH, OW)). N may be 0.
    padding: int, (h, w), (top, bottom, left, right), 'valid' or 'same'.
    """
    x, unbatched = _with_batch(x, 4)
    x = _array(x, "x", 4, "(N, C, H, W) or (C, H, W)", batch=True)
    w = _array(w, "w", 4, "(K, C/groups, KH, KW)")
    if b is not None:
        b = _array(b, "b", 1, "(K,)")
        if b.shape[0] != w.shape[0]:
            raise ValueError(f"b must have shape ({w.shape[0]},) to match w {tuple(w.shape)}, "
                             f"got {tuple(b.shape)}")
    on_gpu = _same_dtype({"x": x, "w": w, "b": b})
    stride, pad4, dilation, groups, (oh, ow) = _conv_args(x.shape, w.shape, stride, padding,
                                                          dilation, groups)
    shape = (x.shape[0], w.shape[0], oh, ow)
    checked_size(shape, "the output y")
    be = _backend(backend, on_gpu)
    if x.shape[0] == 0:
        return _zeros(x, shape)
    y = be.conv2d(x, w, b, stride, pad4, dilation, groups)
    return y[0] if unbatched else y


def conv2d_backward(dy, x, w, stride: IntPair = 1, padding: Padding = 0, dilation: IntPair = 1,
                    groups: int = 1, bias: bool = True, *, backend: Optional[str] = None):
    """Gradients of conv2d: returns (dx, dw, db); db is None when bias=False. dy and x both
    with the batch axis (N may be 0: dx is empty, dw and db are zeros) or both without."""
    a, unbatched = _with_batch_all({"dy": dy, "x": x}, {"dy": 4, "x": 4})
    dy = _array(a["dy"], "dy", 4, "(N, K, OH, OW) or (K, OH, OW)", batch=True)
    x = _array(a["x"], "x", 4, "(N, C, H, W) or (C, H, W)", batch=True)
    w = _array(w, "w", 4, "(K, C/groups, KH, KW)")
    on_gpu = _same_dtype({"dy": dy, "x": x, "w": w})
    stride, pad4, dilation, groups, (oh, ow) = _conv_args(x.shape, w.shape, stride, padding,
                                                          dilation, groups)
    want = (x.shape[0], w.shape[0], oh, ow)
    if tuple(dy.shape) != want:
        raise ValueError(f"dy must have shape {want[1 if unbatched else 0:]} for x "
                         f"{tuple(x.shape[1 if unbatched else 0:])} and w {tuple(w.shape)}, "
                         f"got {tuple(dy.shape[1 if unbatched else 0:])}")
    be = _backend(backend, on_gpu)
    if x.shape[0] == 0:
        return (_zeros(x, x.shape), _zeros(w, w.shape),
                _zeros(w, (w.shape[0],)) if bias else None)
    dx, dw, db = be.conv2d_backward(dy, x, w, stride, pad4, dilation, groups, bool(bias))
    return (dx[0] if unbatched else dx), dw, db


def im2col(x, kernel_size: IntPair, stride: IntPair = 1, padding: Padding = 0,
           dilation: IntPair = 1, *, backend: Optional[str] = None):
    """Unfold receptive fields: x (N, C, H, W) -> cols (N, C*KH*KW, OH*OW); an unbatched
    x (C, H, W) gives (C*KH*KW, OH*OW)."""
    x, unbatched = _with_batch(x, 4)
    x = _array(x, "x", 4, "(N, C, H, W) or (C, H, W)", batch=True)
    on_gpu = _same_dtype({"x": x})
    ks = pair(kernel_size, "kernel_size")
    stride, pad4, dilation, _, (oh, ow) = _conv_args(x.shape, (1, x.shape[1]) + ks, stride,
                                                     padding, dilation, 1)
    shape = (x.shape[0], x.shape[1] * ks[0] * ks[1], oh * ow)
    checked_size(shape, "the output cols")
    be = _backend(backend, on_gpu)
    if x.shape[0] == 0:
        return _zeros(x, shape)
    cols = be.im2col(x, ks, stride, pad4, dilation)
    return cols[0] if unbatched else cols


def col2im(cols, input_shape: Sequence[int], kernel_size: IntPair, stride: IntPair = 1,
           padding: Padding = 0, dilation: IntPair = 1, *, backend: Optional[str] = None):
    """Adjoint of im2col: folds cols (N, C*KH*KW, OH*OW) back to input_shape, summing overlaps
    (unbatched: cols (C*KH*KW, OH*OW) and input_shape (C, H, W))."""
    a, unbatched = _with_batch_all({"cols": cols, "input_shape": tuple(input_shape)},
                                   {"cols": 3, "input_shape": 4})
    cols = _array(a["cols"], "cols", 3, "(N, C*KH*KW, OH*OW) or (C*KH*KW, OH*OW)", batch=True)
    on_gpu = _same_dtype({"cols": cols})
    shape = _shape4(a["input_shape"], "input_shape")
    ks = pair(kernel_size, "kernel_size")
    stride, pad4, dilation, _, (oh, ow) = _conv_args(shape, (1, shape[1]) + ks, stride, padding,
                                                     dilation, 1)
    want = (shape[0], shape[1] * ks[0] * ks[1], oh * ow)
    if tuple(cols.shape) != want:
        cut = 1 if unbatched else 0
        raise ValueError(f"cols must have shape {want[cut:]} for input_shape {shape[cut:]} and "
                         f"kernel_size {ks}, got {tuple(cols.shape[cut:])}")
    be = _backend(backend, on_gpu)
    if shape[0] == 0:
        return _zeros(cols, shape)
    x = be.col2im(cols, shape, ks, stride, pad4, dilation)
    return x[0] if unbatched else x


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
                   indices, backend):
    x = x if hasattr(x, "shape") else tuple(x)   # the input array, or its shape
    a, unbatched = _with_batch_all({"dy": dy, "x": x, "indices": indices},
                                   {"dy": 4, "x": 4, "indices": 4})
    dy = _array(a["dy"], "dy", 4, "(N, C, OH, OW) or (C, OH, OW)", batch=True)
    x, indices = a["x"], a["indices"]
    # x is the forward input or only its shape; an input must match dy's dtype and kind
    on_gpu = _same_dtype({"dy": dy, "x": x if hasattr(x, "dtype") else None})
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
    dx = be.pool2d_backward(dy, indices, shape, mode, ks, st, pad, bool(count_include_pad))
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
                        backend: Optional[str] = None):
    """dx of max_pool2d: dy goes to each window's maximum. x: the forward input or its shape
    (then indices= is required)."""
    return _pool_backward(dy, x, "max", kernel_size, stride, padding, ceil_mode, False, indices,
                          backend)


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


# --------------------------------------------------------------------------- batch normalisation

def _norm_input(x, name: str):
    """x (N, C, H, W) or (N, C), N may be 0 -> (x, its (N, C, HW) view)."""
    if getattr(x, "ndim", None) not in (2, 4):
        x = _array(x, name, 4, "(N, C, H, W) or (N, C)", batch=True)  # raises the type/rank
    x = _array(x, name, x.ndim, "(N, C, H, W) or (N, C)", batch=True)
    hw = int(np.prod(x.shape[2:], dtype=np.int64))
    return x, x.reshape(x.shape[0], x.shape[1], hw)


def _norm_params(x, mean, var, gamma, beta, eps):
    """(mean float64, inv_std float64, gamma, beta) for channels of x; ValueError/TypeError
    naming the argument otherwise."""
    c, xp = x.shape[1], array_module(x)
    eps = float(eps)
    if not eps > 0:
        raise ValueError(f"eps must be > 0, got {eps!r}")
    stats = {}
    for name, v in (("mean", mean), ("var", var)):
        v = _array(v, name, 1, "(C,)")
        if is_cupy(v) != is_cupy(x):
            raise TypeError(f"{name} and x must both be NumPy or both be CuPy arrays")
        if v.shape[0] != c:
            raise ValueError(f"{name} must have shape ({c},) for x {tuple(x.shape)}, got "
                             f"{tuple(v.shape)}")
        stats[name] = xp.asarray(v, dtype=np.float64)
    if bool((stats["var"] < 0).any()):
        raise ValueError("var must be >= 0 everywhere")
    for name, v in (("gamma", gamma), ("beta", beta)):
        if v is not None and (getattr(v, "ndim", None) != 1 or v.shape[0] != c):
            raise ValueError(f"{name} must have shape ({c},) for x {tuple(x.shape)}, got "
                             f"{tuple(getattr(v, 'shape', ()))}")
    gamma = None if gamma is None else _array(gamma, "gamma", 1, "(C,)")
    beta = None if beta is None else _array(beta, "beta", 1, "(C,)")
    _same_dtype({"x": x, "gamma": gamma, "beta": beta})
    return stats["mean"], 1.0 / xp.sqrt(stats["var"] + eps), gamma, beta


def batch_norm_stats(x, *, backend: Optional[str] = None):
    """Per-channel mean and biased variance of x (N, C, H, W) or (N, C) over every axis but 1,
    in float64 (shifted sums: a mean far from 0 cannot cancel the variance away) -> (mean,
    var), float64 (C,) each. N >= 1."""
    x, x3 = _norm_input(x, "x")
    be = _backend(backend, is_cupy(x))
    if x.shape[0] == 0:
        raise ValueError(f"x has no samples (shape {tuple(x.shape)}): a batch of 0 has no "
                         "statistics")
    return be.batch_norm_stats(x3)


def batch_norm(x, mean, var, gamma=None, beta=None, eps: float = 1e-3, relu: bool = False, *,
               backend: Optional[str] = None):
    """y = (x - mean) / sqrt(var + eps) * gamma + beta per channel (axis 1), then max(y, 0)
    when relu (BatchNormalization + ReLU in one pass).

    x (N, C, H, W) or (N, C) (N may be 0); mean, var (C,) float32 or float64 (the batch's from
    batch_norm_stats, or moving statistics); gamma, beta (C,) of x's dtype, or None (1 and 0).
    """
    x, x3 = _norm_input(x, "x")
    mean, inv, gamma, beta = _norm_params(x, mean, var, gamma, beta, eps)
    be = _backend(backend, is_cupy(x))
    if x.shape[0] == 0:
        return _zeros(x, x.shape)
    return be.batch_norm(x3, mean, inv, gamma, beta, bool(relu)).reshape(x.shape)


def batch_norm_backward(dy, x, mean, var, gamma=None, beta=None, eps: float = 1e-3,
                        relu: bool = False, batch_stats: bool = True, *, need_dx: bool = True,
                        backend: Optional[str] = None):
    """Gradients of batch_norm (same x, mean, var, gamma, beta, eps, relu): (dx, dgamma, dbeta),
    dgamma and dbeta of x's dtype (C,) (also without gamma / beta: the gradients they would
    get); dx is None when need_dx=False. batch_stats=True: mean and var were x's own batch
    statistics (training), so dx also flows through them; False: they were constants (moving
    statistics, inference or a frozen layer). With relu, dy is masked where the forward's
    pre-activation was not > 0."""
    x, x3 = _norm_input(x, "x")
    dy, dy3 = _norm_input(dy, "dy")
    if tuple(dy.shape) != tuple(x.shape):
        raise ValueError(f"dy must have the shape of x {tuple(x.shape)}, got {tuple(dy.shape)}")
    _same_dtype({"x": x, "dy": dy})
    mean, inv, gamma, beta = _norm_params(x, mean, var, gamma, beta, eps)
    be = _backend(backend, is_cupy(x))
    if x.shape[0] == 0:
        if batch_stats:
            raise ValueError("batch_stats=True needs a batch with samples (x has N = 0)")
        c = x.shape[1]
        return (_zeros(x, x.shape) if need_dx else None), _zeros(x, (c,)), _zeros(x, (c,))
    dx, dgamma, dbeta = be.batch_norm_backward(dy3, x3, mean, inv, gamma, beta, bool(relu),
                                               bool(batch_stats), bool(need_dx))
    return (None if dx is None else dx.reshape(x.shape), dgamma.astype(x.dtype),
            dbeta.astype(x.dtype))


# --------------------------------------------------------------------------- dropout

def dropout(x, rate: float, seed: int, *, backend: Optional[str] = None):
    """x * keep / (1 - rate): element i (flat, C order) is kept iff a counter-based hash of
    (seed, i) is >= floor(rate * 2^32) (defined in csrc/include/convforge/elementwise.hpp), so
    the mask is the same on every backend for the same seed and nothing needs storing: the
    gradient is dropout(dy, rate, seed). x: any shape, float32/float64; rate in [0, 1); seed an
    int in [0, 2^64)."""
    if not (isinstance(x, np.ndarray) or is_cupy(x)):
        raise TypeError(f"x must be a numpy.ndarray or cupy.ndarray, got {type(x).__name__}")
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"x must have dtype float32 or float64, got {x.dtype} with shape "
                        f"{tuple(x.shape)}")
    if not x.flags.c_contiguous:
        x = array_module(x).ascontiguousarray(x)
    rate = float(rate)
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"rate must be in [0, 1), got {rate!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    seed = int(seed)
    if not 0 <= seed < 2**64:
        raise ValueError(f"seed must be in [0, 2**64), got {seed}")
    be = _backend(backend, is_cupy(x))
    if x.size == 0:
        return x.copy()
    return be.dropout(x, seed, int(rate * 4294967296.0), 1.0 / (1.0 - rate))

