"""The numba backend: the registry's signature set on NumPy arrays, run by the @njit(parallel)
kernels of `_numba_kernels` (compiled on first use per dtype, cached on disk when writable).

Arguments arrive normalised and validated by convforge.functional (see its docstring and the
registry's, convforge.backends): NumPy arrays of one float dtype with consistent shapes, tuples
of ints. This backend trusts them and does not check them again. It only makes every array
C-contiguous and writeable (so each kernel compiles once per dtype), allocates the outputs and
calls the kernel. The kernels write only inside the outputs allocated here, at coordinates
bounded by those outputs' own shapes, with one exception: the max/min pool backward scatters dy
to offsets read from `indices`. Those indices are the one thing checked here
(_checked_indices: dtype, shape and range), because a wrong one would write outside dx and
functional leaves the range check to this backend (CHECKS_INDICES).
numba is imported lazily: probe() tries it, the kernels load on the first op. Results do not
depend on numba's thread count (see _numba_kernels).
Starting numba's threads never changes torch's thread count: numba's OpenMP layer sets the
OpenMP runtime's count, which torch (sharing libgomp) reads as its own; convforge restores
torch's around the moment numba starts (_keeping_torch_threads).
"""

from __future__ import annotations

import contextlib
import os
import sys
from types import ModuleType, SimpleNamespace

import numpy as np

from .. import _threads
from .._shapes import conv_output_size

# Images unfolded at once by conv2d (cols buffer of about this many elements, >= 1 image).
_COLS_ELEMENTS = 1 << 22
# dx by the panel forward (stride 1) from this many input channels per group: below, its GEMM
# has too few rows for the panel packing to pay (measured slower at 1, 3 and 6 channels).
_DX_PANEL_MIN_CHANNELS = 8
# dw by the packed-panel kernel from this many output channels per group (its panels are
# NB = 128 channels wide, partly padding below that). Measured: slower than the naive tiles at
# 6 and 16 channels; faster at 64, even of 3 inputs, where the GEMM is a single task.
_DW_PANEL_MIN_CHANNELS = 32
_MODES = {"avg": 0, "max": 1, "min": 2}
# softmax_cross_entropy below this many logits runs the serial kernel: starting numba's parallel
# loop costs tens of microseconds, more than a LeNet-sized (64, 10) batch takes.
_XENT_PARALLEL_MIN = 1 << 14
# Elements per block of the optimiser kernels' prange (the C++ kernels' kBlock).
_OPTIM_BLOCK = 1 << 15


# pool backward checks that every index lies in [0, H*W) itself, with one NumPy min/max pass
# (_checked_indices; the kernel needs it for memory safety), so functional does not do it too
CHECKS_INDICES = True


def probe() -> str | None:
    """None when numba imports, else the reason it does not."""
    try:
        import numba  # noqa: F401
    except Exception as e:  # noqa: BLE001 - any import failure means: not available
        return f"numba cannot be imported: {type(e).__name__}: {e}"
    return None


_loaded: ModuleType | None = None


def _choose_fork_safe_layer(numba: ModuleType) -> None:
    """Ask numba for a fork-safe threading layer (tbb when installed, else workqueue) unless the
    user chose one (NUMBA_THREADING_LAYER or numba.config.THREADING_LAYER) or numba already
    started its threads. Numba's default prefers the GNU OpenMP layer, which terminates any
    fork() child that runs a parallel kernel ("fork() called from a process already using GNU
    OpenMP"), so multiprocessing's fork workers never return. The kernels hold the GIL, so two
    Python threads never run them at once: workqueue's lack of thread safety does not matter.
    The choice is process-wide: it also applies to the user's own parallel numba code."""
    from numba.np.ufunc import parallel

    if ("NUMBA_THREADING_LAYER" not in os.environ and numba.config.THREADING_LAYER == "default"
            and not parallel._is_initialized):
        numba.config.THREADING_LAYER = "forksafe"


