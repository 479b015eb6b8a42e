"""The numba backend against the float64 reference, element by element.

Every backend function (conv2d, conv2d_backward, im2col, col2im, pool2d, pool2d_backward,
global_pool2d, global_pool2d_backward) in float32 and float64 on a small grid of shapes, plus:
chunked conv (several cols buffers per batch), NaN handling and ties in max/min pooling, the
public functional API with backend="numba", the packed-panel conv kernels against the naive
ones (exact on integers), and results bit-identical for 1, 2 and 3 threads.
"""

from __future__ import annotations

import numpy as np
import pytest

numba = pytest.importorskip("numba")

import convforge  # noqa: E402  (after the importorskip above)
from convforge import F  # noqa: E402
from convforge.backends import numba as nb  # noqa: E402
from convforge.backends import reference as ref  # noqa: E402

from conftest import as_f64, assert_close  # noqa: E402

DTYPES = (np.float32, np.float64)


def ref_call(fn, *args):
    """A reference backend function on float64 copies of the float arrays."""
    return fn(*[as_f64(a) for a in args])


def assert_same(actual, expected, what: str) -> None:
    """Bit-for-bit equal (NaN matches NaN), same dtype and shape; prints the first mismatch."""
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != {expected.dtype}"
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    if actual.dtype.kind == "f":
        nan = np.isnan(actual) & np.isnan(expected)
        same = nan | ((actual == expected) & (np.signbit(actual) == np.signbit(expected)))
    else:
        same = actual == expected
    if not same.all():
        at = tuple(int(j) for j in np.argwhere(~same)[0])
        pytest.fail(f"{what}: {int((~same).sum())} of {same.size} differ; first at {at}: "
                    f"{actual[at]!r} vs {expected[at]!r}", pytrace=False)


# --------------------------------------------------------------------------- convolution

