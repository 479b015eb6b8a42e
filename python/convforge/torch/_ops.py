"""The custom ops (torch.ops.convforge.*) and the torch-style functions that call them.

Each op runs convforge.functional on the inputs through DLPack (zero-copy: the detached
tensors' memory), and convforge's results come back as fresh tensors, so no output aliases an
input (custom ops must not). Each forward op has a fake kernel (shapes only, for
torch.compile and meta tensors) and an autograd formula whose backward is itself a custom op,
so AOT autograd traces the backward too. Ops that torch.library cannot give Optional outputs
(conv2d_backward's output_mask) return empty tensors in the unwanted places.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from .. import functional as F
from .._shapes import conv_padding, pair, pool_padding

_FLOATS = (torch.float32, torch.float64)


def _check(op: str, **tensors) -> None:
    """CPU float32/float64 only: the kernels' types (CUDA tensors never reach here: the ops are
    registered for CPU, and the dispatcher names the missing kernel)."""
    for name, t in tensors.items():
        if t is None:
            continue
        if t.device.type != "cpu":
            raise TypeError(f"convforge::{op}: {name} is on {t.device}; convforge.torch takes "
                            "CPU tensors")
        if t.dtype not in _FLOATS:
            raise TypeError(f"convforge::{op}: {name} must be float32 or float64, got "
                            f"{t.dtype} (shape {tuple(t.shape)})")


def _in(t: Tensor) -> Tensor:
    # DLPack refuses tensors requiring grad; convforge copies non-contiguous views itself
    return t.detach()


def _4d(op: str, x: Tensor) -> None:
    if x.dim() != 4:
        raise ValueError(f"convforge::{op}: x must be (N, C, H, W), got shape {tuple(x.shape)}")


# ----------------------------------------------------------------------------- convolution

@torch.library.custom_op("convforge::conv2d", mutates_args=(), device_types="cpu")
def _conv2d(x: Tensor, w: Tensor, b: Optional[Tensor], stride: list[int], padding: list[int],
            dilation: list[int], groups: int) -> Tensor:
    _check("conv2d", x=x, w=w, b=b)
    return F.conv2d(_in(x), _in(w), None if b is None else _in(b), tuple(stride),
                    tuple(padding), tuple(dilation), groups)


def _conv_out_hw(x: Tensor, w: Tensor, stride, padding, dilation):
    (h, wd), (kh, kw) = x.shape[2:], w.shape[2:]
    oh = (h + padding[0] + padding[1] - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (wd + padding[2] + padding[3] - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    return oh, ow


@_conv2d.register_fake
def _conv2d_fake(x, w, b, stride, padding, dilation, groups):
    _4d("conv2d", x)
    return x.new_empty((x.shape[0], w.shape[0]) + _conv_out_hw(x, w, stride, padding, dilation))


@torch.library.custom_op("convforge::conv2d_backward", mutates_args=(), device_types="cpu")
def _conv2d_backward(dy: Tensor, x: Tensor, w: Tensor, stride: list[int], padding: list[int],
                     dilation: list[int], groups: int, bias: bool,
                     output_mask: list[bool]) -> tuple[Tensor, Tensor, Tensor]:
    """(dx, dw, db); an output whose output_mask entry is False (db also when bias=False) is
    an empty tensor (shape (0,)), and convforge skips dx or dw/db when not wanted."""
    _check("conv2d_backward", dy=dy, x=x, w=w)
    want_dx, want_dw, want_db = (bool(m) for m in output_mask)
    want_db = want_db and bias
    dx, dw, db = F.conv2d_backward(_in(dy), _in(x), _in(w), tuple(stride), tuple(padding),
                                   tuple(dilation), groups, want_db, need_dx=want_dx,
                                   need_dw=want_dw or want_db)
    return (dx if want_dx else x.new_empty(0), dw if want_dw else w.new_empty(0),
            db if want_db else w.new_empty(0))


@_conv2d_backward.register_fake
def _conv2d_backward_fake(dy, x, w, stride, padding, dilation, groups, bias, output_mask):
    return (x.new_empty(x.shape) if output_mask[0] else x.new_empty(0),
            w.new_empty(w.shape) if output_mask[1] else w.new_empty(0),
            w.new_empty((w.shape[0],)) if output_mask[2] and bias else w.new_empty(0))


def _conv2d_backward_setup(ctx, inputs, output):
    dy, x, w, stride, padding, dilation, groups, bias, output_mask = inputs
    ctx.save_for_backward(dy, x, w)
    ctx.args = (stride, padding, dilation, groups)
    ctx.mask = [bool(output_mask[0]), bool(output_mask[1]), bool(output_mask[2] and bias)]


def _conv2d_double_grad(ctx, gdx, gdw, gdb):
    """The conv is bilinear in (x, w) and linear in b, so (dx, dw, db) are linear in dy and
    <gdx, dx> = <conv(gdx, w), dy>, <gdw, dw> = <conv(x, gdw), dy>, <gdb, db> = <gdb, sum dy>:
    each gradient is again a conv2d or conv2d_backward (themselves differentiable)."""
    dy, x, w = ctx.saved_tensors
    stride, padding, dilation, groups = ctx.args
    want_dx, want_dw, want_db = ctx.mask
    use_dx = want_dx and gdx is not None
    use_dw = want_dw and gdw is not None
    use_db = want_db and gdb is not None
    g_dy = g_x = g_w = None
    if ctx.needs_input_grad[0]:
        g_dy = torch.zeros_like(dy)
        if use_dx:
            g_dy = g_dy + _conv2d(gdx, w, None, stride, padding, dilation, groups)
        if use_dw:
            g_dy = g_dy + _conv2d(x, gdw, None, stride, padding, dilation, groups)
        if use_db:
            g_dy = g_dy + gdb[None, :, None, None]
    if ctx.needs_input_grad[1] and use_dw:
        g_x = _conv2d_backward(dy, x, gdw, stride, padding, dilation, groups, False,
                               [True, False, False])[0]
    if ctx.needs_input_grad[2] and use_dx:
        g_w = _conv2d_backward(dy, gdx, w, stride, padding, dilation, groups, False,
                               [False, True, False])[1]
    return (g_dy, g_x, g_w) + (None,) * 6


_conv2d_backward.register_autograd(_conv2d_double_grad, setup_context=_conv2d_backward_setup)


def _conv2d_setup(ctx, inputs, output):
    x, w, b, stride, padding, dilation, groups = inputs
    ctx.save_for_backward(x, w)
    ctx.args = (stride, padding, dilation, groups)
    ctx.has_bias = b is not None


def _conv2d_grad(ctx, dy):
    x, w = ctx.saved_tensors
    need = ctx.needs_input_grad
    mask = [bool(need[0]), bool(need[1]), bool(ctx.has_bias and need[2])]
    dx, dw, db = torch.ops.convforge.conv2d_backward(dy, x, w, *ctx.args, ctx.has_bias, mask)
    return (dx if mask[0] else None, dw if mask[1] else None, db if mask[2] else None,
            None, None, None, None)


_conv2d.register_autograd(_conv2d_grad, setup_context=_conv2d_setup)


# ----------------------------------------------------------------------------- window pools

def _pool_out_hw(x: Tensor, ks, st, pad, ceil_mode: bool):
    """PyTorch's rule (convforge._shapes.pool_output_size), written for symbolic sizes."""
    out = []
    for n, k, s, p in zip(x.shape[2:], ks, st, pad):
        span = n + 2 * p - k
        o = (-(-span // s) if ceil_mode else span // s) + 1
        if ceil_mode and (o - 1) * s >= n + p:
            o = o - 1
        out.append(o)
    return tuple(out)


def _extreme_pool(mode: str):
    """The max or min pool op and its backward op (the same code, two names)."""
    name = f"convforge::{mode}_pool2d"
    fwd_fn, bwd_fn = getattr(F, f"{mode}_pool2d"), getattr(F, f"{mode}_pool2d_backward")

    def fwd(x: Tensor, kernel_size: list[int], stride: list[int], padding: list[int],
            ceil_mode: bool) -> tuple[Tensor, Tensor]:
        _check(f"{mode}_pool2d", x=x)
        _4d(f"{mode}_pool2d", x)
        return fwd_fn(_in(x), tuple(kernel_size), tuple(stride), tuple(padding), ceil_mode,
                      return_indices=True)

    def bwd(dy: Tensor, x: Tensor, indices: Tensor, kernel_size: list[int], stride: list[int],
            padding: list[int], ceil_mode: bool) -> Tensor:
        _check(f"{mode}_pool2d_backward", dy=dy, x=x)
        return bwd_fn(_in(dy), tuple(x.shape), tuple(kernel_size), tuple(stride),
                      tuple(padding), ceil_mode, indices=_in(indices))

    fwd_op = torch.library.custom_op(name, fwd, mutates_args=(), device_types="cpu")
    bwd_op = torch.library.custom_op(name + "_backward", bwd, mutates_args=(),
                                     device_types="cpu")

    @fwd_op.register_fake
    def _(x, kernel_size, stride, padding, ceil_mode):
        _4d(f"{mode}_pool2d", x)
        shape = tuple(x.shape[:2]) + _pool_out_hw(x, kernel_size, stride, padding, ceil_mode)
        return x.new_empty(shape), x.new_empty(shape, dtype=torch.int64)

    @bwd_op.register_fake
    def _(dy, x, indices, kernel_size, stride, padding, ceil_mode):
        return x.new_empty(x.shape)

    def setup(ctx, inputs, output):
        x, kernel_size, stride, padding, ceil_mode = inputs
        ctx.save_for_backward(x, output[1])
        ctx.args = (kernel_size, stride, padding, ceil_mode)

    def grad(ctx, dy, _didx):
        x, idx = ctx.saved_tensors
        return bwd_op(dy, x, idx, *ctx.args), None, None, None, None

    fwd_op.register_autograd(grad, setup_context=setup)
    return fwd_op, bwd_op


_max_pool2d, _max_pool2d_backward = _extreme_pool("max")
_min_pool2d, _min_pool2d_backward = _extreme_pool("min")


@torch.library.custom_op("convforge::avg_pool2d", mutates_args=(), device_types="cpu")
def _avg_pool2d(x: Tensor, kernel_size: list[int], stride: list[int], padding: list[int],
                ceil_mode: bool, count_include_pad: bool) -> Tensor:
    _check("avg_pool2d", x=x)
    _4d("avg_pool2d", x)
    return F.avg_pool2d(_in(x), tuple(kernel_size), tuple(stride), tuple(padding), ceil_mode,
                        count_include_pad)


@_avg_pool2d.register_fake
def _avg_pool2d_fake(x, kernel_size, stride, padding, ceil_mode, count_include_pad):
    _4d("avg_pool2d", x)
    return x.new_empty(tuple(x.shape[:2]) + _pool_out_hw(x, kernel_size, stride, padding,
                                                         ceil_mode))


@torch.library.custom_op("convforge::avg_pool2d_backward", mutates_args=(), device_types="cpu")
def _avg_pool2d_backward(dy: Tensor, x: Tensor, kernel_size: list[int], stride: list[int],
                         padding: list[int], ceil_mode: bool, count_include_pad: bool) -> Tensor:
    _check("avg_pool2d_backward", dy=dy, x=x)
    return F.avg_pool2d_backward(_in(dy), tuple(x.shape), tuple(kernel_size), tuple(stride),
                                 tuple(padding), ceil_mode, count_include_pad)


@_avg_pool2d_backward.register_fake
def _avg_pool2d_backward_fake(dy, x, kernel_size, stride, padding, ceil_mode, count_include_pad):
    return x.new_empty(x.shape)


def _avg_setup(ctx, inputs, output):
    ctx.save_for_backward(inputs[0])
    ctx.args = inputs[1:]


def _avg_grad(ctx, dy):
    (x,) = ctx.saved_tensors
    return (torch.ops.convforge.avg_pool2d_backward(dy, x, *ctx.args),) + (None,) * 5


_avg_pool2d.register_autograd(_avg_grad, setup_context=_avg_setup)


# ----------------------------------------------------------------------------- global pools

@torch.library.custom_op("convforge::global_avg_pool2d", mutates_args=(), device_types="cpu")
def _global_avg_pool2d(x: Tensor) -> Tensor:
    _check("global_avg_pool2d", x=x)
    _4d("global_avg_pool2d", x)
    return F.global_avg_pool2d(_in(x))


@_global_avg_pool2d.register_fake
def _global_avg_pool2d_fake(x):
    _4d("global_avg_pool2d", x)
    return x.new_empty(x.shape[:2])


@torch.library.custom_op("convforge::global_avg_pool2d_backward", mutates_args=(),
                         device_types="cpu")
def _global_avg_pool2d_backward(dy: Tensor, x: Tensor) -> Tensor:
    _check("global_avg_pool2d_backward", dy=dy, x=x)
    return F.global_avg_pool2d_backward(_in(dy), tuple(x.shape))


@_global_avg_pool2d_backward.register_fake
def _global_avg_pool2d_backward_fake(dy, x):
    return x.new_empty(x.shape)


def _gavg_setup(ctx, inputs, output):
    ctx.save_for_backward(inputs[0])


def _gavg_grad(ctx, dy):
    (x,) = ctx.saved_tensors
    return torch.ops.convforge.global_avg_pool2d_backward(dy, x)


_global_avg_pool2d.register_autograd(_gavg_grad, setup_context=_gavg_setup)


@torch.library.custom_op("convforge::global_max_pool2d", mutates_args=(), device_types="cpu")
def _global_max_pool2d(x: Tensor) -> tuple[Tensor, Tensor]:
    _check("global_max_pool2d", x=x)
    _4d("global_max_pool2d", x)
    return F.global_max_pool2d(_in(x), return_indices=True)


@_global_max_pool2d.register_fake
def _global_max_pool2d_fake(x):
    _4d("global_max_pool2d", x)
    return x.new_empty(x.shape[:2]), x.new_empty(x.shape[:2], dtype=torch.int64)


@torch.library.custom_op("convforge::global_max_pool2d_backward", mutates_args=(),
                         device_types="cpu")
def _global_max_pool2d_backward(dy: Tensor, x: Tensor, indices: Tensor) -> Tensor:
    _check("global_max_pool2d_backward", dy=dy, x=x)
    return F.global_max_pool2d_backward(_in(dy), tuple(x.shape), indices=_in(indices))


@_global_max_pool2d_backward.register_fake
def _global_max_pool2d_backward_fake(dy, x, indices):
    return x.new_empty(x.shape)


def _gmax_setup(ctx, inputs, output):
    ctx.save_for_backward(inputs[0], output[1])


def _gmax_grad(ctx, dy, _didx):
    x, idx = ctx.saved_tensors
    return torch.ops.convforge.global_max_pool2d_backward(dy, x, idx)


_global_max_pool2d.register_autograd(_gmax_grad, setup_context=_gmax_setup)


# ----------------------------------------------------------------------------- torch-style API

def _batched(x: Tensor):
    """(x with a batch axis, whether it was added): unbatched (C, H, W) as in torch."""
    return (x.unsqueeze(0), True) if x.dim() == 3 else (x, False)


def conv2d(input: Tensor, weight: Tensor, bias: Optional[Tensor] = None, stride=1, padding=0,
           dilation=1, groups: int = 1) -> Tensor:
    """torch.nn.functional.conv2d's arguments on convforge's kernels; padding may also be
    (top, bottom, left, right). 'same' puts an odd total's extra row/column at the bottom/right,
    as torch does."""
    x, unbatched = _batched(input)
    st, dil = pair(stride, "stride"), pair(dilation, "dilation")
    pad = conv_padding(padding, tuple(x.shape[2:]), tuple(weight.shape[2:]), st, dil)
    y = _conv2d(x, weight, bias, list(st), list(pad), list(dil), int(groups))
    return y.squeeze(0) if unbatched else y


def _pool_args(kernel_size, stride, padding, dilation=1):
    ks = pair(kernel_size, "kernel_size")
    st = ks if stride is None or (isinstance(stride, (list, tuple)) and len(stride) == 0) \
        else pair(stride, "stride")
    if pair(dilation, "dilation") != (1, 1):
        raise ValueError(f"convforge pools take dilation=1 only, got {dilation!r}")
    return list(ks), list(st), list(pool_padding(padding, ks))


def _extreme(op, input, kernel_size, stride, padding, dilation, ceil_mode, return_indices):
    x, unbatched = _batched(input)
    y, idx = op(x, *_pool_args(kernel_size, stride, padding, dilation), bool(ceil_mode))
    if unbatched:
        y, idx = y.squeeze(0), idx.squeeze(0)
    return (y, idx) if return_indices else y


def max_pool2d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1,
               ceil_mode: bool = False, return_indices: bool = False):
    """torch.nn.functional.max_pool2d (dilation=1 only); indices are flat h*W + w as torch's."""
    return _extreme(_max_pool2d, input, kernel_size, stride, padding, dilation, ceil_mode,
                    return_indices)


def min_pool2d(input: Tensor, kernel_size, stride=None, padding=0, dilation=1,
               ceil_mode: bool = False, return_indices: bool = False):
    """The minimum over each window (max_pool2d's arguments)."""
    return _extreme(_min_pool2d, input, kernel_size, stride, padding, dilation, ceil_mode,
                    return_indices)


def avg_pool2d(input: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True, divisor_override: Optional[int] = None) -> Tensor:
    """torch.nn.functional.avg_pool2d (divisor_override is not supported)."""
    if divisor_override is not None:
        raise ValueError("convforge avg_pool2d does not support divisor_override")
    x, unbatched = _batched(input)
    y = _avg_pool2d(x, *_pool_args(kernel_size, stride, padding), bool(ceil_mode),
                    bool(count_include_pad))
    return y.squeeze(0) if unbatched else y


def global_avg_pool2d(input: Tensor) -> Tensor:
    """Mean over H and W: (N, C, H, W) -> (N, C), (C, H, W) -> (C,)."""
    x, unbatched = _batched(input)
    y = _global_avg_pool2d(x)
    return y.squeeze(0) if unbatched else y


def global_max_pool2d(input: Tensor, return_indices: bool = False):
    """Max over H and W: (N, C, H, W) -> (N, C) (and flat indices h*W + w)."""
    x, unbatched = _batched(input)
    y, idx = _global_max_pool2d(x)
    if unbatched:
        y, idx = y.squeeze(0), idx.squeeze(0)
    return (y, idx) if return_indices else y
