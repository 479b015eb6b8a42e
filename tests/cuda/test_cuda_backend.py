"""The cuda backend against the float64 reference backend, element by element, on a GPU and on
the CPU emulator of the CUDA execution model.

Every test takes the `cu` fixture (devices.py), one parameter per place the kernels run:
- gpu (marker `cuda`): CuPy on a CUDA device, through convforge.functional; skipped unless
  "cuda" is in convforge.backends.available();
- emu (marker `cuda_emu`): the real .cu kernels compiled for the CPU emulator (cuda_emu.py),
  the backend's own grids, poisoned outputs and shared memory; skipped only where the emulator
  cannot be built (no cmake / C++ compiler / pybind11);
- emu-small-grid (`cuda_emu`): the same with grids capped at 1, 2 and 3 blocks in turn (every
  grid-stride loop takes several turns), blocks and threads run in reverse order, other poisons.
Integer-valued inputs check exactness (every partial sum is exact in float32, so any indexing
error shows up as a mismatch); random inputs check precision with a tolerance scaled by dtype and
reduction length.
"""

from __future__ import annotations

import cuda_emu
import numpy as np
import pytest
from devices import EmuOps, GpuOps

import convforge as cf
from convforge import backends
from convforge._shapes import conv_output_size, conv_padding, pair
from convforge.backends import cuda

RNG_SEED = 20240611   # the seed of the `rng` fixture (conftest) in this module

DTYPES = [np.float32, np.float64]
F = cf.functional
SMALL_GRID = dict(max_blocks=(1, 2, 3), block_order="reverse", thread_order="reverse",
                  poison="finite", shared_poison=0x7F)
DEVICES = [pytest.param(("gpu", None), id="gpu", marks=pytest.mark.cuda),
           pytest.param(("emu", {}), id="emu", marks=pytest.mark.cuda_emu),
           pytest.param(("emu", SMALL_GRID), id="emu-small-grid", marks=pytest.mark.cuda_emu)]


@pytest.fixture(params=DEVICES)
def cu(request):
    """GpuOps, or EmuOps with a fresh emulator device installed for the test."""
    kind, options = request.param
    if kind == "gpu":
        if "cuda" not in backends.available():
            pytest.skip(f"cuda backend unavailable: {backends.unavailable_reason('cuda')}")
        yield GpuOps()
        return
    reason = cuda_emu.skip_reason()
    if reason is not None:
        pytest.skip(reason)
    device = cuda_emu.EmuDevice(**options)
    with cuda.use_device(device):
        yield EmuOps(device)


# --------------------------------------------------------------------------- comparisons

def _worst(got, want, excess, name):
    i = np.unravel_index(int(np.argmax(excess)), excess.shape)
    return (f"{name}: {int(np.sum(excess > 0))} of {excess.size} elements differ; worst at "
            f"{tuple(int(v) for v in i)}: got {got[i]!r}, want {want[i]!r}")


def assert_exact(got, want, name):
    """Bit-for-bit equal (NaN where the reference has NaN)."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{name}: shape {got.shape} != {want.shape}"
    assert got.dtype == want.dtype, f"{name}: dtype {got.dtype} != {want.dtype}"
    same = (got == want) | (np.isnan(got) & np.isnan(want)) if got.dtype.kind == "f" \
        else got == want
    if not same.all():
        with np.errstate(invalid="ignore"):
            gap = np.abs(got.astype(np.float64) - want)
        diff = np.where(same, 0.0, 1.0 + np.nan_to_num(gap, nan=np.inf))  # NaN vs number: inf
        pytest.fail(_worst(got, want, diff, name))


def assert_within_sum_bound(got, want, scale, length, name):
    """|got - want| <= eps * (length * scale + |want|) element-wise, where scale bounds the sum
    of |terms| of each output (the op applied to |inputs|) and length is the reduction length:
    the worst-case rounding error of a length-term sum plus the final rounding to the dtype."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, f"{name}: shape {got.shape} != {want.shape}"
    assert got.dtype == want.dtype, f"{name}: dtype {got.dtype} != {want.dtype}"
    eps = np.finfo(got.dtype).eps
    g, w = got.astype(np.float64), want.astype(np.float64)
    tol = eps * (length * np.asarray(scale, np.float64) + np.abs(w)) + np.finfo(got.dtype).tiny
    excess = np.abs(g - w) - tol
    excess[np.isnan(excess)] = np.inf
    if (excess > 0).any():
        pytest.fail(_worst(got, want, excess, name) + f" (tolerance there "
                    f"{tol[np.unravel_index(int(np.argmax(excess)), excess.shape)]:.3g})")


