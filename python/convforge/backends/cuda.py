"""The CUDA backend: CuPy arrays in, CuPy arrays out, kernels from csrc/cuda/*.cu.

Each kernel family (conv2d, im2col, pool2d) is one .cu file with `extern "C"` entry points per
dtype (`<entry>_f32`, `<entry>_f64`). It is compiled by NVRTC through `cupy.RawModule` once per
device and cached. Sources come from the installed package (`convforge/cuda/`) or, in a source
checkout, from `csrc/cuda/`. Every kernel overwrites its whole output, so outputs are allocated
with `cupy.empty`; no kernel uses atomics, so every result (gradients included) is the same on
every run. CuPy is imported only here, and only when this backend is used.

The device seam: everything this module asks of the GPU (allocate an output, say which device
an array lives on, compile a source into a module, launch a kernel) goes through one small
device object, `CupyDevice` by default. The tests swap in the CPU emulator's device
(tests/cuda/cuda_emu.py) with `use_device`, so the grid/block math, argument packing and output
allocation here run unmodified against the real .cu kernels on machines without a GPU.
"""

from __future__ import annotations

import contextlib
import importlib.resources
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np

# batch norm, dropout, activations, softmax cross-entropy, optimiser updates: CuPy array
# expressions, written once for NumPy and CuPy (tested on NumPy without a GPU; the reference
# backend runs all but _xp_norm)
from ._xp_activation import activation, activation_backward  # noqa: F401
from ._xp_dropout import dropout  # noqa: F401
from ._xp_loss import softmax_cross_entropy  # noqa: F401
from ._xp_norm import batch_norm, batch_norm_backward, batch_norm_stats  # noqa: F401
from ._xp_optim import adam_update, rmsprop_update, sgd_update  # noqa: F401

THREADS = 256             # threads per block; must equal CF_THREADS in csrc/cuda/common.cuh
MAX_BLOCKS = 65536        # grid cap: the kernels loop grid-stride over whatever is left
TILE_M, TILE_P = 64, 64   # conv2d_forward tile (output channels x output pixels): CF_TM, CF_TP
NAIVE_BELOW_KG = 8        # fewer output channels per group than this: the naive forward kernel
_OPTIONS = ("-std=c++17",)
_INCLUDE = '#include "common.cuh"'
_FAMILIES = ("conv2d", "im2col", "pool2d")

_SUFFIX = {np.dtype(np.float32): "f32", np.dtype(np.float64): "f64"}
# A null device pointer (8 zero bytes, passed by value), for an absent bias. Not None: older
# CuPy versions turn None into a null *argument slot* rather than a null pointer.
NULL = np.uintp(0)


def probe() -> Optional[str]:
    """None when CuPy imports and sees at least one CUDA device, else the reason."""
    try:
        import cupy

        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # noqa: BLE001 - any failure (no cupy, no driver) means unavailable
        return f"cupy unusable: {type(e).__name__}: {e}"
    if count < 1:
        return "cupy found no CUDA device"
    return None


def _cupy():
    import cupy

    return cupy


# --------------------------------------------------------------------------- the device seam

class CupyDevice:
    """The GPU through CuPy: CuPy arrays, NVRTC modules (cupy.RawModule), launches on the
    array's device. Modules and kernels are cached per (family, device id[, entry])."""

    def __init__(self) -> None:
        self.modules: dict[tuple[str, int], Any] = {}        # (family, device id) -> RawModule
        self.kernels: dict[tuple[str, int, str], Any] = {}   # (family, device id, entry)

    def empty(self, shape, dtype):
        """An uninitialised output array (every kernel overwrites its whole output)."""
        return _cupy().empty(shape, dtype=dtype)

    def device_id(self, like) -> int:
        return int(like.device.id)

    def load(self, family: str, code: str, options: tuple, device_id: int):
        """The compiled module of `code` on device `device_id` (has get_function(name))."""
        cp = _cupy()
        with cp.cuda.Device(device_id):  # CuPy loads a module on the current device
            return cp.RawModule(code=code, options=options)

    def launch(self, kernel, grid: int, block: int, args: tuple, device_id: int) -> None:
        with _cupy().cuda.Device(device_id):
            kernel((grid,), (block,), args)


_device: Any = CupyDevice()


def device() -> Any:
    """The device object this backend runs on now."""
    return _device


@contextlib.contextmanager
def use_device(dev) -> Iterator[Any]:
    """`with use_device(dev): ...` runs this backend on `dev` (an object with CupyDevice's
    methods and caches, e.g. the tests' CPU emulator), then puts the previous device back."""
    global _device
    previous, _device = _device, dev
    try:
        yield dev
    finally:
        _device = previous


# --------------------------------------------------------------------------- sources and modules

def _read(name: str) -> str:
    """Text of csrc/cuda/`name`: from the installed package, else from the source checkout."""
    try:
        res = importlib.resources.files("convforge") / "cuda" / name
        if res.is_file():
            return res.read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError, NotADirectoryError):
        pass
    path = Path(__file__).resolve().parents[3] / "csrc" / "cuda" / name
    if not path.is_file():
        raise FileNotFoundError(f"CUDA source {name!r} is neither in the installed package "
                                f"(convforge/cuda/) nor at {path}")
    return path.read_text(encoding="utf-8")