@contextlib.contextmanager
def _keeping_torch_threads():
    """Restores torch's thread count if numba changed it inside the block.

    numba's OpenMP threading layer (the user's NUMBA_THREADING_LAYER=omp, or numba's choice
    with Intel OpenMP, where "forksafe" can mean omp) calls omp_set_num_threads when it starts
    its threads. libgomp is loaded once per soname, so torch and numba then share one runtime,
    and torch.get_num_threads() (omp_get_max_threads) jumped from the user's 1 to numba's
    count: torch's conv then ran on threads competing with convforge's (issue #16 item 4).
    convforge never changes another library's settings, so whatever numba does while convforge
    starts it is undone for torch. Only when torch is already imported (if it is imported
    later it reads its own count then); numba's own count is convforge's to set."""
    torch = sys.modules.get("torch")
    get = getattr(torch, "get_num_threads", None)
    if get is None:
        yield
        return
    before = get()
    try:
        yield
    finally:
        if get() != before:
            torch.set_num_threads(before)


def set_num_threads(n: int) -> None:
    """numba's thread count (capped by NUMBA_NUM_THREADS); picks the threading layer first, as
    numba starts its threads on the first set_num_threads (without changing torch's count)."""
    import numba

    _choose_fork_safe_layer(numba)
    with _keeping_torch_threads():
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))


# In a fork() child whose parent had started numba's GNU OpenMP layer (the user chose it, or ran
# parallel numba code before convforge's kernels loaded; see convforge._threads) every parallel
# kernel would end the process, so the kernels run as serial compilations of the same functions.
_serial: SimpleNamespace | None = None
_KERNEL_NAMES = ("im2col", "col2im", "conv2d_forward", "conv2d_backward", "conv2d_forward_panels",
                 "conv2d_backward_weight_panels", "pool2d_forward", "pool2d_backward",
                 "bn_stats_sums", "bn_forward", "bn_backward_sums", "bn_backward_dx",
                 "dropout_apply", "activation_forward", "activation_backward", "softmax_xent",
                 "softmax_xent_serial", "sgd_update", "adam_update",
                 "rmsprop_update")


def _serial_kernels(parallel_kernels: ModuleType) -> SimpleNamespace:
    """The kernels compiled without parallel=True (prange runs as range: same loops, same order,
    same results), once per process on first use."""
    global _serial
    if _serial is None:
        import numba

        jit = numba.njit(**parallel_kernels._FLAGS)
        _serial = SimpleNamespace(ACTIVATION_CODES=parallel_kernels.ACTIVATION_CODES,
                                  **{name: jit(getattr(parallel_kernels, name).py_func)
                                     for name in _KERNEL_NAMES})
    return _serial


def _kernels():
    """The kernels module. On first load: a fork-safe threading layer, and convforge's thread
    count (set_num_threads, else its default unless NUMBA_NUM_THREADS is set)."""
    global _loaded
    if _loaded is None:
        import numba

        from .. import _requested_threads

        _choose_fork_safe_layer(numba)
        from . import _numba_kernels

        n = _requested_threads
        if n is None and "NUMBA_NUM_THREADS" not in os.environ:
            n = _threads.state["default_num_threads"] or _threads.default_num_threads()
        if n is not None:
            set_num_threads(n)
        else:  # numba starts its threads now (get_num_threads does), not in a first kernel
            with _keeping_torch_threads():
                numba.get_num_threads()
        _loaded = _numba_kernels
    if _threads.state["numba_omp_inherited"]:
        return _serial_kernels(_loaded)
    return _loaded


def _c(a: np.ndarray) -> np.ndarray:
    """a itself if C-contiguous and writeable, else a C-contiguous copy (one compiled kernel per
    dtype: numba would compile again for other layouts and for read-only arrays)."""
    if a.flags.c_contiguous and a.flags.writeable:
        return a
    return np.array(a, order="C", copy=True)


def _checked_indices(indices, dy: np.ndarray, input_shape) -> np.ndarray:
    """The max/min pool backward's indices, checked for memory safety: the kernel reads one
    int64 index per dy element and adds dy there in its (H, W) plane of dx, so the indices must
    be int64, have dy's shape and lie in [0, H*W). This is the only check of this backend (see
    the module docstring)."""
    if not isinstance(indices, np.ndarray) or indices.dtype != np.int64:
        raise TypeError(f"indices must be an int64 numpy.ndarray, got {type(indices).__name__} "
                        f"{getattr(indices, 'dtype', '')}")
    if indices.shape != dy.shape:
        raise ValueError(f"indices must have the shape of dy {dy.shape}, got {indices.shape}")
    plane = int(input_shape[2]) * int(input_shape[3])
    lo, hi = int(indices.min()), int(indices.max())
    if lo < 0 or hi >= plane:
        raise ValueError(f"indices must lie in [0, H*W) = [0, {plane}), got values in "
                         f"[{lo}, {hi}]")
    return _c(indices)