def ints(rng, shape, dtype, lo=-3, hi=4):
    return rng.integers(lo, hi, size=shape).astype(dtype)


# --------------------------------------------------------------------------- convolution

# (N, C, H, W, K, KH, KW, stride, padding, dilation, groups)
CONV_CASES = [
    (2, 3, 7, 8, 4, 3, 3, 1, 1, 1, 1),                     # small K: naive path under auto
    (2, 4, 9, 7, 70, 3, 3, 1, (1, 2, 0, 1), 1, 1),         # two channel tiles, 4-sided padding
    (1, 6, 10, 11, 12, 3, 2, (2, 1), (0, 1, 2, 0), (2, 1), 3),  # groups, dilation, stride
    (3, 8, 12, 12, 16, 5, 5, 2, 2, 1, 2),                  # R = 100: a partial last chunk
    (2, 4, 6, 6, 4, 3, 3, 1, 1, 1, 4),                     # depthwise
    (1, 17, 9, 9, 9, 1, 1, 1, 0, 1, 1),                    # 1x1
    (2, 3, 5, 40, 8, 1, 3, (1, 3), (0, 0, 4, 4), (1, 3), 1),  # wide, stride and dilation in W
    (5, 2, 13, 13, 24, 3, 3, 1, "same", 1, 1),             # many pixel tiles
    (2, 16, 6, 5, 32, 3, 3, 2, "same", 2, 2),              # 'same' with stride and dilation
]
CONV_IDS = [f"case{i}" for i in range(len(CONV_CASES))]


def _conv_inputs(case, dtype, rng, integer):
    n, c, h, w, k, kh, kw, stride, padding, dilation, groups = case
    make = (lambda s: ints(rng, s, dtype)) if integer else \
        (lambda s: rng.standard_normal(s).astype(dtype))
    x, wt, b = make((n, c, h, w)), make((k, c // groups, kh, kw)), make((k,))
    st, dil = pair(stride, "stride"), pair(dilation, "dilation")
    pad4 = conv_padding(padding, (h, w), (kh, kw), st, dil)
    oh, ow = conv_output_size((h, w), (kh, kw), st, pad4, dil)
    dy = make((n, k, oh, ow))
    return x, wt, b, dy, dict(stride=stride, padding=padding, dilation=dilation, groups=groups)


@pytest.mark.parametrize("algo", ["auto", "tiled", "naive"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES, ids=CONV_IDS)
def test_conv2d_forward(case, dtype, algo, rng, cu):
    x, w, b, _, kw_ = _conv_inputs(case, dtype, rng, integer=False)
    want = F.conv2d(x, w, b, **kw_, backend="reference")
    scale = F.conv2d(np.abs(x), np.abs(w), np.abs(b), **kw_, backend="reference")
    got = cu.conv2d(cu.dev(x), cu.dev(w), cu.dev(b), **kw_, algo=algo)
    length = w.shape[1] * w.shape[2] * w.shape[3] + 1
    assert_within_sum_bound(cu.host(got), want, scale, length, f"conv2d {algo} y")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES, ids=CONV_IDS)
def test_conv2d_forward_integer_exact(case, dtype, rng, cu):
    x, w, b, _, kw_ = _conv_inputs(case, dtype, rng, integer=True)
    want = F.conv2d(x, w, b, **kw_, backend="reference")
    for algo in ("tiled", "naive"):
        got = cu.conv2d(cu.dev(x), cu.dev(w), cu.dev(b), **kw_, algo=algo)
        assert_exact(cu.host(got), want, f"conv2d {algo} y")
        got = cu.conv2d(cu.dev(x), cu.dev(w), None, **kw_, algo=algo)
        assert_exact(cu.host(got), F.conv2d(x, w, None, **kw_, backend="reference"),
                     f"conv2d {algo} y without bias")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES, ids=CONV_IDS)
def test_conv2d_backward(case, dtype, rng, cu):
    x, w, _, dy, kw_ = _conv_inputs(case, dtype, rng, integer=False)
    dx, dw, db = cu.conv2d_backward(cu.dev(dy), cu.dev(x), cu.dev(w), **kw_)
    rdx, rdw, rdb = F.conv2d_backward(dy, x, w, **kw_, backend="reference")
    sdx, sdw, sdb = F.conv2d_backward(np.abs(dy), np.abs(x), np.abs(w), **kw_,
                                      backend="reference")
    n, k, oh, ow = dy.shape
    kg = k // kw_["groups"]
    assert_within_sum_bound(cu.host(dx), rdx, sdx, kg * w.shape[2] * w.shape[3], "dx")
    assert_within_sum_bound(cu.host(dw), rdw, sdw, n * oh * ow, "dw")
    assert_within_sum_bound(cu.host(db), rdb, sdb, n * oh * ow, "db")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES, ids=CONV_IDS)