# (N, C, H, W), (K, KH, KW), stride, padding (top, bottom, left, right), dilation, groups
CONV_CASES = {
    "basic": ((2, 3, 7, 9), (4, 3, 3), (1, 1), (0, 0, 0, 0), (1, 1), 1),
    "stride_pad_sides_groups": ((2, 4, 8, 11), (6, 3, 2), (2, 3), (1, 2, 0, 3), (1, 1), 2),
    "dilation": ((1, 2, 9, 10), (3, 3, 3), (1, 2), (2, 2, 1, 1), (2, 3), 1),
    "depthwise": ((2, 6, 8, 7), (6, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 6),
    "depthwise_x2": ((1, 4, 6, 6), (8, 3, 3), (2, 2), (1, 0, 1, 0), (1, 1), 4),
    "1x1": ((3, 5, 4, 6), (7, 1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1),
    "kernel_eq_input": ((2, 3, 5, 4), (2, 5, 4), (1, 1), (0, 0, 0, 0), (1, 1), 1),
    "many_tiles": ((2, 3, 17, 19), (10, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),
    "pad_wider_than_stride": ((1, 2, 3, 4), (3, 2, 2), (3, 2), (2, 1, 3, 0), (2, 1), 1),
    # dw by the panel kernel (>= 32 channels per group, see nb._DW_PANEL_MIN_CHANNELS): odd
    # row counts, a depth not a multiple of 4, panels spanning
    # images, several panels and tiles.
    "dw_panels": ((3, 22, 9, 11), (40, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),
    "dw_panels_stride_dilation_groups": ((2, 18, 10, 9), (66, 2, 3), (2, 1), (0, 1, 2, 0),
                                         (1, 2), 2),
    "many_panels": ((2, 70, 6, 7), (130, 3, 3), (1, 1), (2, 1, 1, 2), (1, 1), 1),
    # dx by the panel forward (stride 1, >= 8 input channels per group): cropping (padding
    # wider than the dilated kernel), dilation and groups.
    "pad_wider_than_kernel": ((2, 8, 5, 6), (36, 3, 3), (1, 1), (3, 2, 0, 4), (1, 1), 1),
    "dx_panels_dilation_groups": ((2, 16, 9, 8), (6, 3, 2), (1, 1), (1, 2, 0, 1), (2, 3), 2),
}


def _conv_data(rng, case, dtype):
    (n, c, h, w), (k, kh, kw), stride, pad, dil, g = case
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = rng.standard_normal((k, c // g, kh, kw)).astype(dtype)
    b = rng.standard_normal(k).astype(dtype)
    return x, wt, b, (stride, pad, dil, g)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", list(CONV_CASES))
def test_conv2d_forward_backward(rng, name, dtype):
    x, w, b, args = _conv_data(rng, CONV_CASES[name], dtype)
    k, cg, kh, kw = w.shape
    for bias in (b, None):
        y = nb.conv2d(x, w, bias, *args)
        assert_close(y, ref_call(ref.conv2d, x, w, bias, *args), dtype, cg * kh * kw,
                     f"{name} y (bias={bias is not None})")
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx, dw, db = nb.conv2d_backward(dy, x, w, *args, True)
    rdx, rdw, rdb = ref_call(ref.conv2d_backward, dy, x, w, *args, True)
    groups = args[3]
    assert_close(dx, rdx, dtype, (k // groups) * kh * kw, f"{name} dx")
    assert_close(dw, rdw, dtype, x.shape[0] * y.shape[2] * y.shape[3], f"{name} dw")
    assert_close(db, rdb, dtype, x.shape[0] * y.shape[2] * y.shape[3], f"{name} db")
    assert nb.conv2d_backward(dy, x, w, *args, False)[2] is None


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_conv2d_integer_inputs_exact(rng, dtype):
    """Small integers: every sum is exact in float32 too, so results equal the oracle's."""
    x = rng.integers(-3, 4, (3, 4, 9, 8)).astype(dtype)
    w = rng.integers(-3, 4, (6, 2, 3, 3)).astype(dtype)
    b = rng.integers(-3, 4, 6).astype(dtype)
    args = ((2, 1), (1, 0, 2, 1), (1, 2), 2)
    y = nb.conv2d(x, w, b, *args)
    assert_same(y, ref_call(ref.conv2d, x, w, b, *args).astype(dtype), "y")
    dy = rng.integers(-3, 4, y.shape).astype(dtype)
    got = nb.conv2d_backward(dy, x, w, *args, True)
    want = ref_call(ref.conv2d_backward, dy, x, w, *args, True)
    for what, a, e in zip(("dx", "dw", "db"), got, want):
        assert_same(a, e.astype(dtype), what)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", ["basic", "stride_pad_sides_groups", "dilation", "depthwise_x2",
                                  "dw_panels", "dw_panels_stride_dilation_groups",
                                  "many_panels", "pad_wider_than_kernel",
                                  "dx_panels_dilation_groups"])
def test_panel_kernels_equal_naive_kernels_on_integers(rng, name, dtype):
    """The packed-panel kernels against the naive tile kernels (naive=True), on small integers:
    every partial sum is exact, so both must give the same bits whatever their orders."""
    (n, c, h, w_), (k, kh, kw), stride, pad, dil, g = CONV_CASES[name]
    x = rng.integers(-3, 4, (n, c, h, w_)).astype(dtype)
    w = rng.integers(-3, 4, (k, c // g, kh, kw)).astype(dtype)
    b = rng.integers(-3, 4, k).astype(dtype)
    args = (stride, pad, dil, g)
    y = nb.conv2d(x, w, b, *args)
    assert_same(y, nb.conv2d(x, w, b, *args, naive=True), f"{name} y")
    dy = rng.integers(-3, 4, y.shape).astype(dtype)
    fast = nb.conv2d_backward(dy, x, w, *args, True)
    naive = nb.conv2d_backward(dy, x, w, *args, True, naive=True)
    for what, a, e in zip(("dx", "dw", "db"), fast, naive):
        assert_same(a, e, f"{name} {what}")


def test_panel_path_choice():
    """Which kernels run: the panel forward always, dx by panels at stride 1 from
    _DX_PANEL_MIN_CHANNELS input channels per group, dw by panels
    from _DW_PANEL_MIN_CHANNELS output channels per group (so the cases above cover both
    kinds)."""
    from convforge.backends import _numba_kernels as nk

    calls = []

    class Spy:
        def __getattr__(self, name):
            calls.append(name)
            return getattr(nk, name)

    def run(c, k, stride):
        x = np.ones((1, c, 6, 6), np.float32)
        w = np.ones((k, c, 3, 3), np.float32)
        y = nb.conv2d(x, w, None, stride, (1, 1, 1, 1), (1, 1), 1)
        calls.clear()
        nb.conv2d_backward(y, x, w, stride, (1, 1, 1, 1), (1, 1), 1, True)
        return [name for name in calls if name.startswith("conv2d")]

    orig = nb._kernels
    try:
        nb._kernels = lambda: Spy()
        nb.conv2d(np.ones((1, 3, 5, 5)), np.ones((2, 3, 3, 3)), None, (2, 2), (0, 0, 0, 0),
                  (1, 1), 1)
        assert [name for name in calls if name.startswith("conv2d")] == ["conv2d_forward_panels"]
        panels = ["conv2d_forward_panels", "conv2d_backward_weight_panels"]
        assert run(24, 32, (1, 1)) == panels
        assert run(24, 31, (1, 1)) == [panels[0], "conv2d_backward"]  # 31 channels: naive dw
        assert run(7, 64, (1, 1)) == [panels[1], "conv2d_backward"]   # 7 inputs: naive dx
        assert run(24, 32, (2, 2)) == [panels[1], "conv2d_backward"]  # stride 2: naive dx
    finally:
        nb._kernels = orig


def test_conv2d_chunks_do_not_change_results(rng, monkeypatch):
    """A batch unfolded 1, 2 (last chunk partial) or all images at a time: same bits, for the
    naive dw (4 channels per group) and the panel dw (33 per group)."""
    default = nb._COLS_ELEMENTS
    for case in ("stride_pad_sides_groups", "dw_panels_stride_dilation_groups"):
        monkeypatch.setattr(nb, "_COLS_ELEMENTS", default)
        _check_chunks(rng, monkeypatch, CONV_CASES[case])


def _check_chunks(rng, monkeypatch, case):
    x, w, b, args = _conv_data(rng, case, np.float32)
    x = np.concatenate([x, x[:1] * 0.5])                              # N = 3
    y = nb.conv2d(x, w, b, *args)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    grads = nb.conv2d_backward(dy, x, w, *args, True)
    per_image = x.shape[1] * w.shape[2] * w.shape[3] * y.shape[2] * y.shape[3]
    for elements in (1, 2 * per_image):
        monkeypatch.setattr(nb, "_COLS_ELEMENTS", elements)
        assert_same(nb.conv2d(x, w, b, *args), y, f"y, cols buffer {elements}")
        for what, a, e in zip(("dx", "dw", "db"), nb.conv2d_backward(dy, x, w, *args, True),
                              grads):
            assert_same(a, e, f"{what}, cols buffer {elements}")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", ["basic", "stride_pad_sides_groups", "dilation",
                                  "kernel_eq_input", "pad_wider_than_stride"])
def test_im2col_col2im(rng, name, dtype):
    (n, c, h, w), (_, kh, kw), stride, pad, dil, _ = CONV_CASES[name]
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    cols = nb.im2col(x, (kh, kw), stride, pad, dil)
    assert_same(cols, ref_call(ref.im2col, x, (kh, kw), stride, pad, dil).astype(dtype),
                f"{name} cols")
    dcols = rng.standard_normal(cols.shape).astype(dtype)
    back = nb.col2im(dcols, x.shape, (kh, kw), stride, pad, dil)
    assert_close(back, ref_call(ref.col2im, dcols, x.shape, (kh, kw), stride, pad, dil), dtype,
                 kh * kw, f"{name} col2im")


def test_conv_functional_api(rng):
    """Through convforge.F with backend='numba': 'same' padding, odd sizes, non-contiguous and
    read-only inputs."""
    x = rng.standard_normal((2, 3, 11, 8)).astype(np.float32)
    w = rng.standard_normal((5, 3, 4, 3)).astype(np.float32)
    xt = np.ascontiguousarray(x.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2)   # not C-order
    w.flags.writeable = False
    y = F.conv2d(xt, w, None, stride=2, padding="same", backend="numba")
    y_ref = F.conv2d(x.astype(np.float64), w.astype(np.float64), None, stride=2,
                     padding="same", backend="reference")
    assert_close(y, y_ref, np.float32, 36, "F.conv2d same")
    dy = rng.standard_normal(y.shape).astype(np.float32)
    got = F.conv2d_backward(dy, xt, w, stride=2, padding="same", backend="numba")
    want = F.conv2d_backward(dy.astype(np.float64), x.astype(np.float64),
                             w.astype(np.float64), stride=2, padding="same",
                             backend="reference")
    for what, a, e, red in zip(("dx", "dw", "db"), got, want, (60, 2 * 24, 2 * 24)):
        assert_close(a, e, np.float32, red, f"F.conv2d_backward {what}")


def test_lecture_edge_example():
    """6x6 image, left half 10, vertical edge filter -> every row 0 30 30 0."""
    x = np.zeros((1, 1, 6, 6), np.float32)
    x[..., :3] = 10
    w = np.tile(np.array([1, 0, -1], np.float32), (3, 1)).reshape(1, 1, 3, 3)
    y = nb.conv2d(x, w, None, (1, 1), (0, 0, 0, 0), (1, 1), 1)
    assert_same(y, np.tile(np.array([0, 30, 30, 0], np.float32), (1, 1, 4, 1)), "edge")


# --------------------------------------------------------------------------- pooling

# (N, C, H, W), kernel, stride, padding (PH, PW), ceil_mode
POOL_CASES = {
    "2x2": ((2, 3, 8, 6), (2, 2), (2, 2), (0, 0), False),
    "3x3_s2_ceil": ((2, 2, 7, 9), (3, 3), (2, 2), (0, 0), True),
    "pad_ceil_nonsquare": ((1, 3, 9, 6), (3, 2), (2, 1), (1, 1), True),
    "overlap_pad": ((2, 2, 5, 7), (3, 3), (1, 2), (1, 0), False),
    "ceil_last_window_in_pad": ((1, 2, 6, 5), (4, 3), (3, 2), (2, 1), True),
    "kernel_eq_input": ((2, 3, 4, 5), (4, 5), (1, 1), (0, 0), False),
}


def _pool_out(case):
    shape, ks, st, pad, ceil = case
    return convforge.functional.pool_output_size(shape[2:], ks, st, pad, ceil)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", list(POOL_CASES))
def test_pool2d(rng, name, dtype):
    shape, ks, st, pad, _ = POOL_CASES[name]
    out = _pool_out(POOL_CASES[name])
    # Integers in [-3, 3]: plenty of ties, so the first-occurrence rule is exercised.
    x = rng.integers(-3, 4, shape).astype(dtype)
    dy = rng.standard_normal(shape[:2] + out).astype(dtype)
    for mode in ("max", "min"):
        y, idx = nb.pool2d(x, mode, ks, st, pad, out, False)
        ry, ridx = ref_call(ref.pool2d, x, mode, ks, st, pad, out, False)
        assert_same(y, ry.astype(dtype), f"{name} {mode} y")
        assert_same(idx, ridx, f"{name} {mode} indices")
        dx = nb.pool2d_backward(dy, idx, shape, mode, ks, st, pad, False)
        rdx = ref_call(ref.pool2d_backward, dy, ridx, shape, mode, ks, st, pad, False)
        assert_close(dx, rdx, dtype, ks[0] * ks[1], f"{name} {mode} dx")
    for cip in (True, False):
        y, idx = nb.pool2d(x, "avg", ks, st, pad, out, cip)
        assert idx is None
        ry, _ = ref_call(ref.pool2d, x, "avg", ks, st, pad, out, cip)
        assert_close(y, ry, dtype, ks[0] * ks[1], f"{name} avg y (count_include_pad={cip})")
        dx = nb.pool2d_backward(dy, None, shape, "avg", ks, st, pad, cip)
        rdx = ref_call(ref.pool2d_backward, dy, None, shape, "avg", ks, st, pad, cip)
        assert_close(dx, rdx, dtype, ks[0] * ks[1], f"{name} avg dx (count_include_pad={cip})")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_pool_nan(rng, dtype):
    """A NaN wins its window (the first NaN when there are two), and propagates to avg."""
    x = rng.standard_normal((1, 2, 6, 7)).astype(dtype)
    x[0, 0, 1, 1] = np.nan
    x[0, 0, 1, 2] = np.nan        # same 3x3 windows as (1, 1), later in scan order
    x[0, 1, 5, 6] = np.nan        # last element of the plane
    x[0, 1, 0, 0] = np.inf
    ks, st, pad = (3, 3), (2, 2), (1, 1)
    out = convforge.functional.pool_output_size((6, 7), ks, st, pad, True)
    for mode in ("max", "min", "avg"):
        y, idx = nb.pool2d(x, mode, ks, st, pad, out, True)
        ry, ridx = ref_call(ref.pool2d, x, mode, ks, st, pad, out, True)
        assert np.isnan(y).any()
        if mode == "avg":
            assert_close(y, ry, dtype, 9, "avg with NaN")
        else:
            assert_same(y, ry.astype(dtype), f"{mode} y with NaN")
            assert_same(idx, ridx, f"{mode} indices with NaN")
    for mode in ("max", "avg"):
        y, idx = nb.global_pool2d(x, mode)
        ry, ridx = ref_call(ref.global_pool2d, x, mode)
        assert_same(y, ry.astype(dtype), f"global {mode} with NaN")
        if mode == "max":
            assert_same(idx, ridx, "global max indices with NaN")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_global_pool2d(rng, dtype):
    shape = (3, 4, 5, 7)
    x = rng.integers(-5, 6, shape).astype(dtype)      # ties: first occurrence wins
    dy = rng.standard_normal(shape[:2]).astype(dtype)
    for mode in ("max", "avg"):
        y, idx = nb.global_pool2d(x, mode)
        ry, ridx = ref_call(ref.global_pool2d, x, mode)
        assert_close(y, ry, dtype, 35, f"global {mode} y")
        if mode == "max":
            assert_same(idx, ridx, "global max indices")
        else:
            assert idx is None
        dx = nb.global_pool2d_backward(dy, idx, shape, mode)
        rdx = ref_call(ref.global_pool2d_backward, dy, ridx, shape, mode)
        assert_close(dx, rdx, dtype, 1, f"global {mode} dx")


def test_pool_functional_api(rng):
    """Through convforge.F with backend='numba', against the reference backend."""
    x = rng.standard_normal((2, 3, 9, 8))
    y, idx = F.max_pool2d(x, 3, 2, 1, ceil_mode=True, return_indices=True, backend="numba")
    ry, ridx = F.max_pool2d(x, 3, 2, 1, ceil_mode=True, return_indices=True,
                            backend="reference")
    assert_same(y, ry, "F.max_pool2d")
    assert_same(idx, ridx, "F.max_pool2d indices")
    dy = rng.standard_normal(y.shape)
    assert_close(F.max_pool2d_backward(dy, x, 3, 2, 1, ceil_mode=True, backend="numba"),
                 F.max_pool2d_backward(dy, x, 3, 2, 1, ceil_mode=True, backend="reference"),
                 np.float64, 4, "F.max_pool2d_backward")
    ya = F.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False, backend="numba")
    assert_close(ya, F.avg_pool2d(x, 3, 2, 1, True, False, backend="reference"), np.float64,
                 9, "F.avg_pool2d")
    assert_close(F.global_avg_pool2d(x, backend="numba"),
                 F.global_avg_pool2d(x, backend="reference"), np.float64, 72, "F.global_avg")


def test_bad_mode():
    x = np.zeros((1, 1, 4, 4), np.float32)
    with pytest.raises(ValueError, match="mode"):
        nb.pool2d(x, "median", (2, 2), (2, 2), (0, 0), (2, 2), False)
    with pytest.raises(ValueError, match="mode"):
        nb.global_pool2d(x, "min")


# --------------------------------------------------------------------------- determinism

def test_probe_and_registry():
    assert nb.probe() is None
    assert "numba" in convforge.backends.available()


# (N, C, H, W), (K, KH, KW), stride, padding, dilation, groups: a VGG-like layer (panel
# kernels for y, dx and dw), and a small one with groups and stride (naive dx and dw).
THREAD_CASES = {
    "vgg_like": ((4, 32, 9, 11), (48, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),
    "small_groups_stride": ((4, 6, 13, 11), (12, 3, 3), (1, 2), (1, 1, 2, 0), (1, 1), 2),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", list(THREAD_CASES))
def test_thread_count_does_not_change_results(rng, name, dtype):
    """conv forward/backward and pooling: same bits with 1, 2 and 3 threads (as many of them
    as numba has here)."""
    counts = [t for t in (1, 2, 3) if t <= numba.config.NUMBA_NUM_THREADS]
    if len(counts) < 2:
        pytest.skip("numba has fewer than 2 threads here")
    x, w, b, args = _conv_data(rng, THREAD_CASES[name], dtype)
    pool = ((3, 3), (2, 2), (1, 1), (5, 6), False)
    results = []
    before = numba.get_num_threads()
    try:
        for threads in counts:
            numba.set_num_threads(threads)
            y = nb.conv2d(x, w, b, *args)
            dy = np.cos(np.arange(y.size, dtype=dtype)).reshape(y.shape)
            got = [y, *nb.conv2d_backward(dy, x, w, *args, True)]
            yp, idx = nb.pool2d(x, "max", *pool)
            dyp = np.sin(np.arange(yp.size, dtype=dtype)).reshape(yp.shape)
            got += [yp, idx, nb.pool2d_backward(dyp, idx, x.shape, "max", *pool[:3], False),
                    nb.pool2d_backward(dyp, None, x.shape, "avg", *pool[:3], True)]
            results.append(got)
    finally:
        numba.set_num_threads(before)
    names = ("y", "dx", "dw", "db", "pool y", "pool indices", "max dx", "avg dx")
    for threads, other in zip(counts[1:], results[1:]):
        for what, a, b_ in zip(names, results[0], other):
            assert_same(b_, a, f"{name} {what}: {threads} vs 1 threads")


def test_set_num_threads_reaches_numba():
    """convforge.set_num_threads sets numba's thread count too (capped at numba's maximum)."""
    before = numba.get_num_threads()
    try:
        convforge.set_num_threads(1)
        assert numba.get_num_threads() == 1
        convforge.set_num_threads(2)
        assert numba.get_num_threads() == min(2, numba.config.NUMBA_NUM_THREADS)
    finally:
        convforge.set_num_threads(before)


def test_cache_check_falls_back(monkeypatch):
    """With no writable cache directory the kernels are compiled with cache=False."""
    from convforge.backends import _numba_kernels as nk

    def unwritable(*args, **kwargs):
        raise PermissionError("read-only")

    assert nk._cache_writable() in (True, False)
    monkeypatch.setattr(nk.tempfile, "TemporaryFile", unwritable)
    assert nk._cache_writable() is False


def test_bad_indices_raise():
    """Out-of-range or wrongly typed indices raise instead of writing outside dx."""
    dy = np.ones((1, 1, 2, 2), np.float32)
    bad = np.array([[[[0, 1], [2, 16]]]], np.int64)
    with pytest.raises(ValueError, match="indices"):
        nb.pool2d_backward(dy, bad, (1, 1, 4, 4), "max", (2, 2), (2, 2), (0, 0), False)
    with pytest.raises(TypeError, match="indices"):
        nb.pool2d_backward(dy, bad.astype(np.int32), (1, 1, 4, 4), "max", (2, 2), (2, 2),
                           (0, 0), False)


def test_set_num_threads_before_numba_loads():
    """convforge.set_num_threads(1) before the numba backend is first used still reaches numba
    (a fresh interpreter: numba not imported yet)."""
    import subprocess
    import sys

    code = ("import numpy as np, convforge as cf; cf.set_num_threads(1); "
            "import sys; assert 'numba' not in sys.modules; "
            "x = np.ones((1, 1, 4, 4), np.float32); w = np.ones((1, 1, 3, 3), np.float32); "
            "cf.F.conv2d(x, w, backend='numba'); import numba; print(numba.get_num_threads())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "1"

