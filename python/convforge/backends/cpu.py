"""The compiled C++/OpenMP backend (convforge._core). Arguments arrive normalised; the binding
re-validates shapes and dtypes, allocates outputs and releases the GIL around each kernel."""

from __future__ import annotations

from . import _autotune

# pool backward checks that every index lies in [0, H*W) itself (functional skips its pass)
CHECKS_INDICES = True


def probe():
    from .. import _core  # noqa: F401

    return None


def _core():
    from .. import _core

    return _core


def _key(direction, x_shape, w_shape, dtype, stride, padding, dilation, groups):
    core = _core()
    return (direction, tuple(x_shape), tuple(w_shape), str(dtype), tuple(stride), tuple(padding),
            tuple(dilation), groups, core.get_num_threads())


def _algo(direction, x_shape, w_shape, dtype, args, call):
    """The algorithm for one direction: "auto" unless autotuning is on (see _autotune)."""
    if not _autotune.autotune_enabled():
        return "auto"  # no key to build: this runs on every call
    key = _key(direction, x_shape, w_shape, dtype, *args)
    return _autotune.pick(
        key, lambda: _core().conv2d_algorithms(x_shape, w_shape, *args, str(dtype), direction),
        call)


def conv2d(x, w, b, stride, padding, dilation, groups):
    core, args = _core(), (stride, padding, dilation, groups)
    algo = _algo("forward", x.shape, w.shape, x.dtype, args,
                 lambda a: core.conv2d_forward(x, w, b, *args, algo=a))
    return core.conv2d_forward(x, w, b, *args, algo=algo)


def conv2d_backward(dy, x, w, stride, padding, dilation, groups, bias):
    # dx, dw and db in one binding call (one GIL release); algorithms from the heuristic, or
    # the autotuned winners of each direction.
    core, args = _core(), (stride, padding, dilation, groups)
    data_algo = _algo("data", x.shape, w.shape, x.dtype, args,
                      lambda a: core.conv2d_backward_data(dy, w, x.shape, *args, algo=a))
    weight_algo = _algo("weight", x.shape, w.shape, x.dtype, args,
                        lambda a: core.conv2d_backward_weight(dy, x, w.shape, *args, bias,
                                                              algo=a))
    return core.conv2d_backward(dy, x, w, *args, bias, data_algo=data_algo,
                                weight_algo=weight_algo)


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