def test_conv2d_backward_integer_exact(case, dtype, rng, cu):
    x, w, _, dy, kw_ = _conv_inputs(case, dtype, rng, integer=True)
    dx, dw, db = cu.conv2d_backward(cu.dev(dy), cu.dev(x), cu.dev(w), **kw_, bias=False)
    rdx, rdw, _ = F.conv2d_backward(dy, x, w, **kw_, bias=False, backend="reference")
    assert db is None
    assert_exact(cu.host(dx), rdx, "dx")
    assert_exact(cu.host(dw), rdw, "dw")
    _, _, db = cu.conv2d_backward(cu.dev(dy), cu.dev(x), cu.dev(w), **kw_)
    assert_exact(cu.host(db), dy.sum(axis=(0, 2, 3)), "db")


@pytest.mark.parametrize("dtype", DTYPES)
def test_conv2d_backward_is_deterministic(dtype, rng, cu):
    x, w, _, dy, kw_ = _conv_inputs(CONV_CASES[7], dtype, rng, integer=False)
    args = (cu.dev(dy), cu.dev(x), cu.dev(w))
    first = [cu.host(a) for a in cu.conv2d_backward(*args, **kw_)]
    for _ in range(2):
        again = cu.conv2d_backward(*args, **kw_)
        for name, a, b in zip(("dx", "dw", "db"), first, again):
            assert_exact(cu.host(b), a, f"{name} (second run)")


def test_conv2d_golden_examples(cu):
    edge = np.zeros((1, 1, 6, 6))
    edge[..., :3] = 10
    vertical = np.array([[1, 0, -1]] * 3, float)[None, None]
    y = cu.conv2d(cu.dev(edge), cu.dev(vertical))
    assert_exact(cu.host(y)[0, 0], np.tile([0.0, 30, 30, 0], (4, 1)), "vertical edge")

    x = np.array([[3, 2, 1], [1, 2, 3], [1, 1, 1]], np.float32)[None, None]
    sobel = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float32)[None, None]
    assert_exact(cu.host(cu.conv2d(cu.dev(x), cu.dev(sobel))).ravel(),
                 np.array([2], np.float32), "sobel")

    x = np.array([[1, 2, 0, 3, 1], [1, 0, 0, 2, 2], [2, 1, 2, 1, 1], [0, 0, 1, 0, 0],
                  [1, 2, 1, 1, 1]], float)[None, None]
    k = np.array([[-1, 1, 2], [1, 1, 0], [-1, -2, 0]], float)[None, None]
    assert_exact(cu.host(cu.conv2d(cu.dev(x), cu.dev(k)))[0, 0],
                 np.array([[-2.0, -1, 3], [2, 5, 8], [-2, 0, -1]]), "valid")
    assert_exact(cu.host(cu.conv2d(cu.dev(x), cu.dev(k), stride=2))[0, 0],
                 np.array([[-2.0, 3], [-2, -1]]), "stride 2")
    assert_exact(cu.host(cu.conv2d(cu.dev(x), cu.dev(k), padding="same"))[0, 0, 0],
                 np.array([-1.0, 2, 2, -1, -2]), "same, first row")


# --------------------------------------------------------------------------- im2col / col2im

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES, ids=CONV_IDS)
def test_im2col_col2im(case, dtype, rng, cu):
    n, c, h, w, _, kh, kw, stride, padding, dilation, _ = case
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    args = dict(kernel_size=(kh, kw), stride=stride, padding=padding, dilation=dilation)
    cols = cu.im2col(cu.dev(x), **args)
    want = F.im2col(x, **args, backend="reference")
    assert_exact(cu.host(cols), want, "im2col")
    dcols = rng.standard_normal(want.shape).astype(dtype)
    # col2im sums the overlaps in (kh, kw) order in float64, like the reference: exact.
    assert_exact(cu.host(cu.col2im(cu.dev(dcols), x.shape, **args)),
                 F.col2im(dcols, x.shape, **args, backend="reference"), "col2im")


