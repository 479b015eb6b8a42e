"""Random configurations of the CUDA kernels on the emulator, beyond the fixed grid of
test_cuda_backend.py: convolutions (groups, 1-70 output channels per group, kernels 1-5,
strides 1-3, dilations 1-2, four-sided padding), unfolds and poolings (every mode, ceil_mode,
count_include_pad) drawn from seeded generators. Integer-valued inputs: every sum is exact, so
every result must equal the float64 oracle's bit for bit. Even seeds run the backend's own
grids; odd seeds grids of 1-3 blocks in shuffled block and thread orders.
"""

from __future__ import annotations

import cuda_emu
import numpy as np
import pytest
from devices import EmuOps

import convforge.functional as F
from convforge.backends import cuda
from convforge.functional.pool import _pool_args

from conftest import assert_exact

pytestmark = [pytest.mark.cuda_emu,
              pytest.mark.skipif(cuda_emu.skip_reason() is not None,
                                 reason=str(cuda_emu.skip_reason()))]

SMALL_GRID = dict(max_blocks=(1, 2, 3), block_order="shuffle", thread_order="shuffle",
                  poison="finite", shared_poison=0x7F)


@pytest.fixture
def cu(request):
    seed = request.node.callspec.params["seed"]
    device = cuda_emu.EmuDevice(**(SMALL_GRID if seed % 2 else {}), seed=seed + 1)
    with cuda.use_device(device):
        yield EmuOps(device)


def _ints(rng, shape, dtype, lo=-3, hi=3):
    return rng.integers(lo, hi + 1, size=shape).astype(dtype)


def _extent(rng, k, dil, pad):
    """An input extent that leaves at least one output for a kernel k with dilation dil."""
    span = dil * (k - 1) + 1
    return int(rng.integers(max(1, span - pad), span + 9))


def conv_config(seed):
    """(x shape, w shape, conv keyword arguments, dtype) of random draw `seed`."""
    rng = np.random.default_rng(1000 + seed)
    g = int(rng.choice([1, 1, 2, 3]))
    cg = int(rng.integers(1, 5))
    kg = int(rng.choice([int(rng.integers(1, 13)), int(rng.integers(60, 71))]))
    kh, kw = (int(v) for v in rng.integers(1, 6, 2))
    stride = tuple(int(v) for v in rng.integers(1, 4, 2))
    dilation = tuple(int(v) for v in rng.integers(1, 3, 2))
    pad = tuple(int(v) for v in rng.integers(0, 4, 4))
    h = _extent(rng, kh, dilation[0], pad[0] + pad[1])
    w = _extent(rng, kw, dilation[1], pad[2] + pad[3])
    n = int(rng.integers(1, 4))
    dtype = np.float32 if seed % 3 else np.float64
    return (n, g * cg, h, w), (g * kg, cg, kh, kw), \
        dict(stride=stride, padding=pad, dilation=dilation, groups=g), dtype