def source(family: str) -> str:
    """The full source NVRTC compiles for `family`: the .cu file with common.cuh pasted in
    place of its #include (NVRTC gets one string, and CuPy's cache key then covers both)."""
    if family not in _FAMILIES:
        raise ValueError(f"unknown kernel family {family!r}; choose one of {list(_FAMILIES)}")
    text = _read(f"{family}.cu")
    if _INCLUDE not in text:
        raise ValueError(f"{family}.cu must contain the line {_INCLUDE}")
    return text.replace(_INCLUDE, _read("common.cuh"), 1)


def _kernel(dev, family: str, entry: str, device_id: int):
    """Kernel `entry` of `family` on device `device_id` of `dev` (module compiled once per
    device)."""
    key = (family, device_id, entry)
    if key not in dev.kernels:
        mkey = (family, device_id)
        if mkey not in dev.modules:
            dev.modules[mkey] = dev.load(family, source(family), _OPTIONS, device_id)
        dev.kernels[key] = dev.modules[mkey].get_function(entry)
    return dev.kernels[key]


def _launch(family: str, entry: str, like, work: int, args: tuple, per_block: int = THREADS):
    """Runs `<entry>_<f32|f64>` (dtype of `like`) on like's device.

    work: items to process; per_block: items one block takes per grid-stride step (THREADS for
    one-thread-per-element kernels, 1 for one-block-per-item kernels). The grid is
    ceil(work / per_block) blocks, capped at MAX_BLOCKS. Integers (dims, flags; Python ints or
    signed NumPy integers of any width) go to the kernel as explicit numpy.int64 (C long long:
    CuPy would pack a numpy.int32 in 4 bytes), CuPy arrays as device pointers, NULL (unsigned)
    as a null pointer.
    """
    if work <= 0:
        return
    dev = _device
    device_id = dev.device_id(like)
    kernel = _kernel(dev, family, f"{entry}_{_SUFFIX[np.dtype(like.dtype)]}", device_id)
    blocks = min(-(-work // per_block), MAX_BLOCKS)
    kargs = tuple(np.int64(a) if isinstance(a, (int, np.signedinteger)) else a for a in args)
    dev.launch(kernel, blocks, THREADS, kargs, device_id)


# --------------------------------------------------------------------------- dims

def _conv_dims(x_shape, w_shape, stride, padding, dilation, groups) -> tuple[int, ...]:
    """N C H W K KH KW SH SW PH PW DH DW OH OW G (the order of ConvDims in common.cuh)."""
    n, c, h, w = (int(s) for s in x_shape)
    k, _, kh, kw = (int(s) for s in w_shape)
    (sh, sw), (dh, dw) = stride, dilation
    pt, pb, pl, pr = padding
    oh = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1
    ow = (w + pl + pr - dw * (kw - 1) - 1) // sw + 1
    return (n, c, h, w, k, kh, kw, sh, sw, pt, pl, dh, dw, oh, ow, int(groups))


def _unfold_dims(x_shape, kernel_size, stride, padding, dilation) -> tuple[int, ...]:
    """N C H W KH KW SH SW PH PW DH DW OH OW (conv dims without K and G)."""
    d = _conv_dims(x_shape, (1, 1) + tuple(kernel_size), stride, padding, dilation, 1)
    return d[:4] + d[5:15]


def _pool_dims(x_shape, kernel_size, stride, padding, out_size) -> tuple[int, ...]:
    """N C H W KH KW SH SW PH PW OH OW (the order of PoolDims in common.cuh)."""
    return tuple(int(s) for s in x_shape) + tuple(kernel_size) + tuple(stride) + \
        tuple(padding) + tuple(out_size)


def _check_mode(mode: str, allowed: tuple[str, ...]) -> None:
    if mode not in allowed:
        raise ValueError(f"mode must be one of {list(allowed)}, got {mode!r}")


# --------------------------------------------------------------------------- convolution

def conv2d(x, w, b, stride, padding, dilation, groups, relu=False, algo: str = "auto"):
    """y (N, K, OH, OW). algo: 'tiled' (implicit GEMM), 'naive' (one thread per output) or
    'auto' (naive when a group has fewer than NAIVE_BELOW_KG output channels)."""
    dims = _conv_dims(x.shape, w.shape, stride, padding, dilation, groups)
    n, k, oh, ow, kg = dims[0], dims[4], dims[13], dims[14], dims[4] // groups
    y = _device.empty((n, k, oh, ow), dtype=x.dtype)
    bias = NULL if b is None else b
    if algo == "auto":
        algo = "naive" if kg < NAIVE_BELOW_KG else "tiled"
    if algo == "tiled":
        tiles = groups * -(-kg // TILE_M) * -(-(n * oh * ow) // TILE_P)
        _launch("conv2d", "conv2d_forward", x, tiles, (y, x, w, bias) + dims, per_block=1)
    elif algo == "naive":
        _launch("conv2d", "conv2d_forward_naive", x, y.size, (y, x, w, bias) + dims)
    else:
        raise ValueError(f"algo must be 'auto', 'tiled' or 'naive', got {algo!r}")
    return activation(y, "relu") if relu else y


def conv2d_backward(dy, x, w, stride, padding, dilation, groups, bias, need_dx=True,
                    need_dw=True, deterministic: bool = True):
    """(dx, dw, db or None); a gradient not needed is not computed (None). Every kernel here is
    deterministic (gathers and fixed-order block reductions, no atomics), so
    `deterministic=False` runs the same code."""
    dims = _conv_dims(x.shape, w.shape, stride, padding, dilation, groups)
    dx = dw = db = None
    if need_dx:
        dx = _device.empty(x.shape, dtype=x.dtype)
        _launch("conv2d", "conv2d_backward_data", x, dx.size, (dx, dy, w) + dims)
    if need_dw:
        dw = _device.empty(w.shape, dtype=w.dtype)
        _launch("conv2d", "conv2d_backward_weight", x, dw.size, (dw, dy, x) + dims, per_block=1)
        if bias:
            db = _device.empty((w.shape[0],), dtype=x.dtype)
            _launch("conv2d", "conv2d_backward_bias", x, db.size, (db, dy) + dims, per_block=1)
    return dx, dw, db


def im2col(x, kernel_size, stride, padding, dilation):
    dims = _unfold_dims(x.shape, kernel_size, stride, padding, dilation)
    n, c, oh, ow = dims[0], dims[1], dims[12], dims[13]
    cols = _device.empty((n, c * kernel_size[0] * kernel_size[1], oh * ow), dtype=x.dtype)
    _launch("im2col", "im2col", x, cols.size, (cols, x) + dims)
    return cols


def col2im(cols, input_shape, kernel_size, stride, padding, dilation):
    dims = _unfold_dims(input_shape, kernel_size, stride, padding, dilation)
    x = _device.empty(tuple(int(s) for s in input_shape), dtype=cols.dtype)
    _launch("im2col", "col2im", cols, x.size, (x, cols) + dims)
    return x


# --------------------------------------------------------------------------- pooling

def pool2d(x, mode, kernel_size, stride, padding, out_size, count_include_pad):
    _check_mode(mode, ("max", "min", "avg"))
    dims = _pool_dims(x.shape, kernel_size, stride, padding, out_size)
    y = _device.empty(tuple(x.shape[:2]) + tuple(out_size), dtype=x.dtype)
    if mode == "avg":
        _launch("pool2d", "pool2d_avg_forward", x, y.size, (y, x) + dims +
                (int(bool(count_include_pad)),))
        return y, None
    idx = _device.empty(y.shape, dtype=np.int64)
    _launch("pool2d", f"pool2d_{mode}_forward", x, y.size, (y, idx, x) + dims)
    return y, idx


def pool2d_backward(dy, indices, input_shape, mode, kernel_size, stride, padding,
                    count_include_pad, relu_y=None):
    _check_mode(mode, ("max", "min", "avg"))
    if relu_y is not None:   # the ReLU mask on dy (a CuPy elementwise pass before the gather)
        dy = activation_backward(dy, relu_y, "relu")
    dims = _pool_dims(input_shape, kernel_size, stride, padding, dy.shape[2:])
    dx = _device.empty(tuple(int(s) for s in input_shape), dtype=dy.dtype)
    if mode == "avg":
        _launch("pool2d", "pool2d_avg_backward", dy, dx.size, (dx, dy) + dims +
                (int(bool(count_include_pad)),))
    else:
        if indices is None:
            raise ValueError(f"{mode} pooling backward needs the forward's indices")
        _launch("pool2d", "pool2d_index_backward", dy, dx.size, (dx, dy, indices) + dims)
    return dx


def global_pool2d(x, mode):
    _check_mode(mode, ("max", "avg"))
    n, c, h, w = (int(s) for s in x.shape)
    y = _device.empty((n, c), dtype=x.dtype)
    if mode == "avg":
        _launch("pool2d", "global_pool2d_avg_forward", x, n * c, (y, x, n * c, h * w),
                per_block=1)
        return y, None
    idx = _device.empty((n, c), dtype=np.int64)
    _launch("pool2d", "global_pool2d_max_forward", x, n * c, (y, idx, x, n * c, h * w),
            per_block=1)
    return y, idx


def global_pool2d_backward(dy, indices, input_shape, mode):
    _check_mode(mode, ("max", "avg"))
    n, c, h, w = (int(s) for s in input_shape)
    dx = _device.empty((n, c, h, w), dtype=dy.dtype)
    if mode == "avg":
        _launch("pool2d", "global_pool2d_avg_backward", dy, dx.size, (dx, dy, n * c, h * w))
    else:
        if indices is None:
            raise ValueError("max global pooling backward needs the forward's indices")
        _launch("pool2d", "global_pool2d_max_backward", dy, dx.size,
                (dx, dy, indices, n * c, h * w))
    return dx
