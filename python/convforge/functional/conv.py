"""Convolution ops: conv2d, conv2d_backward, im2col, col2im."""

from __future__ import annotations

from typing import Optional, Sequence

from .._array import positive_int
from .._shapes import checked_size, conv_output_size, conv_padding, pair
from ._common import (
    IntPair,
    Padding,
    _array,
    _backend,
    _same_dtype,
    _shape4,
    _with_batch,
    _with_batch_all,
    _zeros,
)

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
           groups: int = 1, *, activation: Optional[str] = None, backend: Optional[str] = None):
    """2-D cross-correlation: y[n,k] = b[k] + sum_c,i,j x[n,c,oh*s+i*d-p, ow*s+j*d-p] w[k,c,i,j].

    x (N, C, H, W) or unbatched (C, H, W), w (K, C/groups, KH, KW), b (K,) or None
    -> y (N, K, OH, OW) (or (K, OH, OW)). N may be 0.
    padding: int, (h, w), (top, bottom, left, right), 'valid' or 'same'.
    activation: None / 'linear', or 'relu': y = max(conv + b, 0) (the cpu backend applies it
    where its kernels store y, so y is written once; the gradient is activation_backward(dy,
    y, 'relu') as for F.activation).
    """
    if activation not in (None, "linear", "relu"):
        raise ValueError(f"activation must be None, 'linear' or 'relu', got {activation!r}")
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
    # options go to the backend only when used (a backend written for the plain call still works)
    y = be.conv2d(x, w, b, stride, pad4, dilation, groups,
                  **({"relu": True} if activation == "relu" else {}))
    return y[0] if unbatched else y


def conv2d_backward(dy, x, w, stride: IntPair = 1, padding: Padding = 0, dilation: IntPair = 1,
                    groups: int = 1, bias: bool = True, *, need_dx: bool = True,
                    need_dw: bool = True, backend: Optional[str] = None):
    """Gradients of conv2d: returns (dx, dw, db); db is None when bias=False. dy and x both
    with the batch axis (N may be 0: dx is empty, dw and db are zeros) or both without.
    need_dx=False (a first layer: nobody wants the input's gradient) or need_dw=False (a frozen
    layer) skips that computation: dx, or dw and db, come back as None."""
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
    need_dx, need_dw = bool(need_dx), bool(need_dw)
    if x.shape[0] == 0:
        return (_zeros(x, x.shape) if need_dx else None,
                _zeros(w, w.shape) if need_dw else None,
                _zeros(w, (w.shape[0],)) if bias and need_dw else None)
    skip = {k: False for k, need in (("need_dx", need_dx), ("need_dw", need_dw)) if not need}
    dx, dw, db = be.conv2d_backward(dy, x, w, stride, pad4, dilation, groups, bool(bias), **skip)
    return (dx[0] if unbatched and dx is not None else dx), dw, db


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
