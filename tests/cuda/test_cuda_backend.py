"""The cuda backend (CuPy RawKernels) against the float64 reference backend, element by element.

Skipped unless "cuda" is in convforge.backends.available() (CuPy and a CUDA device present).
Integer-valued inputs check exactness (every partial sum is exact in float32, so any indexing
error shows up as a mismatch); random inputs check precision with a tolerance scaled by dtype and
reduction length.
"""

from __future__ import annotations

import numpy as np
import pytest

import convforge as cf
from convforge import backends
from convforge._shapes import conv_output_size, conv_padding, pair

RNG_SEED = 20240611   # the seed of the `rng` fixture (conftest) in this module

pytestmark = pytest.mark.skipif("cuda" not in backends.available(),
                                reason="cuda backend unavailable: "
                                f"{backends.unavailable_reason('cuda')}")

DTYPES = [np.float32, np.float64]
F = cf.functional


def gpu(a):
    import cupy

    return cupy.asarray(a)


def host(a):
    import cupy

    assert isinstance(a, cupy.ndarray), f"expected a CuPy array, got {type(a).__name__}"
    return cupy.asnumpy(a)


def cuda_backend():
    return backends.get("cuda")


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
        diff = np.where(same, 0.0, 1.0 + np.abs(got.astype(np.float64) - want))
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
    return x, wt, b, dy, dict(stride=stride, padding=padding, dilation=dilation, groups=groups), \
        (st, pad4, dil, groups)


@pytest.mark.parametrize("algo", ["auto", "tiled", "naive"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES, ids=CONV_IDS)
def test_conv2d_forward(case, dtype, algo, rng):
    x, w, b, _, kw_, norm = _conv_inputs(case, dtype, rng, integer=False)
    want = F.conv2d(x, w, b, **kw_, backend="reference")
    scale = F.conv2d(np.abs(x), np.abs(w), np.abs(b), **kw_, backend="reference")
    if algo == "auto":
        got = F.conv2d(gpu(x), gpu(w), gpu(b), **kw_, backend="cuda")
    else:
        got = cuda_backend().conv2d(gpu(x), gpu(w), gpu(b), *norm, algo=algo)
    length = w.shape[1] * w.shape[2] * w.shape[3] + 1
    assert_within_sum_bound(host(got), want, scale, length, f"conv2d {algo} y")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES, ids=CONV_IDS)
def test_conv2d_forward_integer_exact(case, dtype, rng):
    x, w, b, _, kw_, norm = _conv_inputs(case, dtype, rng, integer=True)
    want = F.conv2d(x, w, b, **kw_, backend="reference")
    for algo in ("tiled", "naive"):
        got = cuda_backend().conv2d(gpu(x), gpu(w), gpu(b), *norm, algo=algo)
        assert_exact(host(got), want, f"conv2d {algo} y")
        got = cuda_backend().conv2d(gpu(x), gpu(w), None, *norm, algo=algo)
        assert_exact(host(got), F.conv2d(x, w, None, **kw_, backend="reference"),
                     f"conv2d {algo} y without bias")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES, ids=CONV_IDS)
def test_conv2d_backward(case, dtype, rng):
    x, w, _, dy, kw_, _ = _conv_inputs(case, dtype, rng, integer=False)
    dx, dw, db = F.conv2d_backward(gpu(dy), gpu(x), gpu(w), **kw_, backend="cuda")
    rdx, rdw, rdb = F.conv2d_backward(dy, x, w, **kw_, backend="reference")
    sdx, sdw, sdb = F.conv2d_backward(np.abs(dy), np.abs(x), np.abs(w), **kw_,
                                      backend="reference")
    n, k, oh, ow = dy.shape
    kg = k // kw_["groups"]
    assert_within_sum_bound(host(dx), rdx, sdx, kg * w.shape[2] * w.shape[3], "dx")
    assert_within_sum_bound(host(dw), rdw, sdw, n * oh * ow, "dw")
    assert_within_sum_bound(host(db), rdb, sdb, n * oh * ow, "db")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES, ids=CONV_IDS)
def test_conv2d_backward_integer_exact(case, dtype, rng):
    x, w, _, dy, kw_, _ = _conv_inputs(case, dtype, rng, integer=True)
    dx, dw, db = F.conv2d_backward(gpu(dy), gpu(x), gpu(w), **kw_, bias=False, backend="cuda")
    rdx, rdw, _ = F.conv2d_backward(dy, x, w, **kw_, bias=False, backend="reference")
    assert db is None
    assert_exact(host(dx), rdx, "dx")
    assert_exact(host(dw), rdw, "dw")
    _, _, db = F.conv2d_backward(gpu(dy), gpu(x), gpu(w), **kw_, backend="cuda")
    assert_exact(host(db), dy.sum(axis=(0, 2, 3)), "db")