def _mode(mode: str, allowed: tuple) -> int:
    """The kernels' code for `mode` (the registry's names; ValueError for another)."""
    if mode not in allowed:
        raise ValueError(f"mode must be one of {allowed}, got {mode!r}")
    return _MODES[mode]


def _chunk(n: int, unfolded_per_image: int) -> int:
    """Images unfolded at once: as many as fit in _COLS_ELEMENTS, at least 1, at most n."""
    return max(1, min(n, _COLS_ELEMENTS // max(1, unfolded_per_image)))


# --------------------------------------------------------------------------- convolution

def _forward(y, x, w, bias, stride, pad_top, pad_left, dilation, groups, naive=False):
    """y = conv(x, w) + bias into y (its shape sets OH, OW): the packed-panel GEMM kernel, or
    with naive=True the naive tiles (kept as the second reference the tests compare with)."""
    k, cg, kh, kw = w.shape
    n, oh, ow = x.shape[0], y.shape[2], y.shape[3]
    if naive:
        m = _chunk(n, x.shape[1] * kh * kw * oh * ow)
        _kernels().conv2d_forward(y, x, w, bias, stride[0], stride[1], pad_top, pad_left,
                                  dilation[0], dilation[1], int(groups), m)
    else:
        _kernels().conv2d_forward_panels(y, x, w, bias, stride[0], stride[1], pad_top, pad_left,
                                         dilation[0], dilation[1], int(groups))


def conv2d(x, w, b, stride, padding, dilation, groups, relu=False, naive=False):
    """x (N, C, H, W), w (K, C/G, KH, KW), b (K,) or None -> y (N, K, OH, OW).
    naive=True: the naive tile kernels (a second reference for tests)."""
    x, w = _c(x), _c(w)
    dtype = x.dtype
    n, k, kh, kw = x.shape[0], w.shape[0], w.shape[2], w.shape[3]
    oh, ow = conv_output_size(x.shape[2:], (kh, kw), stride, padding, dilation)
    bias = np.zeros(k, dtype) if b is None else _c(b)
    y = np.empty((n, k, oh, ow), dtype)
    _forward(y, x, w, bias, stride, padding[0], padding[2], dilation, groups, naive)
    if relu:  # a pass after the kernels: the fused epilogue is the cpu backend's
        k = _kernels()
        k.activation_forward(y.reshape(-1), y.reshape(-1), k.ACTIVATION_CODES["relu"],
                             dtype.type(1))
    return y


def _flipped_transposed(w: np.ndarray, groups: int) -> np.ndarray:
    """w (K, C/G, KH, KW) -> (C, K/G, KH, KW): per group in and out channels swapped and the
    taps flipped, the weights of the stride-1 transposed convolution that gives dx."""
    k, cg, kh, kw = w.shape
    wg = w.reshape(groups, k // groups, cg, kh, kw)[:, :, :, ::-1, ::-1]
    return np.ascontiguousarray(wg.transpose(0, 2, 1, 3, 4)).reshape(groups * cg, k // groups,
                                                                      kh, kw)


def conv2d_backward(dy, x, w, stride, padding, dilation, groups, bias, need_dx=True,
                    need_dw=True, naive=False):
    """Gradients of conv2d: (dx (N, C, H, W), dw (K, C/G, KH, KW), db (K,) or None); a
    gradient not needed (need_dx / need_dw false) is not computed and is None.

    dx at stride 1 from _DX_PANEL_MIN_CHANNELS input channels per group is the panel forward
    conv of dy with _flipped_transposed(w), padded so that its output has x's size (negative
    padding crops); dw by the weight-gradient panel kernel from _DW_PANEL_MIN_CHANNELS output
    channels per group. The other cases (dx at stride > 1 or with fewer channels, dw with fewer
    channels, everything with naive=True) use the naive tile kernel. The choice depends on the
    shapes only, never on the thread count.
    """
    dy, x, w = _c(dy), _c(x), _c(w)
    dtype = x.dtype
    k, cg, kh, kw = w.shape
    n, c = x.shape[:2]
    oh, ow = dy.shape[2], dy.shape[3]
    g = int(groups)
    dx = np.empty(x.shape, dtype)
    dw = np.empty(w.shape, dtype)
    m = _chunk(n, c * kh * kw * oh * ow)
    dx_panels = not naive and tuple(stride) == (1, 1) and cg >= _DX_PANEL_MIN_CHANNELS
    dw_panels = not naive and k // g >= _DW_PANEL_MIN_CHANNELS
    dx_naive, dw_naive = need_dx and not dx_panels, need_dw and not dw_panels
    dx_panels, dw_panels = need_dx and dx_panels, need_dw and dw_panels
    nk = _kernels()
    if dx_panels:
        pad = (dilation[0] * (kh - 1) - padding[0], dilation[1] * (kw - 1) - padding[2])
        _forward(dx, dy, _flipped_transposed(w, g), np.zeros(c, dtype), (1, 1), pad[0],
                 pad[1], dilation, g)
    if dw_panels:
        nk.conv2d_backward_weight_panels(dw, dy, x, stride[0], stride[1], padding[0], padding[2],
                                         dilation[0], dilation[1], g, m)
    if dx_naive or dw_naive:
        nk.conv2d_backward(dx, dw, dy, x, w, stride[0], stride[1], padding[0], padding[2],
                           dilation[0], dilation[1], g, m, dx_naive, dw_naive)
    # db: float64 sum in NumPy's fixed order, like the reference.
    db = dy.sum(axis=(0, 2, 3), dtype=np.float64).astype(dtype) if bias and need_dw else None
    return (dx if need_dx else None), (dw if need_dw else None), db


def im2col(x, kernel_size, stride, padding, dilation):
    """x (N, C, H, W) -> cols (N, C*KH*KW, OH*OW), zeros where a tap falls in the padding."""
    x = _c(x)
    (n, c, h, w), (kh, kw) = x.shape, kernel_size
    oh, ow = conv_output_size((h, w), (kh, kw), stride, padding, dilation)
    cols = np.empty((n, c * kh * kw, oh * ow), x.dtype)
    _kernels().im2col(cols, x, kh, kw, stride[0], stride[1], padding[0], padding[2],
                      dilation[0], dilation[1], oh, ow)
    return cols


def col2im(cols, input_shape, kernel_size, stride, padding, dilation):
    """Adjoint of im2col: cols (N, C*KH*KW, OH*OW) -> x (N, C, H, W), overlaps summed."""
    cols = _c(cols)
    (n, c, h, w), (kh, kw) = tuple(input_shape), kernel_size
    oh, ow = conv_output_size((h, w), (kh, kw), stride, padding, dilation)
    x = np.empty((n, c, h, w), cols.dtype)
    _kernels().col2im(x, cols, kh, kw, stride[0], stride[1], padding[0], padding[2],
                      dilation[0], dilation[1], oh, ow)
    return x


# --------------------------------------------------------------------------- pooling

def pool2d(x, mode, kernel_size, stride, padding, out_size, count_include_pad):
    """x (N, C, H, W) -> (y (N, C, OH, OW), indices int64 (N, C, OH, OW) or None for 'avg')."""
    x = _c(x)
    code = _mode(mode, ("max", "min", "avg"))
    n, c = x.shape[:2]
    oh, ow = out_size
    y = np.empty((n, c, oh, ow), x.dtype)
    idx = np.empty((0, 0, 0, 0) if mode == "avg" else (n, c, oh, ow), np.int64)
    _kernels().pool2d_forward(y, idx, x, code, kernel_size[0], kernel_size[1], stride[0],
                              stride[1], padding[0], padding[1], bool(count_include_pad))
    return y, (None if mode == "avg" else idx)


def pool2d_backward(dy, indices, input_shape, mode, kernel_size, stride, padding,
                    count_include_pad, relu_y=None):
    """dx (N, C, H, W) of pool2d. indices: the forward's (max/min), ignored for 'avg'. relu_y:
    dy is masked by relu_y > 0 first (what the cpu backend fuses into its scatter)."""
    dy = _c(dy) if relu_y is None else np.where(relu_y > 0, dy, dy.dtype.type(0))
    code = _mode(mode, ("max", "min", "avg"))
    if mode == "avg":
        indices = np.empty((0, 0, 0, 0), np.int64)
    else:
        indices = _checked_indices(indices, dy, input_shape)
    dx = np.empty(tuple(input_shape), dy.dtype)
    _kernels().pool2d_backward(dx, dy, indices, code, kernel_size[0], kernel_size[1], stride[0],
                               stride[1], padding[0], padding[1], bool(count_include_pad))
    return dx


def global_pool2d(x, mode):
    """x (N, C, H, W) -> (y (N, C), indices (N, C) int64 or None): one window per plane."""
    _mode(mode, ("max", "avg"))
    n, c, h, w = x.shape
    y, idx = pool2d(x, mode, (h, w), (1, 1), (0, 0), (1, 1), True)
    return y.reshape(n, c), (None if idx is None else idx.reshape(n, c))


def global_pool2d_backward(dy, indices, input_shape, mode):
    """dx (N, C, H, W) of global_pool2d."""
    _mode(mode, ("max", "avg"))
    n, c, h, w = tuple(input_shape)
    dy4 = _c(dy).reshape(n, c, 1, 1)
    idx4 = None if mode == "avg" else indices.reshape(n, c, 1, 1)  # checked by pool2d_backward
    return pool2d_backward(dy4, idx4, (n, c, h, w), mode, (h, w), (1, 1), (0, 0), True)


# --------------------------------------------------------------------------- batch normalisation
# x (N, C, HW); mean, inv_std float64 (C,); gamma, beta (C,) or None (see _numba_norm).

def batch_norm_stats(x):
    x = _c(x)
    n, c, hw = x.shape
    s1, s2 = np.empty((n, c)), np.empty((n, c))
    _kernels().bn_stats_sums(s1, s2, x)
    t1, t2 = s1.sum(axis=0), s2.sum(axis=0)
    dm = t1 / (n * hw)
    return x[0, :, 0].astype(np.float64) + dm, np.maximum(t2 / (n * hw) - dm * dm, 0.0)


def _affine(x, mean, inv_std, gamma, beta):
    """The forward's (m, s, b) (C,) in x's dtype: pre = (x - m) * s + b."""
    g = np.ones(x.shape[1]) if gamma is None else gamma.astype(np.float64)
    b = np.zeros(x.shape[1], x.dtype) if beta is None else _c(beta)
    return mean.astype(x.dtype), (g * inv_std).astype(x.dtype), b, g


def batch_norm(x, mean, inv_std, gamma, beta, relu):
    x = _c(x)
    m, s, b, _ = _affine(x, mean, inv_std, gamma, beta)
    y = np.empty_like(x)
    _kernels().bn_forward(y, x, m, s, b, relu)
    return y


def batch_norm_backward(dy, x, mean, inv_std, gamma, beta, relu, batch_stats, need_dx):
    x, dy = _c(x), _c(dy)
    n, c, hw = x.shape
    m, s, b, g = _affine(x, mean, inv_std, gamma, beta)
    pg, pb = np.empty((n, c)), np.empty((n, c))
    k = _kernels()
    k.bn_backward_sums(pg, pb, dy, x, _c(mean), m, s, b, relu)
    sg, sb = pg.sum(axis=0), pb.sum(axis=0)
    if not need_dx:
        return None, sg * inv_std, sb
    k1 = (g * inv_std).astype(x.dtype)
    k2 = (inv_std * inv_std * sg / (n * hw)).astype(x.dtype)
    k3 = (sb / (n * hw)).astype(x.dtype)
    dx = np.empty_like(x)
    k.bn_backward_dx(dx, dy, x, m, s, b, k1, k2, k3, relu, batch_stats)
    return dx, sg * inv_std, sb


def dropout(x, seed, threshold, scale):
    x = _c(x)
    y = np.empty_like(x)
    _kernels().dropout_apply(y.reshape(-1), x.reshape(-1), np.uint32(seed & 0xFFFFFFFF),
                             np.uint32(seed >> 32), np.uint32(threshold), x.dtype.type(scale))
    return y


def activation(x, kind):
    if kind == "tanh":   # NumPy's SIMD tanh is 80x faster than the kernel's scalar np.tanh
        from . import _xp_activation

        return _xp_activation.activation(x, kind)
    x, k = _c(x), _kernels()
    y = np.empty_like(x)
    k.activation_forward(y.reshape(-1), x.reshape(-1), k.ACTIVATION_CODES[kind], x.dtype.type(1))
    return y


def activation_backward(dy, y, kind):
    dy, y, k = _c(dy), _c(y), _kernels()
    dx = np.empty_like(dy)
    k.activation_backward(dx.reshape(-1), dy.reshape(-1), y.reshape(-1),
                          k.ACTIVATION_CODES[kind], dy.dtype.type(1))
    return dx



# --------------------------------------------------------------------------- losses

def softmax_cross_entropy(logits, labels, label_smoothing, reduction):
    """(loss, dlogits): int64 labels (N,) (range checked by functional; an id out of range would
    give its row NaN, never a read outside it) or soft labels (N, K); see _numba_loss. Below
    _XENT_PARALLEL_MIN logits the serial kernel (same rows, same bits)."""
    logits = _c(logits)
    n, k = logits.shape
    hard = labels.ndim == 1
    ids = _c(labels) if hard else np.empty(0, np.int64)
    target = np.empty((0, 0), logits.dtype) if hard else _c(labels)
    rows, total = np.empty(n), np.empty(1)
    dlogits = np.empty_like(logits)
    scale = 1.0 / n if reduction == "mean" and n > 0 else 1.0
    k_mod = _kernels()
    kernel = k_mod.softmax_xent if n * k >= _XENT_PARALLEL_MIN else k_mod.softmax_xent_serial
    kernel(rows, total, dlogits, logits, ids, target, hard, float(label_smoothing), scale)
    if reduction == "none":
        return rows.astype(logits.dtype), dlogits
    value = total[0] if reduction == "sum" else (total[0] / n if n > 0 else np.nan)
    return np.asarray(value, logits.dtype), dlogits
# --------------------------------------------------------------------------- optimiser updates
# Lists of arrays of one dtype, updated in place by one kernel call each (see _numba_optim).

def _flat_list(arrays):
    """A typed list of the arrays' flat views (they are C-contiguous: views, no copies)."""
    from numba.typed import List

    return List([a.reshape(-1) for a in arrays])


def _optim_blocks(sizes) -> np.ndarray:
    """The optimiser kernels' block table (B, 3) int64: rows (tensor, begin, end) cutting each
    tensor of `sizes` elements into pieces of at most _OPTIM_BLOCK (none for a zero-size one)."""
    sizes = np.asarray(sizes, np.int64)
    nb = (sizes + _OPTIM_BLOCK - 1) // _OPTIM_BLOCK
    tensor = np.repeat(np.arange(sizes.size, dtype=np.int64), nb)
    first = np.repeat(np.cumsum(nb) - nb, nb)          # each block's tensor's first block
    begin = (np.arange(int(nb.sum()), dtype=np.int64) - first) * _OPTIM_BLOCK
    return np.stack([tensor, begin, np.minimum(begin + _OPTIM_BLOCK, sizes[tensor])], axis=1)


def _optim_call(params, grads, states):
    """(typed lists of params, grads and each state list, block table, dtype's type); a state
    list that is None becomes params' list (the kernel leaves it untouched then)."""
    k = _kernels()
    p = _flat_list(params)
    lists = [p if s is None else _flat_list(s) for s in states]
    return k, p, _flat_list([_c(g) for g in grads]), lists, \
        _optim_blocks([a.size for a in params]), params[0].dtype.type


def sgd_update(params, grads, bufs, lr, momentum, nesterov, weight_decay, first_step):
    k, p, g, (b,), blk, t = _optim_call(params, grads, [bufs if momentum else None])
    k.sgd_update(p, g, b, blk, t(lr), t(weight_decay), t(momentum),
                 weight_decay != 0, momentum != 0, bool(nesterov), bool(first_step))


def adam_update(params, grads, m, v, v_max, step_size, sqrt_bc2, beta_1, beta_2, epsilon,
                weight_decay, decay):
    k, p, g, (m_, v_, vm), blk, t = _optim_call(params, grads, [m, v, v_max])
    k.adam_update(p, g, m_, v_, vm, blk, np.array(step_size, t), np.array(sqrt_bc2, t),
                  t(beta_1), t(1.0 - beta_1), t(beta_2), t(1.0 - beta_2), t(epsilon),
                  t(weight_decay), t(decay), weight_decay != 0, decay != 1.0, v_max is not None)


def rmsprop_update(params, grads, square_avg, grad_avg, bufs, lr, rho, epsilon, momentum,
                   weight_decay):
    k, p, g, (sq, ga, b), blk, t = _optim_call(params, grads,
                                               [square_avg, grad_avg, bufs if momentum else None])
    k.rmsprop_update(p, g, sq, ga, b, blk, t(lr), t(rho), t(1.0 - rho), t(epsilon), t(momentum),
                     t(weight_decay), weight_decay != 0, grad_avg is not None, momentum != 0)
