"""max/min/avg pooling and global pooling, forward and backward, on every backend under test,
float32 and float64, against the float64 oracle: padding, ceil_mode, count_include_pad,
return_indices (first occurrence), small-integer inputs with ties (exact), NaN propagation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple, Union

import numpy as np
import pytest

from conftest import DTYPES, assert_close, assert_exact, assert_same_bits, randint, randn, ref

Pair = Union[int, Tuple[int, int]]


@dataclass(frozen=True)
class PoolCase:
    id: str
    x: Tuple[int, int, int, int]         # (N, C, H, W)
    kernel_size: Pair
    stride: Optional[Pair] = None
    padding: Pair = 0
    ceil_mode: bool = False

    def kw(self) -> dict:
        return dict(stride=self.stride, padding=self.padding, ceil_mode=self.ceil_mode)

    @property
    def area(self) -> int:
        k = self.kernel_size
        return k * k if isinstance(k, int) else k[0] * k[1]


CASES = [
    PoolCase("n1_c1_k2", (1, 1, 4, 4), 2),
    PoolCase("k2_even", (2, 3, 8, 6), 2),
    PoolCase("k3s2_odd_nonsquare", (2, 3, 7, 9), 3, 2),
    PoolCase("k3s1_pad1", (2, 2, 6, 5), 3, 1, 1),
    PoolCase("k_hw_s_hw_pad_hw", (2, 3, 9, 8), (3, 2), (2, 1), (1, 0)),
    PoolCase("ceil_k2s2", (2, 2, 7, 7), 2, 2, 0, True),
    PoolCase("ceil_k3s2_pad1", (2, 2, 8, 7), 3, 2, 1, True),
    PoolCase("ceil_hw_pad_hw", (1, 3, 10, 7), (3, 4), (3, 2), (1, 2), True),
    PoolCase("kernel_eq_input", (2, 3, 5, 4), (5, 4)),
    PoolCase("1x1_stride2", (2, 2, 7, 6), 1, 2),
    PoolCase("stride_gt_kernel", (2, 2, 9, 9), 2, 3),
    PoolCase("overlap_k4s1_pad2", (2, 2, 7, 8), 4, 1, 2),
    PoolCase("lenet_pool", (2, 6, 28, 28), 2),
    PoolCase("vgg_pool", (2, 64, 16, 16), 2),
]
MODES = ("max", "min", "avg", "avg_exclude_pad")


def _params():
    """(case, mode) pairs; avg_exclude_pad only where the case has padding."""
    out = []
    for c in CASES:
        for m in MODES:
            if m == "avg_exclude_pad" and c.padding == 0:
                continue
            out.append(pytest.param(c, m, id=f"{c.id}-{m}"))
    return out


case_modes = pytest.mark.parametrize("case,mode", _params())
dtypes = pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)


def forward(call, mode: str, x, case: PoolCase):
    """(y, indices or None) of pooling `mode` through `call` (a Backend or the oracle)."""
    if mode in ("max", "min"):
        return call(f"{mode}_pool2d", x, case.kernel_size, return_indices=True, **case.kw())
    return call("avg_pool2d", x, case.kernel_size, count_include_pad=(mode == "avg"),
                **case.kw()), None


def backward(call, mode: str, dy, x, case: PoolCase, indices=None):
    if mode in ("max", "min"):
        return call(f"{mode}_pool2d_backward", dy, x, case.kernel_size, indices=indices,
                    **case.kw())
    return call("avg_pool2d_backward", dy, x, case.kernel_size,
                count_include_pad=(mode == "avg"), **case.kw())


def check_forward(be, case, mode, x, dtype, exact: bool) -> None:
    y, idx = forward(be, mode, x, case)
    y_ref, idx_ref = forward(ref, mode, x, case)
    what = f"{be.name} {mode} pool y"
    if exact or mode in ("max", "min"):
        assert_exact(y, y_ref, dtype, what=what)
    else:
        assert_close(y, y_ref, dtype, case.area, what=what)
    if idx_ref is not None:
        assert_exact(idx, idx_ref, np.int64, what=f"{be.name} {mode} pool indices")


@dtypes
@case_modes
def test_pool_forward(backend, case, mode, dtype, rng):
    check_forward(backend, case, mode, randn(rng, case.x, dtype), dtype, exact=False)


@dtypes
@case_modes
def test_pool_backward(backend, case, mode, dtype, rng):
    x = randn(rng, case.x, dtype)
    y_ref, idx_ref = forward(ref, mode, x, case)
    dy = randn(rng, y_ref.shape, dtype)
    dx_ref = backward(ref, mode, dy, x, case)
    what = f"{backend.name} {mode} pool dx"
    assert_close(backward(backend, mode, dy, x, case), dx_ref, dtype, case.area, what=what)
    if mode in ("max", "min"):
        # with the forward's indices and only the input's shape
        _, idx = forward(backend, mode, x, case)
        dx = backward(backend, mode, dy, x.shape, case, indices=idx)
        assert_close(dx, dx_ref, dtype, case.area, what=what + " (indices=, shape only)")


INT_CASES = [c for c in CASES if c.id in ("n1_c1_k2", "k3s1_pad1", "k_hw_s_hw_pad_hw",
                                          "ceil_k3s2_pad1", "overlap_k4s1_pad2", "lenet_pool")]
# Cases whose every averaging divisor is a power of two (full windows, count_include_pad), so
# integer averages are exact in float32 whatever the order of the sum and the division.
AVG_EXACT = [PoolCase("avg_k2", (2, 3, 8, 6), 2),
             PoolCase("avg_k4x2_pad", (2, 2, 9, 7), (4, 2), (2, 1), (2, 1))]


@dtypes
@pytest.mark.parametrize("mode", ["max", "min"])
@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in INT_CASES])
def test_pool_integer_ties_exact(backend, case, mode, dtype, rng):
    """Integer inputs in [-2, 2] have many ties: the index is the first occurrence in the
    window (row-major), and backward sums integer dy exactly."""
    x = randint(rng, case.x, dtype, -2, 2)
    check_forward(backend, case, mode, x, dtype, exact=True)
    y_ref, _ = forward(ref, mode, x, case)
    dy = randint(rng, y_ref.shape, dtype)
    assert_exact(backward(backend, mode, dy, x, case), backward(ref, mode, dy, x, case), dtype,
                 what=f"{backend.name} {mode} pool dx")


@dtypes
@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in AVG_EXACT])
def test_avg_pool_integer_exact(backend, case, dtype, rng):
    x = randint(rng, case.x, dtype)
    check_forward(backend, case, "avg", x, dtype, exact=True)
    y_ref, _ = forward(ref, "avg", x, case)
    dy = randint(rng, y_ref.shape, dtype)
    assert_exact(backward(backend, "avg", dy, x, case), backward(ref, "avg", dy, x, case),
                 dtype, what=f"{backend.name} avg pool dx")


@dtypes
@pytest.mark.parametrize("mode", ["max", "min", "avg"])
def test_pool_nan_propagates(backend, mode, dtype, rng):
    """A window holding a NaN gives NaN; max/min pick the last NaN of the window (PyTorch)."""
    case = PoolCase("nan", (2, 2, 7, 6), 3, 2, 1, True)
    x = randn(rng, case.x, dtype)
    x[0, 1, 2, 3] = np.nan
    x[0, 1, 3, 2] = np.nan     # a second NaN later in some of the same windows
    x[1, 0, 6, 5] = np.nan     # the last element: in the partial ceil_mode window
    y_ref, _ = forward(ref, mode, x, case)
    assert np.isnan(y_ref).any() and not np.isnan(y_ref).all()
    check_forward(backend, case, mode, x, dtype, exact=False)


GLOBAL_SHAPES = [(1, 1, 1, 1), (1, 1, 5, 5), (2, 3, 4, 8), (2, 5, 7, 3), (2, 64, 8, 8),
                 (3, 2, 1, 9)]
shapes = pytest.mark.parametrize("shape", GLOBAL_SHAPES, ids=lambda s: "x".join(map(str, s)))


@dtypes
@shapes
def test_global_avg_pool(backend, shape, dtype, rng):
    x = randn(rng, shape, dtype)
    red = shape[2] * shape[3]
    y = backend("global_avg_pool2d", x)
    assert_close(y, ref("global_avg_pool2d", x), dtype, red, what=f"{backend.name} global avg")
    dy = randn(rng, shape[:2], dtype)
    for xx in (x, shape):       # the input array, or only its shape
        dx = backend("global_avg_pool2d_backward", dy, xx)
        assert_close(dx, ref("global_avg_pool2d_backward", dy, xx), dtype, 1,
                     what=f"{backend.name} global avg dx")


@dtypes
@shapes
def test_global_max_pool(backend, shape, dtype, rng):
    x = randn(rng, shape, dtype)
    y, idx = backend("global_max_pool2d", x, return_indices=True)
    y_ref, idx_ref = ref("global_max_pool2d", x, return_indices=True)
    assert_exact(y, y_ref, dtype, what=f"{backend.name} global max")
    assert_exact(idx, idx_ref, np.int64, what=f"{backend.name} global max indices")
    assert_exact(backend("global_max_pool2d", x), y_ref, dtype, what="without indices")
    dy = randn(rng, shape[:2], dtype)
    dx_ref = ref("global_max_pool2d_backward", dy, x)
    assert_exact(backend("global_max_pool2d_backward", dy, x), dx_ref, dtype,
                 what=f"{backend.name} global max dx")
    assert_exact(backend("global_max_pool2d_backward", dy, shape, indices=idx), dx_ref, dtype,
                 what=f"{backend.name} global max dx (indices=, shape only)")


@dtypes
def test_global_pool_integer_ties_and_nan(backend, dtype, rng):
    """Ties: the first maximum (row-major); NaN: the last NaN wins and the average is NaN;
    a power-of-two plane makes the integer average exact."""
    x = randint(rng, (2, 3, 4, 8), dtype, -2, 2)
    x[1, 2, 1, 5] = np.nan
    x[1, 2, 3, 0] = np.nan
    y, idx = backend("global_max_pool2d", x, return_indices=True)
    y_ref, idx_ref = ref("global_max_pool2d", x, return_indices=True)
    assert_exact(y, y_ref, dtype, what=f"{backend.name} global max")
    assert_exact(idx, idx_ref, np.int64, what=f"{backend.name} global max indices")
    assert idx_ref[1, 2] == 3 * 8 + 0
    assert_exact(backend("global_avg_pool2d", x), ref("global_avg_pool2d", x), dtype,
                 what=f"{backend.name} global avg")


@dtypes
@pytest.mark.parametrize("geometry", [dict(kernel_size=2), dict(kernel_size=3, stride=2),
                                      dict(kernel_size=3, stride=1, padding=1)],
                         ids=["2x2", "3x3s2-overlap", "3x3s1-pad"])
def test_max_pool_backward_fuses_the_relu(backend, geometry, dtype, rng):
    """relu_y= (the forward's output over x = relu(z)) gives the gradient w.r.t. z: the same
    bits as activation_backward(max_pool2d_backward(dy), x, 'relu'), NaN and -0.0 included."""
    x = backend("activation", rng.standard_normal((2, 3, 7, 8)).astype(dtype), "relu")
    x[0, 0, 0, :3] = [np.nan, -0.0, 0.0]
    y, idx = backend("max_pool2d", x, return_indices=True, **geometry)
    dy = rng.standard_normal(y.shape).astype(dtype)
    want = backend("activation_backward",
                   backend("max_pool2d_backward", dy, x.shape, indices=idx, **geometry), x,
                   "relu")
    got = backend("max_pool2d_backward", dy, x.shape, indices=idx, relu_y=y, **geometry)
    assert_same_bits(got, want, what=f"{backend.name} fused max-pool + ReLU backward")
    with pytest.raises(ValueError, match="relu_y must have the shape of dy"):
        backend("max_pool2d_backward", dy, x.shape, indices=idx, relu_y=y[:1], **geometry)