@pytest.mark.parametrize("dtype", DTYPES)
def test_conv2d_backward_is_deterministic(dtype, rng):
    x, w, _, dy, kw_, _ = _conv_inputs(CONV_CASES[7], dtype, rng, integer=False)
    first = [host(a) for a in F.conv2d_backward(gpu(dy), gpu(x), gpu(w), **kw_, backend="cuda")]
    for _ in range(2):
        again = F.conv2d_backward(gpu(dy), gpu(x), gpu(w), **kw_, backend="cuda")
        for name, a, b in zip(("dx", "dw", "db"), first, again):
            assert_exact(host(b), a, f"{name} (second run)")


def test_conv2d_golden_examples():
    edge = np.zeros((1, 1, 6, 6))
    edge[..., :3] = 10
    vertical = np.array([[1, 0, -1]] * 3, float)[None, None]
    y = F.conv2d(gpu(edge), gpu(vertical), backend="cuda")
    assert_exact(host(y)[0, 0], np.tile([0.0, 30, 30, 0], (4, 1)), "vertical edge")

    x = np.array([[3, 2, 1], [1, 2, 3], [1, 1, 1]], np.float32)[None, None]
    sobel = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float32)[None, None]
    assert_exact(host(F.conv2d(gpu(x), gpu(sobel), backend="cuda")).ravel(),
                 np.array([2], np.float32), "sobel")

    x = np.array([[1, 2, 0, 3, 1], [1, 0, 0, 2, 2], [2, 1, 2, 1, 1], [0, 0, 1, 0, 0],
                  [1, 2, 1, 1, 1]], float)[None, None]
    k = np.array([[-1, 1, 2], [1, 1, 0], [-1, -2, 0]], float)[None, None]
    assert_exact(host(F.conv2d(gpu(x), gpu(k), backend="cuda"))[0, 0],
                 np.array([[-2.0, -1, 3], [2, 5, 8], [-2, 0, -1]]), "valid")
    assert_exact(host(F.conv2d(gpu(x), gpu(k), stride=2, backend="cuda"))[0, 0],
                 np.array([[-2.0, 3], [-2, -1]]), "stride 2")
    assert_exact(host(F.conv2d(gpu(x), gpu(k), padding="same", backend="cuda"))[0, 0, 0],
                 np.array([-1.0, 2, 2, -1, -2]), "same, first row")


