"""The compiled pooling bindings (convforge._core) against the float64 reference backend.

Every binding, float32 and float64, on a grid of odd/non-square shapes, kernels, strides,
paddings, ceil_mode (through convforge._shapes.pool_output_size) and count_include_pad; NaN and
tied inputs; index validation; the naive kernels as a second, bit-identical reference; and
bit-identical results for 1 and 2 threads.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from convforge._shapes import pool_output_size, pool_padding
from convforge.backends import reference as ref

from conftest import assert_close, assert_same_bits, available_isas

_core = pytest.importorskip("convforge._core")

RNG_SEED = 20240611   # the seed of the `rng` fixture (conftest) in this module

DTYPES = (np.float32, np.float64)
SHAPES = ((2, 3, 7, 9), (1, 2, 4, 7), (1, 1, 1, 5))
KERNELS = (1, 2, 3, (2, 3))
STRIDES = (1, 2, (1, 2))  # run-time strides (3) are covered by the wide-row and thread tests
PADDINGS = (0, 1)


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def configs(shape):
    """Valid (kernel, stride, padding, out_size) combinations for an input shape."""
    for k, s, p, ceil in itertools.product(KERNELS, STRIDES, PADDINGS, (False, True)):
        ks, st = _pair(k), _pair(s)
        try:
            pad = pool_padding(p, ks)
            out = pool_output_size(shape[2:], ks, st, pad, ceil)
        except ValueError:
            continue
        yield ks, st, pad, out


def _fmt(cfg):
    ks, st, pad, out = cfg
    return f"kernel {ks} stride {st} padding {pad} out {out}"


def overlap(ks, st):
    """Largest number of windows holding one input element."""
    return -(-ks[0] // st[0]) * -(-ks[1] // st[1])


def _forward(x, mode, cfg, cip):
    ks, st, pad, out = cfg
    return _core.pool2d_forward(x, mode, ks, st, pad, out, cip)


def _backward(dy, idx, shape, mode, cfg, cip):
    ks, st, pad, _ = cfg
    return _core.pool2d_backward(dy, idx, shape, mode, ks, st, pad, cip)


# --------------------------------------------------------------------------- windowed pooling

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", ["max", "min"])
def test_maxmin_forward_backward_grid(rng, dtype, mode):
    for shape in SHAPES:
        x = rng.standard_normal(shape).astype(dtype)
        for cfg in configs(shape):
            what = f"{mode} {np.dtype(dtype).name} x{shape} {_fmt(cfg)}"
            y, idx = _forward(x, mode, cfg, False)
            y_ref, idx_ref = ref.pool2d(x, mode, *cfg[:3], cfg[3], False)
            assert_same_bits(y, y_ref, what + " y")
            assert_same_bits(idx, idx_ref, what + " indices")
            y_n, idx_n = _core.pool2d_forward(x, mode, *cfg, False, algo="naive")
            assert_same_bits(y, y_n, what + " y vs naive")
            assert_same_bits(idx, idx_n, what + " indices vs naive")

            dy = rng.standard_normal(y.shape).astype(dtype)
            dx = _backward(dy, idx, shape, mode, cfg, False)
            dx_ref = ref.pool2d_backward(dy, idx_ref, shape, mode, *cfg[:3], False)
            assert_close(dx, dx_ref, dx.dtype, overlap(cfg[0], cfg[1]), what + " dx")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cip", [True, False])
def test_avg_forward_backward_grid(rng, dtype, cip):
    for shape in SHAPES:
        x = rng.standard_normal(shape).astype(dtype)
        for cfg in configs(shape):
            what = f"avg cip={cip} {np.dtype(dtype).name} x{shape} {_fmt(cfg)}"
            ks, st = cfg[0], cfg[1]
            y, idx = _forward(x, "avg", cfg, cip)
            assert idx is None
            y_ref, _ = ref.pool2d(x, "avg", *cfg[:3], cfg[3], cip)
            assert_close(y, y_ref, y.dtype, ks[0] * ks[1], what + " y")
            y_n, _ = _core.pool2d_forward(x, "avg", *cfg, cip, algo="naive")
            assert_same_bits(y, y_n, what + " y vs naive")

            dy = rng.standard_normal(y.shape).astype(dtype)
            dx = _backward(dy, None, shape, "avg", cfg, cip)
            dx_ref = ref.pool2d_backward(dy, None, shape, "avg", *cfg[:3], cip)
            assert_close(dx, dx_ref, dx.dtype, overlap(ks, st), what + " dx")
            dx_n = _core.pool2d_backward(dy, None, shape, "avg", *cfg[:3], cip, algo="naive")
            assert_same_bits(dx, dx_n, what + " dx vs naive")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", ["max", "min"])
def test_maxmin_nan_and_inf(rng, dtype, mode):
    shape = (2, 3, 5, 8)
    x = rng.standard_normal(shape).astype(dtype)
    u = rng.random(shape)
    x[u < 0.15] = np.nan
    x[(u >= 0.15) & (u < 0.2)] = np.inf
    x[(u >= 0.2) & (u < 0.25)] = -np.inf
    for cfg in configs(shape):
        what = f"{mode} NaN {np.dtype(dtype).name} {_fmt(cfg)}"
        y, idx = _forward(x, mode, cfg, False)
        y_ref, idx_ref = ref.pool2d(x, mode, *cfg[:3], cfg[3], False)
        assert_same_bits(y, y_ref, what + " y")
        assert_same_bits(idx, idx_ref, what + " indices")
        # Every NaN output points at a NaN; a window with a NaN always yields NaN.
        assert np.isnan(x.reshape(2, 3, -1)[np.arange(2)[:, None, None, None],
                                            np.arange(3)[None, :, None, None], idx]
                        [np.isnan(y)]).all()


def test_last_nan_wins():
    # One window of 2x3 with two NaNs: the last in row-major order is chosen (PyTorch's index).
    x = np.array([[[[1.0, 5.0, 2.0], [np.nan, 9.0, np.nan]]]])
    for mode in ("max", "min"):
        y, idx = _core.pool2d_forward(x, mode, (2, 3), (1, 1), (0, 0), (1, 1), False)
        assert np.isnan(y[0, 0, 0, 0]) and idx[0, 0, 0, 0] == 5
    y, idx = _core.global_pool2d_forward(x, "max")
    assert np.isnan(y[0, 0]) and idx[0, 0] == 5


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", ["max", "min"])
def test_maxmin_ties_first_occurrence(rng, dtype, mode):
    shape = (2, 2, 6, 7)
    x = rng.integers(0, 3, shape).astype(dtype)  # many ties
    for cfg in configs(shape):
        what = f"{mode} ties {np.dtype(dtype).name} {_fmt(cfg)}"
        y, idx = _forward(x, mode, cfg, False)
        y_ref, idx_ref = ref.pool2d(x, mode, *cfg[:3], cfg[3], False)
        assert_same_bits(y, y_ref, what + " y")
        assert_same_bits(idx, idx_ref, what + " indices")
        # Integer dy: the scatter-add is exact in any order.
        dy = rng.integers(-4, 5, y.shape).astype(dtype)
        dx = _backward(dy, idx, shape, mode, cfg, False)
        assert_same_bits(dx, ref.pool2d_backward(dy, idx_ref, shape, mode, *cfg[:3], False),
                         what + " dx")


def test_lecture_examples():
    a = np.array([[2, 1, 0, -1], [-3, 8, 2, 5], [1, -1, 3, 4], [0, 1, 1, -2]],
                 np.float64)[None, None]
    y, idx = _core.pool2d_forward(a, "max", (2, 2), (2, 2), (0, 0), (2, 2), True)
    np.testing.assert_array_equal(y[0, 0], [[8, 5], [1, 4]])
    np.testing.assert_array_equal(idx[0, 0], [[5, 7], [8, 11]])
    y, _ = _core.pool2d_forward(a, "avg", (2, 2), (2, 2), (0, 0), (2, 2), True)
    np.testing.assert_array_equal(y[0, 0], [[2, 1.5], [0.25, 1.5]])
    assert _core.global_pool2d_forward(a, "avg")[0][0, 0] == 1.3125
    b = np.array([[1, 4, 2, 1], [5, 8, 3, 4], [7, 6, 4, 5], [1, 3, 1, 2]], np.float32)[None, None]
    y, _ = _core.pool2d_forward(b, "avg", (2, 2), (1, 1), (0, 0), (3, 3), True)
    np.testing.assert_array_equal(y[0, 0], [[4.5, 4.25, 2.5], [6.5, 5.25, 4], [4.25, 3.5, 3]])
    c = np.array([[3, 3, 2, 1, 0], [0, 0, 1, 3, 1], [3, 1, 2, 2, 3], [2, 0, 0, 2, 2],
                  [2, 0, 0, 0, 1]], np.float32)[None, None]
    y, _ = _core.pool2d_forward(c, "max", (3, 3), (1, 1), (0, 0), (3, 3), False)
    np.testing.assert_array_equal(y[0, 0], [[3, 3, 3], [3, 3, 3], [3, 2, 3]])


@pytest.mark.parametrize("dtype", DTYPES)
def test_wide_rows_exercise_vector_loops(rng, dtype):
    # Long interior spans (vector body + remainder) for the common 2x2/2 and 3x3/1 cases.
    shape = (2, 3, 7, 41)
    x = rng.standard_normal(shape).astype(dtype)
    for ks, st, pad in (((2, 2), (2, 2), (0, 0)), ((3, 3), (1, 1), (1, 1)),
                        ((3, 3), (2, 2), (1, 1)), ((2, 3), (1, 3), (1, 1))):
        for ceil in (False, True):
            cfg = (ks, st, pad, pool_output_size(shape[2:], ks, st, pad, ceil))
            for mode, cip in (("max", False), ("min", False), ("avg", True), ("avg", False)):
                what = f"{mode} cip={cip} {np.dtype(dtype).name} {_fmt(cfg)}"
                y, idx = _forward(x, mode, cfg, cip)
                y_ref, idx_ref = ref.pool2d(x, mode, *cfg[:3], cfg[3], cip)
                assert_close(y, y_ref, y.dtype, ks[0] * ks[1], what + " y")
                if mode != "avg":
                    assert_same_bits(idx, idx_ref, what + " indices")
                dy = rng.standard_normal(y.shape).astype(dtype)
                dx = _backward(dy, idx, shape, mode, cfg, cip)
                dx_ref = ref.pool2d_backward(dy, idx_ref, shape, mode, *cfg[:3], cip)
                assert_close(dx, dx_ref, dx.dtype, overlap(ks, st), what + " dx")


# --------------------------------------------------------------------------- global pooling

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(2, 3, 7, 9), (1, 1, 1, 1), (3, 2, 1, 13), (1, 2, 33, 5)])
def test_global_pool(rng, dtype, shape):
    x = rng.standard_normal(shape).astype(dtype)
    hw = shape[2] * shape[3]
    y, idx = _core.global_pool2d_forward(x, "avg")
    y_ref, _ = ref.global_pool2d(x, "avg")
    assert idx is None
    assert_close(y, y_ref, y.dtype, hw, f"global avg {shape} y")
    dy = rng.standard_normal(y.shape).astype(dtype)
    assert_same_bits(_core.global_pool2d_backward(dy, None, shape, "avg"),
                     ref.global_pool2d_backward(dy, None, shape, "avg"), f"global avg {shape} dx")

    for xs, name in ((x, "normal"), (rng.integers(0, 3, shape).astype(dtype), "ties")):
        y, idx = _core.global_pool2d_forward(xs, "max")
        y_ref, idx_ref = ref.global_pool2d(xs, "max")
        assert_same_bits(y, y_ref, f"global max {name} {shape} y")
        assert_same_bits(idx, idx_ref, f"global max {name} {shape} indices")
        dx = _core.global_pool2d_backward(dy, idx, shape, "max")
        assert_same_bits(dx, ref.global_pool2d_backward(dy, idx_ref, shape, "max"),
                         f"global max {name} {shape} dx")


@pytest.mark.parametrize("dtype", DTYPES)
def test_global_max_nan(rng, dtype):
    shape = (3, 4, 5, 6)
    x = rng.standard_normal(shape).astype(dtype)
    x[rng.random(shape) < 0.05] = np.nan
    y, idx = _core.global_pool2d_forward(x, "max")
    y_ref, idx_ref = ref.global_pool2d(x, "max")
    assert_same_bits(y, y_ref, "global max NaN y")
    assert_same_bits(idx, idx_ref, "global max NaN indices")


# --------------------------------------------------------------------------- validation

def test_bad_indices_raise(rng):
    shape = (2, 3, 6, 5)
    cfg = ((2, 2), (2, 2), (0, 0), (3, 2))
    x = rng.standard_normal(shape)
    _, idx = _forward(x, "max", cfg, False)
    dy = np.ones((2, 3, 3, 2))
    for pos, value in (((0, 0, 0, 0), -1), ((1, 2, 2, 1), 30), ((1, 0, 1, 0), 2**62),
                       ((0, 1, 2, 1), -(2**63))):
        bad = idx.copy()
        bad[pos] = value
        for mode in ("max", "min"):
            with pytest.raises(ValueError, match=r"indices must lie in \[0, H\*W\)"):
                _backward(dy, bad, shape, mode, cfg, False)
    with pytest.raises(ValueError, match="indices are required"):
        _backward(dy, None, shape, "max", cfg, False)
    with pytest.raises(TypeError, match="int64"):
        _backward(dy, idx.astype(np.int32), shape, "max", cfg, False)
    with pytest.raises(ValueError, match="shape"):
        _backward(dy, np.ascontiguousarray(idx[:, :, :2]), shape, "max", cfg, False)
    with pytest.raises(ValueError, match="C-contiguous"):
        _backward(dy, np.asfortranarray(idx), shape, "max", cfg, False)
    with pytest.raises(TypeError, match="indices"):
        _backward(dy, idx.tolist(), shape, "max", cfg, False)

    _, gidx = _core.global_pool2d_forward(x, "max")
    gdy = np.ones((2, 3))
    for value in (-1, 30):
        bad = gidx.copy()
        bad[1, 1] = value
        with pytest.raises(ValueError, match=r"indices must lie in \[0, H\*W\)"):
            _core.global_pool2d_backward(gdy, bad, shape, "max")
    with pytest.raises(ValueError, match="indices are required"):
        _core.global_pool2d_backward(gdy, None, shape, "max")


def test_bad_arguments_raise(rng):
    x = rng.standard_normal((2, 3, 6, 5))
    ok = {"kernel_size": (2, 2), "stride": (2, 2), "padding": (0, 0), "out_size": (3, 2),
          "count_include_pad": True}
    with pytest.raises(TypeError, match="x must be float32 or float64"):
        _core.pool2d_forward(x.astype(np.float16), "max", **ok)
    with pytest.raises(TypeError, match="x must be float32 or float64"):
        _core.pool2d_forward(x.astype(np.int64), "max", **ok)
    with pytest.raises(ValueError, match="C-contiguous"):
        _core.pool2d_forward(x[:, :, :, ::2], "max", **dict(ok, out_size=(3, 1)))
    with pytest.raises(ValueError, match="4-D"):
        _core.pool2d_forward(x[0], "max", **ok)
    with pytest.raises(ValueError, match="mode must be"):
        _core.pool2d_forward(x, "median", **ok)
    with pytest.raises(ValueError, match="padding"):
        _core.pool2d_forward(x, "max", **dict(ok, padding=(2, 0), out_size=(4, 2)))
    with pytest.raises(ValueError, match="out_size too large"):
        _core.pool2d_forward(x, "max", **dict(ok, out_size=(4, 2)))
    with pytest.raises(ValueError, match="out_size too large"):
        _core.pool2d_forward(x, "max", **dict(ok, out_size=(3, 2**62)))
    with pytest.raises(ValueError, match="stride"):
        _core.pool2d_forward(x, "max", **dict(ok, stride=(0, 2)))
    with pytest.raises(ValueError, match="kernel_size"):
        _core.pool2d_forward(x, "max", **dict(ok, kernel_size=(0, 2)))
    with pytest.raises(ValueError, match="out_size must be >= 1"):
        _core.pool2d_forward(x, "max", **dict(ok, out_size=(0, 2)))

    dy = np.ones((2, 3, 3, 2))
    bw = {"kernel_size": (2, 2), "stride": (2, 2), "padding": (0, 0), "count_include_pad": True}
    with pytest.raises(ValueError, match="dy must have shape"):
        _core.pool2d_backward(dy, None, (2, 4, 6, 5), "avg", **bw)
    with pytest.raises(ValueError, match="out_size too large"):
        _core.pool2d_backward(np.ones((2, 3, 4, 2)), None, (2, 3, 6, 5), "avg", **bw)
    with pytest.raises(ValueError, match="input_shape"):
        _core.pool2d_backward(dy, None, (2, 3, 0, 5), "avg", **bw)
    with pytest.raises(ValueError, match="mode must be"):
        _core.pool2d_backward(dy, None, (2, 3, 6, 5), "sum", **bw)

    with pytest.raises(ValueError, match="mode must be 'avg' or 'max'"):
        _core.global_pool2d_forward(x, "min")
    with pytest.raises(ValueError, match="H, W >= 1"):
        _core.global_pool2d_forward(np.ones((2, 3, 0, 4)), "avg")
    with pytest.raises(ValueError, match="dy must have shape"):
        _core.global_pool2d_backward(np.ones((2, 4)), None, (2, 3, 6, 5), "avg")
    with pytest.raises(TypeError, match="dy must be float32 or float64"):
        _core.global_pool2d_backward(np.ones((2, 3), np.int32), None, (2, 3, 6, 5), "avg")


def test_empty_batch():
    x = np.ones((0, 3, 4, 4), np.float32)
    y, idx = _core.pool2d_forward(x, "max", (2, 2), (2, 2), (0, 0), (2, 2), False)
    assert y.shape == idx.shape == (0, 3, 2, 2)
    dx = _core.pool2d_backward(y, idx, (0, 3, 4, 4), "max", (2, 2), (2, 2), (0, 0), False)
    assert dx.shape == (0, 3, 4, 4)


# --------------------------------------------------------------------------- threads

@pytest.mark.parametrize("dtype", DTYPES)
def test_thread_count_invariance(rng, dtype):
    if not _core.has_openmp:
        pytest.skip("built without OpenMP")
    before = _core.get_num_threads()
    cases = []
    # Many planes; one plane (row-parallel). Both above the kernels' serial threshold (4096
    # elements), so that 2 threads really split the work.
    for shape in ((3, 5, 23, 31), (1, 1, 81, 77)):
        x = rng.standard_normal(shape).astype(dtype)
        x[rng.random(shape) < 0.01] = np.nan
        for ks, st, pad in (((2, 2), (2, 2), (0, 0)), ((3, 3), (1, 1), (1, 1)),
                            ((3, 2), (2, 3), (1, 1))):
            out = pool_output_size(shape[2:], ks, st, pad, True)
            cases.append((x, (ks, st, pad, out)))

    def run_all():
        res = []
        for x, cfg in cases:
            dy = np.linspace(-1, 1, x.shape[0] * x.shape[1] * cfg[3][0] * cfg[3][1],
                             dtype=dtype).reshape(x.shape[:2] + cfg[3])
            for mode, cip in (("max", False), ("min", False), ("avg", True), ("avg", False)):
                y, idx = _forward(x, mode, cfg, cip)
                res += [y, _backward(dy, idx, x.shape, mode, cfg, cip)]
                if idx is not None:
                    res.append(idx)
            for mode in ("avg", "max"):
                y, idx = _core.global_pool2d_forward(x, mode)
                res += [y, _core.global_pool2d_backward(dy[:, :, 0, 0].copy(), idx, x.shape, mode)]
                if idx is not None:
                    res.append(idx)
        return res

    try:
        _core.set_num_threads(1)
        one = run_all()
        _core.set_num_threads(2)
        two = run_all()
    finally:
        _core.set_num_threads(before)
    for i, (a, b) in enumerate(zip(one, two)):
        assert_same_bits(b, a, f"result {i}: 2 threads vs 1 thread")


# --------------------------------------------------------------------------- ISA fast paths

@pytest.fixture(params=available_isas(_core))
def isa(request, restore_core):
    """Every ISA this CPU can run: baseline (generic loops) and avx2/avx512 (pool_kernel.inc)."""
    _core.set_isa(request.param)
    return request.param


# Widths around the vector widths (4 doubles, 8 floats, 16 with AVX-512 later) and their
# doubles; heights odd and even; kernels and strides that hit (SW 1, 2) and miss (SW 3) the
# vector row kernels, windows that overlap or not, padding and ceil_mode (clipped border windows).
FAST_WIDTHS = (1, 4, 9, 17, 33)
FAST_CFGS = (((2, 2), (2, 2), 0), ((3, 3), (2, 2), 1), ((3, 3), (1, 1), 1), ((2, 2), (1, 1), 0),
             ((1, 2), (2, 2), 0), ((1, 1), (2, 2), 0), ((2, 1), (2, 2), 0), ((2, 3), (2, 1), 1),
             ((3, 3), (3, 3), 1), ((3, 2), (1, 2), 1))


def _fast_cases(H, widths=FAST_WIDTHS):
    for W in widths:
        for ks, st, p in FAST_CFGS:
            pad = pool_padding(p, ks)
            for ceil in (False, True):
                try:
                    out = pool_output_size((H, W), ks, st, pad, ceil)
                except ValueError:
                    continue
                yield W, (ks, st, pad, out)


@pytest.mark.parametrize("dtype", DTYPES)
def test_fast_paths_maxmin_against_reference(rng, isa, dtype):
    for H, widths in ((5, (1, 4, 17)), (6, (9, 33))):
        for W, cfg in _fast_cases(H, widths):
            shape = (1, 2, H, W)
            x = rng.standard_normal(shape).astype(dtype)
            x[rng.random(shape) < 0.05] = np.nan
            ties = rng.integers(0, 3, shape).astype(dtype)
            for xs, kind in ((x, "nan"), (ties, "ties")):
                for mode in ("max", "min"):
                    what = f"{isa} {mode} {kind} {np.dtype(dtype).name} x{shape} {_fmt(cfg)}"
                    y, idx = _forward(xs, mode, cfg, False)
                    y_ref, idx_ref = ref.pool2d(xs, mode, *cfg[:3], cfg[3], False)
                    assert_same_bits(y, y_ref, what + " y")
                    assert_same_bits(idx, idx_ref, what + " indices")
                    dy = rng.integers(-4, 5, y.shape).astype(dtype)  # exact sums in any order
                    dx = _backward(dy, idx, shape, mode, cfg, False)
                    dx_ref = ref.pool2d_backward(dy, idx_ref, shape, mode, *cfg[:3], False)
                    assert_same_bits(dx, dx_ref, what + " dx")


@pytest.mark.parametrize("dtype", DTYPES)
def test_fast_paths_avg_against_reference_and_naive(rng, isa, dtype):
    for H, widths in ((5, (4, 9, 33)), (6, (1, 17))):
        for W, cfg in _fast_cases(H, widths):
            shape = (1, 2, H, W)
            ks, st = cfg[0], cfg[1]
            x = rng.standard_normal(shape).astype(dtype)
            for cip in (True, False):
                what = f"{isa} avg cip={cip} {np.dtype(dtype).name} x{shape} {_fmt(cfg)}"
                y, _ = _forward(x, "avg", cfg, cip)
                y_ref = ref.pool2d(x, "avg", *cfg[:3], cfg[3], cip)[0]
                assert_close(y, y_ref, dtype, ks[0] * ks[1], what + " y")
                assert_same_bits(y, _core.pool2d_forward(x, "avg", *cfg, cip, algo="naive")[0],
                                 what + " y vs naive")
                dy = rng.standard_normal(y.shape).astype(dtype)
                dx = _backward(dy, None, shape, "avg", cfg, cip)
                dx_ref = ref.pool2d_backward(dy, None, shape, "avg", *cfg[:3], cip)
                assert_close(dx, dx_ref, dtype, overlap(ks, st), what + " dx")
                naive = _core.pool2d_backward(dy, None, shape, "avg", *cfg[:3], cip, algo="naive")
                assert_same_bits(dx, naive, what + " dx vs naive")


@pytest.mark.parametrize("shape", [(2, 3, 4, 16), (3, 2, 7, 21), (1, 5, 28, 28), (2, 2, 6, 39),
                                   (2, 3, 8, 8), (1, 3, 2, 9), (3, 100, 8, 8), (1, 3, 9, 9),
                                   (2, 4, 10, 10), (1, 3, 7, 3), (2, 2, 5, 13), (1, 1, 2, 8),
                                   (1, 2, 6, 15)])
def test_2x2_stride2_plane_kernels_match_naive(rng, isa, shape):
    """The 2x2 / stride-2 kernels (float) against the naive kernels, bit for bit, with NaN,
    ties and -0.0: rows of >= 8 outputs (one block, overlapping blocks, odd H and W), rows of
    4 (two per vector, an odd number of rows, several tasks; one row alone: masked) and rows of
    1-7 outputs (masked: LeNet's 10 x 10 planes); forward and average backward."""
    x = rng.integers(-2, 3, shape).astype(np.float32)  # ties
    x[rng.random(shape) < 0.1] = -0.0
    x[rng.random(shape) < 0.05] = np.nan
    x[0, 0, :2, :2] = -0.0  # a window of -0.0 only: the average is +0.0
    out = (shape[2] // 2, shape[3] // 2)
    cfg = ((2, 2), (2, 2), (0, 0), out)
    for mode in ("max", "min", "avg"):
        y, idx = _forward(x, mode, cfg, True)
        y_n, idx_n = _core.pool2d_forward(x, mode, *cfg, True, algo="naive")
        assert_same_bits(y, y_n, f"{isa} {mode} {shape} y vs naive")
        if idx is not None:
            assert_same_bits(idx, idx_n, f"{isa} {mode} {shape} indices vs naive")
    assert np.signbit(_forward(x, "avg", cfg, True)[0][0, 0, 0, 0]) == False  # noqa: E712
    dy = rng.standard_normal((shape[0], shape[1]) + out).astype(np.float32)
    dy[rng.random(dy.shape) < 0.2] = -0.0
    dy[rng.random(dy.shape) < 0.05] = np.inf
    dx = _backward(dy, None, shape, "avg", cfg, True)
    naive = _core.pool2d_backward(dy, None, shape, "avg", *cfg[:3], True, algo="naive")
    assert_same_bits(dx, naive, f"{isa} avg {shape} dx vs naive")
    # max / min: every dx element written once (the windows tile the plane) against the
    # scatter; with relu_y, the fused ReLU mask (y <= 0 and NaN y pass no gradient)
    for mode in ("max", "min"):
        y, idx = _forward(x, mode, cfg, True)
        for relu_y in ([None, y] if mode == "max" else [None]):
            dx = _core.pool2d_backward(dy, idx, shape, mode, *cfg[:3], True, relu_y=relu_y)
            naive = _core.pool2d_backward(dy, idx, shape, mode, *cfg[:3], True, algo="naive",
                                          relu_y=relu_y)
            assert_same_bits(dx, naive, f"{isa} {mode} relu {relu_y is not None} {shape} dx")


@pytest.mark.parametrize("dtype", DTYPES)
def test_fast_paths_same_bits_on_every_isa(rng, restore_core, dtype):
    # The vector kernels do the naive per-element operations in the naive order: every ISA
    # must give the same bits, also for -0.0 inputs (0 + (-0.0) = +0.0 in the sums).
    isas = available_isas(_core)
    if len(isas) < 2:
        pytest.skip("only the baseline ISA on this CPU")
    shape = (3, 4, 9, 17)
    x = rng.standard_normal(shape).astype(dtype)
    x[rng.random(shape) < 0.05] = np.nan
    x[rng.random(shape) < 0.05] = -0.0
    results = {}
    for name in isas:
        _core.set_isa(name)
        res = []
        for ks, st, p in FAST_CFGS:
            pad = pool_padding(p, ks)
            out = pool_output_size(shape[2:], ks, st, pad, True)
            cfg = (ks, st, pad, out)
            dy = np.linspace(-1, 1, np.prod(shape[:2] + out), dtype=dtype).reshape(
                shape[:2] + out)
            dy[..., 0] = -0.0
            for mode, cip in (("max", False), ("min", False), ("avg", True), ("avg", False)):
                y, idx = _forward(x, mode, cfg, cip)
                res += [y, _backward(dy, idx, shape, mode, cfg, cip)]
                if idx is not None:
                    res.append(idx)
        results[name] = res
    for name in isas[1:]:
        for i, (a, b) in enumerate(zip(results[isas[0]], results[name])):
            assert_same_bits(b, a, f"result {i}: {name} vs {isas[0]}")


@pytest.mark.parametrize("dtype", DTYPES)
def test_index_backward_with_indices_outside_their_windows(rng, dtype):
    # Indices are free to point anywhere in the plane (dx = 0, dx[ind] += dy): not only at an
    # element of their own window.
    shape = (2, 3, 8, 8)
    cfg = ((2, 2), (2, 2), (0, 0), (4, 4))
    idx = rng.integers(0, 64, (2, 3, 4, 4)).astype(np.int64)
    idx[0, 0] = 5  # one plane where every output points at the same element
    dy = rng.integers(-4, 5, idx.shape).astype(dtype)
    want = np.zeros((2, 3, 64), dtype)
    for n in range(2):
        for c in range(3):
            np.add.at(want[n, c], idx[n, c].ravel(), dy[n, c].ravel())
    for mode in ("max", "min"):
        dx = _backward(dy, idx, shape, mode, cfg, False)
        assert_same_bits(dx, want.reshape(shape), f"{mode} dx")

@pytest.mark.parametrize("dtype", DTYPES)
def test_2x2_backward_gives_way_to_the_scatter(rng, isa, dtype):
    # 2x2 windows on rows of >= 8 outputs: the planes written straight (float) give way to the
    # scatter when one index lies outside its window, also in the last plane only
    shape, out = (2, 3, 4, 16), (2, 8)
    cfg = ((2, 2), (2, 2), (0, 0), out)
    dy = rng.integers(-4, 5, (2, 3) + out).astype(dtype)
    idx = np.zeros((2, 3) + out, np.int64)
    for oh in range(out[0]):
        for ow in range(out[1]):  # the window's elements in turn: +0, +1, +W, +W+1
            idx[..., oh, ow] = 2 * oh * 16 + 2 * ow + (0, 1, 16, 17)[(oh + ow) % 4]
    want = np.zeros((2, 3, 64), dtype)
    for n in range(2):
        for c in range(3):
            np.put(want[n, c], idx[n, c].ravel(), dy[n, c].ravel())
    assert_same_bits(_backward(dy, idx, shape, "max", cfg, False), want.reshape(shape) + 0.0,
                     "2x2 windows, every index inside")
    for bad in (0, 2**62, -(2**62)):  # outside its window; wild values in range or not
        idx2 = idx.copy()
        idx2[1, 2, 1, 7] = bad
        if bad != 0:
            with pytest.raises(ValueError):
                _backward(dy, idx2, shape, "max", cfg, False)
            continue
        want2 = np.zeros((2, 3, 64), dtype)
        for n in range(2):
            for c in range(3):
                np.add.at(want2[n, c], idx2[n, c].ravel(), dy[n, c].ravel())
        assert_same_bits(_backward(dy, idx2, shape, "max", cfg, False), want2.reshape(shape),
                         "2x2 windows, one index outside")


@pytest.mark.parametrize("dtype", DTYPES)
def test_fast_paths_thread_invariance(rng, isa, dtype):
    if not _core.has_openmp:
        pytest.skip("built without OpenMP")
    before = _core.get_num_threads()
    shape = (3, 5, 17, 21)  # above the serial threshold (4096 elements)
    x = rng.standard_normal(shape).astype(dtype)
    x[rng.random(shape) < 0.02] = np.nan
    results = []
    try:
        for threads in (1, 2, 3):
            _core.set_num_threads(threads)
            res = []
            for ks, st, p in FAST_CFGS:
                pad = pool_padding(p, ks)
                cfg = (ks, st, pad, pool_output_size(shape[2:], ks, st, pad, True))
                dy = np.cos(np.arange(np.prod(shape[:2] + cfg[3]))).astype(dtype).reshape(
                    shape[:2] + cfg[3])
                for mode, cip in (("max", False), ("min", False), ("avg", True), ("avg", False)):
                    y, idx = _forward(x, mode, cfg, cip)
                    res += [y, _backward(dy, idx, shape, mode, cfg, cip)]
                    if idx is not None:
                        res.append(idx)
            results.append(res)
    finally:
        _core.set_num_threads(before)
    for t, res in zip((2, 3), results[1:]):
        for i, (a, b) in enumerate(zip(results[0], res)):
            assert_same_bits(b, a, f"{isa} result {i}: {t} threads vs 1 thread")
