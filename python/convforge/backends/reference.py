"""The oracle: plain float64 NumPy, written to be read rather than to be fast.

Convolution is im2col + matrix product, exactly as taught: unfold every receptive field into a
column, multiply by the filters laid out as rows. Backward is the same algebra transposed.
Pooling loops over output positions. Results come back in the dtype of the input.
"""

from __future__ import annotations

import numpy as np

from . import _xp_activation, _xp_loss, _xp_optim
from ._xp_dropout import dropout  # noqa: F401 - the counter-based mask, for NumPy and CuPy


def probe():
    return None


def _out_size(n, k, s, p0, p1, d):
    return (n + p0 + p1 - d * (k - 1) - 1) // s + 1


def _taps(n_out, s, p0, i, d, n_in):
    """For kernel tap i along one axis: the output positions whose input coordinate
    o*s - p0 + i*d lies inside the input, and those coordinates. Indexing by coordinates (no
    padded copy of x) keeps any padding cheap, however large."""
    coord = np.arange(n_out, dtype=np.int64) * s - p0 + i * d          # (n_out,)
    inside = np.nonzero((coord >= 0) & (coord < n_in))[0]
    return inside, coord[inside]


def im2col(x, kernel_size, stride, padding, dilation):
    n, c, h, w = x.shape
    (kh, kw), (pt, pb, pl, pr) = kernel_size, padding
    oh = _out_size(h, kh, stride[0], pt, pb, dilation[0])
    ow = _out_size(w, kw, stride[1], pl, pr, dilation[1])
    x64 = np.asarray(x, np.float64)
    cols = np.zeros((n, c, kh, kw, oh, ow))
    for i in range(kh):
        orow, irow = _taps(oh, stride[0], pt, i, dilation[0], h)
        for j in range(kw):
            ocol, icol = _taps(ow, stride[1], pl, j, dilation[1], w)
            # cols[n, c, i, j, oh, ow] = x[n, c, oh*sh - pt + i*dh, ow*sw - pl + j*dw]
            cols[:, :, i, j, orow[:, None], ocol[None, :]] = x64[:, :, irow[:, None],
                                                                  icol[None, :]]
    return cols.reshape(n, c * kh * kw, oh * ow).astype(x.dtype, copy=False)


def col2im(cols, input_shape, kernel_size, stride, padding, dilation):
    n, c, h, w = input_shape
    (kh, kw), (pt, pb, pl, pr) = kernel_size, padding
    oh = _out_size(h, kh, stride[0], pt, pb, dilation[0])
    ow = _out_size(w, kw, stride[1], pl, pr, dilation[1])
    cols6 = np.asarray(cols, np.float64).reshape(n, c, kh, kw, oh, ow)
    x = np.zeros((n, c, h, w))
    for i in range(kh):
        orow, irow = _taps(oh, stride[0], pt, i, dilation[0], h)
        for j in range(kw):
            ocol, icol = _taps(ow, stride[1], pl, j, dilation[1], w)
            # one tap reaches each input element at most once, so += adds no duplicates
            x[:, :, irow[:, None], icol[None, :]] += cols6[:, :, i, j, orow[:, None],
                                                           ocol[None, :]]
    return x.astype(cols.dtype)