# --------------------------------------------------------------------------- im2col / col2im

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES, ids=CONV_IDS)
def test_im2col_col2im(case, dtype, rng):
    n, c, h, w, _, kh, kw, stride, padding, dilation, _ = case
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    args = dict(kernel_size=(kh, kw), stride=stride, padding=padding, dilation=dilation)
    cols = F.im2col(gpu(x), **args, backend="cuda")
    want = F.im2col(x, **args, backend="reference")
    assert_exact(host(cols), want, "im2col")
    dcols = rng.standard_normal(want.shape).astype(dtype)
    # col2im sums the overlaps in (kh, kw) order in float64, like the reference: exact.
    assert_exact(host(F.col2im(gpu(dcols), x.shape, **args, backend="cuda")),
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


def _extreme(mode):
    return (F.max_pool2d, F.max_pool2d_backward) if mode == "max" else \
        (F.min_pool2d, F.min_pool2d_backward)


@pytest.mark.parametrize("mode", ["max", "min"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", POOL_CASES, ids=POOL_IDS)
def test_max_min_pool(case, dtype, mode, rng):
    fwd, bwd = _extreme(mode)
    kw_ = _pool_kwargs(case)
    # few distinct values: many ties, so the first-occurrence rule is exercised
    x = ints(rng, case[:4], dtype, 0, 3)
    y, idx = fwd(gpu(x), **kw_, return_indices=True, backend="cuda")
    ry, ridx = fwd(x, **kw_, return_indices=True, backend="reference")
    assert_exact(host(y), ry, f"{mode} pool y")
    assert_exact(host(idx), ridx, f"{mode} pool indices")
    dy = rng.standard_normal(ry.shape).astype(dtype)
    want = bwd(dy, x, **kw_, indices=ridx, backend="reference")
    assert_exact(host(bwd(gpu(dy), x.shape, **kw_, indices=idx, backend="cuda")), want,
                 f"{mode} pool dx (given indices)")
    assert_exact(host(bwd(gpu(dy), gpu(x), **kw_, backend="cuda")), want,
                 f"{mode} pool dx (indices recomputed)")


@pytest.mark.parametrize("mode", ["max", "min"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_max_min_pool_nan(dtype, mode, rng):
    fwd, _ = _extreme(mode)
    kw_ = dict(kernel_size=3, stride=2, padding=1, ceil_mode=True)
    x = rng.standard_normal((2, 3, 9, 10)).astype(dtype)
    x.ravel()[rng.choice(x.size, 25, replace=False)] = np.nan
    y, idx = fwd(gpu(x), **kw_, return_indices=True, backend="cuda")
    ry, ridx = fwd(x, **kw_, return_indices=True, backend="reference")
    assert np.isnan(ry).any()
    assert_exact(host(y), ry, f"{mode} pool y with NaN")
    assert_exact(host(idx), ridx, f"{mode} pool indices with NaN (first NaN wins)")


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", POOL_CASES, ids=POOL_IDS)
def test_avg_pool(case, dtype, count_include_pad, rng):
    kw_ = dict(_pool_kwargs(case), count_include_pad=count_include_pad)
    x = rng.standard_normal(case[:4]).astype(dtype)
    y = F.avg_pool2d(gpu(x), **kw_, backend="cuda")
    ry = F.avg_pool2d(x, **kw_, backend="reference")
    scale = F.avg_pool2d(np.abs(x), **kw_, backend="reference")
    k = pair(case[4], "kernel_size")
    assert_within_sum_bound(host(y), ry, scale, k[0] * k[1], "avg pool y")
    dy = rng.standard_normal(ry.shape).astype(dtype)
    # the gather adds dy/divisor in the reference's window order, in float64: exact
    assert_exact(host(F.avg_pool2d_backward(gpu(dy), x.shape, **kw_, backend="cuda")),
                 F.avg_pool2d_backward(dy, x.shape, **kw_, backend="reference"), "avg pool dx")


def test_pool_golden_examples():
    x = np.array([[2, 1, 0, -1], [-3, 8, 2, 5], [1, -1, 3, 4], [0, 1, 1, -2]], float)[None, None]
    assert_exact(host(F.max_pool2d(gpu(x), 2, backend="cuda"))[0, 0],
                 np.array([[8.0, 5], [1, 4]]), "max 2x2/2")
    assert_exact(host(F.avg_pool2d(gpu(x), 2, backend="cuda"))[0, 0],
                 np.array([[2.0, 1.5], [0.25, 1.5]]), "avg 2x2/2")
    assert_exact(host(F.global_avg_pool2d(gpu(x), backend="cuda")), np.array([[1.3125]]),
                 "global avg")
    x = np.array([[1, 4, 2, 1], [5, 8, 3, 4], [7, 6, 4, 5], [1, 3, 1, 2]], float)[None, None]
    assert_exact(host(F.avg_pool2d(gpu(x), 2, stride=1, backend="cuda"))[0, 0],
                 np.array([[4.5, 4.25, 2.5], [6.5, 5.25, 4], [4.25, 3.5, 3]]), "avg 2x2/1")
    x = np.array([[3, 3, 2, 1, 0], [0, 0, 1, 3, 1], [3, 1, 2, 2, 3], [2, 0, 0, 2, 2],
                  [2, 0, 0, 0, 1]], float)[None, None]
    assert_exact(host(F.max_pool2d(gpu(x), 3, stride=1, backend="cuda"))[0, 0],
                 np.array([[3.0, 3, 3], [3, 3, 3], [3, 2, 3]]), "max 3x3/1")


# --------------------------------------------------------------------------- global pooling

GLOBAL_SHAPES = [(2, 3, 5, 7), (1, 2, 20, 20), (2, 1, 1, 1), (3, 5, 1, 300)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", GLOBAL_SHAPES)
def test_global_max_pool(shape, dtype, rng):
    x = ints(rng, shape, dtype, 0, 4)  # ties: the first maximum must win
    y, idx = F.global_max_pool2d(gpu(x), return_indices=True, backend="cuda")
    ry, ridx = F.global_max_pool2d(x, return_indices=True, backend="reference")
    assert_exact(host(y), ry, "global max y")
    assert_exact(host(idx), ridx, "global max indices")
    dy = rng.standard_normal(ry.shape).astype(dtype)
    want = F.global_max_pool2d_backward(dy, x, indices=ridx, backend="reference")
    assert_exact(host(F.global_max_pool2d_backward(gpu(dy), x.shape, indices=idx,
                                                   backend="cuda")), want, "global max dx")
    assert_exact(host(F.global_max_pool2d_backward(gpu(dy), gpu(x), backend="cuda")), want,
                 "global max dx (indices recomputed)")


@pytest.mark.parametrize("dtype", DTYPES)
def test_global_max_pool_nan(dtype, rng):
    x = rng.standard_normal((2, 4, 17, 19)).astype(dtype)
    x[0, 1].ravel()[[300, 40, 250]] = np.nan   # first NaN in flat order: 40
    x[1, 3].ravel()[-1] = np.nan
    y, idx = F.global_max_pool2d(gpu(x), return_indices=True, backend="cuda")
    ry, ridx = F.global_max_pool2d(x, return_indices=True, backend="reference")
    assert int(ridx[0, 1]) == 40
    assert_exact(host(y), ry, "global max y with NaN")
    assert_exact(host(idx), ridx, "global max indices with NaN")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", GLOBAL_SHAPES)
def test_global_avg_pool(shape, dtype, rng):
    x = rng.standard_normal(shape).astype(dtype)
    y = F.global_avg_pool2d(gpu(x), backend="cuda")
    ry = F.global_avg_pool2d(x, backend="reference")
    scale = F.global_avg_pool2d(np.abs(x), backend="reference")
    assert_within_sum_bound(host(y), ry, scale, shape[2] * shape[3], "global avg y")
    dy = rng.standard_normal(ry.shape).astype(dtype)
    assert_exact(host(F.global_avg_pool2d_backward(gpu(dy), x.shape, backend="cuda")),
                 F.global_avg_pool2d_backward(dy, x.shape, backend="reference"), "global avg dx")
