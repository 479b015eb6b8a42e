"""The two places the CUDA backend's tests run it, behind one interface of functional-style ops.

- `GpuOps`: a CUDA GPU through CuPy; ops go through convforge.functional with backend="cuda"
  on CuPy arrays (so functional's dispatch to the backend is tested too).
- `EmuOps`: the CPU emulator (cuda_emu.EmuDevice installed with backends.cuda.use_device);
  NumPy device arrays cannot pass functional's CuPy dispatch, so the arguments are normalised
  with functional's own helpers and the backend module is called directly: its grid/block math,
  argument packing and output allocation run unmodified.

Both: dev(a) puts a host array on the device, host(a) brings a result back (checking its kind);
conv2d, conv2d_backward, im2col, col2im as in convforge.functional (conv2d also takes
algo='tiled' | 'naive'); pool(mode, x, ...) -> (y, indices or None) and
pool_backward(mode, dy, x_or_shape, ..., indices=None) for mode 'max' | 'min' | 'avg';
global_pool(mode, x) -> (y, indices or None); global_pool_backward(mode, dy, x_or_shape,
indices=None).
"""

from __future__ import annotations

import numpy as np

import convforge.functional as F
from convforge._shapes import pair
from convforge.backends import cuda
from convforge.functional.conv import _conv_args  # the normalisation the public ops apply
from convforge.functional.pool import _pool_args


class GpuOps:
    name = "gpu"

    def __init__(self):
        import cupy

        self.cp = cupy

    def dev(self, a):
        return self.cp.asarray(a)

    def host(self, a):
        assert isinstance(a, self.cp.ndarray), f"expected a CuPy array, got {type(a).__name__}"
        return self.cp.asnumpy(a)

    def conv2d(self, x, w, b=None, stride=1, padding=0, dilation=1, groups=1, algo="auto"):
        if algo == "auto":
            return F.conv2d(x, w, b, stride, padding, dilation, groups, backend="cuda")
        norm = _conv_args(x.shape, w.shape, stride, padding, dilation, groups)[:4]
        return cuda.conv2d(x, w, b, *norm, algo=algo)

    def conv2d_backward(self, dy, x, w, stride=1, padding=0, dilation=1, groups=1, bias=True):
        return F.conv2d_backward(dy, x, w, stride, padding, dilation, groups, bias,
                                 backend="cuda")

    def im2col(self, x, kernel_size, stride=1, padding=0, dilation=1):
        return F.im2col(x, kernel_size, stride, padding, dilation, backend="cuda")

    def col2im(self, cols, input_shape, kernel_size, stride=1, padding=0, dilation=1):
        return F.col2im(cols, input_shape, kernel_size, stride, padding, dilation,
                        backend="cuda")

    def pool(self, mode, x, kernel_size, stride=None, padding=0, ceil_mode=False,
             count_include_pad=True):
        if mode == "avg":
            return F.avg_pool2d(x, kernel_size, stride, padding, ceil_mode, count_include_pad,
                                backend="cuda"), None
        fwd = F.max_pool2d if mode == "max" else F.min_pool2d
        return fwd(x, kernel_size, stride, padding, ceil_mode, return_indices=True,
                   backend="cuda")

    def pool_backward(self, mode, dy, x, kernel_size, stride=None, padding=0, ceil_mode=False,
                      count_include_pad=True, indices=None):
        if mode == "avg":
            return F.avg_pool2d_backward(dy, x, kernel_size, stride, padding, ceil_mode,
                                         count_include_pad, backend="cuda")
        bwd = F.max_pool2d_backward if mode == "max" else F.min_pool2d_backward
        return bwd(dy, x, kernel_size, stride, padding, ceil_mode, indices=indices,
                   backend="cuda")

    def global_pool(self, mode, x):
        if mode == "avg":
            return F.global_avg_pool2d(x, backend="cuda"), None
        return F.global_max_pool2d(x, return_indices=True, backend="cuda")

    def global_pool_backward(self, mode, dy, x, indices=None):
        if mode == "avg":
            return F.global_avg_pool2d_backward(dy, x, backend="cuda")
        return F.global_max_pool2d_backward(dy, x, indices=indices, backend="cuda")


def _shape(x) -> tuple[int, ...]:
    return tuple(int(s) for s in (x.shape if hasattr(x, "shape") else x))


class EmuOps:
    name = "emu"

    def __init__(self, device):
        self.device = device   # a cuda_emu.EmuDevice, installed by the caller

    def dev(self, a):
        return self.device.asarray(a)

    def host(self, a):
        assert isinstance(a, np.ndarray), f"expected a device array, got {type(a).__name__}"
        return np.array(a)   # a copy: the device array's guard zones stay behind

    def conv2d(self, x, w, b=None, stride=1, padding=0, dilation=1, groups=1, algo="auto"):
        norm = _conv_args(x.shape, w.shape, stride, padding, dilation, groups)[:4]
        return cuda.conv2d(x, w, b, *norm, algo=algo)

    def conv2d_backward(self, dy, x, w, stride=1, padding=0, dilation=1, groups=1, bias=True):
        norm = _conv_args(x.shape, w.shape, stride, padding, dilation, groups)[:4]
        return cuda.conv2d_backward(dy, x, w, *norm, bias)

    def _unfold(self, shape, kernel_size, stride, padding, dilation):
        ks = pair(kernel_size, "kernel_size")
        st, pad4, dil = _conv_args(shape, (1, shape[1]) + ks, stride, padding, dilation, 1)[:3]
        return ks, st, pad4, dil

    def im2col(self, x, kernel_size, stride=1, padding=0, dilation=1):
        return cuda.im2col(x, *self._unfold(x.shape, kernel_size, stride, padding, dilation))

    def col2im(self, cols, input_shape, kernel_size, stride=1, padding=0, dilation=1):
        shape = _shape(input_shape)
        return cuda.col2im(cols, shape, *self._unfold(shape, kernel_size, stride, padding,
                                                      dilation))

    def pool(self, mode, x, kernel_size, stride=None, padding=0, ceil_mode=False,
             count_include_pad=True):
        ks, st, pad, out = _pool_args(x.shape, kernel_size, stride, padding, ceil_mode)
        return cuda.pool2d(x, mode, ks, st, pad, out, count_include_pad)

    def pool_backward(self, mode, dy, x, kernel_size, stride=None, padding=0, ceil_mode=False,
                      count_include_pad=True, indices=None):
        ks, st, pad, out = _pool_args(_shape(x), kernel_size, stride, padding, ceil_mode)
        if mode != "avg" and indices is None:   # as functional does: recompute them
            indices = cuda.pool2d(x, mode, ks, st, pad, out, False)[1]
        return cuda.pool2d_backward(dy, indices, _shape(x), mode, ks, st, pad,
                                    count_include_pad)

    def global_pool(self, mode, x):
        return cuda.global_pool2d(x, mode)

    def global_pool_backward(self, mode, dy, x, indices=None):
        if mode == "max" and indices is None:
            indices = cuda.global_pool2d(x, mode)[1]
        return cuda.global_pool2d_backward(dy, indices, _shape(x), mode)