# --------------------------------------------------------------------------- pooling

# (N, C, H, W, kernel_size, stride, padding, ceil_mode)
POOL_CASES = [
    (2, 3, 8, 8, 2, 2, 0, False),
    (2, 3, 9, 7, 3, 2, 1, True),
    (1, 2, 10, 11, (3, 2), (2, 3), (1, 1), True),
    (2, 2, 7, 7, 3, 1, 1, False),
    (1, 1, 5, 5, 4, 3, 2, True),
    (3, 2, 6, 9, (2, 4), (1, 3), (0, 2), False),
    (1, 2, 6, 6, 3, 3, 0, True),    # ceil_mode output equals floor here
    (2, 1, 11, 4, (5, 1), (2, 1), (2, 0), True),
]
POOL_IDS = [f"case{i}" for i in range(len(POOL_CASES))]


def _pool_kwargs(case):
    _, _, _, _, k, s, p, ceil_mode = case
    return dict(kernel_size=k, stride=s, padding=p, ceil_mode=ceil_mode)


def _reference_extreme(mode):
    return (F.max_pool2d, F.max_pool2d_backward) if mode == "max" else \
        (F.min_pool2d, F.min_pool2d_backward)


@pytest.mark.parametrize("mode", ["max", "min"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", POOL_CASES, ids=POOL_IDS)
def test_max_min_pool(case, dtype, mode, rng, cu):
    fwd, bwd = _reference_extreme(mode)
    kw_ = _pool_kwargs(case)
    # few distinct values: many ties, so the first-occurrence rule is exercised
    x = ints(rng, case[:4], dtype, 0, 3)
    y, idx = cu.pool(mode, cu.dev(x), **kw_)
    ry, ridx = fwd(x, **kw_, return_indices=True, backend="reference")
    assert_exact(cu.host(y), ry, f"{mode} pool y")
    assert_exact(cu.host(idx), ridx, f"{mode} pool indices")
    dy = rng.standard_normal(ry.shape).astype(dtype)
    want = bwd(dy, x, **kw_, indices=ridx, backend="reference")
    assert_exact(cu.host(cu.pool_backward(mode, cu.dev(dy), x.shape, **kw_, indices=idx)), want,
                 f"{mode} pool dx (given indices)")
    assert_exact(cu.host(cu.pool_backward(mode, cu.dev(dy), cu.dev(x), **kw_)), want,
                 f"{mode} pool dx (indices recomputed)")


@pytest.mark.parametrize("mode", ["max", "min"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_max_min_pool_nan(dtype, mode, rng, cu):
    fwd, _ = _reference_extreme(mode)
    kw_ = dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)
    x = rng.standard_normal((2, 3, 9, 10)).astype(dtype)
    x.ravel()[rng.choice(x.size, 25, replace=False)] = np.nan
    y, idx = cu.pool(mode, cu.dev(x), **kw_)
    ry, ridx = fwd(x, **kw_, return_indices=True, backend="reference")
    assert np.isnan(ry).any()
    assert_exact(cu.host(y), ry, f"{mode} pool y with NaN")
    assert_exact(cu.host(idx), ridx, f"{mode} pool indices with NaN (last NaN wins)")


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", POOL_CASES, ids=POOL_IDS)
def test_avg_pool(case, dtype, count_include_pad, rng, cu):
    kw_ = dict(_pool_kwargs(case), count_include_pad=count_include_pad)
    x = rng.standard_normal(case[:4]).astype(dtype)
    y, _ = cu.pool("avg", cu.dev(x), **kw_)
    ry = F.avg_pool2d(x, **kw_, backend="reference")
    scale = F.avg_pool2d(np.abs(x), **kw_, backend="reference")
    k = pair(case[4], "kernel_size")
    assert_within_sum_bound(cu.host(y), ry, scale, k[0] * k[1], "avg pool y")
    dy = rng.standard_normal(ry.shape).astype(dtype)
    # the gather adds dy/divisor in the reference's window order, in float64: exact
    assert_exact(cu.host(cu.pool_backward("avg", cu.dev(dy), x.shape, **kw_)),
                 F.avg_pool2d_backward(dy, x.shape, **kw_, backend="reference"), "avg pool dx")


def test_pool_golden_examples(cu):
    def pool(mode, x, k, **kw):
        return cu.host(cu.pool(mode, cu.dev(x), k, **kw)[0])[0, 0]

    x = np.array([[2, 1, 0, -1], [-3, 8, 2, 5], [1, -1, 3, 4], [0, 1, 1, -2]], float)[None, None]
    assert_exact(pool("max", x, 2), np.array([[8.0, 5], [1, 4]]), "max 2x2/2")
    assert_exact(pool("avg", x, 2), np.array([[2.0, 1.5], [0.25, 1.5]]), "avg 2x2/2")
    assert_exact(cu.host(cu.global_pool("avg", cu.dev(x))[0]), np.array([[1.3125]]),
                 "global avg")
    x = np.array([[1, 4, 2, 1], [5, 8, 3, 4], [7, 6, 4, 5], [1, 3, 1, 2]], float)[None, None]
    assert_exact(pool("avg", x, 2, stride=1),
                 np.array([[4.5, 4.25, 2.5], [6.5, 5.25, 4], [4.25, 3.5, 3]]), "avg 2x2/1")
    x = np.array([[3, 3, 2, 1, 0], [0, 0, 1, 3, 1], [3, 1, 2, 2, 3], [2, 0, 0, 2, 2],
                  [2, 0, 0, 0, 1]], float)[None, None]
    assert_exact(pool("max", x, 3, stride=1), np.array([[3.0, 3, 3], [3, 3, 3], [3, 2, 3]]),
                 "max 3x3/1")


# --------------------------------------------------------------------------- global pooling

GLOBAL_SHAPES = [(2, 3, 5, 7), (1, 2, 20, 20), (2, 1, 1, 1), (3, 5, 1, 300)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", GLOBAL_SHAPES)
def test_global_max_pool(shape, dtype, rng, cu):
    x = ints(rng, shape, dtype, 0, 4)  # ties: the first maximum must win
    y, idx = cu.global_pool("max", cu.dev(x))
    ry, ridx = F.global_max_pool2d(x, return_indices=True, backend="reference")
    assert_exact(cu.host(y), ry, "global max y")
    assert_exact(cu.host(idx), ridx, "global max indices")
    dy = rng.standard_normal(ry.shape).astype(dtype)
    want = F.global_max_pool2d_backward(dy, x, indices=ridx, backend="reference")
    assert_exact(cu.host(cu.global_pool_backward("max", cu.dev(dy), x.shape, indices=idx)),
                 want, "global max dx")
    assert_exact(cu.host(cu.global_pool_backward("max", cu.dev(dy), cu.dev(x))), want,
                 "global max dx (indices recomputed)")


@pytest.mark.parametrize("dtype", DTYPES)
def test_global_max_pool_nan(dtype, rng, cu):
    x = rng.standard_normal((2, 4, 17, 19)).astype(dtype)
    x[0, 1].ravel()[[300, 40, 250]] = np.nan   # last NaN in flat order: 300 (PyTorch's)
    x[1, 3].ravel()[-1] = np.nan
    y, idx = cu.global_pool("max", cu.dev(x))
    ry, ridx = F.global_max_pool2d(x, return_indices=True, backend="reference")
    assert int(ridx[0, 1]) == 300
    assert_exact(cu.host(y), ry, "global max y with NaN")
    assert_exact(cu.host(idx), ridx, "global max indices with NaN")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", GLOBAL_SHAPES)
def test_global_avg_pool(shape, dtype, rng, cu):
    x = rng.standard_normal(shape).astype(dtype)
    y, _ = cu.global_pool("avg", cu.dev(x))
    ry = F.global_avg_pool2d(x, backend="reference")
    scale = F.global_avg_pool2d(np.abs(x), backend="reference")
    assert_within_sum_bound(cu.host(y), ry, scale, shape[2] * shape[3], "global avg y")
    dy = rng.standard_normal(ry.shape).astype(dtype)
    assert_exact(cu.host(cu.global_pool_backward("avg", cu.dev(dy), x.shape)),
                 F.global_avg_pool2d_backward(dy, x.shape, backend="reference"), "global avg dx")