def pool_config(seed):
    """(x shape, pool keyword arguments, dtype) of random draw `seed`."""
    rng = np.random.default_rng(2000 + seed)
    k = tuple(int(v) for v in rng.integers(1, 5, 2))
    stride = tuple(int(v) for v in rng.integers(1, 4, 2))
    pad = tuple(int(rng.integers(0, kk // 2 + 1)) for kk in k)
    shape = (int(rng.integers(1, 3)), int(rng.integers(1, 4)),
             _extent(rng, k[0], 1, 2 * pad[0]), _extent(rng, k[1], 1, 2 * pad[1]))
    dtype = np.float32 if seed % 3 else np.float64
    return shape, dict(kernel_size=k, stride=stride, padding=pad,
                       ceil_mode=bool(rng.integers(0, 2))), dtype


@pytest.mark.parametrize("seed", range(40))
def test_random_conv(seed, cu):
    xs, ws, kw, dtype = conv_config(seed)
    rng = np.random.default_rng(seed)
    x, w, b = _ints(rng, xs, dtype), _ints(rng, ws, dtype), _ints(rng, ws[:1], dtype)
    want = F.conv2d(x, w, b, **kw, backend="reference")
    for algo in ("tiled", "naive"):
        got = cu.conv2d(cu.dev(x), cu.dev(w), cu.dev(b), **kw, algo=algo)
        assert_exact(cu.host(got), want, dtype, f"y ({algo}) of {xs} {ws} {kw}")
    dy = _ints(rng, want.shape, dtype)
    got = cu.conv2d_backward(cu.dev(dy), cu.dev(x), cu.dev(w), **kw)
    for name, g, r in zip(("dx", "dw", "db"), got,
                          F.conv2d_backward(dy, x, w, **kw, backend="reference")):
        assert_exact(cu.host(g), r, dtype, f"{name} of {xs} {ws} {kw}")
    unfold = dict(kernel_size=ws[2:], stride=kw["stride"], padding=kw["padding"],
                  dilation=kw["dilation"])
    cols = F.im2col(x, **unfold, backend="reference")
    assert_exact(cu.host(cu.im2col(cu.dev(x), **unfold)), cols, dtype, f"im2col {unfold}")
    assert_exact(cu.host(cu.col2im(cu.dev(cols), xs, **unfold)),
                 F.col2im(cols, xs, **unfold, backend="reference"), dtype, f"col2im {unfold}")


@pytest.mark.parametrize("mode", ["max", "min", "avg", "avg-exclude-pad"])
@pytest.mark.parametrize("seed", range(20))
def test_random_pool(seed, mode, cu):
    shape, kw, dtype = pool_config(seed)
    rng = np.random.default_rng(seed)
    x = _ints(rng, shape, dtype, 0, 3)   # ties: the first extreme must win
    what = f"{mode} pool of {shape} {kw}"
    if mode.startswith("avg"):
        kw["count_include_pad"] = mode == "avg"
        ry = F.avg_pool2d(x, **kw, backend="reference")
        y, _ = cu.pool("avg", cu.dev(x), **kw)
        dy = _ints(rng, ry.shape, dtype)
        rdx = F.avg_pool2d_backward(dy, shape, **kw, backend="reference")
        dx = cu.pool_backward("avg", cu.dev(dy), shape, **kw)
    else:
        fwd = F.max_pool2d if mode == "max" else F.min_pool2d
        bwd = F.max_pool2d_backward if mode == "max" else F.min_pool2d_backward
        ry, ridx = fwd(x, **kw, return_indices=True, backend="reference")
        y, idx = cu.pool(mode, cu.dev(x), **kw)
        assert_exact(cu.host(idx), ridx, np.int64, f"indices of {what}")
        dy = _ints(rng, ry.shape, dtype)
        rdx = bwd(dy, shape, **kw, indices=ridx, backend="reference")
        dx = cu.pool_backward(mode, cu.dev(dy), shape, **kw, indices=idx)
    assert_exact(cu.host(y), ry, dtype, f"y of {what}")
    assert_exact(cu.host(dx), rdx, dtype, f"dx of {what}")


@pytest.mark.parametrize("seed", range(6))
def test_random_global_pool(seed, cu):
    rng = np.random.default_rng(3000 + seed)
    shape = (int(rng.integers(1, 4)), int(rng.integers(1, 5)), int(rng.integers(1, 30)),
             int(rng.integers(1, 30)))
    dtype = np.float32 if seed % 3 else np.float64
    x = _ints(rng, shape, dtype, 0, 3)
    for mode in ("max", "avg"):
        y, idx = cu.global_pool(mode, cu.dev(x))
        if mode == "max":
            ry, ridx = F.global_max_pool2d(x, return_indices=True, backend="reference")
            assert_exact(cu.host(idx), ridx, np.int64, f"global max indices of {shape}")
        else:
            ry, ridx = F.global_avg_pool2d(x, backend="reference"), None
        assert_exact(cu.host(y), ry, dtype, f"global {mode} y of {shape}")
        dy = _ints(rng, ry.shape, dtype)
        want = (F.global_max_pool2d_backward(dy, shape, indices=ridx, backend="reference")
                if mode == "max" else F.global_avg_pool2d_backward(dy, shape, backend="reference"))
        assert_exact(cu.host(cu.global_pool_backward(mode, cu.dev(dy), shape, indices=idx)),
                     want, dtype, f"global {mode} dx of {shape}")


def test_numpy_integer_dims_are_packed_as_int64():
    # the backend packs every integer argument as int64, NumPy int32 included (CuPy would pass
    # a numpy.int32 as 4 bytes where the kernel reads 8); the emulator refuses anything else
    device = cuda_emu.EmuDevice()
    x = np.arange(2 * 3 * 7 * 6, dtype=np.float32).reshape(2, 3, 7, 6)
    k, s, p = (np.int32(3),) * 2, (np.int32(2),) * 2, (np.int32(1),) * 2
    out = _pool_args(x.shape, 3, 2, 1, True)[3]
    with cuda.use_device(device):
        y, idx = cuda.pool2d(device.asarray(x), "max", k, s, p,
                             tuple(np.int32(v) for v in out), False)
    assert_exact(np.array(y), F.max_pool2d(x, 3, 2, 1, ceil_mode=True, backend="reference"),
                 np.float32, "max pool with int32 dims")
