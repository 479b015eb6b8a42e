"""The compiled C++/OpenMP backend (convforge._core). Arguments arrive normalised and validated
by convforge.functional (see its docstring); the binding checks what memory safety needs
(shapes against buffers, dtypes), allocates outputs and releases the GIL around each kernel."""

from __future__ import annotations

from .. import _threads
from . import _autotune

# pool backward checks every index against [0, H*W) inside its scatter (functional skips its pass)
CHECKS_INDICES = True
# softmax_cross_entropy checks every int64 class id against [0, K) in its binding (one pass over
# the N ids, with functional's message; functional skips its pass)
CHECKS_LABELS = True
# the optimiser updates check every list entry (count, dtype, shape, C order, writeable) before
# they touch one, raising TypeError/ValueError: functional calls them first and runs its own
# checks (which name the argument) only when they refuse
CHECKS_OPTIM_LISTS = True


def probe():
    from .. import _core  # noqa: F401

    return None


_module = None   # convforge._core once imported (an import statement per op is not free)


def _core():
    """The compiled module, its thread count first fitted to the machine's load (every op
    comes through here; see convforge._threads.adapt)."""
    global _module
    if _module is None:
        from .. import _core as core

        _module = core
    _threads.adapt(_module)
    return _module


def _key(core, direction, x_shape, w_shape, dtype, stride, padding, dilation, groups):
    # the configured count, not the one the load allows now: a busy neighbour must not make
    # autotune re-time every layer (and under noise)
    return (direction, tuple(x_shape), tuple(w_shape), str(dtype), tuple(stride), tuple(padding),
            tuple(dilation), groups, _threads.configured_threads(core))


def _algo(core, direction, x_shape, w_shape, dtype, args, call):
    """The algorithm for one direction: "auto" (the core decides: csrc/conv/select.cpp) unless
    autotuning is on (see _autotune). Exact mode outranks autotuning: Winograd is the forward
    and data directions' only inexact algorithm, and the winners are not keyed by the mode."""
    if not _autotune.autotune_enabled() or (direction != "weight" and core.conv_exact()):
        return "auto"  # no key to build: this runs on every call
    key = _key(core, direction, x_shape, w_shape, dtype, *args)
    return _autotune.pick(
        key, lambda: core.conv2d_algorithms(x_shape, w_shape, *args, str(dtype), direction),
        call)


def conv2d(x, w, b, stride, padding, dilation, groups, relu=False):
    core, args = _core(), (stride, padding, dilation, groups)
    algo = _algo(core, "forward", x.shape, w.shape, x.dtype, args,
                 lambda a: core.conv2d_forward(x, w, b, *args, algo=a))
    return core.conv2d_forward(x, w, b, *args, algo=algo,
                               activation="relu" if relu else "linear")


def conv2d_backward(dy, x, w, stride, padding, dilation, groups, bias, need_dx=True,
                    need_dw=True):
    # dx, dw and db in one binding call (one GIL release); algorithms from the heuristic, or
    # the autotuned winners of each direction.
    core, args = _core(), (stride, padding, dilation, groups)
    data_algo = weight_algo = "auto"
    if need_dx:
        data_algo = _algo(core, "data", x.shape, w.shape, x.dtype, args,
                          lambda a: core.conv2d_backward_data(dy, w, x.shape, *args, algo=a))
    if need_dw:
        weight_algo = _algo(core, "weight", x.shape, w.shape, x.dtype, args,
                            lambda a: core.conv2d_backward_weight(dy, x, w.shape, *args, bias,
                                                                  algo=a))
    return core.conv2d_backward(dy, x, w, *args, bias, data_algo=data_algo,
                                weight_algo=weight_algo, need_dx=need_dx, need_dw=need_dw)


def im2col(x, kernel_size, stride, padding, dilation):
    return _core().im2col(x, kernel_size, stride, padding, dilation)


def col2im(cols, input_shape, kernel_size, stride, padding, dilation):
    return _core().col2im(cols, input_shape, kernel_size, stride, padding, dilation)


def pool2d(x, mode, kernel_size, stride, padding, out_size, count_include_pad):
    return _core().pool2d_forward(x, mode, kernel_size, stride, padding, out_size,
                                  count_include_pad)


def pool2d_backward(dy, indices, input_shape, mode, kernel_size, stride, padding,
                    count_include_pad, relu_y=None):
    return _core().pool2d_backward(dy, indices, input_shape, mode, kernel_size, stride, padding,
                                   count_include_pad, relu_y=relu_y)


def global_pool2d(x, mode):
    return _core().global_pool2d_forward(x, mode)


def global_pool2d_backward(dy, indices, input_shape, mode):
    return _core().global_pool2d_backward(dy, indices, input_shape, mode)


def batch_norm_stats(x):
    return _core().batch_norm_stats(x)


def batch_norm(x, mean, inv_std, gamma, beta, relu):
    return _core().batch_norm_forward(x, mean, inv_std, gamma, beta, relu)


def batch_norm_backward(dy, x, mean, inv_std, gamma, beta, relu, batch_stats, need_dx):
    return _core().batch_norm_backward(dy, x, mean, inv_std, gamma, beta, relu, batch_stats,
                                       need_dx, True)


def dropout(x, seed, threshold, scale):
    return _core().dropout(x, seed, threshold, scale)


def activation(x, kind):
    if kind == "tanh":
        # NumPy's SIMD tanh loop: 0.2 ms per 1M float32 values here against 10-15 ms for the
        # C library's scalar tanhf / expm1f in the core (a vectorised exp is future work).
        from . import _xp_activation

        return _xp_activation.activation(x, kind)
    return _core().activation(x, kind)


def activation_backward(dy, y, kind):
    return _core().activation_backward(dy, y, kind)



def softmax_cross_entropy(logits, labels, label_smoothing, reduction):
    return _core().softmax_cross_entropy(logits, labels, label_smoothing, reduction)


# optimiser updates: lists of arrays of one dtype, updated in place in one kernel call each

def sgd_update(params, grads, bufs, lr, momentum, nesterov, weight_decay, first_step):
    _core().sgd_update(params, grads, bufs, lr, momentum, nesterov, weight_decay, first_step)


def adam_update(params, grads, m, v, v_max, step_size, sqrt_bc2, beta_1, beta_2, epsilon,
                weight_decay, decay):
    _core().adam_update(params, grads, m, v, v_max, step_size, sqrt_bc2, beta_1, beta_2, epsilon,
                        weight_decay, decay)


def rmsprop_update(params, grads, square_avg, grad_avg, bufs, lr, rho, epsilon, momentum,
                   weight_decay):
    _core().rmsprop_update(params, grads, square_avg, grad_avg, bufs, lr, rho, epsilon, momentum,
                           weight_decay)