def conv2d(x, w, b, stride, padding, dilation, groups, relu=False):
    n = x.shape[0]
    k, cg, kh, kw = w.shape
    cols = im2col(np.asarray(x, np.float64), (kh, kw), stride, padding, dilation)
    L = cols.shape[2]
    cols = cols.reshape(n, groups, cg * kh * kw, L)                     # (N, G, Cg*KH*KW, L)
    wm = np.asarray(w, np.float64).reshape(groups, k // groups, cg * kh * kw)  # (G, Kg, Cg*KH*KW)
    y = np.einsum("gkr,ngrl->ngkl", wm, cols).reshape(n, k, L)
    if b is not None:
        y = y + np.asarray(b, np.float64)[None, :, None]
    oh, ow = _out_size(x.shape[2], kh, stride[0], padding[0], padding[1], dilation[0]), \
        _out_size(x.shape[3], kw, stride[1], padding[2], padding[3], dilation[1])
    if relu:
        y = _xp_activation.activation(y, "relu")
    return y.reshape(n, k, oh, ow).astype(x.dtype)


def conv2d_backward(dy, x, w, stride, padding, dilation, groups, bias, need_dx=True,
                    need_dw=True):
    n = x.shape[0]
    k, cg, kh, kw = w.shape
    L = dy.shape[2] * dy.shape[3]
    dym = np.asarray(dy, np.float64).reshape(n, groups, k // groups, L)  # (N, G, Kg, L)
    dx = dw = db = None
    if need_dw:
        cols = im2col(np.asarray(x, np.float64), (kh, kw), stride, padding, dilation)
        cols = cols.reshape(n, groups, cg * kh * kw, L)                 # (N, G, R, L)
        dw = np.einsum("ngkl,ngrl->gkr", dym, cols).reshape(w.shape).astype(x.dtype)
        db = np.asarray(dy, np.float64).sum(axis=(0, 2, 3)).astype(x.dtype) if bias else None
    if need_dx:
        wm = np.asarray(w, np.float64).reshape(groups, k // groups, cg * kh * kw)
        dcols = np.einsum("gkr,ngkl->ngrl", wm, dym).reshape(n, groups * cg * kh * kw, L)
        dx = col2im(dcols, x.shape, (kh, kw), stride, padding, dilation).astype(x.dtype)
    return dx, dw, db


def _pool_windows(in_hw, kernel_size, stride, padding, out_size):
    """Yields (i, j, h0, h1, w0, w1, area_with_padding) for every output position."""
    (h, w), (kh, kw), (sh, sw), (ph, pw), (oh, ow) = in_hw, kernel_size, stride, padding, out_size
    for i in range(oh):
        hs = i * sh - ph
        he = min(hs + kh, h + ph)
        for j in range(ow):
            ws = j * sw - pw
            we = min(ws + kw, w + pw)
            yield i, j, max(hs, 0), min(hs + kh, h), max(ws, 0), min(ws + kw, w), \
                (he - hs) * (we - ws)


def _best(win, mode):
    """Index of the max / min along the last axis: the first occurrence of the extreme, but
    the last NaN when there is one (PyTorch's choice: its kernels take `v > best || isnan(v)`)."""
    a = win.argmax(-1) if mode == "max" else win.argmin(-1)
    nan = np.isnan(win)
    last_nan = win.shape[-1] - 1 - nan[..., ::-1].argmax(-1)
    return np.where(nan.any(-1), last_nan, a)


def pool2d(x, mode, kernel_size, stride, padding, out_size, count_include_pad):
    n, c, h, w = x.shape
    x64 = np.asarray(x, np.float64)
    y = np.empty((n, c) + tuple(out_size))
    idx = None if mode == "avg" else np.empty((n, c) + tuple(out_size), np.int64)
    for i, j, h0, h1, w0, w1, area in _pool_windows((h, w), kernel_size, stride, padding, out_size):
        win = x64[:, :, h0:h1, w0:w1].reshape(n, c, -1)                 # (N, C, window)
        if mode == "avg":
            y[:, :, i, j] = win.sum(-1) / (area if count_include_pad else win.shape[-1])
        else:
            a = _best(win, mode)
            y[:, :, i, j] = np.take_along_axis(win, a[..., None], -1)[..., 0]
            idx[:, :, i, j] = (h0 + a // (w1 - w0)) * w + (w0 + a % (w1 - w0))
    return y.astype(x.dtype), idx


def pool2d_backward(dy, indices, input_shape, mode, kernel_size, stride, padding,
                    count_include_pad, relu_y=None):
    n, c, h, w = input_shape
    if relu_y is not None:   # the gradient through the ReLU before the pool: windows with y > 0
        dy = np.where(relu_y > 0, dy, dy.dtype.type(0))
    dy64 = np.asarray(dy, np.float64)
    dx = np.zeros((n, c, h, w))
    if mode == "avg":
        for i, j, h0, h1, w0, w1, area in _pool_windows((h, w), kernel_size, stride, padding,
                                                        dy.shape[2:]):
            div = area if count_include_pad else (h1 - h0) * (w1 - w0)
            dx[:, :, h0:h1, w0:w1] += dy64[:, :, i, j, None, None] / div
    else:
        flat = dx.reshape(n * c, h * w)
        rows = np.arange(n * c)[:, None]
        np.add.at(flat, (rows, indices.reshape(n * c, -1)), dy64.reshape(n * c, -1))
    return dx.astype(dy.dtype)


def global_pool2d(x, mode):
    n, c = x.shape[:2]
    flat = np.asarray(x, np.float64).reshape(n, c, -1)
    if mode == "avg":
        return flat.mean(-1).astype(x.dtype), None
    idx = _best(flat, "max")
    return np.take_along_axis(flat, idx[..., None], -1)[..., 0].astype(x.dtype), idx


def global_pool2d_backward(dy, indices, input_shape, mode):
    n, c, h, w = input_shape
    dy64 = np.asarray(dy, np.float64)
    if mode == "avg":
        dx = np.broadcast_to(dy64[:, :, None, None] / (h * w), (n, c, h, w))
        return np.ascontiguousarray(dx, dtype=dy.dtype)
    dx = np.zeros((n, c, h * w))
    np.put_along_axis(dx, indices[..., None], dy64[..., None], -1)
    return dx.reshape(n, c, h, w).astype(dy.dtype)


# --------------------------------------------------------------------------- batch normalisation
# x (N, C, HW) views; mean, inv_std float64 (C,); gamma, beta (C,) or None.

def batch_norm_stats(x):
    x64 = np.asarray(x, np.float64)
    return x64.mean(axis=(0, 2)), x64.var(axis=(0, 2))


def _bn_pre(x, mean, inv_std, gamma, beta):
    """(x - mean) * inv_std * gamma + beta in float64, and xhat = (x - mean) * inv_std."""
    xhat = (np.asarray(x, np.float64) - mean[:, None]) * inv_std[:, None]
    g = 1.0 if gamma is None else np.asarray(gamma, np.float64)[:, None]
    b = 0.0 if beta is None else np.asarray(beta, np.float64)[:, None]
    return xhat * g + b, xhat


def batch_norm(x, mean, inv_std, gamma, beta, relu):
    y, _ = _bn_pre(x, mean, inv_std, gamma, beta)
    return (np.maximum(y, 0.0) if relu else y).astype(x.dtype)


def batch_norm_backward(dy, x, mean, inv_std, gamma, beta, relu, batch_stats, need_dx):
    pre, xhat = _bn_pre(x, mean, inv_std, gamma, beta)
    g = np.asarray(dy, np.float64)
    if relu:
        g = np.where(pre > 0, g, 0.0)
    dgamma, dbeta = (g * xhat).sum(axis=(0, 2)), g.sum(axis=(0, 2))
    if not need_dx:
        return None, dgamma, dbeta
    scale = (1.0 if gamma is None else np.asarray(gamma, np.float64)) * inv_std   # (C,)
    if batch_stats:
        m = x.shape[0] * x.shape[2]
        g = g - dbeta[:, None] / m - xhat * dgamma[:, None] / m
    return (g * scale[:, None]).astype(x.dtype), dgamma, dbeta


# --------------------------------------------------------------------------- activations
# The definitions in _xp_activation (shared with cuda), evaluated in float64.

def activation(x, kind):
    return _xp_activation.activation(np.asarray(x, np.float64), kind).astype(x.dtype)


def activation_backward(dy, y, kind):
    f64 = [np.asarray(a, np.float64) for a in (dy, y)]
    return _xp_activation.activation_backward(*f64, kind).astype(dy.dtype)



# --------------------------------------------------------------------------- losses
# The definition in _xp_loss (shared with cuda), evaluated in float64.

def softmax_cross_entropy(logits, labels, label_smoothing, reduction):
    as64 = np.asarray(labels, np.float64) if labels.ndim == 2 else labels
    loss, dlogits = _xp_loss.softmax_cross_entropy(np.asarray(logits, np.float64), as64,
                                                   label_smoothing, reduction)
    return loss.astype(logits.dtype), dlogits.astype(logits.dtype)


# --------------------------------------------------------------------------- optimiser updates
# _xp_optim's formulas on float64 copies (scalars not rounded), written back in the arrays' dtype.

def _f64(arrays):
    return None if arrays is None else [np.array(a, np.float64) for a in arrays]


def _store(arrays, copies) -> None:
    for a, c in zip(arrays or (), copies or ()):
        a[...] = c


def sgd_update(params, grads, bufs, lr, momentum, nesterov, weight_decay, first_step):
    p = _f64(params)
    # on the first step the buffers are only written (and may hold any bits before)
    b = [np.zeros(a.shape) for a in bufs] if first_step and bufs else _f64(bufs)
    _xp_optim.sgd_update(p, _f64(grads), b, lr, momentum, nesterov, weight_decay, first_step)
    _store(params, p)
    _store(bufs, b)


def _update_in_float64(update, params, grads, states, scalars):
    """update(params, grads, *states, *scalars) on float64 copies, stored back in place."""
    copies = [_f64(s) for s in [params] + states]
    update(copies[0], _f64(grads), *copies[1:], *scalars)
    for s, c in zip([params] + states, copies):
        _store(s, c)


def adam_update(params, grads, m, v, v_max, *scalars):
    _update_in_float64(_xp_optim.adam_update, params, grads, [m, v, v_max], scalars)


def rmsprop_update(params, grads, square_avg, grad_avg, bufs, *scalars):
    _update_in_float64(_xp_optim.rmsprop_update, params, grads, [square_avg, grad_avg, bufs],
                       scalars)
