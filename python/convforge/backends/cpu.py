"""The compiled C++/OpenMP backend (convforge._core). Arguments arrive normalised; the binding
re-validates shapes and dtypes, allocates outputs and releases the GIL around each kernel."""

from __future__ import annotations


def probe():
    from .. import _core  # noqa: F401

    return None


def _core():
    from .. import _core

    return _core


def conv2d(x, w, b, stride, padding, dilation, groups):
    return _core().conv2d_forward(x, w, b, stride, padding, dilation, groups)


def conv2d_backward(dy, x, w, stride, padding, dilation, groups, bias):
    # dx, dw and db in one binding call (one GIL release); algorithms from the heuristic.
    return _core().conv2d_backward(dy, x, w, stride, padding, dilation, groups, bias)


def im2col(x, kernel_size, stride, padding, dilation):
    return _core().im2col(x, kernel_size, stride, padding, dilation)


def col2im(cols, input_shape, kernel_size, stride, padding, dilation):
    return _core().col2im(cols, input_shape, kernel_size, stride, padding, dilation)


def pool2d(x, mode, kernel_size, stride, padding, out_size, count_include_pad):
    return _core().pool2d_forward(x, mode, kernel_size, stride, padding, out_size,
                                  count_include_pad)


def pool2d_backward(dy, indices, input_shape, mode, kernel_size, stride, padding,
                    count_include_pad):
    return _core().pool2d_backward(dy, indices, input_shape, mode, kernel_size, stride, padding,
                                   count_include_pad)


def global_pool2d(x, mode):
    return _core().global_pool2d_forward(x, mode)


def global_pool2d_backward(dy, indices, input_shape, mode):
    return _core().global_pool2d_backward(dy, indices, input_shape, mode)
